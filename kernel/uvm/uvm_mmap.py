"""uvm_mmap.c: system call interface into VM system, plus kernel vm_mmap interface.

Port of the parts of OpenBSD sys/uvm/uvm_mmap.c (as of 2022) that the emulated processes use:
``sys_mmap`` and ``sys_munmap`` with ``uvm_mmapanon`` and ``uvm_mmapfile``.

Mappings a process can make:
- private anonymous memory (MAP_ANON | MAP_PRIVATE): an amap, zero-filled on first touch;
- shared anonymous memory (MAP_SHARED with an aobj handle, or MAP_ANON | MAP_SHARED for a
  fresh one): the aobj's pages, swap-backed;
- a file (MAP_SHARED or MAP_PRIVATE with a vnode object handle): the vnode's pages; a
  private file mapping is copy-on-write into an amap.

Deviations (PORT):
- There are no file descriptors: the handle is the object itself, and the caller gives the
  mapping its own reference (``uvm_objref``), which the map entry keeps and drops at unmap.
  ``uvm_shm_create`` makes the named shared regions the machine hands out, like shm_open(3)
  would; files come from the machine-dependent code (a vnode over a disk, then uvn_attach).
- C returns the address through ``retval``: here ``(error, addr)``.
- No MAP_STACK, MAP_CONCEAL, pinsyscalls, immutable mappings or resource limits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import kernel.uvm.uvm_aobj as uvm_aobj
import kernel.uvm.uvm_map as uvm_map
from kernel.sys.errno import EINVAL, ENOMEM
from kernel.sys.mman import MAP_ANON, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, Prot
from kernel.sys.param import PAGE_MASK
from kernel.uvm.uvm_object import UVM_OBJ_IS_AOBJ, UVM_OBJ_IS_VNODE

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.sys.proc import Proc
    from kernel.uvm.uvm_map import VmMap
    from kernel.uvm.uvm_object import UvmObject

PROT_MASK: Final = Prot(0x07)  # sys/mman.h

__all__ = [
    "sys_mmap",
    "sys_munmap",
    "uvm_mmapanon",
    "uvm_mmapfile",
    "uvm_objref",
    "uvm_shm_create",
]


async def sys_mmap(
    k: Kernel,
    p: Proc,
    addr: int,
    size: int,
    prot: Prot,
    flags: int,
    handle: UvmObject | None,
    pos: int,
) -> tuple[int, int]:
    """sys_mmap: mmap system call.

    => the size is rounded up to whole pages; with MAP_FIXED ``addr`` must be page aligned
       and the range is replaced (upstream: it must be free unless it was mapped before)
    => ``handle``: None for MAP_ANON, else an aobj or vnode object carrying the reference
       the mapping keeps (dropped here on error)
    => returns (errno, address); may sleep
    """
    # first, extract syscall args from the uap.
    if prot & ~PROT_MASK:
        return int(EINVAL), 0
    if (flags & (MAP_SHARED | MAP_PRIVATE)) == (MAP_SHARED | MAP_PRIVATE):
        return int(EINVAL), 0
    if (flags & MAP_ANON) and handle is not None:
        return int(EINVAL), 0
    pageoff = pos & PAGE_MASK
    if pageoff:
        return int(EINVAL), 0
    if size <= 0:
        return int(EINVAL), 0
    size = (size + PAGE_MASK) & ~PAGE_MASK  # round up
    if flags & MAP_FIXED:
        if addr & PAGE_MASK:
            return int(EINVAL), 0
        if addr + size > uvm_map.VM_MAXUSER_ADDRESS or addr + size < addr:
            return int(EINVAL), 0
    vm = p.p_vmspace
    assert vm is not None
    map: VmMap = vm.vm_map

    # now let kernel internal function uvm_mmap do the work.
    if handle is None:
        if not (flags & MAP_ANON):
            return int(EINVAL), 0
        return await uvm_mmapanon(k, map, addr, size, prot, PROT_MASK, flags)
    error, va = await uvm_mmapfile(k, map, addr, size, prot, PROT_MASK, flags, handle, pos)
    return error, va


async def sys_munmap(k: Kernel, p: Proc, addr: int, size: int) -> int:
    """sys_munmap: unmap a users memory

    => returns an errno; may sleep
    """
    # align the address to a page boundary, and adjust the size accordingly
    if addr & PAGE_MASK or size <= 0:
        return int(EINVAL)
    size = (size + PAGE_MASK) & ~PAGE_MASK
    # Check for illegal addresses.  Watch out for address wrap...
    # Note that VM_*_ADDRESS are not constants due to casts (argh).
    if addr + size > uvm_map.VM_MAXUSER_ADDRESS or addr + size < addr:
        return int(EINVAL)
    vm = p.p_vmspace
    assert vm is not None
    await uvm_map.uvm_unmap(k, vm.vm_map, addr, addr + size)
    return 0


async def uvm_mmapanon(
    k: Kernel, map: VmMap, addr: int, size: int, prot: Prot, maxprot: Prot, flags: int
) -> tuple[int, int]:
    """uvm_mmapanon: internal version of mmap for anons

    - used by sys_mmap
    => private: an amap (zero fill on demand); shared: a new aobj
    => returns (errno, address); may sleep
    """
    uvmflag = 0
    uobj: UvmObject | None = None
    if flags & MAP_FIXED:
        uvmflag |= uvm_map.UVM_FLAG_FIXED | uvm_map.UVM_FLAG_UNMAP
    if flags & MAP_SHARED:
        uobj = uvm_shm_create(k, size)
        inherit = uvm_map.MAP_INHERIT_SHARE
    else:
        # PORT: the amap is made now (UVM_FLAG_OVERLAY), not through needs-copy.
        uvmflag |= uvm_map.UVM_FLAG_OVERLAY
        inherit = uvm_map.MAP_INHERIT_COPY
    uvmflag = uvm_map.UVM_MAPFLAG(prot, maxprot, inherit, uvm_map.MADV_NORMAL, uvmflag)
    error, addr = await uvm_map.uvm_map(k, map, addr, size, uobj, 0, 0, uvmflag)
    if error != 0 and uobj is not None:
        await _pgo_detach(k, uobj)
    return error, addr


async def uvm_mmapfile(
    k: Kernel,
    map: VmMap,
    addr: int,
    size: int,
    prot: Prot,
    maxprot: Prot,
    flags: int,
    uobj: UvmObject,
    foff: int,
) -> tuple[int, int]:
    """uvm_mmapfile: internal version of mmap for files (and, PORT, named aobjs)

    - used by sys_mmap
    => ``uobj`` carries the reference the mapping keeps; dropped here on error
    => returns (errno, address); may sleep
    """
    uvmflag = 0
    if flags & MAP_FIXED:
        uvmflag |= uvm_map.UVM_FLAG_FIXED | uvm_map.UVM_FLAG_UNMAP
    if not (UVM_OBJ_IS_VNODE(uobj) or UVM_OBJ_IS_AOBJ(uobj)):
        await _pgo_detach(k, uobj)
        return int(EINVAL), 0
    if flags & MAP_SHARED:
        inherit = uvm_map.MAP_INHERIT_SHARE
    else:
        if UVM_OBJ_IS_AOBJ(uobj):  # PORT: a named shared region is always shared
            await _pgo_detach(k, uobj)
            return int(EINVAL), 0
        # private file mapping: copy-on-write into an amap
        uvmflag |= uvm_map.UVM_FLAG_COPYONW | uvm_map.UVM_FLAG_OVERLAY
        inherit = uvm_map.MAP_INHERIT_COPY
    uvmflag = uvm_map.UVM_MAPFLAG(prot, maxprot, inherit, uvm_map.MADV_NORMAL, uvmflag)
    error, addr = await uvm_map.uvm_map(k, map, addr, size, uobj, foff, 0, uvmflag)
    if error != 0:
        await _pgo_detach(k, uobj)
        if error == ENOMEM:
            return int(ENOMEM), 0
    return error, addr


def uvm_shm_create(k: Kernel, size: int) -> UvmObject:
    """PORT: a new anonymous object of ``size`` bytes (shm_open(3) + ftruncate), holding one
    reference for the caller."""
    return uvm_aobj.uao_create(k, size, 0)


async def uvm_objref(k: Kernel, uobj: UvmObject) -> None:
    """PORT: take a reference on ``uobj`` for a new mapping (pgo_reference)."""
    ref = uobj.pgops.pgo_reference
    if ref is not None:
        await ref(k, uobj)


# --- port helpers ---------------------------------------------------------------------------


async def _pgo_detach(k: Kernel, uobj: UvmObject) -> None:
    detach = uobj.pgops.pgo_detach
    if detach is not None:
        await detach(k, uobj)
