"""emu.sweep.driver: a sweep directory, resumed; cells farmed out; results derived.

``DIR/sweep.json`` records the sweep's design (the spec's [sweep] minus ``metrics``, the grid,
and every cell's id, grid values and seed): a rerun with a spec or inputs that no longer match
is refused with the difference. ``DIR/cells/<id>/`` is a cell's run directory as the engine
brought it back, plus ``cell.json`` (grid values, seed, outcome, error, wall time, host); a cell
that produced no run (its machine raised, its worker died) has only ``cell.json`` with outcome
``failed``. A cell lands atomically (unpacked beside, then renamed), so an interrupted sweep
leaves finished cells and nothing half-written: the next run skips every landed cell (its files
untouched) and, with ``retry_failed``, reruns those whose outcome is not ``ok``. The results
table and plots are rebuilt from the landed cells at the end of every invocation.
"""

from __future__ import annotations

import shutil
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from emu.probes import write_private
from emu.stop import on_signals, raise_interrupt
from emu.sweep import plots, results
from emu.sweep.cells import Result, Task, unpack
from emu.sweep.engines import Engine
from emu.sweep.spec import Cell, SweepError, SweepSpec

__all__ = ["Report", "design", "prepare", "run_sweep"]

SCHEMA = "uvm-emu/sweep/1"


@dataclass
class Report:
    total: int
    skipped: int
    ran: int
    failed: int  # of all landed cells, those whose outcome is not ok
    interrupted: int  # the signal that stopped the sweep (SIGINT, SIGTERM), else 0
    seconds: float
    out: Path
    plots: list[Path]


def design(spec: SweepSpec, cells: list[Cell], tasks: list[Task]) -> dict[str, Any]:
    ident = spec.normal()
    ident.pop("metrics", None)  # what is plotted does not change a cell
    return {"schema": SCHEMA, "spec": ident,
            "cells": [{"cell": t.cell, "params": c.params, "seed": c.seed}
                      for c, t in zip(cells, tasks, strict=True)]}  # fmt: skip


def _diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    lines = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if a != b:
            lines.append(f"  {k}: {orjson.dumps(a).decode()} in DIR, now {orjson.dumps(b).decode()}")
    return lines


def prepare(out: Path, plan: dict[str, Any]) -> None:
    """Make ``out`` for this sweep, or check that it holds this very sweep."""
    rec = out / "sweep.json"
    if out.is_file():
        raise SweepError(f"--out {out} is a file; choose a directory")
    if rec.exists():
        old = orjson.loads(rec.read_bytes())
        diff = _diff(old.get("spec", {}), plan["spec"])
        if not diff and [c["cell"] for c in old.get("cells", [])] != [c["cell"] for c in plan["cells"]]:
            diff = ["  the cells differ though the spec is the same: the scenario file, an input "
                    "file (trace, daemon) or the version of uvm-emu changed"]  # fmt: skip
        if diff:
            raise SweepError(f"{out} holds another sweep; what differs:\n" + "\n".join(diff)
                             + f"\nuse another --out, or remove {out} to start over")
    elif out.exists() and any(out.iterdir()):
        raise SweepError(f"--out {out} exists and is not a sweep directory (no sweep.json); "
                         "choose a new or empty directory")  # fmt: skip
    (out / "cells").mkdir(parents=True, exist_ok=True)
    for stale in (out / "cells").glob(".landing-*"):  # left by an interrupted landing
        shutil.rmtree(stale, ignore_errors=True)
    if not rec.exists():
        write_private(rec, orjson.dumps(plan, option=orjson.OPT_INDENT_2))


def _outcome(cell_dir: Path) -> str | None:
    p = cell_dir / "cell.json"
    if not p.exists():
        return None
    return str(orjson.loads(p.read_bytes()).get("outcome"))


def _land(out: Path, res: Result, cell: Cell) -> str:
    """Put a result in place as ``cells/<id>``; return its outcome."""
    final = out / "cells" / res.cell
    tmp = out / "cells" / f".landing-{res.cell}"
    shutil.rmtree(tmp, ignore_errors=True)
    outcome, error = "failed", res.error
    if res.blob is not None:
        unpack(res.blob, tmp)
        summary = orjson.loads((tmp / "summary.json").read_bytes())
        outcome, error = str(summary.get("outcome")), summary.get("error")
    else:
        tmp.mkdir(parents=True)
    rec = {"cell": res.cell, "params": cell.params, "seed": cell.seed, "outcome": outcome,
           "error": error, "wall_s": res.wall_s, "host": res.host}  # fmt: skip
    write_private(tmp / "cell.json", orjson.dumps(rec, option=orjson.OPT_INDENT_2))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return outcome


class _Progress:
    """A rich progress bar with ETA on a terminal, else a line on stderr every few seconds."""

    def __init__(self, total: int, enabled: bool | None, every: float = 5.0) -> None:
        self.total, self.done, self.failed, self.every = total, 0, 0, every
        self.t0 = self.last = time.monotonic()
        self.bar: Any = None
        tty = sys.stdout.isatty() if enabled is None else enabled
        if tty and total:
            self.bar = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn(),
                                TextColumn("ETA"), TimeRemainingColumn())  # fmt: skip
            self.task = self.bar.add_task("sweep", total=total, failed=0)
            self.bar.start()

    def step(self, ok: bool) -> None:
        self.done += 1
        self.failed += not ok
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done, failed=self.failed)
            return
        now = time.monotonic()
        if now - self.last >= self.every or self.done == self.total:
            self.last = now
            rate = self.done / max(now - self.t0, 1e-9)
            eta = (self.total - self.done) / rate if rate else 0.0
            print(f"sweep: {self.done}/{self.total} cells, {self.failed} failed, "
                  f"{rate:.2f} cells/s, ETA {eta:.0f} s", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _todo(out: Path, tasks: list[Task], retry_failed: bool) -> Iterator[Task]:
    for t in tasks:
        oc = _outcome(out / "cells" / t.cell)
        if oc is None:
            yield t
        elif oc != "ok" and retry_failed:
            shutil.rmtree(out / "cells" / t.cell)
            yield t


def blobs_for(tasks: list[Task]) -> dict[str, bytes]:
    """The bytes of every input file the tasks need, once each, by sha256."""
    out: dict[str, bytes] = {}
    for t in tasks:
        for path, sha in t.inputs.items():
            if sha not in out:
                out[sha] = Path(path).read_bytes()
    return out


def run_sweep(spec: SweepSpec, cells: list[Cell], tasks: list[Task], out: Path,
              engine: Engine, *, retry_failed: bool = False,
              progress: bool | None = None) -> Report:  # fmt: skip
    """Run the cells not yet landed in ``out`` on ``engine``; write results and plots."""
    t0 = time.perf_counter()
    prepare(out, design(spec, cells, tasks))
    todo = list(_todo(out, tasks, retry_failed))
    if todo and progress is not False:
        print(f"sweep: {len(todo)} of {len(tasks)} cells to run on {engine.where}",
              file=sys.stderr)  # fmt: skip
    by_id = {t.cell: c for c, t in zip(cells, tasks, strict=True)}
    bar = _Progress(len(todo), progress)
    signum = 0
    try:
        with on_signals(raise_interrupt, (signal.SIGTERM,)) as got:  # SIGTERM: as Ctrl-C
            try:
                for res in engine.run(todo, blobs_for(todo)):
                    bar.step(_land(out, res, by_id[res.cell]) == "ok")
            except KeyboardInterrupt:
                signum = got[0] if got else signal.SIGINT
                engine.close(cancel=True)
    finally:
        bar.close()
        engine.close()
    order = [t.cell for t in tasks]
    table = results.write(out, out / "cells", order, list(spec.grid))
    paths = plots.plot(table, spec.grid, list(spec.sweep.metrics), out / "plots")
    failed = sum(1 for o in table.column("outcome").to_pylist() if o != "ok")
    return Report(total=len(tasks), skipped=len(tasks) - len(todo), ran=bar.done, failed=failed,
                  interrupted=signum, seconds=time.perf_counter() - t0, out=out,
                  plots=paths)  # fmt: skip
