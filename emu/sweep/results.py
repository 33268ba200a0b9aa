"""emu.sweep.results: the results table of a sweep, derived from its cells' files.

One row per cell: each grid key verbatim as a column (``"machine.ram"``), ``seed``,
``outcome``, ``cell``, ``error``, then every number of the cell's ``summary.json`` under its
dotted path (``uvmexp.pdpageouts``, ``faults.major``, ``virtual_ns``, ``wall_s``); each
workload's fields under ``workloads.<name>.<field>``; a histogram (a map whose keys are numbers,
such as ``io.cluster_pages`` or a workload's ``fault_latency_hist``) summarised as
``<path>.count``, ``.mean`` and ``.max`` (over its keys, weighted by its counts) instead of one
column per key; other open-ended maps (``waits.by_wmesg``, the compact log's ``result``
counts) summed as ``<path>.total``. Written as ``results.parquet`` (pyarrow) and ``results.csv``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

__all__ = ["FIXED", "flatten", "read_cell", "rows", "write"]

FIXED = ("seed", "outcome", "cell", "error")
_MAPS = ("result",)  # open-ended maps of names, summed (so is any by_*: waits.by_wmesg)
_HISTS = ("_hist", "cluster_pages")  # histograms even when empty


def _hist(path: str, h: dict[str, Any], out: dict[str, float | int | None]) -> None:
    pairs = [(int(k), int(v)) for k, v in h.items()]
    n = sum(v for _, v in pairs)
    out[f"{path}.count"] = n
    out[f"{path}.mean"] = sum(k * v for k, v in pairs) / n if n else None
    out[f"{path}.max"] = max((k for k, v in pairs if v), default=None)


def _is_hist(path: str, d: dict[str, Any]) -> bool:
    name = path.rsplit(".", 1)[-1]
    return name.endswith(_HISTS) or (bool(d) and all(k.isdigit() for k in d))


def flatten(obj: Any, path: str = "", out: dict[str, float | int | None] | None = None
            ) -> dict[str, float | int | None]:  # fmt: skip
    """Every number of a summary under its dotted path (see the module docstring)."""
    out = {} if out is None else out
    if isinstance(obj, bool):
        out[path] = int(obj)
    elif isinstance(obj, int | float):
        out[path] = obj
    elif isinstance(obj, dict):
        if _is_hist(path, obj):
            _hist(path, obj, out)
        elif path.rsplit(".", 1)[-1] in _MAPS or path.rsplit(".", 1)[-1].startswith("by_"):
            out[f"{path}.total"] = sum(v for v in obj.values() if isinstance(v, int | float))
        else:
            for k, v in obj.items():
                flatten(v, f"{path}.{k}" if path else k, out)
    elif isinstance(obj, list) and path == "workloads":
        for w in obj:
            name = w.get("name") if isinstance(w, dict) else None
            if name is not None:
                flatten({k: v for k, v in w.items() if k != "name"}, f"workloads.{name}", out)
    return out


def read_cell(cell_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(cell.json, summary.json) of a landed cell ({} for a file it lacks)."""
    def load(name: str) -> dict[str, Any]:
        p = cell_dir / name
        d: dict[str, Any] = orjson.loads(p.read_bytes()) if p.exists() else {}
        return d

    return load("cell.json"), load("summary.json")


def rows(cells_dir: Path, order: list[str], grid_keys: list[str]) -> Iterator[dict[str, Any]]:
    """One row per landed cell, in the sweep's order."""
    for cid in order:
        d = cells_dir / cid
        if not (d / "cell.json").exists():
            continue
        rec, summary = read_cell(d)
        row: dict[str, Any] = {k: rec.get("params", {}).get(k) for k in grid_keys}
        row.update(seed=rec.get("seed"), outcome=rec.get("outcome"), cell=cid,
                   error=rec.get("error"))  # fmt: skip
        for k, v in flatten(summary).items():
            if k not in ("seed",):
                row[k] = v
        yield row


def _column(name: str, values: list[Any]) -> pa.Array:
    present = [v for v in values if v is not None]
    if name in FIXED[1:] or any(isinstance(v, str) for v in present):
        return pa.array([None if v is None else str(v) for v in values], pa.string())
    if present and all(isinstance(v, bool) for v in present):
        return pa.array(values, pa.bool_())
    if any(isinstance(v, float) for v in present):
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    return pa.array(values, pa.int64())


def table(rowlist: list[dict[str, Any]], grid_keys: list[str]) -> pa.Table:
    """The rows as one Arrow table: grid keys and the fixed columns first, then the rest in
    the order they first appear."""
    names: dict[str, None] = dict.fromkeys([*grid_keys, *FIXED])
    for r in rowlist:
        names.update(dict.fromkeys(r))
    cols = {n: _column(n, [r.get(n) for r in rowlist]) for n in names}
    return pa.table(cols)


def write(out: Path, cells_dir: Path, order: list[str], grid_keys: list[str]) -> pa.Table:
    """Write ``results.parquet`` and ``results.csv`` under ``out``; return the table."""
    t = table(list(rows(cells_dir, order, grid_keys)), grid_keys)
    pq.write_table(t, out / "results.parquet")
    pacsv.write_csv(t, out / "results.csv")
    return t
