"""emu.probes: what a machine run measures and guards besides the kernel's own counters.

Per-process fault statistics and the virtual latency of every trap, the waits for memory
(calls of the page daemon's ``uvm_wait`` and the virtual time spent in them), the periodic uvmexp
sample, the virtual-time watchdog, the guard that keeps a workload's exception inside its own
process, the kernel configuration from a scenario's [kernel] section, and the state dump
written after a panic. Used by :class:`emu.machine.Machine`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import structlog

from emu.clock import Clock, current_thread
from emu.config import KernelSection
from emu.cpu import Cpu, CpuContext
from kernel.kernel import Kernel, KernelConfig, KernelCosts
from kernel.sys.systm import Panic

if TYPE_CHECKING:
    from kernel.uvm.uvm_extern import UvmPdaemon

__all__ = [
    "FAULT_KINDS", "ProcStats", "TimeLimit", "WaitProbe", "dump_state", "format_traceback",
    "guard", "kernel_config", "sampler", "time_traps", "watchdog", "where", "write_private",
]  # fmt: skip

log = structlog.get_logger("emu.probes")

_ROOT = Path(__file__).resolve().parent.parent  # the project: paths in tracebacks relative to it

Workload = Callable[..., Awaitable[None]]


class ProcStats:
    """What the machine measures of one process: its traps and their latency, whether its
    workload returned (``finished``: it was not cut by the end of the run), and where its
    error came from (``where``: file:line of the workload's own frame; ``traceback``)."""

    __slots__ = ("faults", "finished", "kind", "lat_hist", "name", "traceback", "where")

    def __init__(self, name: str, kind: str) -> None:
        self.name = name
        self.kind = kind
        self.faults = 0
        self.lat_hist: dict[int, int] = {}
        self.finished = False
        self.where: str | None = None
        self.traceback: str | None = None


FAULT_KINDS = (("zero_fill", "flt_zero"), ("soft", "flt_soft"), ("major", "flt_major"),
                ("busy_wait", "flt_busywait"))  # fmt: skip


class TimeLimit(Exception):
    pass


async def watchdog(clock: Clock, limit: int) -> None:
    await clock.sleep_until(limit, "watchdog", weak=True)
    raise TimeLimit(f"machine.max_virtual_ns = {limit} reached before every process exited")


def guard(fn: Workload, ps: ProcStats) -> Workload:
    """Run a workload so that its own exception ends only its process (recorded as p.error,
    with where it came from in ``ps``); ``ps.finished`` once it returned or raised."""
    home = getattr(getattr(fn, "__code__", None), "co_filename", None)

    async def guarded(p: Any, **params: Any) -> None:
        try:
            await fn(p, **params)
        except Panic:
            raise
        except Exception as e:
            if p.proc.error is None:
                p.proc.error = e
            ps.where, ps.traceback = where(e.__traceback__, home), format_traceback(e)
            log.warning("workload.error", name=p.name, pid=p.pid,
                        error=f"{type(e).__name__}: {e}", where=ps.where,
                        traceback=ps.traceback)  # fmt: skip
        ps.finished = True

    return guarded


def _short(filename: str) -> str:
    """A source path relative to the project when it is inside it (the same on every host)."""
    try:
        return str(Path(filename).resolve().relative_to(_ROOT))
    except ValueError:
        return filename


def where(tb: TracebackType | None, home: str | None) -> str | None:
    """``file:line in function`` of the deepest frame of ``tb`` in the file ``home`` (the
    workload's own source), else of the deepest frame; None without a traceback."""
    frames = traceback.extract_tb(tb)
    if not frames:
        return None
    own = [f for f in frames if f.filename == home]
    f = (own or frames)[-1]
    return f"{_short(f.filename)}:{f.lineno} in {f.name}"


def format_traceback(e: BaseException) -> str:
    """The formatted traceback of ``e`` (from the workload down), project paths shortened."""
    frames = traceback.extract_tb(e.__traceback__)
    for f in frames:
        f.filename = _short(f.filename)
    lines = traceback.format_list(frames) + traceback.format_exception_only(type(e), e)
    return ("Traceback (most recent call last):\n" + "".join(lines)).rstrip("\n")


def time_traps(k: Kernel, cpu: Cpu, clock: Clock, stats: dict[int, ProcStats]) -> None:
    """Wrap the kernel's trap handler to count each process's traps and histogram their
    virtual latency (the kernel logs each major fault itself: ``uvm_fault.pagein``)."""
    inner = cpu.trap_handler
    assert inner is not None

    async def timed(ctx: CpuContext, vaddr: int, is_write: bool) -> None:
        # virtual time as this thread sees it, its unpaid CPU time too (Clock.nsecuptime,
        # inline: a trap is always taken on an emulated thread)
        th = current_thread()
        assert th is not None
        t0 = clock.now + th.debt_ns
        try:
            await inner(ctx, vaddr, is_write)
        finally:
            lat = clock.now + th.debt_ns - t0
            ps = stats.get(getattr(ctx.owner, "p_pid", -1))
            if ps is not None:
                ps.faults += 1
                b = 1 << lat.bit_length()
                ps.lat_hist[b] = ps.lat_hist.get(b, 0) + 1

    cpu.trap_handler = timed


class WaitProbe:
    """The page daemon module as the kernel reaches it (``k.pdaemon``), with ``uvm_wait`` timed.

    Every caller that finds no free page calls ``await k.pdaemon.uvm_wait(k, wmsg)``
    (kernel/uvm/uvm_extern.py), whichever daemon was chosen at boot; this stand-in counts those
    calls by ``wmsg`` and adds up the virtual time each caller spent in them, as the caller sees
    it (its unpaid CPU time included, like the trap latencies). Everything else is the daemon's
    own: the other entry points and attributes pass through unchanged, so the kernel behaves
    the same with or without the probe.
    """

    def __init__(self, inner: UvmPdaemon, clock: Clock) -> None:
        self.inner = inner
        self.count = 0
        self.total_ns = 0
        self.by_wmesg: dict[str, int] = {}
        self._vnow = clock.nsecuptime

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def uvm_pageout(self, k: Kernel) -> None:
        await self.inner.uvm_pageout(k)

    async def uvm_aiodone_daemon(self, k: Kernel) -> None:
        await self.inner.uvm_aiodone_daemon(k)

    async def uvm_wait(self, k: Kernel, wmsg: str) -> None:
        t0 = self._vnow()
        try:
            await self.inner.uvm_wait(k, wmsg)
        finally:
            self.count += 1
            self.total_ns += self._vnow() - t0
            self.by_wmesg[wmsg] = self.by_wmesg.get(wmsg, 0) + 1

    def as_summary(self) -> dict[str, Any]:
        """The summary's ``waits`` object (docs/summary-schema.md)."""
        return {"count": self.count, "total_ns": self.total_ns,
                "by_wmesg": dict(sorted(self.by_wmesg.items()))}  # fmt: skip


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


def dump_state(workdir: Path, k: Kernel | None, exc: object) -> None:
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
