"""emu.harness: ``emu run`` around :class:`emu.machine.Machine`: the run directory made only
once every check has passed, SIGINT and SIGTERM turned into a clean stop, and the progress
shown as a bar on a terminal or as a line every few seconds on stderr elsewhere."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from emu.machine import Machine
from emu.scenario import Scenario
from emu.stop import on_signals
from emu.summary import Summary

__all__ = ["PROGRESS_EVERY_S", "Progress", "run_scenario"]

Progress = Literal["off", "bar", "lines"]
PROGRESS_EVERY_S = 5.0  # wall-clock seconds between progress lines off a terminal


def run_scenario(sc: Scenario, run_dir: Path | Callable[[], Path], log_level: str = "info",
                 progress: Progress = "off", force: bool = True,
                 machine: Machine | None = None) -> Summary:  # fmt: skip
    """Run a validated scenario into ``run_dir`` (``emu run``, the benchmarks).

    ``run_dir`` may be a function that makes the directory: it is called after the machine
    is built, so input refused there (``ScenarioError``) leaves nothing behind. SIGINT and
    SIGTERM stop the run (:meth:`Machine.stop`): the summary says ``interrupted`` and
    ``machine.stop_signal`` which signal. ``machine``: the one built from ``sc`` already.
    """
    m = machine if machine is not None else Machine.from_scenario(sc, None, log_level, force)
    m.run_dir = run_dir() if callable(run_dir) else run_dir
    m._prepared = True
    with on_signals(m.stop, (signal.SIGINT, signal.SIGTERM)):
        if progress == "lines":
            return _with_lines(m)
        if progress == "bar":
            return _with_bar(m)
        return m.run()


def _with_lines(m: Machine) -> Summary:
    """A plain line on stderr every ``PROGRESS_EVERY_S`` wall-clock seconds."""
    last = [time.monotonic()]

    def update(t_ns: int, done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            print(f"emu: {m.scenario.name}: {done}/{total} processes done, "
                  f"t={t_ns / 1e6:,.0f} ms virtual", file=sys.stderr, flush=True)  # fmt: skip

    m.progress = update
    return m.run()


def _with_bar(m: Machine) -> Summary:
    from rich.progress import BarColumn, Progress, TextColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total} processes done, t={task.fields[t]}")) as bar:  # fmt: skip
        task = bar.add_task(m.scenario.name, total=len(m._attached), t="0 ms")

        def update(t_ns: int, done: int, total: int) -> None:
            bar.update(task, completed=done, t=f"{t_ns / 1e6:,.0f} ms")

        m.progress = update
        return m.run()
