"""emu: the command line.

    emu run [SCENARIO] [--ram R] [--swap S] [--seed N] [--loop L] [--out DIR] [--set K=V]...
            [--trace FORMAT:PATH] [--force] [--log-level LEVEL]
    emu scenarios [--workloads]
    emu analyze RUN_DIR [RUN_DIR2] [--out DIR]
    emu bench [--quick] [--json FILE] [--only NAME]...

Bad input (a scenario, a key, a value, a path) exits with status 2 and one message that
names the input and the fix. A run whose outcome is not ``ok`` exits with status 1.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from emu.scenario import ScenarioError, builtin_names, load_scenario


class UsageError(Exception):
    """Bad input outside the scenario itself (paths, flags): exit status 2."""


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="emu", description="OpenBSD's page daemon on an emulated machine"
    )
    sub = ap.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="run a scenario (a built-in name or a TOML file)")
    r.add_argument("scenario", nargs="?", default="default")
    r.add_argument("--ram", help='emulated RAM, e.g. "64MiB" (machine.ram)')
    r.add_argument("--swap", help='swap size, e.g. "256MiB" (machine.swap)')
    r.add_argument("--seed", type=int, help="seed (machine.seed)")
    r.add_argument("--loop", choices=["uvloop", "asyncio"], help="event loop (machine.loop)")
    r.add_argument("--out", default="runs", help="parent directory of the run directory")
    r.add_argument("--run-dir", help="exact run directory (must not exist unless --force)")
    r.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    r.add_argument("--trace", action="append", default=[], metavar="FORMAT:PATH",
                   help="replay a memory trace as one more workload")  # fmt: skip
    r.add_argument("--force", action="store_true", help="reuse an existing run directory")
    r.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    r.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    r.add_argument("--quiet", action="store_true", help="no progress bar or tables")

    s = sub.add_parser("scenarios", help="list the built-in scenarios")
    s.add_argument("--workloads", action="store_true", help="also list the stock workloads")

    a = sub.add_parser("analyze", help="tables and plots of one run, or two side by side")
    a.add_argument("run_dir")
    a.add_argument("run_dir2", nargs="?")
    a.add_argument("--out", help="where to write the plots (default: the first run dir)")

    b = sub.add_parser("bench", help="benchmarks against same-run references")
    b.add_argument("--quick", action="store_true")
    b.add_argument("--json", dest="json_path")
    b.add_argument("--only", action="append", default=[])
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "run":
            return _cmd_run(args)
        if args.cmd == "scenarios":
            return _cmd_scenarios(args)
        if args.cmd == "analyze":
            return _cmd_analyze(args)
        if args.cmd == "bench":
            return _cmd_bench(args)
    except (ScenarioError, UsageError) as e:
        print(f"emu: {e}", file=sys.stderr)
        return 2
    return 2  # pragma: no cover - argparse enforces a command


def _cmd_run(args: argparse.Namespace) -> int:
    from emu.machine import prepare_run_dir, run_scenario

    overrides = list(args.set)
    flags = (("ram", args.ram), ("swap", args.swap), ("seed", args.seed), ("loop", args.loop))
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
        from emu.scenario import WorkloadSpec

        params = {"path": str(Path(path).resolve()), "fmt": fmt}
        sc.workloads.append(WorkloadSpec("trace_replay", f"trace{len(sc.workloads)}", 1, params))
    run_dir = prepare_run_dir(sc, Path(args.out), args.run_dir and Path(args.run_dir), args.force)
    progress = not args.quiet and sys.stdout.isatty()
    summary = run_scenario(sc, run_dir, log_level=args.log_level, progress=progress)
    if not args.quiet:
        from emu import analyze

        paths = analyze.analyze(run_dir, plots=not args.no_plots)
        for p in paths:
            print(f"plot: {p}")
        print(f"run directory: {run_dir}")
    return 0 if summary["outcome"] == "ok" else 1


def _cmd_scenarios(args: argparse.Namespace) -> int:
    for name in builtin_names():
        sc = load_scenario(name)
        kinds = ", ".join(f"{w.name}({w.kind}{'x' + str(w.count) if w.count > 1 else ''})"
                          for w in sc.workloads)  # fmt: skip
        print(f"{name:12s} ram={sc.machine['ram']} swap={sc.machine['swap']} "
              f"device={sc.device['model']} workloads: {kinds}")  # fmt: skip
    if args.workloads:
        from emu.workloads import describe

        print()
        print(describe())
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from emu import analyze

    for d in (args.run_dir, args.run_dir2):
        if d is not None and not (Path(d) / "summary.json").exists():
            raise UsageError(f"analyze: {d!r} is not a run directory (no summary.json in it)")
    out = Path(args.out) if args.out else None
    paths = analyze.analyze(
        Path(args.run_dir), Path(args.run_dir2) if args.run_dir2 else None, out=out
    )
    for p in paths:
        print(f"plot: {p}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from emu.benchmarks import MODULES, BenchResult

    unknown = [n for n in args.only if n not in MODULES]
    if unknown:
        raise UsageError(f"bench --only {unknown[0]}: unknown; choose from {', '.join(MODULES)}")
    rows: list[BenchResult] = []
    for name, modpath in MODULES.items():
        if args.only and name not in args.only:
            continue
        mod: Any = importlib.import_module(modpath)
        rows.extend(mod.run(args.quick))
    _print_bench(rows)
    if args.json_path:
        path = Path(args.json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"benchmarks": {r.name: r.as_json() for r in rows}}, indent=2))
        print(f"wrote {path}")
    return 0


def _print_bench(rows: list[Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="uvm-emu benchmarks (median of repeats; ratio = ours / same-run reference)")
    for col in ("benchmark", "ours", "unit", "reference", "ratio", "target", "result"):
        t.add_column(col)
    for r in rows:
        mark = "—" if r.passed is None else ("pass" if r.passed else "SHORT")
        t.add_row(
            r.name,
            f"{r.value:,.3g}",
            r.unit,
            "" if r.reference is None else f"{r.reference:,.3g}",
            "" if r.ratio is None else f"{r.ratio:.2f}x",
            r.target,
            mark,
        )
    Console(width=max(100, int(os.environ.get("COLUMNS", "100")))).print(t)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
