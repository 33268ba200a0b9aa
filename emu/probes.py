"""emu.probes: what a machine run measures and guards besides the kernel's own counters.

Per-process fault statistics and the virtual latency of every trap, the periodic uvmexp
sample, the virtual-time watchdog, the guard that keeps a workload's exception inside its own
process, the kernel configuration from a scenario's [kernel] section, and the state dump
written after a panic. Used by :class:`emu.machine.Machine`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

from emu.clock import Clock
from emu.config import KernelSection
from emu.cpu import Cpu, CpuContext
from kernel.kernel import Kernel, KernelConfig, KernelCosts
from kernel.sys.systm import Panic

__all__ = [
    "FAULT_KINDS", "ProcStats", "TimeLimit", "dump_state", "guard", "kernel_config", "sampler",
    "time_traps", "watchdog", "write_private",
]  # fmt: skip

log = structlog.get_logger("emu.probes")

Workload = Callable[..., Awaitable[None]]


class ProcStats:
    __slots__ = ("faults", "kind", "lat_hist", "name")

    def __init__(self, name: str, kind: str) -> None:
        self.name = name
        self.kind = kind
        self.faults = 0
        self.lat_hist: dict[int, int] = {}


FAULT_KINDS = (("zero_fill", "flt_zero"), ("soft", "flt_soft"), ("major", "flt_major"),
                ("busy_wait", "flt_busywait"))  # fmt: skip


class TimeLimit(Exception):
    pass


async def watchdog(clock: Clock, limit: int) -> None:
    await clock.sleep_until(limit, "watchdog", weak=True)
    raise TimeLimit(f"machine.max_virtual_ns = {limit} reached before every process exited")


def guard(fn: Workload) -> Workload:
    """Run a workload so that its own exception ends only its process (recorded as p.error)."""

    async def guarded(p: Any, **params: Any) -> None:
        try:
            await fn(p, **params)
        except Panic:
            raise
        except Exception as e:
            if p.proc.error is None:
                p.proc.error = e
            log.warning("workload.error", name=p.name, pid=p.pid, error=f"{type(e).__name__}: {e}")

    return guarded


def time_traps(k: Kernel, cpu: Cpu, clock: Clock, stats: dict[int, ProcStats]) -> None:
    """Wrap the kernel's trap handler to count each process's traps and histogram their
    virtual latency (the kernel logs each major fault itself: ``uvm_fault.pagein``)."""
    inner = cpu.trap_handler
    assert inner is not None
    vnow = clock.nsecuptime  # virtual time as this thread sees it: its unpaid CPU time too

    async def timed(ctx: CpuContext, vaddr: int, is_write: bool) -> None:
        t0 = vnow()
        try:
            await inner(ctx, vaddr, is_write)
        finally:
            lat = vnow() - t0
            ps = stats.get(getattr(ctx.owner, "p_pid", -1))
            if ps is not None:
                ps.faults += 1
                b = 1 << max(0, lat.bit_length())
                ps.lat_hist[b] = ps.lat_hist.get(b, 0) + 1

    cpu.trap_handler = timed


async def sampler(k: Kernel, interval: int, m: Any, total: int, handles: list[Any]) -> None:
    """Log the uvmexp counters every ``interval`` ns; report progress to ``m.progress``."""
    u = k.uvmexp
    while True:
        log.info("uvmexp.sample", free=u.free, active=u.active, inactive=u.inactive,
                 paging=u.paging, wired=u.wired, swpginuse=u.swpginuse, swpgonly=u.swpgonly,
                 freemin=u.freemin, freetarg=u.freetarg, inactarg=u.inactarg,
                 pdpageouts=u.pdpageouts, nswget=u.nswget, faults=u.faults)  # fmt: skip
        if m.progress is not None:
            done = sum(1 for h in handles if h.proc.p_stat == "zomb" or h.proc.thread.done)
            m.progress(k.sched.now, done, total)
        await k.sched.sleep(interval, "sampler", weak=True)  # type: ignore[attr-defined]


def kernel_config(kc: KernelSection) -> KernelConfig:
    """The kernel's build options from [kernel]: a key named like a KernelConfig field passes
    as is (a new option needs only its line in KernelSection); ``bufcache = false`` is a
    ``bufcachepercent`` of 0, and ``scan_page_ns`` and ``yield_ns`` go into the costs."""
    opts = {f.name: getattr(kc, f.name) for f in dataclasses.fields(KernelConfig)
            if f.name in kc.__struct_fields__}  # fmt: skip
    opts["bufcachepercent"] = kc.bufcachepercent if kc.bufcache else 0
    return KernelConfig(**opts, costs=KernelCosts(scan_page_ns=kc.scan_page_ns,
                                                  yield_ns=kc.yield_ns))


def write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def dump_state(workdir: Path, k: Kernel | None, exc: BaseException) -> None:
    """After a panic: the panic message and the kernel's queues and counters, for debugging."""
    lines = [f"panic: {exc}"]
    if k is not None:
        lines.append(f"uvmexp: {json.dumps(k.uvmexp.as_dict())}")
        for qname in ("page_active", "page_inactive"):
            q = getattr(k.uvm, qname)
            lines.append(f"{qname} ({len(q)}): " + " ".join(repr(p) for p in list(q)[:200]))
        for pid, p in sorted(k.procs.items()):
            lines.append(f"proc {pid} {p.p_comm} stat={p.p_stat} wmesg={p.p_wmesg}")
    write_private(workdir / "panic.txt", "\n".join(lines).encode())
