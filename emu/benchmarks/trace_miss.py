"""emu.benchmarks.trace_miss: a miss-heavy trace, misses per second, against libCacheSim LRU.

The trace is generated (seeded, the same in every run): a footprint of ``4 * frames`` pages,
half of it a hot set read and written with Zipf(1.0) popularity (ranks scattered over the
half by a fixed permutation), half of it a loop region walked in order, round and round, a
loop twice the size of RAM. The stream alternates blocks of 256 accesses of either kind
(chosen at random, even odds); 30 % of the accesses are writes. Every access is one page.

- **ours**: a machine with ``frames`` pages of RAM in the default kernel configuration (what
  a scenario or API run gets without a ``[kernel]`` section: DIAGNOSTIC, ``uvm_check`` after
  every daemon pass and aiodone batch, the buffer cache; later defaults come with it), timing
  model ``none``, and one process that maps the footprint and replays the stream with
  ``p.touch`` in chunks of 4096 accesses, timed from the first chunk to the last. Our figure
  is misses per second: the zero-fill and major faults the replay took (``flt_zero`` +
  ``flt_major``), divided by its wall time.
- **reference**: libCacheSim's ``LRU`` with ``frames`` objects over the same page stream,
  fed as an oracleGeneral file written once, timed around ``process_trace``: its misses per
  second. The row also reports both miss ratios; the trace's property (LRU miss ratio >= 30 %)
  is checked, since the row means nothing without it.

Target: >= 25 k misses/s (``--quick``: 512 frames and 60 k accesses; full: 1024 frames and
200 k accesses).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from emu.benchmarks import BenchResult, result, spread
from emu.benchmarks._harness import BenchMachine, default_config
from emu.process import UserProcess
from emu.ram import PAGE_SHIFT
from emu.workloads.trace import lcs_reader, write_oracle

TARGET = 25e3
CHUNK = 4096
BLOCK = 256
BASE = 0x400000


def _sizes(quick: bool, tiny: bool) -> tuple[int, int, int]:
    """(frames, accesses, repeats)."""
    if tiny:
        return 64, 2048, 1
    return (512, 60_000, 3) if quick else (1024, 200_000, 3)


def make_stream(frames: int, n: int, seed: int = 1) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """(page numbers, is_write) of the trace described in the module docstring."""
    rng = np.random.default_rng(seed)
    hot = 2 * frames
    loop = 2 * frames
    ranks = np.arange(1, hot + 1, dtype=np.float64)
    prob = 1.0 / ranks
    prob /= prob.sum()
    scatter = rng.permutation(hot)
    nblocks = -(-n // BLOCK)
    kinds = rng.random(nblocks) < 0.5
    pages = np.empty(nblocks * BLOCK, np.int64)
    pos = 0
    for b, zipf in enumerate(kinds.tolist()):
        out = pages[b * BLOCK : (b + 1) * BLOCK]
        if zipf:
            out[:] = scatter[rng.choice(hot, BLOCK, p=prob)]
        else:
            out[:] = hot + (pos + np.arange(BLOCK)) % loop
            pos = (pos + BLOCK) % loop
    writes = rng.random(n) < 0.3
    return pages[:n], writes


def _ours(workdir: Path, pages: npt.NDArray[np.int64], writes: npt.NDArray[np.bool_],
          frames: int) -> tuple[float, float, int, int]:  # fmt: skip
    """(wall seconds, CPU seconds, misses, all faults) of one replay on a fresh machine."""
    footprint = int(pages.max()) + 1
    bm = BenchMachine(workdir, frames, footprint + 4 * frames, config=default_config())
    vaddrs = (np.uint64(BASE) + (pages.astype(np.uint64) << np.uint64(PAGE_SHIFT)))
    chunks = [(vaddrs[i : i + CHUNK], writes[i : i + CHUNK]) for i in range(0, len(pages), CHUNK)]
    out: list[float] = []
    k = bm.k

    async def replay(p: UserProcess) -> None:
        await p.mmap(footprint << PAGE_SHIFT, addr=BASE)
        u = k.uvmexp
        m0, f0 = u.flt_zero + u.flt_major, u.faults
        t0, c0 = time.perf_counter(), time.process_time()
        for v, w in chunks:
            await p.touch(v, w)
        out[:] = [time.perf_counter() - t0, time.process_time() - c0,
                  u.flt_zero + u.flt_major - m0, u.faults - f0]  # fmt: skip

    async def body(bm: BenchMachine) -> None:
        await bm.wait(bm.spawn(replay, name="replay"))

    try:
        bm.run(body)
    finally:
        bm.close()
    return out[0], out[1], int(out[2]), int(out[3])


def run(quick: bool, tiny: bool = False) -> list[BenchResult]:
    import libcachesim as lcs

    frames, n, repeats = _sizes(quick, tiny)
    pages, writes = make_stream(frames, n)
    walls: list[float] = []
    cpus: list[float] = []
    misses: list[int] = []
    faults: list[int] = []
    refs: list[float] = []
    lru_miss = 0.0
    with tempfile.TemporaryDirectory(prefix="bench-trace-miss-") as tmp:
        tmpd = Path(tmp)
        write_oracle(pages, tmpd / "pages.oracleGeneral.bin")
        reader = lcs_reader(tmpd / "pages.oracleGeneral.bin")
        hashpower = max(12, (4 * (int(pages.max()) + 1)).bit_length())

        def lru() -> float:
            nonlocal lru_miss
            cache = lcs.LRU(cache_size=frames, hashpower=hashpower)
            t0 = time.perf_counter()
            lru_miss, _ = cache.process_trace(reader)
            return time.perf_counter() - t0

        lru()  # warm-up
        for r in range(repeats):
            if r % 2:
                refs.append(lru())
            t, c, m, f = _ours(tmpd / f"m{r}", pages, writes, frames)
            walls.append(t)
            cpus.append(c)
            misses.append(m)
            faults.append(f)
            if not r % 2:
                refs.append(lru())
    if not tiny and lru_miss < 0.3:
        raise AssertionError(f"trace_miss: the trace's LRU miss ratio is {lru_miss:.3f}, not >= 0.3")
    t_ours, t_cpu, t_ref = statistics.median(walls), statistics.median(cpus), statistics.median(refs)
    nmiss = statistics.median(misses)
    value = nmiss / t_ours
    reference = lru_miss * n / t_ref
    return [result(
        "trace_miss", value / 1e3, "k misses/s", reference / 1e3, f">= {TARGET / 1e3:.0f} k/s",
        value >= TARGET, spread([m / t for m, t in zip(misses, walls, strict=True)]),
        frames=frames, accesses=n, footprint_pages=int(pages.max()) + 1,
        our_miss_ratio=round(nmiss / n, 4), lru_miss_ratio=round(float(lru_miss), 4),
        faults=int(statistics.median(faults)), wall_s=round(t_ours, 3), cpu_s=round(t_cpu, 3),
        us_per_miss=round(t_ours / nmiss * 1e6, 1), cpu_us_per_miss=round(t_cpu / nmiss * 1e6, 1),
        note=f"{n / 1e3:.0f} k acc on {frames} frames, {nmiss / n:.0%} misses "
             f"(LRU {lru_miss:.0%}), {t_ours / nmiss * 1e6:.0f} µs/miss wall, "
             f"{t_cpu / nmiss * 1e6:.0f} µs CPU",
    )]
