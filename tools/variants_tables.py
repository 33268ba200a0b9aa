"""The numbers of docs/variants.md: the sweeps' groups and the tables made of them.

``RUNS`` holds one sweep directory per spec of docs/variants/ (``RUNS/tiny`` from
``docs/variants/tiny.toml``, ...) and the ``emu mrc`` directories ``RUNS/mrc-<trace>-<quantum>``.
The main sweeps run with swap encryption off; ``RUNS/enc-<name>`` (``docs/variants/enc-small.toml``,
...) are the same cells with it on, reported in their own tables: 1.105 against 1.154 with
encryption on, and what turning it on changes for each daemon (over the seeds both sweeps
ran); ``RUNS/small-448k`` is the control of ``enc-small`` (encryption off, RAM less the 16
pages encryption reserves). A *group* is one sweep's cells that differ only in the daemon and
the seed (say small at a 1 ms quantum). For each group this runs ``emu compare`` (its
function, as the command does) on 1.105's cells then 1.154's, seed by seed, and keeps the JSON
as ``RUNS/<sweep>/compare/<group>.json``. Every number comes from those JSON files, from the
sweep's ``results.parquet`` (daemon passes, deactivations, ``fltnoram``, the trace's miss
ratio, ``swapencrypt.*``) or from the cells' event logs; none is typed by hand.
tools/variants_report.py puts the tables into the doc and draws the plots.
"""

from __future__ import annotations

import io
import re
import statistics
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
from rich.console import Console

from emu import compare, rundir

SWEEPS = ("tiny", "small", "small-swap64", "default", "faults", "soak", "ls", "kvtouch")
ENC = "enc-"  # RUNS/enc-<sweep>: the same cells with swap encryption on
# with encryption off, RAM less the 16 pages encryption reserves at boot: {control: its twin}
CONTROLS = {"small-448k": "enc-small"}
TRACES = ("ls", "kvtouch")
DAEMONS = ("1.105", "1.154")
QUANTA = {1_000_000: "1 ms", 20_000: "20 µs"}
Row = dict[str, Any]
Rows = dict[str, list[Row]]  # {daemon: its runs, by seed}
Group = tuple[str, str, Rows]  # (sweep, group label, its runs)

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
    ("faults.soft", "soft faults", "n", "p"),
    ("peak_pass_paging", "pages in flight at a pass's end (max)", "n", "l"),
    ("swapencrypt.pages_encrypted", "pages encrypted", "n", "p"),
    ("swapencrypt.pages_decrypted", "pages decrypted", "n", "p"),
    ("swapencrypt.keyscreated", "swap keys created", "n", "p"),
)
HEADLINE = ("pages_written", "swap_writes", "faults_major", "daemon.passes", "wait_ns",
            "virtual_ns")  # fmt: skip
ENC_DETAIL = tuple(m[0] for m in METRICS)
ENC_ONLY = ("faults.soft", "peak_pass_paging")  # and swapencrypt.*: in the encryption tables only
DETAIL = tuple(k for k in ENC_DETAIL if k not in ENC_ONLY and not k.startswith("swapencrypt."))
EFFECT = ("pages_written", "swap_writes", "pages_per_write", "faults_major", "faults.soft",
          "daemon.passes", "peak_pass_paging", "waits", "wait_ns", "first_pageout_ns",
          "virtual_ns", "fault_p99_ns")  # fmt: skip
TITLE = {m[0]: m[1] for m in METRICS}
UNIT = {m[0]: m[2] for m in METRICS}


# --- reading ------------------------------------------------------------------------------------


def _group_key(row: Row, keys: list[str]) -> tuple[Any, ...]:
    return tuple(row[k] for k in keys if k != "kernel.pdaemon")


def _label(name: str, row: Row) -> str:
    """"small, 1 ms", "ls 256KiB, 20 µs": the same for a sweep and its enc- twin."""
    ram = f" {row['machine.ram']}" if "machine.ram" in row else ""
    name = name.removeprefix(ENC)
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
    item 13), and the most pages being paged out at the end of a daemon pass."""
    peak = batches = woke = paging = 0
    log = rundir.event_log(cell)
    assert log is not None, cell
    for e in rundir.read_events(log):
        name = e.get("event")
        if name == "uvmexp.sample":
            peak = max(peak, int(e.get("swpginuse", 0)))
        elif name == "uvm_aiodone_daemon.batch":
            batches += 1
            woke += e.get("woke") == "pagedaemon"
        elif name == "uvm_pageout.pass":
            paging = max(paging, int(e.get("paging", 0)))
    return {"peak_swpginuse": peak, "aiodone_batches": batches, "aiodone_woke_daemon": woke,
            "peak_pass_paging": paging}  # fmt: skip


def load_groups(runs: Path) -> list[Group]:
    """[(sweep, group label, {daemon: rows by seed})], each row the parquet row with the
    compare JSON's metrics merged in; compare JSON written under RUNS/<sweep>/compare/."""
    out = []
    for name in (*SWEEPS, *(ENC + s for s in SWEEPS), *CONTROLS):
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


def _seed_ratios(before: list[Row], after: list[Row], key: str) -> list[float]:
    """after / before, seed by seed (the same seed's runs)."""
    if _not_ok(before) or _not_ok(after):
        return []
    old = {r["seed"]: r.get(key) for r in before}
    return [r[key] / old[r["seed"]] for r in after
            if r.get(key) is not None and old.get(r["seed"])]  # fmt: skip


def _ratios(by: dict[str, list[Row]], key: str) -> list[float]:
    """1.154 / 1.105, seed by seed."""
    return _seed_ratios(by["1.105"], by["1.154"], key)


def _pair(before: list[Row], after: list[Row], key: str, first: bool) -> str:
    """"a → b (×lo to ×hi)": the means, and after ÷ before seed by seed (one ratio when the
    seeds agree)."""
    qs = _seed_ratios(before, after, key)
    spread = ""
    if qs:
        lo, hi = _ratio_text(min(qs)), _ratio_text(max(qs))
        spread = f" ({lo})" if lo == hi else f" ({lo} to {hi})"
    return f"{_side(before, key, first)} → {_side(after, key, first)}{spread}"


def _ratio_text(q: float) -> str:
    return f"×{q:.3g}" if q < 100 else f"×{q:,.0f}"


def headline(groups: list[Group]) -> str:
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


def detail(groups: list[Group], names: tuple[str, ...], metrics: tuple[str, ...] = DETAIL) -> str:
    """Every metric: each daemon's mean over seeds, and 1.154 ÷ 1.105 seed by seed (min to
    max when the seeds disagree)."""
    sel = [g for g in groups if g[0] in names]
    keys = [k for k in metrics if any(_mean(by["1.105"], k) is not None for _, _, by in sel)]
    head = ["metric", *(label for _, label, _ in sel)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for k in keys:
        first = k == keys[0]  # when a run stopped: once, in the first row
        cells = [TITLE[k], *(_pair(by["1.105"], by["1.154"], k, first) for _, _, by in sel)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _twins(groups: list[Group], pairs: dict[str, str]) -> list[tuple[str, Rows, Rows]]:
    """[(label, a group's runs in sweep A, the same group's in sweep B)] for each {A: B} of
    ``pairs``, the groups matched by what follows the sweep's name in their label (the
    quantum, the RAM size)."""

    def rest(name: str, label: str) -> str:
        return label.removeprefix(name.removeprefix(ENC))

    out = []
    for a, b in pairs.items():
        before = {rest(a, label): by for name, label, by in groups if name == a}
        out += [(label, before[rest(b, label)], by) for name, label, by in groups
                if name == b and rest(b, label) in before]  # fmt: skip
    return out


def _enc_pairs() -> dict[str, str]:
    """{sweep: its enc- twin}: what encryption changes."""
    return {s: ENC + s for s in SWEEPS}


def _common(rows: list[Row], seeds: set[int]) -> list[Row]:
    return [r for r in rows if r["seed"] in seeds]


def effect(groups: list[Group], pairs: dict[str, str], what: str) -> str:
    """For each daemon, sweep A → its twin B (``pairs``), over the seeds both ran: the
    means, and B ÷ A seed by seed."""
    twins = _twins(groups, pairs)
    if not twins:
        return ""
    tables = []
    for d in DAEMONS:
        head = [f"{d}: {what}", *(label for label, _, _ in twins)]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for k in EFFECT:
            first = k == EFFECT[0]
            cells = [TITLE[k]]
            for _, off, on in twins:
                seeds = {r["seed"] for r in on[d]}
                cells.append(_pair(_common(off[d], seeds), on[d], k, first))
            lines.append("| " + " | ".join(cells) + " |")
        tables.append("\n".join(lines))
    return "\n\n".join(tables)


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
