"""Stateful property test: random interleavings of mmap / store / load / touch / munmap /
process creation and exit, under memory pressure and injected swap I/O errors.

Hypothesis draws a program of operations on up to four processes. A driver process hands each
operation to the worker process it names (through a kernel sleep channel, so the workers
interleave with the page daemon for real), waits for it, then runs ``uvm_check`` (every
invariant of the kernel) and compares every load with a model of the last bytes stored.
A failed page-in kills only the process that faulted (BusError); its memory leaves the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emu import process
from emu.cpu import BusError
from emu.machine import Machine
from kernel.kern.kern_synch import INFSLP, PVM, tsleep_nsec, wakeup
from kernel.uvm.uvm_check import uvm_check

PAGE = 4096
NPROC = 4

op_st = st.one_of(
    st.tuples(st.just("mmap"), st.integers(0, NPROC - 1), st.integers(1, 48)),
    st.tuples(st.just("munmap"), st.integers(0, NPROC - 1), st.integers(0, 7)),
    st.tuples(st.just("store"), st.integers(0, NPROC - 1), st.integers(0, 7), st.integers(0, 63),
              st.integers(1, 2**31)),
    st.tuples(st.just("load"), st.integers(0, NPROC - 1), st.integers(0, 7), st.integers(0, 63)),
    st.tuples(st.just("touch"), st.integers(0, NPROC - 1), st.integers(0, 7), st.booleans()),
    st.tuples(st.just("spawn"), st.integers(0, NPROC - 1)),
    st.tuples(st.just("exit"), st.integers(0, NPROC - 1)),
)


@dataclass(eq=False)
class Worker:
    """One process's mailbox and the model of its memory."""

    name: str
    op: Any = None
    result: Any = None
    done: bool = False
    alive: bool = True
    regions: list[tuple[int, int]] = field(default_factory=list)  # (base, npages)
    content: dict[int, bytes] = field(default_factory=dict)  # page address -> last stored


async def worker(p: Any, box: Worker) -> None:
    k = p.k
    while True:
        while box.op is None:
            await tsleep_nsec(k, box, PVM, "mailbox", INFSLP)
        op, box.op = box.op, None
        try:
            if op[0] == "exit":
                box.result = "exit"
                return
            box.result = await _do(p, op)
        except BusError as e:
            box.result = e
            raise
        finally:
            box.done = True
            wakeup(k, ("done", id(box)))


async def _do(p: Any, op: tuple[Any, ...]) -> Any:
    kind = op[0]
    if kind == "mmap":
        return await p.mmap(op[1] * PAGE)
    if kind == "munmap":
        await p.munmap(op[1], op[2] * PAGE)
        return None
    if kind == "store":
        await p.store(op[1], op[2])
        return None
    if kind == "load":
        return await p.load(op[1], PAGE)
    if kind == "touch":
        import numpy as np

        await p.touch(np.arange(op[1], op[1] + op[2] * PAGE, PAGE, dtype=np.uint64), op[3])
        return None
    raise AssertionError(kind)


def _run_program(program: list[tuple[Any, ...]], fail_read_rate: float, seed: int) -> Any:
    boxes: list[Worker | None] = [None] * NPROC
    report: dict[str, int] = {"loads": 0, "checks": 0}

    async def driver(p: Any) -> None:
        k = p.k

        async def call(i: int, op: tuple[Any, ...]) -> Any:
            box = boxes[i]
            assert box is not None
            box.op, box.done = op, False
            wakeup(k, box)
            while not box.done:
                await tsleep_nsec(k, ("done", id(box)), PVM, "driver", INFSLP)
            return box.result

        def spawn(i: int) -> None:
            box = Worker(f"w{i}.{len(program)}")
            boxes[i] = box
            process.spawn(k, f"w{i}", worker, box=box)

        for op in program:
            i = op[1]
            box = boxes[i]
            if op[0] == "spawn":
                if box is None or not box.alive:
                    spawn(i)
                continue
            if box is None or not box.alive:
                continue
            if op[0] == "exit":
                await call(i, ("exit",))
                box.alive = False
            elif op[0] == "mmap":
                base = await call(i, ("mmap", op[2]))
                box.regions.append((base, op[2]))
            elif not box.regions:
                continue
            else:
                base, n = box.regions[op[2] % len(box.regions)]
                if op[0] == "munmap":
                    await call(i, ("munmap", base, n))
                    box.regions.remove((base, n))
                    for a in range(base, base + n * PAGE, PAGE):
                        box.content.pop(a, None)
                else:
                    addr = base + (op[3] % n) * PAGE if op[0] != "touch" else base
                    if op[0] == "store":
                        data = op[4].to_bytes(8, "little") * 8
                        r = await call(i, ("store", addr, data))
                        box.content[addr] = data
                    elif op[0] == "load":
                        r = await call(i, ("load", addr))
                        if not isinstance(r, BusError):
                            want = box.content.get(addr, b"").ljust(PAGE, b"\0")
                            assert r == want, f"load at {addr:#x} returned stale bytes"
                            report["loads"] += 1
                    else:
                        r = await call(i, ("touch", base, n, op[3]))
                    if isinstance(r, BusError):  # a page-in failed: that process is gone
                        box.alive = False
            uvm_check(k)
            report["checks"] += 1
        for i, box in enumerate(boxes):
            if box is not None and box.alive:
                await call(i, ("exit",))
                box.alive = False

    m = Machine(ram="96pages", swap="1024pages", seed=seed, device="none", loop="asyncio",
                faults={"fail_read_rate": fail_read_rate, "fail_write_rate": fail_read_rate},
                kernel={"check_every_pass": True})  # fmt: skip
    m.attach(driver, name="driver")
    s = m.run()
    assert s["outcome"] == "ok", s["error"]
    drv = s["workloads"][0]
    assert drv["status"] == "ok", drv["error"]
    for w in s["workloads"][1:]:
        assert w["status"] == "ok" or "BusError" in (w["error"] or ""), w
    assert report["checks"] > 0 or len(program) <= 2
    return s


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    program=st.lists(op_st, min_size=1, max_size=40),
    fail_rate=st.sampled_from([0.0, 0.0, 0.02]),
    seed=st.integers(1, 1000),
)
def test_random_programs_keep_invariants_and_every_load_sees_the_last_store(
    program: list[tuple[Any, ...]], fail_rate: float, seed: int
) -> None:
    _run_program([("spawn", 0), ("mmap", 0, 40), *program], fail_rate, seed)


def test_heavy_program_pages_out_and_in_and_reads_back() -> None:
    """A fixed program that overcommits 96 frames about 2x, so pageouts and page-ins happen."""
    prog: list[tuple[Any, ...]] = [("spawn", 0), ("spawn", 1)]
    for i in (0, 1):
        prog += [("mmap", i, 48), ("mmap", i, 40)]
    prog += [("touch", i, r, True) for i in (0, 1) for r in (0, 1)]  # 176 pages on 96 frames
    for rep in range(2):
        for i in (0, 1):
            for r in (0, 1):
                prog += [("store", i, r, pg, 1000 * rep + 10 * i + pg) for pg in range(0, 40, 3)]
    for i in (0, 1):
        for r in (0, 1):
            prog += [("load", i, r, pg) for pg in range(0, 40, 3)]
    prog += [("exit", 0), ("spawn", 2), ("mmap", 2, 48), ("touch", 2, 0, True)]
    prog += [("load", 1, r, pg) for r in (0, 1) for pg in range(0, 40, 3)]
    s = _run_program(prog, 0.0, 5)
    assert s["uvmexp"]["pdpageouts"] > 0 and s["faults"]["major"] > 0
