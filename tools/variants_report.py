"""The tables and plots of docs/variants.md, from the sweeps and miss-ratio curves it ran.

    .venv/bin/python tools/variants_report.py runs/variants                  # print the tables
    .venv/bin/python tools/variants_report.py runs/variants --write docs/variants.md --img docs/img
    .venv/bin/python tools/variants_report.py runs/variants --check docs/variants.md

``RUNS`` holds one sweep directory per spec of docs/variants/ (``RUNS/tiny`` from
``docs/variants/tiny.toml``, ...) and the ``emu mrc`` directories ``RUNS/mrc-<trace>-<quantum>``.
A *group* is one sweep's cells that differ only in the daemon and the seed (say small at a
1 ms quantum). For each group this runs ``emu compare`` (its function, as the command does) on
1.105's cells then 1.154's, seed by seed, and keeps the JSON as
``RUNS/<sweep>/compare/<group>.json``. Every number printed comes from those JSON files or
from the sweep's ``results.parquet`` (daemon passes, deactivations, ``fltnoram``, the
trace's miss ratio); none is typed by hand.

``--write DOC`` replaces each block between ``<!-- variants:NAME -->`` and
``<!-- /variants:NAME -->`` in DOC with the table NAME; ``--check DOC`` exits 1 when DOC's
blocks differ from what the runs give (so rerunning a sweep shows whether it reproduces).
``--img DIR`` writes the plots there.
"""

from __future__ import annotations

import argparse
import io
import re
import shutil
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow.parquet as pq
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter
from rich.console import Console

from emu import compare, rundir

SWEEPS = ("tiny", "small", "small-swap64", "default", "faults", "soak", "ls", "kvtouch")
TRACES = ("ls", "kvtouch")
DAEMONS = ("1.105", "1.154")
QUANTA = {1_000_000: "1 ms", 20_000: "20 µs"}
Row = dict[str, Any]

# (key, column title, unit, where from: "c" compare JSON metrics, "p" results.parquet column,
# "l" the cell's event log)
METRICS: tuple[tuple[str, str, str, str], ...] = (
    ("pageouts", "pageouts", "n", "c"),
    ("pages_written", "pages written", "n", "c"),
    ("swap_writes", "swap writes", "n", "c"),
    ("pages_per_write", "pages per swap write", "f", "c"),
    ("swap_reads", "swap reads", "n", "c"),
    ("faults_major", "major faults", "n", "c"),
    ("faults_zero_fill", "zero-fill faults", "n", "c"),
    ("daemon.passes", "daemon passes", "n", "p"),
    ("pdscans", "pdscans", "n", "c"),
    ("pdfreed", "pdfreed", "n", "c"),
    ("uvmexp.pddeact", "pddeact", "n", "p"),
    ("uvmexp.pgswapout", "pgswapout", "n", "p"),
    ("peak_swpginuse", "peak swap slots in use", "n", "l"),
    ("waits", "waits (uvm_wait)", "n", "c"),
    ("wait_ns", "time in uvm_wait", "ns", "c"),
    ("uvmexp.fltnoram", "fltnoram", "n", "p"),
    ("first_pageout_ns", "first pageout", "ns", "c"),
    ("virtual_ns", "virtual time", "ns", "c"),
    ("fault_p99_ns", "fault p99 (<)", "ns", "c"),
    ("miss_ratio", "miss ratio (trace)", "r", "p"),
    ("aiodone_batches", "aiodone batches", "n", "l"),
    ("aiodone_woke_daemon", "batches waking the daemon", "n", "l"),
)
HEADLINE = ("pages_written", "swap_writes", "faults_major", "daemon.passes", "wait_ns",
            "virtual_ns")  # fmt: skip
DETAIL = tuple(m[0] for m in METRICS)
TITLE = {m[0]: m[1] for m in METRICS}
UNIT = {m[0]: m[2] for m in METRICS}


# --- reading ------------------------------------------------------------------------------------


def _group_key(row: Row, keys: list[str]) -> tuple[Any, ...]:
    return tuple(row[k] for k in keys if k != "kernel.pdaemon")


def _label(name: str, row: Row) -> str:
    ram = f" {row['machine.ram']}" if "machine.ram" in row else ""
    return f"{name}{ram}, {QUANTA.get(row['kernel.yield_ns'], row['kernel.yield_ns'])}"


def _miss_ratio(row: Row) -> float | None:
    acc = row.get("workloads.trace.accesses")
    if not acc:
        return None
    misses = row["workloads.trace.faults.zero_fill"] + row["workloads.trace.faults.major"]
    return float(misses) / float(acc)


def _log_stats(cell: Path) -> Row:
    """From the cell's event log: the largest swpginuse of its uvmexp samples, its aiodone
    batches and how many of them woke the daemon instead of the free-page sleepers (the
    free count they chose by was sampled before the batch freed anything: reference §4
    item 13)."""
    peak = batches = woke = 0
    log = rundir.event_log(cell)
    assert log is not None, cell
    for e in rundir.read_events(log):
        name = e.get("event")
        if name == "uvmexp.sample":
            peak = max(peak, int(e.get("swpginuse", 0)))
        elif name == "uvm_aiodone_daemon.batch":
            batches += 1
            woke += e.get("woke") == "pagedaemon"
    return {"peak_swpginuse": peak, "aiodone_batches": batches, "aiodone_woke_daemon": woke}


def load_groups(runs: Path) -> list[tuple[str, str, dict[str, list[Row]]]]:
    """[(sweep, group label, {daemon: rows by seed})], each row the parquet row with the
    compare JSON's metrics merged in; compare JSON written under RUNS/<sweep>/compare/."""
    out = []
    for name in SWEEPS:
        path = runs / name / "results.parquet"
        if not path.exists():
            continue
        rows = pq.read_table(path).to_pylist()
        grid = list(orjson.loads((runs / name / "sweep.json").read_bytes())["spec"]["grid"])
        failed = [r["cell"] for r in rows if r["outcome"] == "failed"]
        if failed:  # a cell that crashed has no run directory to compare
            raise SystemExit(f"{name}: cells failed: {failed}; rerun with --retry-failed")
        groups: dict[tuple[Any, ...], list[Row]] = {}
        for r in rows:
            groups.setdefault(_group_key(r, grid), []).append(r)
        for members in groups.values():
            members.sort(key=lambda r: (DAEMONS.index(r["kernel.pdaemon"]), r["seed"]))
            label = _label(name, members[0])
            slug = re.sub(r"[^A-Za-z0-9]+", "-", label.replace("µs", "us")).strip("-")
            jpath = runs / name / "compare" / f"{slug}.json"
            dirs = [runs / name / "cells" / r["cell"] for r in members]
            compare.compare(dirs, json_path=jpath, plots=False,
                            console=Console(file=io.StringIO()))  # fmt: skip
            js = orjson.loads(jpath.read_bytes())["runs"]
            by: dict[str, list[Row]] = {d: [] for d in DAEMONS}
            for r, j in zip(members, js, strict=True):
                assert j["pdaemon"] == r["kernel.pdaemon"] and j["seed"] == r["seed"], j
                m = j["metrics"]
                ppw = m["pages_written"] / m["swap_writes"] if m["swap_writes"] else None
                by[r["kernel.pdaemon"]].append({**r, **m, "pages_per_write": ppw,
                                                "miss_ratio": _miss_ratio(r),
                                                **_log_stats(runs / name / "cells" / r["cell"])})  # fmt: skip
            out.append((name, label, by))
    return out


# --- formatting ---------------------------------------------------------------------------------


def _fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "ns":
        return compare._ns(v)
    if unit == "r":
        return f"{v:.5f}"
    if unit == "f":
        return f"{v:.1f}"
    return f"{v:,.0f}" if abs(v) >= 100 or v == int(v) else f"{v:.1f}"


def _not_ok(rows: list[Row], at: bool = False) -> str | None:
    """"deadlock in 3/3 seeds" when some runs did not end ok (their counters are those at
    the stop: not comparable), with ``at`` when each stopped; else None."""
    bad = [r for r in rows if r["outcome"] != "ok"]
    if not bad:
        return None
    text = f"{'/'.join(sorted({r['outcome'] for r in bad}))} in {len(bad)}/{len(rows)} seeds"
    return text + (f" (at {', '.join(compare._ns(r['virtual_ns']) for r in bad)})" if at else "")


def _mean(rows: list[Row], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None]
    ok = _not_ok(rows) is None
    return statistics.fmean(vals) if ok and vals and len(vals) == len(rows) else None


def _side(rows: list[Row], key: str, first: bool = False) -> str:
    """A daemon's mean over seeds; for runs that did not end ok, what happened (in full in
    the first column of a row or table, else the outcome alone)."""
    bad = _not_ok(rows, at=True)
    if bad is not None:
        return bad if first else "/".join(sorted({r["outcome"] for r in rows} - {"ok"}))
    return _fmt(_mean(rows, key), UNIT[key])


def _ratios(by: dict[str, list[Row]], key: str) -> list[float]:
    """1.154 / 1.105, seed by seed (the same seed's runs)."""
    if _not_ok(by["1.105"]) or _not_ok(by["1.154"]):
        return []
    old = {r["seed"]: r.get(key) for r in by["1.105"]}
    return [r[key] / old[r["seed"]] for r in by["1.154"]
            if r.get(key) is not None and old.get(r["seed"])]  # fmt: skip


def _ratio_text(q: float) -> str:
    return f"×{q:.3g}" if q < 100 else f"×{q:,.0f}"


def headline(groups: list[tuple[str, str, dict[str, list[Row]]]]) -> str:
    head = ["scenario or trace, quantum", "seeds", *(TITLE[k] for k in HEADLINE)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, label, by in groups:
        cells = [label, str(len(by["1.154"]))]
        for k in HEADLINE:
            a, b = _mean(by["1.105"], k), _mean(by["1.154"], k)
            q = f" ({_ratio_text(b / a)})" if a and b is not None else ""
            first = k == HEADLINE[0]
            cells.append(f"{_side(by['1.105'], k, first)} → {_side(by['1.154'], k, first)}{q}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def detail(groups: list[tuple[str, str, dict[str, list[Row]]]], names: tuple[str, ...]) -> str:
    """Every metric: each daemon's mean over seeds, and 1.154 ÷ 1.105 seed by seed (min to
    max when the seeds disagree)."""
    sel = [g for g in groups if g[0] in names]
    keys = [k for k in DETAIL if any(_mean(by["1.105"], k) is not None for _, _, by in sel)]
    head = ["metric", *(label for _, label, _ in sel)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for k in keys:
        cells = [TITLE[k]]
        for _, _, by in sel:
            qs = _ratios(by, k)
            spread = ""
            if qs:
                lo, hi = _ratio_text(min(qs)), _ratio_text(max(qs))
                spread = f" ({lo})" if lo == hi else f" ({lo} to {hi})"
            first = k == keys[0]  # when a run stopped: once, in the first row
            cells.append(f"{_side(by['1.105'], k, first)} → {_side(by['1.154'], k, first)}{spread}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mrc_table(runs: Path) -> str:
    """The miss ratios of `emu mrc` at each size, both daemons and the references."""
    tables: list[str] = []
    for trace in TRACES:
        lines: list[str] = []
        for y, q in QUANTA.items():
            p = runs / f"mrc-{trace}-{y}.json"
            if not p.exists():
                continue
            d = orjson.loads(p.read_bytes())
            if not lines:
                head = [f"{trace}: curve", *(f"{f} pages" for f in d["frames"])]
                lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            for curve, vals in d["curves"].items():
                if curve.startswith("uvm-") or y == 1_000_000:  # the references once
                    who = f"{curve}, {q}" if curve.startswith("uvm-") else curve
                    lines.append("| " + " | ".join([who, *(_fmt(v, "r") for v in vals)]) + " |")
        tables.append("\n".join(lines))
    return "\n\n".join(t for t in tables if t)


# --- plots --------------------------------------------------------------------------------------


def ratio_plot(groups: list[tuple[str, str, dict[str, list[Row]]]], path: Path) -> None:
    """One panel per headline metric: 1.154 ÷ 1.105 of each seed (dots) and of the means
    (bar), per group, on a log scale."""
    fig = Figure(figsize=(13, 0.32 * len(groups) + 2.2), layout="constrained")
    axes = fig.subplots(1, len(HEADLINE), sharey=True).ravel()
    ys = np.arange(len(groups))[::-1]
    for ax, k in zip(axes, HEADLINE, strict=True):
        for y, (_, _, by) in zip(ys, groups, strict=True):
            a, b = _mean(by["1.105"], k), _mean(by["1.154"], k)
            if a and b:
                ax.barh(y, b / a - 1, left=1, color="tab:blue", alpha=0.25, height=0.7)
            elif _not_ok(by["1.105"]) or _not_ok(by["1.154"]):
                who = "1.105" if _not_ok(by["1.105"]) else "1.154"
                ax.text(1, y, f" {who}: {by[who][0]['outcome']}", fontsize=7, va="center")
            qs = [q for q in _ratios(by, k) if q > 0]
            ax.plot(qs, [y] * len(qs), "o", color="tab:blue", markersize=3)
        ax.axvline(1, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{TITLE[k]}\n1.154 ÷ 1.105", fontsize=9)
        ax.tick_params(labelsize=8)
    axes[0].set_yticks(ys, [label for _, label, _ in groups], fontsize=8)
    fig.savefig(path, dpi=80)


def write_images(runs: Path, groups: list[tuple[str, str, dict[str, list[Row]]]],
                 img: Path) -> list[Path]:  # fmt: skip
    img.mkdir(parents=True, exist_ok=True)
    out = [img / "variants-ratios.png"]
    ratio_plot(groups, out[0])
    for _, label, by in groups:  # the overlays of one seed: small at 20 us
        if label == "small, 20 µs":
            tmp = runs / "small" / "compare" / "seed1-20us"
            dirs = []
            for d in DAEMONS:  # copies named by the daemon: compare labels a run by its dir
                dirs.append(tmp / "runs" / d)
                shutil.rmtree(dirs[-1], ignore_errors=True)
                shutil.copytree(runs / "small" / "cells" / by[d][0]["cell"], dirs[-1])
            compare.compare(dirs, out=tmp, plots=True, console=Console(file=io.StringIO()))
            for png in ("memory", "pageouts"):
                out.append(img / f"variants-small-20us-{png}.png")
                shutil.copyfile(tmp / f"{png}.png", out[-1])
    for trace in TRACES:
        src = runs / f"mrc-{trace}-20000" / "mrc.png"
        if src.exists():
            out.append(img / f"variants-mrc-{trace}.png")
            shutil.copyfile(src, out[-1])
    return out


# --- the doc ------------------------------------------------------------------------------------


def blocks(runs: Path, groups: list[tuple[str, str, dict[str, list[Row]]]]) -> dict[str, str]:
    return {
        "headline": headline(groups),
        "scenarios": detail(groups, ("tiny", "small", "default")),
        "swap64": detail(groups, ("small-swap64",)),
        "stress": detail(groups, ("faults", "soak")),
        "traces": detail(groups, TRACES),
        "mrc": mrc_table(runs),
    }


def _each_block(doc: str, fn: Callable[[str, str], str]) -> str:
    pat = re.compile(r"(<!-- variants:(\w+) -->\n)(.*?)(<!-- /variants:\2 -->)", re.S)
    return pat.sub(lambda m: m.group(1) + fn(m.group(2), m.group(3)) + m.group(4), doc)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", type=Path, help="the directory holding the sweeps (runs/variants)")
    ap.add_argument("--write", type=Path, metavar="DOC", help="fill DOC's variants blocks")
    ap.add_argument("--check", type=Path, metavar="DOC", help="exit 1 if DOC's blocks differ")
    ap.add_argument("--img", type=Path, metavar="DIR", help="write the plots into DIR")
    a = ap.parse_args(argv)
    groups = load_groups(a.runs)
    made = blocks(a.runs, groups)
    if a.img:
        for p in write_images(a.runs, groups, a.img):
            print(f"plot: {p} ({p.stat().st_size // 1024} KiB)")
    if a.write or a.check:
        doc_path = a.write or a.check
        doc = doc_path.read_text()
        seen: list[str] = []
        bad: list[str] = []

        def fill(name: str, old: str) -> str:
            seen.append(name)
            new = made[name] + "\n"
            if old != new:
                bad.append(name)
            return new

        text = _each_block(doc, fill)
        if a.write:
            doc_path.write_text(text)
            print(f"{doc_path}: {len(seen)} blocks written ({', '.join(bad) or 'none'} changed)")
            return 0
        for name in bad:
            print(f"{doc_path}: block {name!r} differs from what {a.runs} gives")
        return 1 if bad or not seen else 0
    for name, text in made.items():
        print(f"<!-- {name} -->\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
