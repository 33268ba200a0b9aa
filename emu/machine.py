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

``run()`` works inside a running event loop too (Jupyter, IPython): the machine then runs on
its own loop in a worker thread; async code may ``summary = await m.arun()`` instead. A
machine runs once. An existing ``run_dir`` is refused unless ``force=True``.

A workload raising an exception ends its own process (the error is recorded in the summary);
the other processes and the kernel run on. A kernel panic, a deadlock or a failure of the
machine itself ends the run with ``outcome`` ``panic``, ``deadlock`` or ``error``; a limit
(``max_virtual_ns``, ``max_wall_s``) with ``limit``; Ctrl-C, or :meth:`Machine.stop` from
another thread, with ``interrupted`` (Ctrl-C then raises KeyboardInterrupt once the summary is
written; ``m.summary`` has it).
"""

from __future__ import annotations

import asyncio
import datetime
import inspect
import json
import os
import signal
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

from devices.faults import FaultConfig
from devices.imagedisk import INLINE_PAGES
from devices.timing import TimingModel, make_model
from emu import process
from emu.board import Board, run_loop
from emu.clock import Clock
from emu.eventfiles import LEVELS, EventLevel
from emu.eventlog import SCHEMA, EventLog
from emu.probes import (
    ProcStats,
    WaitProbe,
    dump_state,
    guard,
    kernel_config,
    sampler,
    time_traps,
    watchdog,
    write_private,
)
from emu.rundir import EVENT_LOGS, SUMMARY
from emu.scenario import Scenario, ScenarioError, validate
from emu.stop import RunControl, Stop, on_signals
from emu.summary import Summary, make_summary, outcome_of, run_traceback, workload_status
from emu.workloads import WORKLOADS, check_params
from kernel.arch.emu import machdep
from kernel.kernel import Kernel

__all__ = ["Machine", "Summary"]

RUN_FILES = (*EVENT_LOGS, SUMMARY, "swap0.img")  # what a run writes first

log = structlog.get_logger("emu.machine")

Workload = Callable[..., Awaitable[None]]


class Machine:
    """An emulated machine: RAM, MMU, CPU, swap disk(s), the kernel, and workloads.

    ``ram`` and ``swap`` are sizes: ``"16MiB"``, ``"300pages"``, or an int number of bytes
    (``swap=0``: no swap). The other keyword arguments mirror the scenario sections:
    ``kernel`` ([kernel] keys), ``device_params`` (timing-model parameters), ``faults``
    (fault-injection keys), and the [machine] keys ``access_ns``, ``fault_ns``,
    ``quantum_ns``, ``sample_interval_ns``, ``max_virtual_ns``, ``max_wall_s``,
    ``swap_devices``. Bad values raise :class:`ScenarioError` (a ValueError; a TypeError too
    for a wrong type or name), before anything is written. ``run_dir``: where the run's files
    go; an existing one is refused (ScenarioError) unless ``force=True``. ``events``
    (``"full"`` or ``"compact"``) and ``compress`` (zstd) choose the event log
    (emu/eventfiles.py).
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
        events: EventLevel = "full",
        compress: bool = False,
        **machine: Any,
    ) -> None:
        data: dict[str, Any] = {
            "machine": {"ram": ram, "swap": swap, "seed": seed, "loop": loop, **machine},
            "device": {"model": device, **(device_params or {}), **(faults or {})},
            "kernel": dict(kernel or {}),
        }
        self._setup(validate(data, "<api>", name, python=True), run_dir, force, log_level,
                    keep_images, events, compress)  # fmt: skip

    def _setup(self, sc: Scenario, run_dir: str | os.PathLike[str] | None, force: bool,
               log_level: str, keep_images: bool, events: str, compress: bool) -> None:  # fmt: skip
        self._prepared = False  # run_dir made for this run by emu.harness (which sets it)
        self.scenario = sc
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.force = force
        self.log_level = log_level
        self.keep_images = keep_images
        self._attached: list[tuple[str, str, Workload, dict[str, Any]]] = []
        self.kernel: Kernel | None = None  # the booted kernel, after run()
        self.pdaemon: dict[str, str] = {"name": sc.kernel.pdaemon}  # + "sha256" for a file
        self.progress: Callable[[int, int, int], None] | None = None  # (t_ns, done, total)
        self.ram_pages = sc.machine.ram.pages
        self.swap_pages = sc.machine.swap.pages
        self.summary: Summary | None = None  # after run()
        self._disks = self._disk_configs()
        self._ctl = RunControl()
        self._started = False
        self._check_run_dir()
        if events not in LEVELS:
            raise ScenarioError(f"events = {events!r}: use {' or '.join(map(repr, LEVELS))}")
        self.events, self.compress = events, compress

    def _check_run_dir(self) -> None:
        """Refuse, before anything is written, a run directory that is a file, or that exists
        (one ``emu run`` prepared: that holds a run), unless ``force``. At construction and
        again at run()."""
        d = self.run_dir
        if d is None:
            return
        if d.exists() and not d.is_dir():
            raise ScenarioError(f"run_dir {d} is a file, not a directory; choose a directory")
        held = not self._prepared or any((d / f).exists() for f in RUN_FILES)
        if d.exists() and held and not self.force:
            raise ScenarioError(f"run directory {d} already exists; choose another run_dir, "
                                "or pass force=True to overwrite the run in it")  # fmt: skip

    def _disk_configs(self) -> list[tuple[int, TimingModel, FaultConfig]]:
        """Each swap disk's size, timing model and faults, checked now (no file is made)."""
        sc = self.scenario
        dc = sc.device
        fk = dc.faults()
        fk["max_image_bytes"] = fk["max_image_bytes"] or None
        ndev = sc.machine.swap_devices if self.swap_pages else 0  # swap = 0: no swap device
        out = []
        for i in range(ndev):
            try:
                model = make_model(dc.model, **dc.model_params())
                faults = FaultConfig.from_mapping({**fk, "seed": sc.machine.seed * 1000 + i})
            except ValueError as e:
                raise ScenarioError(f"{sc.source}: [device]: {e}") from e
            out.append((self.swap_pages // ndev + (1 if i < self.swap_pages % ndev else 0),
                        model, faults))  # fmt: skip
        return out

    @classmethod
    def from_scenario(
        cls, sc: Scenario, run_dir: Path | None = None, log_level: str = "info", force: bool = False,
        *, events: EventLevel = "full", compress: bool = False,
    ) -> Machine:
        """The machine of a validated scenario."""
        m = cls.__new__(cls)
        m._setup(sc, run_dir, force, log_level, False, events, compress)
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
        """Run the machine until every process has exited (or a limit, a deadlock, a panic,
        a stop); return the summary.

        Inside a running event loop (a notebook) the machine runs on its own loop in a
        worker thread, with the same result. In the main thread, Ctrl-C stops the run, writes
        its summary (``outcome`` ``interrupted``, also in ``m.summary``), then raises
        KeyboardInterrupt (unless the caller has its own SIGINT handler).
        """
        self._begin()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            return self._run_in_thread()
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return self._run_loop()  # the caller has its own (emu run: a clean stop)
        with on_signals(self.stop, (signal.SIGINT,)) as got:  # main thread only
            s = self._run_loop()
        if got:
            raise KeyboardInterrupt
        return s

    async def arun(self) -> Summary:
        """:meth:`run` for callers already inside an event loop: ``s = await m.arun()``. The
        machine then shares the caller's loop (a deterministic run all the same)."""
        self._begin()
        return await self._arun()

    def stop(self, signum: int | None = None, detail: str | None = None) -> None:
        """Stop the running machine (safe from a signal handler or another thread): the run
        ends soon with ``outcome`` ``interrupted``, its summary written. Before run(): the
        run stops as it starts."""
        if detail is None:
            detail = (f"interrupted by {signal.Signals(signum).name}" if signum is not None
                      else "interrupted by Machine.stop()")  # fmt: skip
        self._ctl.request("interrupted", detail, signum)

    @property
    def stop_signal(self) -> int | None:
        """The signal that interrupted the run (:meth:`stop`'s ``signum``), or None."""
        return self._ctl.signum

    def _begin(self) -> None:
        if self._started:
            raise RuntimeError("Machine.run: this machine has already run (its summary is "
                               "m.summary); make a new Machine to run again")  # fmt: skip
        self._check_run_dir()
        self._started = True

    def _run_loop(self) -> Summary:
        try:
            return run_loop(self._arun(), self.scenario.machine.loop)
        except (Stop, asyncio.CancelledError):  # a forced stop that hit the loop itself: the
            if self.summary is None:  # run, cancelled on the way out, wrote its summary
                raise
            return self.summary

    def _run_in_thread(self) -> Summary:
        """Run on a new event loop in a worker thread (the caller's thread has a running
        loop); Ctrl-C meanwhile stops the run, then raises KeyboardInterrupt."""
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["summary"] = self._run_loop()
            except BaseException as e:  # handed to the caller's thread
                box["error"] = e

        t = threading.Thread(target=target, name=f"uvm-emu {self.scenario.name}", daemon=True)
        t.start()
        interrupted = False
        while t.is_alive():
            try:
                t.join()
            except KeyboardInterrupt:
                interrupted = True
                self.stop(signal.SIGINT)
        if "error" in box or interrupted:
            raise box.get("error") or KeyboardInterrupt()
        summary: Summary = box["summary"]
        return summary

    async def _arun(self) -> Summary:
        sc = self.scenario
        mc, dc, kc = sc.machine, sc.device, sc.kernel
        task = asyncio.current_task()
        assert task is not None, "Machine.arun: not in a task"
        wall0 = time.perf_counter()
        tmp: tempfile.TemporaryDirectory[str] | None = None
        if self.run_dir is None:
            tmp = tempfile.TemporaryDirectory(prefix="uvm-emu-")
            workdir = Path(tmp.name)
        else:
            workdir = self.run_dir
            workdir.mkdir(parents=True, exist_ok=True)
        evlog = EventLog(
            workdir / ("events.jsonl.zst" if self.compress else "events.jsonl")
            if self.run_dir is not None else None, self.log_level,
            compact=self.events == "compact", compress=self.compress,
        )  # fmt: skip
        board = Board(self.ram_pages, access_ns=mc.access_ns, fault_ns=mc.fault_ns,
                      quantum_ns=max(1, mc.quantum_ns))  # fmt: skip
        clock, cpu, disks = board.clock, board.cpu, board.disks
        evlog.configure(clock)
        k: Kernel | None = None
        stats: dict[int, ProcStats] = {}
        handles: list[Any] = []
        clusters: dict[int, int] = {}
        passes = [0]
        waits: list[WaitProbe] = []
        ctl = self._ctl
        ctl.bind(task, mc.max_wall_s)
        exc: BaseException | None = None
        self.pdaemon = machdep.pdaemon_identity(kc.pdaemon)  # checked by validate already
        try:
            log.info("run.start", schema=SCHEMA, scenario=sc.name, seed=mc.seed,
                     ram_pages=self.ram_pages, swap_pages=self.swap_pages, loop=mc.loop,
                     device=dc.model, pdaemon=self.pdaemon,
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
                waits.append(WaitProbe(k.pdaemon, clock))
                k.pdaemon = waits[0]
                c.spawn(sampler, k, mc.sample_interval_ns, self, len(self._attached),
                        handles, name="sampler", daemon=True)  # fmt: skip
                if mc.max_virtual_ns:
                    c.spawn(watchdog, c, mc.max_virtual_ns, name="watchdog", daemon=True)
                for name, kind, fn, params in self._attached:
                    ps = ProcStats(name, kind)
                    h = process.spawn(k, name, guard(fn, ps), **params)
                    stats[h.pid] = ps
                    handles.append(h)
                    log.info("workload.start", name=name, pid=h.pid, kind=kind)

            await clock.run(setup)
        except BaseException as e:  # named by outcome_of below
            exc = e
        ctl.heard()
        ctl.close()  # no stop reaches this thread from here on
        if ctl.reason is not None and task.cancelling():
            task.uncancel()
        board.close()  # the files' disks (one descriptor each), the swap disks, the RAM
        try:
            outcome, error = outcome_of(exc, ctl)
        except BaseException:
            evlog.close()
            if tmp is not None:
                tmp.cleanup()
            raise
        if outcome == "panic" and self.run_dir is not None:
            dump_state(workdir, k, error)
        tb = run_traceback(exc, outcome)
        wall = time.perf_counter() - wall0
        summary = make_summary(sc, k, clock, disks, handles, stats, clusters, passes[0],
                               outcome, error, wall, waits, self.pdaemon)  # fmt: skip
        if tb is not None:  # a panic or an exception ended the run: where it came from
            summary["traceback"] = tb
        for h in handles:
            status = workload_status(h, stats[h.pid])
            log.info("workload.exit", name=h.name, pid=h.pid, status=status,
                     error=None if h.proc.error is None else str(h.proc.error))  # fmt: skip
        log.info("run.end", outcome=outcome, error=error, virtual_ns=clock.now, wall_s=wall,
                 **({"traceback": tb} if tb is not None else {}))  # fmt: skip
        folded = evlog.close()
        if folded is not None:
            summary["events"] = folded
        if self.run_dir is not None:
            write_private(workdir / "summary.json", json.dumps(summary, indent=2).encode())
            if not self.keep_images:
                for d in disks:
                    Path(d.path).unlink(missing_ok=True)
        if tmp is not None:
            tmp.cleanup()
        self.summary = summary
        return summary

    def _add_disks(self, board: Board, workdir: Path) -> None:
        for i, (npages, model, faults) in enumerate(self._disks):
            try:
                board.add_swap(workdir / f"swap{i}.img", npages, model, faults, name=f"sd{i}",
                               inline_max_pages=INLINE_PAGES, force=self.force)  # fmt: skip
            except FileExistsError as e:
                raise ScenarioError(f"swap image {e.filename} already exists; use another "
                                    "run directory or force") from e  # fmt: skip
            except OSError as e:
                raise ScenarioError(f"cannot create swap image in {workdir}: {e.strerror}") from e
