"""emu.benchmarks.pageout: pages per second the page daemon writes to the swap image.

A machine of ``ram`` pages (timing model ``none``, the default kernel configuration) and one
process that writes one 8-byte stamp into each of ``4 * ram`` fresh pages in order: after
the first ``ram`` pages the machine is under pressure, and the daemon deactivates, cleans
(16-page clustered async pageouts) and frees pages while the process keeps faulting.
Measured from the first write to the last:

- ``C``: CPU seconds of the main thread (``time.thread_time``: the event loop's thread, on
  which every emulated thread and every inline transfer runs);
- ``C_proc``: CPU seconds spent inside the process's own steps (its coroutine, the fault
  handler it runs, its waits for memory), from a step timer around it;
- ``W``: pages the swap device completed writing in that interval.

Our figure is ``W / (C - C_proc)``: pages written per CPU second the paging machinery took
(the daemon, the aiodone daemon, the completion interrupts, the clock's idle loop and the
real writes). A completion that the process fires itself when it blocks last (emu.clock)
counts as the process's: a few µs per 16-page cluster. The reference writes the same ``W``
pages with raw ``os.pwritev`` gathers of 16 scattered 4 KiB frames (64 KiB) into a fresh
sparse file, in the same process, between our repeats, three times per repeat (the median
counts), also timed in CPU seconds: a writer that the host's dirty-page throttling puts to
sleep, or that waits for a CPU on a loaded machine, is not charged for it, which made a
wall-clock reference swing by 4x between runs. The wall-clock figures of both sides are in
the row's extras (``wall_kpages_s``, ``ref_wall_kpages_s``), with ``W / C`` end to end
(faults included) and the reference's own spread (``ref_spread``). Target: >= 0.5x the
reference.
"""

from __future__ import annotations

import mmap
import os
import statistics
import tempfile
import time
from pathlib import Path

from emu.benchmarks import BenchResult, result, spread
from emu.benchmarks._harness import BenchMachine, StepTimer, default_config
from emu.process import UserProcess
from emu.ram import PAGE_SIZE

TARGET = 0.5
CLUSTER = 16
REF_RUNS = 3  # reference writes per repeat
BASE = 0x400000
# what the kernel did while the pages were written, per page written (``pdrevs_per_page``
# ...): whether the paging machinery did the same work with and without swap encryption (the
# pager's bounce pages may be short, then it answers VM_PAGER_AGAIN and the daemon goes on)
KERNEL_COUNTERS = ("pdrevs", "pdscans", "pdpageouts")


def _sizes(quick: bool, tiny: bool) -> tuple[int, int]:
    """(RAM pages, repeats); the process writes 4x the RAM."""
    if tiny:
        return 128, 1
    return (2048, 3) if quick else (4096, 5)


def _ours(
    workdir: Path, ram: int, swapencrypt: bool
) -> tuple[float, float, float, float, int, dict[str, int]]:
    """One run: (C CPU seconds, C_proc, T wall seconds, T_proc, pages written, what the
    kernel did meanwhile: the uvmexp counters of :data:`KERNEL_COUNTERS`)."""
    npages = 4 * ram
    bm = BenchMachine(workdir, ram, npages + 1024, config=default_config(swapencrypt))
    disk = bm.disks[0]
    timer = StepTimer()
    out: list[float] = []
    kdelta: dict[str, int] = {}

    async def writer(p: UserProcess) -> None:
        await p.mmap(npages * PAGE_SIZE, addr=BASE)
        stamps = [i.to_bytes(8, "little") for i in range(npages)]
        c_in0, t_in0, w0 = timer.cpu, timer.seconds, disk.stats.write_pages
        u = bm.k.uvmexp
        k0 = {n: getattr(u, n) for n in KERNEL_COUNTERS}
        t0, c0 = time.perf_counter(), time.thread_time()
        for i, s in enumerate(stamps):
            await p.store(BASE + i * PAGE_SIZE, s)
        c, t = time.thread_time() - c0, time.perf_counter() - t0
        out[:] = [c, timer.cpu - c_in0, t, timer.seconds - t_in0, disk.stats.write_pages - w0]
        kdelta.update({n: getattr(u, n) - k0[n] for n in KERNEL_COUNTERS})

    async def body(bm: BenchMachine) -> None:
        await bm.wait(bm.spawn(timer.wrap(writer), name="writer"))

    try:
        bm.run(body)
    finally:
        bm.close()
    c, c_proc, t, t_proc, w = out
    if w <= 0:
        raise AssertionError("pageout: the daemon wrote nothing; the machine was not under pressure")
    return c, c_proc, t, t_proc, int(w), kdelta


def _raw(path: Path, arena: memoryview, nframes: int, npages: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) to write ``npages`` pages as 16-frame gathers of
    scattered frames."""
    stride = 257  # coprime with nframes (a power of two): no two adjacent frames in a gather
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    views = [arena[f * PAGE_SIZE : (f + 1) * PAGE_SIZE] for f in range(nframes)]
    try:
        os.ftruncate(fd, npages * PAGE_SIZE)
        t0, c0 = time.perf_counter(), time.thread_time()
        for c in range(0, npages, CLUSTER):
            n = min(CLUSTER, npages - c)
            os.pwritev(fd, [views[(c + j) * stride % nframes] for j in range(n)], c * PAGE_SIZE)
        return time.thread_time() - c0, time.perf_counter() - t0
    finally:
        for v in views:
            v.release()
        os.close(fd)
        os.unlink(path)


def _ref(tmpd: Path, r: int, arena: memoryview, nframes: int, npages: int) -> tuple[float, float]:
    """The reference of repeat ``r``: (CPU, wall) seconds per page, medians of 3 writes."""
    runs = [_raw(tmpd / f"raw{r}.{i}.img", arena, nframes, npages) for i in range(REF_RUNS)]
    return (statistics.median(c for c, _ in runs) / npages,
            statistics.median(t for _, t in runs) / npages)  # fmt: skip


def run(quick: bool, tiny: bool = False, swapencrypt: bool = True) -> list[BenchResult]:
    ram, repeats = _sizes(quick, tiny)
    nframes = 4096
    mm = mmap.mmap(-1, nframes * PAGE_SIZE)
    arena = memoryview(mm)
    for f in range(nframes):  # real pages on both sides
        arena[f * PAGE_SIZE : f * PAGE_SIZE + 8] = f.to_bytes(8, "little")
    ours: list[float] = []  # CPU seconds of paging machinery per page written
    walls: list[float] = []  # wall seconds of the same
    e2e: list[float] = []  # CPU seconds per page, end to end
    refs: list[float] = []
    ref_walls: list[float] = []
    written: list[int] = []
    kernel: list[dict[str, int]] = []

    def ref(r: int, w: int) -> None:
        c, t = _ref(tmpd, r, arena, nframes, w)
        refs.append(c)
        ref_walls.append(t)

    try:
        with tempfile.TemporaryDirectory(prefix="bench-pageout-") as tmp:
            tmpd = Path(tmp)
            _raw(tmpd / "warm.img", arena, nframes, 1024)
            for r in range(repeats):
                if r % 2:
                    ref(r, written[-1])
                c, c_proc, t, t_proc, w, kd = _ours(tmpd / f"m{r}", ram, swapencrypt)
                kernel.append(kd)
                ours.append((c - c_proc) / w)
                walls.append((t - t_proc) / w)
                e2e.append(c / w)
                written.append(w)
                if not r % 2:
                    ref(r, w)
    finally:
        arena.release()
        mm.close()
    t_page, t_ref = statistics.median(ours), statistics.median(refs)
    value, reference = 1 / t_page, 1 / t_ref
    ratio = value / reference
    per_page = {f"{n}_per_page": round(statistics.median(kd[n] / w for kd, w in zip(
        kernel, written, strict=True)), 4) for n in KERNEL_COUNTERS}  # fmt: skip
    row = result(
        "pageout" if swapencrypt else "pageout_plain", value / 1e3, "k pages/CPU s", reference / 1e3, f">= {TARGET}x", ratio >= TARGET,
        spread(ours), ram_pages=ram, pages_written=int(statistics.median(written)),
        ref_spread=round(spread(refs), 3),
        end_to_end_kpages_s=round(1e-3 / statistics.median(e2e), 2),
        wall_kpages_s=round(1e-3 / statistics.median(walls), 2),
        ref_wall_kpages_s=round(1e-3 / statistics.median(ref_walls), 2),
        ref_wall_spread=round(spread(ref_walls), 3),
        note=f"{t_page * 1e6:.1f} µs CPU/page paging, {statistics.median(e2e) * 1e6:.0f} µs/page "
             f"e2e; ref {t_ref * 1e6:.2f} µs, spread {spread(refs):.0%}",
    )
    row.extra.update(per_page)
    return [row]


def run_plain(quick: bool, tiny: bool = False) -> list[BenchResult]:
    """``pageout_plain``: the same with swap encryption off (``pageout`` has it on, the
    default), so the two rows of one run give what encryption costs the paging machinery."""
    return run(quick, tiny, swapencrypt=False)
