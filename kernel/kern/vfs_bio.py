"""vfs_bio.c: the buffer cache, as far as the page daemon sees it, and buffer I/O completion.

Port of the sizing and back-off behaviour of OpenBSD sys/kern/vfs_bio.c,v 1.212 (bufinit,
bufadjust, bufbackoff), the BUFPAGES_* macros of sys/sys/buf.h (reference §1.12), and the
I/O side the UVM uses: ``biowait``, ``biodone`` and the pool of struct bufs (``bufpool``).

The buffer cache is a *model*: no file system reads or writes through it. What the daemon can
observe is kept exactly: the cache holds real pages taken from the allocator at boot (so they
really occupy RAM and really come back to the free lists when the cache shrinks), the counters
``bcstats.numbufpages`` / ``numcleanpages``, the floor ``buflowpages``, the target
``bufpages`` and the ceiling ``bufhighpages``.

Deviations (PORT):
- No buffers, no vnodes, no cleaner: every cached page is clean, so
  ``numcleanpages == numbufpages``. ``bufbackoff`` frees clean pages at once (upstream frees
  clean buffers the same way; dirty ones would wait for the cleaner).
- There is no high (above-DMA) cache: the emulated machine's memory is DMA-reachable up to
  4 GiB and the high-memory flipper is not modelled, so a constraint range that lies above the
  DMA limit gets -1 and one that reaches above it is treated like an unconstrained request.
- BCACHE_MIN (128 pages upstream) is scaled down on tiny machines: at most npages/32, so a
  256-page machine has a floor of 12 pages (5 %), not half its memory. Machines of 16 MiB
  and more see the upstream value.
- The cache is off (``k.bufcache is None``) when ``KernelConfig.bufcachepercent`` is 0: then
  both macros are 0 and ``bufbackoff`` fails, as the reference suggests for a machine without
  a buffer cache. The kernel test fixture boots with the cache off by default so free-page
  counts in tiny tests are exact; the machine's default config has it on.
- Upstream climbs back to ``bufhighpages`` as buffers are requested; with no file I/O here,
  :func:`buf_refill` models that demand (tests and scenarios call it).
- ``biodone`` calls ``b_iodone`` for B_CALL bufs only, as upstream, but neither wakes a
  synchronous waiter nor releases an asynchronous buf itself (there is no brelse): a
  synchronous transfer sets B_CALL with :func:`biowakeup` as its ``b_iodone`` (swap and vnode
  I/O), an asynchronous one has its own ``b_iodone`` (uvm_aio_biodone).
- The buffer pool is only counted (``k.bufpool``, set up by bufinit as upstream's pool_init;
  the bufs themselves are Python objects): :func:`bufpool_get` / :func:`bufpool_put` stand for
  ``pool_get(&bufpool, ...)`` / ``pool_put(&bufpool, bp)``, with an optional hard limit
  (pool_sethardlimit) so that ``pool_get(&bufpool, PR_NOWAIT)`` can really fail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import kernel.uvm.uvm_page as uvm_page
from kernel.kern.kern_synch import INFSLP, chan, tsleep_nsec, wakeup
from kernel.sys.buf import B_CALL, B_DONE, B_ERROR, Buf
from kernel.sys.errno import EIO
from kernel.sys.param import PRIBIO, PVM
from kernel.sys.pool import PR_NOWAIT, Pool
from kernel.sys.systm import KASSERT, Panic

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.uvm.uvm import UvmConstraintRange
    from kernel.uvm.uvm_page import VmPage

__all__ = [
    "BCACHE_MIN",
    "BUFPAGES_DEFICIT",
    "BUFPAGES_INACT",
    "Bcstats",
    "BufCache",
    "Bufpool",
    "biodone",
    "biowait",
    "biowakeup",
    "buf_refill",
    "bufadjust",
    "bufbackoff",
    "bufbackoff_154",
    "bufinit",
    "bufpool_get",
    "bufpool_put",
]

BCACHE_MIN: Final = 128  # buf.h: minimum buffer cache size, in pages
_DMA_HIGH: Final = 0xFFFFFFFF  # amd64 dma_constraint.ucr_high (bytes)


@dataclass(eq=False, slots=True)
class Bcstats:
    """struct bcachestats (the page counters the daemon reads)."""

    numbufpages: int = 0  # number of pages in buffer cache
    numcleanpages: int = 0  # number of clean pages in buffer cache
    numdirtypages: int = 0  # number of dirty free pages (always 0 here)
    dmapages: int = 0  # dma accessible pages in the buffer cache


@dataclass(eq=False, slots=True)
class BufCache:
    """The buffer cache globals of vfs_bio.c. Locks: [K] boot only, (B) splbio (no await)."""

    bufcachepercent: int  # [K] configured size, percent of DMA-reachable memory
    buflowpages: int  # [K] smallest size we will shrink to
    bufhighpages: int  # [K] largest size we will grow to
    bufbackpages: int  # [K] minimum number of pages we shrink when asked to
    bufpages: int  # (B) target size
    bcstats: Bcstats = field(default_factory=Bcstats)  # (B)
    pages: list[VmPage] = field(default_factory=list)  # (B) PORT: the cached pages, LIFO
    backoffs: int = 0  # PORT: bufbackoff calls
    recovered: int = 0  # PORT: pages given back by bufbackoff since boot


# struct pool bufpool (sys/pool.py's Pool: the bufs are Python objects, only counted).
# Locks: (B) splbio (no await). Invariant: pr_hardlimit is None or a sleeper waits while
# pr_nout >= pr_hardlimit.
Bufpool = Pool


def BUFPAGES_DEFICIT(k: Kernel) -> int:
    """BUFPAGES_DEFICIT: pages the buffer cache is below its floor ("not really free")."""
    bc = k.bufcache
    if bc is None:
        return 0
    d = bc.buflowpages - bc.bcstats.numbufpages
    return 0 if d < 0 else d


def BUFPAGES_INACT(k: Kernel) -> int:
    """BUFPAGES_INACT: clean buffer pages above the floor, counted as if inactive."""
    bc = k.bufcache
    if bc is None:
        return 0
    d = bc.bcstats.numcleanpages - bc.buflowpages
    return 0 if d < 0 else d


def bufinit(k: Kernel, dmapages: int) -> None:
    """bufinit: size the buffer cache and fill it to its target.

    => dmapages: DMA-reachable managed pages (all of them on the emulated machine)
    => leaves ``k.bufcache`` None when the configured percentage is 0
    """
    # PORT: pool_init(&bufpool, ...): the pool is there whatever the cache's size.
    k.bufpool = Bufpool()
    percent = k.config.bufcachepercent
    if percent <= 0:
        k.bufcache = None
        return
    # PORT: BCACHE_MIN scaled down on tiny machines (module docstring).
    bcache_min = min(k.config.bcache_min, dmapages // 32)
    buflowpages = dmapages * 5 // 100
    if buflowpages < bcache_min:
        buflowpages = bcache_min
    bufbackpages = buflowpages * 10 // 100
    if bufbackpages > 100:
        bufbackpages = 100
    bufhighpages = dmapages * percent // 100
    if bufhighpages < buflowpages:
        bufhighpages = buflowpages
    k.bufcache = BufCache(
        bufcachepercent=percent,
        buflowpages=buflowpages,
        bufhighpages=bufhighpages,
        bufbackpages=bufbackpages,
        bufpages=bufhighpages,
    )
    buf_refill(k, bufhighpages)


def bufadjust(k: Kernel, newbufpages: int) -> None:
    """bufadjust: change the buffer cache target and free clean pages above it."""
    bc = k.bufcache
    assert bc is not None
    bc.bufpages = newbufpages
    while bc.bcstats.numbufpages > bc.bufpages and bc.pages:
        _buf_free_page(k, bc)


def bufbackoff(k: Kernel, range: UvmConstraintRange | None, size: int) -> int:
    """bufbackoff: back off the buffer cache to free ``size`` pages of memory.

    => called by the page daemon and by allocators that cannot get memory
    => returns 0 if at least ``size`` pages were released, -1 otherwise
    """
    bc = k.bufcache
    if bc is None:
        return -1  # PORT: no buffer cache
    bc.backoffs += 1
    # If we will accept high memory for this backoff
    # try to steal it from the high memory buffer cache.
    if range is not None and range.ucr_high > _DMA_HIGH:
        # PORT: there is no high memory cache; nothing is recovered here.
        # If we needed only memory above DMA, return failure
        if range.ucr_low > _DMA_HIGH:
            return -1
        # Otherwise get the rest from DMA
    # On failure back off on our desired size by the
    # larger of our argument or bufbackpages.
    pdelta = size if size > bc.bufbackpages else bc.bufbackpages
    if bc.bufpages <= bc.buflowpages:
        return -1
    if bc.bufpages - pdelta < bc.buflowpages:
        pdelta = bc.bufpages - bc.buflowpages
    oldbufpages = bc.bcstats.numbufpages
    bufadjust(k, bc.bufpages - pdelta)
    bc.recovered += oldbufpages - bc.bcstats.numbufpages
    if oldbufpages - bc.bcstats.numbufpages < size:
        return -1  # we did not free what we wanted
    return 0


def bufbackoff_154(k: Kernel, range: UvmConstraintRange | None, size: int) -> int:
    """bufbackoff as vfs_bio.c has it beside uvm_pdaemon.c 1.154: back the buffer cache off
    by ``size`` pages (at least bufbackpages, never below its floor).

    => returns the pages it recovered: high memory freed plus the cut of the cache's
       target (``bufpages``), which may be more than the pages actually freed when the
       cache was below its target; 0 at the floor or without a buffer cache
    => called by the 1.154 page daemon (its pass and its own uvm_wait); the 2022 form
       above, returning 0 or -1, stays 1.105's
    """
    bc = k.bufcache
    if bc is None:
        return 0  # PORT: no buffer cache (-1 would add to the daemon's shortage)
    bc.backoffs += 1
    recovered = 0
    # high memory is acceptable: take it from the high memory cache first
    if range is not None and range.ucr_high > _DMA_HIGH:
        # PORT: there is no high memory cache; nothing is recovered there (recovered stays
        # 0 < size, so upstream's "got enough" return cannot happen)
        # only memory above DMA would do: done
        if range.ucr_low > _DMA_HIGH:
            return recovered
        # otherwise the rest comes from DMA memory
        size -= recovered
    # back off by at least bufbackpages, or by what the daemon asks if that is more
    pdelta = size if size > bc.bufbackpages else bc.bufbackpages
    if bc.bufpages <= bc.buflowpages:
        return recovered
    if bc.bufpages - pdelta < bc.buflowpages:
        pdelta = bc.bufpages - bc.buflowpages
    oldbufpages = bc.bufpages
    oldnumbufpages = bc.bcstats.numbufpages
    bufadjust(k, bc.bufpages - pdelta)
    bc.recovered += oldnumbufpages - bc.bcstats.numbufpages
    dmarecovered = oldbufpages - bc.bufpages
    return recovered + dmarecovered


def buf_refill(k: Kernel, npages: int) -> int:
    """PORT: model buffer demand: grow the target by ``npages`` (up to ``bufhighpages``) and
    fill the cache to it with pages that do not wake the daemon. Returns pages added.

    Upstream the cache climbs back to its high-water mark ``bufbackpages`` at a time as
    buf_get finds it below; this is that climb, driven by the caller.
    """
    bc = k.bufcache
    if bc is None:
        return 0
    bc.bufpages = min(bc.bufhighpages, max(bc.bufpages, bc.bcstats.numbufpages + npages))
    added = 0
    while bc.bcstats.numbufpages < bc.bufpages:
        pg = _buf_alloc_page(k)
        if pg is None:
            break
        bc.pages.append(pg)
        bc.bcstats.numbufpages += 1
        bc.bcstats.numcleanpages += 1
        bc.bcstats.dmapages += 1
        added += 1
    return added


async def biowait(k: Kernel, bp: Buf) -> int:
    """biowait: wait for operations on a buffer to complete; returns its errno (EIO if unset).

    => may sleep

    No lost wakeup: B_DONE is tested and the sleep queued with no await in between, and the
    completion sets B_DONE before it wakes us.
    """
    while not (bp.b_flags & B_DONE):
        await tsleep_nsec(k, bp, PRIBIO, "biowait", INFSLP)
    if bp.b_flags & B_ERROR:
        return bp.b_error if bp.b_error else int(EIO)
    return 0


def biodone(bp: Buf) -> None:
    """biodone: mark I/O complete on a buffer; call b_iodone for B_CALL bufs.

    => interrupt context (the device's completion, from the clock's idle loop); never sleeps
    => PORT: no wakeup or brelse for bufs without B_CALL (module docstring)
    """
    if bp.b_flags & B_DONE:
        raise Panic("biodone already")
    bp.b_flags |= B_DONE
    if bp.b_flags & B_CALL:
        bp.b_flags &= ~B_CALL  # but note callout done
        assert bp.b_iodone is not None
        bp.b_iodone(bp)


def biowakeup(bp: Buf) -> None:
    """PORT: biodone's wakeup(bp) for a synchronous buf: the b_iodone of sync swap and vnode
    I/O (see the module docstring).

    => runs at completion, in interrupt context (the clock's idle loop); never sleeps
    """
    k = bp.b_kernel
    assert k is not None
    wakeup(k, bp)


async def bufpool_get(k: Kernel, pflag: int) -> bool:
    """PORT: pool_get(&bufpool, pflag), as far as the count goes (the buf is a Python object).

    => False if the pool is at its hard limit and PR_NOWAIT was given
    => may sleep (PR_WAITOK)
    """
    pool = _bufpool(k)
    while pool.pr_hardlimit is not None and pool.pr_nout >= pool.pr_hardlimit:
        if pflag & PR_NOWAIT:
            return False
        await tsleep_nsec(k, chan(pool, "pr_nout"), PVM, "bufpool", INFSLP)
    pool.pr_nout += 1
    return True


def bufpool_put(k: Kernel) -> None:
    """PORT: pool_put(&bufpool, bp): the buf is back; wake a PR_WAITOK sleeper."""
    pool = _bufpool(k)
    KASSERT(k, pool.pr_nout > 0)
    pool.pr_nout -= 1
    wakeup(k, chan(pool, "pr_nout"))


# --- port helpers ---------------------------------------------------------------------------


def _bufpool(k: Kernel) -> Bufpool:
    """k.bufpool, which bufinit sets up at boot."""
    pool = k.bufpool
    assert pool is not None, "bufpool: used before bufinit"
    return pool


def _buf_alloc_page(k: Kernel) -> VmPage | None:
    """buf_alloc_pages for one page: wired (wire_count 1, not counted in uvmexp.wired, as
    vfs_biomem.c does), on no paging queue, owned by the cache."""
    pg = uvm_page.uvm_pagealloc(k, None, 0, None, 0)
    if pg is None:
        return None
    pg.pg_flags &= ~(uvm_page.PG_BUSY | uvm_page.PG_FAKE)
    pg.wire_count = 1
    return pg


def _buf_free_page(k: Kernel, bc: BufCache) -> None:
    """buf_free_pages for one page: drop the cache's wiring and free it."""
    pg = bc.pages.pop()
    if pg.wire_count != 1:
        raise Panic(f"buf_free_pages: {pg!r} wire_count {pg.wire_count}")
    pg.wire_count = 0
    bc.bcstats.numbufpages -= 1
    bc.bcstats.numcleanpages -= 1
    bc.bcstats.dmapages -= 1
    # PORT: buffer pages are on no paging queue; like buf_free_pages, no page-queue lock.
    uvm_page.uvm_pagefree(k, pg)
