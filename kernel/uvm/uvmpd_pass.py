"""uvmpd_pass: the page daemon's pass record and log lines (PORT-only module, no C counterpart).

Every page daemon module (kernel/uvm/uvm_pdaemon.py for 1.105, uvm_pdaemon_1_154.py, a user's
copy of either) reports its work the same way, so that the harness, ``emu analyze`` and ``emu
compare`` read any of them:

- :func:`pass_begin` at the top of each pass of ``uvm_pageout`` (after the daemon woke up):
  snapshots the counters and makes the pass record current (``k.pdpass``, which uvm_check
  reads to allow the unused tail of a swap cluster under construction);
- :func:`log_pageout` once per pageout (a swap cluster or an object pageout): one
  ``uvmpd_scan_inactive.pageout`` line, and the cluster size in the pass record;
- :func:`pass_end` at the end of each pass: charges the pass's CPU time (``pass_ns``), logs
  the pass's canonical ``uvm_pageout.pass`` line, calls the hook ``k.hooks["pdaemon.pass"]``
  with ``(k, delta, clusters)`` (the counter deltas of :data:`PASS_COUNTERS` and the cluster
  sizes), and runs uvm_check on DIAGNOSTIC kernels;
- :func:`aiodone_end` after each batch of the aiodone daemon: its log line and uvm_check.

The event names and keys are documented in docs/log-schema.md; a daemon may add keys to its
pass line (``pass_end(..., shortage=...)``). The logger is the daemons' ``uvm.pdaemon``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import structlog

import kernel.uvm.uvm_check as uvm_check
import kernel.uvm.uvm_pager as uvm_pager

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.uvm.uvm import UvmConstraintRange
    from kernel.uvm.uvm_pmemrange import UvmPmalloc

__all__ = ["PASS_COUNTERS", "PassSnap", "aiodone_end", "log_pageout", "pass_begin", "pass_end"]

log = structlog.get_logger("uvm.pdaemon")


@dataclass(slots=True)
class PassSnap:
    """Counters at the start of a daemon pass, for its canonical log line."""

    t_ns: int
    counters: dict[str, int]
    start: dict[str, int]
    clusters: list[int] = field(default_factory=list)


# the uvmexp counters whose change over a pass the pass line and the hook report
PASS_COUNTERS: Final = (
    "pdrevs", "pdscans", "pdreact", "pdbusy", "pdfreed", "pdpageouts", "pdpending",
    "pddeact", "pdanscan", "pdobscan", "pgswapout", "pdswout",
)  # fmt: skip


def pass_begin(k: Kernel) -> PassSnap:
    """A pass starts: snapshot the counters; the record is ``k.pdpass`` until pass_end."""
    u = k.uvmexp
    snap = PassSnap(
        k.sched.now,
        {c: getattr(u, c) for c in PASS_COUNTERS},
        {"free_start": u.free, "inactive_start": u.inactive, "active_start": u.active,
         "paging_start": u.paging},
    )  # fmt: skip
    k.pdpass = snap
    return snap


def log_pageout(k: Kernel, swap_backed: bool, start: int, npages: int, result: int) -> None:
    """One pageout was started (a swap cluster at slot ``start``, or an object pageout)."""
    snap = k.pdpass
    if snap is not None:
        snap.clusters.append(npages)
    log.info(
        "uvmpd_scan_inactive.pageout",
        swap=swap_backed,
        swslot=start if swap_backed else 0,
        npages=npages,
        result=_pager_result_name(result),
        paging=k.uvmexp.paging,
    )


def _pager_result_name(result: int) -> str:
    return uvm_pager.VmPagerStatus(result).name.removeprefix("VM_PAGER_")


def pass_end(
    k: Kernel,
    snap: PassSnap,
    pma: UvmPmalloc | None,
    constraint: UvmConstraintRange,
    **extra: Any,
) -> None:
    """A pass is over: charge its CPU time, log its line (``extra`` keys after
    ``constraint_high``), call the ``pdaemon.pass`` hook, check the VM on DIAGNOSTIC."""
    u = k.uvmexp
    delta = {c: getattr(u, c) - v for c, v in snap.counters.items()}
    k.pdpass = None
    k.sched.charge(k.config.costs.pass_ns)
    log.info(
        "uvm_pageout.pass",
        scanned=delta["pdrevs"] > 0,
        pma=pma is not None,
        constraint_high=constraint.ucr_high if constraint.ucr_high < (1 << 63) else -1,
        **extra,
        free=u.free,
        inactive=u.inactive,
        active=u.active,
        paging=u.paging,
        freetarg=u.freetarg,
        inactarg=u.inactarg,
        clusters=snap.clusters,
        **snap.start,
        **delta,
    )
    hook = k.hooks.get("pdaemon.pass")
    if hook is not None:
        hook(k, delta, snap.clusters)
    if k.config.diagnostic and k.config.check_every_pass:
        uvm_check.uvm_check_pass(k)


def aiodone_end(k: Kernel, nbufs: int, npages: int, free: int) -> None:
    """A batch of the aiodone daemon is done (``free`` as it sampled it): log, check."""
    log.info(
        "uvm_aiodone_daemon.batch", nbufs=nbufs, npages=npages, free_sampled=free,
        woke="pagedaemon" if free <= k.uvmexp.reserve_kernel else "free",
        paging=k.uvmexp.paging,
    )  # fmt: skip
    if k.config.diagnostic and k.config.check_every_pass:
        uvm_check.uvm_check_pass(k)
