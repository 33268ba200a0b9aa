"""emu.soak: run a scenario back to back and watch the host (``emu soak``).

The soak runs a scenario (the built-in ``soak``: every stock workload kind at about 3x
overcommit, with a 0.1 % read and write error rate) back to back, a new seed each run, in one
process, and watches the host: resident set size (VmRSS) and open descriptors.
Each run is an audited run (:func:`emu.reliability.audited_run`): every swap I/O completed,
``uvm_check`` clean, every page read back intact.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, TextIO

from emu.reliability import BASELINE_GUARD_NS, audited_run, failed_processes
from emu.scenario import Scenario, ScenarioError

__all__ = ["SoakReport", "cmd_soak", "host_rss_kib", "print_soak", "soak"]

RSS_GROWTH: Final = 0.20  # the soak fails if VmRSS grows more than this after the first run


def host_rss_kib() -> int:
    """This process's resident set size (VmRSS in /proc/self/status), KiB; 0 if unknown."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


@dataclass
class SoakReport:
    runs: int = 0
    pages_checked: int = 0
    mismatches: int = 0
    passes: int = 0
    ios: int = 0
    faults_injected: int = 0
    killed: int = 0  # processes ended by a BusError (a failed read): expected
    rss_start_kib: int = 0
    rss_first_kib: int = 0  # after the first run: the baseline of the growth check
    rss_end_kib: int = 0
    fds_first: int = 0
    fds_end: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def rss_growth(self) -> float:
        return self.rss_end_kib / self.rss_first_kib - 1.0 if self.rss_first_kib else 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


def soak(
    sc: Scenario,
    minutes: float,
    seed: int = 1,
    out: TextIO | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> SoakReport:
    """Run ``sc`` back to back (seed, seed+1, ...) until ``minutes`` have passed (at least
    once); each run is audited. Prints one line per run to ``out`` and returns the totals."""
    import gc

    out = out or sys.stdout
    rep = SoakReport(rss_start_kib=host_rss_kib())
    t_end = clock() + minutes * 60.0
    guard = sc.machine.max_virtual_ns or BASELINE_GUARD_NS  # a hung run ends, and fails
    while rep.runs == 0 or clock() < t_end:
        run_seed = seed + rep.runs
        s, audit, _ = audited_run(sc, machine__seed=run_seed, machine__max_virtual_ns=guard)
        rep.runs += 1
        u, io = s["integrity"], s["io"]
        rep.pages_checked += u["pages_checked"]
        rep.mismatches += u["mismatches"]
        rep.passes += s["daemon"]["passes"]
        rep.ios += io["writes"] + io["reads"]
        rep.faults_injected += io["errors"]
        failed = failed_processes(s)
        bus = [f for f in failed if f.split(": ", 1)[1].startswith("BusError")]
        rep.killed += len(bus)
        what = [] if s["outcome"] == "ok" else [f"outcome {s['outcome']}: {s['error']}"]
        if u["mismatches"]:
            what.append(f"{u['mismatches']} mismatches")
        if audit.check != "ok" and s["outcome"] == "ok":
            what.append(f"uvm_check: {audit.check}")
        if io["errors"] == 0 and bus:
            what.append("a BusError without an injected fault")
        what += [f"process {f}" for f in failed if f not in bus]
        rep.problems += [f"run {rep.runs} (seed {run_seed}): {w}" for w in what]
        gc.collect()
        rss = host_rss_kib()
        if rep.runs == 1:
            rep.rss_first_kib, rep.fds_first = rss, _open_fds()
        print(f"run {rep.runs:4d} seed {run_seed:5d}: {s['outcome']:8s} "
              f"pages checked {u['pages_checked']:6d} mismatches {u['mismatches']} "
              f"passes {s['daemon']['passes']:5d} I/Os {io['writes'] + io['reads']:5d} "
              f"faults {io['errors']:2d} killed {len(bus)} wall {s['wall_s']:5.1f} s "
              f"rss {rss / 1024:6.1f} MiB", file=out, flush=True)  # fmt: skip
    rep.rss_end_kib, rep.fds_end = host_rss_kib(), _open_fds()
    if rep.rss_growth > RSS_GROWTH:
        rep.problems.append(f"host RSS grew {rep.rss_growth:.0%} after the first run "
                            f"({rep.rss_first_kib} -> {rep.rss_end_kib} KiB)")  # fmt: skip
    if rep.fds_end > rep.fds_first:
        rep.problems.append(f"open descriptors grew from {rep.fds_first} to {rep.fds_end}")
    return rep


def print_soak(rep: SoakReport, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    print(f"soak: {rep.runs} runs, {rep.pages_checked} pages checked, {rep.mismatches} "
          f"mismatches, {rep.passes} daemon passes, {rep.ios} swap I/Os, {rep.faults_injected} "
          f"faults injected, {rep.killed} processes killed by a failed read", file=out)  # fmt: skip
    print(f"host RSS: {rep.rss_start_kib / 1024:.1f} MiB at start, {rep.rss_first_kib / 1024:.1f}"
          f" MiB after the first run, {rep.rss_end_kib / 1024:.1f} MiB at the end "
          f"({rep.rss_growth:+.0%}); open descriptors {rep.fds_first} -> {rep.fds_end}",
          file=out)  # fmt: skip
    for p in rep.problems:
        print(f"FAIL: {p}", file=out)
    print("soak: ok" if rep.ok else f"soak: FAILED ({len(rep.problems)} problems)", file=out)


def cmd_soak(args: Any) -> int:
    """``emu soak [--minutes M] [--seed S] [--scenario NAME] [--set K=V]``."""
    from emu.scenario import load_scenario

    if args.minutes < 0:
        raise ScenarioError(f"soak --minutes {args.minutes}: must be >= 0")
    sc = load_scenario(args.scenario, list(args.set))
    print(f"soak: scenario {sc.name}, {args.minutes:g} minutes, seeds from {args.seed}; "
          f"host RSS {host_rss_kib() / 1024:.1f} MiB", flush=True)  # fmt: skip
    rep = soak(sc, args.minutes, args.seed)
    print_soak(rep)
    return 0 if rep.ok else 1
