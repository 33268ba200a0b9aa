"""uvm_aobj.c: the anonymous memory uvm_object pager.

Port of the behaviour of OpenBSD sys/uvm/uvm_aobj.c,v 1.107 2022/08/29 and uvm_aobj.h
(reference §1.2, §1.11). Comments are the port's own wording.

An aobj is a uvm_object whose pages are backed by swap (its pages are PQ_AOBJ). Besides its
resident pages it remembers a swap slot per page index: in a flat array for objects of at
most ``UAO_SWHASH_THRESHOLD`` (64) pages, otherwise in a hash table of clusters of
``UAO_SWHASH_CLUSTER_SIZE`` (16) slots keyed by ``pageidx >> UAO_SWHASH_CLUSTER_SHIFT``. A
cluster element exists only while one of its slots is in use. The aobj pager has no put
routine: the page daemon writes aobj pages through the swap path (uvm_swap_put).

Deviations:
- ``uao_detach`` does not sleep on busy pages (pages in pageout): it marks them PG_RELEASED
  and lets the I/O owner free them and their slots (uvm_page_unbusy). ``uao_free`` then
  leaves the slots of those still-resident pages alone, where C drops every slot (and
  asserts the pages are gone); the slot array or hash is kept until they are freed. A
  ``uao_get`` whose read fails on such a page forgets the slot it has just marked
  SWSLOT_BAD (``uao_dropswap_range``, which counts the lost page out of ``swpgonly``): the
  dead object is never looked at again.
- There is no global aobj list and no swapoff (``uao_swap_off``, ``uao_pagein``), and no
  tmpfs grow/shrink. Allocations never fail: a hash element allocation cannot panic
  (reference §4 item 9 cannot happen), UAO_FLAG_CANFAIL is accepted and ignored. The hash
  elements are counted in ``k.uao_swhash_elt_pool``; a test may give it a hard limit, and
  ``uao_set_swslot`` then returns -1 as later uvm_aobj.c does (for the 1.154 daemon).
- ``uao_reference`` is a coroutine only to share ``pgo_reference``'s type with
  uvn_reference (which takes the object lock); it never sleeps.
- ``uao_get`` returns ``(result, npages)`` for C's in/out ``*npagesp``.
- ``uvm_wait`` is called as ``await k.pdaemon.uvm_wait(k, wmsg)``: the page daemon is a
  module chosen at boot (uvm_extern.py), which this module does not import.
- ``uao_dropswap_range`` also counts a SWSLOT_BAD page (a failed swap-in) out of
  ``uvmexp.swpgonly`` and forgets its slot: upstream counts out only slots > 0, so such a page
  stays counted forever (docs/port.md, known bugs).
- Waiting for a busy page (set PG_WANTED, sleep on the page releasing the object lock) is
  ``uvm_pagewait`` of uvm_page.py, the helper later revisions of uvm_page.c have; the 2022
  code writes those steps out at each call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import structlog

import kernel.uvm.uvm_page as uvm_page
import kernel.uvm.uvm_pager as uvm_pager
import kernel.uvm.uvm_swap as uvm_swap
from kernel.kern.kern_synch import (
    RW_WRITE,
    rw_enter,
    rw_exit,
    rw_write_held,
    wakeup,
)
from kernel.sys.mman import PROT_NONE
from kernel.sys.param import PAGE_SHIFT, PAGE_SIZE, round_page, trunc_page
from kernel.sys.systm import KASSERT, KASSERTMSG, Panic
from kernel.uvm.uvm_object import (
    UVM_OBJ_IS_AOBJ,
    UVM_OBJ_IS_KERN_OBJECT,
    UVM_OBJ_KERN,
    UvmObject,
    UvmPagerOps,
    uvm_obj_destroy,
    uvm_obj_init,
)

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.uvm.uvm_page import VmPage

__all__ = [
    "UAO_FLAG_CANFAIL",
    "UAO_FLAG_KERNOBJ",
    "UAO_FLAG_KERNSWAP",
    "UAO_FLAG_NOSWAP",
    "UAO_SWHASH_CLUSTER_SHIFT",
    "UAO_SWHASH_CLUSTER_SIZE",
    "UAO_SWHASH_THRESHOLD",
    "UaoSwhashElt",
    "UvmAobj",
    "aobj_pager",
    "uao_create",
    "uao_detach",
    "uao_dropswap",
    "uao_dropswap_range",
    "uao_find_swslot",
    "uao_flush",
    "uao_get",
    "uao_reference",
    "uao_set_swslot",
]

log = structlog.get_logger("uvm.aobj")

# uvm_aobj.h: uao_create flags
UAO_FLAG_KERNOBJ: Final = 0x1  # create kernel object
UAO_FLAG_KERNSWAP: Final = 0x2  # enable kernel swap
UAO_FLAG_CANFAIL: Final = 0x4  # creation can fail
UAO_FLAG_NOSWAP: Final = 0x8  # aobj may not swap

# the hash: the object's page indexes are cut into clusters of UAO_SWHASH_CLUSTER_SIZE
UAO_SWHASH_CLUSTER_SHIFT: Final = 4
UAO_SWHASH_CLUSTER_SIZE: Final = 1 << UAO_SWHASH_CLUSTER_SHIFT
# objects bigger than this many pages use the hash, smaller ones the array
UAO_SWHASH_THRESHOLD: Final = UAO_SWHASH_CLUSTER_SIZE * 4
# number of buckets of a hash, with an upper bound
UAO_SWHASH_MAXBUCKETS: Final = 256


def UAO_SWHASH_ELT_TAG(idx: int) -> int:
    """The tag (cluster number) of page index ``idx``."""
    return idx >> UAO_SWHASH_CLUSTER_SHIFT


def UAO_SWHASH_ELT_PAGESLOT_IDX(idx: int) -> int:
    """Where page index ``idx`` sits inside its cluster."""
    return idx & (UAO_SWHASH_CLUSTER_SIZE - 1)


def UAO_SWHASH_ELT_PAGEIDX_BASE(elt: UaoSwhashElt) -> int:
    """The first page index of cluster ``elt``."""
    return elt.tag << UAO_SWHASH_CLUSTER_SHIFT


def UAO_SWHASH_BUCKETS(pages: int) -> int:
    """How many buckets a hash for ``pages`` pages gets."""
    return min(pages >> UAO_SWHASH_CLUSTER_SHIFT, UAO_SWHASH_MAXBUCKETS)


def UAO_USES_SWHASH(aobj: UvmAobj) -> bool:
    """Does ``aobj`` keep its slots in a hash (rather than an array)?"""
    return aobj.u_pages > UAO_SWHASH_THRESHOLD


@dataclass(eq=False, slots=True)
class UaoSwhashElt:
    """struct uao_swhash_elt: the slots of one cluster of page indexes."""

    tag: int  # our 'tag'
    count: int = 0  # our number of active slots
    slots: list[int] = field(default_factory=lambda: [0] * UAO_SWHASH_CLUSTER_SIZE)


@dataclass(eq=False, slots=True)
class UvmAobj(UvmObject):
    """struct uvm_aobj: an anonymous uvm_object. Locks: (o) vmobjlock, [I] set at create.

    Only one of ``u_swslots`` (array) and ``u_swhash`` (hash buckets) is used.
    """

    u_pages: int = 0  # [I] number of pages in entire object
    u_flags: int = 0  # (o) the flags (UAO_FLAG_*)
    u_swslots: list[int] | None = None  # (o) slot per page index (small objects)
    u_swhash: list[list[UaoSwhashElt]] | None = None  # (o) hash buckets (big objects)
    u_swhashmask: int = 0  # [I] mask for the hash

    def __repr__(self) -> str:
        return f"<uvm_aobj pages={self.u_pages} npages={self.uo_npages} refs={self.uo_refs}>"


def _aobj(uobj: UvmObject) -> UvmAobj:
    """(struct uvm_aobj *)uobj"""
    assert isinstance(uobj, UvmAobj) and UVM_OBJ_IS_AOBJ(uobj), f"not an aobj: {uobj!r}"
    return uobj


# --- hash table / array -----------------------------------------------------------------------


def uao_find_swhash_elt(aobj: UvmAobj, pageidx: int, create: bool) -> UaoSwhashElt | None:
    """uao_find_swhash_elt: the hash element of ``pageidx``'s cluster (made if ``create``).

    Port: allocation cannot fail, so the 2022 "can't allocate entry" panic cannot happen.
    """
    assert aobj.u_swhash is not None
    swhash = aobj.u_swhash[UAO_SWHASH_ELT_TAG(pageidx) & aobj.u_swhashmask]  # the bucket
    page_tag = UAO_SWHASH_ELT_TAG(pageidx)  # tag to search for

    # look for the tag in its bucket
    for elt in swhash:
        if elt.tag == page_tag:
            return elt
    if not create:
        return None

    # a new element, at the head of the bucket
    elt = UaoSwhashElt(tag=page_tag)
    swhash.insert(0, elt)
    return elt


def uao_find_swslot(k: Kernel, uobj: UvmObject, pageidx: int) -> int:
    """uao_find_swslot: the swap slot of page ``pageidx`` of an aobj (0 = none)."""
    aobj = _aobj(uobj)

    # a NOSWAP object never has slots
    if aobj.u_flags & UAO_FLAG_NOSWAP:
        return 0

    # hashing: look in the hash
    if UAO_USES_SWHASH(aobj):
        elt = uao_find_swhash_elt(aobj, pageidx, False)
        if elt is not None:
            return elt.slots[UAO_SWHASH_ELT_PAGESLOT_IDX(pageidx)]
        return 0

    # otherwise the array
    assert aobj.u_swslots is not None
    return aobj.u_swslots[pageidx]


def uao_set_swslot(k: Kernel, uobj: UvmObject, pageidx: int, slot: int) -> int:
    """uao_set_swslot: set the swap slot of page ``pageidx`` of an aobj.

    => the object is locked by the caller, or has no references left
    => setting a slot on a NOSWAP object panics; clearing one is fine
    => returns the old slot (the caller frees it if it wants), or -1 if a hash element was
       needed and the element pool is at its hard limit (PORT, see above)
    """
    aobj = _aobj(uobj)
    KASSERTMSG(k, rw_write_held(uobj.vmobjlock) or uobj.uo_refs == 0, "uao_set_swslot: not locked")

    # a NOSWAP object cannot take a slot
    if aobj.u_flags & UAO_FLAG_NOSWAP:
        if slot == 0:
            return 0  # a clear is ok
        raise Panic(f"uao_set_swslot: attempt to set a slot on a NOSWAP object {uobj!r}")

    # the hash: no element is made just to clear a slot that was never set
    if UAO_USES_SWHASH(aobj):
        # PORT: a new element comes from uao_swhash_elt_pool (counted, k.uao_swhash_elt_pool);
        # at the pool's hard limit (none unless a test sets one) there is none and the caller
        # gets -1, as from the uvm_aobj.c beside uvm_pdaemon.c 1.154 (2022 panicked instead)
        pool = k.uao_swhash_elt_pool
        full = pool.pr_hardlimit is not None and pool.pr_nout >= pool.pr_hardlimit
        elt = uao_find_swhash_elt(aobj, pageidx, slot != 0 and not full)
        if elt is None:
            return -1 if slot != 0 else 0
        if elt.count == 0:
            pool.pr_nout += 1  # just made: a live element always has a slot in use
        i = UAO_SWHASH_ELT_PAGESLOT_IDX(pageidx)
        oldslot = elt.slots[i]
        elt.slots[i] = slot

        # keep the element's count of used slots; an empty element goes away
        if slot:
            if oldslot == 0:
                elt.count += 1
        else:
            if oldslot:
                elt.count -= 1
            if elt.count == 0:
                assert aobj.u_swhash is not None
                aobj.u_swhash[UAO_SWHASH_ELT_TAG(pageidx) & aobj.u_swhashmask].remove(elt)
                pool.pr_nout -= 1
    else:
        # the array
        assert aobj.u_swslots is not None
        oldslot = aobj.u_swslots[pageidx]
        aobj.u_swslots[pageidx] = slot
    return oldslot


def uao_free(k: Kernel, aobj: UvmAobj) -> None:
    """uao_free: free what an aobj holds, and the aobj.

    => the aobj is dead (no references) and write-locked; it is unlocked here
    => PORT: pages still resident (released, in pageout) keep their slots; their I/O owner
       frees both. The slot array or hash then stays until they are gone.
    """
    uobj: UvmObject = aobj
    KASSERT(k, UVM_OBJ_IS_AOBJ(uobj))
    KASSERT(k, rw_write_held(uobj.vmobjlock))
    uao_dropswap_range(k, uobj, 0, 0)
    rw_exit(uobj.vmobjlock)

    if uobj.uo_npages == 0:
        # free the array or hash table itself, then the object
        if aobj.u_swhash is not None:  # PORT: elements left hold only bad slots
            k.uao_swhash_elt_pool.pr_nout -= sum(len(bucket) for bucket in aobj.u_swhash)
        aobj.u_swhash = None
        aobj.u_swslots = None
        uvm_obj_destroy(k, uobj)


# --- pager functions --------------------------------------------------------------------------


def uao_create(k: Kernel, size: int, flags: int) -> UvmObject:
    """uao_create: make a new aobj of ``size`` bytes (rounded up to pages).

    => UAO_FLAG_KERNOBJ makes the kernel object (no swap, never detached) and stores it in
       uvm.kernel_object; UAO_FLAG_KERNSWAP later gives the kernel object its slot table
    => the new object has one reference
    """
    pages = round_page(size) >> PAGE_SHIFT
    refs = 1
    if flags & UAO_FLAG_KERNOBJ:
        KASSERTMSG(k, k.uvm.kernel_object is None, "uao_create: kernel object exists")
        aobj = UvmAobj(pgops=aobj_pager, u_pages=pages, u_flags=UAO_FLAG_NOSWAP)
        refs = UVM_OBJ_KERN
    elif flags & UAO_FLAG_KERNSWAP:
        kobj = k.uvm.kernel_object
        assert isinstance(kobj, UvmAobj), "uao_create: no kernel object"
        aobj = kobj
    else:
        aobj = UvmAobj(pgops=aobj_pager, u_pages=pages, u_flags=0)

    # the slot table: a hash or an array, by size
    if flags == 0 or (flags & (UAO_FLAG_KERNSWAP | UAO_FLAG_CANFAIL)):
        if UAO_USES_SWHASH(aobj):
            nbuckets = 1
            while nbuckets < UAO_SWHASH_BUCKETS(aobj.u_pages):  # hashinit: a power of 2
                nbuckets <<= 1
            aobj.u_swhash = [[] for _ in range(nbuckets)]
            aobj.u_swhashmask = nbuckets - 1
        else:
            aobj.u_swslots = [0] * aobj.u_pages
        if flags & UAO_FLAG_KERNSWAP:
            aobj.u_flags &= ~UAO_FLAG_NOSWAP  # clear noswap
            return aobj  # done!

    # initialise the uvm_object part
    uvm_obj_init(aobj, aobj_pager, refs)
    if flags & UAO_FLAG_KERNOBJ:
        k.uvm.kernel_object = aobj
    return aobj


async def uao_reference(k: Kernel, uobj: UvmObject) -> None:
    """uao_reference: add a reference to an aobj.

    => never sleeps (a coroutine for pgo_reference's sake, see the module docstring)
    """
    # the kernel object is persistent
    if UVM_OBJ_IS_KERN_OBJECT(uobj):
        return
    uobj.uo_refs += 1


async def uao_detach(k: Kernel, uobj: UvmObject) -> None:
    """uao_detach: drop a reference to an aobj; the last one frees it.

    => frees every resident page and every swap slot; a busy page (in pageout) is marked
       PG_RELEASED instead, and its I/O owner frees it (PORT: see the module docstring)
    => may sleep (takes the object lock)
    """
    aobj = _aobj(uobj)

    # detaching from the kernel object is a no-op
    if UVM_OBJ_IS_KERN_OBJECT(uobj):
        return

    # drop the reference; the last one destroys the object
    uobj.uo_refs -= 1
    if uobj.uo_refs > 0:
        return

    # free the pages; release (rather than wait for) those under I/O
    await rw_enter(k, uobj.vmobjlock, RW_WRITE)
    for off in sorted(uobj.memt):
        pg = uobj.memt[off]
        k.pmap.pmap_page_protect(pg, PROT_NONE)
        if pg.pg_flags & uvm_page.PG_BUSY:
            pg.pg_flags |= uvm_page.PG_RELEASED
            continue
        uao_dropswap(k, uobj, pg.offset >> PAGE_SHIFT)
        uvm_page.uvm_lock_pageq(k)
        uvm_page.uvm_pagefree(k, pg)
        uvm_page.uvm_unlock_pageq(k)

    # finally, free the aobj itself
    uao_free(k, aobj)


async def uao_flush(k: Kernel, uobj: UvmObject, start: int, stop: int, flags: int) -> bool:
    """uao_flush: deactivate or free the pages of [start, stop) of an aobj.

    => the object is write-locked (and stays so); the page queues are not
    => PGO_ALLPAGES: the whole object; PGO_DEACTIVATE: deactivate; PGO_FREE: free pages and
       slots unless others reference the object (then deactivate); PGO_CLEANIT alone does
       nothing (aobj pages are cleaned by the page daemon)
    => returns True (no I/O is ever started here)
    => may sleep (waits for busy pages)
    """
    aobj = _aobj(uobj)
    KASSERT(k, rw_write_held(uobj.vmobjlock))

    if flags & uvm_pager.PGO_ALLPAGES:
        start = 0
        stop = aobj.u_pages << PAGE_SHIFT
    else:
        start = trunc_page(start)
        stop = round_page(stop)
        if stop > aobj.u_pages << PAGE_SHIFT:
            # printf("uao_flush: strange, got an out of range flush (fixed)\n")
            log.warning("uao_flush.out_of_range", stop=stop, u_pages=aobj.u_pages)
            stop = aobj.u_pages << PAGE_SHIFT

    # nothing to do unless we free or deactivate
    if not (flags & (uvm_pager.PGO_DEACTIVATE | uvm_pager.PGO_FREE)):
        return True

    curoff = start
    while curoff < stop:
        pg = uvm_page.uvm_pagelookup(uobj, curoff)
        curoff += PAGE_SIZE
        if pg is None:
            continue

        # wait for a busy page, then look at this offset again
        if pg.pg_flags & uvm_page.PG_BUSY:
            await uvm_page.uvm_pagewait(k, pg, uobj.vmobjlock, "uaoflsh")
            await rw_enter(k, uobj.vmobjlock, RW_WRITE)
            curoff -= PAGE_SIZE
            continue

        what = flags & (uvm_pager.PGO_CLEANIT | uvm_pager.PGO_FREE | uvm_pager.PGO_DEACTIVATE)
        # XXX the first three cases just deactivate the page
        deactivate = what in (
            uvm_pager.PGO_CLEANIT | uvm_pager.PGO_FREE,
            uvm_pager.PGO_CLEANIT | uvm_pager.PGO_DEACTIVATE,
            uvm_pager.PGO_DEACTIVATE,
        )
        if what == uvm_pager.PGO_FREE:
            # with other references to the object, just deactivate
            if uobj.uo_refs > 1:
                deactivate = True
            elif pg.wire_count != 0:
                continue  # XXX skip wired pages
            else:
                # free the swap slot and the page
                k.pmap.pmap_page_protect(pg, PROT_NONE)
                uao_dropswap(k, uobj, pg.offset >> PAGE_SHIFT)
                uvm_page.uvm_lock_pageq(k)
                uvm_page.uvm_pagefree(k, pg)
                uvm_page.uvm_unlock_pageq(k)
                continue
        elif not deactivate:
            raise Panic("uao_flush: weird flags")
        # deactivate_it:
        if pg.wire_count != 0:
            continue
        uvm_page.uvm_lock_pageq(k)
        k.pmap.pmap_page_protect(pg, PROT_NONE)
        uvm_page.uvm_pagedeactivate(k, pg)
        uvm_page.uvm_unlock_pageq(k)
    return True


async def uao_get(
    k: Kernel,
    uobj: UvmObject,
    offset: int,
    pps: list[VmPage | None],
    npages: int,
    centeridx: int,
    access_type: int,
    advice: int,
    flags: int,
) -> tuple[int, int]:
    """uao_get: fetch pages of an aobj.

    Three cases for a page: resident (just return it), never written (allocate a page and
    zero it), or paged out (allocate a page and read it from swap). Only the first can be
    done with PGO_LOCKED; a zero-fill is done there too when a page can be had without
    sleeping.

    => the object is write-locked; with PGO_LOCKED it stays locked and the call never
       sleeps (returns VM_PAGER_UNLOCK if the center page, or with PGO_ALLPAGES any page,
       needs I/O or waiting); without, it is unlocked on return
    => ``offset`` is the offset of pps[0], not of pps[centeridx]
    => returned pages are PG_BUSY; the caller checks PG_RELEASED, un-busies and activates
    => returns (VM_PAGER_OK / UNLOCK / ERROR, npages); with PGO_LOCKED npages is the
       number of pages found
    => may sleep (without PGO_LOCKED)
    """
    aobj = _aobj(uobj)
    KASSERT(k, rw_write_held(uobj.vmobjlock))
    maxpages = npages

    if flags & uvm_pager.PGO_LOCKED:
        # step 1a: pages that are already resident (or can be zero-filled right now)
        done = True  # be optimistic
        gotpages = 0
        current_offset = offset
        for lcv in range(maxpages):
            if pps[lcv] is uvm_page._PGO_DONTCARE:
                current_offset += PAGE_SIZE
                continue  # we do not care about this page
            ptmp = uvm_page.uvm_pagelookup(uobj, current_offset)

            # a brand new page: try to allocate it zero-filled
            if ptmp is None and uao_find_swslot(k, uobj, current_offset >> PAGE_SHIFT) == 0:
                ptmp = uvm_page.uvm_pagealloc(k, uobj, current_offset, None, uvm_page.UVM_PGA_ZERO)
                if ptmp is not None:
                    # new page
                    ptmp.pg_flags &= ~(uvm_page.PG_BUSY | uvm_page.PG_FAKE)
                    ptmp.pg_flags |= uvm_page.PQ_AOBJ

            # only a page nobody else has busy is of use
            if ptmp is None or ptmp.pg_flags & uvm_page.PG_BUSY:
                if lcv == centeridx or (flags & uvm_pager.PGO_ALLPAGES):
                    done = False  # need to do a wait or I/O!
                current_offset += PAGE_SIZE
                continue

            # useful page: busy it and plug it in
            ptmp.pg_flags |= uvm_page.PG_BUSY
            pps[lcv] = ptmp
            gotpages += 1
            current_offset += PAGE_SIZE

        # step 1b: either done, or the caller must unlock and let us wait or do I/O
        if done:
            return uvm_pager.VM_PAGER_OK, gotpages  # bingo!
        return uvm_pager.VM_PAGER_UNLOCK, gotpages

    # step 2: the pages that are not resident, or busy
    current_offset = offset
    for lcv in range(maxpages):
        # skip pages we have or do not want, and pages we do not _have_ to get
        if pps[lcv] is not None or (lcv != centeridx and not (flags & uvm_pager.PGO_ALLPAGES)):
            current_offset += PAGE_SIZE
            continue
        pageidx = current_offset >> PAGE_SHIFT

        # find the page at this offset: a busy one is waited for; an idle one is busied and
        # is ours; a missing one is allocated (busy, fake, clean) and leaves the loop with
        # pps[lcv] still None, to be filled below
        ptmp = None
        while pps[lcv] is None:
            ptmp = uvm_page.uvm_pagelookup(uobj, current_offset)

            # not resident?  allocate one now (if we can)
            if ptmp is None:
                ptmp = uvm_page.uvm_pagealloc(k, uobj, current_offset, None, 0)
                # out of RAM?
                if ptmp is None:
                    rw_exit(uobj.vmobjlock)
                    await k.pdaemon.uvm_wait(k, "uao_getpage")
                    await rw_enter(k, uobj.vmobjlock, RW_WRITE)
                    continue  # goto top of pps while loop
                # safe without the page queues: we just allocated the page
                ptmp.pg_flags |= uvm_page.PQ_AOBJ
                break  # new page ready for I/O; pps[lcv] is still None

            # resident: if busy, wait for it
            if ptmp.pg_flags & uvm_page.PG_BUSY:
                await uvm_page.uvm_pagewait(k, ptmp, uobj.vmobjlock, "uao_get")
                await rw_enter(k, uobj.vmobjlock, RW_WRITE)
                continue  # goto top of pps while loop

            # resident and idle: we own it now (the caller must un-busy it)
            ptmp.pg_flags |= uvm_page.PG_BUSY
            pps[lcv] = ptmp

        # a page we already own: next one
        if pps[lcv] is not None:
            current_offset += PAGE_SIZE
            continue
        assert ptmp is not None

        # a new fake/busy/clean page: zero it, or read it from swap
        swslot = uao_find_swslot(k, uobj, pageidx)
        if swslot == 0:
            # never existed before: just zero it
            uvm_page.uvm_pagezero(k, ptmp)
        else:
            # page it in; the object is unlocked during the I/O
            rw_exit(uobj.vmobjlock)
            rv = await uvm_swap.uvm_swap_get(k, ptmp, swslot, uvm_pager.PGO_SYNCIO)
            await rw_enter(k, uobj.vmobjlock, RW_WRITE)

            # I/O done.  check for errors.
            if rv != uvm_pager.VM_PAGER_OK:
                # the slot's data is lost: remember the page as unreadable and keep the
                # slot allocated (marked bad) so it is never used again
                swslot = uao_set_swslot(k, aobj, pageidx, uvm_swap.SWSLOT_BAD)
                uvm_swap.uvm_swap_markbad(k, swslot, 1)
                if swslot > 0:  # PORT: a bad slot counted in swpgonly (uvm_swap.py)
                    uvm_swap.swpgonlybad_add(k, 1)

                if ptmp.pg_flags & uvm_page.PG_WANTED:
                    wakeup(k, ptmp)
                released = ptmp.pg_flags & uvm_page.PG_RELEASED
                ptmp.pg_flags &= ~(uvm_page.PG_WANTED | uvm_page.PG_BUSY)
                uvm_page.uvm_lock_pageq(k)
                uvm_page.uvm_pagefree(k, ptmp)
                uvm_page.uvm_unlock_pageq(k)
                if released:
                    # PORT: the object died during the read (uao_detach) and uao_free left
                    # this page's slot to us: forget it now, counting the lost page out of
                    # swpgonly, or nothing ever would (see the module docstring)
                    uao_dropswap_range(k, uobj, pageidx, pageidx + 1)
                rw_exit(uobj.vmobjlock)
                return rv, npages

        # we have the page: its data is valid (not fake) and it is clean; still busy.
        # the caller checks PG_RELEASED, un-busies and activates it.
        ptmp.pg_flags &= ~uvm_page.PG_FAKE
        k.pmap.pmap_clear_modify(ptmp)  # ... and clean
        pps[lcv] = ptmp
        current_offset += PAGE_SIZE

    rw_exit(uobj.vmobjlock)
    return uvm_pager.VM_PAGER_OK, npages


def uao_dropswap(k: Kernel, uobj: UvmObject, pageidx: int) -> int:
    """uao_dropswap: forget page ``pageidx``'s swap slot and free it on the drum.

    => the object is locked or has no references left
    => returns the old slot (0 if none); a SWSLOT_BAD slot is forgotten, never freed
    """
    KASSERT(k, UVM_OBJ_IS_AOBJ(uobj))
    slot = uao_set_swslot(k, uobj, pageidx, 0)
    if slot:
        uvm_swap.uvm_swap_free(k, slot, 1)
    return slot


def uao_dropswap_range(k: Kernel, uobj: UvmObject, start: int, end: int) -> None:
    """uao_dropswap_range: drop the swap slots of page indexes [start, end).

    => the object is write-locked (and stays so); ``end`` 0 means "to the end"
    => the pages of the range are not resident (PORT: resident ones keep their slots)
    => every slot freed held data only in swap: swpgonly drops by their number
    => PORT: so does every SWSLOT_BAD slot forgotten: a failed swap-in (uao_get) left its page
       counted in swpgonly, and upstream's ``slot > 0`` test (still in 2026) leaves it there
       forever; the anon path (uvm_anfree) does count it out
    """
    aobj = _aobj(uobj)
    KASSERT(k, rw_write_held(uobj.vmobjlock))
    swpgonlydelta = 0
    nbad = 0  # PORT: SWSLOT_BAD slots forgotten

    if end == 0:
        end = (1 << 63) - 1  # INT64_MAX

    if UAO_USES_SWHASH(aobj):
        assert aobj.u_swhash is not None
        taglo = UAO_SWHASH_ELT_TAG(start)
        taghi = UAO_SWHASH_ELT_TAG(end)
        for bucket in aobj.u_swhash:
            for elt in list(bucket):
                if elt.tag < taglo or taghi < elt.tag:
                    continue
                startidx = UAO_SWHASH_ELT_PAGESLOT_IDX(start) if elt.tag == taglo else 0
                if elt.tag == taghi:
                    endidx = UAO_SWHASH_ELT_PAGESLOT_IDX(end)
                else:
                    endidx = UAO_SWHASH_CLUSTER_SIZE
                for j in range(startidx, endidx):
                    slot = elt.slots[j]
                    off = (UAO_SWHASH_ELT_PAGEIDX_BASE(elt) + j) << PAGE_SHIFT
                    if uvm_page.uvm_pagelookup(uobj, off) is not None:
                        continue  # PORT: released page in pageout
                    if slot > 0:
                        uvm_swap.uvm_swap_free(k, slot, 1)
                        swpgonlydelta += 1
                        KASSERT(k, elt.count > 0)
                        elt.slots[j] = 0
                        elt.count -= 1
                    elif slot == uvm_swap.SWSLOT_BAD:  # PORT: see the docstring
                        swpgonlydelta += 1
                        nbad += 1
                        elt.slots[j] = 0
                        elt.count -= 1
                if elt.count == 0:
                    bucket.remove(elt)
                    k.uao_swhash_elt_pool.pr_nout -= 1
    else:
        assert aobj.u_swslots is not None
        if aobj.u_pages < end:
            end = aobj.u_pages
        for i in range(start, end):
            slot = aobj.u_swslots[i]
            if uvm_page.uvm_pagelookup(uobj, i << PAGE_SHIFT) is not None:
                continue  # PORT: released page in pageout
            if slot > 0:
                uvm_swap.uvm_swap_free(k, slot, 1)
                swpgonlydelta += 1
                aobj.u_swslots[i] = 0  # PORT: C frees the array next; ours may live on
            elif slot == uvm_swap.SWSLOT_BAD:  # PORT: see the docstring
                swpgonlydelta += 1
                nbad += 1
                aobj.u_swslots[i] = 0

    # those slots held pages that lived only in swap
    if swpgonlydelta > 0:
        KASSERTMSG(k, k.uvmexp.swpgonly >= swpgonlydelta, "uao_dropswap_range: swpgonly underflow")
        k.uvmexp.swpgonly -= swpgonlydelta
    if nbad > 0:
        uvm_swap.swpgonlybad_add(k, -nbad)


# aobj_pager: put is handled elsewhere (the page daemon writes aobj pages to swap)
aobj_pager: Final = UvmPagerOps(
    pgo_name="aobj",
    pgo_reference=uao_reference,
    pgo_detach=uao_detach,
    pgo_flush=uao_flush,
    pgo_get=uao_get,
)

