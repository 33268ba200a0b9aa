"""emu.benchmarks: each benchmark measures our figure against a reference run in the same process.

A benchmark module exposes ``run(quick: bool) -> list[BenchResult]``; ``emu bench`` runs every
module in :data:`MODULES`, prints one table and, with ``--json FILE``, writes
``{"benchmarks": {NAME: {"value", "unit", "reference", "ratio", "target", "pass"}}}``.
Timings use ``time.perf_counter`` here only: benchmarks are the one place that reads a host
clock, and they never run inside the emulated machine's kernel.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# name -> module path; each module has run(quick) -> list[BenchResult]
MODULES: dict[str, str] = {
    "access": "emu.benchmarks.access",
    "swapwrite": "emu.benchmarks.swapwrite",
}


@dataclass
class BenchResult:
    """One row of the table. ``ratio`` = value / reference (higher is better unless
    ``lower_is_better``); ``target`` is the minimum ratio (or maximum value) for a pass."""

    name: str
    value: float
    unit: str
    reference: float | None = None
    ratio: float | None = None
    target: str = ""
    passed: bool | None = None
    spread: float = 0.0  # (max - min) / median of the repeats, for our figure
    extra: dict[str, float | str] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {
            "value": self.value,
            "unit": self.unit,
            "reference": self.reference,
            "ratio": self.ratio,
            "target": self.target,
            "pass": self.passed,
            "spread": self.spread,
            **self.extra,
        }


def repeat(fn: Callable[[], float], n: int) -> tuple[float, float]:
    """Call ``fn`` (which returns seconds for one measured unit of work) ``n`` times;
    return (median, relative spread)."""
    xs = [fn() for _ in range(n)]
    med = statistics.median(xs)
    return med, (max(xs) - min(xs)) / med if med else 0.0


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
