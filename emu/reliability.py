"""emu.reliability: the audited run and the I/O-error sweep (``emu ioerr-sweep``).

An audited run (also used by the soak, :mod:`emu.soak`) runs a scenario through :class:`emu.machine.Machine` with one more process attached last,
the *auditor*. It sleeps until every other process has exited, then until the page daemon
and the aiodone daemon are idle with no page in transit and no request on a swap device, and
then runs ``uvm_check`` on the whole machine. So every audited run ends with all its swap I/O
completed (the device's request count, which ``fail_nth_io`` counts, equals the summary's
``io.writes + io.reads``) and with the kernel checked after its processes are gone: a swap
slot nobody owns, a bad slot back in the free map or a page on the wrong queue is reported.
The auditor also records the kind of each request the first swap device decides (read or
write, block, pages), so a sweep can say which I/O it failed.

The sweep is SQLite's I/O-error test applied to the pager: count a scenario's swap I/Os
once, then run it again once per k with ``device.fail_nth_io = k``. A run is clean when it
does not hang (deadlock, or ``machine.max_virtual_ns`` reached: the guard is 20 times the
virtual time of the fault-free run), ends ``ok``, has no integrity mismatch and a clean
``uvm_check`` (DIAGNOSTIC, ``check_every_pass`` and ``check_full`` are forced on), and its failed processes
are exactly what the failed I/O implies: none for a write (the pages stay dirty and go to
other slots), and for a read the process whose page-in failed, with a BusError (SIGBUS), plus
any process that shares the lost page and touches it later.

Only the swap devices inject faults: a file mapping's vnode is a disk of its own without a
fault injector, and its I/O is neither counted in the summary's ``io`` nor by
``fail_nth_io``. With several swap devices each counts its own requests, so the sweep
refuses them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Final, TextIO

from msgspec.structs import replace

from devices.faults import FaultInjector
from devices.imagedisk import ImageDisk
from emu.machine import Machine, Summary
from emu.scenario import Scenario, ScenarioError
from kernel.arch.emu import harness, machdep
from kernel.sys.proc import P_SYSTEM
from kernel.sys.systm import Panic

__all__ = [
    "AUDITOR",
    "Audit",
    "SweepReport",
    "SweepRow",
    "attach_auditor",
    "audited_run",
    "failed_processes",
    "sweep",
]

AUDITOR: Final = "_audit"  # the auditor's process name (left out of every report)
GUARD_FACTOR: Final = 20  # a swept run may take this many times the fault-free virtual time
GUARD_MIN_NS: Final = 50_000_000
BASELINE_GUARD_NS: Final = 600_000_000_000  # 10 virtual minutes: fault-free and soak runs
DRAIN_NS: Final = 100_000  # the auditor's poll period while the daemons finish (virtual)
_FAULT_KEYS: Final = ("fail_write_rate", "fail_read_rate", "fail_write_slots",
                      "fail_read_slots", "fail_nth_io")  # fmt: skip


@dataclass
class Audit:
    """What the auditor saw: ``check`` is "ok", the panic of the final ``uvm_check``, or
    "not run" (the run ended first); ``ios`` is (write, blkno, npages) per request of the
    first swap device, None for one decided before the auditor started."""

    check: str = "not run"
    ios: list[tuple[bool, int, int] | None] = field(default_factory=list)
    bad_slots: int = 0


class _Recorder(FaultInjector):
    """A device's fault injector that also logs each request it decides (same decisions)."""

    __slots__ = ("log",)

    def __init__(self, old: FaultInjector, log: list[tuple[bool, int, int] | None]) -> None:
        super().__init__(old.cfg)
        self.rng.setstate(old.rng.getstate())
        self.nio = old.nio
        self.log = log
        log.extend([None] * old.nio)

    def decide(self, write: bool, blkno: int, npages: int, image_bytes_after: int) -> int:
        self.log.append((write, blkno, npages))
        return super().decide(write, blkno, npages, image_bytes_after)


async def _auditor(p: Any, audit: Audit) -> None:
    """The auditor process: wait for the others and for the daemons, then check everything."""
    k = p.k
    disks: list[ImageDisk] = list(k.md.swapdevs)
    if disks and disks[0].faults is not None:
        disks[0].faults = _Recorder(disks[0].faults, audit.ios)
    others = [q for q in list(k.procs.values()) if q is not p.proc and not q.p_flag & P_SYSTEM]
    for q in others:
        await machdep.wait(k, q, "audit")
    while not _idle(k, disks):
        await machdep.nanosleep(k, DRAIN_NS, "audit_drain")
    audit.bad_slots = _bad_slots(k)
    try:
        harness.uvm_check(k)
    except Panic as e:
        audit.check = str(e)
    else:
        audit.check = "ok"


def _idle(k: Any, disks: list[ImageDisk]) -> bool:
    uvm = k.uvm
    return (
        k.uvmexp.paging == 0
        and len(uvm.aio_done) == 0
        and all(d.outstanding == 0 for d in disks)
        and (uvm.pagedaemon_proc is None or uvm.pagedaemon_proc.p_wmesg == "pgdaemon")
        and (uvm.aiodoned_proc is None or uvm.aiodoned_proc.p_wmesg == "aiodoned")
    )


def _bad_slots(k: Any) -> int:
    if k is None or k.swap is None:
        return 0
    return sum(int(sdp.swd_npgbad) for spp in k.swap.swap_priority for sdp in spp.spi_swapdev)


def attach_auditor(m: Machine) -> Audit:
    """Attach the auditor to ``m`` (after every other process); its findings fill the
    returned Audit when ``m`` runs. It shows in the summary as process ``AUDITOR``."""
    audit = Audit()
    m.attach(_auditor, name=AUDITOR, audit=audit)
    return audit


def audited_run(sc: Scenario, **overrides: Any) -> tuple[Summary, Audit, Machine]:
    """Run a copy of ``sc`` with the auditor; ``overrides`` are ``section__key=value``
    (``device__fail_nth_io=3``). Returns the summary (auditor left out), the audit and the
    machine (``m.kernel`` is the booted kernel)."""
    changes: dict[str, dict[str, Any]] = {}
    for name, value in overrides.items():
        section, key = name.split("__", 1)
        changes.setdefault(section, {})[key] = value
    sc = replace(sc, **{section: replace(getattr(sc, section), **kv)
                        for section, kv in changes.items()})  # fmt: skip
    m = Machine.from_scenario(sc)
    audit = attach_auditor(m)
    s = m.run()
    s["workloads"] = [w for w in s["workloads"] if w["name"] != AUDITOR]
    if audit.check == "not run":
        audit.bad_slots = _bad_slots(m.kernel)
    return s, audit, m


def _hung(s: Summary) -> bool:
    return s["outcome"] == "deadlock" or str(s["error"] or "").startswith("machine.max_virtual_ns")


def failed_processes(s: Summary) -> list[str]:
    # "cut" (still running when a deadlock or a limit stopped the run) is not a failure of its own
    return [f"{w['name']}: {w['error']}" for w in s["workloads"] if w["status"] == "error"]


# --- the I/O-error sweep ---------------------------------------------------------------------


@dataclass
class SweepRow:
    """One run of the sweep: the k-th swap I/O failed (k = 0: the fault-free run)."""

    k: int
    io: str  # "read", "write" or "?" (the kind of the k-th request, from the fault-free run)
    blkno: int
    npages: int
    outcome: str
    hung: bool
    mismatches: int
    pages_checked: int
    uvm_check: str  # "ok" or the panic (during the run or in the final check)
    failed: list[str]  # "name: error" of each process that did not exit cleanly
    ios: int  # swap I/Os of this run
    bad_slots: int
    error: str | None
    wall_s: float
    clean: bool = False
    why: str = ""


@dataclass
class SweepReport:
    scenario: str
    seed: int
    ios: int  # requests the swap device decided in the fault-free run (fail_nth_io counts these)
    summary_ios: int  # io.writes + io.reads of the fault-free run's summary
    baseline: SweepRow
    rows: list[SweepRow]

    @property
    def clean(self) -> bool:
        return self.baseline.clean and all(r.clean for r in self.rows)

    def totals(self) -> dict[str, int]:
        rows = self.rows
        return {
            "runs": len(rows),
            "faults_injected": sum(1 for r in rows if r.io != "?"),
            "read_faults": sum(1 for r in rows if r.io == "read"),
            "write_faults": sum(1 for r in rows if r.io == "write"),
            "pages_checked": sum(r.pages_checked for r in rows),
            "mismatches": sum(r.mismatches for r in rows),
            "hung": sum(1 for r in rows if r.hung),
            "unclean": sum(1 for r in rows if not r.clean),
            "killed_processes": sum(len(r.failed) for r in rows),
        }

    def as_json(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "seed": self.seed, "ios": self.ios,
                "summary_ios": self.summary_ios, "clean": self.clean, "totals": self.totals(),
                "baseline": asdict(self.baseline), "rows": [asdict(r) for r in self.rows]}  # fmt: skip


def _row(
    k: int, kind: tuple[bool, int, int] | None, s: Summary, audit: Audit, ios: int
) -> SweepRow:
    check = audit.check
    if s["outcome"] == "panic":
        check = str(s["error"])
    elif check == "not run" and s["outcome"] == "ok":
        check = "not run: the auditor did not finish"
    row = SweepRow(
        k=k, io="?" if kind is None else ("write" if kind[0] else "read"),
        blkno=-1 if kind is None else kind[1], npages=0 if kind is None else kind[2],
        outcome=s["outcome"], hung=_hung(s), mismatches=s["integrity"]["mismatches"],
        pages_checked=s["integrity"]["pages_checked"], uvm_check=check, failed=failed_processes(s),
        ios=ios, bad_slots=audit.bad_slots, error=s["error"], wall_s=round(s["wall_s"], 3),
    )  # fmt: skip
    problems = []
    if row.hung:
        problems.append("hung")
    elif row.outcome != "ok":
        problems.append(f"outcome {row.outcome}")
    if row.mismatches:
        problems.append(f"{row.mismatches} mismatches")
    if row.uvm_check != "ok":
        problems.append("uvm_check")
    bus = all(f.split(": ", 1)[1].startswith("BusError") for f in row.failed)
    if k == 0 or row.io == "write":
        if row.failed:
            problems.append("a process failed")
    elif row.io == "read" and (not row.failed or not bus):
        problems.append("a failed read must end the faulting process with a BusError")
    elif not bus:
        problems.append("a process failed with something else than a BusError")
    row.clean = not problems
    row.why = ", ".join(problems)
    return row


def _check_sweepable(sc: Scenario) -> None:
    if sc.machine.swap_devices != 1:
        raise ScenarioError(
            f"{sc.source}: ioerr-sweep: machine.swap_devices = {sc.machine.swap_devices}: "
            "each device counts fail_nth_io on its own; sweep a scenario with one swap device"
        )
    for key in _FAULT_KEYS:
        if value := getattr(sc.device, key):
            raise ScenarioError(
                f"{sc.source}: ioerr-sweep: device.{key} = {value!r}: the sweep injects "
                f"its own faults; remove it (e.g. --set device.{key}=0)"
            )


def sweep(
    sc: Scenario,
    stride: int = 1,
    max_runs: int | None = None,
    on_row: Callable[[SweepRow, int], None] | None = None,
) -> SweepReport:
    """Run ``sc`` once to count its swap I/Os, then once per k failing exactly the k-th.

    => k runs over 1, 1 + stride, ... up to the count; ``max_runs`` keeps that many, evenly
       spread; ``on_row(row, total)`` is called after each run
    => raises ScenarioError for a scenario that cannot be swept (see _check_sweepable)
    """
    if stride < 1 or (max_runs is not None and max_runs < 1):
        raise ScenarioError("ioerr-sweep: --stride and --max-runs must be at least 1")
    _check_sweepable(sc)
    sc = replace(sc, kernel=replace(sc.kernel, diagnostic=True, check_every_pass=True,
                                    check_full=True))  # fmt: skip
    base_guard = sc.machine.max_virtual_ns or BASELINE_GUARD_NS
    s, audit, _ = audited_run(sc, machine__max_virtual_ns=base_guard)
    kinds = audit.ios
    io = s["io"]
    baseline = _row(0, None, s, audit, len(kinds))
    guard = max(GUARD_FACTOR * s["virtual_ns"], GUARD_MIN_NS)
    ks = list(range(1, len(kinds) + 1, stride))
    if max_runs is not None and len(ks) > max_runs:
        ks = [ks[i * len(ks) // max_runs] for i in range(max_runs)]
    rows: list[SweepRow] = []
    if baseline.clean:
        for k in ks:
            s, audit, _ = audited_run(sc, device__fail_nth_io=k, machine__max_virtual_ns=guard)
            rows.append(_row(k, kinds[k - 1], s, audit, len(audit.ios)))
            if on_row is not None:
                on_row(rows[-1], len(ks))
    return SweepReport(sc.name, sc.machine.seed, len(kinds), io["writes"] + io["reads"],
                       baseline, rows)  # fmt: skip


def print_sweep(rep: SweepReport, file: TextIO | None = None) -> None:
    """The sweep's table (one row per run) and its totals."""
    from rich.console import Console
    from rich.table import Table

    con = Console(file=file or sys.stdout, width=max(120, int(os.environ.get("COLUMNS", "120"))))
    t = Table(title=f"ioerr-sweep {rep.scenario} (seed {rep.seed}): {rep.ios} swap I/Os, "
                    f"{len(rep.rows)} runs")  # fmt: skip
    for col in ("k", "failed I/O", "outcome", "mismatches", "uvm_check", "hung", "killed",
                "I/Os", "result"):  # fmt: skip
        t.add_column(col, overflow="fold")
    for r in [rep.baseline, *rep.rows]:
        what = "none" if r.k == 0 else f"{r.io} {r.npages}p @{r.blkno}"
        t.add_row(str(r.k), what, r.outcome, str(r.mismatches), r.uvm_check[:60],
                  "HUNG" if r.hung else "no", ", ".join(_short(f) for f in r.failed), str(r.ios),
                  "clean" if r.clean else f"FAIL: {r.why}")  # fmt: skip
    con.print(t)
    tot = rep.totals()
    con.print(
        f"swept {rep.ios} I/Os (summary io.writes+io.reads {rep.summary_ios}) in "
        f"{tot['runs']} runs: {tot['faults_injected']} faults injected ({tot['write_faults']} "
        f"writes, {tot['read_faults']} reads), {tot['pages_checked']} pages checked, "
        f"{tot['mismatches']} mismatches, {tot['hung']} hung, {tot['killed_processes']} "
        f"processes killed by a failed read, {tot['unclean']} unclean"
    )
    if not rep.baseline.clean:
        con.print(f"the fault-free run is not clean ({rep.baseline.why}): nothing swept")


def _short(failed: str) -> str:
    """ "scan: BusError: read at ..." -> "scan: BusError"."""
    name, _, error = failed.partition(": ")
    return f"{name}: {error.partition(':')[0]}"


# --- the command line (emu/cli.py parses, these run) ---------------------------------------------


def cmd_ioerr_sweep(args: Any) -> int:
    """``emu ioerr-sweep SCENARIO [--json FILE] [--stride N] [--max-runs N] [--set K=V]``."""
    import json
    from pathlib import Path

    from emu.scenario import load_scenario

    sc = load_scenario(args.scenario, list(args.set))
    path = Path(args.json_path) if args.json_path else None
    if path is not None:  # refuse a path we cannot write before the first run, not after
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ScenarioError(f"ioerr-sweep --json {path}: cannot create its directory: "
                                f"{e.strerror}; choose another path") from e  # fmt: skip
        if not os.access(path.parent, os.W_OK) or path.is_dir():
            raise ScenarioError(f"ioerr-sweep --json {path}: not writable; choose another path")
    tty = sys.stderr.isatty()

    def progress(row: SweepRow, total: int) -> None:
        if tty:
            print(f"\rioerr-sweep: k={row.k} ({total} runs)", end="", file=sys.stderr, flush=True)

    rep = sweep(sc, args.stride, args.max_runs, progress)
    if tty:
        print(file=sys.stderr)
    print_sweep(rep)
    if path is not None:
        try:
            path.write_text(json.dumps(rep.as_json(), indent=2))
        except OSError as e:
            raise ScenarioError(f"ioerr-sweep --json {path}: cannot write it: {e.strerror}") from e
        print(f"wrote {path}")
    return 0 if rep.clean else 1
