"""emu.benchmarks.sweep: cells per second of a sweep at ``--jobs 2`` against ``--jobs 1``.

The same sweep (the ``small`` scenario over ``n`` seeds: 120 cells, 48 with ``--quick``) runs
twice on the local process pool, once with one worker and once with two, each into a fresh
directory and timed end to end as ``emu sweep`` does it (planning, pool start-up, every cell
run, shipped back and landed, results and plots written). The figure is jobs-2 cells per
second; the reference is jobs-1 cells per second in the same run. Target: ratio >= 1.7 on a
2-core machine (the workers are reused, so start-up and imports are paid once per worker).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from emu.benchmarks import BenchResult, result
from emu.sweep import PoolEngine, sweep
from emu.sweep.spec import make_spec

TARGET = 1.7


def _rate(n: int, jobs: int, out: Path) -> float:
    spec = make_spec({"scenario": "small", "seeds": list(range(1, n + 1))}, {})
    t0 = time.perf_counter()
    r = sweep(spec, out, PoolEngine(jobs), progress=False)
    dt = time.perf_counter() - t0
    assert r.ran == n and r.failed == 0, f"sweep bench: {r}"
    return n / dt


def run(quick: bool, tiny: bool = False) -> list[BenchResult]:
    n = 4 if tiny else 48 if quick else 120
    with tempfile.TemporaryDirectory(prefix="uvm-emu-bench-sweep-") as tmp:
        one = _rate(n, 1, Path(tmp) / "j1")
        two = _rate(n, 2, Path(tmp) / "j2")
    return [result("sweep", two, "cells/s", one, f">= {TARGET}x jobs 1",
                   two / one >= TARGET, cells=n,
                   note=f"{n} small cells, --jobs 2 vs --jobs 1")]  # fmt: skip
