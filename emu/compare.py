"""emu.compare: any number of runs side by side, each against the first (the baseline).

``emu compare RUN_DIR...`` reads run directories only (emu/rundir.py): variants of the page
daemon, seeds, scenarios, traces, finished or not. Each metric comes from ``summary.json``
(docs/summary-schema.md), except the time to the first pageout, which is the ``t_ns`` of the
first ``uvmpd_scan_inactive.pageout`` line of the event log (docs/log-schema.md). A run without
a summary yet (still running, or its Python process died) is compared on what its log says so
far, and the table says so; a run without a log has no first pageout and no time-series plots.

Fault latency percentiles are read from the workloads' log2 histograms (``fault_latency_hist``,
all workloads' traps added up): the percentile is reported as the upper bound ``b`` of the
bucket that holds it (bucket ``b`` holds latencies in ``[b/2, b)``), so "p99 < 262 µs" means
the 99th-percentile fault took at least 131 µs and less than 262 µs of virtual time.

Outputs: a rich table on the terminal, overlay plots (emu/compare_plots.py) and, with
``json_path``, ``{"runs": [{"name", "pdaemon", "metrics", ...}, ...]}``.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from emu import compare_plots, rundir
from emu.analyze import UNFINISHED, RunData, load_run

__all__ = ["METRICS", "Metric", "Run", "compare", "latency_percentile", "load_runs", "to_json"]

PDAEMON_DEFAULT = "1.105"  # the daemon of a run whose summary does not name one


@dataclass(frozen=True, slots=True)
class Metric:
    key: str  # its name in --json's "metrics"
    label: str  # its row in the table
    path: tuple[str, ...]  # where summary.json holds it (empty: computed here)
    unit: str = "count"  # "count" or "ns"


METRICS: tuple[Metric, ...] = (
    Metric("pageouts", "pageouts (pdpageouts)", ("uvmexp", "pdpageouts")),
    Metric("pages_written", "pages written to swap", ("io", "write_pages")),
    Metric("swap_writes", "swap writes", ("io", "writes")),
    Metric("swap_reads", "swap reads", ("io", "reads")),
    Metric("faults_major", "major faults", ("faults", "major")),
    Metric("faults_zero_fill", "zero-fill faults", ("faults", "zero_fill")),
    Metric("pdscans", "pdscans", ("uvmexp", "pdscans")),
    Metric("pdfreed", "pdfreed", ("uvmexp", "pdfreed")),
    Metric("pdreact", "pdreact", ("uvmexp", "pdreact")),
    Metric("pdbusy", "pdbusy", ("uvmexp", "pdbusy")),
    Metric("waits", "waits for memory (uvm_wait)", ("waits", "count")),
    Metric("wait_ns", "time in uvm_wait", ("waits", "total_ns"), "ns"),
    Metric("first_pageout_ns", "time to first pageout", (), "ns"),
    Metric("virtual_ns", "virtual time", ("virtual_ns",), "ns"),
    Metric("fault_p50_ns", "fault latency p50 (<)", (), "ns"),
    Metric("fault_p99_ns", "fault latency p99 (<)", (), "ns"),
)
# what the event log gives of a run that has no summary yet (sums of uvm_pageout.pass deltas)
_FROM_PASSES = {"pageouts": "pdpageouts", "pdscans": "pdscans", "pdfreed": "pdfreed",
                "pdreact": "pdreact", "pdbusy": "pdbusy"}  # fmt: skip


@dataclass
class Run:
    """One compared run: its data, its label and its metrics (None: not known for it)."""

    data: RunData
    name: str
    pdaemon: str
    status: str
    complete: bool  # it has a summary.json
    metrics: dict[str, int | None]
    latency: dict[int, int]  # all workloads' fault latency histograms added up (bound: count)


def latency_percentile(hist: Mapping[Any, int], pct: int) -> int | None:
    """The upper bound (ns) of the log2 bucket holding the ``pct``-th percentile (nearest
    rank: the ``ceil(pct/100 * n)``-th smallest latency); None for an empty histogram."""
    items = sorted((int(b), int(n)) for b, n in hist.items() if int(n) > 0)
    total = sum(n for _, n in items)
    if not total:
        return None
    rank = max(1, -(-pct * total // 100))
    acc = 0
    for bound, n in items:
        acc += n
        if acc >= rank:
            return bound
    return None  # pragma: no cover - acc reaches total


def latency_hist(summary: Mapping[str, Any]) -> dict[int, int]:
    """All workloads' fault latency histograms added up: bucket bound (ns) to count."""
    total: Counter[int] = Counter()
    for w in summary.get("workloads") or []:
        total.update({int(b): int(n) for b, n in (w.get("fault_latency_hist") or {}).items()})
    return {b: n for b, n in sorted(total.items()) if n > 0}


def _get(d: Any, path: tuple[str, ...]) -> int | None:
    for k in path:
        d = d.get(k) if isinstance(d, dict) else None
    return int(d) if isinstance(d, int | float) and not isinstance(d, bool) else None


def _pdaemon_name(pd: Any) -> str:
    """The daemon a run names: ``{"name": ..., "sha256": ...}`` in summary.json and
    ``run.start`` (a user file shows its name and the start of its digest); 1.105 for runs
    from before daemons could be chosen."""
    if isinstance(pd, dict):
        name = str(pd.get("name") or PDAEMON_DEFAULT)
        return f"{name} ({pd['sha256'][:8]})" if pd.get("sha256") else name
    return str(pd) if pd else PDAEMON_DEFAULT


def _finished(r: RunData) -> bool:
    """The run wrote its summary.json (load_run fills a stand-in from the log otherwise)."""
    return bool(r.summary) and r.summary.get("outcome") != UNFINISHED


def _metrics(r: RunData) -> dict[str, int | None]:
    s = r.summary if _finished(r) else {}
    first = r.pageout_t[0] if r.pageout_t else None
    if s:
        m = {x.key: _get(s, x.path) for x in METRICS if x.path}
        hist = latency_hist(s)
        m["fault_p50_ns"] = latency_percentile(hist, 50)
        m["fault_p99_ns"] = latency_percentile(hist, 99)
        m["first_pageout_ns"] = first  # None without a log, or when nothing was paged out
    else:  # unfinished: what the log says so far
        m = dict.fromkeys((x.key for x in METRICS), None)
        if r.events:
            m.update({k: r.pass_sums.get(c, 0) for k, c in _FROM_PASSES.items()})
            m["faults_major"] = len(r.pagein_t)  # one uvm_fault.pagein line per major fault
        m["first_pageout_ns"] = first
        m["virtual_ns"] = r.end.get("virtual_ns") or max(
            [0, *r.sample_t[-1:], *r.pageout_t[-1:], *r.pagein_t[-1:]])
    return {x.key: m.get(x.key) for x in METRICS}


def _status(r: RunData) -> tuple[str, bool]:
    if not _finished(r):
        return "unfinished", False
    outcome = str(r.summary.get("outcome") or "unknown")
    return (outcome if outcome == "ok" else f"interrupted: {outcome}"), True


_NOTES = {
    "unfinished": "unfinished: no summary.json yet (still running, or its process died); its "
                  "metrics are what the event log says so far, '-' where only the summary "
                  "has them.",
    "interrupted": "interrupted: the run stopped before every process exited (deadlock, "
                   "panic, error); its counters are those at the stop.",
}  # fmt: skip


def _names(paths: Sequence[Path]) -> list[str]:
    """Directory names; a name given twice gets its parent's name, then a number."""
    names = [p.resolve().name or str(p) for p in paths]
    dup = {n for n, c in Counter(names).items() if c > 1}
    names = [f"{p.resolve().parent.name}/{n}" if n in dup else n for p, n in zip(paths, names,
                                                                                 strict=True)]
    seen: Counter[str] = Counter()
    out = []
    for n in names:
        seen[n] += 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out


def load_runs(paths: Sequence[Path | str]) -> list[Run]:
    """Read the runs; :class:`emu.rundir.RunDirError` names the first that is not a run."""
    dirs = [rundir.check_run_dir(Path(p)) for p in paths]
    runs = []
    for d, name in zip(dirs, _names(dirs), strict=True):
        data = load_run(d)
        pdaemon = _pdaemon_name(data.summary.get("pdaemon") or data.start.get("pdaemon"))
        status, complete = _status(data)
        runs.append(Run(data, name, pdaemon, status, complete, _metrics(data),
                        latency_hist(data.summary)))
    return runs


def versus(base: int | None, x: int | None) -> tuple[int | None, float | None]:
    """(x - base, x / base); None where it does not exist (a value missing, base 0)."""
    if base is None or x is None:
        return None, None
    return x - base, (x / base if base else None)


def to_json(runs: Sequence[Run]) -> dict[str, Any]:
    """What ``--json`` writes: each run's metrics, and their difference and ratio to the
    first run's."""
    out = []
    for r in runs:
        vs = {k: versus(runs[0].metrics[k], v) for k, v in r.metrics.items()}
        out.append({
            "name": r.name, "pdaemon": r.pdaemon, "dir": str(r.data.dir),
            "scenario": r.data.summary.get("scenario") or r.data.start.get("scenario"),
            "seed": r.data.summary.get("seed", r.data.start.get("seed")),
            "status": r.status, "complete": r.complete, "metrics": r.metrics,
            "delta": {k: d for k, (d, _) in vs.items()},
            "ratio": {k: q for k, (_, q) in vs.items()},
        })  # fmt: skip
    return {"baseline": runs[0].name if runs else None, "runs": out}


# --- the table ---------------------------------------------------------------------------------

def _ns(v: float) -> str:
    a = abs(v)
    for scale, unit in ((1e9, "s"), (1e6, "ms"), (1e3, "µs")):
        if a >= scale:
            return f"{v / scale:.3g} {unit}"
    return f"{v:.0f} ns"


def _val(v: int | None, unit: str) -> str:
    if v is None:
        return "-"
    return _ns(v) if unit == "ns" else f"{v:,}"


def _delta(d: int | None, unit: str) -> str:
    if d is None:
        return "-"
    if d == 0:
        return "0"
    return ("+" if d > 0 else "-") + _val(abs(d), unit)


def _ratio(q: float | None) -> str:
    return "-" if q is None else f"×{q:,.0f}" if q >= 1000 else f"×{q:.3g}"


def table(runs: Sequence[Run]) -> Table:
    notes = [n for key, n in _NOTES.items() if any(r.status.startswith(key) for r in runs)]
    vs = "Δ, ×: difference and ratio to the first run (the baseline); " if len(runs) > 1 else ""
    t = Table(box=box.SIMPLE_HEAD, title="[bold]emu compare", title_justify="left",
              caption="\n".join([vs + "fault latency: upper bound of the log2 bucket "
                                 "holding the percentile; docs/compare.md says where each "
                                 "metric comes from.", *notes]),
              caption_justify="left")  # fmt: skip
    t.add_column("", no_wrap=True)
    for i, r in enumerate(runs):
        head = f"{r.name}\n{r.pdaemon}" + ("\n(baseline)" if i == 0 else "")
        t.add_column(head, justify="right", no_wrap=True)
        if i:
            t.add_column("Δ", justify="right", no_wrap=True)
            t.add_column("×", justify="right", no_wrap=True)

    def info(name: str, vals: list[str]) -> list[str]:
        cells = [name, vals[0]]
        for v in vals[1:]:
            cells += [v, "", ""]
        return cells

    t.add_row(*info("status", [r.status if r.complete and r.status == "ok"
                               else f"[red]{r.status}[/]" for r in runs]))  # fmt: skip
    for key in ("scenario", "seed"):
        t.add_row(*info(key, [str(r.data.summary.get(key, r.data.start.get(key, "-")))
                              for r in runs]))  # fmt: skip
    t.add_row(*info("events", [f"{r.data.events:,}" if rundir.event_log(r.data.dir) else "none"
                               for r in runs]), end_section=True)  # fmt: skip
    base = runs[0].metrics
    for m in METRICS:
        cells = [m.label, _val(base[m.key], m.unit)]
        for r in runs[1:]:
            d, q = versus(base[m.key], r.metrics[m.key])
            cells += [_val(r.metrics[m.key], m.unit), _delta(d, m.unit), _ratio(q)]
        t.add_row(*cells)
    return t


# --- the whole command -------------------------------------------------------------------------

def default_out(runs: Sequence[Run], cwd: Path | None = None) -> Path:
    """A new directory ``compare-N`` in the current directory, or beside the run directory
    the current directory is in (never inside a run directory)."""
    base = (cwd or Path.cwd()).resolve()
    for r in runs:
        d = r.data.dir.resolve()
        if base == d or d in base.parents:
            base = d.parent
    for n in itertools.count(1):
        if not (base / f"compare-{n}").exists():
            return base / f"compare-{n}"
    raise AssertionError("unreachable")  # pragma: no cover


def compare(
    paths: Sequence[Path | str], out: Path | str | None = None, json_path: Path | str | None = None,
    *, plots: bool = True, console: Console | None = None,
) -> list[Path]:
    """Print the table of ``paths`` (run directories), write the plots into ``out`` (default:
    :func:`default_out`) and the metrics to ``json_path``; return the files written."""
    runs = load_runs(paths)
    t = table(runs)
    if console is None:  # a terminal or $COLUMNS sets the width; a pipe gets the whole table
        piped = not sys.stdout.isatty() and not os.environ.get("COLUMNS")
        width = Console(width=1 << 12).measure(t).maximum if piped else None
        console = Console(width=max(80, width) if width else None)
    console.print(t)
    written: list[Path] = []
    if json_path is not None:
        jp = Path(json_path)
        jp.parent.mkdir(parents=True, exist_ok=True)
        jp.write_text(json.dumps(to_json(runs), indent=2) + "\n")
        written.append(jp)
    if plots:
        outdir = Path(out) if out is not None else default_out(runs)
        outdir.mkdir(parents=True, exist_ok=True)
        written += compare_plots.write_plots(runs, outdir)
    return written
