"""emu.cpu: loads, stores and batches that trap into a handler and resume (ARCHITECTURE.md,
"Access": "stops at the first access that faults; the kernel handles it; the batch resumes
there. No await on the fast path when nothing faults")."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np
import pytest

from emu.clock import Clock, current_thread
from emu.cpu import BusError, Cpu, CpuContext, SegmentationFault
from emu.mmu import Mmu
from emu.ram import PAGE_SIZE, Ram


class Machine:
    """RAM, MMU, clock and CPU with a zero-fill trap handler that maps fresh frames."""

    def __init__(self, nframes: int = 64, **costs: int) -> None:
        self.ram = Ram(nframes)
        self.mmu = Mmu(self.ram)
        self.clock = Clock()
        self.cpu = Cpu(self.ram, self.mmu, self.clock, **costs)
        self.space = self.mmu.new_space()
        self.ctx = CpuContext(self.cpu, self.space, owner="proc0")
        self.next_frame = 1
        self.traps: list[tuple[int, bool]] = []

    async def zero_fill(self, ctx: CpuContext, vaddr: int, write: bool) -> None:
        self.traps.append((vaddr, write))
        if vaddr >= 0x8000_0000:
            raise SegmentationFault(vaddr, write, "no map entry")
        found = self.mmu.lookup(ctx.space, vaddr)
        if found is not None:  # a protection fault: grant write
            self.mmu.protect(ctx.space, vaddr, True)
            return
        self.mmu.enter(ctx.space, vaddr, self.next_frame, True)
        self.next_frame += 1

    def install(self) -> Machine:
        self.cpu.trap_handler = self.zero_fill
        return self

    def run(self, fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
        def setup(c: Clock, tg: asyncio.TaskGroup) -> None:
            c.spawn(fn, name="proc0")

        asyncio.run(self.clock.run(setup))


def test_store_and_load_across_a_page_boundary() -> None:
    m = Machine().install()
    out: list[bytes] = []

    async def proc() -> None:
        await m.ctx.store(0x1FFA, b"0123456789ab")  # 6 bytes in one page, 6 in the next
        out.append(await m.ctx.load(0x1FFA, 12))
        out.append(await m.ctx.load(0x1FFE, 2))
        out.append(await m.ctx.load(0x2000, 0))

    m.run(proc)
    assert out == [b"0123456789ab", b"45", b""]
    a, b = m.mmu.lookup(m.space, 0x1000), m.mmu.lookup(m.space, 0x2000)
    assert a is not None and b is not None
    assert m.ram.read(a[0], PAGE_SIZE - 6, 6) == b"012345"
    assert m.ram.read(b[0], 0, 6) == b"6789ab"
    assert m.ram.mod[a[0]] and m.ram.mod[b[0]] and m.ram.ref[a[0]] and m.ram.ref[b[0]]
    assert m.traps == [(0x1FFA, True), (0x2000, True)]
    assert m.ctx.faults == 2
    assert m.ctx.accesses == 2 + 2 + 1  # a split access counts once per page


def test_load_sets_ref_but_not_mod() -> None:
    m = Machine().install()

    async def proc() -> None:
        assert await m.ctx.load(0x5000, 8) == bytes(8)  # zero-filled on first touch

    m.run(proc)
    assert m.ram.ref[1] == 1 and m.ram.mod[1] == 0


def test_store_accepts_memoryviews_of_any_format() -> None:
    m = Machine().install()

    async def proc() -> None:
        await m.ctx.store(0x3000, np.arange(3, dtype=np.uint32).data)
        assert await m.ctx.load(0x3000, 12) == np.arange(3, dtype=np.uint32).tobytes()

    m.run(proc)


def test_touch_traps_once_per_unmapped_page_and_resumes_at_the_fault() -> None:
    m = Machine().install()
    pages = [0x10000, 0x11000, 0x12000, STACK_PAGE := 0x7FFF_F000]
    vaddrs = np.array([0x10008, 0x10010, 0x11000, 0x10000, STACK_PAGE + 8, 0x12000, 0x11FF8],
                      dtype=np.uint64)
    write = np.array([False, True, False, False, True, False, False])

    async def proc() -> None:
        await m.ctx.touch(vaddrs, write)

    m.run(proc)
    assert m.traps == [(0x10008, False), (0x11000, False), (STACK_PAGE + 8, True),
                       (0x12000, False)]
    frames = [m.mmu.lookup(m.space, p) for p in pages]
    assert [f[0] for f in frames if f] == [1, 2, 4, 3]
    assert m.ram.ref[1:5].all()
    assert list(m.ram.mod[1:5]) == [1, 0, 1, 0]  # writes: 0x10010 (frame 1), stack (frame 3)
    assert m.ctx.accesses == len(vaddrs) and m.ctx.faults == 4


def test_resumed_batch_does_not_retouch_the_done_prefix() -> None:
    m = Machine()
    m.mmu.enter(m.space, 0x1000, 7, True)

    async def clear_then_map(ctx: CpuContext, vaddr: int, write: bool) -> None:
        m.ram.ref[7] = 0  # if the batch restarted from 0, frame 7 would be referenced again
        m.mmu.enter(ctx.space, vaddr, 8, True)

    m.cpu.trap_handler = clear_then_map

    async def proc() -> None:
        await m.ctx.touch(np.array([0x1000, 0x1008, 0x9000, 0x9008], np.uint64), True)

    m.run(proc)
    assert m.ram.ref[7] == 0 and m.ram.mod[7] == 1
    assert m.ram.ref[8] == 1 and m.ram.mod[8] == 1
    assert m.ctx.accesses == 4 and m.ctx.faults == 1


def test_write_to_a_read_only_page_traps_with_write_set() -> None:
    m = Machine().install()
    m.mmu.enter(m.space, 0x4000, 9, False)

    async def proc() -> None:
        assert await m.ctx.load(0x4000, 1) == b"\0"
        await m.ctx.store(0x4000, b"x")

    m.run(proc)
    assert m.traps == [(0x4000, True)]
    assert m.mmu.lookup(m.space, 0x4000) == (9, True) and m.ram.mod[9] == 1


def test_fault_without_a_trap_handler_is_a_segmentation_fault() -> None:
    m = Machine()
    caught: list[BaseException] = []

    async def proc() -> None:
        for op in (m.ctx.load(0x1000, 4), m.ctx.store(0x1000, b"x"),
                   m.ctx.touch(np.array([0x1000], np.uint64))):
            with pytest.raises(SegmentationFault) as ei:
                await op
            caught.append(ei.value)

    m.run(proc)
    assert [e.vaddr for e in caught] == [0x1000] * 3  # type: ignore[attr-defined]
    assert [e.write for e in caught] == [False, True, False]  # type: ignore[attr-defined]


def test_a_handler_may_refuse_with_segmentation_fault_or_bus_error() -> None:
    m = Machine().install()

    async def proc() -> None:
        with pytest.raises(SegmentationFault, match="0x90000000"):
            await m.ctx.touch(np.array([0x1000, 0x9000_0000], np.uint64))
        assert m.ctx.accesses == 1  # the access before the fault completed

        async def sigbus(ctx: CpuContext, vaddr: int, write: bool) -> None:
            raise BusError(vaddr, write, "swap read failed")

        m.cpu.trap_handler = sigbus
        with pytest.raises(BusError, match="swap read failed"):
            await m.ctx.load(0x3000, 1)

    m.run(proc)


def test_a_handler_that_never_fixes_the_fault_is_reported() -> None:
    m = Machine(refault_limit=5)
    calls = 0

    async def useless(ctx: CpuContext, vaddr: int, write: bool) -> None:
        nonlocal calls
        calls += 1

    m.cpu.trap_handler = useless

    async def proc() -> None:
        with pytest.raises(RuntimeError, match="5 times"):
            await m.ctx.touch(np.array([0x1000], np.uint64))
        with pytest.raises(RuntimeError, match="5 times"):
            await m.ctx.load(0x1000, 8)
        with pytest.raises(RuntimeError, match="5 times"):
            await m.ctx.store(0x1FFF, b"ab")
        with pytest.raises(ValueError, match="negative length"):
            await m.ctx.load(0x1000, -1)

    m.run(proc)
    assert calls == 15


def test_the_fast_path_never_awaits() -> None:
    m = Machine(quantum_ns=10**12)
    m.mmu.enter(m.space, 0x1000, 1, True)
    for coro in (m.ctx.touch(np.array([0x1000, 0x1008], np.uint64), True),
                 m.ctx.load(0x1000, 8), m.ctx.store(0x1000, b"12345678"), m.ctx.compute(5)):
        with pytest.raises(StopIteration):
            coro.send(None)  # completes on its first step: no suspension point was reached


def test_time_advances_by_accesses_times_cost_paid_at_the_quantum() -> None:
    m = Machine(access_ns=10, fault_ns=500, quantum_ns=1_000)
    m.mmu.enter(m.space, 0x1000, 1, True)
    seen: list[tuple[int, int]] = []

    def mark() -> None:
        th = current_thread()
        assert th is not None
        seen.append((m.clock.now, th.debt_ns))

    async def proc() -> None:
        await m.ctx.touch(np.full(250, 0x1000, np.uint64))  # 2500 ns >= quantum: paid
        mark()
        for _ in range(50):  # 500 ns: stays as debt
            await m.ctx.load(0x1000, 8)
        mark()
        await m.ctx.compute(600)  # 1100 ns: paid
        mark()
        m.install()
        await m.ctx.store(0x2000, b"x")  # one trap + one access: 510 ns of debt
        mark()

    m.run(proc)
    assert seen == [(2500, 0), (2500, 500), (3600, 0), (3600, 510)]
    assert m.ctx.accesses == 301 and m.ctx.faults == 1


def test_two_processes_interleave_at_quantum_boundaries() -> None:
    m = Machine(access_ns=100, quantum_ns=1_000)
    m.mmu.enter(m.space, 0x1000, 1, True)
    other = CpuContext(m.cpu, m.space, owner="proc1")
    log: list[tuple[str, int]] = []

    async def worker(ctx: CpuContext, name: str) -> None:
        for _ in range(3):
            await ctx.touch(np.full(10, 0x1000, np.uint64))
            log.append((name, m.clock.now))

    def setup(c: Clock, tg: object) -> None:
        c.spawn(worker, m.ctx, "a", name="a")
        c.spawn(worker, other, "b", name="b")

    asyncio.run(m.clock.run(setup))
    assert log == [("a", 1000), ("b", 1000), ("a", 2000), ("b", 2000), ("a", 3000), ("b", 3000)]
