"""emu.board: build a machine — RAM, MMU, CPU, clock, swap disks — and boot the kernel on it.

The one place a machine is assembled: :class:`emu.machine.Machine` (runs and the API), the
tests' ``KernelEnv`` (tests/kernel/conftest.py) and the benchmarks' ``BenchMachine``
(emu/benchmarks/_harness.py) all build theirs here::

    b = Board(256, access_ns=5, fault_ns=2000)      # the hardware; the clock does not run yet
    b.add_swap(workdir / "swap0.img", 1024, NoneModel(), name="sd0")   # configured in order
    k = b.boot(KernelConfig(), filedir=str(workdir), seed=1)           # machdep.boot
    b.run_body(body, Proc(p_pid=-1, p_comm="testbody", p_flag=P_SYSTEM))
    b.close()

:meth:`Board.run_body` runs one coroutine as a kernel-context thread (its ``curproc`` a
P_SYSTEM proc of the caller's, not the page daemon, not proc0) under asyncio or uvloop, until
it returns; the task group's exception wrapping is taken off there, once, so the caller sees
the real failure. :func:`run_loop` is the event-loop choice alone (``Machine.run`` uses it).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import uvloop

from devices.faults import FaultConfig
from devices.imagedisk import ImageDisk
from devices.timing import NoneModel, TimingModel
from emu.clock import Clock
from emu.cpu import Cpu
from emu.mmu import Mmu
from emu.ram import Ram
from kernel.arch.emu import machdep
from kernel.kernel import Kernel, KernelConfig
from kernel.sys.proc import Proc, set_curproc

__all__ = ["LOOPS", "Board", "run_loop"]

T = TypeVar("T")

LOOPS = ("asyncio", "uvloop")


def run_loop(main: Coroutine[Any, Any, T], loop: str = "asyncio") -> T:
    """Run ``main`` to completion on a new event loop of kind ``loop`` (asyncio or uvloop)."""
    if loop not in LOOPS:
        main.close()
        raise ValueError(f"run_loop: unknown event loop {loop!r} ({' or '.join(LOOPS)})")
    factory = uvloop.new_event_loop if loop == "uvloop" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


class Board:
    """One machine: its hardware, its swap disks and, once booted, its kernel ``k``.

    ``cpu`` keywords go to :class:`emu.cpu.Cpu` (``access_ns``, ``fault_ns``, ``quantum_ns``).
    Use once: build, add the swap disks, boot, run, close.
    """

    def __init__(self, npages: int, *, clock: Clock | None = None, **cpu: int) -> None:
        self.clock = clock if clock is not None else Clock()
        self.ram = Ram(npages)
        self.mmu = Mmu(self.ram)
        self.cpu = Cpu(self.ram, self.mmu, self.clock, **cpu)
        self.disks: list[ImageDisk] = []
        self._k: Kernel | None = None

    @property
    def k(self) -> Kernel:
        """The booted kernel."""
        if self._k is None:
            raise RuntimeError("Board.k: the kernel is not booted yet (call boot)")
        return self._k

    def add_swap(
        self,
        path: str | os.PathLike[str],
        npages: int,
        model: TimingModel | None = None,
        faults: FaultConfig | None = None,
        *,
        name: str,
        inline_max_pages: int = 0,
        force: bool = False,
    ) -> ImageDisk:
        """Create a swap disk of ``npages`` over a new sparse image at ``path`` (timing model
        ``none`` unless given); the kernel configures the disks in the order they were added.
        Raises FileExistsError (unless ``force``) or OSError from the image's creation."""
        if self._k is not None:
            raise RuntimeError("Board.add_swap: the kernel is already booted")
        disk = ImageDisk(path, npages, self.clock, model if model is not None else NoneModel(),
                        faults, name=name, inline_max_pages=inline_max_pages)  # fmt: skip
        disk.create(force=force)
        self.disks.append(disk)
        return disk

    def boot(self, config: KernelConfig, *, filedir: str | None = None, seed: int = 1) -> Kernel:
        """Boot the kernel on this machine (``machdep.boot``): before the clock runs.
        ``filedir``: where the files processes map live; ``seed``: the machine's seed."""
        if self._k is not None:
            raise RuntimeError("Board.boot: the kernel is already booted")
        self._k = machdep.boot(self.ram, self.mmu, self.cpu, self.clock, self.disks, config,
                               filedir=filedir, seed=seed)  # fmt: skip
        return self._k

    def run_body(
        self,
        body: Callable[[], Awaitable[None]],
        proc: Proc,
        *,
        start: bool = True,
        loop: str = "asyncio",
    ) -> None:
        """Run ``body()`` as a kernel-context thread named ``proc.p_comm`` (``curproc`` is
        ``proc``) until it returns; the kernel threads are then cancelled.

        ``start``: first start the kernel threads and install the trap handler
        (``machdep.start``); without it nothing runs but the body. An exception from the body,
        from a process or from a kernel thread (a panic) propagates, unwrapped from the
        clock's task group when it is the only one.
        """
        k = self.k

        async def main() -> None:
            set_curproc(proc)
            await body()

        def setup(clock: Clock, tg: asyncio.TaskGroup) -> None:
            if start:
                machdep.start(k)
            clock.spawn(main, name=proc.p_comm)

        try:
            run_loop(self.clock.run(setup), loop)
        except BaseExceptionGroup as eg:
            leaf = _sole_exception(eg)
            if leaf is None:
                raise
            raise leaf from None

    def close(self) -> None:
        """Close the mapped files' disks, the swap disks and the RAM arena (after the run)."""
        if self._k is not None:
            machdep.shutdown(self._k)
        for disk in self.disks:
            disk.close()
        self.ram.close()


def _sole_exception(eg: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The one exception inside nested single-member groups, or None if a group has more."""
    inner: BaseException = eg
    while isinstance(inner, BaseExceptionGroup):
        if len(inner.exceptions) != 1:
            return None
        inner = inner.exceptions[0]
    return inner
