"""emu.benchmarks._harness: a booted kernel on the real emulated machine, for benchmarks.

:class:`BenchMachine` is what ``tests/kernel/conftest.py``'s ``KernelEnv`` is to the tests: RAM
arena, MMU, CPU, virtual clock, a sparse swap image and a kernel booted by
``kernel.arch.emu.machdep.boot``, with the page daemon and the aiodone daemon running. The
machine costs and kernel options are those of a scenario's defaults (``access_ns`` 5,
``fault_ns`` 2000, DIAGNOSTIC on, ``uvm_check`` not after every pass) unless given; the event
log is written at level info into the work directory, as a real run writes it, so logging
costs what it costs in a run.

``run(body)`` runs ``body(bm)`` as a kernel-context thread (a P_SYSTEM proc, like the tests'
"testbody") under uvloop, and returns when it does. Workloads are started with :meth:`spawn`
and are ``async def fn(p, **params)`` over ``machdep.UserProcess``, as in a run.

Helpers a benchmark needs and a workload has no system call for:

- :func:`page_out` pages a process's anonymous pages out by hand in clusters of 16, the way the
  daemon's inactive scan does for dirty anons (new slots, a synchronous swap write, PG_CLEAN,
  then the clean path: swpgonly + 1, unmap, free); think ``madvise(MADV_PAGEOUT)``.
- :func:`anons_of` lists the anons of a private mapping, page by page.
- :class:`StepTimer` measures the host time spent inside one emulated thread's own steps
  (each ``send`` into its coroutine), so a benchmark can split a run's wall time between a
  process and everything else (the daemons, the completion interrupts, the idle loop).
"""

from __future__ import annotations

import asyncio
import time
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
from pathlib import Path
from typing import Any

# isort: off
# the uvm modules import one another: enter through uvm_pdaemon (see kernel/arch/emu/machdep)
import kernel.uvm.uvm_pdaemon  # noqa: F401

# isort: on
import kernel.uvm.uvm_map as uvm_map
import kernel.uvm.uvm_page as uvm_page
import kernel.uvm.uvm_pager as uvm_pager
import kernel.uvm.uvm_swap as uvm_swap
from devices.imagedisk import INLINE_PAGES, ImageDisk
from devices.timing import NoneModel, TimingModel
from emu.clock import Clock
from emu.cpu import Cpu
from emu.eventlog import EventLog
from emu.mmu import Mmu
from emu.ram import PAGE_SHIFT, Ram
from kernel.arch.emu import machdep
from kernel.arch.emu.machdep import UserProcess
from kernel.kern.kern_synch import INFSLP, PVM, RW_WRITE, rw_enter, rw_exit, tsleep_nsec, wakeup
from kernel.kernel import Kernel, KernelConfig
from kernel.sys.mman import PROT_NONE, PROT_READ
from kernel.sys.proc import P_SYSTEM, Proc, set_curproc
from kernel.uvm.uvm_anon import VmAnon

__all__ = ["BenchMachine", "StepTimer", "anons_of", "page_out"]

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
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.ram = Ram(npages)
        self.mmu = Mmu(self.ram)
        self.clock = Clock()
        self.evlog = EventLog(workdir / "events.jsonl", log_level)
        self.evlog.configure(self.clock)
        self.cpu = Cpu(self.ram, self.mmu, self.clock, access_ns=access_ns, fault_ns=fault_ns)
        self.disks: list[ImageDisk] = []
        if swap_pages:
            if inline_max_pages is None:
                inline_max_pages = INLINE_PAGES  # as the machine's disks
            disk = ImageDisk(workdir / "swap0.img", swap_pages, self.clock,
                             model if model is not None else NoneModel(), name="sd0",
                             inline_max_pages=inline_max_pages)  # fmt: skip
            disk.create(force=True)
            self.disks.append(disk)
        if config is None:
            config = KernelConfig(check_every_pass=False)
            if not bufcache:
                config.bufcachepercent = 0
        self.k: Kernel = machdep.boot(self.ram, self.mmu, self.cpu, self.clock, self.disks,
                                      config, filedir=str(workdir))  # fmt: skip
        self.bodyproc = Proc(p_pid=-1, p_comm="benchbody", p_flag=P_SYSTEM)

    def run(self, body: Body) -> None:
        """Run ``body(self)`` inside the machine (daemons started) until it returns."""

        async def main() -> None:
            set_curproc(self.bodyproc)
            await body(self)

        def setup(clock: Clock, tg: asyncio.TaskGroup) -> None:
            machdep.start(self.k)
            clock.spawn(main, name="benchbody")

        import uvloop

        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(self.clock.run(setup))
        except BaseExceptionGroup as eg:  # show the real failure, not the task group's wrapper
            while isinstance(eg, BaseExceptionGroup) and len(eg.exceptions) == 1:
                inner = eg.exceptions[0]
                if not isinstance(inner, BaseExceptionGroup):
                    raise inner from None
                eg = inner
            raise

    def spawn(self, fn: Callable[..., Awaitable[None]], name: str = "proc",
              **params: Any) -> UserProcess:  # fmt: skip
        """Start ``fn(p, **params)`` as a user process (call from inside the body)."""
        return machdep.spawn_process(self.k, name, fn, **params)

    async def wait(self, *procs: UserProcess) -> None:
        """Sleep until every process in ``procs`` has exited; re-raise a process's error."""
        for up in procs:
            while up.proc.p_stat != "zomb":
                await tsleep_nsec(self.k, up.proc, PVM, "benchwait", INFSLP)
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
        machdep.shutdown(self.k)
        for disk in self.disks:
            disk.close()
        self.evlog.close()
        self.ram.close()


class Baton:
    """A flag one thread raises and another sleeps on (kernel sleep/wakeup, no lost wakeup:
    the flag is tested and the sleep queued with no await in between)."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.up = False

    def raise_(self) -> None:
        self.up = True
        wakeup(self.k, self)

    async def take(self) -> None:
        while not self.up:
            await tsleep_nsec(self.k, self, PVM, "baton", INFSLP)
        self.up = False


def anons_of(p: UserProcess, base: int, npages: int) -> list[VmAnon]:
    """The anons of the private mapping at ``base``, one per page (each must exist)."""
    vm = p.proc.p_vmspace
    assert vm is not None
    entry = uvm_map.uvm_map_lookup_entry(vm.vm_map, base)
    assert entry is not None and entry.aref.ar_amap is not None, f"no amap at {base:#x}"
    amap = entry.aref.ar_amap
    first = ((base - entry.start) >> PAGE_SHIFT) + entry.aref.ar_pageoff
    out = []
    for slot in range(first, first + npages):
        anon = amap.am_anon.get(slot)
        assert anon is not None, f"page {slot} of the mapping at {base:#x} has no anon"
        out.append(anon)
    return out


async def page_out(k: Kernel, anons: Sequence[VmAnon], cluster: int = 16) -> int:
    """Page every anon's (resident, unbusy) page out to swap and free it; returns the number
    of pages written. Clusters of ``cluster`` pages, each one synchronous swap write."""
    done = 0
    for i in range(0, len(anons), cluster):
        batch = [a for a in anons[i : i + cluster] if a.an_page is not None]
        if not batch:
            continue
        pgs: list[uvm_page.VmPage | None] = []
        for anon in batch:  # old slots back first, so the new run can be contiguous
            assert anon.an_lock is not None
            await rw_enter(k, anon.an_lock, RW_WRITE)
            if anon.an_swslot:
                uvm_swap.uvm_swap_free(k, anon.an_swslot, 1)
                anon.an_swslot = 0
            rw_exit(anon.an_lock)
        slot, n = uvm_swap.uvm_swap_alloc(k, len(batch), False)
        if not slot or n != len(batch):
            raise RuntimeError("page_out: out of swap")
        for j, anon in enumerate(batch):
            assert anon.an_lock is not None
            await rw_enter(k, anon.an_lock, RW_WRITE)
            pg = anon.an_page
            assert pg is not None and not (pg.pg_flags & uvm_page.PG_BUSY)
            anon.an_swslot = slot + j
            pg.pg_flags |= uvm_page.PG_BUSY
            k.pmap.pmap_page_protect(pg, PROT_READ)
            rw_exit(anon.an_lock)
            pgs.append(pg)
        result = await uvm_swap.uvm_swap_put(k, slot, pgs, n, uvm_pager.PGO_SYNCIO)
        if result != uvm_pager.VM_PAGER_OK:
            raise RuntimeError(f"page_out: swap write failed ({result})")
        for anon, pg in zip(batch, pgs, strict=True):
            assert anon.an_lock is not None and pg is not None
            await rw_enter(k, anon.an_lock, RW_WRITE)
            k.pmap.pmap_clear_reference(pg)
            k.pmap.pmap_clear_modify(pg)
            pg.pg_flags = (pg.pg_flags | uvm_page.PG_CLEAN) & ~uvm_page.PG_BUSY
            if pg.pg_flags & uvm_page.PG_WANTED:
                pg.pg_flags &= ~uvm_page.PG_WANTED
                wakeup(k, pg)
            uvm_page.uvm_lock_pageq(k)  # the inactive scan's clean path
            k.uvmexp.swpgonly += 1
            k.pmap.pmap_page_protect(pg, PROT_NONE)
            uvm_page.uvm_pagefree(k, pg)
            uvm_page.uvm_unlock_pageq(k)
            rw_exit(anon.an_lock)
            done += 1
    return done


class StepTimer:
    """Host seconds spent inside the steps of the coroutines it wraps (see module doc)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.steps = 0

    def wrap(self, fn: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Coroutine[Any, Any, Any]]:
        async def timed(*args: Any, **kw: Any) -> Any:
            return await _stepped(fn(*args, **kw), self)

        return timed


@types.coroutine
def _stepped(coro: Coroutine[Any, Any, Any], acc: StepTimer) -> Generator[Any, Any, Any]:
    """Drive ``coro`` step by step for the task that awaits us, timing each step."""
    pc = time.perf_counter
    send: Any = None
    exc: BaseException | None = None
    while True:
        t0 = pc()
        try:
            y = coro.throw(exc) if exc is not None else coro.send(send)
        except StopIteration as e:
            acc.seconds += pc() - t0
            acc.steps += 1
            return e.value
        except BaseException:
            acc.seconds += pc() - t0
            raise
        acc.seconds += pc() - t0
        acc.steps += 1
        try:
            send, exc = (yield y), None
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as e:  # thrown into the task (cancellation): pass it on
            send, exc = None, e
