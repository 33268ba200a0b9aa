"""emu.analyze: terminal tables and PNG plots of a run directory, or of two side by side.

Reads ``summary.json`` (docs/summary-schema.md) and streams ``events.jsonl`` or its zstd form
(docs/log-schema.md; emu/rundir.py) one line at a time with orjson, keeping only the few columns
the plots need, so a log of millions of events costs little memory. Tables go to the terminal with
rich; plots are written with matplotlib's Agg renderer (no display, no pyplot global state):
``memory.png``, ``paging_rate.png``, ``clusters.png``, ``fault_latency.png``. A section without
data (no pageouts, no samples, a run that ended in deadlock or panic, a missing file) prints and
plots as "no data" instead of failing. A run that did not finish (killed: an event log and no
summary) is shown from its log: the last ``uvmexp.sample`` stands for the counters.

Runs are labelled by their directories' real names (``runs/latest`` shows as the run it points
at). Off a terminal (``| tee``, CI) the tables are printed at their full width, never cut.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table

from emu import rundir

__all__ = ["RunData", "analyze", "load_run"]

SAMPLE_KEYS = ("free", "active", "inactive", "paging", "freemin", "freetarg", "inactarg")
PASS_KEYS = ("pdrevs", "pdscans", "pdfreed", "pdreact", "pddeact", "pdbusy", "pdpageouts",
             "pdpending", "pdanscan", "pdobscan", "pgswapout", "pdswout")
UVMEXP_KEYS = ("faults", "pdwoke", "pdrevs", "pdscans", "pdfreed", "pdreact", "pddeact",
               "pdbusy", "pdpageouts", "pdpending", "pgswapin", "pgswapout", "nswget",
               "swpginuse", "swpgonly", "free", "active", "inactive", "paging", "wired")
_SKIP = (b'"uvm_fault.done"',)  # debug-level, one per fault: not needed here


@dataclass
class RunData:
    """What analyze keeps of one run."""

    dir: Path
    summary: dict[str, Any]
    start: dict[str, Any] = field(default_factory=dict)
    end: dict[str, Any] = field(default_factory=dict)
    sample_t: list[int] = field(default_factory=list)
    samples: dict[str, list[int]] = field(default_factory=lambda: {k: [] for k in SAMPLE_KEYS})
    passes: int = 0
    pass_sums: Counter[str] = field(default_factory=Counter)
    clusters: Counter[int] = field(default_factory=Counter)
    pageout_t: list[int] = field(default_factory=list)
    pageout_pages: list[int] = field(default_factory=list)
    pagein_t: list[int] = field(default_factory=list)
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    bad_lines: int = 0
    events: int = 0
    compact: bool = False  # a compact log: pageouts from the passes, page-ins from the samples
    starts: list[dict[str, Any]] = field(default_factory=list)  # workload.start events
    last_sample: dict[str, Any] = field(default_factory=dict)
    last_t: int = 0

    @property
    def label(self) -> str:
        real = self.dir.resolve()
        return real.name or str(real)

    @property
    def finished(self) -> bool:
        """False for a run that stopped without writing its summary (killed)."""
        return bool(self.summary.get("schema"))


def _on_event(r: RunData, ev: dict[str, Any]) -> None:
    name = ev.get("event")
    t = int(ev.get("t_ns", 0))
    r.last_t = max(r.last_t, t)
    if name == "uvmexp.sample":
        r.last_sample = ev
        r.sample_t.append(t)
        for k in SAMPLE_KEYS:
            r.samples[k].append(int(ev.get(k, 0)))
        r.pagein_t.extend([t] * int(ev.get("pageins", 0)))  # only a compact log has pageins
    elif name == "uvm_pageout.pass":
        r.passes += 1
        for k in PASS_KEYS:
            r.pass_sums[k] += int(ev.get(k, 0))
        r.clusters.update(int(c) for c in ev.get("clusters") or ())
        if r.compact:  # its pageout lines are folded: each cluster at the end of its pass
            for c in ev.get("clusters") or ():
                r.pageout_t.append(t)
                r.pageout_pages.append(int(c))
    elif name == "uvmpd_scan_inactive.pageout":
        r.pageout_t.append(t)
        r.pageout_pages.append(int(ev.get("npages", 1)))
    elif name == "uvm_fault.pagein":
        r.pagein_t.append(t)
    elif name == "integrity.mismatch" and len(r.mismatches) < 10:
        r.mismatches.append(ev)
    elif name == "run.start":
        r.start = ev
    elif name == "run.end":
        r.end = ev
        r.pagein_t.extend([t] * int(ev.get("pageins", 0)))
    elif name == "workload.start":
        r.starts.append(ev)


def load_run(run_dir: Path) -> RunData:
    """Read a run directory: the whole summary, and a streamed pass over the event log."""
    run_dir = Path(run_dir)
    summary = rundir.read_summary(run_dir)
    r = RunData(run_dir, summary)
    r.compact = _get(summary, "events", "level") == "compact"
    log = rundir.event_log(run_dir)  # events.jsonl or events.jsonl.zst
    if log is not None:
        for ev in rundir.read_events(log, _SKIP):
            if ev is None:  # e.g. a last line cut short by a crash
                r.bad_lines += 1
                continue
            r.events += 1
            if isinstance(ev, dict):
                _on_event(r, ev)
    if not summary and r.events:
        r.summary = _unfinished(r)
    return r


UNFINISHED = "did not finish"  # the outcome load_run gives a run that has no summary.json


def _unfinished(r: RunData) -> dict[str, Any]:
    """What the log of a run that did not finish tells of its summary: the run's identity
    from ``run.start``, the counters of the last ``uvmexp.sample``, the workloads started."""
    st = r.start
    last = {k: v for k, v in r.last_sample.items() if k not in ("t_ns", "event", "proc", "level")}
    return {
        "outcome": UNFINISHED,
        "error": f"no summary.json: the run stopped without one (killed?); the log ends at "
                 f"t={r.last_t / 1e6:,.1f} ms",
        **{k: st.get(k) for k in ("scenario", "seed", "loop", "ram_pages", "swap_pages")},
        "virtual_ns": r.last_t,
        "uvmexp": last,
        "workloads": [{"name": w.get("name"), "pid": w.get("pid"), "kind": w.get("kind"),
                       "status": "unfinished"} for w in r.starts],
    }  # fmt: skip


def analyze(
    run_dir: Path | str, run_dir2: Path | str | None = None, out: Path | str | None = None,
    *, plots: bool = True, console: Console | None = None,
) -> list[Path]:
    """Print the tables of one run (or two, side by side) and write the plots; return their
    paths. ``out`` defaults to the run directory, or for two runs to ``compare-A-vs-B``
    beside the first one (A and B the runs' real names)."""
    runs = [load_run(Path(run_dir))]
    if run_dir2 is not None:
        runs.append(load_run(Path(run_dir2)))
    con = console or _console()
    _tables(con, runs)
    if not plots:
        return []
    if out is None:
        first = runs[0].dir.resolve()
        out = first if len(runs) == 1 else first.parent / f"compare-{runs[0].label}-vs-{runs[1].label}"
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    return [
        _plot(outdir / "memory.png", runs, _plot_memory, "pages"),
        _plot(outdir / "paging_rate.png", runs, _plot_rate, "pages per virtual second"),
        _plot(outdir / "clusters.png", runs, _plot_clusters, "clusters"),
        _plot(outdir / "fault_latency.png", runs, _plot_latency, "faults"),
    ]


# --- tables ------------------------------------------------------------------------------------

def _console() -> Console:
    """The terminal's width on a terminal; elsewhere wide enough that no table is cut."""
    if sys.stdout.isatty():
        return Console()
    return Console(width=max(int(os.environ.get("COLUMNS") or 0), 1000))


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _kv_table(title: str, runs: list[RunData], rows: list[tuple[str, list[Any]]]) -> Table:
    t = Table(title=f"[bold]{title}", title_justify="left", min_width=len(title) + 4)
    t.add_column("", no_wrap=True)
    for r in runs:
        t.add_column(r.label, justify="right")
    for name, vals in rows:
        t.add_row(name, *(_fmt(v) for v in vals))
    return t


def _outcome_text(r: RunData) -> str:
    return str(r.summary.get("outcome") or r.end.get("outcome") or "unknown")


def _outcome(r: RunData) -> str:
    oc = _outcome_text(r)
    return f"[bold red]{oc}[/]" if oc != "ok" else "[green]ok[/]"


def _not_finished(con: Console, runs: list[RunData]) -> None:
    for r in runs:
        if not r.finished and r.events:
            con.print(f"[bold red]{r.label}: the run did not finish[/] (no summary.json); "
                      f"shown: what events.jsonl holds, up to t={r.last_t / 1e6:,.1f} ms, "
                      "the counters of its last uvmexp.sample")  # fmt: skip


def _tables(con: Console, runs: list[RunData]) -> None:
    def row(name: str, *keys: str) -> tuple[str, list[Any]]:
        return name, [_get(r.summary, *keys) for r in runs]

    _not_finished(con, runs)
    vns = [r.summary.get("virtual_ns", r.end.get("virtual_ns")) for r in runs]
    con.print(_kv_table("run", runs, [
        ("outcome", [_outcome(r) for r in runs]), row("error", "error"),
        row("scenario", "scenario"), row("seed", "seed"), row("loop", "loop"),
        ("virtual time (s)", [None if v is None else v / 1e9 for v in vns]),
        ("wall time (s)", [r.summary.get("wall_s", r.end.get("wall_s")) for r in runs]),
        row("RAM pages", "ram_pages"), row("swap pages", "swap_pages"),
        ("events read", [r.events for r in runs]),
        ("unparsable lines", [r.bad_lines for r in runs]),
    ]))
    u = [r.summary.get("uvmexp") or {} for r in runs]
    keys = [k for k in UVMEXP_KEYS if any(k in x for x in u)]
    con.print(_kv_table("uvmexp (key counters)", runs, [(k, [x.get(k) for x in u]) for k in keys]))
    con.print(_kv_table("faults / I/O / integrity", runs, [
        *(row(f"faults {k}", "faults", k) for k in ("zero_fill", "soft", "major", "busy_wait")),
        *(row(f"io {k}", "io", k) for k in ("writes", "write_pages", "reads", "read_pages",
                                            "errors")),
        row("pages checked", "integrity", "pages_checked"),
        row("mismatches", "integrity", "mismatches"),
    ]))
    con.print(_kv_table("page daemon passes (uvm_pageout.pass)", runs, [
        ("passes", [r.passes or _get(r.summary, "daemon", "passes") for r in runs]),
        *((k, [r.pass_sums.get(k, 0) for r in runs]) for k in PASS_KEYS),
        ("pageout clusters", [len(r.pageout_t) for r in runs]),
        ("page-ins", [len(r.pagein_t) for r in runs]),
    ]))
    hists = [_clusters(r) for r in runs]
    sizes = sorted(set().union(*hists))
    con.print(_kv_table("cluster size histogram (pages: clusters)", runs,
                        [(str(s), [h.get(s, 0) for h in hists]) for s in sizes]))
    for r in runs:
        con.print(_workload_table(r))
        for m in r.mismatches:
            con.print(f"[red]integrity.mismatch[/] {r.label}: t={_fmt(m.get('t_ns'))}ns "
                      f"proc={m.get('proc')} vaddr={_fmt(m.get('vaddr'))} "
                      f"expected={m.get('expected')} found={m.get('found')}")


def _clusters(r: RunData) -> dict[int, int]:
    cp = _get(r.summary, "io", "cluster_pages")
    if isinstance(cp, dict) and cp:
        return {int(k): int(v) for k, v in cp.items()}
    return dict(r.clusters)


def _percentile(hist: dict[str, int], q: float) -> str:
    """Upper bound of the log2 bucket holding quantile q ("<4µs")."""
    items = sorted((int(k), int(v)) for k, v in hist.items())
    total = sum(v for _, v in items)
    if not total:
        return "-"
    acc = 0
    for bound, n in items:
        acc += n
        if acc >= q * total:
            return f"<{bound / 1000:.3g}µs" if bound >= 1000 else f"<{bound}ns"
    return "-"


def _workload_table(r: RunData) -> Table:
    t = Table(title=f"[bold]workloads: {r.label}", title_justify="left")
    t.caption = "faults: zero_fill/soft/major/busy_wait; lat: fault latency bucket bounds"
    for c in ("name", "pid", "kind", "status", "accesses", "faults", "lat p50/p99", "checked",
              "bad", "error"):
        left = c in ("name", "kind", "status", "error")
        t.add_column(c, justify="left" if left else "right", min_width=min(len(c), 6))
    if not r.summary.get("workloads"):
        t.add_row("(none)")
    for w in r.summary.get("workloads") or []:
        f = w.get("faults") or {}
        h = w.get("fault_latency_hist") or {}
        status = str(w.get("status", "-"))
        t.add_row(
            str(w.get("name")), _fmt(w.get("pid")), str(w.get("kind", "-")),
            status if status == "ok" else f"[red]{status}[/]", _fmt(w.get("accesses")),
            "/".join(_fmt(f.get(k)) for k in ("zero_fill", "soft", "major", "busy_wait")),
            f"{_percentile(h, 0.5)}/{_percentile(h, 0.99)}", _fmt(w.get("pages_checked")),
            _fmt(w.get("mismatches")), _fmt(w.get("error")),
        )
    return t


# --- plots -------------------------------------------------------------------------------------

def _plot(path: Path, runs: list[RunData], draw: Any, ylabel: str) -> Path:
    fig = Figure(figsize=(7 * len(runs), 4.5), layout="constrained")
    axes = fig.subplots(1, len(runs), squeeze=False, sharey=True)[0]
    for ax, r in zip(axes, runs, strict=True):
        scenario = r.summary.get("scenario") or r.start.get("scenario") or "?"
        ax.set_title(f"{r.label} ({scenario}, {_outcome_text(r)})", fontsize=10)
        if not draw(ax, r):
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes,
                    color="grey")
    axes[0].set_ylabel(ylabel)
    fig.savefig(path, dpi=100)
    return path


def _plot_memory(ax: Axes, r: RunData) -> bool:
    if not r.sample_t:
        return False
    t = np.asarray(r.sample_t) / 1e9
    for k in ("free", "inactive", "active", "paging"):
        ax.step(t, r.samples[k], where="post", label=k)
    for k, style in (("freemin", ":"), ("freetarg", "--"), ("inactarg", "-.")):
        ax.step(t, r.samples[k], where="post", linestyle=style, color="grey", label=k)
    ax.set_xlabel("virtual time (s)")
    ax.legend(fontsize=8, ncols=2)
    return True


def _bins(r: RunData) -> np.ndarray:
    """Bin edges (ns) over the run: about 60 bins, at least 1 µs wide."""
    end = max([int(r.summary.get("virtual_ns") or 0), *r.sample_t[-1:], *r.pageout_t[-1:],
               *r.pagein_t[-1:], 1])
    width = max(1000, -(-end // 60))
    return np.arange(0, end + width, width, dtype=np.float64)


def _plot_rate(ax: Axes, r: RunData) -> bool:
    if not r.pageout_t and not r.pagein_t:
        return False
    edges = _bins(r)
    width_s = (edges[1] - edges[0]) / 1e9
    outs, _ = np.histogram(r.pageout_t, edges, weights=r.pageout_pages)
    ins, _ = np.histogram(r.pagein_t, edges)
    ax.stairs(outs / width_s, edges / 1e9, label="pageouts (pages/s)")
    ax.stairs(ins / width_s, edges / 1e9, label="page-ins (faults/s)")
    ax.set_xlabel("virtual time (s)")
    ax.legend(fontsize=8)
    return True


def _plot_clusters(ax: Axes, r: RunData) -> bool:
    h = _clusters(r)
    if not any(h.values()):
        return False
    sizes = sorted(h)
    ax.bar(sizes, [h[s] for s in sizes])
    ax.set_xlabel("cluster size (pages)")
    ax.set_xticks(sizes)
    return True


def _plot_latency(ax: Axes, r: RunData) -> bool:
    """One staircase per workload over dense log2 buckets: bucket b holds [b/2, b) ns."""
    drawn = False
    for w in r.summary.get("workloads") or []:
        hist = {int(k): int(v) for k, v in (w.get("fault_latency_hist") or {}).items()}
        if not any(hist.values()):
            continue
        lo, hi = min(hist).bit_length() - 1, max(hist).bit_length() - 1
        bounds = [1 << k for k in range(lo, hi + 1)]
        edges = [bounds[0] / 2, *bounds]
        ax.stairs([hist.get(b, 0) for b in bounds], edges, label=str(w.get("name")))
        drawn = True
    if drawn:
        ax.set_xscale("log", base=2)
        ax.set_yscale("symlog", linthresh=1)
        ax.set_xlabel("fault latency (virtual ns, log2 buckets)")
        ax.legend(fontsize=8)
    return drawn
