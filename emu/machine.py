"""emu.machine: build the emulated machine, boot the kernel, run workloads, summarise.

The Python API::

    from emu.machine import Machine

    async def writer(p, pages=1000):
        base = await p.mmap(pages * 4096)
        for i in range(pages):
            await p.store(base + i * 4096, b"hello")

    m = Machine(ram="16MiB", swap="64MiB", seed=1, device="ssd", loop="uvloop")
    m.attach(writer, name="w", pages=6000)
    summary = m.run()          # also written to RUN_DIR/summary.json when run_dir is given
    print(summary["outcome"], summary["uvmexp"]["pdpageouts"])

A workload raising an exception ends its own process (the error is recorded in the summary);
the other processes and the kernel run on. A kernel panic, a deadlock or a failure of the
machine itself ends the run with ``outcome`` ``panic``, ``deadlock`` or ``error``.
"""

from __future__ import annotations

import asyncio
import datetime
import inspect
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

from devices.faults import FaultConfig
from devices.imagedisk import INLINE_PAGES, ImageDisk
from devices.timing import make_model
from emu import process
from emu.board import Board, run_loop
from emu.clock import Clock, Deadlock
from emu.cpu import CpuContext
from emu.eventlog import SCHEMA, EventLog
from emu.probes import (
    FAULT_KINDS,
    ProcStats,
    TimeLimit,
    dump_state,
    guard,
    kernel_config,
    sampler,
    time_traps,
    watchdog,
    write_private,
)
from emu.scenario import Scenario, ScenarioError, validate
from emu.workloads import WORKLOADS, check_params
from kernel.arch.emu import machdep
from kernel.kernel import Kernel
from kernel.sys.systm import Panic

__all__ = ["Machine", "Summary", "run_scenario"]

SUMMARY_SCHEMA = "uvm-emu/summary/1"

log = structlog.get_logger("emu.machine")

Workload = Callable[..., Awaitable[None]]


class Summary(dict[str, Any]):
    """The run's summary (the same content as summary.json); ``s.outcome`` etc. also work."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Machine:
    """An emulated machine: RAM, MMU, CPU, swap disk(s), the kernel, and workloads.

    ``ram`` and ``swap`` are sizes: ``"16MiB"``, ``"300pages"``, or an int number of bytes
    (``swap=0``: no swap). The other keyword arguments mirror the scenario sections:
    ``kernel`` ([kernel] keys), ``device_params`` (timing-model parameters), ``faults``
    (fault-injection keys), and the [machine] keys ``access_ns``, ``fault_ns``,
    ``quantum_ns``, ``sample_interval_ns``, ``max_virtual_ns``, ``swap_devices``. Bad values
    raise :class:`ScenarioError` (a ValueError; a TypeError too for a wrong type or name).
    """

    def __init__(
        self,
        ram: str | int = "64MiB",
        swap: str | int = "256MiB",
        seed: int = 1,
        device: str = "ssd",
        loop: str = "uvloop",
        *,
        run_dir: str | os.PathLike[str] | None = None,
        force: bool = False,
        log_level: str = "info",
        kernel: dict[str, Any] | None = None,
        device_params: dict[str, Any] | None = None,
        faults: dict[str, Any] | None = None,
        name: str = "api",
        keep_images: bool = False,
        **machine: Any,
    ) -> None:
        data: dict[str, Any] = {
            "machine": {"ram": ram, "swap": swap, "seed": seed, "loop": loop, **machine},
            "device": {"model": device, **(device_params or {}), **(faults or {})},
            "kernel": dict(kernel or {}),
        }
        self._setup(validate(data, "<api>", name, python=True), run_dir, force, log_level,
                    keep_images)  # fmt: skip

    def _setup(self, sc: Scenario, run_dir: str | os.PathLike[str] | None, force: bool,
               log_level: str, keep_images: bool) -> None:  # fmt: skip
        self.scenario = sc
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.force = force
        self.log_level = log_level
        self.keep_images = keep_images
        self._attached: list[tuple[str, str, Workload, dict[str, Any]]] = []
        self.kernel: Kernel | None = None  # the booted kernel, after run()
        self.progress: Callable[[int, int, int], None] | None = None  # (t_ns, done, total)
        self.ram_pages = sc.machine.ram.pages
        self.swap_pages = sc.machine.swap.pages

    @classmethod
    def from_scenario(
        cls, sc: Scenario, run_dir: Path | None = None, log_level: str = "info", force: bool = False
    ) -> Machine:
        m = cls.__new__(cls)
        m._setup(sc, run_dir, force, log_level, keep_images=False)
        for w in sc.workloads:
            for i in range(w.count):
                m.attach(w.kind, name=w.name if w.count == 1 else f"{w.name}.{i}", **w.params)
        return m

    def attach(self, fn: Workload | str, name: str | None = None, **params: Any) -> None:
        """Attach ``fn`` (``async def fn(p, **params)``, or a stock workload's kind name) as a
        process called ``name``; it starts when :meth:`run` does.

        => ``params`` are checked against ``fn``'s signature and annotations now: an unknown
           name or a value of the wrong type raises TypeError, one out of range ValueError
        => a ``fn`` that is not a coroutine function raises TypeError
        """
        kind = "custom"
        if isinstance(fn, str):
            if fn not in WORKLOADS:
                raise ScenarioError(
                    f"attach: unknown stock workload {fn!r}; kinds: {', '.join(sorted(WORKLOADS))}"
                )
            kind, fn = fn, WORKLOADS[fn]
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"attach: {fn!r} is not a coroutine function; a workload is "
                            "`async def fn(p, **params)`")  # fmt: skip
        name = str(name or getattr(fn, "__name__", "proc"))
        if any(a[0] == name for a in self._attached):
            raise ScenarioError(f"attach: a process named {name!r} is already attached")
        label = kind if kind != "custom" else getattr(fn, "__name__", kind)
        params = check_params(fn, params, f"{self.scenario.source}: workload '{name}' ({label})")
        self._attached.append((name, kind, fn, params))

    # --- running ---------------------------------------------------------------------------

    def run(self) -> Summary:
        """Run the machine until every process has exited; return the summary."""
        return run_loop(self.arun(), self.scenario.machine.loop)

    async def arun(self) -> Summary:
        """:meth:`run` for callers already inside an event loop."""
        sc = self.scenario
        mc, dc, kc = sc.machine, sc.device, sc.kernel
        wall0 = time.perf_counter()
        tmp: tempfile.TemporaryDirectory[str] | None = None
        if self.run_dir is None:
            tmp = tempfile.TemporaryDirectory(prefix="uvm-emu-")
            workdir = Path(tmp.name)
        else:
            workdir = self.run_dir
            workdir.mkdir(parents=True, exist_ok=True)
        evlog = EventLog(
            workdir / "events.jsonl" if self.run_dir is not None else None, self.log_level
        )
        board = Board(self.ram_pages, access_ns=mc.access_ns, fault_ns=mc.fault_ns,
                      quantum_ns=max(1, mc.quantum_ns))  # fmt: skip
        clock, cpu, disks = board.clock, board.cpu, board.disks
        evlog.configure(clock)
        outcome, error = "ok", None
        k: Kernel | None = None
        stats: dict[int, ProcStats] = {}
        handles: list[Any] = []
        clusters: dict[int, int] = {}
        passes = [0]
        try:
            log.info("run.start", schema=SCHEMA, scenario=sc.name, seed=mc.seed,
                     ram_pages=self.ram_pages, swap_pages=self.swap_pages, loop=mc.loop,
                     device=dc.model,
                     wall_start=datetime.datetime.now(datetime.UTC).isoformat())  # fmt: skip
            self._add_disks(board, workdir)
            config = kernel_config(kc)
            filedir = workdir / "files"
            filedir.mkdir(exist_ok=True)
            k = board.boot(config, filedir=str(filedir), seed=mc.seed)
            self.kernel = k

            def on_pass(_k: Kernel, delta: dict[str, int], cl: list[int]) -> None:
                passes[0] += 1
                for n in cl:
                    clusters[n] = clusters.get(n, 0) + 1

            k.hooks["pdaemon.pass"] = on_pass

            def setup(c: Clock, tg: asyncio.TaskGroup) -> None:
                assert k is not None
                machdep.start(k)
                time_traps(k, cpu, clock, stats)
                c.spawn(sampler, k, mc.sample_interval_ns, self, len(self._attached),
                        handles, name="sampler", daemon=True)  # fmt: skip
                if mc.max_virtual_ns:
                    c.spawn(watchdog, c, mc.max_virtual_ns, name="watchdog", daemon=True)
                for name, kind, fn, params in self._attached:
                    h = process.spawn(k, name, guard(fn), **params)
                    stats[h.pid] = ProcStats(name, kind)
                    handles.append(h)
                    log.info("workload.start", name=name, pid=h.pid, kind=kind)

            await clock.run(setup)
        except* Deadlock as eg:
            outcome, error = "deadlock", str(eg.exceptions[0])
        except* Panic as eg:
            outcome, error = "panic", str(eg.exceptions[0])
            dump_state(workdir, k, eg.exceptions[0]) if self.run_dir is not None else None
        except* TimeLimit as eg:
            outcome, error = "error", str(eg.exceptions[0])
        except* ScenarioError:
            raise
        except* Exception as eg:
            outcome, error = "error", f"{type(eg.exceptions[0]).__name__}: {eg.exceptions[0]}"
        finally:
            board.close()  # the files' disks (one descriptor each), the swap disks, the RAM
        wall = time.perf_counter() - wall0
        summary = self._summary(
            k, clock, disks, handles, stats, clusters, passes[0], outcome, error, wall
        )
        for h in handles:
            log.info("workload.exit", name=h.name, pid=h.pid,
                     status="error" if h.proc.error else "ok",
                     error=None if h.proc.error is None else str(h.proc.error))  # fmt: skip
        log.info("run.end", outcome=outcome, error=error, virtual_ns=clock.now, wall_s=wall)
        evlog.close()
        if self.run_dir is not None:
            write_private(workdir / "summary.json", json.dumps(summary, indent=2).encode())
            if not self.keep_images:
                for d in disks:
                    Path(d.path).unlink(missing_ok=True)
        if tmp is not None:
            tmp.cleanup()
        return summary

    def _add_disks(self, board: Board, workdir: Path) -> None:
        sc = self.scenario
        dc = sc.device
        model_params = dc.model_params()
        fk = dc.faults()
        fk["max_image_bytes"] = fk["max_image_bytes"] or None
        ndev = sc.machine.swap_devices if self.swap_pages else 0  # swap = 0: no swap device
        for i in range(ndev):
            try:
                model = make_model(dc.model, **model_params)
                faults = FaultConfig.from_mapping({**fk, "seed": sc.machine.seed * 1000 + i})
            except ValueError as e:
                raise ScenarioError(f"{sc.source}: [device]: {e}") from e
            n = self.swap_pages // ndev + (1 if i < self.swap_pages % ndev else 0)
            try:
                board.add_swap(workdir / f"swap{i}.img", n, model, faults, name=f"sd{i}",
                               inline_max_pages=INLINE_PAGES, force=self.force)  # fmt: skip
            except FileExistsError as e:
                raise ScenarioError(
                    f"swap image {e.filename} already exists; use another run directory or --force"
                ) from e
            except OSError as e:
                raise ScenarioError(f"cannot create swap image in {workdir}: {e.strerror}") from e

    def _summary(self, k: Kernel | None, clock: Clock, disks: list[ImageDisk], handles: list[Any],
                 stats: dict[int, ProcStats], clusters: dict[int, int], passes: int,
                 outcome: str, error: str | None, wall: float) -> Summary:  # fmt: skip
        sc = self.scenario
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
                "status": "error" if h.proc.error is not None else "ok",
                "error": None if h.proc.error is None else f"{type(h.proc.error).__name__}: {h.proc.error}",
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
            "outcome": outcome,
            "error": error,
            "ram_pages": self.ram_pages,
            "swap_pages": self.swap_pages,
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


# --- entry point of `emu run` -------------------------------------------------------------


def run_scenario(sc: Scenario, run_dir: Path, log_level: str = "info", progress: bool = False,
                 force: bool = True) -> Summary:  # fmt: skip
    """Run a validated scenario into ``run_dir`` (used by ``emu run``)."""
    m = Machine.from_scenario(sc, run_dir, log_level, force=force)
    if not progress:
        return m.run()
    from rich.progress import BarColumn, Progress, TextColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total} processes done, t={task.fields[t]}")) as bar:  # fmt: skip
        task = bar.add_task(sc.name, total=len(m._attached), t="0 ms")

        def update(t_ns: int, done: int, total: int) -> None:
            bar.update(task, completed=done, t=f"{t_ns / 1e6:,.0f} ms")

        m.progress = update
        return m.run()
