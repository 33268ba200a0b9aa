"""emu.benchmarks: each benchmark measures our figure against a reference run in the same process.

A benchmark module exposes ``run(quick: bool, tiny: bool = False) -> list[BenchResult]``;
:data:`MODULES` maps each benchmark name to ``"module"`` (its ``run``) or ``"module:function"``
(same signature), so one module may hold several benchmarks. ``emu bench`` runs every entry
(or those named by ``--only``), prints one table and, with ``--json FILE``, writes
``{"benchmarks": {NAME: {"value", "unit", "reference", "ratio", "target", "pass"}}}``.
``quick`` shrinks sizes and repeats so that the whole suite takes about a minute; ``tiny``
(tests only) shrinks them to almost nothing and runs each measurement once, to check the rows'
structure, never their figures.

Every benchmark runs its reference in the same process, right before or interleaved with our
side, and reports the median of its repeats and their spread: the machine may be shared, so
only same-run ratios and medians mean anything. Timings use ``time.perf_counter`` here only:
benchmarks are the one place that reads a host clock, and they never run inside the emulated
machine's kernel (a workload that times itself reads the host clock from the benchmark's own
code, outside the kernel).
"""

from __future__ import annotations

import importlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# name -> "module" or "module:function"; each is run(quick, tiny=False) -> list[BenchResult]
MODULES: dict[str, str] = {
    "access": "emu.benchmarks.access:run_access",
    "load_store": "emu.benchmarks.access:run_load_store",
    "fault_zero": "emu.benchmarks.faults:run_zero",
    "fault_soft": "emu.benchmarks.faults:run_soft",
    "fault_major": "emu.benchmarks.faults:run_major",
    "fault_major_plain": "emu.benchmarks.faults:run_major_plain",
    "pageout": "emu.benchmarks.pageout",
    "pageout_plain": "emu.benchmarks.pageout:run_plain",
    "swapwrite": "emu.benchmarks.swapwrite",
    "scan": "emu.benchmarks.scan",
    "trace": "emu.benchmarks.trace",
    "trace_miss": "emu.benchmarks.trace_miss",
    "scale": "emu.benchmarks.scale",
    "run": "emu.benchmarks.scenario",
    "sweep": "emu.benchmarks.sweep",
    "big": "emu.benchmarks.big",
}

BenchFn = Callable[..., "list[BenchResult]"]


def load(name: str) -> BenchFn:
    """The ``run(quick, tiny=False)`` callable registered as ``name`` in :data:`MODULES`."""
    modpath, _, fn = MODULES[name].partition(":")
    mod = importlib.import_module(modpath)
    f: BenchFn = getattr(mod, fn or "run")
    return f


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
    note: str = ""  # a short human line for the table (the figures behind it are in extra)

    def as_json(self) -> dict[str, object]:
        return {
            "value": self.value,
            "unit": self.unit,
            "reference": self.reference,
            "ratio": self.ratio,
            "target": self.target,
            "pass": self.passed,
            "spread": self.spread,
            **({"note": self.note} if self.note else {}),
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


def spread(xs: list[float]) -> float:
    """(max - min) / median of ``xs`` (0 for one value)."""
    med = statistics.median(xs)
    return (max(xs) - min(xs)) / med if med else 0.0


def interleaved(fns: dict[str, Callable[[], float]], n: int, warmup: bool = True) -> dict[str, list[float]]:
    """Call each of ``fns`` (each returns seconds for its unit of work) ``n`` times, rotating
    which goes first in each round so that drift on a shared machine hits all alike; one
    untimed warm-up round first unless ``warmup`` is false. Returns the times per name."""
    names = list(fns)
    if warmup:
        for name in names:
            fns[name]()
    out: dict[str, list[float]] = {name: [] for name in names}
    for k in range(n):
        r = k % len(names)
        for name in names[r:] + names[:r]:
            out[name].append(fns[name]())
    return out


def result(name: str, value: float, unit: str, reference: float | None, target: str,
           passed: bool | None, spread: float = 0.0, lower_is_better: bool = False,
           note: str = "", **extra: float | str) -> BenchResult:  # fmt: skip
    """A row with ``ratio`` = value / reference (rounded for the table and the JSON)."""
    ratio = None if not reference else value / reference
    if lower_is_better:
        extra["lower_is_better"] = "yes"
    return BenchResult(name=name, value=_r(value), unit=unit,
                       reference=None if reference is None else _r(reference),
                       ratio=None if ratio is None else _r(ratio), target=target,
                       passed=passed, spread=round(spread, 3), extra=extra, note=note)  # fmt: skip


ENCRYPTION_TARGET = 1.5  # issue 15: swap encryption costs less than 1.5x on these rows
# row with encryption on -> the extra field that holds its CPU time per unit of work
ENCRYPTION_PAIRS = {"pageout": None, "fault_major": "cpu_us_per_fault"}


def encryption_costs(rows: list[BenchResult]) -> dict[str, float]:
    """What swap encryption costs on each row measured both ways in this run: the row's CPU
    time per unit of work with encryption on over the same with it off (``X_plain``). The
    ``pageout`` rows are already in pages per CPU second; ``fault_major`` is in faults per
    wall second, so its CPU time per fault (an extra field) is used, which a loaded machine
    disturbs less."""
    by = {r.name: r for r in rows}
    out: dict[str, float] = {}
    for name, field_ in ENCRYPTION_PAIRS.items():
        on, off = by.get(name), by.get(name + "_plain")
        if on is None or off is None:
            continue
        if field_ is None:
            if on.value > 0:
                out[name] = _r(off.value / on.value)
        else:
            a, b = on.extra.get(field_), off.extra.get(field_)
            if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b > 0:
                out[name] = _r(a / b)
    return out


def _r(x: float) -> float:
    """Four significant digits."""
    return float(f"{x:.4g}")
