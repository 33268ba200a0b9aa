"""emu.benchmarks.pageout: pages per second the page daemon writes to the swap image.

A machine of ``ram`` pages (timing model ``none``, buffer cache off) and one process that
writes one 8-byte stamp into each of ``4 * ram`` fresh pages in order: after the first ``ram``
pages the machine is under pressure, and the daemon deactivates, cleans (16-page clustered
async pageouts) and frees pages while the process keeps faulting. Measured from the first
write to the last:

- ``T``: wall seconds;
- ``T_proc``: host seconds spent inside the process's own steps (its coroutine, the fault
  handler it runs, its waits for memory), from a step timer around it;
- ``W``: pages the swap device completed writing in that interval.

Our figure is ``W / (T - T_proc)``: pages written per second of the host time the paging
machinery took (the daemon, the aiodone daemon, the completion interrupts, the clock's idle
loop and the real I/O it waited for). ``W / T`` (end to end, the process's faults included)
is in the row's extras. The reference writes the same ``W`` pages with raw ``os.pwritev``
gathers of 16 scattered 4 KiB frames (64 KiB) into a fresh sparse file, in the same process,
between our repeats. Target: >= 0.5x the reference.
"""

from __future__ import annotations

import mmap
import os
import statistics
import tempfile
import time
from pathlib import Path

from emu.benchmarks import BenchResult, result, spread
from emu.benchmarks._harness import BenchMachine, StepTimer
from emu.process import UserProcess
from emu.ram import PAGE_SIZE

TARGET = 0.5
CLUSTER = 16
BASE = 0x400000


def _sizes(quick: bool, tiny: bool) -> tuple[int, int]:
    """(RAM pages, repeats); the process writes 4x the RAM."""
    if tiny:
        return 128, 1
    return (2048, 3) if quick else (4096, 5)


def _ours(workdir: Path, ram: int, swapencrypt: bool) -> tuple[float, float, int]:
    """One run: (T wall seconds, T_proc seconds, pages written)."""
    npages = 4 * ram
    bm = BenchMachine(workdir, ram, npages + 1024, swapencrypt=swapencrypt)
    disk = bm.disks[0]
    timer = StepTimer()
    out: list[float] = []

    async def writer(p: UserProcess) -> None:
        await p.mmap(npages * PAGE_SIZE, addr=BASE)
        stamps = [i.to_bytes(8, "little") for i in range(npages)]
        t_in0, w0 = timer.seconds, disk.stats.write_pages
        t0 = time.perf_counter()
        for i, s in enumerate(stamps):
            await p.store(BASE + i * PAGE_SIZE, s)
        t = time.perf_counter() - t0
        out[:] = [t, timer.seconds - t_in0, disk.stats.write_pages - w0]

    async def body(bm: BenchMachine) -> None:
        await bm.wait(bm.spawn(timer.wrap(writer), name="writer"))

    try:
        bm.run(body)
    finally:
        bm.close()
    t, t_proc, w = out
    if w <= 0:
        raise AssertionError("pageout: the daemon wrote nothing; the machine was not under pressure")
    return t, t_proc, int(w)


def _raw(path: Path, arena: memoryview, nframes: int, npages: int) -> float:
    """Seconds to write ``npages`` pages as 16-frame gathers of scattered frames."""
    stride = 257  # coprime with nframes (a power of two): no two adjacent frames in a gather
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    views = [arena[f * PAGE_SIZE : (f + 1) * PAGE_SIZE] for f in range(nframes)]
    try:
        os.ftruncate(fd, npages * PAGE_SIZE)
        t0 = time.perf_counter()
        for c in range(0, npages, CLUSTER):
            n = min(CLUSTER, npages - c)
            os.pwritev(fd, [views[(c + j) * stride % nframes] for j in range(n)], c * PAGE_SIZE)
        return time.perf_counter() - t0
    finally:
        for v in views:
            v.release()
        os.close(fd)
        os.unlink(path)


def run(quick: bool, tiny: bool = False, swapencrypt: bool = True) -> list[BenchResult]:
    ram, repeats = _sizes(quick, tiny)
    nframes = 4096
    mm = mmap.mmap(-1, nframes * PAGE_SIZE)
    arena = memoryview(mm)
    for f in range(nframes):  # real pages on both sides
        arena[f * PAGE_SIZE : f * PAGE_SIZE + 8] = f.to_bytes(8, "little")
    ours: list[float] = []  # seconds of paging machinery per page written
    e2e: list[float] = []
    refs: list[float] = []
    written: list[int] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-pageout-") as tmp:
            tmpd = Path(tmp)
            _raw(tmpd / "warm.img", arena, nframes, 1024)
            for r in range(repeats):
                if r % 2:
                    refs.append(_raw(tmpd / f"raw{r}.img", arena, nframes, written[-1]) / written[-1])
                t, t_proc, w = _ours(tmpd / f"m{r}", ram, swapencrypt)
                ours.append((t - t_proc) / w)
                e2e.append(t / w)
                written.append(w)
                if not r % 2:
                    refs.append(_raw(tmpd / f"raw{r}.img", arena, nframes, w) / w)
    finally:
        arena.release()
        mm.close()
    t_page, t_ref = statistics.median(ours), statistics.median(refs)
    value, reference = 1 / t_page, 1 / t_ref
    ratio = value / reference
    return [result(
        "pageout" if swapencrypt else "pageout_plain", value / 1e3, "k pages/s", reference / 1e3, f">= {TARGET}x", ratio >= TARGET,
        spread(ours), ram_pages=ram, pages_written=int(statistics.median(written)),
        end_to_end_kpages_s=round(1e-3 / statistics.median(e2e), 2),
        note=f"{t_page * 1e6:.1f} µs/page paging, {statistics.median(e2e) * 1e6:.0f} µs/page e2e",
    )]


def run_plain(quick: bool, tiny: bool = False) -> list[BenchResult]:
    """``pageout_plain``: the same with swap encryption off (``pageout`` has it on, the
    default), so the two rows of one run give what encryption costs the paging machinery."""
    return run(quick, tiny, swapencrypt=False)
