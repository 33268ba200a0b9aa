"""Kernel test fixtures: boot a real kernel on the real emulated machine.

Every test that needs a kernel gets one through the ``kenv`` fixture (a factory) or the
``run_kernel`` shortcut. The machine is real: a RAM arena, the MMU, the CPU, the virtual
clock and a sparse swap image in ``tmp_path``, built by ``emu.board.Board``; the kernel is
booted by ``kernel.arch.emu.machdep.boot`` and started (pagedaemon, aiodoned, trap handler)
inside ``Clock.run``. After every test, ``uvm_check(k)`` runs on every kernel the test booted.

API (small on purpose)::

    def test_something(run_kernel):
        async def body(k: Kernel, env: KernelEnv) -> None:
            p = env.spawn(workload, "w0", n=3)   # a user process running workload(p, n=3)
            await env.wait(p)                    # until it has exited
            await env.settle()                   # until no pageout is in flight
            # also: env.sleep(ns), env.anon_at(p, va), await env.page_out(anon)
        env = run_kernel(body, npages=256, swap_pages=1024)
        assert env.k.uvmexp.flt_zero == 3

    def test_other(kenv):
        env = kenv(npages=64, swap_pages=0)      # booted, not running yet
        ...synchronous kernel calls on env.k...
        env.run(body)                            # then, optionally, run a body once

``body`` runs as a kernel-context thread (curproc is a P_SYSTEM proc "testbody", not the page
daemon, not proc0), so it may sleep, allocate, msleep/wakeup, and start processes. It ends
the run when it returns (the kernel threads are then cancelled). Exceptions from the body,
from a process or a panic in a kernel thread propagate to the test.

Defaults: 256 pages of RAM, 1024 pages of swap, timing model "none", DIAGNOSTIC on, and the
buffer cache OFF (``bufcache=False``: KernelConfig.bufcachepercent = 0) and swap encryption
OFF (``swapencrypt=False``: no bounce pages, no OOM reserve of 16 pages taken at boot) so that
free-page counts are exact; pass ``bufcache=True`` / ``swapencrypt=True`` to model them. ``start=False`` boots without kernel
threads or trap handler (for tests that drive the daemon by hand).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from devices.faults import FaultConfig
from devices.imagedisk import ImageDisk
from devices.timing import TimingModel
from emu import process
from emu.board import Board
from emu.clock import Clock
from emu.cpu import Cpu
from emu.mmu import Mmu
from emu.process import UserProcess
from emu.ram import Ram
from kernel.arch.emu import harness, machdep
from kernel.kernel import Kernel, KernelConfig
from kernel.sys.proc import P_SYSTEM, Proc
from kernel.uvm.uvm_anon import VmAnon
from kernel.uvm.uvm_check import uvm_check
from kernel.uvm.uvm_object import UvmObject

__all__ = ["Body", "KernelEnv"]

Body = Callable[[Kernel, "KernelEnv"], Awaitable[None]]


class KernelEnv:
    """One booted machine: ``k`` plus its hardware. See the module docstring."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        npages: int = 256,
        swap_pages: int = 1024,
        config: KernelConfig | None = None,
        bufcache: bool = False,
        swapencrypt: bool = False,
        model: TimingModel | None = None,
        faults: FaultConfig | None = None,
        start: bool = True,
    ) -> None:
        self.tmp_path = tmp_path
        self.board = Board(npages)
        self.ram: Ram = self.board.ram
        self.mmu: Mmu = self.board.mmu
        self.clock: Clock = self.board.clock
        self.cpu: Cpu = self.board.cpu
        self.disks: list[ImageDisk] = self.board.disks
        if swap_pages:
            self.board.add_swap(tmp_path / "swap0.img", swap_pages, model, faults, name="sd0")
        if config is None:
            config = KernelConfig(swapencrypt=swapencrypt)
            if not bufcache:
                config.bufcachepercent = 0
        self.start = start
        self.k: Kernel = self.board.boot(config, filedir=str(tmp_path))
        self.check_at_teardown = True  # a test that corrupts state on purpose clears it
        self.objs: list[UvmObject] = []  # extra aobjs uvm_check should count as alive
        self.testproc = Proc(p_pid=-1, p_comm="testbody", p_flag=P_SYSTEM)
        self.ran = False

    # --- running ---------------------------------------------------------------------------

    def run(self, body: Body) -> None:
        """Run ``body(k, env)`` inside the machine until it returns. Once per env."""
        assert not self.ran, "KernelEnv.run: a machine runs once"
        self.ran = True
        self.board.run_body(lambda: body(self.k, self), self.testproc, start=self.start)

    def spawn(
        self, fn: Callable[..., Awaitable[None]], name: str = "proc", **params: Any
    ) -> UserProcess:
        """Start ``fn(p, **params)`` as a user process (call from inside ``body``)."""
        return process.spawn(self.k, name, fn, **params)

    async def wait(self, *procs: UserProcess) -> None:
        """Sleep until every process in ``procs`` has exited."""
        for up in procs:
            await machdep.wait(self.k, up.proc, "testwait")

    async def sleep(self, ns: int) -> None:
        """Let ``ns`` of virtual time pass."""
        await self.clock.sleep(ns, "testsleep")

    async def settle(self, step_ns: int = 1_000_000, max_steps: int = 100_000) -> None:
        """Sleep until no pageout is in flight and no completion waits for aiodoned."""
        k = self.k
        for _ in range(max_steps):
            if k.uvmexp.paging == 0 and k.uvm.aio_done.empty():
                return
            await self.sleep(step_ns)
        raise AssertionError(f"settle: still paging={k.uvmexp.paging} after {max_steps} steps")

    # --- reaching into a process -------------------------------------------------------------

    def anon_at(self, p: UserProcess, va: int) -> VmAnon | None:
        """The anon a process's private mapping has at ``va`` (None if the slot is empty)."""
        return harness.anon_at(p.proc, va)

    async def page_out(self, anon: VmAnon) -> int:
        """Page ``anon`` out by hand and free its page, as the daemon would (reference §1.14
        steps 1-2): new slot, synchronous swap write, PG_CLEAN, then the inactive scan's
        clean path (swpgonly +1, unmap, free). Returns the slot. Call from ``body``."""
        assert anon.an_page is not None, "page_out: the anon has no resident page"
        (slot,) = await harness.page_out(self.k, [anon])
        assert anon.an_page is None
        return slot

    def check(self) -> None:
        """uvm_check on this kernel (with the test's own aobjs as roots)."""
        uvm_check(self.k, self.objs)

    def close(self) -> None:
        self.board.close()


def _close_all(envs: Iterable[KernelEnv]) -> None:
    for env in envs:
        env.close()


@pytest.fixture
def kenv(tmp_path: Path) -> Any:
    """Factory: ``kenv(npages=..., swap_pages=..., config=..., bufcache=..., swapencrypt=...,
    start=...)`` boots a machine; uvm_check runs on each one after the test."""
    envs: list[KernelEnv] = []

    def make(**kw: Any) -> KernelEnv:
        sub = tmp_path / f"m{len(envs)}"
        sub.mkdir()
        env = KernelEnv(sub, **kw)
        envs.append(env)
        return env

    yield make
    try:
        for env in envs:
            if env.check_at_teardown:
                env.check()
    finally:
        _close_all(envs)


@pytest.fixture
def run_kernel(kenv: Any) -> Callable[..., KernelEnv]:
    """``run_kernel(body, npages=256, swap_pages=1024, **kw)``: boot, run ``body``, return
    the env (uvm_check runs after the test)."""

    def run(body: Body, **kw: Any) -> KernelEnv:
        env: KernelEnv = kenv(**kw)
        env.run(body)
        return env

    return run
