"""kern_fork.c: process creation.

Port of the parts of OpenBSD sys/kern/kern_fork.c (fork1) and the MD ``proc_trampoline`` that
the emulated machine needs: a new proc, its address space, its CPU context and its thread.

Deviations (PORT):
- A user process never copies its parent: ``fork1`` gives it a fresh, empty vmspace, as if
  it had exec'd at once (the emulator runs workload coroutines, not images). There is no
  copy-on-write sharing between processes, so amaps are never shared.
- A process is one emulated thread started with the machine's ``spawn`` (``k.spawn``, the
  clock's). ``curproc`` is bound at thread start (style C13) and the structlog contextvar
  ``proc`` with it (style C18).
- The MD part ``cpu_fork`` (the process's CPU context, ``p.p_md``) comes from ``k.md``, the
  machine-dependent glue installed at boot: kernel/kern must not import the hardware.
- A kernel thread (FORK_SYSTEM) that raises turns into a :class:`Panic` (the machine stops).
  A user process that returns, or that is killed by a signal (the trap handler stored the
  fault in ``p.error`` and raised it), goes through ``exit1``; any other exception from a
  user process is a bug in its code: ``exit1`` still runs, then the exception propagates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final, Protocol

import structlog

import kernel.kern.kern_exit as kern_exit
import kernel.uvm.uvm_map as uvm_map
from kernel.sys.proc import P_SYSTEM, PFlags, Proc, set_curproc
from kernel.sys.systm import Panic

if TYPE_CHECKING:
    from kernel.kernel import Kernel

__all__ = [
    "FORK_FORK",
    "FORK_NOZOMBIE",
    "FORK_SHAREVM",
    "FORK_SYSTEM",
    "CpuFork",
    "fork1",
]

log = structlog.get_logger("kern.fork")

# sys/fork.h
FORK_FORK: Final = 0x00000001
FORK_SHAREFILES: Final = 0x00000010
FORK_SYSTEM: Final = 0x00000020
FORK_NOZOMBIE: Final = 0x00000040
FORK_SHAREVM: Final = 0x00000080

ThreadFn = Callable[..., Coroutine[Any, Any, Any]]


class CpuFork(Protocol):
    """The machine-dependent glue ``k.md`` (kernel/arch/emu/machdep.py)."""

    def cpu_fork(self, p: Proc) -> Any:
        """cpu_fork: the new process's machine state (its CPU context), stored in p_md."""
        ...


def fork1(k: Kernel, comm: str, flags: int, func: ThreadFn, *args: Any) -> Proc:
    """fork1: create a new process running ``func(*args)`` as its only thread.

    => FORK_SYSTEM: a kernel thread (P_SYSTEM, no address space of its own, a daemon thread
       of the machine that is cancelled when the last user process ends)
    => otherwise a user process with a new vmspace and pmap and a CPU context
    => must be called while the machine runs (inside Clock.run)
    """
    spawn = k.spawn
    if spawn is None:
        raise Panic(f"fork1: {comm}: the machine is not running (no k.spawn)")
    p = Proc(p_pid=k.nextpid, p_comm=comm)
    k.nextpid += 1
    if flags & FORK_SYSTEM:
        p.p_flag |= P_SYSTEM
    else:
        k.uvmexp.forks += 1
        p.p_vmspace = uvm_map.uvmspace_alloc(k)
        md: CpuFork | None = k.md
        if md is None:
            raise Panic(f"fork1: {comm}: no machine-dependent glue (k.md) for cpu_fork")
        p.p_md = md.cpu_fork(p)
    k.procs[p.p_pid] = p
    p.thread = spawn(
        _proc_trampoline, k, p, func, args, name=comm, daemon=bool(flags & FORK_SYSTEM)
    )
    return p


# --- port helpers ---------------------------------------------------------------------------


async def _proc_trampoline(k: Kernel, p: Proc, func: ThreadFn, args: tuple[Any, ...]) -> None:
    """proc_trampoline: the first code a new thread runs; binds curproc, runs ``func``."""
    set_curproc(p)
    structlog.contextvars.bind_contextvars(proc=p.p_comm, pid=p.p_pid)
    if p.p_flag & P_SYSTEM:
        await _kthread_run(k, p, func, args)
        return
    try:
        await func(*args)
    except asyncio.CancelledError:
        raise
    except Exception as e:
        killed = e is p.error
        if not killed:
            p.error = e
        log.info("proc.killed" if killed else "proc.crashed", error=repr(e))
        await kern_exit.exit1(k, p, 1)
        if not killed:
            raise
        return
    await kern_exit.exit1(k, p, 0)


async def _kthread_run(k: Kernel, p: Proc, func: ThreadFn, args: tuple[Any, ...]) -> None:
    """A kernel thread's body: any exception is a panic that ends the run."""
    try:
        await func(*args)
    except asyncio.CancelledError:
        raise
    except Panic as e:
        if k.panicked is None:
            k.panicked = e
        log.critical("panic", msg=str(e))
        raise
    except Exception as e:
        pe = Panic(f"kthread {p.p_comm}: {type(e).__name__}: {e}", thread=p.p_comm)
        if k.panicked is None:
            k.panicked = pe
        log.critical("panic", msg=str(pe))
        raise pe from e
    finally:
        p.p_stat = "zomb"
        p.p_flag |= PFlags.P_WEXIT
