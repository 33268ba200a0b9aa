# $OpenBSD: uvm_pdaemon.c,v 1.105 2022/09/10 20:35:29 miod Exp $
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

"""uvm_pdaemon.c: the page daemon

Port of OpenBSD sys/uvm/uvm_pdaemon.c,v 1.105 2022/09/10 20:35:29 miod
($NetBSD: uvm_pdaemon.c,v 1.23 2000/08/20 10:24:14 bjh21 Exp $).

A port of the C, under the copyright notices and conditions above (kept as the C has them).

Each function's docstring gives its line range in the seed. Read it side by side with the C.

Deviations (each marked ``# PORT:`` where it happens):
- Build options come from ``k.config``: ``DIAGNOSTIC`` (on in tests), ``DEBUG`` (off),
  ``__HAVE_PMAP_COLLECT`` (off, as on amd64), ``NDRM`` (0: drmbackoff is never called),
  ``HIBERNATE`` (uvmpd_drop / uvmpd_hibernate refuse to run unless it is set).
- C globals are reached through ``k`` (style C15); ``msleep_nsec`` and ``rw_enter`` are
  awaited, so every function that can reach them is ``async`` (style C6).
- The PG_RELEASED path after a failed pageout does not release the anon lock before
  ``uvm_anfree`` (fixed upstream in rev 1.134: the 1.105 code unlocks, then uvm_anfree
  asserts the lock is held, then the common exit unlocks it a second time), and it drops the
  one slot the pager left the page before ``uvm_anfree`` (otherwise swpgonly underflows;
  upstream's uvm_pager.c 1.94 no longer leaves that slot).
- C out-parameters are returned: ``uvm_swap_alloc`` returns ``(slot, nslots)`` and
  ``uvm_pager_put`` returns ``(result, ppsp, npages)``.
- The daemon charges virtual CPU time for each loop and each page it examines, and emits one
  structured log line per pass and per pageout cluster (style C18); printf()s become events.
- Where the C dereferences a pointer that Python types as optional, ``assert x is not None``
  (or ``cast``) narrows it: it fails where the C would fault on NULL, and changes no branch.
  ``uvmexp = k.uvmexp`` is a local in the longer functions so their bodies read as the C
  (``uvmexp.free``); other C globals are spelled through ``k``.
- Everything else, including the 4 x freetarg stop target and the comparison of a page number
  with byte addresses in the constraint check (reference §4.3, §4.5), is as the C does it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, cast

import structlog

import kernel.kern.vfs_bio as vfs_bio
import kernel.uvm.uvm_anon as uvm_anon
import kernel.uvm.uvm_aobj as uvm_aobj
import kernel.uvm.uvm_check as uvm_check
import kernel.uvm.uvm_glue as uvm_glue
import kernel.uvm.uvm_pager as uvm_pager
import kernel.uvm.uvm_swap as uvm_swap
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
    sched_pause,
    wakeup,
)
from kernel.sys.buf import B_PDAEMON, Buf
from kernel.sys.mman import PROT_NONE, PROT_READ
from kernel.sys.param import PAGE_SHIFT, atop
from kernel.sys.proc import curproc
from kernel.sys.queue import TailQ
from kernel.sys.systm import KASSERT, Panic
from kernel.uvm.uvm import UvmConstraintRange, dma_constraint, no_constraint
from kernel.uvm.uvm_page import (
    PG_BUSY,
    PG_CLEAN,
    PG_RELEASED,
    PG_WANTED,
    PQ_ANON,
    PQ_AOBJ,
    PQ_INACTIVE,
    PQ_SWAPBACKED,
    UVM_PAGE_OWN,
    VM_PAGE_TO_PHYS,
    VmPage,
    uvm_lock_fpageq,
    uvm_lock_pageq,
    uvm_pageactivate,
    uvm_pagedeactivate,
    uvm_pagefree,
    uvm_unlock_fpageq,
    uvm_unlock_pageq,
)
from kernel.uvm.uvm_pmemrange import UVM_PMA_BUSY, UVM_PMA_FREED, UVM_PMA_LINKED, UvmPmalloc

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.uvm.uvm_anon import VmAnon
    from kernel.uvm.uvm_object import UvmObject

log = structlog.get_logger("uvm.pdaemon")

TRUE: Final = True

# UVMPD_NUMDIRTYREACTS is how many dirty pages the pagedaemon will reactivate
# in a pass thru the inactive list when swap is full.  the value should be
# "small"... if it's too large we'll cycle the active pages thru the inactive
# queue too quickly to for them to be referenced and avoid being freed.

UVMPD_NUMDIRTYREACTS: Final = 16

SWCLUSTPAGES: Final = 16  # uvm_swap.h: MAXBSIZE >> PAGE_SHIFT


async def uvm_wait(k: Kernel, wmsg: str) -> None:
    """uvm_wait: wait (sleep) for the page daemon to free some pages

    => should be called with all locks released
    => should _not_ be called by the page daemon (to avoid deadlock)
    => may sleep

    Seed lines 118-163.
    """
    timo = INFSLP

    if k.config.diagnostic:  # ifdef DIAGNOSTIC
        if curproc() is k.proc0:
            raise Panic("uvm_wait: cannot sleep for memory during boot")

    # check for page daemon going to sleep (waiting for itself)
    if curproc() is k.uvm.pagedaemon_proc:
        log.warning("uvm_wait.emergency_bufbackoff")  # printf("uvm_wait emergency bufbackoff\n")
        if vfs_bio.bufbackoff(k, None, 4) == 0:
            return
        # now we have a problem: the pagedaemon wants to go to
        # sleep until it frees more memory.   but how can it
        # free more memory if it is asleep?  that is a deadlock.
        # we have two options:
        #  [1] panic now
        #  [2] put a timeout on the sleep, thus causing the
        #      pagedaemon to only pause (rather than sleep forever)
        #
        # note that option [2] will only help us if we get lucky
        # and some other process on the system breaks the deadlock
        # by exiting or freeing memory (thus allowing the pagedaemon
        # to continue).  for now we panic if DEBUG is defined,
        # otherwise we hope for the best with option [2] (better
        # yet, this should never happen in the first place!).

        log.error("pagedaemon.deadlock_detected")  # printf("pagedaemon: deadlock detected!\n")
        timo = MSEC_TO_NSEC(125)  # set timeout
        if k.config.debug:  # if defined(DEBUG)
            # DEBUG: panic so we can debug it
            raise Panic("pagedaemon deadlock")

    uvm_lock_fpageq(k)
    wakeup(k, chan(k.uvm, "pagedaemon"))  # wake the daemon!
    await msleep_nsec(k, chan(k.uvmexp, "free"), k.uvm.fpageqlock, PVM | PNORELOCK, wmsg, timo)


def uvmpd_tune(k: Kernel) -> None:
    """uvmpd_tune: tune paging parameters

    => called whenever memory is added to (or removed from?) the system
    => caller must call with page queues locked

    Seed lines 172-196.
    """
    uvmexp = k.uvmexp

    uvmexp.freemin = uvmexp.npages // 30

    # between 16k and 512k
    # XXX:  what are these values good for?
    uvmexp.freemin = max(uvmexp.freemin, (16 * 1024) >> PAGE_SHIFT)
    # if 0
    # uvmexp.freemin = min(uvmexp.freemin, (512*1024) >> PAGE_SHIFT);
    # endif

    # Make sure there's always a user page free.
    if uvmexp.freemin < uvmexp.reserve_kernel + 1:
        uvmexp.freemin = uvmexp.reserve_kernel + 1

    uvmexp.freetarg = (uvmexp.freemin * 4) // 3
    if uvmexp.freetarg <= uvmexp.freemin:
        uvmexp.freetarg = uvmexp.freemin + 1

    # uvmexp.inactarg: computed in main daemon loop

    uvmexp.wiredmax = uvmexp.npages // 3


# Indicate to the page daemon that a nowait call failed and it should
# recover at least some memory in the most restricted region (assumed
# to be dma_constraint).
#
# PORT: `volatile int uvm_nowait_failed;` lives in the Kernel record: k.uvm_nowait_failed.


async def uvm_pageout(k: Kernel) -> None:
    """uvm_pageout: the main loop for the pagedaemon

    => may sleep

    Port: started by init_main as the "pagedaemon" kernel thread; never returns.

    Seed lines 208-323.
    """
    constraint: UvmConstraintRange
    pma: UvmPmalloc | None
    npages = 0
    uvmexp = k.uvmexp
    pmr = k.uvm.pmr_control  # PORT: uvm.pmr_control, spelled once (an Optional until boot)
    assert pmr is not None

    # ensure correct priority and set paging parameters...
    k.uvm.pagedaemon_proc = curproc()
    # (void) spl0();  PORT: no interrupt priority levels
    uvm_lock_pageq(k)
    npages = uvmexp.npages
    uvmpd_tune(k)
    uvm_unlock_pageq(k)

    while True:  # for (;;)
        size: int

        uvm_lock_fpageq(k)
        if not k.uvm_nowait_failed and pmr.allocs.empty():
            await msleep_nsec(k, chan(k.uvm, "pagedaemon"), k.uvm.fpageqlock, PVM, "pgdaemon", INFSLP)
            uvmexp.pdwoke += 1
        snap = _pass_begin(k)  # PORT: per-pass log line

        if (pma := pmr.allocs.first()) is not None:
            pma.pm_flags |= UVM_PMA_BUSY
            constraint = copy.copy(pma.pm_constraint)  # a struct copy
        else:
            if k.uvm_nowait_failed:
                # XXX realisticly, this is what our
                # nowait callers probably care about
                constraint = dma_constraint()
                k.uvm_nowait_failed = 0
            else:
                constraint = no_constraint()

        uvm_unlock_fpageq(k)

        # now lock page queues and recompute inactive count
        uvm_lock_pageq(k)
        if npages != uvmexp.npages:  # check for new pages?
            npages = uvmexp.npages
            uvmpd_tune(k)

        uvmexp.inactarg = (uvmexp.active + uvmexp.inactive) // 3
        if uvmexp.inactarg <= uvmexp.freetarg:
            uvmexp.inactarg = uvmexp.freetarg + 1

        # Reclaim pages from the buffer cache if possible.
        size = 0
        if pma is not None:
            size += pma.pm_size >> PAGE_SHIFT
        if uvmexp.free - vfs_bio.BUFPAGES_DEFICIT(k) < uvmexp.freetarg:
            size += uvmexp.freetarg - (uvmexp.free - vfs_bio.BUFPAGES_DEFICIT(k))
        if size == 0:
            size = 16  # XXX
        uvm_unlock_pageq(k)
        vfs_bio.bufbackoff(k, constraint, size * 2)  # (void) bufbackoff(&constraint, size * 2);
        if k.config.ndrm > 0:  # if NDRM > 0
            _drmbackoff(k, size * 2)
        uvm_lock_pageq(k)

        # scan if needed
        if (
            pma is not None
            or ((uvmexp.free - vfs_bio.BUFPAGES_DEFICIT(k)) < uvmexp.freetarg)
            or ((uvmexp.inactive + vfs_bio.BUFPAGES_INACT(k)) < uvmexp.inactarg)
        ):
            await uvmpd_scan(k, pma)

        # if there's any free memory to be had,
        # wake up any waiters.
        uvm_lock_fpageq(k)
        if uvmexp.free > uvmexp.reserve_kernel or uvmexp.paging == 0:
            wakeup(k, chan(uvmexp, "free"))

        if pma is not None:
            # XXX If UVM_PMA_FREED isn't set, no pages
            # were freed.  Should we set UVM_PMA_FAIL in
            # that case?
            pma.pm_flags &= ~UVM_PMA_BUSY
            if pma.pm_flags & UVM_PMA_FREED:
                pma.pm_flags &= ~UVM_PMA_LINKED
                pmr.allocs.remove(pma)
                wakeup(k, pma)
        uvm_unlock_fpageq(k)

        # scan done.  unlock page queues (the only lock we are holding)
        uvm_unlock_pageq(k)

        _pass_end(k, snap, pma, constraint)  # PORT: log line, DIAGNOSTIC check, CPU time
        await sched_pause(k)  # sched_pause(yield);
    # NOTREACHED


async def uvm_aiodone_daemon(k: Kernel) -> None:
    """uvm_aiodone_daemon:  main loop for the aiodone daemon.

    => may sleep

    Port: started by init_main as the "aiodoned" kernel thread; never returns.

    Seed lines 329-369.
    """
    free: int
    bp: Buf | None
    nbp: Buf | None

    k.uvm.aiodoned_proc = curproc()

    while True:  # for (;;)
        # Check for done aio structures. If we've got structures to
        # process, do so. Otherwise sleep while avoiding races.
        mtx_enter(k.uvm.aiodoned_lock)
        while (bp := k.uvm.aio_done.first()) is None:
            await msleep_nsec(
                k, chan(k.uvm, "aiodoned"), k.uvm.aiodoned_lock, PVM, "aiodoned", INFSLP
            )
        # Take the list for ourselves.
        k.uvm.aio_done.init()
        mtx_leave(k.uvm.aiodoned_lock)

        # process each i/o that's done.
        free = k.uvmexp.free
        nbufs = npages = 0  # PORT: for the log line
        while bp is not None:
            if bp.b_flags & B_PDAEMON:
                k.uvmexp.paging -= bp.b_bufsize >> PAGE_SHIFT
            nbp = bp.b_freelist.tqe_next  # TAILQ_NEXT(bp, b_freelist)
            # PORT: s = splbio(); b_iodone must by called at splbio; splx(s): no spl levels
            bp.b_freelist.tqe_next = bp.b_freelist.tqe_prev = None  # PORT: unlink (TAILQ_INIT)
            bp.b_freelist.tqe_head = None
            nbufs += 1  # PORT: counted before b_iodone, which may free bp
            npages += bp.b_bufsize >> PAGE_SHIFT
            assert bp.b_iodone is not None
            bp.b_iodone(bp)
            bp = nbp

            k.sched.charge(k.config.costs.aiodone_buf_ns)  # PORT: CPU time
            await sched_pause(k)  # sched_pause(yield);
        uvm_lock_fpageq(k)
        wakeup(
            k, chan(k.uvm, "pagedaemon") if free <= k.uvmexp.reserve_kernel else chan(k.uvmexp, "free")
        )
        uvm_unlock_fpageq(k)
        _aiodone_end(k, nbufs, npages, free)  # PORT: log line, DIAGNOSTIC check


def uvmpd_trylockowner(pg: VmPage) -> RWLock | None:
    """uvmpd_trylockowner: trylock the page's owner.

    => return the locked rwlock on success.  otherwise, return NULL.

    Seed lines 376-397.
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


def uvmpd_dropswap(k: Kernel, pg: VmPage) -> None:
    """uvmpd_dropswap: free any swap allocated to this page.

    => called with owner locked.

    Seed lines 405-416.
    """
    anon = cast("VmAnon", pg.uanon)  # a NULL pointer (None) unless PQ_ANON, as in C

    if (pg.pg_flags & PQ_ANON) and anon.an_swslot:
        uvm_swap.uvm_swap_free(k, anon.an_swslot, 1)
        anon.an_swslot = 0
    elif pg.pg_flags & PQ_AOBJ:
        assert pg.uobject is not None
        uvm_aobj.uao_dropswap(k, pg.uobject, pg.offset >> PAGE_SHIFT)


async def uvmpd_scan_inactive(k: Kernel, pma: UvmPmalloc | None, pglst: TailQ[VmPage]) -> None:
    """uvmpd_scan_inactive: scan an inactive list for pages to clean or free.

    => called with page queues locked
    => we work on meeting our free target by converting inactive pages
       into free pages.
    => we handle the building of swap-backed clusters
    => we return TRUE if we are exiting because we met our target
    => may sleep

    Port: the "we return TRUE" line is stale upstream; the C function returns nothing. It
    sleeps in uvm_pager_put (swap I/O set-up, synchronous vnode writes) and when it relocks
    the owner of a swap-backed page after its pageout.

    Seed lines 427-869.
    """
    free: int
    result: int
    p: VmPage | None
    nextpg: VmPage | None
    uobj: UvmObject | None
    pps: list[VmPage | None] = [None] * SWCLUSTPAGES
    ppsp: list[VmPage | None]
    npages: int
    swpps: list[VmPage | None] = [None] * SWCLUSTPAGES  # XXX: see below
    slock: RWLock | None = None
    swnpages: int
    swcpages: int  # XXX: see below
    swslot: int
    anon: VmAnon | None
    swap_backed: bool
    start: int
    dirtyreacts: int
    uvmexp = k.uvmexp
    cost = k.config.costs.scan_page_ns

    # swslot is non-zero if we are building a swap cluster.  we want
    # to stay in the loop while we have a page to scan or we have
    # a swap-cluster to build.
    swslot = 0
    swnpages = swcpages = 0
    dirtyreacts = 0
    p = None

    # Start with the first page on the list that fit in pma's ranges
    if pma is not None:
        paddr: int

        for p in pglst:  # TAILQ_FOREACH(p, pglst, pageq)
            paddr = atop(VM_PAGE_TO_PHYS(p))
            if paddr >= pma.pm_constraint.ucr_low and paddr < pma.pm_constraint.ucr_high:
                break
        else:
            p = None

    if p is None:
        p = pglst.first()
        pma = None

    # PORT: for (; p != NULL || swslot != 0; p = nextpg): `p := nextpg` is the increment,
    # run before every test, so `continue` behaves as in C.
    nextpg = p
    while (p := nextpg) is not None or swslot != 0:
        # note that p can be NULL iff we have traversed the whole
        # list and need to do one final swap-backed clustered pageout.
        uobj = None
        anon = None
        if p is not None:
            # see if we've met our target
            free = uvmexp.free - vfs_bio.BUFPAGES_DEFICIT(k)
            if (
                (pma is None or (pma.pm_flags & UVM_PMA_FREED))
                and (free + uvmexp.paging >= uvmexp.freetarg << 2)
            ) or dirtyreacts == UVMPD_NUMDIRTYREACTS:
                if swslot == 0:
                    # exit now if no swap-i/o pending
                    break

                # set p to null to signal final swap i/o
                p = None
                nextpg = None
        if p is not None:  # if (we have a new page to consider)
            # we are below target and have a new page to consider.
            uvmexp.pdscans += 1
            k.sched.charge(cost)  # PORT: CPU time
            nextpg = pglst.next(p)

            anon = p.uanon
            uobj = p.uobject

            # first we attempt to lock the object that this page
            # belongs to.  if our attempt fails we skip on to
            # the next page (no harm done).  it is important to
            # "try" locking the object as we are locking in the
            # wrong order (pageq -> object) and we don't want to
            # deadlock.
            slock = uvmpd_trylockowner(p)
            if slock is None:
                continue

            # move referenced pages back to active queue
            # and skip to next page.
            if k.pmap.pmap_is_referenced(p):
                uvm_pageactivate(k, p)
                rw_exit(slock)
                uvmexp.pdreact += 1
                continue

            if p.pg_flags & PG_BUSY:
                rw_exit(slock)
                uvmexp.pdbusy += 1
                continue

            # does the page belong to an object?
            if uobj is not None:
                uvmexp.pdobscan += 1
            else:
                assert anon is not None
                uvmexp.pdanscan += 1

            # we now have the page queues locked.
            # the page is not busy.   if the page is clean we
            # can free it now and continue.
            if p.pg_flags & PG_CLEAN:
                if p.pg_flags & PQ_SWAPBACKED:
                    # this page now lives only in swap
                    uvmexp.swpgonly += 1  # atomic_inc_int(&uvmexp.swpgonly);

                # zap all mappings with pmap_page_protect...
                k.pmap.pmap_page_protect(p, PROT_NONE)
                uvm_pagefree(k, p)
                uvmexp.pdfreed += 1

                if anon is not None:
                    # an anonymous page can only be clean
                    # if it has backing store assigned.

                    KASSERT(k, anon.an_swslot != 0)

                    # remove from object
                    anon.an_page = None
                rw_exit(slock)
                continue

            # this page is dirty, skip it if we'll have met our
            # free target when all the current pageouts complete.
            if (pma is None or (pma.pm_flags & UVM_PMA_FREED)) and (
                free + uvmexp.paging > uvmexp.freetarg << 2
            ):
                rw_exit(slock)
                continue

            # this page is dirty, but we can't page it out
            # since all pages in swap are only in swap.
            # reactivate it so that we eventually cycle
            # all pages thru the inactive queue.
            if (p.pg_flags & PQ_SWAPBACKED) and uvm_swap.uvm_swapisfull(k):
                dirtyreacts += 1
                uvm_pageactivate(k, p)
                rw_exit(slock)
                continue

            # if the page is swap-backed and dirty and swap space
            # is full, free any swap allocated to the page
            # so that other pages can be paged out.
            KASSERT(k, uvmexp.swpginuse <= uvmexp.swpages)
            if (p.pg_flags & PQ_SWAPBACKED) and uvmexp.swpginuse == uvmexp.swpages:
                uvmpd_dropswap(k, p)

            # the page we are looking at is dirty.   we must
            # clean it before it can be freed.  to do this we
            # first mark the page busy so that no one else will
            # touch the page.   we write protect all the mappings
            # of the page so that no one touches it while it is
            # in I/O.

            swap_backed = (p.pg_flags & PQ_SWAPBACKED) != 0
            p.pg_flags |= PG_BUSY  # atomic_setbits_int(&p->pg_flags, PG_BUSY);
            UVM_PAGE_OWN(p, "scan_inactive")
            k.pmap.pmap_page_protect(p, PROT_READ)
            uvmexp.pgswapout += 1

            # for swap-backed pages we need to (re)allocate
            # swap space.
            if swap_backed:
                # free old swap slot (if any)
                uvmpd_dropswap(k, p)

                # start new cluster (if necessary)
                if swslot == 0:
                    swnpages = SWCLUSTPAGES
                    swslot, swnpages = uvm_swap.uvm_swap_alloc(k, swnpages, TRUE)
                    if swslot == 0:
                        # no swap?  give up!
                        p.pg_flags &= ~PG_BUSY
                        UVM_PAGE_OWN(p, None)
                        rw_exit(slock)
                        continue
                    swcpages = 0  # cluster is empty

                # add block to cluster
                swpps[swcpages] = p
                if anon is not None:
                    anon.an_swslot = swslot + swcpages
                else:
                    assert uobj is not None
                    uvm_aobj.uao_set_swslot(k, uobj, p.offset >> PAGE_SHIFT, swslot + swcpages)
                swcpages += 1
        else:
            # if p == NULL we must be doing a last swap i/o
            swap_backed = TRUE

        # now consider doing the pageout.
        #
        # for swap-backed pages, we do the pageout if we have either
        # filled the cluster (in which case (swnpages == swcpages) or
        # run out of pages (p == NULL).
        #
        # for object pages, we always do the pageout.
        if swap_backed:
            if p is not None:  # if we just added a page to cluster
                assert slock is not None
                rw_exit(slock)

                # cluster not full yet?
                if swcpages < swnpages:
                    continue

            # starting I/O now... set up for it
            npages = swcpages
            ppsp = swpps
            # for swap-backed pages only
            start = swslot

            # if this is final pageout we could have a few
            # extra swap blocks
            if swcpages < swnpages:
                uvm_swap.uvm_swap_free(k, swslot + swcpages, (swnpages - swcpages))
        else:
            # normal object pageout
            ppsp = pps
            npages = len(pps)  # sizeof(pps) / sizeof(struct vm_page *)
            # not looked at because PGO_ALLPAGES is set
            start = 0

        # now do the pageout.
        #
        # for swap_backed pages we have already built the cluster.
        # for !swap_backed pages, uvm_pager_put will call the object's
        # "make put cluster" function to build a cluster on our behalf.
        #
        # we pass the PGO_PDFREECLUST flag to uvm_pager_put to instruct
        # it to free the cluster pages for us on a successful I/O (it
        # always does this for un-successful I/O requests).  this
        # allows us to do clustered pageout without having to deal
        # with cluster pages at this level.
        #
        # note locking semantics of uvm_pager_put with PGO_PDFREECLUST:
        #  IN: locked: page queues
        # OUT: locked:
        #     !locked: pageqs

        uvmexp.pdpageouts += 1
        result, ppsp, npages = await uvm_pager.uvm_pager_put(
            k,
            None if swap_backed else uobj,
            p,
            ppsp,
            npages,
            uvm_pager.PGO_ALLPAGES | uvm_pager.PGO_PDFREECLUST,
            start,
            0,
        )
        _log_pageout(k, swap_backed, start, npages, result)  # PORT: one line per cluster

        # if we did i/o to swap, zero swslot to indicate that we are
        # no longer building a swap-backed cluster.

        if swap_backed:
            swslot = 0  # done with this cluster

        # first, we check for VM_PAGER_PEND which means that the
        # async I/O is in progress and the async I/O done routine
        # will clean up after us.   in this case we move on to the
        # next page.
        #
        # there is a very remote chance that the pending async i/o can
        # finish _before_ we get here.   if that happens, our page "p"
        # may no longer be on the inactive queue.   so we verify this
        # when determining the next page (starting over at the head if
        # we've lost our inactive page).

        if result == uvm_pager.VM_PAGER_PEND:
            uvmexp.paging += npages
            uvm_lock_pageq(k)
            uvmexp.pdpending += 1
            if p is not None:
                if p.pg_flags & PQ_INACTIVE:
                    nextpg = pglst.next(p)
                else:
                    nextpg = pglst.first()
            else:
                nextpg = None
            continue

        # clean up "p" if we have one
        if p is not None:
            # the I/O request to "p" is done and uvm_pager_put
            # has freed any cluster pages it may have allocated
            # during I/O.  all that is left for us to do is
            # clean up page "p" (which is still PG_BUSY).
            #
            # our result could be one of the following:
            #   VM_PAGER_OK: successful pageout
            #
            #   VM_PAGER_AGAIN: tmp resource shortage, we skip
            #     to next page
            #   VM_PAGER_{FAIL,ERROR,BAD}: an error.   we
            #     "reactivate" page to get it out of the way (it
            #     will eventually drift back into the inactive
            #     queue for a retry).
            #   VM_PAGER_UNLOCK: should never see this as it is
            #     only valid for "get" operations

            # relock p's object: page queues not lock yet, so
            # no need for "try"

            assert slock is not None
            # !swap_backed case: already locked...
            if swap_backed:
                await rw_enter(k, slock, RW_WRITE)

            if k.config.diagnostic:  # ifdef DIAGNOSTIC
                if result == uvm_pager.VM_PAGER_UNLOCK:
                    raise Panic("pagedaemon: pageout returned invalid 'unlock' code")

            # handle PG_WANTED now
            if p.pg_flags & PG_WANTED:
                wakeup(k, p)

            p.pg_flags &= ~(PG_BUSY | PG_WANTED)
            UVM_PAGE_OWN(p, None)

            # released during I/O? Can only happen for anons
            if p.pg_flags & PG_RELEASED:
                assert anon is not None
                # remove page so we can get nextpg,
                # also zero out anon so we don't use
                # it after the free.
                anon.an_page = None
                p.uanon = None

                # PORT: 1.105 has rw_exit(anon->an_lock) here; uvm_anfree() then asserts the
                # lock is write-held (a DIAGNOSTIC panic) and the rw_exit(slock) below releases
                # it a second time. Fixed upstream in rev 1.134 by dropping this unlock; so here.
                # PORT: after AGAIN the pager left p exactly one slot (uvm_pager.c 1.89), so
                # with an_page cleared uvm_anfree takes the anon for one whose data lives only
                # in swap and decrements swpgonly, which never counted it (a KASSERT underflow,
                # or a silent drift). Upstream's uvm_pager.c 1.94 frees pg's slot on failure,
                # so the anon reaches here without one; drop it first to get the same state.
                uvm_anon.uvm_anon_dropswap(k, anon)
                uvm_anon.uvm_anfree(k, anon)  # kills anon
                k.pmap.pmap_page_protect(p, PROT_NONE)
                anon = None
                uvm_lock_pageq(k)
                nextpg = pglst.next(p)
                # free released page
                uvm_pagefree(k, p)
            else:  # page was not released during I/O
                uvm_lock_pageq(k)
                nextpg = pglst.next(p)
                if result != uvm_pager.VM_PAGER_OK:
                    # pageout was a failure...
                    if result != uvm_pager.VM_PAGER_AGAIN:
                        uvm_pageactivate(k, p)
                    k.pmap.pmap_clear_reference(p)
                    # XXXCDC: if (swap_backed) FREE p's
                    # swap block?
                else:
                    # pageout was a success...
                    k.pmap.pmap_clear_reference(p)
                    k.pmap.pmap_clear_modify(p)
                    p.pg_flags |= PG_CLEAN

            # drop object lock (if there is an object left).   do
            # a safety check of nextpg to make sure it is on the
            # inactive queue (it should be since PG_BUSY pages on
            # the inactive queue can't be re-queued [note: not
            # true for active queue]).
            rw_exit(slock)

            if nextpg is not None and (nextpg.pg_flags & PQ_INACTIVE) == 0:
                nextpg = pglst.first()  # reload!
        else:
            # if p is null in this loop, make sure it stays null
            # in the next loop.
            nextpg = None

            # lock page queues here just so they're always locked
            # at the end of the loop.
            uvm_lock_pageq(k)


async def uvmpd_scan(k: Kernel, pma: UvmPmalloc | None) -> None:
    """uvmpd_scan: scan the page queues and attempt to meet our targets.

    => called with pageq's locked
    => may sleep

    Seed lines 877-1000.
    """
    free: int
    inactive_shortage: int
    swap_shortage: int
    pages_freed: int
    p: VmPage | None
    nextpg: VmPage | None
    slock: RWLock | None
    uvmexp = k.uvmexp

    MUTEX_ASSERT_LOCKED(k.uvm.pageqlock)

    uvmexp.pdrevs += 1  # counter

    # get current "free" page count
    free = uvmexp.free - vfs_bio.BUFPAGES_DEFICIT(k)

    if k.config.have_pmap_collect:  # ifdef __HAVE_PMAP_COLLECT
        # swap out some processes if we are below our free target.
        # we need to unlock the page queues for this.
        if free < uvmexp.freetarg:
            uvmexp.pdswout += 1
            uvm_unlock_pageq(k)
            uvm_glue.uvm_swapout_threads(k)
            uvm_lock_pageq(k)

    # now we want to work on meeting our targets.   first we work on our
    # free target by converting inactive pages into free pages.  then
    # we work on meeting our inactive target by converting active pages
    # to inactive ones.

    pages_freed = uvmexp.pdfreed
    await uvmpd_scan_inactive(k, pma, k.uvm.page_inactive)
    pages_freed = uvmexp.pdfreed - pages_freed

    # we have done the scan to get free pages.   now we work on meeting
    # our inactive target.
    inactive_shortage = uvmexp.inactarg - uvmexp.inactive - vfs_bio.BUFPAGES_INACT(k)

    # detect if we're not going to be able to page anything out
    # until we free some swap resources from active pages.
    free = uvmexp.free - vfs_bio.BUFPAGES_DEFICIT(k)
    swap_shortage = 0
    if (
        free < uvmexp.freetarg
        and uvmexp.swpginuse == uvmexp.swpages
        and not uvm_swap.uvm_swapisfull(k)
        and pages_freed == 0
    ):
        swap_shortage = uvmexp.freetarg - free

    # PORT: for (p = TAILQ_FIRST(..); p != NULL && (..); p = nextpg): `p := nextpg` is the
    # increment, run before every test.
    nextpg = k.uvm.page_active.first()
    while (p := nextpg) is not None and (inactive_shortage > 0 or swap_shortage > 0):
        nextpg = k.uvm.page_active.next(p)
        k.sched.charge(k.config.costs.scan_page_ns)  # PORT: CPU time
        if p.pg_flags & PG_BUSY:
            continue

        # lock the page's owner.
        slock = uvmpd_trylockowner(p)
        if slock is None:
            continue

        # skip this page if it's busy.
        if (p.pg_flags & PG_BUSY) != 0:
            rw_exit(slock)
            continue

        # if there's a shortage of swap, free any swap allocated
        # to this page so that other pages can be paged out.
        if swap_shortage > 0:
            if (p.pg_flags & PQ_ANON) and cast("VmAnon", p.uanon).an_swslot:
                uvm_swap.uvm_swap_free(k, cast("VmAnon", p.uanon).an_swslot, 1)
                cast("VmAnon", p.uanon).an_swslot = 0
                p.pg_flags &= ~PG_CLEAN
                swap_shortage -= 1
            if p.pg_flags & PQ_AOBJ:
                assert p.uobject is not None
                slot = uvm_aobj.uao_set_swslot(k, p.uobject, p.offset >> PAGE_SHIFT, 0)
                if slot:
                    uvm_swap.uvm_swap_free(k, slot, 1)
                    p.pg_flags &= ~PG_CLEAN
                    swap_shortage -= 1

        # deactivate this page if there's a shortage of
        # inactive pages.
        if inactive_shortage > 0:
            k.pmap.pmap_page_protect(p, PROT_NONE)
            # no need to check wire_count as pg is "active"
            uvm_pagedeactivate(k, p)
            uvmexp.pddeact += 1
            inactive_shortage -= 1

        # we're done with this page.
        rw_exit(slock)


async def uvmpd_drop(k: Kernel, pglst: TailQ[VmPage]) -> None:
    """uvmpd_drop: drop clean pages from list

    => may sleep

    Port: compiled only with HIBERNATE upstream; here it refuses to run without the option.

    Seed lines 1007-1045.
    """
    if not k.config.hibernate:
        raise Panic("uvmpd_drop: kernel built without HIBERNATE")
    p: VmPage | None
    nextpg: VmPage | None

    nextpg = pglst.first()
    while (p := nextpg) is not None:
        nextpg = pglst.next(p)

        if p.pg_flags & PQ_ANON or p.uobject is None:
            continue

        if p.pg_flags & PG_BUSY:
            continue

        if p.pg_flags & PG_CLEAN:
            uobj = p.uobject

            await rw_enter(k, uobj.vmobjlock, RW_WRITE)
            uvm_lock_pageq(k)
            # we now have the page queues locked.
            # the page is not busy.   if the page is clean we
            # can free it now and continue.
            if p.pg_flags & PG_CLEAN:
                if p.pg_flags & PQ_SWAPBACKED:
                    # this page now lives only in swap
                    k.uvmexp.swpgonly += 1  # atomic_inc_int(&uvmexp.swpgonly);

                # zap all mappings with pmap_page_protect...
                k.pmap.pmap_page_protect(p, PROT_NONE)
                uvm_pagefree(k, p)
            uvm_unlock_pageq(k)
            rw_exit(uobj.vmobjlock)


async def uvmpd_hibernate(k: Kernel) -> None:
    """uvmpd_hibernate

    => may sleep

    Port: the C has no header comment here; it drops the clean object pages of both queues.

    Seed lines 1047-1052.
    """
    await uvmpd_drop(k, k.uvm.page_inactive)
    await uvmpd_drop(k, k.uvm.page_active)


# --- port helpers ---


def _drmbackoff(k: Kernel, npages: int) -> None:
    """PORT: drmbackoff(): no DRM device is emulated, so there are no caches to drop."""


@dataclass(slots=True)
class _PassSnap:
    """PORT: counters at the start of a daemon pass, for its canonical log line."""

    t_ns: int
    counters: dict[str, int]
    start: dict[str, int]
    clusters: list[int] = field(default_factory=list)


_PASS_COUNTERS: Final = (
    "pdrevs", "pdscans", "pdreact", "pdbusy", "pdfreed", "pdpageouts", "pdpending",
    "pddeact", "pdanscan", "pdobscan", "pgswapout", "pdswout",
)  # fmt: skip


def _pass_begin(k: Kernel) -> _PassSnap:
    u = k.uvmexp
    snap = _PassSnap(
        k.sched.now,
        {c: getattr(u, c) for c in _PASS_COUNTERS},
        {"free_start": u.free, "inactive_start": u.inactive, "active_start": u.active,
         "paging_start": u.paging},
    )  # fmt: skip
    k.pdpass = snap
    return snap


def _log_pageout(k: Kernel, swap_backed: bool, start: int, npages: int, result: int) -> None:
    snap = k.pdpass
    if snap is not None:
        snap.clusters.append(npages)
    log.info(
        "uvmpd_scan_inactive.pageout",
        swap=swap_backed,
        swslot=start if swap_backed else 0,
        npages=npages,
        result=_pager_result_name(result),
        paging=k.uvmexp.paging,
    )


def _pager_result_name(result: int) -> str:
    return uvm_pager.VmPagerStatus(result).name.removeprefix("VM_PAGER_")


def _pass_end(k: Kernel, snap: _PassSnap, pma: UvmPmalloc | None, constraint: UvmConstraintRange) -> None:
    u = k.uvmexp
    delta = {c: getattr(u, c) - v for c, v in snap.counters.items()}
    k.pdpass = None
    k.sched.charge(k.config.costs.pass_ns)
    log.info(
        "uvm_pageout.pass",
        scanned=delta["pdrevs"] > 0,
        pma=pma is not None,
        constraint_high=constraint.ucr_high if constraint.ucr_high < (1 << 63) else -1,
        free=u.free,
        inactive=u.inactive,
        active=u.active,
        paging=u.paging,
        freetarg=u.freetarg,
        inactarg=u.inactarg,
        clusters=snap.clusters,
        **snap.start,
        **delta,
    )
    hook = k.hooks.get("pdaemon.pass")
    if hook is not None:
        hook(k, delta, snap.clusters)
    if k.config.diagnostic and k.config.check_every_pass:
        uvm_check.uvm_check_pass(k)


def _aiodone_end(k: Kernel, nbufs: int, npages: int, free: int) -> None:
    log.info(
        "uvm_aiodone_daemon.batch", nbufs=nbufs, npages=npages, free_sampled=free,
        woke="pagedaemon" if free <= k.uvmexp.reserve_kernel else "free",
        paging=k.uvmexp.paging,
    )  # fmt: skip
    if k.config.diagnostic and k.config.check_every_pass:
        uvm_check.uvm_check_pass(k)
