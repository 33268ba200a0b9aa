"""emu.benchmarks.trace: replaying a lackey trace, against libCacheSim's CLOCK on the same pages.

The trace (``kvtouch.lackey.gz``, 2.0 M accesses over 1605 pages; ``ls.lackey.gz``, 0.77 M
over 268 pages, with ``--quick``) is read once with :func:`emu.workloads.trace.read_lackey`
into chunks of 4096 page accesses. Three timings, each the median of its repeats:

- **reader**: streaming the whole file through ``read_lackey`` (gunzip + numpy parsing),
  reported separately (``reader_maccesses_s``) and not charged to the replay;
- **ours**: a machine with ``frames`` pages of RAM (timing model ``none``, buffer cache off)
  and one process that replays the pre-read chunks the way the ``trace_replay`` workload does
  (each 2 MiB region the trace reaches is mapped on first use, then ``p.touch`` per chunk),
  timed from the first chunk to the last: accesses per second, faults included;
- **reference**: libCacheSim's ``Clock`` (second chance, one bit) with ``frames`` objects
  over the same page stream, fed as an oracleGeneral file written once (obj_id = page number,
  sizes ignored) and timed around ``process_trace``.

Target: ours >= 0.1x libCacheSim CLOCK. The row also reports both miss ratios (ours: faults
per access, which is not CLOCK's policy: the kernel runs OpenBSD's two-queue daemon with its
free targets and reserves).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from emu.benchmarks import BenchResult, result, spread
from emu.benchmarks._harness import BenchMachine
from emu.process import UserProcess
from emu.workloads.trace import DATA_DIR, lcs_reader, read_lackey, write_oracle

TARGET = 0.1
CHUNK = 4096
REGION_SHIFT = 21

Chunks = list[tuple[npt.NDArray[np.uint64], npt.NDArray[np.bool_]]]


def _sizes(quick: bool, tiny: bool) -> tuple[str, int, int | None, int]:
    """(trace file, frames, access limit, repeats)."""
    if tiny:
        return "ls.lackey.gz", 256, 20_000, 1
    return ("ls.lackey.gz", 192, None, 3) if quick else ("kvtouch.lackey.gz", 1024, None, 5)


def _read(path: Path, limit: int | None) -> Chunks:
    out: Chunks = []
    n = 0
    for v, w in read_lackey(path, CHUNK):
        if limit is not None and n + len(v) > limit:
            v, w = v[: limit - n], w[: limit - n]
        out.append((v, w))
        n += len(v)
        if limit is not None and n >= limit:
            break
    return out


def _ours(workdir: Path, chunks: Chunks, frames: int) -> tuple[float, int]:
    """(seconds, faults) of one replay on a fresh machine."""
    bm = BenchMachine(workdir, frames, 4 * frames + 4096)
    out: list[float] = []

    async def replay(p: UserProcess) -> None:
        mapped: set[int] = set()
        t0 = time.perf_counter()
        for v, w in chunks:
            for r in np.unique(v >> np.uint64(REGION_SHIFT)).tolist():
                if r not in mapped:
                    await p.mmap(1 << REGION_SHIFT, addr=r << REGION_SHIFT)
                    mapped.add(r)
            await p.touch(v, w)
        out.append(time.perf_counter() - t0)

    async def body(bm: BenchMachine) -> None:
        await bm.wait(bm.spawn(replay, name="replay"))

    try:
        bm.run(body)
        faults = bm.k.uvmexp.faults
    finally:
        bm.close()
    return out[0], faults


def run(quick: bool, tiny: bool = False) -> list[BenchResult]:
    import libcachesim as lcs

    name, frames, limit, repeats = _sizes(quick, tiny)
    path = DATA_DIR / name
    readers: list[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        chunks = _read(path, limit)
        readers.append(time.perf_counter() - t0)
    n = sum(len(v) for v, _ in chunks)
    pages = np.concatenate([v for v, _ in chunks]) >> np.uint64(12)
    ours: list[float] = []
    refs: list[float] = []
    faults: list[int] = []
    miss = 0.0
    with tempfile.TemporaryDirectory(prefix="bench-trace-") as tmp:
        tmpd = Path(tmp)
        write_oracle(pages, tmpd / "pages.oracleGeneral.bin")
        reader = lcs_reader(tmpd / "pages.oracleGeneral.bin")
        hashpower = max(12, (4 * len(np.unique(pages))).bit_length())

        def clock() -> float:
            nonlocal miss
            cache = lcs.Clock(cache_size=frames, hashpower=hashpower)
            t0 = time.perf_counter()
            miss, _ = cache.process_trace(reader)
            return time.perf_counter() - t0

        clock()  # warm-up
        for r in range(repeats):
            if r % 2:
                refs.append(clock())
            t, f = _ours(tmpd / f"m{r}", chunks, frames)
            ours.append(t)
            faults.append(f)
            if not r % 2:
                refs.append(clock())
    t_ours, t_ref, t_read = (statistics.median(x) for x in (ours, refs, readers))
    value, reference = n / t_ours, n / t_ref
    ratio = value / reference
    return [result(
        "trace", value / 1e6, "M accesses/s", reference / 1e6, f">= {TARGET}x CLOCK",
        ratio >= TARGET, spread(ours), trace=name, accesses=n, frames=frames,
        reader_maccesses_s=round(n / t_read / 1e6, 3), our_fault_ratio=round(statistics.median(faults) / n, 5),
        clock_miss_ratio=round(float(miss), 5),
        note=f"{name} {n / 1e6:.2f} M acc, {frames} frames; reader {n / t_read / 1e6:.2f} M/s",
    )]
