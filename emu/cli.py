"""emu: the command line.

    emu run [SCENARIO] [--ram R] [--swap S] [--seed N] [--loop L] [--out DIR] [--set K=V]...
            [--trace FORMAT:PATH] [--timeout SECONDS] [--force] [--log-level LEVEL]
            [--events full|compact] [--compress]
    emu scenarios [--workloads]
    emu analyze RUN_DIR [RUN_DIR2] [--out DIR]
    emu compare RUN_DIR... [--out DIR] [--json FILE] [--no-plots]
    emu bench [--quick] [--json FILE] [--only NAME]...
    emu ioerr-sweep SCENARIO [--json FILE] [--stride N] [--max-runs N] [--set K=V]...
    emu soak [--minutes M] [--seed S] [--scenario NAME] [--set K=V]...
    emu sweep SPEC.toml --out DIR [--jobs N] [--ray [ADDRESS]] [--retry-failed]
    emu mrc FORMAT:PATH --ram LO..HI [--points N] [--pdaemon A,B] [--ref lru,...] --out DIR
            [--json FILE] [--set K=V]... [--jobs N] [--ray [ADDRESS]]

Bad input (a scenario, a key, a value, a path, a trace) exits with status 2 and one message
that names the input and the fix, before anything is written. ``emu run`` exits 0 only when
every workload finished and nothing mismatched; the codes are
:data:`emu.summary.EXIT_STATUS` (also in ``emu --help``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import msgspec

from emu.config import keys_help
from emu.scenario import ScenarioError, WorkloadSpec, builtin_names, load_scenario


class UsageError(Exception):
    """Bad input outside the scenario itself (paths, flags): exit status 2."""


def _exit_codes() -> str:
    from emu.summary import EXIT_STATUS

    return "exit status of emu run:\n" + "\n".join(
        f"  {code:<4} {text}" for code, text in EXIT_STATUS.items()
    )


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="emu", description="OpenBSD's page daemon on an emulated machine",
        epilog=_exit_codes(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="run a scenario (a built-in name or a TOML file)",
                       epilog=_exit_codes(), formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("scenario", nargs="?", default="default")
    r.add_argument("--ram", help='emulated RAM, e.g. "64MiB" (machine.ram)')
    r.add_argument("--swap", help='swap size, e.g. "256MiB" (machine.swap)')
    r.add_argument("--seed", type=int, help="seed (machine.seed)")
    r.add_argument("--loop", choices=["uvloop", "asyncio"], help="event loop (machine.loop)")
    r.add_argument("--out", default="runs", help="parent directory of the run directory")
    r.add_argument("--run-dir", help="exact run directory (must not exist unless --force)")
    r.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a scenario key (`emu scenarios --help` lists them), or a "
                        "workload's param with workload.NAME.PARAM=VALUE")  # fmt: skip
    r.add_argument("--trace", action="append", default=[], metavar="FORMAT:PATH",
                   help="replay a memory trace as one more workload")  # fmt: skip
    r.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="stop the run after this much wall-clock time (machine.max_wall_s)")
    r.add_argument("--force", action="store_true", help="reuse an existing run directory")
    r.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    r.add_argument("--events", default="full", choices=["full", "compact"],
                   help="compact: fold per-fault and per-cluster events into histograms")
    r.add_argument("--compress", action="store_true", help="write events.jsonl.zst (zstd)")
    r.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    r.add_argument("--quiet", action="store_true", help="no progress bar or tables")

    s = sub.add_parser(
        "scenarios", help="list the built-in scenarios", epilog="keys of a scenario file "
        "(also for --set SECTION.KEY=VALUE):\n\n" + keys_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    s.add_argument("--workloads", action="store_true", help="also list the stock workloads")

    a = sub.add_parser("analyze", help="tables and plots of one run, or two side by side")
    a.add_argument("run_dir")
    a.add_argument("run_dir2", nargs="?")
    a.add_argument("--out", help="where to write the plots (default: the run directory; for "
                                 "two runs compare-A-vs-B beside the first)")

    c = sub.add_parser("compare", help="any number of runs side by side, against the first")
    c.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    c.add_argument("--out", help="where to write the plots (default: a new ./compare-N)")
    c.add_argument("--json", dest="json_path", help="write the metrics of every run to this file")
    c.add_argument("--no-plots", action="store_true", help="skip the PNG plots")

    b = sub.add_parser("bench", help="benchmarks against same-run references")
    b.add_argument("--quick", action="store_true")
    b.add_argument("--json", dest="json_path")
    b.add_argument("--only", action="append", default=[], metavar="NAME",
                   help="run only this benchmark (repeatable)")  # fmt: skip
    b.add_argument("--quiet", action="store_true", help="no per-benchmark progress on stderr")

    e = sub.add_parser(
        "ioerr-sweep", help="fail each swap I/O of a scenario in turn (emu/reliability.py)"
    )
    e.add_argument("scenario")
    e.add_argument("--json", dest="json_path", help="write one row per run to this file")
    e.add_argument("--stride", type=int, default=1, help="fail every N-th I/O only")
    e.add_argument("--max-runs", type=int, help="at most this many runs, evenly spread")
    e.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")

    k = sub.add_parser("soak", help="run a scenario back to back under faults (emu/reliability.py)")
    k.add_argument("--minutes", type=float, default=10.0)
    k.add_argument("--seed", type=int, default=1, help="seed of the first run (then +1 per run)")
    k.add_argument("--scenario", default="soak")
    k.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    _sweep_parsers(sub)
    return ap


def _sweep_parsers(sub: Any) -> None:
    """``emu sweep`` (emu/sweep/) and ``emu mrc`` (emu/mrc.py): parsers of their own modules'
    making would import them for every command, so their flags live here."""
    w = sub.add_parser("sweep", help="a grid of runs on a process pool or Ray (docs/sweeps.md)")
    w.add_argument("spec", help="the sweep file (TOML: [sweep] and [grid])")
    w.add_argument("--out", required=True, help="the sweep directory (resumed if it exists)")
    _engine_args(w)

    m = sub.add_parser("mrc", help="a trace's miss-ratio curve: our kernel and libCacheSim")
    m.add_argument("trace", metavar="FORMAT:PATH", help="the trace, as --trace names it")
    m.add_argument("--ram", required=True, metavar="LO..HI", help="RAM sizes, e.g. 256KiB..2MiB")
    m.add_argument("--points", type=int, default=8, help="number of sizes (default 8)")
    m.add_argument("--pdaemon", metavar="A,B", help="daemon variants (kernel.pdaemon), one "
                   "curve each")  # fmt: skip
    m.add_argument("--ref", default="lru,clock,arc,s3fifo,belady",
                   help="libCacheSim policies (default: lru,clock,arc,s3fifo,belady)")  # fmt: skip
    m.add_argument("--out", required=True, help="the directory (the sweep, mrc.csv, mrc.png)")
    m.add_argument("--json", dest="json_path", help="write frames, accesses and curves here")
    m.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    _engine_args(m)


def _engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--jobs", type=int, help="cells in parallel on the local pool (default: cores)")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="run the cells on Ray: a local instance (started or joined), or the "
                        "cluster at ADDRESS (HOST:PORT or ray://HOST:10001)")  # fmt: skip
    p.add_argument("--retry-failed", action="store_true",
                   help="rerun the cells whose outcome was not ok")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "run":
            return _cmd_run(args)
        if args.cmd == "scenarios":
            return _cmd_scenarios(args)
        if args.cmd == "analyze":
            return _cmd_analyze(args)
        if args.cmd == "compare":
            return _cmd_compare(args)
        if args.cmd == "bench":
            return _cmd_bench(args)
        if args.cmd == "ioerr-sweep":
            from emu import reliability

            return reliability.cmd_ioerr_sweep(args)
        if args.cmd == "soak":
            from emu import soak

            return soak.cmd_soak(args)
        if args.cmd == "sweep":
            from emu import sweep

            return sweep.cmd_sweep(args)
        if args.cmd == "mrc":
            from emu import mrc

            return mrc.cmd_mrc(args)
    except (ScenarioError, UsageError) as e:
        print(f"emu: {e}", file=sys.stderr)
        return 2
    return 2  # pragma: no cover - argparse enforces a command


def _cmd_run(args: argparse.Namespace) -> int:
    from emu.harness import Progress, run_scenario
    from emu.machine import Machine
    from emu.scenario import prepare_run_dir
    from emu.summary import exit_status

    overrides = list(args.set)
    flags = (("ram", args.ram), ("swap", args.swap), ("seed", args.seed), ("loop", args.loop),
             ("max_wall_s", args.timeout))  # fmt: skip
    for key, flag in flags:
        if flag is not None:
            overrides.append(f"machine.{key}={json.dumps(flag)}")
    sc = load_scenario(args.scenario, overrides)
    for spec in args.trace:
        if ":" not in spec:
            raise UsageError(f"--trace '{spec}': expected FORMAT:PATH, e.g. lackey:trace.out.gz")
        fmt, path = spec.split(":", 1)
        if not Path(path).exists():
            raise UsageError(f"--trace '{spec}': no such file {path!r}")
        _check_trace(spec, fmt, Path(path))
        params = {"path": str(Path(path).resolve()), "fmt": fmt}
        trace = WorkloadSpec(kind="trace_replay", name=f"trace{len(sc.workloads)}", params=params)
        sc = msgspec.structs.replace(sc, workloads=[*sc.workloads, trace])
    m = Machine.from_scenario(sc, log_level=args.log_level, force=args.force, events=args.events,
                              compress=args.compress)  # the last checks: nothing written

    def make_dir() -> Path:
        return prepare_run_dir(sc, Path(args.out), args.run_dir and Path(args.run_dir),
                               args.force)  # fmt: skip

    progress: Progress = "off" if args.quiet else "bar" if sys.stdout.isatty() else "lines"
    summary = run_scenario(sc, make_dir, progress=progress, machine=m)
    run_dir = m.run_dir
    assert run_dir is not None
    if summary["outcome"] == "interrupted":
        print(f"emu: {summary['error']} at t={summary['virtual_ns'] / 1e6:,.0f} ms virtual; "
              f"what ran is in {run_dir}", file=sys.stderr)  # fmt: skip
        return exit_status(summary, m.stop_signal)
    if summary.get("traceback"):  # a panic or an error: where it came from, even with --quiet
        print(f"emu: the run ended in a {summary['outcome']}: {summary['error']}\n"
              f"{summary['traceback'].rstrip()}\n"
              f"emu: the traceback is also in {run_dir}/summary.json", file=sys.stderr)  # fmt: skip
    if not args.quiet:
        from emu import analyze

        paths = analyze.analyze(run_dir, plots=not args.no_plots)
        for p in paths:
            print(f"plot: {p}")
        print(f"run directory: {run_dir}")
    return exit_status(summary)


def _check_trace(spec: str, fmt: str, path: Path) -> None:
    """Read the whole trace once (streamed) so a bad line, a cut or corrupt compressed file or
    an empty trace is refused before the run directory is made."""
    from emu.workloads.trace import TraceError, open_trace

    try:
        n = sum(len(v) for v, _ in open_trace(path, fmt))
    except (TraceError, ValueError) as e:
        raise UsageError(f"--trace '{spec}': {e}") from e
    if n == 0:
        raise UsageError(f"--trace '{spec}': {path} holds no accesses (an empty trace)")


def _cmd_scenarios(args: argparse.Namespace) -> int:
    for name in builtin_names():
        sc = load_scenario(name)
        kinds = ", ".join(f"{w.name}({w.kind}{'x' + str(w.count) if w.count > 1 else ''})"
                          for w in sc.workloads)  # fmt: skip
        print(f"{name:12s} ram={sc.machine.ram} swap={sc.machine.swap} "
              f"device={sc.device.model} workloads: {kinds}")  # fmt: skip
    if args.workloads:
        from emu.workloads import describe

        print()
        print(describe())
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from emu import analyze, rundir

    for d in (args.run_dir, args.run_dir2):
        if d is not None:
            try:
                rundir.check_run_dir(Path(d))  # a summary, events.jsonl or events.jsonl.zst
            except rundir.RunDirError as e:
                raise UsageError(f"analyze: {e}") from e
    out = Path(args.out) if args.out else None
    paths = analyze.analyze(
        Path(args.run_dir), Path(args.run_dir2) if args.run_dir2 else None, out=out
    )
    for p in paths:
        print(f"plot: {p}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from emu import compare, rundir

    try:
        paths = compare.compare(args.run_dirs, args.out, args.json_path, plots=not args.no_plots)
    except rundir.RunDirError as e:
        raise UsageError(f"compare: {e}") from e
    for p in paths:
        print(f"{'plot' if p.suffix == '.png' else 'wrote'}: {p}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    import signal
    import time

    from emu.benchmarks import (
        ENCRYPTION_TARGET,
        MODULES,
        BenchResult,
        encryption_costs,
        load,
    )
    from emu.stop import on_signals, raise_interrupt

    unknown = [n for n in args.only if n not in MODULES]
    if unknown:
        raise UsageError(f"bench --only {unknown[0]}: unknown; choose from {', '.join(MODULES)}")
    rows: list[BenchResult] = []
    t0 = time.perf_counter()
    # Ctrl-C (or SIGTERM) stops at once, wherever the bench is: a benchmark machine's
    # process may never yield to its event loop, so the loop's own Ctrl-C would wait for it
    with on_signals(raise_interrupt, (signal.SIGINT, signal.SIGTERM)) as got:
        try:
            for name in MODULES:
                if args.only and name not in args.only:
                    continue
                t = time.perf_counter()
                rows.extend(load(name)(args.quick))
                if not args.quiet:
                    print(f"bench {name}: {time.perf_counter() - t:.1f} s", file=sys.stderr)
        except KeyboardInterrupt:
            signum = got[0] if got else signal.SIGINT
            print(f"emu: bench interrupted by {signal.Signals(signum).name}: no table, nothing "
                  f"written", file=sys.stderr)  # fmt: skip
            return 128 + signum
    _print_bench(rows, time.perf_counter() - t0, args.quick)
    costs = encryption_costs(rows)
    by_name = {r.name: r for r in rows}
    for name, cost in costs.items():
        verdict = "pass" if cost < ENCRYPTION_TARGET else "SHORT"
        print(f"swap encryption costs {cost:.2f}x on {name} (CPU time, on / {name}_plain; "
              f"target < {ENCRYPTION_TARGET}x): {verdict}")  # fmt: skip
        on, off = by_name[name].extra, by_name[name + "_plain"].extra
        if "pdscans_per_page" in on and "pdscans_per_page" in off:
            print(f"  daemon work per page written, on / plain: pages scanned "
                  f"{on['pdscans_per_page']} / {off['pdscans_per_page']}, passes "
                  f"{on['pdrevs_per_page']} / {off['pdrevs_per_page']}")  # fmt: skip
    if args.json_path:
        path = Path(args.json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc: dict[str, object] = {"benchmarks": {r.name: r.as_json() for r in rows}}
        if costs:
            doc["encryption_cost"] = {**costs, "target_below": ENCRYPTION_TARGET}
        path.write_text(json.dumps(doc, indent=2))
        print(f"wrote {path}")
    return 0


def _fmt(x: float) -> str:
    return f"{x:,.3g}" if abs(x) < 1e5 else f"{x:,.0f}"


def _print_bench(rows: list[Any], seconds: float = 0.0, quick: bool = False) -> None:
    from rich.console import Console
    from rich.table import Table

    title = "uvm-emu benchmarks (median of repeats; ratio = ours / same-run reference)"
    if seconds:
        title += f", {'quick, ' if quick else ''}{seconds:.0f} s"
    t = Table(title=title)
    for col in ("benchmark", "ours", "unit", "reference", "ratio", "spread", "target", "result",
                "notes"):  # fmt: skip
        t.add_column(col)
    for r in rows:
        mark = "—" if r.passed is None else ("pass" if r.passed else "SHORT")
        t.add_row(
            r.name,
            _fmt(r.value),
            r.unit,
            "" if r.reference is None else _fmt(r.reference),
            "" if r.ratio is None else (f"{r.ratio:.2f}x" if r.ratio >= 0.1 else f"{r.ratio:.3g}x"),
            f"{r.spread:.0%}" if r.spread else "",
            r.target,
            mark,
            getattr(r, "note", ""),
        )
    Console(width=max(160, int(os.environ.get("COLUMNS", "160")))).print(t)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
