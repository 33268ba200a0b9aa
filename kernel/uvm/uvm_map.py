"""uvm_map.c: uvm map operations.

Port of the parts of OpenBSD sys/uvm/uvm_map.c and uvm_map.h (as of 2022) that a process's
address space needs: map entries for private anonymous memory (an amap), shared anonymous
memory (an aobj) and files (a vnode object); the map lock and its version ("timestamp") that
uvm_fault relies on; map, unmap, clipping; vmspace create and free.

Deviations (PORT):
- The entries are a list sorted by start address, searched with ``bisect`` (upstream: the
  ``uvm_map_addr`` red-black tree plus free-space trees). There are no free-space trees:
  ``uvm_map_findspace`` is a deterministic first fit from ``VM_MMAP_BASE`` (upstream
  randomises mmap addresses).
- ``uvm_map`` returns ``(error, addr)`` (C returns the address through ``vaddr_t *addr``) and
  ``uvm_map_lookup_entry`` returns the entry or None (C: boolean plus out-parameter).
- A private mapping gets its amap when it is mapped (UVM_FLAG_OVERLAY), never lazily through
  needs-copy: there is no fork, so there is nothing to copy (uvm_amap.py).
- Map entries are never merged, and wired entries are not supported (no mlock).
- The map entry's object union ``object.uvm_obj`` is the field ``uvm_obj`` (there is no
  submap here).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import kernel.uvm.uvm_amap as uvm_amap
from kernel.kern.kern_synch import RW_READ, RW_WRITE, RWLock, rw_enter, rw_exit
from kernel.sys.errno import EACCES, EINVAL, ENOMEM
from kernel.sys.mman import PROT_NONE, Prot
from kernel.sys.param import PAGE_MASK, PAGE_SHIFT, PAGE_SIZE
from kernel.sys.systm import KASSERTMSG, Panic

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.uvm.uvm_amap import VmAref
    from kernel.uvm.uvm_object import UvmObject

__all__ = [
    "MADV_NORMAL",
    "MADV_SEQUENTIAL",
    "MAP_INHERIT_COPY",
    "MAP_INHERIT_SHARE",
    "UVM_ET_COPYONWRITE",
    "UVM_ET_OBJ",
    "UVM_FLAG_COPYONW",
    "UVM_FLAG_FIXED",
    "UVM_FLAG_OVERLAY",
    "UVM_FLAG_UNMAP",
    "UVM_MAPFLAG",
    "VM_MAXUSER_ADDRESS",
    "VM_MIN_ADDRESS",
    "VM_MMAP_BASE",
    "VmMap",
    "VmMapEntry",
    "Vmspace",
    "uvm_map",
    "uvm_map_lookup_entry",
    "uvm_unmap",
    "uvmspace_alloc",
    "uvmspace_free",
    "vm_map_lock",
    "vm_map_lock_read",
    "vm_map_unlock",
    "vm_map_unlock_read",
]

# amd64 vmparam.h
VM_MIN_ADDRESS: Final = 0
VM_MAXUSER_ADDRESS: Final = 0x00007F7FFFFFC000
VM_MMAP_BASE: Final = 0x0000000010000000  # PORT: where first-fit address allocation starts

# map entry types (uvm_map.h)
UVM_ET_OBJ: Final = 0x0001  # it is a uvm_object
UVM_ET_SUBMAP: Final = 0x0002  # it is a vm_map submap
UVM_ET_COPYONWRITE: Final = 0x0004  # copy_on_write
UVM_ET_NEEDSCOPY: Final = 0x0008  # needs_copy
UVM_ET_HOLE: Final = 0x0010  # no backend
UVM_ET_NOFAULT: Final = 0x0020  # don't fault

# vm_map flags
VM_MAP_PAGEABLE: Final = 0x01  # ro: entries are pageable
VM_MAP_ISVMSPACE: Final = 0x40  # ro: map is a vmspace

# inheritance (sys/mman.h) and advice
MAP_INHERIT_SHARE: Final = 0  # share with child
MAP_INHERIT_COPY: Final = 1  # copy into child
MADV_NORMAL: Final = 0  # no further special treatment
MADV_RANDOM: Final = 1  # expect random page references
MADV_SEQUENTIAL: Final = 2  # expect sequential page references

# uvm_map flags (uvm_extern.h)
UVM_FLAG_FIXED: Final = 0x0010000  # find space
UVM_FLAG_OVERLAY: Final = 0x0020000  # establish overlay
UVM_FLAG_NOMERGE: Final = 0x0040000  # don't merge map entries
UVM_FLAG_COPYONW: Final = 0x0080000  # set copy_on_write flag
UVM_FLAG_UNMAP: Final = 0x1000000  # unmap to make space

PROT_MASK: Final = 0x07
UVM_INH_MASK: Final = 0x30


def UVM_MAPFLAG(prot: int, maxprot: int, inh: int, advice: int, flags: int) -> int:
    """UVM_MAPFLAG: pack protection, max protection, inheritance, advice and flags."""
    return (maxprot << 8) | prot | (inh << 4) | (advice << 12) | flags


def UVM_PROTECTION(x: int) -> Prot:
    return Prot(x & PROT_MASK)


def UVM_MAXPROTECTION(x: int) -> Prot:
    return Prot((x >> 8) & PROT_MASK)


def UVM_INHERIT(x: int) -> int:
    return (x & UVM_INH_MASK) >> 4


def UVM_ADVICE(x: int) -> int:
    return (x >> 12) & 0x7


@dataclass(eq=False, slots=True)
class VmMapEntry:
    """struct vm_map_entry. Locks: (M) the map's lock."""

    start: int  # (M) start address
    end: int  # (M) end address
    uvm_obj: UvmObject | None = None  # (M) object.uvm_obj: the lower layer
    offset: int = 0  # (M) offset into object
    etype: int = 0  # (M) entry type
    protection: Prot = PROT_NONE  # (M) protection code
    max_protection: Prot = PROT_NONE  # (M) maximum protection
    inheritance: int = MAP_INHERIT_COPY  # (M) inheritance
    wired_count: int = 0  # (M) can be paged if == 0
    aref: VmAref = field(default_factory=lambda: uvm_amap.VmAref())  # (M) anonymous overlay
    advice: int = MADV_NORMAL  # (M) madvise advice

    def __repr__(self) -> str:
        return f"<vm_map_entry {self.start:#x}-{self.end:#x} etype={self.etype:#x}>"


@dataclass(eq=False, slots=True)
class VmMap:
    """struct vm_map. Locks: (M) ``lock``, [I] immutable."""

    pmap: Any  # [I] physical map (an emu.mmu.AddressSpace through k.pmap)
    min_offset: int  # [I] first address
    max_offset: int  # [I] last address
    flags: int = VM_MAP_PAGEABLE | VM_MAP_ISVMSPACE  # [I]
    lock: RWLock = field(default_factory=lambda: RWLock("vmmaplk"))  # lock for map data
    timestamp: int = 0  # (M) version number, bumped on every write lock
    size: int = 0  # (M) virtual size
    nentries: int = 0  # (M) number of entries
    entries: list[VmMapEntry] = field(default_factory=list)  # (M) PORT: sorted by start
    _starts: list[int] = field(default_factory=list)  # (M) PORT: entries' starts, for bisect


@dataclass(eq=False, slots=True)
class Vmspace:
    """struct vmspace: a process's address space."""

    vm_map: VmMap  # VM address map
    vm_refcnt: int = 1  # number of references


# --- locking --------------------------------------------------------------------------------


async def vm_map_lock(k: Kernel, map: VmMap) -> None:
    """vm_map_lock: write-lock the map and bump its version. => may sleep"""
    await rw_enter(k, map.lock, RW_WRITE)
    map.timestamp += 1


def vm_map_unlock(map: VmMap) -> None:
    """vm_map_unlock: release a write lock."""
    rw_exit(map.lock)


async def vm_map_lock_read(k: Kernel, map: VmMap) -> None:
    """vm_map_lock_read: read-lock the map. => may sleep"""
    await rw_enter(k, map.lock, RW_READ)


def vm_map_unlock_read(map: VmMap) -> None:
    """vm_map_unlock_read: release a read lock."""
    rw_exit(map.lock)


# --- vmspaces -------------------------------------------------------------------------------


def uvmspace_alloc(k: Kernel) -> Vmspace:
    """uvmspace_alloc: allocate a vmspace with a new, empty pmap.

    => the vmspace is returned with a reference count of one
    """
    pm = k.pmap.pmap_create()
    vm_map = VmMap(pmap=pm, min_offset=VM_MIN_ADDRESS, max_offset=VM_MAXUSER_ADDRESS)
    return Vmspace(vm_map=vm_map)


async def uvmspace_free(k: Kernel, vm: Vmspace) -> None:
    """uvmspace_free: free a vmspace data structure.

    => drops a reference; the last one unmaps everything, frees the amaps, anons, pages and
       swap slots behind them, and destroys the pmap
    => may sleep
    """
    vm.vm_refcnt -= 1
    if vm.vm_refcnt > 0:
        return
    map = vm.vm_map
    dead: list[VmMapEntry] = []
    await vm_map_lock(k, map)
    if map.entries:
        await uvm_unmap_remove(k, map, map.min_offset, map.max_offset, dead)
    vm_map_unlock(map)
    await uvm_unmap_detach(k, dead)
    k.pmap.pmap_destroy(map.pmap)


# --- lookup ---------------------------------------------------------------------------------


def uvm_map_lookup_entry(map: VmMap, address: int) -> VmMapEntry | None:
    """uvm_map_lookup_entry: find map entry at or before an address.

    => map must at least be read-locked by caller
    => PORT: returns the entry containing ``address``, or None (C: FALSE)
    """
    i = bisect.bisect_right(map._starts, address) - 1
    if i >= 0:
        entry = map.entries[i]
        if entry.start <= address < entry.end:
            return entry
    return None


def uvm_map_findspace(map: VmMap, hint: int, length: int, align: int) -> int | None:
    """uvm_map_findspace: find ``length`` free bytes at or above ``hint``.

    => PORT: first fit over the sorted entries (see the module docstring); None if full
    """
    addr = max(hint, VM_MMAP_BASE, map.min_offset)
    if align > PAGE_SIZE:
        addr = (addr + align - 1) & ~(align - 1)
    i = bisect.bisect_right(map._starts, addr) - 1
    if i >= 0 and map.entries[i].end > addr:
        addr = map.entries[i].end
    for entry in map.entries[i + 1 :]:
        if align > PAGE_SIZE:
            addr = (addr + align - 1) & ~(align - 1)
        if addr + length <= entry.start:
            break
        addr = max(addr, entry.end)
    if align > PAGE_SIZE:
        addr = (addr + align - 1) & ~(align - 1)
    if addr + length > map.max_offset:
        return None
    return addr


def uvm_map_isavail(map: VmMap, addr: int, sz: int) -> bool:
    """uvm_map_isavail: is [addr, addr+sz) inside the map and free of entries?"""
    if addr < map.min_offset or addr + sz > map.max_offset or addr + sz <= addr:
        return False
    i = bisect.bisect_left(map._starts, addr + sz)
    return i == 0 or map.entries[i - 1].end <= addr


# --- map / unmap ----------------------------------------------------------------------------


async def uvm_map(
    k: Kernel,
    map: VmMap,
    addr: int,
    sz: int,
    uobj: UvmObject | None,
    uoffset: int,
    align: int,
    flags: int,
) -> tuple[int, int]:
    """uvm_map: establish a valid mapping in map

    => *addr and sz must be a multiple of PAGE_SIZE.
    => map must be unlocked.
    => <uobj,uoffset> value meanings (4 cases):
         [1] <NULL,uoffset>         == uoffset is a hint for PMAP_PREFER
         [2] <NULL,UVM_UNKNOWN_OFFSET>      == don't PMAP_PREFER
         [3] <uobj,uoffset>         == normal mapping
         [4] <uobj,UVM_UNKNOWN_OFFSET>      == uvm_map finds offset based on VA
    => the object's reference is given to the new entry (the caller drops it on error)
    => returns (errno, address); may sleep
    """
    prot = UVM_PROTECTION(flags)
    maxprot = UVM_MAXPROTECTION(flags)
    if sz == 0 or (sz & PAGE_MASK) or (addr & PAGE_MASK):
        return int(EINVAL), addr
    if (prot & maxprot) != prot:
        return int(EACCES), addr

    await vm_map_lock(k, map)
    dead: list[VmMapEntry] = []
    if flags & UVM_FLAG_FIXED:
        if flags & UVM_FLAG_UNMAP and addr >= map.min_offset and addr + sz <= map.max_offset:
            await uvm_unmap_remove(k, map, addr, addr + sz, dead)
        if not uvm_map_isavail(map, addr, sz):
            vm_map_unlock(map)
            await uvm_unmap_detach(k, dead)
            return int(ENOMEM), addr
    else:
        found = uvm_map_findspace(map, addr, sz, align)
        if found is None:
            vm_map_unlock(map)
            return int(ENOMEM), addr
        addr = found

    entry = VmMapEntry(start=addr, end=addr + sz)
    entry.protection = prot
    entry.max_protection = maxprot
    entry.inheritance = UVM_INHERIT(flags)
    entry.advice = UVM_ADVICE(flags)
    if uobj is not None:
        entry.etype |= UVM_ET_OBJ
        entry.uvm_obj = uobj
        entry.offset = uoffset
    if flags & UVM_FLAG_COPYONW:
        entry.etype |= UVM_ET_COPYONWRITE
    if flags & UVM_FLAG_OVERLAY:
        entry.aref.ar_pageoff = 0
        entry.aref.ar_amap = uvm_amap.amap_alloc(k, sz)
    _uvm_mapent_addr_insert(map, entry)
    map.size += sz
    vm_map_unlock(map)
    await uvm_unmap_detach(k, dead)
    return 0, addr


async def uvm_unmap(k: Kernel, map: VmMap, start: int, end: int) -> None:
    """uvm_unmap: remove mappings from a vm_map (from "start" up to "stop")

    => caller must check alignment and size
    => map must be unlocked (we will lock it)
    => may sleep
    """
    dead: list[VmMapEntry] = []
    await vm_map_lock(k, map)
    await uvm_unmap_remove(k, map, start, end, dead)
    vm_map_unlock(map)
    await uvm_unmap_detach(k, dead)


async def uvm_unmap_remove(
    k: Kernel, map: VmMap, start: int, end: int, dead: list[VmMapEntry]
) -> None:
    """uvm_unmap_remove: remove mappings from a vm_map (from "start" up to "end")

    => caller must check alignment and size
    => map must be write-locked
    => the removed entries are appended to ``dead``, for uvm_unmap_detach once the map is
       unlocked
    => may sleep (clipping takes an object reference: pgo_reference is a coroutine)
    """
    KASSERTMSG(k, map.lock.rwl_owner is not None, "uvm_unmap_remove: map not write-locked")
    if start >= end:
        return
    # Find first affected entry.
    i = bisect.bisect_right(map._starts, start) - 1
    if i < 0 or map.entries[i].end <= start:
        i += 1
    if i >= len(map.entries):
        return
    entry: VmMapEntry | None = map.entries[i]
    assert entry is not None
    if entry.start < start:
        await uvm_map_clip_start(k, map, entry, start)  # entry is now [start, ...)
    # Iterate entries until we reach end address.
    while entry is not None and entry.start < end:
        await uvm_map_clip_end(k, map, entry, end)
        nxt = _uvm_mapent_next(map, entry)
        # Kill entry: unmap its pages; the amap and object go in uvm_unmap_detach.
        if entry.wired_count:
            raise Panic(f"uvm_unmap_remove: wired entry {entry!r} (not supported)")
        k.pmap.pmap_remove(map.pmap, entry.start, entry.end)
        _uvm_mapent_addr_remove(map, entry)
        map.size -= entry.end - entry.start
        dead.append(entry)
        entry = nxt
    k.pmap.pmap_update(map.pmap)


async def uvm_unmap_detach(k: Kernel, deadq: list[VmMapEntry]) -> None:
    """uvm_unmap_detach: drop references in a chain of map entries

    => the map entries have been removed from their map and the map is unlocked
    => drops the amap references (freeing the anons, their pages and swap slots) and the
       object references
    => may sleep
    """
    for entry in deadq:
        # drop reference to amap, if we've got one
        amap = entry.aref.ar_amap
        if amap is not None:
            await uvm_amap.amap_unref(
                k,
                amap,
                entry.aref.ar_pageoff,
                (entry.end - entry.start) >> PAGE_SHIFT,
                False,
            )
            entry.aref.ar_amap = None
        # drop reference to our backing object, if we've got one
        if entry.etype & UVM_ET_OBJ and entry.uvm_obj is not None:
            await _pgo_detach(k, entry.uvm_obj)
            entry.uvm_obj = None
    deadq.clear()


async def uvm_map_clip_start(k: Kernel, map: VmMap, entry: VmMapEntry, addr: int) -> None:
    """uvm_map_clip_start: ensure that the entry begins at or after the starting address.

    => caller must lock map
    => afterwards ``entry`` is the part at and above ``addr``; a new entry holds the front
    """
    tmp = _uvm_mapent_copy(entry)
    # Put new entry in place of original entry.
    _uvm_mapent_addr_remove(map, entry)
    _uvm_mapent_addr_insert(map, tmp)
    # Invoke splitentry.
    await uvm_map_splitentry(k, map, tmp, entry, addr)


async def uvm_map_clip_end(k: Kernel, map: VmMap, entry: VmMapEntry, addr: int) -> None:
    """uvm_map_clip_end: ensure that the entry ends at or before the ending address.

    => caller must lock map
    """
    if entry.end <= addr:
        return
    tmp = _uvm_mapent_copy(entry)
    await uvm_map_splitentry(k, map, entry, tmp, addr)


async def uvm_map_splitentry(
    k: Kernel, map: VmMap, orig: VmMapEntry, next: VmMapEntry, split: int
) -> None:
    """uvm_map_splitentry: split a map entry in two at ``split``.

    => ``orig`` keeps [start, split); ``next`` (a copy of orig, not yet in the map) becomes
       [split, end) and is inserted
    => the amap reference is split and the object gains a reference
    """
    KASSERTMSG(k, orig.start < split < orig.end, "uvm_map_splitentry: split outside entry")
    adj = split - orig.start
    next.start = split
    next.end = orig.end
    orig.end = split
    if orig.aref.ar_amap is not None:
        uvm_amap.amap_splitref(orig.aref, next.aref, adj)
    if orig.etype & UVM_ET_OBJ and orig.uvm_obj is not None:
        await _pgo_reference(k, orig.uvm_obj)
        next.offset += adj
    _uvm_mapent_addr_insert(map, next)


# --- port helpers ---------------------------------------------------------------------------


def _uvm_mapent_copy(src: VmMapEntry) -> VmMapEntry:
    """uvm_mapent_copy: a new entry with src's fields (aref copied by value)."""
    return VmMapEntry(
        start=src.start,
        end=src.end,
        uvm_obj=src.uvm_obj,
        offset=src.offset,
        etype=src.etype,
        protection=src.protection,
        max_protection=src.max_protection,
        inheritance=src.inheritance,
        wired_count=src.wired_count,
        aref=uvm_amap.VmAref(src.aref.ar_pageoff, src.aref.ar_amap),
        advice=src.advice,
    )


def _uvm_mapent_addr_insert(map: VmMap, entry: VmMapEntry) -> None:
    """uvm_mapent_addr_insert: link ``entry`` into the address-sorted entries."""
    i = bisect.bisect_left(map._starts, entry.start)
    if i < len(map.entries) and map.entries[i].start < entry.end:
        raise Panic(f"uvm_mapent_addr_insert: {entry!r} overlaps {map.entries[i]!r}")
    if i > 0 and map.entries[i - 1].end > entry.start:
        raise Panic(f"uvm_mapent_addr_insert: {entry!r} overlaps {map.entries[i - 1]!r}")
    map.entries.insert(i, entry)
    map._starts.insert(i, entry.start)
    map.nentries += 1


def _uvm_mapent_addr_remove(map: VmMap, entry: VmMapEntry) -> None:
    """uvm_mapent_addr_remove: unlink ``entry``."""
    i = bisect.bisect_left(map._starts, entry.start)
    if i >= len(map.entries) or map.entries[i] is not entry:
        raise Panic(f"uvm_mapent_addr_remove: {entry!r} not in map")
    del map.entries[i]
    del map._starts[i]
    map.nentries -= 1


def _uvm_mapent_next(map: VmMap, entry: VmMapEntry) -> VmMapEntry | None:
    """RBT_NEXT(uvm_map_addr, entry)."""
    i = bisect.bisect_left(map._starts, entry.start)
    assert map.entries[i] is entry
    return map.entries[i + 1] if i + 1 < len(map.entries) else None


async def _pgo_reference(k: Kernel, uobj: UvmObject) -> None:
    """uobj->pgops->pgo_reference(uobj)."""
    ref = uobj.pgops.pgo_reference
    if ref is not None:
        await ref(k, uobj)


async def _pgo_detach(k: Kernel, uobj: UvmObject) -> None:
    """uobj->pgops->pgo_detach(uobj)."""
    detach = uobj.pgops.pgo_detach
    if detach is not None:
        await detach(k, uobj)
