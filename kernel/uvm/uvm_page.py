"""uvm_page.c: page management.

Port of OpenBSD sys/uvm/uvm_page.c,v 1.171 and uvm_page.h,v 1.69 (the parts the page daemon
and its callers use), as described in the reference §1.5-§1.6.

Deviations:
- vm_page structures are created lazily, the first time a frame is allocated
  (``PHYS_TO_VM_PAGE``), so a machine of 16 GiB boots without four million objects.
- An object's page tree is a dict keyed by offset (style C9).
- ``uvm_pagealloc`` allocates through ``uvm_pmr_getpages_nowait`` (uvm_pmemrange.py): the C
  function is called with UVM_PLA_NOWAIT and never sleeps.
- ``uvm_pagewait`` is the helper later revisions of uvm_page.c have for waiting on a busy
  page; the 2022 pagers wrote its steps out at each call, and share it here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import kernel.uvm.uvm_anon as uvm_anon
import kernel.uvm.uvm_aobj as uvm_aobj
import kernel.uvm.uvm_pmemrange as uvm_pmemrange
from kernel.kern.kern_synch import (
    INFSLP,
    MUTEX_ASSERT_LOCKED,
    PNORELOCK,
    PVM,
    mtx_enter,
    mtx_leave,
    rw_lock_held,
    rw_write_held,
    rwsleep_nsec,
    wakeup,
)
from kernel.sys.flags import fast_ops
from kernel.sys.mman import PROT_NONE
from kernel.sys.param import PAGE_SHIFT
from kernel.sys.param import atop as atop  # re-exported: the page daemon tests import it here
from kernel.sys.param import ptoa as ptoa  # re-exported: the page daemon tests import it here
from kernel.sys.queue import TailQEntry
from kernel.sys.systm import KASSERT, KASSERTMSG, Panic

if TYPE_CHECKING:
    from kernel.kern.kern_synch import RWLock
    from kernel.kernel import Kernel
    from kernel.uvm.uvm_anon import VmAnon
    from kernel.uvm.uvm_object import UvmObject

@fast_ops
class PgFlags(enum.IntFlag):
    """pg_flags (uvm_page.h): values exact."""

    PG_BUSY = 0x00000001  # page is locked
    PG_WANTED = 0x00000002  # someone is waiting for page
    PG_TABLED = 0x00000004  # page is in VP table
    PG_CLEAN = 0x00000008  # page has not been modified
    PG_CLEANCHK = 0x00000010  # clean bit has been checked
    PG_RELEASED = 0x00000020  # page released while paging
    PG_FAKE = 0x00000040  # page is not yet initialized
    PG_RDONLY = 0x00000080  # page must be mapped read-only
    PG_ZERO = 0x00000100  # page is pre-zero'd
    PG_DEV = 0x00000200  # page is in device space, lay off

    PQ_FREE = 0x00010000  # page is on free list
    PQ_INACTIVE = 0x00020000  # page is in inactive list
    PQ_ACTIVE = 0x00040000  # page is in active list
    PQ_ITER = 0x00080000  # page is an iterator marker (the 1.154 daemon's scans)
    PQ_ANON = 0x00100000  # page is part of an anon, rather than an uvm_object
    PQ_AOBJ = 0x00200000  # page is part of an anonymous uvm_object
    PQ_SWAPBACKED = PQ_ANON | PQ_AOBJ
    PQ_ENCRYPT = 0x00400000  # page needs {en,de}cryption

    PG_PMAP0 = 0x01000000  # used by some pmaps
    PG_PMAP1 = 0x02000000
    PG_PMAP2 = 0x04000000
    PG_PMAP3 = 0x08000000
    PG_PMAP4 = 0x10000000
    PG_PMAP5 = 0x20000000


# PORT: the PG_*/PQ_* names are plain ints, and so is pg_flags: every operator of an
# enum.IntFlag runs Python code in enum.py (about 1 µs), and a fault does some forty of
# them. PgFlags names the bits when a page is printed.
PG_BUSY: Final = int(PgFlags.PG_BUSY)
PG_WANTED: Final = int(PgFlags.PG_WANTED)
PG_TABLED: Final = int(PgFlags.PG_TABLED)
PG_CLEAN: Final = int(PgFlags.PG_CLEAN)
PG_CLEANCHK: Final = int(PgFlags.PG_CLEANCHK)
PG_RELEASED: Final = int(PgFlags.PG_RELEASED)
PG_FAKE: Final = int(PgFlags.PG_FAKE)
PG_RDONLY: Final = int(PgFlags.PG_RDONLY)
PG_ZERO: Final = int(PgFlags.PG_ZERO)
PG_DEV: Final = int(PgFlags.PG_DEV)
PQ_FREE: Final = int(PgFlags.PQ_FREE)
PQ_INACTIVE: Final = int(PgFlags.PQ_INACTIVE)
PQ_ACTIVE: Final = int(PgFlags.PQ_ACTIVE)
PQ_ITER: Final = int(PgFlags.PQ_ITER)
PQ_ANON: Final = int(PgFlags.PQ_ANON)
PQ_AOBJ: Final = int(PgFlags.PQ_AOBJ)
PQ_SWAPBACKED: Final = int(PgFlags.PQ_SWAPBACKED)
PQ_ENCRYPT: Final = int(PgFlags.PQ_ENCRYPT)

# uvm_pagealloc flags (uvm_extern.h)
UVM_PGA_USERESERVE: Final = 0x0001  # ok to use reserve pages
UVM_PGA_ZERO: Final = 0x0002  # returned page must be zero'd


@dataclass(eq=False, slots=True)
class VmPage:
    """struct vm_page. Locks: (O) owner's lock, (P) uvm.pageqlock, (F) fpageqlock, [I] immutable."""

    phys_addr: int  # [I] physical address of page
    pageq: TailQEntry[VmPage] = field(default_factory=TailQEntry)  # (P) queue info for FIFO queue or free list
    uanon: VmAnon | None = None  # (O,P) anon
    uobject: UvmObject | None = None  # (O,P) object
    offset: int = 0  # (O,P) offset into object (in bytes)
    pg_flags: int = PQ_FREE  # object flags [P or O]
    wire_count: int = 0  # (P) wired down map refs
    pg_version: int = 0  # PORT: bumped on every free (uvm_check, stale-pointer tests)

    def __repr__(self) -> str:
        return f"<vm_page {self.phys_addr >> PAGE_SHIFT:#x} {PgFlags(self.pg_flags)!r}>"


def VM_PAGE_TO_PHYS(pg: VmPage) -> int:
    return pg.phys_addr


def PHYS_TO_VM_PAGE(k: Kernel, pa: int) -> VmPage:
    """PHYS_TO_VM_PAGE: the vm_page of a managed frame (created on first use; see module doc)."""
    f = pa >> PAGE_SHIFT
    pg: VmPage | None = k.pages[f]
    if pg is None:
        pg = VmPage(phys_addr=f << PAGE_SHIFT)
        k.pages[f] = pg
    return pg


# --- locks ------------------------------------------------------------------------------------


def uvm_lock_pageq(k: Kernel) -> None:
    mtx_enter(k.uvm.pageqlock)


def uvm_unlock_pageq(k: Kernel) -> None:
    mtx_leave(k.uvm.pageqlock)


def uvm_lock_fpageq(k: Kernel) -> None:
    mtx_enter(k.uvm.fpageqlock)


def uvm_unlock_fpageq(k: Kernel) -> None:
    mtx_leave(k.uvm.fpageqlock)


# --- object page trees ------------------------------------------------------------------------


def uvm_pageinsert(k: Kernel, pg: VmPage) -> None:
    """uvm_pageinsert: insert a page in its object. => caller must lock object"""
    uobj = pg.uobject
    assert uobj is not None
    KASSERTMSG(k, not (pg.pg_flags & PG_TABLED), "uvm_pageinsert: already inserted")
    dupe = uobj.memt.get(pg.offset)
    if dupe is not None:
        raise Panic(f"uvm_pageinsert: already inserted ({dupe!r} at {pg.offset:#x})")
    uobj.memt[pg.offset] = pg
    pg.pg_flags |= PG_TABLED
    uobj.uo_npages += 1


def uvm_pageremove(k: Kernel, pg: VmPage) -> None:
    """uvm_pageremove: remove page from object. => caller must lock object"""
    uobj = pg.uobject
    assert uobj is not None
    KASSERT(k, pg.pg_flags & PG_TABLED)
    del uobj.memt[pg.offset]
    uobj.uo_npages -= 1
    pg.uobject = None
    pg.pg_flags &= ~PG_TABLED


def uvm_pagelookup(obj: UvmObject, off: int) -> VmPage | None:
    """uvm_pagelookup: look up a page. => caller should lock object"""
    return obj.memt.get(off)


# --- allocation and free ----------------------------------------------------------------------


def uvm_pagealloc(
    k: Kernel, obj: UvmObject | None, off: int, anon: VmAnon | None, flags: int
) -> VmPage | None:
    """uvm_pagealloc: allocate a page and add it to an object or an anon.

    => the page is returned BUSY and FAKE, CLEAN unless zeroing was asked for; the caller must
       put it on a paging queue itself
    => returns None when no page could be had; never sleeps
    """
    KASSERTMSG(k, obj is None or anon is None, "uvm_pagealloc: obj and anon != NULL")
    pmr_flags = uvm_pmemrange.UVM_PLA_NOWAIT
    if (flags & UVM_PGA_USERESERVE) or (obj is not None and obj is k.uvm.kernel_object):
        pmr_flags |= uvm_pmemrange.UVM_PLA_USERESERVE
    if flags & UVM_PGA_ZERO:
        pmr_flags |= uvm_pmemrange.UVM_PLA_ZERO
    pgl: list[VmPage] = []
    if uvm_pmemrange.uvm_pmr_getpages_nowait(k, 1, 0, 0, 1, 0, 1, pmr_flags, pgl) != 0:
        return None
    pg = pgl[0]
    uvm_pagealloc_pg(k, pg, obj, off, anon)
    pg.pg_flags |= PG_BUSY | PG_FAKE
    if flags & UVM_PGA_ZERO:
        pg.pg_flags &= ~PG_CLEAN
    else:
        pg.pg_flags |= PG_CLEAN
    return pg


def uvm_pagealloc_pg(
    k: Kernel, pg: VmPage, obj: UvmObject | None, off: int, anon: VmAnon | None
) -> None:
    """uvm_pagealloc_pg: attach a freshly allocated page to its owner."""
    pg.offset = off
    pg.uobject = obj
    pg.uanon = anon
    if anon is not None:
        anon.an_page = pg
        pg.pg_flags |= PQ_ANON
    elif obj is not None:
        uvm_pageinsert(k, pg)


def uvm_pageclean(k: Kernel, pg: VmPage) -> None:
    """uvm_pageclean: clean page of all its identity (object, anon, queues, wiring).

    => erase page's identity (i.e. remove from object)
    => caller must lock page queues if `pg' is managed
    => assumes all valid mappings of pg are gone
    """
    if k.config.diagnostic and k.pmap.pmap_page_mapped(pg):
        raise Panic(f"uvm_pageclean: {pg!r} still has mappings")
    if pg.pg_flags & PG_TABLED:
        uvm_pageremove(k, pg)
    # now remove the page from the queues
    uvm_pagedequeue(k, pg)
    # if the page was wired, unwire it now.
    if pg.wire_count:
        pg.wire_count = 0
        k.uvmexp.wired -= 1
    if pg.uanon is not None:
        pg.uanon.an_page = None
        pg.uanon = None
    pg.uobject = None
    # Clean page state bits.
    pg.pg_flags &= ~(
        PQ_ANON | PQ_AOBJ | PQ_ENCRYPT | PG_ZERO | PG_FAKE | PG_BUSY | PG_RELEASED | PG_CLEAN
        | PG_CLEANCHK
    )


def uvm_pagefree(k: Kernel, pg: VmPage) -> None:
    """uvm_pagefree: free page.

    => erase page's identity (i.e. remove from object)
    => put page on free list
    => caller must lock page queues if `pg' is managed
    => assumes all valid mappings of pg are gone
    """
    if pg.pg_flags & PQ_FREE:
        raise Panic(f"uvm_pagefree: freeing free page {pg!r}")
    uvm_pageclean(k, pg)
    uvm_pmemrange.uvm_pmr_freepages(k, pg, 1)


def uvm_page_unbusy(k: Kernel, pgs: list[VmPage | None], npgs: int) -> None:
    """uvm_page_unbusy: unbusy an array of pages.

    => pages must either all belong to the same object, or all belong to anons.
    => if pages are object-owned, object must be locked.
    => if pages are anon-owned, anons must have 0 refcount.
    => caller must make sure that anon-owned pages are not PG_RELEASED.
    """
    for i in range(npgs):
        pg = pgs[i]
        if pg is None or pg is _PGO_DONTCARE:
            continue
        if pg.pg_flags & PG_WANTED:
            wakeup(k, pg)
        if pg.pg_flags & PG_RELEASED:
            uobj = pg.uobject
            if uobj is not None:
                uvm_lock_pageq(k)
                k.pmap.pmap_page_protect(pg, PROT_NONE)
                # XXX won't happen right now
                if pg.pg_flags & PQ_AOBJ:
                    uvm_aobj.uao_dropswap(k, uobj, pg.offset >> PAGE_SHIFT)
                uvm_pagefree(k, pg)
                uvm_unlock_pageq(k)
            else:
                assert pg.uanon is not None
                uvm_anon.uvm_anon_release(k, pg.uanon)
        else:
            pg.pg_flags &= ~(PG_WANTED | PG_BUSY)


_PGO_DONTCARE: Final[Any] = object()  # PGO_DONTCARE: an array slot with no page


async def uvm_pagewait(k: Kernel, pg: VmPage, lock: RWLock, wmesg: str) -> None:
    """uvm_pagewait: sleep until busy ``pg`` is un-busied.

    => ``pg`` is PG_BUSY; ``lock``, its owner's lock, is held (read or write)
    => ``lock`` is released, not taken again: the caller looks the page up anew
    => may sleep
    """
    KASSERT(k, rw_lock_held(lock))
    KASSERTMSG(k, pg.pg_flags & PG_BUSY, "uvm_pagewait: page not busy")
    pg.pg_flags |= PG_WANTED
    await rwsleep_nsec(k, pg, lock, PVM | PNORELOCK, wmesg, INFSLP)


# --- paging queues ----------------------------------------------------------------------------


def uvm_pagewire(k: Kernel, pg: VmPage) -> None:
    """uvm_pagewire: wire the page, thus removing it from the daemon's grasp.

    => caller must lock page queues
    """
    MUTEX_ASSERT_LOCKED(k.uvm.pageqlock)
    if pg.wire_count == 0:
        uvm_pagedequeue(k, pg)
        k.uvmexp.wired += 1
    pg.wire_count += 1


def uvm_pageunwire(k: Kernel, pg: VmPage) -> None:
    """uvm_pageunwire: unwire the page; activate it if its wire count drops to zero.

    => caller must lock page queues
    """
    MUTEX_ASSERT_LOCKED(k.uvm.pageqlock)
    pg.wire_count -= 1
    if pg.wire_count == 0:
        uvm_pageactivate(k, pg)
        k.uvmexp.wired -= 1


def uvm_pagedeactivate(k: Kernel, pg: VmPage) -> None:
    """uvm_pagedeactivate: deactivate page.

    => caller must lock page queues
    => caller must check to make sure page is not wired
    => object that page belongs to must be locked (so we can adjust pg->flags)
    """
    MUTEX_ASSERT_LOCKED(k.uvm.pageqlock)
    if pg.pg_flags & PQ_ACTIVE:
        k.uvm.page_active.remove(pg)
        pg.pg_flags &= ~PQ_ACTIVE
        k.uvmexp.active -= 1
    if not (pg.pg_flags & PQ_INACTIVE):
        KASSERTMSG(k, pg.wire_count == 0, "uvm_pagedeactivate: wired page")
        k.uvm.page_inactive.insert_tail(pg)
        pg.pg_flags |= PQ_INACTIVE
        k.uvmexp.inactive += 1
        k.pmap.pmap_clear_reference(pg)
        # update the "clean" bit.  this isn't 100%
        # accurate, and doesn't have to be.  we'll
        # re-sync it after we zap all mappings when
        # scanning the inactive list.
        if (pg.pg_flags & PG_CLEAN) and k.pmap.pmap_is_modified(pg):
            pg.pg_flags &= ~PG_CLEAN


def uvm_pageactivate(k: Kernel, pg: VmPage) -> None:
    """uvm_pageactivate: activate page.

    => caller must lock page queues
    """
    MUTEX_ASSERT_LOCKED(k.uvm.pageqlock)
    uvm_pagedequeue(k, pg)
    if pg.wire_count == 0:
        k.uvm.page_active.insert_tail(pg)
        pg.pg_flags |= PQ_ACTIVE
        k.uvmexp.active += 1


def uvm_page_owner_locked_p(pg: VmPage, exclusive: bool) -> bool:
    """uvm_page_owner_locked_p: is the lock of ``pg``'s owner held (for writing if
    ``exclusive``)? A weak check, for assertions only; a page with no owner passes.

    Port: no dummy objects exist here (UVM_OBJ_IS_DUMMY), so an object's lock is always
    looked at. Only the 1.154 daemon's page-queue helpers below assert it.
    """
    if pg.uobject is not None:
        lock = pg.uobject.vmobjlock
        return rw_write_held(lock) if exclusive else rw_lock_held(lock)
    if pg.uanon is not None:
        alock = pg.uanon.an_lock
        assert alock is not None
        return rw_write_held(alock) if exclusive else rw_lock_held(alock)
    return True


def uvm_pagedeactivate_154(k: Kernel, pg: VmPage) -> None:
    """uvm_pagedeactivate as uvm_page.c has it beside uvm_pdaemon.c 1.154: deactivate the
    page (unless wired) and make its next access fault.

    => called with the page queues unlocked (it takes them); the page's owner is locked
    => a wired page, or one already inactive, is left alone
    => removes every mapping of the page first (pmap_page_protect PROT_NONE)

    Port: the 1.154 page daemon calls it; the kernel's own callers keep the 2022 form above.
    """
    KASSERT(k, uvm_page_owner_locked_p(pg, False))
    if pg.wire_count > 0:
        KASSERT(k, not (pg.pg_flags & (PQ_INACTIVE | PQ_ACTIVE)))
        return

    uvm_lock_pageq(k)
    if pg.pg_flags & PQ_INACTIVE:
        uvm_unlock_pageq(k)
        return

    # the next access to the page must fault
    k.pmap.pmap_page_protect(pg, PROT_NONE)

    uvm_pagedequeue(k, pg)
    k.uvm.page_inactive.insert_tail(pg)
    pg.pg_flags |= PQ_INACTIVE
    k.uvmexp.inactive += 1
    uvm_unlock_pageq(k)

    k.pmap.pmap_clear_reference(pg)
    # PG_CLEAN follows the modify bit, roughly: the inactive scan syncs it again later
    if (pg.pg_flags & PG_CLEAN) and k.pmap.pmap_is_modified(pg):
        pg.pg_flags &= ~PG_CLEAN


def uvm_pageactivate_154(k: Kernel, pg: VmPage) -> None:
    """uvm_pageactivate as uvm_page.c has it beside uvm_pdaemon.c 1.154: activate the page
    (unless wired).

    => called with the page queues unlocked (it takes them); the page's owner is locked

    Port: the 1.154 page daemon calls it; the kernel's own callers keep the 2022 form above.
    """
    KASSERT(k, uvm_page_owner_locked_p(pg, False))
    if pg.wire_count > 0:
        KASSERT(k, not (pg.pg_flags & (PQ_INACTIVE | PQ_ACTIVE)))
        return

    uvm_lock_pageq(k)
    uvm_pagedequeue(k, pg)
    k.uvm.page_active.insert_tail(pg)
    pg.pg_flags |= PQ_ACTIVE
    k.uvmexp.active += 1
    uvm_unlock_pageq(k)


def uvm_pagedequeue(k: Kernel, pg: VmPage) -> None:
    """uvm_pagedequeue: remove a page from any paging list.

    => caller must lock page queues
    """
    if pg.pg_flags & PQ_ACTIVE:
        k.uvm.page_active.remove(pg)
        pg.pg_flags &= ~PQ_ACTIVE
        k.uvmexp.active -= 1
    if pg.pg_flags & PQ_INACTIVE:
        k.uvm.page_inactive.remove(pg)
        pg.pg_flags &= ~PQ_INACTIVE
        k.uvmexp.inactive -= 1


def uvm_pagezero(k: Kernel, pg: VmPage) -> None:
    """uvm_pagezero: zero fill a page."""
    pg.pg_flags &= ~PG_CLEAN
    k.pmap.pmap_zero_page(pg)


def uvm_pagecopy(k: Kernel, src: VmPage, dst: VmPage) -> None:
    """uvm_pagecopy: copy a page."""
    dst.pg_flags &= ~PG_CLEAN
    k.pmap.pmap_copy_page(src, dst)


def UVM_PAGE_OWN(pg: VmPage, tag: str | None) -> None:
    """UVM_PAGE_OWN: debug ownership tracking (UVM_PAGE_TRKOWN); a no-op in normal kernels."""

