"""uvm_pmemrange.c: physical memory ranges: the free page allocator.

Port of the behaviour of OpenBSD sys/uvm/uvm_pmemrange.c,v 1.63 and uvm_pmemrange.h,v 1.14
that the page daemon depends on (reference §1.5): the wake-up and reserve rules of
``uvm_pmr_getpages``, the request list ``pmr_control.allocs`` with ``UVM_PMA_*`` flags,
``uvm_wait_pla``, ``uvm_wakeup_pla`` on every free, and ``uvm_nowait_failed``.

Deviations:
- The free memory is not kept in per-range red-black trees of segments. Free frames are a
  bitmap (one byte per frame) plus a LIFO stack of frame numbers: unconstrained requests pop
  the stack (most recently freed first, as a free list does); constrained requests search the
  bitmap inside the range. Stack entries left stale by a constrained allocation are skipped
  when popped. Only single pages and runs found in the bitmap are handed out; ``align``,
  ``boundary`` and ``maxseg`` are honoured for count == 1 only (the only case the UVM around
  the daemon uses).
- ``uvm_pmr_getpages`` sleeps when called with UVM_PLA_WAITOK, so it is a coroutine;
  ``uvm_pmr_getpages_nowait`` is the same function for UVM_PLA_NOWAIT callers that must not
  sleep (``uvm_pagealloc``), split because one Python function cannot be both (style C6).
- ``uvm_wait`` is called as ``await k.pdaemon.uvm_wait(k, wmsg)``: the page daemon is a
  module chosen at boot (uvm_extern.py), which this module does not import.
- Under the 1.154 daemon (which sets ``k.nowait_pma``) a failed UVM_PLA_NOWAIT search queues
  that request at the head of ``allocs`` as uvm_pmemrange.c 1.82 does, instead of raising
  ``uvm_nowait_failed``; ``uvm_pmr_cache_drain`` is 1.82's uniprocessor stand-in.
"""

from __future__ import annotations

import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import numpy as np

import kernel.kern.vfs_bio as vfs_bio
import kernel.uvm.uvm_page as uvm_page
from kernel.kern.kern_synch import (
    MSEC_TO_NSEC,
    PVM,
    chan,
    msleep_nsec,
    mtx_enter,
    mtx_leave,
    wakeup,
)
from kernel.sys.errno import ENOMEM
from kernel.sys.param import PAGE_SHIFT, atop, ptoa, wrap_paddr
from kernel.sys.proc import curproc
from kernel.sys.queue import TailQ, TailQEntry
from kernel.sys.systm import KASSERTMSG, Panic
from kernel.uvm.uvm import UvmConstraintRange

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.uvm.uvm_page import VmPage

# uvm_pmr_getpages flags (uvm_extern.h)
UVM_PLA_WAITOK: Final = 0x0001  # may sleep
UVM_PLA_NOWAIT: Final = 0x0002  # can't sleep (need one of the two)
UVM_PLA_ZERO: Final = 0x0004  # zero all pages before returning
UVM_PLA_TRYCONTIG: Final = 0x0008  # try to allocate contig physmem
UVM_PLA_FAILOK: Final = 0x0010  # caller can handle failure
UVM_PLA_NOWAKE: Final = 0x0020  # don't wake page daemon on failure
UVM_PLA_USERESERVE: Final = 0x0040  # can allocate from kernel reserve

# uvm_pmalloc flags
UVM_PMA_LINKED: Final = 0x01  # uvm_pmalloc is on list
UVM_PMA_BUSY: Final = 0x02  # entry is busy with fpageq unlocked
UVM_PMA_FAIL: Final = 0x10  # page daemon cannot free pages
UVM_PMA_FREED: Final = 0x20  # at least one page in the range was freed


@dataclass(eq=False, slots=True)
class UvmPmalloc:
    """struct uvm_pmalloc: a constrained allocation the page daemon should help with."""

    pm_constraint: UvmConstraintRange
    pm_size: int  # bytes
    pm_flags: int = 0
    pmq: TailQEntry[UvmPmalloc] = field(default_factory=TailQEntry)


@dataclass(eq=False, slots=True)
class UvmPmrControl:
    """struct uvm_pmr_control (the parts kept) plus the port's free-frame store."""

    allocs: TailQ[UvmPmalloc] = field(default_factory=lambda: TailQ("pmq", "pmr_control.allocs"))
    npages: int = 0
    # PORT: the free-frame store: free_bits is a numpy view of free_bitsb (one byte per
    # frame, 1 = free; bytearray items cost a third of numpy scalars on the per-page path),
    # free_stack a C array of frame numbers used as a stack
    free_bitsb: bytearray = field(default_factory=bytearray)
    free_bits: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))
    free_stack: array.array[int] = field(default_factory=lambda: array.array("q"))


def uvm_pmr_init(k: Kernel, npages: int, first_free: int = 0) -> None:
    """uvm_pmr_init: all frames from ``first_free`` on start out free."""
    pmr = UvmPmrControl(npages=npages)
    pmr.free_bitsb = bytearray(npages)
    pmr.free_bits = np.frombuffer(pmr.free_bitsb, np.uint8)  # the same bytes
    pmr.free_bits[first_free:] = 1
    n = npages - first_free
    # popped from the top: lowest frames first
    pmr.free_stack = array.array("q", np.arange(npages - 1, first_free - 1, -1, dtype=np.int64).tobytes())
    k.uvm.pmr_control = pmr
    k.uvmexp.free = n


def _pmr(k: Kernel) -> UvmPmrControl:
    pmr = k.uvm.pmr_control
    assert pmr is not None
    return pmr


def _pmr_take(k: Kernel, count: int, start: int, end: int, result: list[VmPage]) -> bool:
    """PORT: find ``count`` free frames in [start, end) (page numbers; 0/0 = anywhere)."""
    pmr = _pmr(k)
    bits = pmr.free_bitsb
    frames: list[int] = []
    if start == 0 and end == 0:
        stack = pmr.free_stack
        while len(frames) < count and stack:
            f = stack.pop()
            if bits[f]:
                bits[f] = 0
                frames.append(f)
    else:
        hi = min(end if end else pmr.npages, pmr.npages)
        cand = np.flatnonzero(pmr.free_bits[start:hi])[:count]
        if len(cand) == count:
            for c in cand.tolist():
                f = start + c
                bits[f] = 0
                frames.append(f)
    if len(frames) < count:
        for f in frames:  # give back a partial find
            _pmr_put(pmr, f)
        return False
    for f in frames:
        pg = uvm_page.PHYS_TO_VM_PAGE(k, f << PAGE_SHIFT)
        result.append(pg)
    return True


def _pmr_put(pmr: UvmPmrControl, f: int) -> None:
    bits = pmr.free_bitsb
    if bits[f]:
        raise Panic(f"uvm_pmr_freepages: frame {f:#x} already free")
    bits[f] = 1
    pmr.free_stack.append(f)


def uvm_pmr_getpages_nowait(
    k: Kernel,
    count: int,
    start: int,
    end: int,
    align: int,
    boundary: int,
    maxseg: int,
    flags: int,
    result: list[VmPage],
) -> int:
    """uvm_pmr_getpages with UVM_PLA_NOWAIT: allocate ``count`` pages or return ENOMEM.

    => start/end are page numbers; 0/0 means no constraint
    => never sleeps (see the module docstring)
    """
    KASSERTMSG(k, not (flags & UVM_PLA_WAITOK), "uvm_pmr_getpages_nowait: WAITOK")
    r = _uvm_pmr_getpages_try(k, count, start, end, flags, result)
    return 0 if r == 0 else int(ENOMEM)


async def uvm_pmr_getpages(
    k: Kernel,
    count: int,
    start: int,
    end: int,
    align: int,
    boundary: int,
    maxseg: int,
    flags: int,
    result: list[VmPage],
) -> int:
    """uvm_pmr_getpages: acquire a list of physical pages.

    => with UVM_PLA_WAITOK sleeps in uvm_wait / uvm_wait_pla until it succeeds (or FAILOK),
       except below the kernel reserve without UVM_PLA_USERESERVE: ENOMEM at once
    => may sleep
    """
    KASSERTMSG(k, (flags & UVM_PLA_WAITOK) or (flags & UVM_PLA_NOWAIT),
               "uvm_pmr_getpages: no wait flag")
    while True:  # retry:
        r = _uvm_pmr_getpages_try(k, count, start, end, flags, result)
        if r == 0:
            return 0
        if not (flags & UVM_PLA_WAITOK):
            return int(ENOMEM)
        if r == _WAIT_RESERVE:
            await k.pdaemon.uvm_wait(k, "uvm_pmr_getpages")
            continue
        if r == _WAIT_SEARCH:
            diag = await uvm_wait_pla(
                k,
                ptoa(start),
                wrap_paddr(ptoa(end) - 1),  # end 0: all-ones (paddr_t is unsigned)
                ptoa(count),
                bool(flags & UVM_PLA_FAILOK),
            )
            if diag != 0:
                return diag
            continue
        return int(ENOMEM)


_FAIL: Final = 1
_WAIT_RESERVE: Final = 2
_WAIT_SEARCH: Final = 3


def _uvm_pmr_getpages_try(
    k: Kernel, count: int, start: int, end: int, flags: int, result: list[VmPage]
) -> int:
    """PORT: one pass of uvm_pmr_getpages from ``retry:``; 0 or why it failed."""
    uvmexp = k.uvmexp
    mtx_enter(k.uvm.fpageqlock)
    # check to see if we need to generate some free pages waking
    # the pagedaemon.
    if (uvmexp.free - vfs_bio.BUFPAGES_DEFICIT(k) < uvmexp.freemin) or (
        (uvmexp.free - vfs_bio.BUFPAGES_DEFICIT(k) < uvmexp.freetarg)
        and (uvmexp.inactive + vfs_bio.BUFPAGES_INACT(k) < uvmexp.inactarg)
    ):
        wakeup(k, chan(k.uvm, "pagedaemon"))

    # fail if any of these conditions is true:
    # [1]  there really are no free pages, or
    # [2]  only kernel "reserved" pages remain and
    #        the UVM_PLA_USERESERVE flag wasn't used.
    # [3]  only pagedaemon "reserved" pages remain and
    #        the requestor isn't the pagedaemon nor the syncer.
    if (uvmexp.free <= uvmexp.reserve_kernel + count) and not (flags & UVM_PLA_USERESERVE):
        mtx_leave(k.uvm.fpageqlock)
        return _FAIL
    p = curproc()
    if (
        (uvmexp.free <= uvmexp.reserve_pagedaemon + count)
        and (p is None or p is not k.uvm.pagedaemon_proc)
        and (p is None or p is not k.syncerproc)
    ):
        mtx_leave(k.uvm.fpageqlock)
        return _WAIT_RESERVE if (flags & UVM_PLA_WAITOK) else _FAIL

    if _pmr_take(k, count, start, end, result):
        uvmexp.free -= count
        for pg in result[-count:]:
            if (flags & UVM_PLA_ZERO) and not (pg.pg_flags & uvm_page.PG_ZERO):
                k.pmap.pmap_zero_page(pg)
                uvmexp.pga_zeromiss += 1
            elif flags & UVM_PLA_ZERO:
                uvmexp.pga_zerohit += 1
            pg.pg_flags &= ~(uvm_page.PQ_FREE | uvm_page.PG_ZERO)
            pg.uobject = None
            pg.uanon = None
            pg.offset = 0
        mtx_leave(k.uvm.fpageqlock)
        return 0

    # search failed
    if not (flags & UVM_PLA_WAITOK) and not (flags & UVM_PLA_NOWAKE):
        pma = k.nowait_pma
        if pma is None:
            k.uvm_nowait_failed = 1
            wakeup(k, chan(k.uvm, "pagedaemon"))
        elif not (pma.pm_flags & UVM_PMA_LINKED):
            # PORT: the 1.154 daemon's allocator (uvm_pmemrange.c 1.82): its nowait request
            # goes first in the list, so it is not starved behind unconstrained requests
            pma.pm_flags = UVM_PMA_LINKED
            _pmr(k).allocs.insert_head(pma)
            wakeup(k, chan(k.uvm, "pagedaemon"))
    mtx_leave(k.uvm.fpageqlock)
    return _WAIT_SEARCH if (flags & UVM_PLA_WAITOK) else _FAIL


def uvm_pmr_freepages(k: Kernel, pg: VmPage, count: int) -> None:
    """uvm_pmr_freepages: free ``count`` physically consecutive pages starting at ``pg``.

    => wakes &uvmexp.free on every call, and the allocation requests whose range it touches
    """
    pmr = _pmr(k)
    mtx_enter(k.uvm.fpageqlock)
    f0 = pg.phys_addr >> PAGE_SHIFT
    for i in range(count):
        p = uvm_page.PHYS_TO_VM_PAGE(k, (f0 + i) << PAGE_SHIFT)
        p.pg_flags = (p.pg_flags | uvm_page.PQ_FREE) & ~uvm_page.PG_ZERO
        p.pg_version += 1
        _pmr_put(pmr, f0 + i)
    k.uvmexp.free += count
    wakeup(k, chan(k.uvmexp, "free"))
    uvm_wakeup_pla(k, uvm_page.VM_PAGE_TO_PHYS(pg), ptoa(count))
    mtx_leave(k.uvm.fpageqlock)


def uvm_pmr_freepageq(k: Kernel, pgl: list[VmPage]) -> None:
    """uvm_pmr_freepageq: free a list of pages (each one like uvm_pmr_freepages(pg, 1))."""
    for pg in pgl:
        uvm_pmr_freepages(k, pg, 1)


def uvm_pmr_cache_drain(k: Kernel) -> int:
    """uvm_pmr_cache_drain: give the current CPU's cached free pages back to the allocator;
    returns how many.

    Port: the per-CPU page caches (MULTIPROCESSOR and __HAVE_UVM_PERCPU, uvm_pmemrange.c
    1.82) are not modelled, so this is the uniprocessor form: nothing is cached, 0. Only the
    1.154 page daemon calls it.
    """
    return 0


def uvm_wakeup_pla(k: Kernel, low: int, len_: int) -> None:
    """uvm_wakeup_pla: wake the allocation requests whose byte range overlaps [low, low+len).

    => called with fpageqlock held
    """
    high = low + len_
    allocs = _pmr(k).allocs
    pma = allocs.first()
    while pma is not None:
        pma_next = allocs.next(pma)
        if low < pma.pm_constraint.ucr_high and high > pma.pm_constraint.ucr_low:
            pma.pm_flags |= UVM_PMA_FREED
            if not (pma.pm_flags & UVM_PMA_BUSY):
                pma.pm_flags &= ~UVM_PMA_LINKED
                allocs.remove(pma)
                wakeup(k, pma)
        pma = pma_next


async def uvm_wait_pla(k: Kernel, low: int, high: int, size: int, failok: bool) -> int:
    """uvm_wait_pla: ask the page daemon for pages in [low, high] (bytes) and sleep.

    => returns 0 when the caller should retry, ENOMEM when failok and the daemon gave up
    => may sleep
    """
    pma = UvmPmalloc(UvmConstraintRange(low, high), size)
    p = curproc()
    if p is not None and p is k.uvm.pagedaemon_proc:
        # This is not that uncommon when the pagedaemon is trying
        # to flush out a large mmapped file. VOP_WRITE will circle
        # back through the buffer cache and try to get more memory.
        # The pagedaemon starts by calling bufbackoff, but we can
        # easily use up that reserve in a single scan iteration.
        if vfs_bio.bufbackoff(k, None, atop(size)) == 0:
            return 0
        # pagedaemon: wait_pla deadlock detected!
        await msleep_nsec(
            k, chan(k.uvmexp, "free"), None, PVM, "wait_pla", MSEC_TO_NSEC(125)
        )
        return 0
    mtx_enter(k.uvm.fpageqlock)
    while True:  # retry:
        pma.pm_flags = UVM_PMA_LINKED
        _pmr(k).allocs.insert_tail(pma)
        wakeup(k, chan(k.uvm, "pagedaemon"))  # wake that daemon!
        while pma.pm_flags & (UVM_PMA_LINKED | UVM_PMA_BUSY):
            await msleep_nsec(k, pma, k.uvm.fpageqlock, PVM, "bufwait", 0xFFFFFFFFFFFFFFFF)
        if (pma.pm_flags & UVM_PMA_FAIL) and not (pma.pm_flags & UVM_PMA_FREED):
            if failok:
                mtx_leave(k.uvm.fpageqlock)
                return int(ENOMEM)
            # "pagedaemon: wait_pla deadlock detected!" : retry
            continue
        break
    mtx_leave(k.uvm.fpageqlock)
    return 0

