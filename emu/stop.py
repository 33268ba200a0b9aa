"""emu.stop: stopping a running machine from outside its event loop.

A run stops early for a signal (SIGINT, SIGTERM), for its wall-clock limit
(``machine.max_wall_s``) or because someone called :meth:`emu.machine.Machine.stop` from
another thread. :class:`RunControl` carries the request to the loop's thread in two steps:

1. Politely: a callback (``call_soon_threadsafe``) cancels the run's task; the clock's task
   group then cancels every emulated thread, the way the end of a run does. Any workload that
   awaits, however rarely, lets the callback run within one step.
2. By force, for a workload that never yields (``while True: pass``): when the callback has
   not run ``GRACE_S`` after the request, a :class:`Stop` is raised into the loop's thread
   with ``PyThreadState_SetAsyncExc``. It lands in the code that holds the loop (the stuck
   workload), ends that thread, and the task group cancels the rest. It is raised again every
   ``GRACE_S`` until the run takes it (an exception raised inside one of asyncio's own
   callbacks is only logged there: see :meth:`RunControl.exception_handler`).

Both work whether the loop runs in the main thread or in a worker thread (``Machine.run()``
called under a running loop), because neither needs the loop's thread to be the main one: a
signal handler (main thread) or the limit's timer (a helper thread) only calls
:meth:`RunControl.request`, which is safe from both.

The reason, the detail for the summary and the signal are kept here; the run reads them when
it stops (:attr:`RunControl.reason`), whichever way the stop reached it.
"""

from __future__ import annotations

import asyncio
import ctypes
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["GRACE_S", "RunControl", "Stop", "on_signals", "raise_interrupt"]

GRACE_S = 0.5  # how long a polite stop may take before it is raised into the loop's thread


class Stop(BaseException):
    """A stop raised into the loop's thread (not an Exception: a workload's ``except
    Exception`` does not swallow it). The reason is on the :class:`RunControl`."""


class RunControl:
    """One run's stop request: who asked, why, and the means to make the loop hear it.

    Use: :meth:`bind` in the loop's thread when the run starts (it also starts the wall-clock
    limit), :meth:`request` from anywhere, :meth:`close` in the loop's thread when the run has
    stopped, before the summary is written.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()  # a signal handler may run while its thread holds it
        self.reason: str | None = None  # "interrupted" or "limit" once a stop is asked
        self.detail: str | None = None  # for the summary's error: what stopped the run
        self.signum: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._tid: int | None = None
        self._heard = False  # the loop ran the polite cancel, or caught the forced Stop
        self._closed = False
        self._urgent = False  # asked twice: do not wait for the polite way
        self._wake = threading.Event()
        self._helper: threading.Thread | None = None
        self._handler: Any = None  # the loop's exception handler before bind

    # --- any thread --------------------------------------------------------------------

    def request(self, reason: str, detail: str, signum: int | None = None) -> None:
        """Ask the run to stop (safe from a signal handler and from any thread); the first
        request's reason and detail are kept, a second one makes the stop urgent."""
        with self._lock:
            if self._closed:
                return
            if self.reason is not None:
                self._urgent = True
            else:
                self.reason, self.detail, self.signum = reason, detail, signum
                if self._loop is not None:
                    self._loop.call_soon_threadsafe(self._cancel)
        self._wake.set()

    # --- the loop's thread -----------------------------------------------------------------

    def bind(self, task: asyncio.Task[Any], max_wall_s: float = 0.0) -> None:
        """Attach to the running loop and the run's task; start the wall-clock limit."""
        with self._lock:
            self._loop = task.get_loop()
            self._task = task
            self._tid = threading.get_ident()
            if self.reason is not None:  # asked before the run started
                self._loop.call_soon(self._cancel)
        self._handler = self._loop.get_exception_handler()
        self._loop.set_exception_handler(self.exception_handler)
        self._helper = threading.Thread(target=self._watch, args=(max_wall_s,),
                                        name="uvm-emu stop", daemon=True)  # fmt: skip
        self._helper.start()

    def heard(self) -> None:
        """The run has taken a forced :class:`Stop`: do not raise another."""
        with self._lock:
            self._heard = True

    def close(self) -> None:
        """The run has stopped: no stop is raised into this thread any more. Call before the
        summary is written; a Stop still pending from the helper fires (and is dropped) here."""
        while True:
            try:
                with self._lock:
                    self._closed = True
                _checkpoint()  # a pending asynchronous exception is raised at this call
                break
            except Stop:
                continue
        self._wake.set()
        if self._helper is not None:
            self._helper.join()
        if self._loop is not None:
            self._loop.set_exception_handler(self._handler)

    def exception_handler(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """The loop's handler for errors in callbacks: a forced Stop that landed in one is not
        an error (it is raised again until the run takes it); the rest goes to the default."""
        if isinstance(context.get("exception"), Stop):
            return
        if self._handler is not None:
            self._handler(loop, context)
        else:
            loop.default_exception_handler(context)

    def _cancel(self) -> None:
        with self._lock:
            if self._closed or self._heard:
                return
            self._heard = True
        if self._task is not None and not self._task.done():
            self._task.cancel()

    # --- the helper thread -----------------------------------------------------------------

    def _watch(self, max_wall_s: float) -> None:
        deadline = time.monotonic() + max_wall_s if max_wall_s > 0 else None
        while True:
            with self._lock:
                if self._closed:
                    return
                asked, heard, urgent = self.reason is not None, self._heard, self._urgent
            if not asked:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    self.request("limit", f"machine.max_wall_s = {max_wall_s:g} s of wall-clock "
                                          "time reached before every process exited")  # fmt: skip
                    continue
                self._wake.wait(left)
                self._wake.clear()
                continue
            if heard:
                self._wake.wait()
                self._wake.clear()
                continue
            if not urgent and self._wake.wait(GRACE_S):
                self._wake.clear()
                continue
            self._force()
            self._wake.wait(GRACE_S)
            self._wake.clear()

    def _force(self) -> None:
        """Raise Stop in the loop's thread, unless the run has heard or closed meanwhile."""
        with self._lock:
            if self._closed or self._heard or self._tid is None or self._loop is None:
                return
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._tid),
                                                       ctypes.py_object(Stop))  # fmt: skip
            loop = self._loop
        try:
            loop.call_soon_threadsafe(_checkpoint)  # wake a loop that waits in select()
        except RuntimeError:  # the loop has closed: nothing left to stop
            pass


def _checkpoint() -> None:
    """A Python call: the interpreter raises a pending asynchronous exception on entry."""


def raise_interrupt(signum: int) -> None:
    """A ``stop`` for :func:`on_signals` that raises KeyboardInterrupt (named after the
    signal) wherever the main thread is: for commands outside a Machine run (a sweep's
    driver, ``emu bench``), where asyncio.Runner's own Ctrl-C only cancels its task, which an
    emulated thread that never yields does not hear until it ends."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextmanager
def on_signals(stop: Callable[[int], None], signums: tuple[int, ...]) -> Iterator[list[int]]:
    """While inside, the signals ``signums`` call ``stop(signum)`` instead of their usual
    action (main thread only; elsewhere nothing changes); yields the signals received."""
    got: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield got
        return

    def handler(signum: int, _frame: Any) -> None:
        got.append(signum)
        stop(signum)

    old = {n: signal.signal(n, handler) for n in signums}
    try:
        yield got
    finally:
        for n, h in old.items():
            signal.signal(n, h)
