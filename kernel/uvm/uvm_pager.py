"""uvm_pager.c: generic functions that help the pagers.

Port of OpenBSD sys/uvm/uvm_pager.c,v 1.89 2022/08/19 and uvm_pager.h,v 1.33 (reference §1.8
and §1.10). Comments are the port's own wording.

Pageout goes through :func:`uvm_pager_put`. Object (vnode) pages are clustered by the pager's
``pgo_mk_pcluster`` (:func:`uvm_mk_pcluster`) and written synchronously by its ``pgo_put``;
swap-backed pages arrive as a cluster the page daemon built, with its first drum slot in
``start``, and are written asynchronously by ``uvm_swap_put``. An asynchronous write comes
back as an "interrupt": the device calls :func:`uvm_aio_biodone`, which queues the buf on
``uvm.aio_done`` for the aiodone daemon; that thread calls ``bp.b_iodone(bp)``, now
:func:`uvm_aio_aiodone`, which finishes the pages in :func:`uvm_aio_aiodone_pages`.

Deviations:
- ONE DELIBERATE BEHAVIOUR CHANGE (reference §4 item 10): in 1.89 a completed write that
  failed with any error but ENOMEM still marked its pages clean, so the daemon later freed
  them and the data was lost. Here a failed write leaves its pages dirty (unbusied, still
  on their queue), marks the slot range bad and clears each owner's slot, so the next
  pageout allocates fresh slots. Upstream fixed this in uvm_pager.c 1.94. ENOMEM keeps its
  1.89 meaning (dirty, slot kept, not bad). See ``uvm_aio_aiodone_pages``.
- C out-parameters are returned: ``result, ppsp, npages = await uvm_pager_put(...)`` and
  ``cluster, npages = uvm_mk_pcluster(...)``; where C moves a pointer inside the caller's
  page array, the port uses an index and returns the cluster as a new list.
- The pager map: the kernel "mapping" of the pages is the list of frame views the arch
  glue builds for the device request (``bp.b_pages`` names the pages). ``uvm_pagermapin`` only accounts for pager map space (psegs of
  MAXBSIZE, two kept for the page daemon; a single page uses the direct map and never
  fails), so a shortage really makes a clustered async pageout return VM_PAGER_AGAIN.
- ``uvm_aio_aiodone`` and ``uvm_aio_aiodone_pages`` never sleep: they are called as
  ``bp.b_iodone(bp)`` by the aiodone daemon. As in 1.89 no owner lock is taken for the
  swap-backed pages (they are PG_BUSY and nothing awaits in between).
- Swap encryption (uvm_swap.py): uvm_aio_aiodone frees the PQ_ENCRYPT bounce pages of an
  encrypted write as upstream does, and then, the port's deviation from upstream (reference
  §4 item 11), finishes the original pages the buf carries in ``b_origpages`` with
  ``uvm_aio_aiodone_pages``: upstream had already marked them clean when it encrypted them.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

import structlog

import kernel.kern.vfs_bio as vfs_bio
import kernel.uvm.uvm_anon as uvm_anon
import kernel.uvm.uvm_aobj as uvm_aobj
import kernel.uvm.uvm_page as uvm_page
import kernel.uvm.uvm_swap as uvm_swap
from kernel.kern.kern_synch import (
    INFSLP,
    PVM,
    RW_WRITE,
    chan,
    mtx_enter,
    mtx_leave,
    rw_enter,
    rw_enter_nosleep,
    rw_exit,
    rw_write_held,
    tsleep_nsec,
    wakeup,
)
from kernel.sys.buf import B_ERROR, B_READ, Buf
from kernel.sys.errno import EIO, ENOMEM
from kernel.sys.flags import fast_ops
from kernel.sys.mman import PROT_READ
from kernel.sys.param import MAXBSIZE, MAXPHYS, PAGE_SHIFT, PAGE_SIZE
from kernel.sys.proc import curproc
from kernel.sys.systm import KASSERT, KASSERTMSG

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.uvm.uvm_object import UvmObject
    from kernel.uvm.uvm_page import VmPage

__all__ = [
    "PGO_ALLPAGES",
    "PGO_CLEANIT",
    "PGO_DEACTIVATE",
    "PGO_DOACTCLUST",
    "PGO_FREE",
    "PGO_LOCKED",
    "PGO_NOWAIT",
    "PGO_PDFREECLUST",
    "PGO_REALLOCSWAP",
    "PGO_SYNCIO",
    "UVMPAGER_MAPIN_READ",
    "UVMPAGER_MAPIN_WAITOK",
    "UVMPAGER_MAPIN_WRITE",
    "VM_PAGER_AGAIN",
    "VM_PAGER_BAD",
    "VM_PAGER_ERROR",
    "VM_PAGER_FAIL",
    "VM_PAGER_OK",
    "VM_PAGER_PEND",
    "VM_PAGER_REFAULT",
    "VM_PAGER_UNLOCK",
    "PgoFlags",
    "VmPagerStatus",
    "uvm_aio_aiodone",
    "uvm_aio_aiodone_pages",
    "uvm_aio_biodone",
    "uvm_mk_pcluster",
    "uvm_pager_dropcluster",
    "uvm_pager_put",
    "uvm_pager_put_154",
    "uvm_pagermapin",
    "uvm_pagermapout",
    "uvm_pseg_get",
    "uvm_pseg_release",
    "uvm_swap_dropcluster",
]

log = structlog.get_logger("uvm.pager")


class VmPagerStatus(enum.IntEnum):
    """Pager return codes (uvm_pager.h)."""

    VM_PAGER_OK = 0
    VM_PAGER_BAD = 1
    VM_PAGER_FAIL = 2
    VM_PAGER_PEND = 3
    VM_PAGER_ERROR = 4
    VM_PAGER_AGAIN = 5
    VM_PAGER_UNLOCK = 6
    VM_PAGER_REFAULT = 7


VM_PAGER_OK: Final = VmPagerStatus.VM_PAGER_OK
VM_PAGER_BAD: Final = VmPagerStatus.VM_PAGER_BAD
VM_PAGER_FAIL: Final = VmPagerStatus.VM_PAGER_FAIL
VM_PAGER_PEND: Final = VmPagerStatus.VM_PAGER_PEND
VM_PAGER_ERROR: Final = VmPagerStatus.VM_PAGER_ERROR
VM_PAGER_AGAIN: Final = VmPagerStatus.VM_PAGER_AGAIN
VM_PAGER_UNLOCK: Final = VmPagerStatus.VM_PAGER_UNLOCK
VM_PAGER_REFAULT: Final = VmPagerStatus.VM_PAGER_REFAULT


@fast_ops
class PgoFlags(enum.IntFlag):
    """Flags of the pager operations (uvm_pager.h)."""

    PGO_CLEANIT = 0x001  # write dirty pages to backing store
    PGO_SYNCIO = 0x002  # use sync I/O
    PGO_DEACTIVATE = 0x004  # deactivate flushed pages
    PGO_FREE = 0x008  # free flushed pages
    PGO_ALLPAGES = 0x010  # flush whole object / get all pages
    PGO_DOACTCLUST = 0x020  # flag to mk_pcluster to include active pages
    PGO_LOCKED = 0x040  # fault data structures are locked [get]
    PGO_PDFREECLUST = 0x080  # daemon's free cluster flag [uvm_pager_put]
    PGO_REALLOCSWAP = 0x100  # reallocate swap area [pager_dropcluster]
    PGO_NOWAIT = 0x200  # do not wait for inode lock


PGO_CLEANIT: Final = PgoFlags.PGO_CLEANIT
PGO_SYNCIO: Final = PgoFlags.PGO_SYNCIO
PGO_DEACTIVATE: Final = PgoFlags.PGO_DEACTIVATE
PGO_FREE: Final = PgoFlags.PGO_FREE
PGO_ALLPAGES: Final = PgoFlags.PGO_ALLPAGES
PGO_DOACTCLUST: Final = PgoFlags.PGO_DOACTCLUST
PGO_LOCKED: Final = PgoFlags.PGO_LOCKED
PGO_PDFREECLUST: Final = PgoFlags.PGO_PDFREECLUST
PGO_REALLOCSWAP: Final = PgoFlags.PGO_REALLOCSWAP
PGO_NOWAIT: Final = PgoFlags.PGO_NOWAIT

# uvm_pagermapin flags
UVMPAGER_MAPIN_WAITOK: Final = 0x01  # it's ok to wait
UVMPAGER_MAPIN_READ: Final = 0x02  # device -> host
UVMPAGER_MAPIN_WRITE: Final = 0x00  # host -> device (pseudo flag)


# --- the pager map ----------------------------------------------------------------------------


async def uvm_pseg_get(k: Kernel, flags: int) -> bool:
    """uvm_pseg_get: take one MAXBSIZE segment of pager map; False on failure.

    => the last UVM_PSEG_RESERVED segments are only for the page daemon
    => with UVMPAGER_MAPIN_WAITOK sleeps until a segment is released
    => may sleep
    """
    swap = k.swap
    if swap is None:  # PORT: no pager map accounting before uvm_swap_init
        return True
    p = curproc()
    pdaemon = p is not None and p is k.uvm.pagedaemon_proc
    while True:  # pager_seg_restart:
        limit = swap.uvm_pseg_max
        if not pdaemon:
            limit -= uvm_swap.UVM_PSEG_RESERVED
        if swap.uvm_pseg_use < limit:
            swap.uvm_pseg_use += 1
            return True
        # pager_seg_fail:
        if not (flags & UVMPAGER_MAPIN_WAITOK):
            return False
        await tsleep_nsec(k, chan(swap, "uvm_pseg_use"), PVM, "pagerseg", INFSLP)


def uvm_pseg_release(k: Kernel) -> None:
    """uvm_pseg_release: give a pager map segment back and wake whoever waits for one."""
    swap = k.swap
    if swap is None:
        return
    assert swap.uvm_pseg_use > 0, "uvm_pseg_release: no segment in use"
    swap.uvm_pseg_use -= 1
    wakeup(k, chan(swap, "uvm_pseg_use"))


async def uvm_pagermapin(k: Kernel, pps: Sequence[VmPage | None], npages: int, flags: int) -> bool:
    """uvm_pagermapin: map pages into KVA for I/O that needs mappings.

    => a single page uses the direct map and always succeeds (amd64 __HAVE_PMAP_DIRECT)
    => a cluster needs a pager map segment; returns False if none can be had
    => may sleep (with UVMPAGER_MAPIN_WAITOK)

    Port: returns whether the mapping exists; the arch glue makes the frame views when it
    starts the transfer (see the module docstring).
    """
    if npages == 1:
        pg = pps[0]
        assert pg is not None
        KASSERT(k, pg.pg_flags & uvm_page.PG_BUSY)
        return True
    KASSERT(k, npages << PAGE_SHIFT <= MAXBSIZE)
    for i in range(npages):
        pp = pps[i]
        assert pp is not None
        KASSERTMSG(k, pp.pg_flags & uvm_page.PG_BUSY, "uvm_pagermapin: not busy")
    return await uvm_pseg_get(k, flags)


def uvm_pagermapout(k: Kernel, npages: int) -> None:
    """uvm_pagermapout: remove the KVA mapping of a finished transfer.

    Port: there is no kva argument; the frame views die with the device request.
    """
    if npages > 1:
        uvm_pseg_release(k)


# --- clustering -------------------------------------------------------------------------------


def uvm_mk_pcluster(
    k: Kernel,
    uobj: UvmObject,
    pps: list[VmPage | None],
    npages: int,
    center: VmPage,
    flags: int,
    mlo: int,
    mhi: int,
) -> tuple[list[VmPage | None], int]:
    """uvm_mk_pcluster: the generic "make a pager put cluster" function.

    => caller locks the object and the page queues (active/inactive bits are read)
    => the center page is busy and write-protected already
    => every page added is made busy and write-protected for the caller, who must unbusy
       them (checking wanted/released) if it drops the object lock
    => flags: PGO_ALLPAGES: the whole object is fair game; otherwise [mlo, mhi) limits it;
       PGO_DOACTCLUST: active pages may join; PGO_FREE (without PGO_SYNCIO): mark the pages
       PG_RELEASED so the async I/O frees them
    => returns the cluster (in offset order) and its length
    """
    # the window the pager allows around the page, clipped to ours
    assert uobj.pgops.pgo_cluster is not None
    lo, hi = uobj.pgops.pgo_cluster(k, uobj, center.offset)
    if not (flags & PGO_ALLPAGES):
        if lo < mlo:
            lo = mlo
        if hi > mhi:
            hi = mhi
    if (hi - lo) >> PAGE_SHIFT > npages:  # the array is too small: no cluster
        pps[0] = center
        return pps[:1], 1

    # put the center page in place, then grow the cluster backward and forward
    center_idx = (center.offset - lo) >> PAGE_SHIFT
    pps[center_idx] = center
    ppsp = center_idx  # PORT: index of the cluster's first page in pps
    npages = 1

    # inactive pages have no mappings in this UVM, so their PG_CLEAN is up to date and
    # the pmap need not be asked
    for forward in (0, 1):
        incr = PAGE_SIZE if forward else -PAGE_SIZE
        curoff = center.offset + incr
        while (forward == 0 and curoff >= lo) or (forward and curoff < hi):
            pclust = uvm_page.uvm_pagelookup(uobj, curoff)
            if pclust is None:
                break  # no page
            # active pages: only if asked for, and with the clean bit synced first
            if not (pclust.pg_flags & uvm_page.PQ_INACTIVE):
                if not (flags & PGO_DOACTCLUST):
                    break  # no mapped pages wanted
                if not (pclust.pg_flags & uvm_page.PG_CLEANCHK):
                    if (
                        pclust.pg_flags & (uvm_page.PG_CLEAN | uvm_page.PG_BUSY)
                    ) == uvm_page.PG_CLEAN and k.pmap.pmap_is_modified(pclust):
                        pclust.pg_flags &= ~uvm_page.PG_CLEAN
                    pclust.pg_flags |= uvm_page.PG_CLEANCHK  # now checked
            # a clean or busy page ends the cluster on this side
            if pclust.pg_flags & (uvm_page.PG_CLEAN | uvm_page.PG_BUSY):
                break
            # take it
            pclust.pg_flags |= uvm_page.PG_BUSY
            # freeing after async I/O: let the I/O done path free it
            if (flags & (PGO_FREE | PGO_SYNCIO)) == PGO_FREE:
                pclust.pg_flags |= uvm_page.PG_RELEASED
            # XXX: protect wired page?
            k.pmap.pmap_page_protect(pclust, PROT_READ)
            if not forward:
                ppsp -= 1  # back up one page
                pps[ppsp] = pclust
            else:
                pps[ppsp + npages] = pclust
            npages += 1
            curoff += incr
    return pps[ppsp : ppsp + npages], npages


# --- pageout ----------------------------------------------------------------------------------


async def uvm_pager_put(
    k: Kernel,
    uobj: UvmObject | None,
    pg: VmPage | None,
    ppsp: list[VmPage | None],
    npages: int,
    flags: int,
    start: int,
    stop: int,
) -> tuple[int, list[VmPage | None], int]:
    """uvm_pager_put: the high level pageout routine: write ``pg`` out, clustered if we can.

    => called with the page queues locked; returns with them unlocked
    => ``uobj`` is the object for object (vnode) pages, None for swap-backed pages
    => ``pg`` is PG_BUSY and dirty; for swap-backed pages it may be None (no page of
       interest)
    => ``ppsp`` has room for ``npages`` pages to build the cluster in; for swap-backed
       pages it holds the cluster the caller built, and ``start`` is its first drum slot
    => flags: PGO_ALLPAGES and PGO_DOACTCLUST (object pages), PGO_SYNCIO, PGO_PDFREECLUST
       (un-busy and clean the cluster pages after a good write), PGO_FREE
    => ``start``/``stop`` limit the cluster of an object without PGO_ALLPAGES
    => returns (VM_PAGER_* result, cluster, npages):
       PEND: the async I/O owns every page of the cluster, ``pg`` included
       OK: with PGO_PDFREECLUST the cluster pages other than ``pg`` are clean and unbusy;
           without, the whole cluster comes back busy for the caller
       any other result: the cluster was dropped (swap slots zeroed and freed on AGAIN,
       marked bad on a hard error); after AGAIN for swap, ``pg`` alone was retried once
       (npages is then 1) and keeps exactly one slot; only ``pg`` is left to the caller
    => may sleep
    """
    if uobj is not None:  # not swap-backed
        # let the object's pager build a cluster, if it knows how
        pgops = uobj.pgops
        assert pg is not None
        if pgops.pgo_mk_pcluster is not None:
            ppsp, npages = pgops.pgo_mk_pcluster(k, uobj, ppsp, npages, pg, flags, start, stop)
        else:
            ppsp[0] = pg
            npages = 1
        swblk = 0
    else:
        # swap-backed: the page daemon built the cluster; its first slot is "start".
        # pg may be None, in which case the whole cluster is dropped on errors.
        swblk = start

    # clustering is done: the page queues can go
    uvm_page.uvm_unlock_pageq(k)

    # try the I/O; on failure with a cluster, drop the cluster and retry pg alone
    while True:  # ReTry:
        if uobj is not None:
            assert uobj.pgops.pgo_put is not None
            result: int = await uobj.pgops.pgo_put(k, uobj, ppsp, npages, flags)
        else:
            result = await uvm_swap.uvm_swap_put(k, swblk, ppsp, npages, flags)

        # success or pending: with PGO_PDFREECLUST un-busy the cluster for the daemon
        if result == VM_PAGER_PEND or result == VM_PAGER_OK:
            if result == VM_PAGER_OK and (flags & PGO_PDFREECLUST):
                if npages > 1 or pg is None:
                    await uvm_pager_dropcluster(k, uobj, pg, ppsp, npages, PGO_PDFREECLUST)
            return result, ppsp, npages

        # an error: drop the cluster; the caller then only has "pg" to worry about
        if npages > 1 or pg is None:
            await uvm_pager_dropcluster(k, uobj, pg, ppsp, npages, PGO_REALLOCSWAP)

            # a failed swap pageout with a pg: pg keeps the first slot after a transient
            # error (so it can be retried) and loses its slot after a hard one
            if uobj is None and pg is not None:
                nswblk = swblk if result == VM_PAGER_AGAIN else 0
                if pg.pg_flags & uvm_page.PQ_ANON:
                    anon = pg.uanon
                    assert anon is not None and anon.an_lock is not None
                    await rw_enter(k, anon.an_lock, RW_WRITE)
                    anon.an_swslot = nswblk
                    rw_exit(anon.an_lock)
                else:
                    aobj = pg.uobject
                    assert aobj is not None
                    await rw_enter(k, aobj.vmobjlock, RW_WRITE)
                    uvm_aobj.uao_set_swslot(k, aobj, pg.offset >> PAGE_SHIFT, nswblk)
                    rw_exit(aobj.vmobjlock)
            if result == VM_PAGER_AGAIN:
                # transient: free the slots nobody will retry with
                if uobj is None:
                    if pg is not None:
                        uvm_swap.uvm_swap_free(k, swblk + 1, npages - 1)
                    else:
                        uvm_swap.uvm_swap_free(k, swblk, npages)
                if pg is not None:
                    ppsp[0] = pg
                    npages = 1
                    continue  # goto ReTry
            elif uobj is None:
                # hard error on swap: the slots are bad. they are never freed.
                uvm_swap.uvm_swap_markbad(k, swblk, npages)

        # give up: the caller only has "pg" to clean up
        return result, ppsp, npages


async def uvm_pager_dropcluster(
    k: Kernel,
    uobj: UvmObject | None,
    pg: VmPage | None,
    ppsp: list[VmPage | None],
    npages: int,
    flags: int,
) -> None:
    """uvm_pager_dropcluster: drop a cluster we built (after an error, or after a good
    write with PGO_PDFREECLUST, on behalf of the page daemon).

    => ``uobj`` (non-swap objects only) is locked by the caller; page queues are not
    => ``pg`` (may be None) is left alone; every other page is un-busied (a released anon
       page is freed together with its anon instead)
    => flags: PGO_PDFREECLUST: the write worked: clear ref/mod and set PG_CLEAN;
       PGO_REALLOCSWAP: zero the swap slot of each swap-backed page (the caller frees or
       marks the slots)
    => may sleep (takes each swap-backed page's owner lock)
    """
    KASSERT(k, uobj is None or rw_write_held(uobj.vmobjlock))

    # drop all pages but "pg"
    for lcv in range(npages):
        ppg = ppsp[lcv]
        # skip "pg" or an empty slot
        if ppg is pg or ppg is None:
            continue

        # PQ_ANON cannot change while we hold PG_BUSY: no page queue lock needed to look
        if uobj is None:
            if ppg.pg_flags & uvm_page.PQ_ANON:
                anon = ppg.uanon
                assert anon is not None and anon.an_lock is not None
                await rw_enter(k, anon.an_lock, RW_WRITE)
                if flags & PGO_REALLOCSWAP:
                    anon.an_swslot = 0  # zap swap block
            else:
                aobj = ppg.uobject
                assert aobj is not None
                await rw_enter(k, aobj.vmobjlock, RW_WRITE)
                if flags & PGO_REALLOCSWAP:
                    uvm_aobj.uao_set_swslot(k, aobj, ppg.offset >> PAGE_SHIFT, 0)

        # did someone want the page while it was busy?
        if ppg.pg_flags & uvm_page.PG_WANTED:
            wakeup(k, ppg)

        # a released anon page goes away with its anon; any other page is un-busied
        if ppg.pg_flags & uvm_page.PG_RELEASED and ppg.pg_flags & uvm_page.PQ_ANON:
            assert ppg.uanon is not None
            uvm_anon.uvm_anon_release(k, ppg.uanon)  # kills anon and frees pg
            continue
        # PG_RELEASED was set if we planned async I/O: clear it with the rest
        ppg.pg_flags &= ~(
            uvm_page.PG_BUSY | uvm_page.PG_WANTED | uvm_page.PG_FAKE | uvm_page.PG_RELEASED
        )

        # the page daemon's good write: the page is clean now
        if flags & PGO_PDFREECLUST:
            k.pmap.pmap_clear_reference(ppg)
            k.pmap.pmap_clear_modify(ppg)
            ppg.pg_flags |= uvm_page.PG_CLEAN

        # swap-backed cluster: unlock the owner and move on
        if uobj is None:
            if ppg.pg_flags & uvm_page.PQ_ANON:
                assert ppg.uanon is not None and ppg.uanon.an_lock is not None
                rw_exit(ppg.uanon.an_lock)
            else:
                assert ppg.uobject is not None
                rw_exit(ppg.uobject.vmobjlock)


async def uvm_pager_put_154(
    k: Kernel,
    uobj: UvmObject | None,
    pg: VmPage | None,
    ppsp: list[VmPage | None],
    npages: int,
    flags: int,
    start: int,
    stop: int,
) -> tuple[int, list[VmPage | None], int]:
    """uvm_pager_put as the 1.154 page daemon calls it: write the object page ``pg`` out,
    clustered by its pager, and hand nothing back.

    => called with the page queues locked; returns with them unlocked
    => object (vnode) pages only: the 1.154 daemon writes swap clusters itself
       (uvm_swap_put), so ``uobj`` and ``pg`` are given; ``uobj`` is locked by the caller
    => returns (VM_PAGER_* result, cluster, npages):
       PEND: the async I/O owns every page of the cluster
       any other result: the whole cluster, ``pg`` included, was dropped: un-busied, and
       after a good write with PGO_PDFREECLUST cleaned (ref/mod cleared, PG_CLEAN); after
       an error the pages stay dirty where they are. No page is retried alone.
    => may sleep

    Port: the uvm_pager.c of the 1.154 daemon was not read (docs/pdaemon-1.154.md, §4 K12 and
    open question 3): inferred from the daemon, which never looks at ``pg`` again after the
    put, and from a third-party port of uvm_pager.c 1.99. 1.105 keeps :func:`uvm_pager_put`.
    """
    assert uobj is not None and pg is not None, "uvm_pager_put_154: object pages only"
    # let the object's pager build a cluster, if it knows how
    pgops = uobj.pgops
    if pgops.pgo_mk_pcluster is not None:
        ppsp, npages = pgops.pgo_mk_pcluster(k, uobj, ppsp, npages, pg, flags, start, stop)
    else:
        ppsp[0] = pg
        npages = 1

    # clustering is done: the page queues can go
    uvm_page.uvm_unlock_pageq(k)

    assert pgops.pgo_put is not None
    result: int = await pgops.pgo_put(k, uobj, ppsp, npages, flags)

    # anything but a pending write: the cluster, pg included, goes back to its queues
    if result != VM_PAGER_PEND:
        good = result == VM_PAGER_OK and (flags & PGO_PDFREECLUST)
        await uvm_pager_dropcluster(k, uobj, None, ppsp, npages, PGO_PDFREECLUST if good else 0)
    return result, ppsp, npages


async def uvm_swap_dropcluster(k: Kernel, pgs: list[VmPage | None], npages: int, error: int) -> None:
    """uvm_swap_dropcluster: give back the pages of a swap cluster whose write is not
    (or no longer) under way.

    => the pages are swap-backed and busy; their owners and the page queues are unlocked
    => ``error`` != 0 (the 1.154 daemon's ENOMEM after VM_PAGER_AGAIN): each page forgets
       its slot (the caller frees the slots) and stays dirty where it is
    => ``error`` 0: the pages are clean (their data is on the swap device)
    => every page is un-busied, waiters woken, a released anon page freed with its anon
    => may sleep (takes each page's owner lock)

    Port: the definition (uvm_pager.c of 2026) was not read; inferred from its calls in
    uvm_pdaemon.c 1.154 (swapcluster_flush) and uvm_swap.c 1.179, as uvm_pager_dropcluster
    over the whole cluster (docs/pdaemon-1.154.md §4 K7). Only the 1.154 daemon calls it.
    """
    flags = PGO_REALLOCSWAP if error else PGO_PDFREECLUST
    await uvm_pager_dropcluster(k, None, None, pgs, npages, flags)


# --- asynchronous I/O completion --------------------------------------------------------------


def uvm_aio_biodone(bp: Buf) -> None:
    """uvm_aio_biodone: the interrupt-time done handler of an async pager buf.

    => runs from the device's completion (the clock's idle loop): must not sleep
    => queues ``bp`` on uvm.aio_done for the aiodone daemon and wakes it; the daemon will
       call ``bp.b_iodone(bp)``, which is uvm_aio_aiodone from now on
    """
    k = bp.b_kernel
    assert k is not None
    # reset b_iodone for when this is a single-buf i/o.
    bp.b_iodone = uvm_aio_aiodone
    mtx_enter(k.uvm.aiodoned_lock)
    k.uvm.aio_done.insert_tail(bp)
    wakeup(k, chan(k.uvm, "aiodoned"))
    mtx_leave(k.uvm.aiodoned_lock)


def uvm_aio_aiodone_pages(
    k: Kernel, pgs: list[VmPage], npages: int, write: bool, error: int
) -> None:
    """uvm_aio_aiodone_pages: finish the pages of a completed async pageout.

    => called in thread context (the aiodone daemon), never sleeps
    => the pages are swap-backed and busy; no owner lock is taken (as in 1.89)
    => error 0: clear ref/mod and set PG_CLEAN (the page stays on its queue with its new
       slot; a later daemon pass frees it as clean)
    => error ENOMEM: the page stays dirty and keeps its slot (1.89)
    => any other error (PORT, upstream fixed this in uvm_pager.c 1.94): the page stays
       dirty and loses its slot, and the whole slot range is marked bad. 1.89 set PG_CLEAN
       here, so the daemon freed the page and its data was lost.
    => then every page is un-busied; released pages are freed (with their anon)
    """
    pg = pgs[0]
    swap = (pg.uanon is not None and pg.uobject is None) or bool(pg.pg_flags & uvm_page.PQ_AOBJ)
    KASSERTMSG(k, swap, "uvm_aio_aiodone_pages: not a swap pageout")
    KASSERTMSG(k, write, "uvm_aio_aiodone_pages: async read")

    swslot = 0
    if error:
        if pg.uobject is not None:
            swslot = uvm_aobj.uao_find_swslot(k, pg.uobject, pg.offset >> PAGE_SHIFT)
        else:
            assert pg.uanon is not None
            swslot = pg.uanon.an_swslot
        KASSERTMSG(k, swslot > 0, "uvm_aio_aiodone_pages: failed page has no slot")

    for i in range(npages):
        pg = pgs[i]
        KASSERTMSG(k, not (pg.pg_flags & uvm_page.PG_FAKE), "uvm_aio_aiodone_pages: fake page")
        if not error:
            # the write worked: the page is clean
            k.pmap.pmap_clear_reference(pg)
            k.pmap.pmap_clear_modify(pg)
            pg.pg_flags |= uvm_page.PG_CLEAN
        elif error != ENOMEM:
            # PORT: upstream fixed this in uvm_pager.c 1.94: a failed write keeps the page
            # dirty (1.89 marked it clean and so lost it) and forgets the slot, which is
            # marked bad below, so the next pageout gets the page a fresh slot
            _aiodone_dropslot(k, pg)

    # un-busy (and free the released pages); the caller must not hold the page queues
    # since uvm_page_unbusy takes them to free a released page
    unbusy: list[VmPage | None] = list(pgs)
    uvm_page.uvm_page_unbusy(k, unbusy, npages)

    if error and error != ENOMEM:
        uvm_swap.uvm_swap_markbad(k, swslot, npages)
        log.warning("uvm_aio_aiodone_pages.write_error", error=error, swslot=swslot, npages=npages)


def uvm_aio_aiodone(bp: Buf) -> None:
    """uvm_aio_aiodone: the thread-context done handler of an async pager buf.

    => called as ``bp.b_iodone(bp)`` by the aiodone daemon, after uvm_aio_biodone queued
       the buf; never sleeps
    => unmaps the pages, frees the bounce pages of an encrypted write, finishes the pages
       and returns the buf to its pool
    """
    k = bp.b_kernel
    assert k is not None
    npages = bp.b_bufsize >> PAGE_SHIFT
    KASSERT(k, npages <= MAXPHYS >> PAGE_SHIFT)

    error = (bp.b_error if bp.b_error else int(EIO)) if bp.b_flags & B_ERROR else 0
    write = (bp.b_flags & B_READ) == 0

    pgs: list[VmPage] = bp.b_pages[:npages]  # uvm_atopg() of each page of the mapping
    uvm_pagermapout(k, npages)
    # the bounce pages of an encrypted write (only async writes come here)
    if pgs[0].pg_flags & uvm_page.PQ_ENCRYPT:
        uvm_swap.uvm_swap_freepages(k, pgs, npages)
        # PORT: upstream is done ("goto freed": it cleaned the originals when it encrypted
        # them); here they waited, busy and dirty, for the outcome of the write
        pgs = bp.b_origpages[:npages]
    uvm_aio_aiodone_pages(k, pgs, npages, write, error)
    vfs_bio.bufpool_put(k)


# --- port helpers -----------------------------------------------------------------------------


def _aiodone_dropslot(k: Kernel, pg: VmPage) -> None:
    """PORT: forget a failed page's swap slot (the write-error deviation).

    The page is PG_BUSY, so only the I/O owner (us) may change its slot, and nothing awaits
    here. An anon's slot is written directly, as 1.89 writes the page flags without the anon
    lock. An aobj slot is changed under the object lock when it is free; if a sleeping
    thread holds it, the slot stays: uvm_swap_free never frees a bad slot, so the next
    pageout (which drops the old slot first) still moves the page to fresh slots.
    """
    if pg.uobject is None:
        assert pg.uanon is not None
        pg.uanon.an_swslot = 0
        return
    uobj = pg.uobject
    if rw_write_held(uobj.vmobjlock):
        uvm_aobj.uao_set_swslot(k, uobj, pg.offset >> PAGE_SHIFT, 0)
    elif rw_enter_nosleep(uobj.vmobjlock, RW_WRITE) == 0:
        uvm_aobj.uao_set_swslot(k, uobj, pg.offset >> PAGE_SHIFT, 0)
        rw_exit(uobj.vmobjlock)
