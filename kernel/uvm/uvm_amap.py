"""uvm_amap.c: amap operations.

Port of the parts of OpenBSD sys/uvm/uvm_amap.c and uvm_amap.h (as of 2022) that private
anonymous memory needs. An amap ("anonymous map") is the upper layer of a map entry: an
array of slots, one per page, each empty or holding an anon. All anons of an amap share the
amap's lock (``am_lock``), as upstream does since 2021.

Deviations (PORT):
- Slots live in a dict keyed by slot number (upstream: chunks of 16 slots in a hash or a
  flat array, plus the ``am_slots``/``am_bckptr`` dense index). Walks that C does over
  ``am_slots`` go over ``sorted()`` keys, so they are deterministic.
- No per-page reference counts (``am_ppref``). Processes never share or copy amaps here
  (kern_fork.py: no copy-on-write), so the references to one amap are the map entries that
  a clip split it into, and they cover disjoint slot ranges. ``amap_unref`` of a range thus
  wipes exactly that range, which is what ``amap_pp_adjref`` ends up doing upstream when a
  range's reference count drops to zero.
- ``amap_copy`` (needs-copy) is not ported: private mappings get their amap when they are
  mapped (UVM_FLAG_OVERLAY), see uvm_map.py.
- Allocation cannot fail (Python objects), so ``amap_alloc`` takes no wait flag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import kernel.uvm.uvm_anon as uvm_anon
from kernel.kern.kern_synch import RW_WRITE, RWLock, rw_enter, rw_exit, rw_write_held
from kernel.sys.param import PAGE_SHIFT
from kernel.sys.systm import KASSERT, KASSERTMSG, Panic

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.uvm.uvm_anon import VmAnon

__all__ = [
    "AMAP_SHARED",
    "VmAmap",
    "VmAref",
    "amap_add",
    "amap_alloc",
    "amap_lock",
    "amap_lookup",
    "amap_lookups",
    "amap_splitref",
    "amap_unadd",
    "amap_unlock",
    "amap_unref",
    "amap_wipeout",
    "amap_wiperange",
]

AMAP_SHARED: Final = 0x1  # amap is shared
AMAP_REFALL: Final = 0x2  # amap_ref: reference entire amap


@dataclass(eq=False, slots=True)
class VmAmap:
    """struct vm_amap. Locks: (A) am_lock, [I] immutable after creation."""

    am_lock: RWLock  # [I] lock shared by the amap and all its anons
    am_nslot: int  # [I] number of slots
    am_ref: int = 1  # (A) reference count (map entries pointing here)
    am_flags: int = 0  # (A) flags
    am_nused: int = 0  # (A) number of slots in use
    am_anon: dict[int, VmAnon] = field(default_factory=dict)  # (A) PORT: slot -> anon

    def __repr__(self) -> str:
        return f"<vm_amap nslot={self.am_nslot} nused={self.am_nused} ref={self.am_ref}>"


@dataclass(eq=False, slots=True)
class VmAref:
    """struct vm_aref: a map entry's reference to (part of) an amap."""

    ar_pageoff: int = 0  # page offset into amap we start
    ar_amap: VmAmap | None = None  # pointer to amap


def amap_alloc(k: Kernel, sz: int) -> VmAmap:
    """amap_alloc: allocate an amap to manage "sz" bytes of anonymous VM.

    => the amap is returned unlocked, with a reference count of one
    """
    slots = sz >> PAGE_SHIFT
    return VmAmap(am_lock=RWLock("amaplk"), am_nslot=slots)


async def amap_lock(k: Kernel, amap: VmAmap, lock_type: int) -> None:
    """amap_lock: lock an amap (and thus all its anons). => may sleep"""
    await rw_enter(k, amap.am_lock, lock_type)


def amap_unlock(amap: VmAmap) -> None:
    """amap_unlock: unlock an amap."""
    rw_exit(amap.am_lock)


def amap_lookup(aref: VmAref, offset: int) -> VmAnon | None:
    """amap_lookup: look up a page in an amap.

    => amap should be locked by caller.
    => offset is a byte offset from the start of the map entry
    """
    amap = aref.ar_amap
    assert amap is not None
    slot = (offset >> PAGE_SHIFT) + aref.ar_pageoff
    if slot >= amap.am_nslot:
        raise Panic(f"amap_lookup: offset out of range ({slot} >= {amap.am_nslot})")
    return amap.am_anon.get(slot)


def amap_lookups(aref: VmAref, offset: int, npages: int) -> list[VmAnon | None]:
    """amap_lookups: look up a range of pages in an amap.

    => amap should be locked by caller.
    => PORT: the anons are returned (C fills the caller's array).
    """
    amap = aref.ar_amap
    assert amap is not None
    slot = (offset >> PAGE_SHIFT) + aref.ar_pageoff
    if slot + npages > amap.am_nslot:
        raise Panic("amap_lookups: offset out of range")
    return [amap.am_anon.get(slot + i) for i in range(npages)]


def amap_add(k: Kernel, aref: VmAref, offset: int, anon: VmAnon, replace: bool) -> int:
    """amap_add: add (or replace) a page to an amap.

    => amap should be locked by caller.
    => anon must have the lock associated with this amap.
    => returns 0 (C: ENOMEM when a chunk cannot be allocated)
    """
    amap = aref.ar_amap
    assert amap is not None
    KASSERTMSG(k, rw_write_held(amap.am_lock), "amap_add: amap not write-locked")
    slot = (offset >> PAGE_SHIFT) + aref.ar_pageoff
    if slot >= amap.am_nslot:
        raise Panic("amap_add: offset out of range")
    KASSERTMSG(k, anon.an_lock is amap.am_lock, "amap_add: anon has another lock")
    if replace:
        if amap.am_anon.get(slot) is None:
            raise Panic("amap_add: replacing null anon")
    else:
        if amap.am_anon.get(slot) is not None:
            raise Panic("amap_add: slot in use")
        amap.am_nused += 1
    amap.am_anon[slot] = anon
    return 0


def amap_unadd(aref: VmAref, offset: int) -> None:
    """amap_unadd: remove a page from an amap.

    => amap should be locked by caller.
    """
    amap = aref.ar_amap
    assert amap is not None
    slot = (offset >> PAGE_SHIFT) + aref.ar_pageoff
    if amap.am_anon.pop(slot, None) is None:
        raise Panic("amap_unadd: nothing there")
    amap.am_nused -= 1


def amap_splitref(origref: VmAref, splitref: VmAref, offset: int) -> None:
    """amap_splitref: split a single reference into two separate references.

    => called from uvm_map's clip routines
    => origref's map should be locked
    => origref->ar_amap should be unlocked (we will lock)
    """
    amap = origref.ar_amap
    assert amap is not None
    leftslots = offset >> PAGE_SHIFT
    if leftslots == 0:
        raise Panic("amap_splitref: split at zero offset")
    if amap.am_nslot - origref.ar_pageoff - leftslots <= 0:
        raise Panic("amap_splitref: map size check failed")
    amap.am_ref += 1
    splitref.ar_amap = amap
    splitref.ar_pageoff = origref.ar_pageoff + leftslots


async def amap_unref(k: Kernel, amap: VmAmap, offset: int, len_: int, all_: bool) -> None:
    """amap_unref: remove a reference to an amap.

    => caller must remove all pmap-level references to this amap before
       dropping the reference
    => called from uvm_unmap_detach [only]  ... note that entry is no
       longer part of a map
    => offset and len_ are in pages (the entry's ar_pageoff and size)
    => may sleep (takes the amap lock)
    """
    await amap_lock(k, amap, RW_WRITE)
    # if we are the last reference, free the amap and return.
    amap.am_ref -= 1
    if amap.am_ref == 0:
        amap_wipeout(k, amap)  # drops final ref and frees
        return
    # otherwise just drop the reference count(s)
    if not all_:
        # PORT: the range is referenced by this entry only (module docstring).
        amap_wiperange(k, amap, offset, len_)
    amap_unlock(amap)


def amap_wipeout(k: Kernel, amap: VmAmap) -> None:
    """amap_wipeout: wipeout all anons in an amap; then free the amap!

    => Called from amap_unref when the final reference to an amap is
       discarded (i.e. when reference count drops to 0)
    => amap must be write-locked; it is unlocked (and freed) on return
    """
    KASSERT(k, amap.am_ref == 0)
    for slot in sorted(amap.am_anon):
        anon = amap.am_anon.pop(slot)
        _amap_anon_unref(k, amap, anon)
    amap.am_nused = 0
    # Finally, destroy the amap.
    amap_unlock(amap)
    amap.am_lock.refs -= 1  # rw_obj_free(amap->am_lock)


def amap_wiperange(k: Kernel, amap: VmAmap, slotoff: int, slots: int) -> None:
    """amap_wiperange: wipe out a range of an amap.

    => Both the amap and its anons must be write-locked.
    """
    for slot in [s for s in sorted(amap.am_anon) if slotoff <= s < slotoff + slots]:
        anon = amap.am_anon.pop(slot)
        amap.am_nused -= 1
        _amap_anon_unref(k, amap, anon)


# --- port helpers ---------------------------------------------------------------------------


def _amap_anon_unref(k: Kernel, amap: VmAmap, anon: VmAnon) -> None:
    """Drop the amap's reference to ``anon``; free it when that was the last one."""
    KASSERTMSG(k, anon.an_lock is amap.am_lock, "amap_wipeout: anon has another lock")
    anon.an_ref -= 1
    if anon.an_ref == 0:
        uvm_anon.uvm_anfree(k, anon)
