"""machdep.c / trap.c / vm_machdep.c: the machine-dependent part of the emulated machine.

Boots a :class:`Kernel` on the emulated hardware, installs the CPU's trap handler (the page
fault path of amd64 ``trap.c``: ``uvm_fault``, then a signal if it fails), gives each new
process its CPU context (``cpu_fork``), and offers the process handle a workload drives
(:class:`UserProcess`, which implements ``emu.api.ProcessHandle``).

How the machine harness uses it::

    k = machdep.boot(ram, mmu, cpu, clock, [disk], KernelConfig())
    def setup(clock, tg):
        machdep.start(k)                                  # kernel threads + trap handler
        machdep.spawn_process(k, "w0", workload, seed=1)  # each workload is a process
    await clock.run(setup)

Deviations (PORT):
- Boot is split the way init_main.py explains: :func:`boot` before the clock runs,
  :func:`start` inside it.
- Signals are exceptions: a fault the kernel refuses raises ``emu.cpu.SegmentationFault``
  (SIGSEGV), ``BusError`` (SIGBUS: the page's backing store failed) or ``MemoryFault``
  (SIGKILL: out of swap) into the workload, after recording it in ``p.error``; uncaught, the
  process exits (kern_fork.py).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import structlog

import kernel.kern.init_main as init_main
import kernel.kern.kern_fork as kern_fork
import kernel.uvm.uvm_fault as uvm_fault
import kernel.uvm.uvm_mmap as uvm_mmap
import kernel.uvm.uvm_vnode as uvm_vnode
from emu.api import Integrity, MapKind
from emu.clock import Clock
from emu.cpu import BusError, Cpu, CpuContext, MemoryFault, SegmentationFault
from emu.mmu import Mmu
from emu.ram import PAGE_SIZE, Ram
from emu.workloads.stamps import describe_mismatch
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
from kernel.sys.proc import Proc
from kernel.sys.systm import Panic

if TYPE_CHECKING:
    from devices.swapdisk import SwapDisk
    from kernel.uvm.uvm_object import UvmObject

__all__ = [
    "EmuMachdep",
    "UserProcess",
    "boot",
    "shutdown",
    "spawn_process",
    "start",
    "trap",
]

log = structlog.get_logger("arch.emu.machdep")

Workload = Callable[..., Awaitable[None]]


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
        swapdevs: Sequence[SwapDisk],
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
    swapdevs: Sequence[SwapDisk],
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


def start(k: Kernel) -> list[Proc]:
    """Second half of boot, inside the running clock: install the trap handler and start
    the kernel threads (pagedaemon, aiodoned). Returns the kernel threads' procs."""
    md = _md(k)

    async def trap_handler(ctx: CpuContext, vaddr: int, is_write: bool) -> None:
        await trap(k, ctx, vaddr, is_write)

    md.cpu.trap_handler = trap_handler
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
    for vp in _md(k).files.values():
        close = getattr(vp.v_dev, "close", None)
        if close is not None:
            close()


def spawn_process(k: Kernel, name: str, fn: Workload, **params: Any) -> UserProcess:
    """Start ``fn(p, **params)`` as a new user process ``name``; returns its handle.

    => must be called while the machine runs (from the clock's setup or a thread)
    """
    handle = UserProcess.__new__(UserProcess)

    async def body() -> None:
        await fn(handle, **params)

    p = kern_fork.fork1(k, name, kern_fork.FORK_FORK, body)
    handle._init(k, p)
    return handle


class UserProcess:
    """A process handle (``emu.api.ProcessHandle``): what a workload calls.

    Memory calls go through the process's CPU context (and so the MMU and the trap path);
    mmap/munmap are system calls (uvm_mmap.py).
    """

    __slots__ = ("ctx", "integrity", "k", "name", "pid", "proc", "rng")

    def _init(self, k: Kernel, p: Proc) -> None:
        self.k = k
        self.proc = p
        self.name = p.p_comm
        self.pid = p.p_pid
        ctx = p.p_md
        assert isinstance(ctx, CpuContext)
        self.ctx = ctx
        seed = int.from_bytes(
            hashlib.sha256(f"{_md(k).seed}:{p.p_comm}".encode()).digest()[:8], "little"
        )
        self.rng = np.random.default_rng(seed)
        self.integrity = Integrity()

    def __repr__(self) -> str:
        return f"<UserProcess {self.pid} {self.name}>"

    async def mmap(
        self,
        size: int,
        kind: MapKind = "anon",
        *,
        name: str | None = None,
        addr: int | None = None,
        writable: bool = True,
    ) -> int:
        """Map ``size`` bytes (rounded up to pages); see emu.api.ProcessHandle.mmap."""
        k = self.k
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
            k, self.proc, 0 if addr is None else addr, size, prot, flags, handle, 0
        )
        if error:
            raise _oserror(error, f"mmap({size:#x}, {kind})")
        return va

    async def munmap(self, addr: int, size: int) -> None:
        error = await uvm_mmap.sys_munmap(self.k, self.proc, addr, size)
        if error:
            raise _oserror(error, f"munmap({addr:#x}, {size:#x})")

    async def load(self, vaddr: int, n: int) -> bytes:
        return await self.ctx.load(vaddr, n)

    async def store(self, vaddr: int, data: bytes) -> None:
        await self.ctx.store(vaddr, data)

    async def touch(self, vaddrs: np.ndarray, write: bool | np.ndarray = False) -> None:
        await self.ctx.touch(vaddrs, write)

    async def compute(self, ns: int) -> None:
        await self.ctx.compute(ns)

    def verify(self, vaddr: int, expected: bytes, found: bytes) -> bool:
        """Count one page checked; on a difference count a mismatch and log
        ``integrity.mismatch`` naming the process, the address and both stamps."""
        self.integrity.pages_checked += 1
        if expected == found:
            return True
        self.integrity.mismatches += 1
        detail = describe_mismatch(expected, found)
        if len(self.integrity.first_mismatches) < 10:
            self.integrity.first_mismatches.append({"vaddr": vaddr, "pid": self.pid, **detail})
        log.error("integrity.mismatch", name=self.name, pid=self.pid, vaddr=vaddr, **detail)
        return False

    def log(self, event: str, **kw: object) -> None:
        log.info(f"workload.{event}", pid=self.pid, **kw)


# --- port helpers ---------------------------------------------------------------------------


def _md(k: Kernel) -> EmuMachdep:
    md = k.md
    if not isinstance(md, EmuMachdep):
        raise Panic("machdep: kernel was not booted by kernel.arch.emu.machdep.boot")
    return md


def _round_page(size: int) -> int:
    return (size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


async def _shared_object(k: Kernel, name: str | None, size: int) -> UvmObject:
    """The shared anonymous region ``name`` (an aobj), created on first use; the returned
    handle carries a new reference for the mapping."""
    if name is None:
        raise ValueError("mmap: kind 'shared' needs a name")
    md = _md(k)
    uobj = md.shared.get(name)
    if uobj is None:
        uobj = uvm_mmap.uvm_shm_create(k, _round_page(size))
        md.shared[name] = uobj
    await uvm_mmap.uvm_objref(k, uobj)
    return uobj


async def _file_object(k: Kernel, name: str | None, size: int, prot: int) -> UvmObject:
    """The file ``name`` in the run directory (a vnode), created sparse at ``size`` on first
    use; returns its VM object with a new reference for the mapping (uvn_attach)."""
    if name is None:
        raise ValueError("mmap: kind 'file' needs a name")
    md = _md(k)
    vp = md.files.get(name)
    if vp is None:
        if md.filedir is None:
            raise OSError(EIO, "mmap: this machine has no directory for files")
        if os.sep in name or name in ("", ".", ".."):
            raise ValueError(f"mmap: bad file name {name!r}")
        vp = swapdev.vnode_create(k, os.path.join(md.filedir, name), _round_page(size))
        md.files[name] = vp
    uobj = await uvm_vnode.uvn_attach(k, vp, prot)
    if uobj is None:
        raise OSError(EIO, f"mmap: cannot attach file {name!r}")
    return uobj
