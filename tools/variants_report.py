"""The tables and plots of docs/variants.md, from the sweeps and miss-ratio curves it ran.

    .venv/bin/python tools/variants_report.py runs/variants                  # print the tables
    .venv/bin/python tools/variants_report.py runs/variants --write docs/variants.md --img docs/img
    .venv/bin/python tools/variants_report.py runs/variants --check docs/variants.md

What ``RUNS`` holds and where each number comes from: tools/variants_tables.py.

``--write DOC`` replaces each block between ``<!-- variants:NAME -->`` and
``<!-- /variants:NAME -->`` in DOC with the table NAME; ``--check DOC`` exits 1 when DOC's
blocks differ from what the runs give (so rerunning a sweep shows whether it reproduces).
``--check DOC --partial`` checks only the table cells that the sweeps present in RUNS give
(say after rerunning two of them) and says how many cells of each block it checked.
``--blocks NAME,...`` writes, checks and plots only those blocks. ``--img DIR`` writes the
plots there.
"""

from __future__ import annotations

import argparse
import io
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import variants_tables as tables
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from rich.console import Console
from variants_tables import _fmt, _mean, detail, headline, load_groups  # the report's API too

from emu import compare

__all__ = ["_fmt", "_mean", "blocks", "check_partial", "detail", "headline", "load_groups",
           "main", "ratio_plot", "write_images"]  # fmt: skip

# --- plots --------------------------------------------------------------------------------------


def ratio_plot(groups: list[tables.Group], path: Path) -> None:
    """One panel per headline metric: 1.154 ÷ 1.105 of each seed (dots) and of the means
    (bar), per group, on a log scale."""
    fig = Figure(figsize=(13, 0.32 * len(groups) + 2.2), layout="constrained")
    axes = fig.subplots(1, len(tables.HEADLINE), sharey=True).ravel()
    ys = np.arange(len(groups))[::-1]
    for ax, k in zip(axes, tables.HEADLINE, strict=True):
        for y, (_, _, by) in zip(ys, groups, strict=True):
            a, b = _mean(by["1.105"], k), _mean(by["1.154"], k)
            if a and b:
                ax.barh(y, b / a - 1, left=1, color="tab:blue", alpha=0.25, height=0.7)
            elif tables._not_ok(by["1.105"]) or tables._not_ok(by["1.154"]):
                who = "1.105" if tables._not_ok(by["1.105"]) else "1.154"
                ax.text(1, y, f" {who}: {by[who][0]['outcome']}", fontsize=7, va="center")
            qs = [q for q in tables._ratios(by, k) if q > 0]
            ax.plot(qs, [y] * len(qs), "o", color="tab:blue", markersize=3)
        ax.axvline(1, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{tables.TITLE[k]}\n1.154 ÷ 1.105", fontsize=9)
        ax.tick_params(labelsize=8)
    axes[0].set_yticks(ys, [label for _, label, _ in groups], fontsize=8)
    fig.savefig(path, dpi=80)


def effect_plot(groups: list[tables.Group], path: Path) -> None:
    """One panel per headline metric: encryption on ÷ off for each daemon, of each seed
    (dots) and of the means (bar), per group, on a log scale."""
    twins = tables._twins(groups, tables._enc_pairs())
    fig = Figure(figsize=(13, 0.45 * len(twins) + 2.2), layout="constrained")
    axes = fig.subplots(1, len(tables.HEADLINE), sharey=True).ravel()
    ys = np.arange(len(twins))[::-1]
    colors = {"1.105": "tab:orange", "1.154": "tab:blue"}
    for ax, k in zip(axes, tables.HEADLINE, strict=True):
        for y, (_, off, on) in zip(ys, twins, strict=True):
            for dy, d in zip((0.18, -0.18), tables.DAEMONS, strict=True):
                before = tables._common(off[d], {r["seed"] for r in on[d]})
                a, b = _mean(before, k), _mean(on[d], k)
                if a and b:
                    ax.barh(y + dy, b / a - 1, left=1, color=colors[d], alpha=0.25, height=0.34)
                elif tables._not_ok(before) or tables._not_ok(on[d]):
                    bad = tables._not_ok(before)
                    what = f"off: {before[0]['outcome']}" if bad else "on: not ok"
                    ax.text(1, y + dy, f" {d} {what}", fontsize=6, va="center")
                qs = [q for q in tables._seed_ratios(before, on[d], k) if q > 0]
                ax.plot(qs, [y + dy] * len(qs), "o", color=colors[d], markersize=3,
                        label=d if y == ys[0] and k == tables.HEADLINE[0] else None)  # fmt: skip
        ax.axvline(1, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{tables.TITLE[k]}\nencryption on ÷ off", fontsize=9)
        ax.tick_params(labelsize=8)
    axes[0].set_yticks(ys, [label for label, _, _ in twins], fontsize=8)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.savefig(path, dpi=80)


def _enc_overlay(runs: Path, groups: list[tables.Group], img: Path) -> list[Path]:
    """Free and inactive pages of default, seed 1, 1 ms: both daemons, encryption off and on."""
    cells = {(name, d): by[d][0]["cell"] for name, label, by in groups for d in tables.DAEMONS
             if label == "default, 1 ms" and by[d][0]["seed"] == 1}  # fmt: skip
    if len(cells) < 4:
        return []
    tmp = runs / (tables.ENC + "default") / "compare" / "seed1-1ms"
    dirs = []
    for d in tables.DAEMONS:  # copies named so: compare labels a run by its directory
        for name, what in (("default", "off"), (tables.ENC + "default", "on")):
            dirs.append(tmp / "runs" / f"{d}-encryption-{what}")
            shutil.rmtree(dirs[-1], ignore_errors=True)
            shutil.copytree(runs / name / "cells" / cells[name, d], dirs[-1])
    compare.compare(dirs, out=tmp, plots=True, console=Console(file=io.StringIO()))
    shutil.copyfile(tmp / "memory.png", img / "variants-enc-default-memory.png")
    return [img / "variants-enc-default-memory.png"]


def write_images(runs: Path, groups: list[tables.Group], img: Path,
                 names: tuple[str, ...]) -> list[Path]:  # fmt: skip
    """The plots of the blocks ``names``: the ratios (headline), the overlays of small at
    20 µs (scenarios), the miss-ratio curves (mrc), the ratios and the effect of encryption
    (encryption, encryption_effect)."""
    img.mkdir(parents=True, exist_ok=True)
    plain = [g for g in groups if g[0] in tables.SWEEPS]
    enc = [g for g in groups if g[0].startswith(tables.ENC)]
    out: list[Path] = []
    if "headline" in names:
        out.append(img / "variants-ratios.png")
        ratio_plot(plain, out[-1])
    if "encryption" in names and enc:
        out.append(img / "variants-enc-ratios.png")
        ratio_plot(enc, out[-1])
    if "encryption_effect" in names and tables._twins(groups, tables._enc_pairs()):
        out.append(img / "variants-enc-effect.png")
        effect_plot(groups, out[-1])
        out += _enc_overlay(runs, groups, img)
    for name, label, by in groups:  # the overlays of one seed: small at 20 us
        if name == "small" and label == "small, 20 µs" and "scenarios" in names:
            tmp = runs / "small" / "compare" / "seed1-20us"
            dirs = []
            for d in tables.DAEMONS:  # copies named by the daemon: compare labels a run by its dir
                dirs.append(tmp / "runs" / d)
                shutil.rmtree(dirs[-1], ignore_errors=True)
                shutil.copytree(runs / "small" / "cells" / by[d][0]["cell"], dirs[-1])
            compare.compare(dirs, out=tmp, plots=True, console=Console(file=io.StringIO()))
            for png in ("memory", "pageouts"):
                out.append(img / f"variants-small-20us-{png}.png")
                shutil.copyfile(tmp / f"{png}.png", out[-1])
    for trace in tables.TRACES:
        src = runs / f"mrc-{trace}-20000" / "mrc.png"
        if src.exists() and "mrc" in names:
            out.append(img / f"variants-mrc-{trace}.png")
            shutil.copyfile(src, out[-1])
    return out


# --- the doc ------------------------------------------------------------------------------------


def blocks(runs: Path, groups: list[tables.Group]) -> dict[str, str]:
    plain = [g for g in groups if g[0] in tables.SWEEPS]
    enc = [g for g in groups if g[0].startswith(tables.ENC)]
    enc_names = tuple(tables.ENC + s for s in tables.SWEEPS)
    reserve = "off at 448 KiB → on at 512 KiB"  # small-448k → enc-small
    return {
        "headline": headline(plain),
        "scenarios": detail(plain, ("tiny", "small", "default")),
        "swap64": detail(plain, ("small-swap64",)),
        "stress": detail(plain, ("faults", "soak")),
        "traces": detail(plain, tables.TRACES),
        "mrc": tables.mrc_table(runs),
        "encryption": headline(enc),
        "encryption_detail": detail(enc, enc_names, tables.ENC_DETAIL),
        "encryption_effect": tables.effect(groups, tables._enc_pairs(), "encryption off → on"),
        "encryption_reserve": tables.effect(groups, tables.CONTROLS, reserve),
    }


def _cells(table: str) -> dict[tuple[str, str, str], str]:
    """The cells of a block's tables: {(table's first title, row's first cell, column): text}."""
    out: dict[tuple[str, str, str], str] = {}
    for part in table.strip().split("\n\n"):
        rows = [[c.strip() for c in ln.strip().strip("|").split(" | ")]
                for ln in part.splitlines() if ln.startswith("|")]  # fmt: skip
        for row in rows[2:]:
            for col, text in zip(rows[0][1:], row[1:], strict=False):
                out[(rows[0][0], row[0], col)] = text
    return out


def check_partial(doc: str, made: dict[str, str], names: tuple[str, ...]) -> list[str]:
    """Compare only the cells the runs give with the doc's; one line per block (cells
    checked, or what differs)."""
    report: list[str] = []

    def look(name: str, old: str) -> str:
        if name not in names:
            return old
        mine, theirs = _cells(made[name]), _cells(old)
        if not mine:
            report.append(f"block {name!r}: not checked (no runs for it)")
            return old
        bad = [k for k, v in mine.items() if theirs.get(k) != v]
        for k in bad[:5]:
            report.append(f"block {name!r} differs: {' / '.join(k[1:])}: the doc has "
                          f"{theirs.get(k)!r}, the runs give {mine[k]!r}")  # fmt: skip
        if not bad:
            report.append(f"block {name!r}: {len(mine)} of {len(theirs)} cells checked, the same")
        return old

    _each_block(doc, look)
    return report


def _each_block(doc: str, fn: Callable[[str, str], str]) -> str:
    pat = re.compile(r"(<!-- variants:(\w+) -->\n)(.*?)(<!-- /variants:\2 -->)", re.S)
    return pat.sub(lambda m: m.group(1) + fn(m.group(2), m.group(3)) + m.group(4), doc)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", type=Path, help="the directory holding the sweeps (runs/variants)")
    ap.add_argument("--write", type=Path, metavar="DOC", help="fill DOC's variants blocks")
    ap.add_argument("--check", type=Path, metavar="DOC", help="exit 1 if DOC's blocks differ")
    ap.add_argument("--img", type=Path, metavar="DIR", help="write the plots into DIR")
    ap.add_argument("--blocks", metavar="NAME,...", help="write, check and plot only these blocks")
    ap.add_argument("--partial", action="store_true",
                    help="with --check: only the cells that the sweeps in RUNS give")  # fmt: skip
    a = ap.parse_args(argv)
    groups = load_groups(a.runs)
    made = blocks(a.runs, groups)
    names = tuple(a.blocks.split(",")) if a.blocks else tuple(made)
    if unknown := [n for n in names if n not in made]:
        ap.error(f"unknown block {', '.join(unknown)}; blocks: {', '.join(made)}")
    if a.img:
        for p in write_images(a.runs, groups, a.img, names):
            print(f"plot: {p} ({p.stat().st_size // 1024} KiB)")
    if a.check and a.partial:
        lines = check_partial(a.check.read_text(), made, names)
        print("\n".join(lines))
        ok = [ln for ln in lines if ln.endswith(", the same")]
        return 0 if ok and all(" differs" not in ln for ln in lines) else 1
    if a.write or a.check:
        doc_path = a.write or a.check
        doc = doc_path.read_text()
        seen: list[str] = []
        bad: list[str] = []

        def fill(name: str, old: str) -> str:
            if name not in names:
                return old
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
    for name in names:
        print(f"<!-- {name} -->\n{made[name]}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
