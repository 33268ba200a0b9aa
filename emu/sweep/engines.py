"""emu.sweep.engines: where cells run. One small interface, two engines.

An :class:`Engine` takes the cells' tasks and the bytes of the input files they need (by
sha256) and yields each cell's :class:`~emu.sweep.cells.Result` as it finishes, in any order:
the packed run directory, or the error. At most a few cells per worker are in flight at once,
so the driver holds only a handful of results at a time. ``close(cancel=True)`` stops what is
still running (Ctrl-C) and leaves no worker behind.

- :class:`PoolEngine` (the default): a local process pool of ``jobs`` workers, forked from a
  server that imported the machine once, each worker reused for cell after cell.
- :class:`emu.sweep.ray_engine.RayEngine` (``--ray [ADDRESS]``): Ray tasks on a local instance
  or on a cluster; input files go into the object store once.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol

from emu.sweep.cells import Result, Task, run_task
from emu.sweep.spec import SweepError

__all__ = ["Engine", "PoolEngine", "default_jobs"]


class Engine(Protocol):
    """Run these cells; yield each one's result (its run directory, packed) as it finishes."""

    name: str
    where: str  # for the user: what runs the cells

    def run(self, tasks: Iterable[Task], blobs: dict[str, bytes]) -> Iterator[Result]: ...

    def close(self, cancel: bool = False) -> None: ...


def default_jobs() -> int:
    """The cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


_BLOBS: dict[str, bytes] = {}


def _worker_init(blobs: dict[str, bytes]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver stops the workers itself
    _BLOBS.update(blobs)


def _worker_run(task: Task) -> Result:
    return run_task(task, _BLOBS.__getitem__)


class PoolEngine:
    """Cells on a local pool of ``jobs`` reused worker processes."""

    name = "pool"

    def __init__(self, jobs: int | None = None) -> None:
        self.jobs = max(1, jobs or default_jobs())
        self._ex: ProcessPoolExecutor | None = None
        self.where = f"a local pool of {self.jobs} worker{'s' if self.jobs > 1 else ''}"

    def _start(self, blobs: dict[str, bytes]) -> ProcessPoolExecutor:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["emu.sweep.cells"])
        self._ex = ProcessPoolExecutor(self.jobs, mp_context=ctx, initializer=_worker_init,
                                       initargs=(blobs,))  # fmt: skip
        return self._ex

    def run(self, tasks: Iterable[Task], blobs: dict[str, bytes]) -> Iterator[Result]:
        ex = self._start(blobs)
        todo = iter(tasks)
        pending: dict[Future[Result], str] = {}

        def fill() -> None:
            while len(pending) < 2 * self.jobs and (t := next(todo, None)) is not None:
                pending[ex.submit(_worker_run, t)] = t.cell

        fill()
        served = True  # a result came back since the pool (re)started
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            broken = False
            for f in done:
                cell = pending.pop(f)
                try:
                    res = f.result()
                    served = True
                except BrokenProcessPool as e:  # a worker died (killed, out of memory)
                    if not served:
                        self.close()
                        raise SweepError(
                            f"the worker processes die before running any cell ({e}); a "
                            "script that calls sweep() needs `if __name__ == \"__main__\":`"
                        ) from e
                    broken, served = True, False
                    res = Result(cell=cell, error=f"the worker process running it died: {e}")
                yield res
            if broken:  # every cell in flight is lost with the pool: report them, go on
                for cell in pending.values():
                    yield Result(cell=cell, error="its worker pool broke (another cell's worker "
                                                  "died); rerun with --retry-failed")
                pending.clear()
                self.close()
                ex = self._start(blobs)
            fill()
        self.close()

    def close(self, cancel: bool = False) -> None:
        ex, self._ex = self._ex, None
        if ex is None:
            return
        if cancel:
            ex.shutdown(wait=False, cancel_futures=True)
            stop = getattr(ex, "terminate_workers", None)  # Python 3.14
            if stop is not None:
                stop()
            else:
                for p in list((getattr(ex, "_processes", None) or {}).values()):
                    p.terminate()
        ex.shutdown(wait=True)
