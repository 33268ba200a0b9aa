"""emu.benchmarks._harness: a booted kernel on the real emulated machine, for benchmarks.

:class:`BenchMachine` is what ``tests/kernel/conftest.py``'s ``KernelEnv`` is to the tests: a
machine built by :class:`emu.board.Board` (RAM arena, MMU, CPU, virtual clock, a sparse swap
image, a kernel booted by ``kernel.arch.emu.machdep.boot``), with the page daemon and the
aiodone daemon running. The machine costs and kernel options are those of a scenario's
defaults (``access_ns`` 5, ``fault_ns`` 2000, DIAGNOSTIC on, ``uvm_check`` not after every
pass, swap encryption on) unless given; the event log is written at level info into the work directory, as a real
run writes it, so logging costs what it costs in a run.

``run(body)`` runs ``body(bm)`` as a kernel-context thread (a P_SYSTEM proc, like the tests'
"testbody") under uvloop, and returns when it does. Workloads are started with :meth:`spawn`
and are ``async def fn(p, **params)`` over ``emu.process.UserProcess``, as in a run.

Helpers a benchmark needs and a workload has no system call for:

- :func:`page_out` pages anonymous pages out by hand in clusters of 16, the way the daemon's
  inactive scan does for dirty anons; think ``madvise(MADV_PAGEOUT)``
  (``kernel.arch.emu.harness.page_out``, which the tests use too).
- :func:`anons_of` lists the anons of a private mapping, page by page.
- :class:`StepTimer` measures the host time (wall and CPU) spent inside one emulated
  thread's own steps (each ``send`` into its coroutine), so a benchmark can split a run's
  time between a process and everything else (the daemons, the completion interrupts, the
  idle loop).
- :func:`default_config` is the default kernel configuration (no ``[kernel]`` section).
"""

from __future__ import annotations

import time
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
from pathlib import Path
from typing import Any

from devices.imagedisk import INLINE_PAGES
from devices.timing import TimingModel
from emu import process
from emu.board import Board
from emu.config import KernelSection
from emu.eventlog import EventLog
from emu.probes import kernel_config
from emu.process import UserProcess
from kernel.arch.emu import harness, machdep
from kernel.kernel import Kernel, KernelConfig
from kernel.sys.proc import P_SYSTEM, Proc

__all__ = ["BenchMachine", "StepTimer", "anons_of", "default_config", "page_out"]

Body = Callable[["BenchMachine"], Awaitable[None]]


class BenchMachine:
    """One booted machine (see the module docstring). Use once: ``run`` then ``close``."""

    def __init__(
        self,
        workdir: Path,
        npages: int,
        swap_pages: int,
        *,
        model: TimingModel | None = None,
        config: KernelConfig | None = None,
        bufcache: bool = False,
        access_ns: int = 5,
        fault_ns: int = 2000,
        log_level: str = "info",
        inline_max_pages: int | None = None,
        swapencrypt: bool = True,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.board = Board(npages, access_ns=access_ns, fault_ns=fault_ns)
        self.ram, self.mmu, self.cpu = self.board.ram, self.board.mmu, self.board.cpu
        self.clock = self.board.clock
        self.evlog = EventLog(workdir / "events.jsonl", log_level)
        self.evlog.configure(self.clock)
        self.disks = self.board.disks
        if swap_pages:
            if inline_max_pages is None:
                inline_max_pages = INLINE_PAGES  # as the machine's disks
            self.board.add_swap(workdir / "swap0.img", swap_pages, model, name="sd0",
                                inline_max_pages=inline_max_pages, force=True)  # fmt: skip
        if config is None:
            config = KernelConfig(check_every_pass=False, swapencrypt=swapencrypt)
            if not bufcache:
                config.bufcachepercent = 0
        self.k: Kernel = self.board.boot(config, filedir=str(workdir))
        self.bodyproc = Proc(p_pid=-1, p_comm="benchbody", p_flag=P_SYSTEM)

    def run(self, body: Body) -> None:
        """Run ``body(self)`` inside the machine (daemons started) until it returns."""
        self.board.run_body(lambda: body(self), self.bodyproc, loop="uvloop")

    def spawn(self, fn: Callable[..., Awaitable[None]], name: str = "proc",
              **params: Any) -> UserProcess:  # fmt: skip
        """Start ``fn(p, **params)`` as a user process (call from inside the body)."""
        return process.spawn(self.k, name, fn, **params)

    async def wait(self, *procs: UserProcess) -> None:
        """Sleep until every process in ``procs`` has exited; re-raise a process's error."""
        for up in procs:
            await machdep.wait(self.k, up.proc, "benchwait")
            if up.proc.error is not None:
                raise up.proc.error

    async def settle(self, step_ns: int = 1_000_000, max_steps: int = 100_000) -> None:
        """Sleep until no pageout is in flight and no completion waits for aiodoned."""
        k = self.k
        for _ in range(max_steps):
            if k.uvmexp.paging == 0 and k.uvm.aio_done.empty():
                return
            await self.clock.sleep(step_ns, "benchsettle")
        raise RuntimeError(f"settle: still paging={k.uvmexp.paging} after {max_steps} steps")

    def close(self) -> None:
        self.board.close()
        self.evlog.close()


def default_config(swapencrypt: bool = True) -> KernelConfig:
    """The kernel configuration a scenario or an API run gets without a ``[kernel]``
    section (DIAGNOSTIC, uvm_check after every pass, the buffer cache, swap encryption, and
    whatever later defaults come with it): the issue-16 rows run in it; the ``*_plain`` rows
    turn swap encryption off."""
    return kernel_config(KernelSection(swapencrypt=swapencrypt))


def anons_of(p: UserProcess, base: int, npages: int) -> list[harness.VmAnon]:
    """The anons of the private mapping at ``base``, one per page (each must exist)."""
    return harness.anons_of(p.proc, base, npages)


async def page_out(k: Kernel, anons: Sequence[harness.VmAnon], cluster: int = 16) -> int:
    """Page every anon's (resident, unbusy) page out to swap and free it; returns the number
    of pages written. Clusters of ``cluster`` pages, each one synchronous swap write."""
    return len(await harness.page_out(k, anons, cluster))


class StepTimer:
    """Host seconds spent inside the steps of the coroutines it wraps (see module doc):
    wall seconds in ``seconds``, the main thread's CPU seconds in ``cpu``."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.cpu = 0.0
        self.steps = 0

    def wrap(self, fn: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Coroutine[Any, Any, Any]]:
        async def timed(*args: Any, **kw: Any) -> Any:
            return await _stepped(fn(*args, **kw), self)

        return timed


@types.coroutine
def _stepped(coro: Coroutine[Any, Any, Any], acc: StepTimer) -> Generator[Any, Any, Any]:
    """Drive ``coro`` step by step for the task that awaits us, timing each step."""
    pc, tt = time.perf_counter, time.thread_time
    send: Any = None
    exc: BaseException | None = None
    while True:
        t0, c0 = pc(), tt()
        try:
            y = coro.throw(exc) if exc is not None else coro.send(send)
        except StopIteration as e:
            acc.seconds += pc() - t0
            acc.cpu += tt() - c0
            acc.steps += 1
            return e.value
        except BaseException:
            acc.seconds += pc() - t0
            acc.cpu += tt() - c0
            raise
        acc.seconds += pc() - t0
        acc.cpu += tt() - c0
        acc.steps += 1
        try:
            send, exc = (yield y), None
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as e:  # thrown into the task (cancellation): pass it on
            send, exc = None, e
