"""emu.sweep.plots: metrics against each numeric grid key, from the results table.

For each grid key whose values are numbers or sizes (sizes drawn in bytes, labelled in KiB or
MiB): one PNG ``plots/<key>.png`` with one panel per metric (``[sweep] metrics``), one line per
combination of the other grid keys' values, the mean over seeds as the line and the spread over
seeds (min to max) as a band. Only cells whose outcome is ``ok`` are drawn. matplotlib's Agg
renderer, no pyplot global state (as emu/analyze.py).
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from matplotlib.figure import Figure

from emu.sizes import Size

__all__ = ["numeric_value", "plot"]


def numeric_value(v: Any) -> float | None:
    """A grid value as a number: numbers as they are, sizes in bytes, else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(Size.parse(v).nbytes)
        except (TypeError, ValueError):
            return None
    return None


def _is_size(values: list[Any]) -> bool:
    return all(isinstance(v, str) for v in values)


def plot(t: pa.Table, grid: dict[str, list[Any]], metrics: list[str], out: Path) -> list[Path]:
    """Draw the plots into ``out`` (made if needed); return their paths. A metric missing
    from the table is skipped (named in the panel)."""
    rows = [r for r in t.to_pylist() if r.get("outcome") == "ok"]
    # a key with one value is a constant of the sweep, not an axis
    keys = [k for k, vals in grid.items()
            if len(vals) > 1 and all(numeric_value(v) is not None for v in vals)]  # fmt: skip
    paths = []
    for key in keys:
        others = [k for k in grid if k != key]
        size = _is_size(grid[key])
        scale, unit = (1.0, "")
        if size:
            low = min(numeric_value(v) or 0 for v in grid[key])
            scale, unit = ((1 << 20), "MiB") if low >= (1 << 20) else ((1 << 10), "KiB")
        ncols = min(2, len(metrics))
        nrows = -(-len(metrics) // ncols)
        fig = Figure(figsize=(6 * ncols, 3.8 * nrows), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax in axes[len(metrics):]:
            ax.set_visible(False)
        for ax, metric in zip(axes, metrics, strict=False):
            series: dict[tuple[Any, ...], dict[float, list[float]]] = defaultdict(
                lambda: defaultdict(list))
            for r in rows:
                x, y = numeric_value(r.get(key)), r.get(metric)
                if x is None or not isinstance(y, int | float):
                    continue
                series[tuple(r.get(k) for k in others)][x / scale].append(float(y))
            for label, pts in series.items():
                xs = sorted(pts)
                ys = [pts[x] for x in xs]
                mean = [float(np.mean(y)) for y in ys]
                name = ", ".join(f"{k}={v}" for k, v in zip(others, label, strict=True))
                line = ax.plot(xs, mean, marker="o", label=name or metric)[0]
                if any(len(y) > 1 for y in ys):
                    ax.fill_between(xs, [min(y) for y in ys], [max(y) for y in ys],
                                    color=line.get_color(), alpha=0.2, linewidth=0)
            ax.set_title(metric if series else f"{metric} (no data)", fontsize=10)
            ax.set_xlabel(f"{key} ({unit})" if unit else key)
            if series and others:
                ax.legend(fontsize=8)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', key)}.png"
        fig.savefig(path, dpi=100)
        paths.append(path)
    return paths
