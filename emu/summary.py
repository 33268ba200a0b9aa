"""emu.summary: the summary of a run (``summary.json``, docs/summary-schema.md).

:func:`make_summary` gathers it from the stopped machine; :func:`outcome_of` names how the run
ended from what stopped it; :func:`exit_status` is the exit status ``emu run`` gives it.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from typing import Any

from devices.imagedisk import ImageDisk
from emu.clock import Clock, Deadlock
from emu.cpu import CpuContext
from emu.probes import FAULT_KINDS, ProcStats, TimeLimit, WaitProbe, format_traceback
from emu.scenario import Scenario, ScenarioError
from emu.stop import RunControl
from kernel.kernel import Kernel
from kernel.sys.systm import Panic

__all__ = ["EXIT_STATUS", "SUMMARY_SCHEMA", "Summary", "exit_status", "make_summary",
           "outcome_of", "workload_status"]  # fmt: skip

SUMMARY_SCHEMA = "uvm-emu/summary/1"

# `emu run`'s exit status (also in README.md and `emu --help`)
EXIT_STATUS = {
    0: "every workload finished and nothing mismatched",
    1: "the run failed: a workload failed or was cut, a content mismatch, a limit, a deadlock, "
       "a panic or an error",
    2: "bad input (a scenario, a key, a value, a path, a trace): nothing was run or written",
    130: "interrupted by SIGINT (Ctrl-C): the summary says outcome interrupted",
    143: "interrupted by SIGTERM: likewise",
}


class Summary(dict[str, Any]):
    """The run's summary (the same content as summary.json); ``s.outcome`` etc. also work."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _leaves(e: BaseException) -> list[BaseException]:
    if isinstance(e, BaseExceptionGroup):
        return [leaf for sub in e.exceptions for leaf in _leaves(sub)]
    return [e]


def outcome_of(exc: BaseException | None, ctl: RunControl) -> tuple[str, str | None]:
    """``(outcome, error)`` of a run that ended with ``exc`` (None: every process exited).

    A stop asked through ``ctl`` wins over whatever it caused (cancelled tasks, a Stop raised
    into a workload, an error of a thread it cut); then a deadlock, a panic, the virtual-time limit, any other error.
    A ScenarioError (bad input found late) and anything else that is not the run's own
    failure propagate (re-raised here, unwrapped from the task group).
    """
    if exc is None:
        return "ok", None
    if ctl.reason is not None:
        return ctl.reason, ctl.detail
    leaves = _leaves(exc)
    for x in leaves:
        if isinstance(x, ScenarioError):
            raise x
    for cls, outcome in ((Deadlock, "deadlock"), (Panic, "panic"), (TimeLimit, "limit")):
        hit = next((x for x in leaves if isinstance(x, cls)), None)
        if hit is not None:
            return outcome, str(hit)
    first = next((x for x in leaves if isinstance(x, Exception)), None)
    if first is None:  # KeyboardInterrupt, SystemExit, a cancellation nobody asked for
        raise exc
    return "error", f"{type(first).__name__}: {first}"


def run_traceback(exc: BaseException | None, outcome: str) -> str | None:
    """The formatted traceback of what ended the run, for a panic or an error (a user
    daemon's bug shows its own lines); None for any other outcome."""
    if exc is None or outcome not in ("panic", "error"):
        return None
    cls: type[BaseException] = Panic if outcome == "panic" else Exception
    hit = next((x for x in _leaves(exc) if isinstance(x, cls)), None)
    return None if hit is None else "".join(traceback.format_exception(hit))


def workload_status(h: Any, ps: ProcStats) -> str:
    """``error`` (raised, or killed), ``ok`` (returned) or ``cut`` (still running when the
    run stopped: a limit, an interrupt, a deadlock, a panic)."""
    if h.proc.error is not None:
        return "error"
    return "ok" if ps.finished else "cut"


def _error(h: Any, ps: ProcStats) -> str | None:
    e = h.proc.error
    if e is None:
        return None
    return f"{type(e).__name__}: {e}" + (f" (at {ps.where})" if ps.where else "")


def exit_status(s: dict[str, Any], signum: int | None = None) -> int:
    """0 when the run ended ``ok`` with every workload ``ok`` and no mismatch; 128 + the
    signal for an interrupted run; else 1."""
    if s.get("outcome") == "interrupted" and signum is not None:
        return 128 + signum
    ok = s.get("outcome") == "ok" and not (s.get("integrity") or {}).get("mismatches")
    return 0 if ok and all(w.get("status") == "ok" for w in s.get("workloads") or []) else 1


def make_summary(sc: Scenario, k: Kernel | None, clock: Clock, disks: list[ImageDisk],
                 handles: list[Any], stats: dict[int, ProcStats], clusters: dict[int, int],
                 passes: int, outcome: str, error: str | None, wall: float,
                 waits: Sequence[WaitProbe] = (),
                 pdaemon: dict[str, str] | None = None) -> Summary:  # fmt: skip
    """The summary of a stopped run (docs/summary-schema.md)."""
    u = k.uvmexp.as_dict() if k is not None else {}
    io = {"writes": 0, "write_pages": 0, "reads": 0, "read_pages": 0, "errors": 0}
    for d in disks:
        st = d.stats
        io["writes"] += st.writes
        io["write_pages"] += st.write_pages
        io["reads"] += st.reads
        io["read_pages"] += st.read_pages
        io["errors"] += st.errors
    workloads = []
    checked = mism = 0
    for h in handles:
        ps = stats[h.pid]
        pst = h.proc.stats
        ctx: CpuContext = h.ctx
        workloads.append({
            "name": h.name, "pid": h.pid, "kind": ps.kind, "accesses": ctx.accesses,
            "faults": {key: int(pst.get(ukey, 0)) for key, ukey in FAULT_KINDS},
            "traps": ps.faults,
            "fault_latency_hist": {str(b): n for b, n in sorted(ps.lat_hist.items())},
            "status": workload_status(h, ps),
            "error": _error(h, ps),
            "traceback": None if h.proc.error is None
                         else ps.traceback or format_traceback(h.proc.error),
            "pages_checked": h.integrity.pages_checked,
            "mismatches": h.integrity.mismatches,
        })  # fmt: skip
        checked += h.integrity.pages_checked
        mism += h.integrity.mismatches
    return Summary({
        "schema": SUMMARY_SCHEMA,
        "scenario": sc.name,
        "seed": sc.machine.seed,
        "loop": sc.machine.loop,
        "pdaemon": pdaemon if pdaemon is not None else {"name": sc.kernel.pdaemon},
        "outcome": outcome,
        "error": error,
        "ram_pages": sc.machine.ram.pages,
        "swap_pages": sc.machine.swap.pages,
        "virtual_ns": clock.now,
        "wall_s": wall,
        "uvmexp": u,
        "faults": {"zero_fill": u.get("flt_zero", 0), "soft": u.get("flt_soft", 0),
                   "major": u.get("flt_major", 0), "busy_wait": u.get("flt_busywait", 0)},
        "io": {**io, "cluster_pages": {str(n): c for n, c in sorted(clusters.items())}},
        "integrity": {"pages_checked": checked, "mismatches": mism},
        "workloads": workloads,
        "daemon": {"passes": passes, "scans": u.get("pdrevs", 0)},
        **_swapencrypt(k),
        "waits": waits[0].as_summary() if waits else {"count": 0, "total_ns": 0, "by_wmesg": {}},
    })  # fmt: skip


def _swapencrypt(k: Kernel | None) -> dict[str, Any]:
    """The summary's "swapencrypt" section: only for a kernel that had swap encryption on (at
    boot or later), so a run without it writes the summary it always wrote. Counters only:
    no key material."""
    se = k.swapencrypt if k is not None else None
    if se is None or not (se.uvm_doswapencrypt or se.swap_encrypt_initialized):
        return {}
    return {"swapencrypt": {"enable": se.uvm_doswapencrypt, "keyscreated": se.uvm_swpkeyscreated,
                            "keysdeleted": se.uvm_swpkeysdeleted,
                            "pages_encrypted": se.swpencrypted,
                            "pages_decrypted": se.swpdecrypted}}  # fmt: skip
