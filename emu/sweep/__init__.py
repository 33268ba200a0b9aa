"""emu.sweep: parameter sweeps on a local process pool or on Ray (``emu sweep``).

A run is a pure function of (scenario, overrides, seed, daemon), so a sweep is a grid of such
runs, each a *cell* named by a hash of its inputs; its output is the ordinary run directory,
brought back to the driver under ``DIR/cells/<cell-id>/`` wherever it ran, and the results
table (``DIR/results.parquet``, ``DIR/results.csv``) and plots (``DIR/plots/``) are derived
from the cells' ``summary.json`` files. Modules: :mod:`~emu.sweep.spec` (the TOML file, the
cells), :mod:`~emu.sweep.cells` (cell ids, the worker's side, packing),
:mod:`~emu.sweep.engines` (the interface and the process pool), :mod:`~emu.sweep.ray_engine`,
:mod:`~emu.sweep.driver` (the sweep directory, resuming), :mod:`~emu.sweep.results`,
:mod:`~emu.sweep.plots`. docs/sweeps.md is the user's guide.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from emu.sweep.cells import make_task
from emu.sweep.driver import Report, design, prepare, run_sweep
from emu.sweep.engines import Engine, PoolEngine
from emu.sweep.spec import SweepError, SweepSpec, load_spec, plan

__all__ = ["Engine", "PoolEngine", "Report", "SweepError", "SweepSpec", "cmd_sweep", "load_spec",
           "make_engine", "plan", "sweep"]

RAY_LOCAL = "local"  # emu.cli: --ray without an address


def make_engine(jobs: int | None, ray: str | None) -> Engine:
    if jobs is not None and jobs < 1:
        raise SweepError(f"--jobs {jobs}: give at least 1")
    if ray is None:
        return PoolEngine(jobs)
    from emu.sweep.ray_engine import RayEngine  # Ray is imported only when asked for

    return RayEngine(None if ray == RAY_LOCAL else ray)


def sweep(spec: SweepSpec, out: Path, engine: Engine | None = None, *,
          retry_failed: bool = False, progress: bool | None = None) -> Report:  # fmt: skip
    """Plan (every cell validated), then run what ``out`` lacks; the API of ``emu sweep``."""
    cells = plan(spec)
    tasks = [make_task(c, spec) for c in cells]
    return run_sweep(spec, cells, tasks, out, engine or PoolEngine(), retry_failed=retry_failed,
                     progress=progress)  # fmt: skip


def report(r: Report) -> int:
    """Print what happened; the exit status: 130 interrupted, 1 a cell not ok, else 0."""
    print(f"{r.total} cells: {r.ran} ran, {r.skipped} already done, {r.failed} not ok; "
          f"{r.seconds:.1f} s")  # fmt: skip
    print(f"results: {r.out / 'results.parquet'}, {r.out / 'results.csv'}")
    for p in r.plots:
        print(f"plot: {p}")
    if r.interrupted:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return 128 + r.interrupted  # 130 for SIGINT, 143 for SIGTERM, as emu run
    if r.failed:
        print(f"{r.failed} cells not ok (see the outcome and error columns); rerun them with "
              "--retry-failed", file=sys.stderr)  # fmt: skip
    return 1 if r.failed else 0


def cmd_sweep(args: argparse.Namespace) -> int:
    spec = load_spec(Path(args.spec))
    cells = plan(spec)  # every cell checked before an engine starts
    tasks = [make_task(c, spec) for c in cells]
    prepare(Path(args.out), design(spec, cells, tasks))  # a mismatching DIR: refused now
    engine = make_engine(args.jobs, args.ray)
    r = run_sweep(spec, cells, tasks, Path(args.out), engine, retry_failed=args.retry_failed)
    return report(r)
