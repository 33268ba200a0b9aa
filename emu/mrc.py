"""emu.mrc: a trace's miss-ratio curve under our kernel, next to libCacheSim's policies.

``emu mrc FORMAT:PATH --ram LO..HI --points N [--pdaemon A,B] [--ref lru,...] --out DIR``:

- **Ours**: a sweep (emu/sweep/, same engines) of the trace alone on machines of N RAM sizes
  from LO to HI (evenly spaced in pages), one curve per daemon variant (``kernel.pdaemon``).
  A miss is a zero-fill or a major fault of the trace's process; the ratio is over the trace's
  accesses (its own counters in summary.json).
- **References**: libCacheSim replays exactly the page stream the replay workload touches (the
  same reader and params, the same page numbers: address >> 12 after the workload's offset),
  written once as an oracleGeneral trace whose next-access times numpy computes (Belady needs
  them), with as many frames as the machine has pages of RAM: the kernel's own pages and its
  free target are memory the references do not lose, so the table and plot show both per size.

Outputs in DIR: the sweep (``cells/``, ``results.*``), ``mrc.csv``, ``mrc.png``, and with
``--json FILE`` ``{"frames", "accesses", "curves": {"uvm-1.105": [...], "lru": [...]}}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import libcachesim as lcs
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pacsv
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table

from emu import rundir
from emu.config import KernelSection
from emu.sizes import Size
from emu.sweep import make_engine
from emu.sweep.cells import make_task
from emu.sweep.driver import design, prepare, run_sweep
from emu.sweep.results import read_cell
from emu.sweep.spec import SweepError, make_spec, plan
from emu.workloads.trace import (
    TraceError,
    lcs_reader,
    next_access,
    open_trace,
    resolve,
    write_oracle,
)

__all__ = [
    "POLICIES", "cmd_mrc", "next_access", "page_stream", "reference_curves", "write_oracle",
]  # fmt: skip

POLICIES: dict[str, Any] = {
    "lru": lcs.LRU, "clock": lcs.Clock, "arc": lcs.ARC, "s3fifo": lcs.S3FIFO,
    "belady": lcs.Belady, "fifo": lcs.FIFO, "sieve": lcs.Sieve, "lirs": lcs.LIRS,
    "twoq": lcs.TwoQ, "slru": lcs.SLRU, "lfu": lcs.LFU,
}  # fmt: skip
DEFAULT_REFS = ("lru", "clock", "arc", "s3fifo", "belady")


def page_stream(params: dict[str, Any]) -> npt.NDArray[np.uint64]:
    """The page numbers the ``trace_replay`` workload with these params touches, in order
    (its reader, chunking, limit, offset and collapse, as emu/workloads/trace.py replays)."""
    fmt, path = resolve(params["path"], params.get("fmt"))
    offset = params.get("offset")
    offset = (0 if fmt == "lackey" else 1 << 32) if offset is None else offset
    limit, n, out = params.get("limit"), 0, []
    for v, w in open_trace(path, fmt, params.get("chunk", 4096), span=params.get("span", False),
                           instructions=params.get("instructions", True)):  # fmt: skip
        if limit is not None and n + len(v) > limit:
            v, w = v[: limit - n], w[: limit - n]
        v = v + np.uint64(offset)
        if params.get("collapse") and len(v) > 1:
            v = v[np.flatnonzero(np.r_[True, v[1:] != v[:-1]])]
        out.append(v >> np.uint64(12))
        n += len(v)
        if limit is not None and n >= limit:
            break
    return np.concatenate(out) if out else np.zeros(0, np.uint64)


def reference_curves(oracle: Path, frames: list[int], refs: list[str]) -> dict[str, list[float]]:
    """Each policy's miss ratio at each number of frames (objects), from libCacheSim."""
    reader = lcs_reader(oracle)
    n = reader.get_num_of_req()
    out: dict[str, list[float]] = {}
    for name in refs:
        ratios = [POLICIES[name](cache_size=f, hashpower=20).process_trace(reader)[0]
                  for f in frames]  # fmt: skip
        out[name] = [round(r * n) / n for r in ratios]  # misses / accesses, as ours
    return out


def _kernel_pages(run_dir: Path) -> int | None:
    """The pages the kernel holds itself (not free, not on a paging queue), median over the
    run's uvmexp samples."""
    log = rundir.event_log(run_dir)
    if log is None:
        return None
    own = [ev["free"] + ev["active"] + ev["inactive"] + ev["paging"]
           for ev in rundir.read_events(log)
           if isinstance(ev, dict) and ev.get("event") == "uvmexp.sample"]  # fmt: skip
    npages = rundir.read_summary(run_dir)["ram_pages"]
    return int(npages - statistics.median(own)) if own else None


def _sizes(ram: str, points: int) -> list[str]:
    lo_s, sep, hi_s = ram.partition("..")
    try:
        lo, hi = Size.parse(lo_s.strip()).pages, Size.parse((hi_s or lo_s).strip()).pages
    except (TypeError, ValueError) as e:
        raise SweepError(f"--ram {ram!r}: {e}; write LO..HI, e.g. 256KiB..2MiB") from None
    if not sep or hi < lo:
        raise SweepError(f"--ram {ram!r}: expected LO..HI with LO <= HI, e.g. 256KiB..2MiB")
    if points < 1:
        raise SweepError(f"--points {points}: give at least 1")
    pages = sorted({round(p) for p in np.linspace(lo, hi, points)})
    return [f"{p}pages" for p in pages]


def _default_pdaemon() -> str:
    return str(getattr(KernelSection(), "pdaemon", "1.105"))


def cmd_mrc(args: argparse.Namespace) -> int:
    try:
        fmt, path = resolve(args.trace)
    except TraceError as e:
        raise SweepError(f"mrc {args.trace!r}: {e}; name the trace as --trace does, e.g. "
                         "lackey:ls.lackey.gz") from None  # fmt: skip
    refs = [r.strip() for r in args.ref.split(",") if r.strip()]
    for r in refs:
        if r not in POLICIES:
            raise SweepError(f"--ref {r!r}: unknown policy; choose from {', '.join(POLICIES)}")
    grid: dict[str, list[Any]] = {"machine.ram": _sizes(args.ram, args.points)}
    daemons = [d.strip() for d in (args.pdaemon or "").split(",") if d.strip()]
    if daemons:
        grid["kernel.pdaemon"] = daemons
    out = Path(args.out)
    spec = make_spec({"trace": f"{fmt}:{path}", "set": list(args.set),
                      "metrics": ["workloads.trace.faults.major", "uvmexp.pdpageouts"]},
                     grid, label="emu mrc")  # fmt: skip
    cells = plan(spec)
    tasks = [make_task(c, spec) for c in cells]
    prepare(out, design(spec, cells, tasks))
    r = run_sweep(spec, cells, tasks, out, make_engine(args.jobs, args.ray),
                  retry_failed=args.retry_failed)  # fmt: skip
    if r.interrupted:
        return 128 + r.interrupted
    # the references, on the stream the cells replayed
    params = dict(cells[0].scenario.workloads[-1].params)
    pages = page_stream(params)
    write_oracle(pages, out / "stream.oracleGeneral.bin")
    by_cell = {t.cell: c for c, t in zip(cells, tasks, strict=True)}
    frames = sorted({c.scenario.machine.ram.pages for c in cells})
    mrc: dict[str, Any] = {"frames": frames, "accesses": len(pages), "curves": {},
                           "freetarg": {}, "kernel_pages": {}}  # fmt: skip
    for cid, cell in by_cell.items():
        rec, summary = read_cell(out / "cells" / cid)
        label = f"uvm-{cell.params.get('kernel.pdaemon', _default_pdaemon())}"
        curve = mrc["curves"].setdefault(label, [None] * len(frames))
        i = frames.index(cell.scenario.machine.ram.pages)
        w = next((w for w in summary.get("workloads", []) if w["name"] == "trace"), None)
        if rec.get("outcome") == "ok" and w is not None and w["accesses"]:
            curve[i] = (w["faults"]["zero_fill"] + w["faults"]["major"]) / w["accesses"]
        mrc["freetarg"].setdefault(label, [None] * len(frames))[i] = summary.get(
            "uvmexp", {}).get("freetarg")
        mrc["kernel_pages"].setdefault(label, [None] * len(frames))[i] = _kernel_pages(
            out / "cells" / cid)
    mrc["curves"].update(reference_curves(out / "stream.oracleGeneral.bin", frames, refs))
    _write(mrc, out, args.json_path)
    return 0 if r.failed == 0 else 1


def _write(mrc: dict[str, Any], out: Path, json_path: str | None) -> None:
    frames, curves = mrc["frames"], mrc["curves"]
    ours = [k for k in curves if k.startswith("uvm-")]
    cols: dict[str, list[Any]] = {"frames": frames, "ram_KiB": [f * 4 for f in frames]}
    for k in ours:
        cols[f"{k}.freetarg"] = mrc["freetarg"][k]
        cols[f"{k}.kernel_pages"] = mrc["kernel_pages"][k]
    cols.update(curves)
    pacsv.write_csv(pa.table(cols), out / "mrc.csv")
    t = Table(title=f"miss ratio over {mrc['accesses']:,} accesses (frames = RAM pages)")
    for c in cols:
        t.add_column(c, justify="right")
    for i in range(len(frames)):
        t.add_row(*("-" if v[i] is None else f"{v[i]:.4g}" if isinstance(v[i], float)
                    else str(v[i]) for v in cols.values()))  # fmt: skip
    Console(width=200).print(t)
    fig = Figure(figsize=(8, 7), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    for k, ys in curves.items():
        pts = [(f, y) for f, y in zip(frames, ys, strict=True) if y is not None]
        top.plot([p[0] for p in pts], [p[1] for p in pts], marker="o" if k in ours else ".",
                 linewidth=2.2 if k in ours else 1.2, label=k)  # fmt: skip
    top.set_yscale("log")
    top.set_ylabel("miss ratio")
    top.set_title(f"miss-ratio curve, {mrc['accesses']:,} accesses")
    top.legend(fontsize=8)
    for k in ours:
        bottom.plot(frames, mrc["freetarg"][k], linestyle="--", label=f"{k} freetarg")
        bottom.plot(frames, mrc["kernel_pages"][k], linestyle=":", label=f"{k} kernel pages")
    bottom.set_xlabel("frames (pages of RAM)")
    bottom.set_ylabel("pages")
    bottom.legend(fontsize=8)
    fig.savefig(out / "mrc.png", dpi=100)
    print(f"plot: {out / 'mrc.png'}\ntable: {out / 'mrc.csv'}")
    if json_path:
        doc = {"frames": frames, "accesses": mrc["accesses"], "curves": curves,
               "freetarg": mrc["freetarg"], "kernel_pages": mrc["kernel_pages"]}  # fmt: skip
        Path(json_path).write_text(json.dumps(doc, indent=1))
        print(f"wrote {json_path}")
