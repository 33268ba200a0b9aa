"""emu.benchmarks.scenario: the ``run`` benchmark, a whole scenario end to end.

Runs the ``default`` scenario (``small`` with ``--quick``; ``small`` capped at one millisecond
of virtual time in the tests' tiny mode) exactly as ``emu run`` does, into a
temporary run directory (event log, summary), and reports the median wall seconds of its
repeats, with the virtual time it covered and the virtual/wall ratio (how many seconds of
the emulated machine one wall second buys), and the same per CPU second of the process
(``virtual_per_cpu``: steadier on a shared machine). There is no reference and no target:
this row is the number a user feels; the other rows explain it.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from emu.benchmarks import BenchResult, result, spread
from emu.scenario import load_scenario


def _sizes(quick: bool, tiny: bool) -> tuple[str, list[str], int]:
    """(scenario, overrides, repeats)."""
    if tiny:
        return "small", ["machine.max_virtual_ns=1000000"], 1
    return ("small", [], 1) if quick else ("default", [], 3)


def run(quick: bool, tiny: bool = False) -> list[BenchResult]:
    from emu.harness import run_scenario

    name, overrides, repeats = _sizes(quick, tiny)
    walls: list[float] = []
    cpus: list[float] = []
    virt: list[int] = []
    outcome = ""
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        for r in range(repeats):
            sc = load_scenario(name, overrides)
            run_dir = Path(tmp) / f"r{r}"
            t0, c0 = time.perf_counter(), time.process_time()
            s = run_scenario(sc, run_dir, log_level="info")
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
            virt.append(int(s["virtual_ns"]))
            outcome = str(s["outcome"])
            if outcome != "ok" and not tiny:
                raise RuntimeError(f"run: scenario {name} ended {outcome}: {s['error']}")
    wall = statistics.median(walls)
    v = statistics.median(virt) / 1e9
    return [result(
        "run", wall, f"s wall ({name})", None, "", None, spread(walls), lower_is_better=True,
        scenario=name, virtual_s=round(v, 4), virtual_per_wall=round(v / wall, 5), outcome=outcome,
        cpu_s=round(statistics.median(cpus), 3),
        virtual_per_cpu=round(v / statistics.median(cpus), 5),
        note=f"{v:.3f} s virtual, virtual/wall = {v / wall:.4f}, "
             f"virtual/CPU = {v / statistics.median(cpus):.4f}",
    )]
