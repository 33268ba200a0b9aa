"""machdep.c / trap.c / vm_machdep.c: the machine-dependent part of the emulated machine.

Boots a :class:`Kernel` on the emulated hardware, installs the CPU's trap handler (the page
fault path of amd64 ``trap.c``: ``uvm_fault``, then a signal if it fails), gives each new
process its CPU context (``cpu_fork``), and offers the system calls a user process makes
(the process handle a workload drives, ``emu.process.UserProcess``, is built on them).

How the machine harness uses it (``emu.board`` does this)::

    k = machdep.boot(ram, mmu, cpu, clock, [disk], KernelConfig())
    def setup(clock, tg):
        machdep.start(k)                             # kernel threads + trap handler
        p = machdep.spawn(k, "w0", body)             # a user process running body()
    await clock.run(setup)

The system-call surface (all take the kernel first; errors raise as libc would report them):

- ``await mmap(k, p, size, kind, name=, addr=, writable=) -> addr`` and ``await munmap(k,
  p, addr, size)``: private anonymous memory, a named shared region (an aobj) or a named
  file of the run directory (a vnode), through ``sys_mmap``/``sys_munmap``;
- ``spawn(k, name, body) -> Proc``: fork a user process running ``body()``; it exits
  (``exit1``) when ``body`` returns or a signal kills it;
- ``await wait(k, p, wmesg)``: sleep until ``p`` has exited (the parent's ``wait4``);
  ``await nanosleep(k, ns, wmesg)``: let ``ns`` of virtual time pass;
- ``await trap(k, ctx, vaddr, is_write)``: the page-fault entry the CPU calls (installed by
  :func:`start`).

Deviations (PORT):
- Boot is split the way init_main.py explains: :func:`boot` before the clock runs,
  :func:`start` inside it.
- Signals are exceptions: a fault the kernel refuses raises ``emu.cpu.SegmentationFault``
  (SIGSEGV), ``BusError`` (SIGBUS: the page's backing store failed) or ``MemoryFault``
  (SIGKILL: out of swap) into the workload, after recording it in ``p.error``; uncaught, the
  process exits (kern_fork.py).
- Processes have no parent: any thread may ``wait`` for any process.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Final

import structlog

import kernel.kern.init_main as init_main
import kernel.kern.kern_fork as kern_fork
import kernel.kern.kern_synch as kern_synch
import kernel.uvm.uvm_fault as uvm_fault
import kernel.uvm.uvm_mmap as uvm_mmap
import kernel.uvm.uvm_vnode as uvm_vnode
from emu.clock import Clock
from emu.cpu import BusError, Cpu, CpuContext, MemoryFault, SegmentationFault
from emu.mmu import Mmu
from emu.ram import Ram
from kernel.arch.emu import swapdev
from kernel.arch.emu.pmap import EmuPmap
from kernel.kernel import Kernel, KernelConfig
from kernel.sys.errno import EACCES, EFAULT, EIO, ENOMEM, Errno
from kernel.sys.mman import (
    MAP_ANON,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_READ,
    PROT_WRITE,
)
from kernel.sys.param import round_page
from kernel.sys.proc import Proc
from kernel.sys.systm import Panic
from kernel.uvm.uvm_extern import UVM_PDAEMON_ENTRY_POINTS

if TYPE_CHECKING:
    from devices.imagedisk import ImageDisk
    from kernel.uvm.uvm_object import UvmObject

__all__ = [
    "PDAEMON_ENTRY_POINTS",
    "EmuMachdep",
    "boot",
    "machdep_of",
    "mmap",
    "munmap",
    "nanosleep",
    "pdaemon_identity",
    "pdaemon_variants",
    "shutdown",
    "spawn",
    "start",
    "trap",
    "wait",
]

log = structlog.get_logger("arch.emu.machdep")

Body = Callable[[], Coroutine[Any, Any, None]]

_NOWAKE: Final = ("machdep", "nowake")  # nanosleep's channel: nobody wakes it


class EmuMachdep:
    """The machine-dependent glue of one boot (``k.md``): the hardware and the named
    objects (shared regions and files) processes map."""

    __slots__ = ("clock", "cpu", "filedir", "files", "mmu", "ram", "seed", "shared", "swapdevs")

    def __init__(
        self,
        ram: Ram,
        mmu: Mmu,
        cpu: Cpu,
        clock: Clock,
        swapdevs: Sequence[ImageDisk],
        filedir: str | None,
        seed: int,
    ) -> None:
        self.ram = ram
        self.mmu = mmu
        self.cpu = cpu
        self.clock = clock
        self.swapdevs = list(swapdevs)
        self.filedir = filedir
        self.seed = seed
        self.shared: dict[str, UvmObject] = {}  # name -> aobj ("shared" mappings)
        self.files: dict[str, uvm_vnode.Vnode] = {}  # name -> vnode ("file" mappings)

    def cpu_fork(self, p: Proc) -> CpuContext:
        """cpu_fork: the new process's CPU context, over its pmap's address space."""
        return self.cpu.context(p.p_vmspace.vm_map.pmap, owner=p)


def boot(
    ram: Ram,
    mmu: Mmu,
    cpu: Cpu,
    clock: Clock,
    swapdevs: Sequence[ImageDisk],
    config: KernelConfig | None = None,
    *,
    filedir: str | None = None,
    seed: int = 1,
) -> Kernel:
    """Boot a kernel on the machine: pmap, pages, reserves, buffer cache, swap, proc0.

    => runs before the clock: call :func:`start` from inside ``clock.run``'s setup next
    => ``swapdevs`` are created (open) swap disks, configured in order
    => ``filedir``: directory of the files processes map with kind "file" (None: refused)
    """
    if config is None:
        config = KernelConfig()
    k = Kernel(config=config, sched=clock, pmap=EmuPmap(mmu))
    k.spawn = clock.spawn
    k.md = EmuMachdep(ram, mmu, cpu, clock, swapdevs, filedir, seed)
    swap_ons = [swapdev.swap_on_fn(disk) for disk in swapdevs]
    init_main.main(k, ram.nframes, swap_ons)
    return k


# the functions a page daemon module provides (uvm_extern.UvmPdaemon)
PDAEMON_ENTRY_POINTS: Final = UVM_PDAEMON_ENTRY_POINTS


def pdaemon_identity(name: str) -> dict[str, str]:
    """Load the page daemon ``name`` as boot will (init_main.load_pdaemon) and say which it
    is: ``{"name": name}``, plus ``"sha256"`` of the file's content for a file. Raises what
    the loader raises (the harness checks a scenario's ``kernel.pdaemon`` with it)."""
    init_main.load_pdaemon(name)
    kind, where = init_main.pdaemon_source(name)
    if kind != "file":
        return {"name": name}
    with open(where, "rb") as f:
        return {"name": name, "sha256": hashlib.sha256(f.read()).hexdigest()}


def pdaemon_variants() -> list[str]:
    """The built-in page daemons' names ("1.105", "1.154")."""
    return list(init_main.PDAEMON_VARIANTS)


def start(k: Kernel) -> list[Proc]:
    """Second half of boot, inside the running clock: install the trap handler and start
    the kernel threads (pagedaemon, aiodoned). Returns the kernel threads' procs."""
    md = machdep_of(k)
    md.cpu.trap_handler = functools.partial(trap, k)  # no coroutine frame of its own
    return init_main.main_kthreads(k)


async def trap(k: Kernel, ctx: CpuContext, vaddr: int, is_write: bool) -> None:
    """trap: a page fault (T_PAGEFLT) from user mode.

    => calls uvm_fault on the process's map; returns when the access may be retried
    => otherwise records the signal in ``p.error`` and raises it into the process
    => may sleep
    """
    p = ctx.owner
    if not isinstance(p, Proc) or p.p_vmspace is None:
        raise Panic(f"trap: page fault at {vaddr:#x} from a context without a process")
    k.uvmexp.traps += 1
    access_type = PROT_WRITE if is_write else PROT_READ
    error = await uvm_fault.uvm_fault(
        k, p.p_vmspace.vm_map, vaddr, uvm_fault.VM_FAULT_INVALID, access_type
    )
    if error == 0:
        return
    exc: MemoryFault
    if error == ENOMEM:
        # "UVM: pid %d (%s), uid %d killed: out of swap"
        log.error("trap.out_of_swap", pid=p.p_pid, comm=p.p_comm)
        exc = MemoryFault(vaddr, is_write, "killed: out of swap")
    elif error == EIO:
        exc = BusError(vaddr, is_write, "object error (backing store)")
    elif error == EACCES:
        exc = SegmentationFault(vaddr, is_write, "invalid permissions")
    elif error == EFAULT:
        exc = SegmentationFault(vaddr, is_write, "address not mapped")
    else:
        exc = SegmentationFault(vaddr, is_write, f"uvm_fault error {_ename(error)}")
    p.error = exc
    raise exc


def _ename(error: int) -> str:
    """An error number by its name (EINVAL) for messages."""
    try:
        return Errno(error).name
    except ValueError:
        return f"errno {error}"


def _oserror(error: int, call: str) -> OSError:
    """The OSError a failed system call raises in the process: ``e.errno`` is the number, the
    message names it ("mmap(0x1000, anon): EINVAL")."""
    e = OSError(f"{call}: {_ename(error)}")
    e.errno = int(error)
    return e


def shutdown(k: Kernel) -> None:
    """Close the disks of the files processes mapped (after the clock has stopped)."""
    for vp in machdep_of(k).files.values():
        close = getattr(vp.v_dev, "close", None)
        if close is not None:
            close()


def machdep_of(k: Kernel) -> EmuMachdep:
    """The machine-dependent glue ``k.md`` of a kernel this module booted."""
    md = k.md
    if not isinstance(md, EmuMachdep):
        raise Panic("machdep: kernel was not booted by kernel.arch.emu.machdep.boot")
    return md


# --- system calls -----------------------------------------------------------------------------


def spawn(k: Kernel, name: str, body: Body) -> Proc:
    """Fork a user process ``name`` running ``body()``: a new vmspace, a CPU context, a thread.

    => must be called while the machine runs (from the clock's setup or a thread)
    => the process exits (exit1) when ``body`` returns or raises
    """
    return kern_fork.fork1(k, name, kern_fork.FORK_FORK, body)


async def wait(k: Kernel, p: Proc, wmesg: str = "wait") -> None:
    """Sleep until ``p`` has exited (exit1 wakes whoever sleeps on the proc). => may sleep"""
    while p.p_stat != "zomb":
        await kern_synch.tsleep_nsec(k, p, kern_synch.PVM, wmesg, kern_synch.INFSLP)


async def nanosleep(k: Kernel, ns: int, wmesg: str = "nanoslp") -> None:
    """Let ``ns`` of virtual time pass (a timed sleep on a channel nobody wakes)."""
    await kern_synch.tsleep_nsec(k, _NOWAKE, kern_synch.PVM, wmesg, ns)


async def mmap(
    k: Kernel,
    p: Proc,
    size: int,
    kind: str = "anon",
    *,
    name: str | None = None,
    addr: int | None = None,
    writable: bool = True,
) -> int:
    """Map ``size`` bytes (rounded up to pages) into ``p``; returns the address.

    => ``kind``: "anon" (private anonymous), "shared" (the shared region ``name``, an aobj
       created on first use) or "file" (the file ``name`` in the run directory, a vnode
       created sparse at ``size`` on first use); ``addr``: MAP_FIXED there
    => raises ValueError for a bad kind or name, OSError(errno) when sys_mmap fails
    => may sleep
    """
    prot = PROT_READ | PROT_WRITE if writable else PROT_READ
    flags = MAP_FIXED if addr is not None else 0
    handle: UvmObject | None = None
    if kind == "anon":
        flags |= MAP_ANON | MAP_PRIVATE
    elif kind == "shared":
        flags |= MAP_SHARED
        handle = await _shared_object(k, name, size)
    elif kind == "file":
        flags |= MAP_SHARED
        handle = await _file_object(k, name, size, prot)
    else:
        raise ValueError(f"mmap: unknown kind {kind!r} (anon, shared or file)")
    error, va = await uvm_mmap.sys_mmap(
        k, p, 0 if addr is None else addr, size, prot, flags, handle, 0
    )
    if error:
        raise _oserror(error, f"mmap({size:#x}, {kind})")
    return va


async def munmap(k: Kernel, p: Proc, addr: int, size: int) -> None:
    """Unmap [addr, addr + size) from ``p``. => raises OSError(errno); may sleep"""
    error = await uvm_mmap.sys_munmap(k, p, addr, size)
    if error:
        raise _oserror(error, f"munmap({addr:#x}, {size:#x})")


# --- named objects behind mmap ----------------------------------------------------------------


async def _shared_object(k: Kernel, name: str | None, size: int) -> UvmObject:
    """The shared anonymous region ``name`` (an aobj), created on first use; the returned
    handle carries a new reference for the mapping."""
    if name is None:
        raise ValueError("mmap: kind 'shared' needs a name")
    md = machdep_of(k)
    uobj = md.shared.get(name)
    if uobj is None:
        uobj = uvm_mmap.uvm_shm_create(k, round_page(size))
        md.shared[name] = uobj
    await uvm_mmap.uvm_objref(k, uobj)
    return uobj


async def _file_object(k: Kernel, name: str | None, size: int, prot: int) -> UvmObject:
    """The file ``name`` in the run directory (a vnode), created sparse at ``size`` on first
    use; returns its VM object with a new reference for the mapping (uvn_attach)."""
    if name is None:
        raise ValueError("mmap: kind 'file' needs a name")
    md = machdep_of(k)
    vp = md.files.get(name)
    if vp is None:
        if md.filedir is None:
            raise OSError(EIO, "mmap: this machine has no directory for files")
        if os.sep in name or name in ("", ".", ".."):
            raise ValueError(f"mmap: bad file name {name!r}")
        vp = swapdev.vnode_create(k, os.path.join(md.filedir, name), round_page(size))
        md.files[name] = vp
    uobj = await uvm_vnode.uvn_attach(k, vp, prot)
    if uobj is None:
        raise OSError(EIO, f"mmap: cannot attach file {name!r}")
    return uobj
