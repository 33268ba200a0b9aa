"""emu.sweep.spec: a sweep's TOML file, checked, and expanded into validated cells.

::

    [sweep]
    scenario = "small"            # a built-in name or a TOML path (relative to this file)
    # trace = "lackey:ls.lackey.gz"   # replay a trace (alone, or as one more workload)
    seeds = [1, 2, 3]
    # events = "compact"  compress = true  metrics = ["uvmexp.pdpageouts"]  set = ["k.x=v"]

    [grid]                        # every combination x every seed is one cell
    "machine.ram" = ["384KiB", "512KiB", "1MiB"]
    "kernel.pdaemon" = ["1.105", "1.154"]

A grid key is a scenario key as ``--set`` names it (``section.key``, or
``workload.NAME.PARAM``), and each value reaches the scenario exactly as ``--set KEY=VALUE``
would (:func:`emu.scenario.load_scenario`): every cell is validated before anything runs.
Everything wrong is a :class:`SweepError` (exit status 2) naming the key or value and the fix.
"""

from __future__ import annotations

import itertools
import json
import tomllib
from pathlib import Path
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct, field

from emu.config import SECTIONS, ConfigError, check_table
from emu.eventfiles import EventLevel
from emu.scenario import Scenario, _read_text, load_scenario
from emu.workloads.trace import TraceError, open_trace, parse_spec, resolve

__all__ = ["DEFAULT_METRICS", "Cell", "SweepError", "SweepSection", "SweepSpec", "load_spec",
           "plan"]  # fmt: skip

DEFAULT_METRICS = ("uvmexp.pdpageouts", "faults.major", "uvmexp.pdscans", "virtual_ns")
_TOPS = ("uvmexp", "faults", "io", "integrity", "workloads", "daemon", "waits", "events",
         "swapencrypt",
         "virtual_ns", "wall_s", "ram_pages", "swap_pages")  # fmt: skip
Scalar = str | int | float | bool


class SweepError(ConfigError):
    """A sweep that cannot run as written (exit status 2); the message says how to fix it."""


class SweepSection(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[sweep]: what every cell runs."""

    scenario: Annotated[str, Meta(
        description='a built-in scenario or a TOML path; "" with trace: the trace alone')] = ""
    trace: Annotated[str, Meta(description='a trace to replay, "FORMAT:PATH"')] = ""
    seeds: Annotated[list[int], Meta(
        min_length=1, description="the seeds each grid point runs with, e.g. [1, 2, 3]")
    ] = field(default_factory=lambda: [1])
    events: Annotated[EventLevel, Meta(description="the cells' event level")] = "compact"
    compress: Annotated[bool, Meta(description="zstd-compress the cells' event logs")] = True
    metrics: Annotated[list[str], Meta(
        description="summary fields to plot, dotted: uvmexp.pdpageouts")
    ] = field(default_factory=lambda: list(DEFAULT_METRICS))
    set: Annotated[list[str], Meta(
        description='fixed overrides for every cell, as --set: ["device.model=none"]')
    ] = field(default_factory=list)
    log_level: Annotated[str, Meta(description="the cells' log level: info or debug")] = "info"


class SweepSpec(Struct, frozen=True, kw_only=True):
    """A whole sweep: [sweep] and the grid (key -> values), and the directory paths are
    relative to."""

    sweep: SweepSection
    grid: dict[str, list[Scalar]]
    base: str = "."
    label: str = "<sweep>"

    def normal(self) -> dict[str, Any]:
        """What identifies the sweep's design (sweep.json in DIR): [sweep] and the grid."""
        out: dict[str, Any] = msgspec.to_builtins(self.sweep)
        out["grid"] = self.grid
        return out


class Cell(Struct, frozen=True, kw_only=True):
    """One run of the sweep: its grid values, seed and validated scenario."""

    params: dict[str, Scalar]
    seed: int
    scenario: Scenario


def load_spec(path: Path) -> SweepSpec:
    """Read and check a sweep file (structure only; :func:`plan` checks the cells)."""
    label = str(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SweepError(f"sweep spec {label}: no such file") from None
    except OSError as e:
        raise SweepError(f"sweep spec {label}: cannot read it: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise SweepError(f"{label}: not valid TOML: {e}") from e
    for key in data:
        if key not in ("sweep", "grid"):
            raise SweepError(f"{label}: unknown section [{key}]; a sweep has [sweep] and [grid]")
    sweep = data.get("sweep")
    if not isinstance(sweep, dict):
        raise SweepError(f'{label}: [sweep] is missing; e.g. [sweep] scenario = "small"')
    grid = data.get("grid", {})
    if not isinstance(grid, dict):
        raise SweepError(f"{label}: [grid] must be a table of KEY = [values]")
    return make_spec(sweep, grid, base=str(path.parent), label=label)


def make_spec(sweep: dict[str, Any], grid: dict[str, Any], base: str = ".",
              label: str = "<sweep>") -> SweepSpec:  # fmt: skip
    """A checked spec from its two tables (also how ``emu mrc`` builds its sweep)."""
    sec = check_table(SweepSection, sweep, label, "sweep.", "[sweep]")
    if not sec.scenario and not sec.trace:
        raise SweepError(f'{label}: [sweep] needs scenario = "NAME" or trace = "FORMAT:PATH"')
    if len(set(sec.seeds)) != len(sec.seeds):
        raise SweepError(f"{label}: sweep.seeds = {sec.seeds}: a seed is repeated; list each once")
    if sec.log_level not in ("info", "debug"):
        raise SweepError(f"{label}: sweep.log_level = {sec.log_level!r}: use \"info\" or \"debug\"")
    for m in sec.metrics:
        if m.split(".", 1)[0] not in _TOPS:
            raise SweepError(f"{label}: sweep.metrics: {m!r} is no summary field; use a dotted "
                             f"name under {', '.join(_TOPS)}, e.g. \"uvmexp.pdpageouts\"")
    for key, values in grid.items():
        _check_grid(label, key, values)
    return SweepSpec(sweep=sec, grid=dict(grid), base=base, label=label)


def _check_grid(label: str, key: str, values: Any) -> None:
    where = f'{label}: [grid] "{key}"'
    section = key.split(".", 1)[0]
    if "." not in key or (section not in SECTIONS and section != "workload"):
        raise SweepError(f"{where}: a grid key is a scenario key as --set names it: "
                         "machine.ram, kernel.bufcachepercent, workload.NAME.PARAM")
    if section != "workload":
        fields = SECTIONS[section].__struct_fields__
        name = key.split(".", 1)[1]
        if name not in fields:
            raise SweepError(f"{where}: unknown key; keys of [{section}]: {', '.join(fields)}")
    if key == "machine.seed":
        raise SweepError(f"{where}: seeds are not a grid key; list them in [sweep] seeds = [...]")
    if not isinstance(values, list):
        raise SweepError(f"{where} = {values!r}: expected a list of values, e.g. [1, 2]")
    if not values:
        raise SweepError(f"{where} = []: empty; give at least one value")
    for v in values:
        if not isinstance(v, Scalar):
            raise SweepError(f"{where}: {v!r} is not a value; use strings, numbers or booleans")
    kinds = {"number" if isinstance(v, int | float) and not isinstance(v, bool)
             else type(v).__name__ for v in values}  # fmt: skip
    if len(kinds) > 1:
        raise SweepError(f"{where} = {values!r}: mixed types ({', '.join(sorted(kinds))}); "
                         "give every value the same type")
    seen = [json.dumps(v) for v in values]
    dup = next((v for v in values if seen.count(json.dumps(v)) > 1), None)
    if dup is not None:
        raise SweepError(f"{where}: {dup!r} is listed twice; list each value once")


def _raw(v: Scalar) -> str:
    """A grid value as the text of ``--set KEY=TEXT``."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return v if isinstance(v, str) else repr(v)


def _base(spec: SweepSpec) -> tuple[dict[str, Any], str, str]:
    """(the scenario's tables, its name, its label) with the trace added as a workload."""
    sec, base = spec.sweep, Path(spec.base)
    data: dict[str, Any] = {}
    name, label = "sweep", spec.label
    if sec.scenario:
        ref = str(base / sec.scenario) if (base / sec.scenario).is_file() else sec.scenario
        try:
            name, label, text = _read_text(ref)
            data = tomllib.loads(text)
        except ConfigError as e:
            raise SweepError(f"{spec.label}: sweep.scenario: {e}") from None
        except tomllib.TOMLDecodeError as e:
            raise SweepError(f"{spec.label}: sweep.scenario: {label}: not valid TOML: {e}") from e
    if sec.trace:
        fmt, path = parse_spec(sec.trace)
        if not path.is_absolute() and (base / path).exists():
            path = base / path
        try:
            fmt, path = resolve(path, fmt)
            for _ in open_trace(path, fmt):  # read it once: a bad record is refused now
                pass
        except (TraceError, ValueError, OSError) as e:
            raise SweepError(f"{spec.label}: sweep.trace = {sec.trace!r}: {e}; give a readable "
                             f"trace as FORMAT:PATH, e.g. lackey:ls.lackey.gz") from None
        data.setdefault("workload", []).append(
            {"kind": "trace_replay", "name": "trace", "path": str(path.resolve()), "fmt": fmt})
        if not sec.scenario:
            name = f"trace-{path.name.split('.')[0]}"
    return data, name, label


def plan(spec: SweepSpec) -> list[Cell]:
    """Every cell of the sweep, each validated as ``--set`` validates (grid x seeds, in the
    grid's order, seeds innermost)."""
    data, name, label = _base(spec)
    keys = list(spec.grid)
    cells = []
    for combo in itertools.product(*(spec.grid[k] for k in keys)):
        params = dict(zip(keys, combo, strict=True))
        for seed in spec.sweep.seeds:
            sets = [*spec.sweep.set, *(f"{k}={_raw(v)}" for k, v in params.items()),
                    f"machine.seed={seed}"]  # fmt: skip
            try:
                sc = load_scenario(data, sets, name, label=label, python=False)
            except ConfigError as e:
                where = ", ".join(f"{k}={v!r}" for k, v in params.items()) or "no grid"
                raise SweepError(f"{spec.label}: cell ({where}, seed {seed}): {e}") from None
            cells.append(Cell(params=params, seed=seed, scenario=sc))
    return cells
