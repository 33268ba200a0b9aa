# $OpenBSD: uvm_pdaemon.c,v 1.154 2026/02/11 22:34:41 deraadt Exp $
# $NetBSD: uvm_pdaemon.c,v 1.23 2000/08/20 10:24:14 bjh21 Exp $
#
#
# Copyright (c) 1997 Charles D. Cranor and Washington University.
# Copyright (c) 1991, 1993, The Regents of the University of California.
#
# All rights reserved.
#
# This code is derived from software contributed to Berkeley by
# The Mach Operating System project at Carnegie-Mellon University.
#
# Redistribution and use in source and binary forms, with or without
# modification, are permitted provided that the following conditions
# are met:
# 1. Redistributions of source code must retain the above copyright
#    notice, this list of conditions and the following disclaimer.
# 2. Redistributions in binary form must reproduce the above copyright
#    notice, this list of conditions and the following disclaimer in the
#    documentation and/or other materials provided with the distribution.
# 3. Neither the name of the University nor the names of its contributors
#    may be used to endorse or promote products derived from this software
#    without specific prior written permission.
#
# THIS SOFTWARE IS PROVIDED BY THE REGENTS AND CONTRIBUTORS ``AS IS'' AND
# ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
# IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE
# ARE DISCLAIMED.  IN NO EVENT SHALL THE REGENTS OR CONTRIBUTORS BE LIABLE
# FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
# DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS
# OR SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION)
# HOWEVER CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT
# LIABILITY, OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY
# OUT OF THE USE OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF
# SUCH DAMAGE.
#
#	@(#)vm_pageout.c        8.5 (Berkeley) 2/14/94
# from: Id: uvm_pdaemon.c,v 1.1.2.32 1998/02/06 05:26:30 chs Exp
#
#
# Copyright (c) 1987, 1990 Carnegie-Mellon University.
# All rights reserved.
#
# Permission to use, copy, modify and distribute this software and
# its documentation is hereby granted, provided that both the copyright
# notice and this permission notice appear in all copies of the
# software, derivative works or modified versions, and any portions
# thereof, and that both notices appear in supporting documentation.
#
# CARNEGIE MELLON ALLOWS FREE USE OF THIS SOFTWARE IN ITS "AS IS"
# CONDITION.  CARNEGIE MELLON DISCLAIMS ANY LIABILITY OF ANY KIND
# FOR ANY DAMAGES WHATSOEVER RESULTING FROM THE USE OF THIS SOFTWARE.
#
# Carnegie Mellon requests users of this software to return to
#
#  Software Distribution Coordinator  or  Software.Distribution@CS.CMU.EDU
#  School of Computer Science
#  Carnegie Mellon University
#  Pittsburgh PA 15213-3890
#
# any improvements or extensions that they make and grant Carnegie the
# rights to redistribute these changes.

"""uvm_pdaemon.c: the page daemon, as OpenBSD had it in February 2026.

Port of OpenBSD sys/uvm/uvm_pdaemon.c,v 1.154 2026/02/11 22:34:41 deraadt (openbsd/src
commit 012cf974ca6d25b889551a1e73afca0e5a6d0994), written beside the 1.105 port
(kernel/uvm/uvm_pdaemon.py) with the same conventions, under the copyright notices and
conditions above (kept as the C file has them). The comments are the port's own words; each
function's docstring gives its line range in the 1.154 file, and docs/pdaemon-1.154.md has
the branch catalogue (ids N-*), what an experiment sees change from 1.105, and the kernel
support this module uses (its §4). Chosen at boot with ``[kernel] pdaemon = "1.154"``.

What it needs of the kernel and 1.105 does not use: ``k.uvm_wait_counter`` and
``k.nowait_pma`` (the Kernel record; the allocator queues the latter, uvm_pmemrange.py), the
``PQ_ITER`` marker (uvm_page.py; uvm_check does not count markers), ``uvm_pageactivate_154``
and ``uvm_pagedeactivate_154`` (uvm_page.py), ``uvm_swapisfilled`` and ``uvm_swapisfull_154``
(uvm_swap.py), ``uvm_swap_dropcluster`` and ``uvm_pager_put_154`` (uvm_pager.py),
``uvm_pmr_cache_drain`` (uvm_pmemrange.py), ``bufbackoff_154`` (vfs_bio.py), and an aobj whose
slot cannot be recorded (uvm_aobj.py's element pool).

Deviations (each marked ``# PORT:`` where it happens):
- Build options come from ``k.config`` as in the 1.105 port: ``DIAGNOSTIC``, ``DEBUG``,
  ``NDRM`` (0: drmbackoff is never called), ``HIBERNATE``.
- C globals are reached through ``k`` (style C15): ``uvm_wait_counter`` and ``nowait_pma``
  are fields of the Kernel record. ``nowait_pma`` is made by uvm_pageout at start instead of
  being a zeroed static, so that ``k.nowait_pma is None`` tells the allocator it runs with a
  daemon that uses ``uvm_nowait_failed`` instead (1.105).
- ``atomic_*`` operations on uvmexp are plain reads and writes (style C10): no ``await``
  comes between a read and the write that uses it. What 1.154 changed that a test can see
  is where each value is sampled, and that is kept line by line.
- KERNEL_LOCK/KERNEL_UNLOCK in the aiodone daemon are not modelled (one thread runs at a
  time); ``spl0``/``splbio`` neither.
- The two scans walk their queue with a ``PQ_ITER`` marker page; the C ``for`` loop whose
  increment is ``uvmpd_iterator`` becomes ``for p in _uvmpd_for(...)`` (a port helper), so
  ``continue`` and ``break`` behave as in C and the increment runs after the body.
- The functions upstream calls with the page queues unlocked and that take that lock
  themselves (uvm_pageactivate, uvm_pagedeactivate of the 2026 uvm_page.c) are the
  kernel's ``_154`` variants; the kernel's own are the 2022 ones the 1.105 port calls.
- C out-parameters are returned, as in the 1.105 port: ``uvm_swap_alloc`` returns
  ``(slot, nslots)``, ``uvm_pager_put_154`` returns ``(result, ppsp, npages)``.
- The daemon charges virtual CPU time per loop and per page examined and logs one line
  per pass and per pageout (style C18) through the helpers every daemon shares
  (kernel/uvm/uvmpd_pass.py); its pass line also carries ``shortage`` and
  ``inactive_shortage``.
- Kept as upstream has it, and pinned by the catalogue: the comparison of a page number with
  the byte addresses of a constraint (reference §4.5), pdpageouts counted twice for a full
  swap cluster (lines 796 and 465), two tests that can no longer be true (N-I4, N-I10), the
  shortage reduced by the buffer cache's target cut rather than the pages it freed, and the
  daemon's loop going round without sleeping while any thread is counted in uvm_wait (on
  this one-CPU machine each such round costs ``pass_ns`` until ``yield_ns`` of CPU time lets
  the others run: docs/pdaemon-1.154.md §5).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, cast

import structlog

import kernel.kern.vfs_bio as vfs_bio
import kernel.uvm.uvm_aobj as uvm_aobj
import kernel.uvm.uvm_page as uvm_page
import kernel.uvm.uvm_pager as uvm_pager
import kernel.uvm.uvm_pmemrange as uvm_pmemrange
import kernel.uvm.uvm_swap as uvm_swap
import kernel.uvm.uvmpd_pass as uvmpd_pass
from kernel.kern.kern_synch import (
    INFSLP,
    MSEC_TO_NSEC,
    MUTEX_ASSERT_LOCKED,
    PNORELOCK,
    PVM,
    RW_NOSLEEP,
    RW_WRITE,
    RWLock,
    chan,
    msleep_nsec,
    mtx_enter,
    mtx_leave,
    rw_enter,
    rw_enter_nosleep,
    rw_exit,
    rw_write_held,
    sched_pause,
    wakeup,
)
from kernel.sys.buf import B_PDAEMON, Buf
from kernel.sys.errno import ENOMEM
from kernel.sys.mman import PROT_NONE, PROT_READ
from kernel.sys.param import PAGE_SHIFT, atop
from kernel.sys.proc import curproc
from kernel.sys.queue import TailQ
from kernel.sys.systm import KASSERT, Panic
from kernel.uvm.uvm import UvmConstraintRange, dma_constraint, no_constraint
from kernel.uvm.uvm_page import (
    PG_BUSY,
    PG_CLEAN,
    PQ_ACTIVE,
    PQ_ANON,
    PQ_AOBJ,
    PQ_INACTIVE,
    PQ_ITER,
    PQ_SWAPBACKED,
    UVM_PAGE_OWN,
    VM_PAGE_TO_PHYS,
    VmPage,
    uvm_lock_fpageq,
    uvm_lock_pageq,
    uvm_pagedequeue,
    uvm_pagefree,
    uvm_unlock_fpageq,
    uvm_unlock_pageq,
)
from kernel.uvm.uvm_pmemrange import UvmPmalloc

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.uvm.uvm_anon import VmAnon
    from kernel.uvm.uvm_object import UvmObject

log = structlog.get_logger("uvm.pdaemon")

TRUE: Final = True

# How many dirty pages one inactive pass may send back to the active queue when they cannot
# be paged out (swap nearly full, no slot, no aobj slot entry) before it gives up (line 97).
UVMPD_NUMDIRTYREACTS: Final = 16

SWCLUSTPAGES: Final = 16  # uvm_swap.h: MAXBSIZE >> PAGE_SHIFT


async def uvm_wait(k: Kernel, wmsg: str) -> None:
    """uvm_wait: sleep until the page daemon has freed some memory.

    => call it with no lock held; the page daemon must not need it to make progress
    => counts itself in ``uvm_wait_counter`` while it sleeps, so the daemon keeps running
       passes until every waiter is gone (lines 161-165)
    => may sleep

    Lines 119-166 (the counter is declared at line 117).
    """
    timo = INFSLP

    if k.config.diagnostic:  # ifdef DIAGNOSTIC
        if curproc() is k.proc0:
            raise Panic("uvm_wait: cannot sleep for memory during boot")

    # lines 132-159: the daemon itself is out of memory. Ask the buffer cache first; if it
    # gives back fewer than 4 pages, nobody else may free anything either, so sleep only
    # 125 ms and let the daemon try again (or panic on a DEBUG kernel).
    if curproc() is k.uvm.pagedaemon_proc:
        log.warning("uvm_wait.emergency_bufbackoff")  # printf (line 133)
        if vfs_bio.bufbackoff_154(k, None, 4) >= 4:
            return
        log.error("pagedaemon.deadlock_detected")  # printf (line 153)
        timo = MSEC_TO_NSEC(125)
        if k.config.debug:  # if defined(DEBUG)
            raise Panic("pagedaemon deadlock")

    uvm_lock_fpageq(k)
    k.uvm_wait_counter += 1  # atomic_inc_int
    wakeup(k, chan(k.uvm, "pagedaemon"))
    await msleep_nsec(k, chan(k.uvmexp, "free"), k.uvm.fpageqlock, PVM | PNORELOCK, wmsg, timo)
    k.uvm_wait_counter -= 1  # atomic_dec_int


def uvmpd_tune(k: Kernel) -> None:
    """uvmpd_tune: compute the paging thresholds from the size of memory.

    => called once, when the daemon starts (1.154 no longer retunes when npages changes)
    => PORT: upstream takes no lock here any more; nothing else runs at that point

    Lines 171-193.
    """
    val: int
    uvmexp = k.uvmexp

    val = uvmexp.npages // 30

    # line 179: at least 16 KiB worth of pages
    val = max(val, (16 * 1024) >> PAGE_SHIFT)

    # lines 182-183: keep one page above the kernel reserve
    if val < uvmexp.reserve_kernel + 1:
        val = uvmexp.reserve_kernel + 1
    uvmexp.freemin = val

    # lines 187-190: the free target is a third above freemin, and at least one page above
    val = (uvmexp.freemin * 4) // 3
    if val <= uvmexp.freemin:
        val = uvmexp.freemin + 1
    uvmexp.freetarg = val

    uvmexp.wiredmax = uvmexp.npages // 3


# Line 200: ``struct uvm_pmalloc nowait_pma``: the request the allocator queues (at the head of
# pmr_control.allocs) when an allocation that may not sleep finds no page, so that the
# daemon frees memory in DMA-reachable memory for it.
# PORT: it is ``k.nowait_pma`` (None until uvm_pageout starts, see the module docstring).


async def uvm_pageout(k: Kernel) -> None:
    """uvm_pageout: the page daemon's main loop.

    => sleeps while no allocation request is queued and nobody waits in uvm_wait
    => each pass: size the shortage, back the buffer cache off, scan if needed, wake the
       waiters if memory can be had
    => may sleep

    Port: started by init_main as the "pagedaemon" kernel thread; never returns.

    Lines 205-305.
    """
    constraint: UvmConstraintRange
    pma: UvmPmalloc | None
    shortage: int
    inactive_shortage: int
    uvmexp = k.uvmexp
    pmr = k.uvm.pmr_control  # PORT: uvm.pmr_control, spelled once (an Optional until boot)
    assert pmr is not None

    # lines 213-215: remember who we are and compute the thresholds
    k.uvm.pagedaemon_proc = curproc()
    # (void) spl0();  PORT: no interrupt priority levels
    uvmpd_tune(k)

    # lines 217-223: a NOWAIT failure asks for 16 pages of DMA-reachable memory
    # PORT: dma_constraint() is a fresh object, so this is the C's struct copy
    k.nowait_pma = UvmPmalloc(dma_constraint(), 16 << PAGE_SHIFT, 0)

    while True:  # for (;;)
        size = 0

        uvm_lock_fpageq(k)
        # lines 229-234: sleep only when no request is queued and no thread sleeps in
        # uvm_wait (1.105 slept as soon as the request list was empty)
        if pmr.allocs.empty() and k.uvm_wait_counter == 0:
            await msleep_nsec(k, chan(k.uvm, "pagedaemon"), k.uvm.fpageqlock, PVM, "pgdaemon", INFSLP)
            uvmexp.pdwoke += 1
        snap = uvmpd_pass.pass_begin(k)  # PORT: per-pass log line

        # lines 236-241: the first request gives the size and the range to work for; the
        # request stays queued (uvm_wakeup_pla takes it off when a page of its range is freed)
        if (pma := pmr.allocs.first()) is not None:
            size = pma.pm_size >> PAGE_SHIFT
            constraint = copy.copy(pma.pm_constraint)  # a struct copy
        else:
            constraint = no_constraint()
        # lines 242-244: pages to free this pass; pages in flight are not subtracted here,
        # the inactive scan's stop test counts them
        shortage = uvmexp.freetarg - uvmexp.free + vfs_bio.BUFPAGES_DEFICIT(k)
        uvm_unlock_fpageq(k)

        # lines 250-260: the inactive target and how far the inactive queue is below it,
        # both taken now, before any scan of this pass
        uvm_lock_pageq(k)
        uvmexp.inactarg = (uvmexp.active + uvmexp.inactive) // 3
        if uvmexp.inactarg <= uvmexp.freetarg:
            uvmexp.inactarg = uvmexp.freetarg + 1
        inactive_shortage = uvmexp.inactarg - uvmexp.inactive - vfs_bio.BUFPAGES_INACT(k)
        uvm_unlock_pageq(k)

        # lines 262-266: how much to ask of the buffer cache
        if shortage > 0:
            size += shortage
        if size == 0:
            size = 16  # upstream marks this value XXX (line 266)

        # lines 268-278: what the caches give back comes off the shortage
        shortage -= vfs_bio.bufbackoff_154(k, constraint, size * 2)
        if k.config.ndrm > 0:  # if NDRM > 0
            if shortage > 0:
                shortage -= _drmbackoff(k, size * 2)
        if shortage > 0:
            shortage -= uvm_pmemrange.uvm_pmr_cache_drain(k)

        # lines 276-278: what is passed on below is never negative (upstream notes, XXX, that
        # the parameter should go)
        if shortage < 0:
            shortage = 0

        # lines 283-285: scan for a request, a free shortage or an inactive shortage
        uvm_lock_pageq(k)
        if pma is not None or shortage > 0 or inactive_shortage > 0:
            await uvmpd_scan(k, constraint, shortage, inactive_shortage)

        # lines 291-295: let the waiters retry if there is memory to be had, or if nothing
        # is in flight (waiting longer would not help)
        uvm_lock_fpageq(k)
        if uvmexp.free > uvmexp.reserve_kernel or uvmexp.paging == 0:
            wakeup(k, chan(uvmexp, "free"))
        uvm_unlock_fpageq(k)

        # line 300: the pass is over; the page queues are the only lock held
        uvm_unlock_pageq(k)

        # PORT: log line (with the pass's shortages), DIAGNOSTIC check, CPU time
        uvmpd_pass.pass_end(
            k, snap, pma, constraint, shortage=shortage, inactive_shortage=inactive_shortage
        )
        await sched_pause(k)  # sched_pause(yield);
    # NOTREACHED


async def uvm_aiodone_daemon(k: Kernel) -> None:
    """uvm_aiodone_daemon: finish asynchronous pageouts in thread context.

    => sleeps while no buf is done; takes the whole queue at once
    => samples free before finishing the bufs and wakes the page daemon if that sample was
       at or below the kernel reserve, the free-memory sleepers otherwise
    => may sleep

    Port: started by init_main as the "aiodoned" kernel thread; never returns.
    KERNEL_UNLOCK/KERNEL_LOCK (lines 318, 334, 349) are not modelled.

    Lines 311-355.
    """
    free: int
    bp: Buf | None
    nbp: Buf | None

    k.uvm.aiodoned_proc = curproc()

    while True:  # for (;;)
        # lines 325-331: wait for finished bufs, then take the list
        mtx_enter(k.uvm.aiodoned_lock)
        while (bp := k.uvm.aio_done.first()) is None:
            await msleep_nsec(
                k, chan(k.uvm, "aiodoned"), k.uvm.aiodoned_lock, PVM, "aiodoned", INFSLP
            )
        k.uvm.aio_done.init()
        mtx_leave(k.uvm.aiodoned_lock)

        # lines 335-348: the free count is sampled once, before any page comes back
        free = k.uvmexp.free
        nbufs = npages = 0  # PORT: for the log line
        while bp is not None:
            if bp.b_flags & B_PDAEMON:
                k.uvmexp.paging -= bp.b_bufsize >> PAGE_SHIFT  # atomic_sub_int
            nbp = bp.b_freelist.tqe_next  # TAILQ_NEXT(bp, b_freelist)
            # PORT: splbio()/splx(): no spl levels
            bp.b_freelist.tqe_next = bp.b_freelist.tqe_prev = None  # PORT: unlink (TAILQ_INIT)
            bp.b_freelist.tqe_head = None
            nbufs += 1  # PORT: counted before b_iodone, which may free bp
            npages += bp.b_bufsize >> PAGE_SHIFT
            assert bp.b_iodone is not None
            bp.b_iodone(bp)
            bp = nbp

            k.sched.charge(k.config.costs.aiodone_buf_ns)  # PORT: CPU time
            await sched_pause(k)  # sched_pause(yield);
        # lines 350-353
        uvm_lock_fpageq(k)
        wakeup(
            k, chan(k.uvm, "pagedaemon") if free <= k.uvmexp.reserve_kernel else chan(k.uvmexp, "free")
        )
        uvm_unlock_fpageq(k)
        uvmpd_pass.aiodone_end(k, nbufs, npages, free)  # PORT: log line, DIAGNOSTIC check


def uvmpd_trylockowner(pg: VmPage) -> RWLock | None:
    """uvmpd_trylockowner: try to write-lock the owner (object or anon) of a page.

    => returns the lock, held, or None if someone else holds it

    Lines 362-383.
    """
    uobj = pg.uobject
    slock: RWLock | None

    if uobj is not None:
        slock = uobj.vmobjlock
    else:
        anon = pg.uanon

        assert anon is not None
        slock = anon.an_lock
    assert slock is not None  # PORT: an anon on a paging queue always has its amap's lock

    if rw_enter_nosleep(slock, RW_WRITE | RW_NOSLEEP):
        return None

    return slock


@dataclass(eq=False, slots=True)
class Swapcluster:
    """struct swapcluster: the swap-backed pages being gathered for one write.

    Fields: first drum slot of the run (0: no cluster open), slots allocated, slots used,
    and the pages in slot order. Only the daemon's inactive scan uses it (a local there).

    Lines 385-390.
    """

    swc_slot: int = 0
    swc_nallocated: int = 0  # PORT: C leaves it unset until swapcluster_allocslots
    swc_nused: int = 0
    swc_pages: list[VmPage | None] = field(default_factory=lambda: [None] * SWCLUSTPAGES)


def swapcluster_init(swc: Swapcluster) -> None:
    """swapcluster_init: no cluster open. Lines 392-397."""
    swc.swc_slot = 0
    swc.swc_nused = 0


def swapcluster_allocslots(k: Kernel, swc: Swapcluster) -> int:
    """swapcluster_allocslots: open a cluster if none is open.

    => asks for SWCLUSTPAGES contiguous slots, settling for one (lessok)
    => returns 0, or ENOMEM when swap has no free slot

    Lines 399-417.
    """
    slot: int
    npages: int

    if swc.swc_slot != 0:
        return 0

    npages = SWCLUSTPAGES
    slot, npages = uvm_swap.uvm_swap_alloc(k, npages, TRUE)
    if slot == 0:
        return int(ENOMEM)

    swc.swc_slot = slot
    swc.swc_nallocated = npages
    swc.swc_nused = 0

    return 0


def swapcluster_add(k: Kernel, swc: Swapcluster, pg: VmPage) -> int:
    """swapcluster_add: give a page the next slot of the open cluster.

    => the page is swap-backed, busy, and its owner is write-locked by the caller
    => returns 0, or ENOMEM when an aobj cannot record the slot (the page is not added)

    Lines 419-446.
    """
    slot: int
    uobj: UvmObject | None

    KASSERT(k, swc.swc_slot != 0)
    KASSERT(k, swc.swc_nused < swc.swc_nallocated)
    KASSERT(k, (pg.pg_flags & PQ_SWAPBACKED) != 0)

    slot = swc.swc_slot + swc.swc_nused
    uobj = pg.uobject
    if uobj is None:
        anon = pg.uanon
        assert anon is not None and anon.an_lock is not None
        KASSERT(k, rw_write_held(anon.an_lock))
        anon.an_swslot = slot
    else:
        result: int

        KASSERT(k, rw_write_held(uobj.vmobjlock))
        # -1: the aobj's swap hash has no element for this page and none could be had
        # (uvm_aobj.py: the element pool at its hard limit); the old slot is 0 here, since
        # the caller dropped it just before
        result = uvm_aobj.uao_set_swslot(k, uobj, pg.offset >> PAGE_SHIFT, slot)
        if result == -1:
            return int(ENOMEM)
    swc.swc_pages[swc.swc_nused] = pg
    swc.swc_nused += 1

    return 0


async def swapcluster_flush(k: Kernel, swc: Swapcluster) -> int:
    """swapcluster_flush: start the write of the open cluster and close it.

    => called with the page queues and the pages' owners unlocked
    => frees the slots the cluster did not use; counts a pageout (pdpageouts)
    => returns the pager result: VM_PAGER_PEND (aiodoned finishes the pages), or
       VM_PAGER_AGAIN, after which every page is unbusied, keeps no slot and stays where it
       is, and every slot of the cluster is freed; 0 when no cluster was open
    => may sleep

    Lines 448-482.
    """
    slot: int
    nused: int
    nallocated: int
    result: int

    if swc.swc_slot == 0:
        return 0
    KASSERT(k, swc.swc_nused <= swc.swc_nallocated)

    slot = swc.swc_slot
    nused = swc.swc_nused
    nallocated = swc.swc_nallocated

    if nused < nallocated:
        uvm_swap.uvm_swap_free(k, slot + nused, nallocated - nused)

    k.uvmexp.pdpageouts += 1  # atomic_inc_int
    result = await uvm_swap.uvm_swap_put(k, slot, swc.swc_pages, nused, 0)
    uvmpd_pass.log_pageout(k, TRUE, slot, nused, result)  # PORT: one line per cluster
    if result != uvm_pager.VM_PAGER_PEND:
        KASSERT(k, result == uvm_pager.VM_PAGER_AGAIN)
        await uvm_pager.uvm_swap_dropcluster(k, swc.swc_pages, nused, ENOMEM)
        # lines 470-472: a passing shortage: give every slot of the cluster back
        uvm_swap.uvm_swap_free(k, slot, nused)  # C narrows the daddr_t here (line 471)

    # lines 475-479: no cluster open any more
    swapcluster_init(swc)

    return result


def swapcluster_nused(swc: Swapcluster) -> int:
    """swapcluster_nused: pages in the open cluster. Lines 484-488."""
    return swc.swc_nused


def uvmpd_dropswap(k: Kernel, pg: VmPage) -> int:
    """uvmpd_dropswap: free the swap slot of a swap-backed page.

    => the page's owner is locked by the caller
    => returns 1 if the page had a slot (SWSLOT_BAD counts), 0 otherwise

    Lines 496-513.
    """
    anon = cast("VmAnon", pg.uanon)  # a NULL pointer (None) unless PQ_ANON, as in C
    slot: int
    result = 0

    if (pg.pg_flags & PQ_ANON) and anon.an_swslot:
        uvm_swap.uvm_swap_free(k, anon.an_swslot, 1)
        anon.an_swslot = 0
        result = 1
    elif pg.pg_flags & PQ_AOBJ:
        assert pg.uobject is not None
        slot = uvm_aobj.uao_dropswap(k, pg.uobject, pg.offset >> PAGE_SHIFT)
        if slot:
            result = 1

    return result


def uvmpd_match_constraint(p: VmPage, constraint: UvmConstraintRange) -> int:
    """uvmpd_match_constraint: 1 if the page lies in the constraint's range, else 0.

    Port: as upstream, the page *number* is compared with the range's bounds, which are
    byte addresses (reference §4.5); kept on purpose.

    Lines 519-530.
    """
    paddr: int

    paddr = atop(VM_PAGE_TO_PHYS(p))
    if paddr >= constraint.ucr_low and paddr < constraint.ucr_high:
        return 1

    return 0


def uvmpd_iterator(
    k: Kernel, pglst: TailQ[VmPage], p: VmPage | None, iter: VmPage
) -> VmPage | None:
    """uvmpd_iterator: the page after the scan's marker, and the marker moved past it.

    => called with the page queues locked
    => other markers are skipped; at the end of the queue the marker stays where it is
    => Port: the skip re-reads the successor of our own marker (lines 543-545), so a second
       marker right behind ours would make it spin; one scanner per queue means there is
       none. Kept as upstream has it.

    Lines 532-553.
    """
    nextpg: VmPage | None = None

    MUTEX_ASSERT_LOCKED(k.uvm.pageqlock)

    # line 539: a NULL page used to mean "last swap write"; the scans no longer pass one
    if p is None:
        return None

    while True:  # do { } while
        nextpg = pglst.next(iter)
        if not (nextpg is not None and (nextpg.pg_flags & PQ_ITER)):
            break

    if nextpg is not None:
        pglst.remove(iter)
        pglst.insert_after(nextpg, iter)

    return nextpg


async def uvmpd_scan_inactive(k: Kernel, constraint: UvmConstraintRange, shortage: int) -> int:
    """uvmpd_scan_inactive: free clean inactive pages and start writing dirty ones.

    => called with the page queues locked (they are dropped and retaken around pageouts)
    => stops once the pages in flight, plus those in the open swap cluster, cover what is
       still short (``shortage - freed``), or after 16 dirty pages had to be reactivated
    => gathers swap-backed pages into clusters; object (vnode) pages go to their pager
    => returns the number of pages freed
    => may sleep

    Port: the upstream header still says the function returns TRUE when it met its
    target; it returns the count of freed pages.

    Lines 564-843.
    """
    pglst = k.uvm.page_inactive
    result: int
    freed = 0
    p: VmPage | None
    # PORT: the C's designated initializer leaves every other field zero (phys_addr 0)
    iter = VmPage(phys_addr=0, pg_flags=PQ_ITER)
    uobj: UvmObject | None
    pps: list[VmPage | None] = [None] * SWCLUSTPAGES
    ppsp: list[VmPage | None]
    npages: int
    swc = Swapcluster()
    slock: RWLock | None
    anon: VmAnon | None
    swap_backed: bool
    dirtyreacts: int
    uvmexp = k.uvmexp
    cost = k.config.costs.scan_page_ns

    # lines 579-586: no cluster open yet
    swapcluster_init(swc)
    dirtyreacts = 0
    p = None

    # lines 588-599: start at the first page inside the constraint; none, nothing to do
    for p in pglst:  # TAILQ_FOREACH(p, pglst, pageq)
        if uvmpd_match_constraint(p, constraint):
            break
    else:
        p = None

    if p is None:
        return 0

    # line 602: the marker follows the current page, so the scan can go on from where it
    # was after the page queues were unlocked
    pglst.insert_after(p, iter)
    for p in _uvmpd_for(k, pglst, p, iter):  # noqa: B020  (C reuses p as the loop variable)
        # lines 604-611: enough in flight (or in the open cluster) for what is still short,
        # or too many dirty pages sent back to the active queue
        if uvmexp.paging + swapcluster_nused(swc) >= (shortage - freed) or (
            dirtyreacts == UVMPD_NUMDIRTYREACTS
        ):
            break
        uvmexp.pdscans += 1
        k.sched.charge(cost)  # PORT: CPU time

        # lines 617-624: with no shortage left, only pages inside the constraint matter.
        # PORT: cannot be true here: the test above has just shown paging < shortage - freed
        # and nothing between raises paging (docs/pdaemon-1.154.md, N-I4).
        if uvmexp.paging >= (shortage - freed) and not uvmpd_match_constraint(p, constraint):
            continue

        anon = p.uanon
        uobj = p.uobject

        # lines 629-640: only try the owner's lock: we hold the page queues, which rank
        # after it; if someone holds it, leave the page for a later pass
        slock = uvmpd_trylockowner(p)
        if slock is None:
            continue

        # lines 642-653: used since it was deactivated: back to the active queue
        if k.pmap.pmap_is_referenced(p):
            uvm_unlock_pageq(k)
            uvm_page.uvm_pageactivate_154(k, p)
            rw_exit(slock)
            uvm_lock_pageq(k)
            uvmexp.pdreact += 1
            continue

        if p.pg_flags & PG_BUSY:
            rw_exit(slock)
            uvmexp.pdbusy += 1
            continue

        # lines 661-667
        if uobj is not None:
            uvmexp.pdobscan += 1
        else:
            assert anon is not None
            uvmexp.pdanscan += 1

        # lines 669-702: a clean page can be freed now
        if p.pg_flags & PG_CLEAN:
            if p.pg_flags & PQ_SWAPBACKED:
                # its data now exists only in swap
                uvmexp.swpgonly += 1

            k.pmap.pmap_page_protect(p, PROT_NONE)
            # line 682: off the queue while we hold its lock, so that freeing does not take
            # it again (the 2026 uvm_pageclean locks the page queues itself)
            if p.pg_flags & (PQ_ACTIVE | PQ_INACTIVE):
                uvm_pagedequeue(k, p)
            uvm_pagefree(k, p)
            freed += 1

            if anon is not None:
                # a clean anon page always has a copy in swap
                KASSERT(k, anon.an_swslot != 0)

                anon.an_page = None
            rw_exit(slock)
            continue

        # lines 704-711: dirty, and what is in flight covers the rest of the shortage.
        # PORT: cannot be true either (same reason as line 622; N-I10).
        if uvmexp.paging > (shortage - freed):
            rw_exit(slock)
            continue

        # lines 713-726: swap holds almost only data that is nowhere else: a dirty
        # swap-backed page cannot be written; send it back so the queues keep cycling
        if (p.pg_flags & PQ_SWAPBACKED) and uvm_swap.uvm_swapisfull_154(k):
            dirtyreacts += 1
            uvm_unlock_pageq(k)
            uvm_page.uvm_pageactivate_154(k, p)
            rw_exit(slock)
            uvm_lock_pageq(k)
            continue

        # lines 728-734: fewer free slots than a cluster: give up this page's slot so that
        # others can be written
        if (p.pg_flags & PQ_SWAPBACKED) and uvm_swap.uvm_swapisfilled(k):
            uvmpd_dropswap(k, p)

        # lines 736-748: the page must be written before it can be freed: make it busy and
        # read-only so nobody changes it during the write
        swap_backed = (p.pg_flags & PQ_SWAPBACKED) != 0
        p.pg_flags |= PG_BUSY  # atomic_setbits_int
        UVM_PAGE_OWN(p, "scan_inactive")
        k.pmap.pmap_page_protect(p, PROT_READ)
        uvmexp.pgswapout += 1

        # lines 750-786: a swap-backed page gets a new slot in the open cluster
        if swap_backed:
            # its old slot, if any, goes
            uvmpd_dropswap(k, p)

            # lines 758-768: no slot to be had: unbusy it and send it back
            if swapcluster_allocslots(k, swc):
                p.pg_flags &= ~PG_BUSY  # atomic_clearbits_int
                UVM_PAGE_OWN(p, None)
                dirtyreacts += 1
                uvm_unlock_pageq(k)
                uvm_page.uvm_pageactivate_154(k, p)
                rw_exit(slock)
                uvm_lock_pageq(k)
                continue

            # lines 770-780: its owner cannot record the slot: the same
            if swapcluster_add(k, swc, p):
                p.pg_flags &= ~PG_BUSY  # atomic_clearbits_int
                UVM_PAGE_OWN(p, None)
                dirtyreacts += 1
                uvm_unlock_pageq(k)
                uvm_page.uvm_pageactivate_154(k, p)
                rw_exit(slock)
                uvm_lock_pageq(k)
                continue
            rw_exit(slock)

            # lines 783-785: room left in the cluster: look for more pages first
            if swc.swc_nused < swc.swc_nallocated:
                continue

        # lines 788-820: write now: a full swap cluster, or an object page (its pager
        # builds the cluster around it)
        uvmexp.pdpageouts += 1  # PORT: counted again in swapcluster_flush (line 465), as upstream
        if swap_backed:
            uvm_unlock_pageq(k)
            npages = swc.swc_nused
            result = await swapcluster_flush(k, swc)
        else:
            ppsp = pps
            npages = len(pps)  # nitems(pps)
            assert uobj is not None

            # lines 807-816: the pager clusters around p and, with PGO_PDFREECLUST, unbusies
            # every page of the cluster itself when it returns (cleaned after a good write),
            # so the daemon never comes back to p; it returns with the page queues unlocked.
            # PORT: uvm_pager_put_154 is that pager as far as it could be inferred (the
            # uvm_pager.c of the commit was not read; docs/pdaemon-1.154.md §4 K12)
            result, ppsp, npages = await uvm_pager.uvm_pager_put_154(
                k,
                uobj,
                p,
                ppsp,
                npages,
                uvm_pager.PGO_ALLPAGES | uvm_pager.PGO_PDFREECLUST,
                0,
                0,
            )
            uvmpd_pass.log_pageout(k, False, 0, npages, result)  # PORT: one line per pageout
            rw_exit(slock)

        # lines 822-826
        uvm_lock_pageq(k)
        if result == uvm_pager.VM_PAGER_PEND:
            uvmexp.paging += npages  # atomic_add_int
            uvmexp.pdpending += 1
    pglst.remove(iter)

    # lines 830-840: write what is left in the open cluster
    if swc.swc_slot > 0:
        uvm_unlock_pageq(k)
        npages = swc.swc_nused
        result = await swapcluster_flush(k, swc)
        uvm_lock_pageq(k)
        if result == uvm_pager.VM_PAGER_PEND:
            uvmexp.paging += npages  # atomic_add_int
            uvmexp.pdpending += 1

    return freed


async def uvmpd_scan(
    k: Kernel, constraint: UvmConstraintRange, shortage: int, inactive_shortage: int
) -> None:
    """uvmpd_scan: work on the free target, then on the inactive target.

    => called with the page queues locked
    => the inactive scan frees pages for ``shortage``; then the active queue is walked to
       deactivate ``inactive_shortage`` pages (inside the constraint) and, when swap is
       nearly exhausted and nothing could be freed, to take slots away from active pages
    => may sleep

    Lines 851-954.
    """
    swap_shortage: int
    pages_freed: int
    pglst = k.uvm.page_active
    p: VmPage | None
    # PORT: the C's designated initializer leaves every other field zero (phys_addr 0)
    iter = VmPage(phys_addr=0, pg_flags=PQ_ITER)
    slock: RWLock | None
    uvmexp = k.uvmexp

    MUTEX_ASSERT_LOCKED(k.uvm.pageqlock)

    uvmexp.pdrevs += 1  # atomic_inc_int

    # lines 863-871: first the free target, from the inactive queue
    pages_freed = await uvmpd_scan_inactive(k, constraint, shortage)
    uvmexp.pdfreed += pages_freed  # atomic_add_int
    shortage -= pages_freed

    # lines 873-884: still short, nothing freed, and swap has fewer free slots than a
    # cluster while not everything in it is swap-only: take slots from active pages
    swap_shortage = 0
    if (
        (shortage > 0)
        and uvm_swap.uvm_swapisfilled(k)
        and not uvm_swap.uvm_swapisfull_154(k)
        and pages_freed == 0
    ):
        swap_shortage = shortage

    if (p := pglst.first()) is None:
        return

    # line 890: a marker, as in the inactive scan (deactivating drops the page queues)
    pglst.insert_after(p, iter)
    for p in _uvmpd_for(k, pglst, p, iter):  # noqa: B020  (C reuses p as the loop variable)
        if not (inactive_shortage > 0 or swap_shortage > 0):  # the for condition (line 891)
            break
        k.sched.charge(k.config.costs.scan_page_ns)  # PORT: CPU time
        if p.pg_flags & PG_BUSY:
            continue

        # lines 897-907: when deactivating for a constraint, leave the pages outside it
        # alone, unless swap slots are short (then any page's slot helps)
        if inactive_shortage > 0 and swap_shortage == 0 and not uvmpd_match_constraint(
            p, constraint
        ):
            continue

        # lines 909-915
        slock = uvmpd_trylockowner(p)
        if slock is None:
            continue

        # lines 917-923: busied by its owner in the meantime
        if (p.pg_flags & PG_BUSY) != 0:
            rw_exit(slock)
            continue

        # lines 925-934: swap is short: this page's slot goes, and its only copy is now in
        # memory, so it is dirty
        if swap_shortage > 0:
            if uvmpd_dropswap(k, p):
                p.pg_flags &= ~PG_CLEAN  # atomic_clearbits_int
                swap_shortage -= 1

        # lines 936-946: deactivate (the 2026 uvm_pagedeactivate unmaps the page itself)
        if inactive_shortage > 0:
            uvm_unlock_pageq(k)
            uvm_page.uvm_pagedeactivate_154(k, p)
            uvm_lock_pageq(k)
            uvmexp.pddeact += 1
            inactive_shortage -= 1

        # line 951
        rw_exit(slock)
    pglst.remove(iter)


async def uvmpd_drop(k: Kernel, pglst: TailQ[VmPage]) -> None:
    """uvmpd_drop: free the clean object pages of a paging queue (before hibernating).

    => anon pages, pages without an object and busy pages are left alone
    => takes each object's lock (may sleep) and checks the page is still clean
    => may sleep

    Port: compiled only with HIBERNATE upstream; here it refuses to run without the option.
    Unlike 1.105 it no longer takes the page queues around the free (the 2026 uvm_pageclean
    takes them itself; the kernel's needs no lock to dequeue).

    Lines 961-997.
    """
    if not k.config.hibernate:
        raise Panic("uvmpd_drop: kernel built without HIBERNATE")
    p: VmPage | None
    nextpg: VmPage | None

    nextpg = pglst.first()
    while (p := nextpg) is not None:  # for (...; p != NULL; p = nextpg)
        nextpg = pglst.next(p)

        if p.pg_flags & PQ_ANON or p.uobject is None:
            continue

        if p.pg_flags & PG_BUSY:
            continue

        if p.pg_flags & PG_CLEAN:
            uobj = p.uobject

            await rw_enter(k, uobj.vmobjlock, RW_WRITE)
            # lines 979-993: still clean now that the object is ours: free it
            if p.pg_flags & PG_CLEAN:
                if p.pg_flags & PQ_SWAPBACKED:
                    k.uvmexp.swpgonly += 1  # atomic_inc_int

                k.pmap.pmap_page_protect(p, PROT_NONE)
                uvm_pagefree(k, p)
            rw_exit(uobj.vmobjlock)


async def uvmpd_hibernate(k: Kernel) -> None:
    """uvmpd_hibernate: drop the clean object pages of both queues, inactive first.

    => may sleep

    Lines 999-1004.
    """
    await uvmpd_drop(k, k.uvm.page_inactive)
    await uvmpd_drop(k, k.uvm.page_active)


# --- port helpers ---


def _uvmpd_for(k: Kernel, pglst: TailQ[VmPage], p: VmPage, iter: VmPage) -> Iterator[VmPage]:
    """PORT: ``for (; p != NULL; p = uvmpd_iterator(pglst, p, &iter))``.

    Yields ``p``, then after the loop body (or a ``continue``) steps with uvmpd_iterator,
    with the page queues locked as the C's increment runs. A ``break`` leaves the marker
    where it is, as in C. The caller inserted the marker after ``p``.
    """
    cur: VmPage | None = p
    while cur is not None:
        yield cur
        cur = uvmpd_iterator(k, pglst, cur, iter)


def _drmbackoff(k: Kernel, npages: int) -> int:
    """PORT: drmbackoff(): no DRM device is emulated, so nothing is given back."""
    return 0
