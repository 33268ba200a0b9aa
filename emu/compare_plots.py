"""emu.compare_plots: the overlay plots of ``emu compare``, one colour per run.

``memory.png``: free pages against ``freetarg`` and inactive pages against ``inactarg`` over
virtual time (the event log's ``uvmexp.sample`` lines; targets dashed). ``pageouts.png``:
cumulative pageouts and pages paged out (``uvmpd_scan_inactive.pageout`` lines).
``fault_latency.png``: the fault latency CDF of all workloads' traps, from summary.json's log2
histograms, exact at each bucket's upper bound. A run without the data needed (no event log,
no faults) is named in the legend with "(no data)". Drawn with matplotlib's Agg renderer, no
pyplot global state, like emu/analyze.py.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from emu.compare import Run

__all__ = ["write_plots"]

Draw = Callable[[Axes, "Run", str], bool]


def write_plots(runs: Sequence[Run], outdir: Path) -> list[Path]:
    """Write the three overlay plots into ``outdir``; return their paths."""
    xmax = max((b for r in runs for b in r.latency), default=0)  # every CDF runs to here
    latency: list[tuple[str, str, Draw]] = [
        ("fault latency CDF, all workloads (exact at log2 bucket bounds)",
         "fraction of faults below", functools.partial(_latency_cdf, xmax=xmax)),
    ]  # fmt: skip
    pageouts: list[tuple[str, str, Draw]] = [
        ("cumulative pageouts", "pageouts", _pageouts),
        ("cumulative pages paged out", "pages", _pages),
    ]
    return [
        _memory(runs, outdir / "memory.png"),
        _figure(runs, outdir / "pageouts.png", pageouts, "virtual time (s)"),
        _figure(runs, outdir / "fault_latency.png", latency, "fault latency (virtual ns)"),
    ]


def _figure(runs: Sequence[Run], path: Path, panels: list[tuple[str, str, Draw]],
            xlabel: str) -> Path:  # fmt: skip
    fig = Figure(figsize=(9, 3.6 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False, sharex=True)[:, 0]
    for ax, (title, ylabel, draw) in zip(axes, panels, strict=True):
        for i, r in enumerate(runs):
            if not draw(ax, r, f"C{i % 10}"):
                ax.plot([], [], color=f"C{i % 10}", label=f"{r.name} (no data)")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
    axes[-1].set_xlabel(xlabel)
    fig.savefig(path, dpi=100)
    return path


def _memory(runs: Sequence[Run], path: Path) -> Path:
    panels: list[tuple[str, str, Draw]] = []
    for value, target in (("free", "freetarg"), ("inactive", "inactarg")):
        def draw(ax: Axes, r: Run, color: str, value: str = value, target: str = target) -> bool:
            d = r.data
            if not d.sample_t:
                return False
            t = np.asarray(d.sample_t) / 1e9
            ax.step(t, d.samples[value], where="post", color=color, label=r.name)
            ax.step(t, d.samples[target], where="post", color=color, linestyle="--")
            return True

        panels.append((f"{value} pages (solid) and {target} (dashed)", "pages", draw))
    _figure(runs, path, panels, "virtual time (s)")
    return path


def _cumulative(ax: Axes, r: Run, color: str, weights: list[int]) -> bool:
    d = r.data
    if not d.events:  # no log: nothing known of when the pageouts happened
        return False
    end = max([*d.pageout_t[-1:], *d.sample_t[-1:],
               int(d.summary.get("virtual_ns") or d.end.get("virtual_ns") or 0)])  # fmt: skip
    t = np.asarray([0, *d.pageout_t, end]) / 1e9
    y = [0, *itertools.accumulate(weights)]
    ax.step(t, [*y, y[-1]], where="post", color=color, label=r.name)
    return True


def _pageouts(ax: Axes, r: Run, color: str) -> bool:
    return _cumulative(ax, r, color, [1] * len(r.data.pageout_t))


def _pages(ax: Axes, r: Run, color: str) -> bool:
    return _cumulative(ax, r, color, r.data.pageout_pages)


def _latency_cdf(ax: Axes, r: Run, color: str, xmax: int = 0) -> bool:
    hist = r.latency
    total = sum(hist.values())
    if not total:
        return False
    bounds = sorted(hist)
    cdf = np.cumsum([hist[b] for b in bounds]) / total
    x = [bounds[0] / 2, *bounds, *([xmax] if xmax > bounds[-1] else [])]
    y = [0.0, *cdf, *([1.0] if xmax > bounds[-1] else [])]
    ax.step(x, y, where="post", color=color, label=r.name)
    ax.set_xscale("log", base=2)
    for q in (0.5, 0.99):
        ax.axhline(q, color="grey", linewidth=0.5, linestyle=":")
    return True
