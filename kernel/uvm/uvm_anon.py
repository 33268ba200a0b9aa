"""uvm_anon.c: anon operations.

Port of the behaviour of OpenBSD sys/uvm/uvm_anon.c (1.5x, 2021-2023) and uvm_anon.h (reference
§1.2, §1.11). Comments are the port's own wording.

An anon is one page of anonymous memory: its data is resident (``an_page``), in swap
(``an_swslot``), or both. Anons live in amaps and share their amap's lock.

Deviations:
- ``uvm_anon_release`` frees the anon's swap slot with ``uvm_anon_dropswap`` directly, as
  later revisions do. The 2021-2023 code called ``uvm_anfree``, which, the page being gone
  by then, counted the slot as "only in swap" and took one off ``uvmexp.swpgonly`` for a
  page that was never counted there (swpgonly drifted low, and could trip its KASSERT).
  When the read failed the page *was* counted: uvmfault_anonget counts it out before calling
  here (uvm_fault.py), which later upstream revisions, releasing the same way, never do.
- ``uvm_anon_release`` also removes the page's mappings before freeing it (later revisions
  do; ``uvm_pageclean`` here checks under DIAGNOSTIC that a freed page has none).
- ``uvm_anon_release`` tolerates a caller that cannot sleep and so does not hold the anon's
  lock (uvm_page_unbusy from the aiodone path; upstream it takes the lock there): it takes
  the lock without sleeping when it is free. A released anon has no references and is in
  no amap, so nothing else can reach it even when another thread holds the shared lock.
- The anon pool never runs dry (Python objects): ``uvm_analloc`` never fails, ``uvm_anwait``
  returns at once. ``uvm_anon_pagein`` (swapoff only) is not ported: there is no swapoff.
- ``rw_obj_hold``/``rw_obj_free`` are the ``refs`` count of kern_synch's RWLock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import kernel.uvm.uvm_page as uvm_page
import kernel.uvm.uvm_swap as uvm_swap
from kernel.kern.kern_synch import RW_WRITE, rw_enter_nosleep, rw_exit, rw_lock_held, rw_write_held
from kernel.sys.mman import PROT_NONE
from kernel.sys.systm import KASSERT, KASSERTMSG

if TYPE_CHECKING:
    from kernel.kern.kern_synch import RWLock
    from kernel.kernel import Kernel
    from kernel.uvm.uvm_page import VmPage

__all__ = [
    "VmAnon",
    "uvm_analloc",
    "uvm_anfree",
    "uvm_anfree_list",
    "uvm_anon_dropswap",
    "uvm_anon_release",
    "uvm_anwait",
]


@dataclass(eq=False, slots=True)
class VmAnon:
    """struct vm_anon. Locks: (A) an_lock (the amap's lock).

    The data is in one of three states: a page and no slot (never paged out, or its slot was
    dropped), a page and a slot (paged in, or paged out and not yet freed: then a PG_CLEAN
    page's data equals the slot's), or a slot and no page (only in swap; counted in
    uvmexp.swpgonly). An anon with a resident PG_CLEAN page always has a slot.
    """

    an_lock: RWLock | None = None  # lock, shared with the amap; None while unowned
    an_ref: int = 0  # (A) reference count
    an_page: VmPage | None = None  # (A) if in RAM
    an_swslot: int = 0  # (A) drum swap slot: 0 = none, SWSLOT_BAD = unreadable

    def __repr__(self) -> str:
        return f"<vm_anon ref={self.an_ref} page={self.an_page!r} swslot={self.an_swslot}>"


def uvm_analloc(k: Kernel) -> VmAnon:
    """uvm_analloc: allocate a new anon.

    => the anon has one reference, no lock, no page and no slot
    => PORT: never fails (C returns NULL when the pool is empty)
    """
    anon = VmAnon()
    anon.an_lock = None
    anon.an_ref = 1
    anon.an_page = None
    anon.an_swslot = 0
    return anon


def uvm_anfree_list(k: Kernel, anon: VmAnon, pgl: list[VmPage] | None) -> None:
    """uvm_anfree_list: free a single anon.

    => the anon must already be out of its amap (if it was in one), and its lock (the
       amap's) write-held if it has one
    => a busy resident page (I/O in flight) is only marked PG_RELEASED, with an extra
       reference on the lock: whoever owns the I/O frees page and anon later
       (uvm_anon_release); the anon is not freed now
    => an idle resident page is unmapped and freed (or, with ``pgl``, cleaned and put on
       that list for the caller to free)
    => takes the page queues
    """
    pg = anon.an_page
    KASSERTMSG(k, anon.an_lock is None or rw_write_held(anon.an_lock),
               "uvm_anfree: anon not locked")
    KASSERTMSG(k, anon.an_ref == 0, "uvm_anfree: anon still referenced")

    # dispose of the page, if it is resident
    if pg is not None:
        assert anon.an_lock is not None
        # busy: I/O in progress. tell its owner to free page and anon when it is done.
        if pg.pg_flags & uvm_page.PG_BUSY:
            pg.pg_flags |= uvm_page.PG_RELEASED
            anon.an_lock.refs += 1  # rw_obj_hold(anon->an_lock)
            return
        k.pmap.pmap_page_protect(pg, PROT_NONE)
        if pgl is not None:
            # clean the page and leave it on pgl for the caller to free
            uvm_page.uvm_lock_pageq(k)
            uvm_page.uvm_pageclean(k, pg)
            uvm_page.uvm_unlock_pageq(k)
            pgl.append(pg)
        else:
            uvm_page.uvm_lock_pageq(k)  # lock out pagedaemon
            uvm_page.uvm_pagefree(k, pg)  # bye bye
            uvm_page.uvm_unlock_pageq(k)  # free the daemon
    elif anon.an_swslot != 0:
        # this page is no longer only in swap. (a SWSLOT_BAD slot counts too: a failed read
        # left its page counted in swpgonly)
        KASSERTMSG(k, k.uvmexp.swpgonly > 0, "uvm_anfree: swpgonly underflow")
        k.uvmexp.swpgonly -= 1
        if anon.an_swslot == uvm_swap.SWSLOT_BAD:  # PORT: see uvm_swap.py's swpgonlybad
            uvm_swap.swpgonlybad_add(k, -1)
    anon.an_lock = None

    # free any swap resources
    uvm_anon_dropswap(k, anon)

    # the anon itself goes back to the pool
    KASSERT(k, anon.an_page is None)
    KASSERT(k, anon.an_swslot == 0)


def uvm_anfree(k: Kernel, anon: VmAnon) -> None:
    """uvm_anfree: free a single anon (uvm_anfree_list with no page list)."""
    uvm_anfree_list(k, anon, None)


async def uvm_anwait(k: Kernel) -> None:
    """uvm_anwait: wait for memory to become available to allocate an anon.

    => may sleep (PORT: never does: the anon pool never runs dry)
    """
    return None


def uvm_anon_dropswap(k: Kernel, anon: VmAnon) -> None:
    """uvm_anon_dropswap: release any swap resources from this anon.

    => anon must be locked or have a reference count of 0
    => a SWSLOT_BAD slot is forgotten (uvm_swap_free ignores it)
    """
    KASSERT(k, anon.an_ref == 0 or (anon.an_lock is not None and rw_lock_held(anon.an_lock)))
    if anon.an_swslot == 0:
        return
    uvm_swap.uvm_swap_free(k, anon.an_swslot, 1)
    anon.an_swslot = 0


def uvm_anon_release(k: Kernel, anon: VmAnon) -> None:
    """uvm_anon_release: release an anon and its page.

    => the anon has no references; its page is PG_BUSY and PG_RELEASED (uvm_anfree found it
       busy)
    => anon must be locked; the lock is released here, and the extra lock reference
       uvm_anfree took for the PG_RELEASED case is dropped
    => takes the page queues
    """
    pg = anon.an_page
    lock = anon.an_lock
    assert lock is not None, "uvm_anon_release: anon has no lock"
    # PORT: see the module docstring: a caller that cannot sleep does not hold the lock
    held = rw_write_held(lock) or rw_enter_nosleep(lock, RW_WRITE) == 0
    assert pg is not None
    KASSERTMSG(k, pg.pg_flags & uvm_page.PG_RELEASED, "uvm_anon_release: page not released")
    KASSERTMSG(k, pg.pg_flags & uvm_page.PG_BUSY, "uvm_anon_release: page not busy")
    KASSERT(k, pg.uobject is None)
    KASSERT(k, pg.uanon is anon)
    KASSERTMSG(k, anon.an_ref == 0, "uvm_anon_release: anon still referenced")

    k.pmap.pmap_page_protect(pg, PROT_NONE)  # PORT: see the module docstring
    uvm_page.uvm_lock_pageq(k)
    uvm_page.uvm_pagefree(k, pg)
    uvm_page.uvm_unlock_pageq(k)
    KASSERT(k, anon.an_page is None)
    # PORT: drop the slot directly, not through uvm_anfree (see the module docstring)
    anon.an_lock = None
    uvm_anon_dropswap(k, anon)
    if held:
        rw_exit(lock)
    # note: the extra reference was taken for the PG_RELEASED case.
    lock.refs -= 1  # rw_obj_free(lock)
