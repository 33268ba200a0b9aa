"""emu.clock: virtual time and the machine's scheduler.

The machine runs on virtual time in nanoseconds, the way QEMU's ``-icount`` mode does. Nothing
that decides what the machine does reads the wall clock or calls ``asyncio.sleep``: not the
kernel, not ``devices/``, not emu's hardware (``clock``, ``ram``, ``mmu``, ``cpu``) or workloads.
The harness reads it only to report how long things took on the host: ``wall_*`` fields of a
run (``emu.machine``), the soak's duration (``emu.soak``), ``emu bench`` and the benchmarks; and
around the machine, never inside it, to stop a run at ``machine.max_wall_s`` (``emu.stop``),
to flush the event log (``emu.eventlog``) and to pace progress lines (``emu.harness``): none of
these changes what an event says or the order of events.

State machine, in prose (asyncio ``locks.py`` style):

* Every thread (a kernel thread or a user process) is an asyncio task started with
  :meth:`Clock.spawn`. A thread is *runnable* until it blocks in :meth:`Clock.wait`, and runnable
  again from the moment someone calls :meth:`Clock.wake` on its :class:`Waiter` (even before the
  asyncio task actually resumes). ``runnable`` counts runnable threads exactly, because every
  block goes through ``wait`` and every unblock through ``wake``.
* Time stands still while any thread is runnable. When ``runnable`` drops to zero the idle loop
  pops the earliest event from a heap of ``(time, seq, event)`` (ties broken by ``seq``, as
  SimPy's ``eid`` does), moves ``now`` to its time and fires it. A timer wakes a waiter; an
  I/O completion runs its callback synchronously, as an interrupt handler would.
* An I/O event is not fired before its real I/O has finished: if it is the next event and the
  thread pool has not reported back yet, the idle loop waits for that report. A report that
  arrives early is only recorded, so the order of real completions never shows.
* If no thread is runnable and no event is pending while a non-daemon thread is alive, that is
  a deadlock: :class:`Deadlock` is raised with the name of every blocked thread and what it
  waits on.
* The last thread to block does the idle loop's work itself, in the idle loop's context,
  before it suspends (:meth:`Clock._fire_inline`): it fires the events that are due, as the
  idle loop would, until one makes a thread runnable. If that thread is itself, alone, it
  goes on without suspending at all: a page-in whose completion time is known, or a CPU
  debt paid while nothing else runs, costs no event-loop round trip. Otherwise the wake-ups
  it made reach the event loop in the order they were made, from one callback queued where
  the idle loop's own would have been, so the threads resume exactly as before. Every
  ``INLINE_MAX`` inline steps in a row it lets the event loop run once (signals, stops).
* CPU time is charged as per-thread *debt* (:meth:`charge`): the fast path only adds to an
  integer; :meth:`pay` turns the debt into a timed sleep at a yield point. A thread that blocks
  with debt left is queued at once (so it misses no wakeup) but resumes no earlier than
  ``now + debt``: its CPU was still busy. Each thread behaves as if it had a CPU of its own.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["INLINE_MAX", "Clock", "Deadlock", "IoEvent", "Thread", "Waiter", "current_thread"]

INLINE_MAX = 64  # inline idle steps in a row before the event loop runs once (module doc)

_current: contextvars.ContextVar[Thread | None] = contextvars.ContextVar(
    "emu_thread", default=None
)


# The emulated thread running now (None outside any thread): the context variable's own
# ``get``, so the CPU's per-access check costs no Python frame.
current_thread: Callable[[], Thread | None] = _current.get


class Deadlock(RuntimeError):
    """Every thread is blocked and nothing is pending: names each sleeper and its channel."""

    def __init__(self, now: int, blocked: list[tuple[str, str]]) -> None:
        self.now = now
        self.blocked = blocked
        lines = ", ".join(f"{name} on {what}" for name, what in blocked)
        super().__init__(f"deadlock at t={now} ns: every thread is blocked: {lines}")


class Thread:
    """One schedulable thread: a kernel thread (daemon) or a user process."""

    __slots__ = ("daemon", "debt_ns", "done", "error", "name", "task", "tid", "wchan")

    def __init__(self, tid: int, name: str, daemon: bool) -> None:
        self.tid = tid
        self.name = name
        self.daemon = daemon
        self.debt_ns = 0
        self.wchan: str | None = None  # what it blocks on, None when runnable
        self.done = False
        self.error: BaseException | None = None
        self.task: asyncio.Task[Any] | None = None

    def __repr__(self) -> str:
        return f"<Thread {self.tid} {self.name}{' (blocked on ' + self.wchan + ')' if self.wchan else ''}>"


class Waiter:
    """A thread's pending block: woken once, by :meth:`Clock.wake` or its timer."""

    __slots__ = ("blocked", "fut", "not_before", "thread", "timer", "value", "what", "woken")

    def __init__(self, thread: Thread | None, what: str) -> None:
        self.thread = thread
        self.what = what
        self.not_before = 0  # the thread's CPU is busy until then (its debt at blocking)
        self.fut: asyncio.Future[Any] | None = None
        self.blocked = False
        self.woken = False
        self.value: Any = None
        self.timer: _Event | None = None


class _Event:
    __slots__ = ("cancelled", "fire", "seq", "time", "weak")

    def __init__(self, time: int, seq: int, fire: Callable[[], None], weak: bool = False) -> None:
        self.time = time
        self.seq = seq
        self.fire = fire
        self.cancelled = False
        self.weak = weak  # a background timer: does not keep a blocked machine alive

    def __lt__(self, other: _Event) -> bool:
        return (self.time, self.seq) < (other.time, other.seq)


class IoEvent(_Event):
    """An I/O completion: fires at its virtual time, but never before :meth:`real_done`."""

    __slots__ = ("_done", "real")

    def __init__(self, time: int, seq: int, fire: Callable[[], None]) -> None:
        self.time = time  # _Event's fields, set here: one frame less per I/O
        self.seq = seq
        self.fire = fire
        self.cancelled = False
        self.weak = False
        self.real = False
        self._done: asyncio.Event | None = None

    def real_done(self) -> None:
        """Record that the real I/O finished (call on the event loop's thread)."""
        self.real = True
        if self._done is not None:
            self._done.set()


class Clock:
    """Virtual time, the thread table and the idle loop. See the module docstring."""

    def __init__(self) -> None:
        self.now = 0
        self.runnable = 0
        self.threads: list[Thread] = []
        self._heap: list[tuple[int, int, _Event]] = []
        self._strong = 0  # pending events that are not cancelled and not weak
        self._seq = itertools.count()
        self._tids = itertools.count(1)
        self._idle: asyncio.Event | None = None
        self._live_users = 0
        self._finished: asyncio.Event | None = None
        self._tg: asyncio.TaskGroup | None = None
        self._crashed = False  # a thread died of an exception: the task group is stopping
        self.events_fired = 0
        self._idle_ctx: contextvars.Context | None = None  # the idle loop task's context
        self._woken: list[Waiter] | None = None  # resumed during _fire_inline, in order
        self._inline_run = 0  # inline idle steps since the event loop last ran
        self._fire_error: BaseException | None = None  # raised by an event fired inline

    # --- threads -----------------------------------------------------------------------------

    def spawn(
        self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any, name: str, daemon: bool = False
    ) -> Thread:
        """Start ``fn(*args)`` as a new thread inside the running :meth:`run`."""
        if self._tg is None:
            raise RuntimeError("Clock.spawn: the clock is not running (call inside Clock.run)")
        th = Thread(next(self._tids), name, daemon)
        self.threads.append(th)
        self.runnable += 1
        if not daemon:
            self._live_users += 1
        th.task = self._tg.create_task(self._thread_main(th, fn, args), name=name)
        return th

    async def _thread_main(
        self, th: Thread, fn: Callable[..., Coroutine[Any, Any, Any]], args: tuple[Any, ...]
    ) -> None:
        _current.set(th)
        try:
            await fn(*args)
        except asyncio.CancelledError:
            raise
        except BaseException:
            # the task group cancels everything once this task is done; until then the
            # threads left blocked are not a deadlock (it would hide the real error)
            self._crashed = True
            raise
        finally:
            th.done = True
            self.runnable -= 1
            if not th.daemon:
                self._live_users -= 1
                if self._live_users == 0 and self._finished is not None:
                    self._finished.set()
            self._maybe_idle()

    # --- blocking ------------------------------------------------------------------------------

    def waiter(self, what: str) -> Waiter:
        """A new waiter for the current thread; register it, then ``await wait(w)``."""
        return Waiter(current_thread(), what)

    async def wait(self, w: Waiter, deadline: int | None = None, weak: bool = False) -> Any:
        """Block the current thread until ``w`` is woken or ``deadline`` (ns) passes.

        Returns the value given to :meth:`wake`, or ``None`` when the deadline passed first.
        """
        if w.woken:
            return w.value
        th = w.thread
        if th is None:
            raise RuntimeError("Clock.wait: only an emulated thread may block")
        if deadline is not None:
            w.timer = self._push(
                _Event(deadline, next(self._seq), lambda: self._timeout(w), weak)
            )
        if th.debt_ns > 0:
            # CPU time not yet paid: the thread is queued now (no wakeup is lost), but it
            # cannot run again before its CPU has done that work.
            w.not_before = self.now + th.debt_ns
            th.debt_ns = 0
        w.blocked = True
        th.wchan = w.what
        self.runnable -= 1
        loop = asyncio.get_running_loop()
        woken = self._fire_inline() if self.runnable == 0 else None
        if woken is None:
            self._maybe_idle()
        elif len(woken) == 1 and woken[0] is w:
            return w.value  # woken alone by what it fired: no suspension
        else:  # the wake-ups reach the loop in order, where the idle loop's would have
            loop.call_soon(self._set_results, woken)
        w.fut = loop.create_future()
        try:
            return await w.fut
        except asyncio.CancelledError:
            if w.blocked:  # cancelled while asleep (run over): undo the block
                w.blocked = False
                w.woken = True
                self.runnable += 1
                th.wchan = None
                if w.timer is not None:
                    self._cancel(w.timer)
                    w.timer = None
            raise

    def wake(self, w: Waiter, value: Any = True) -> bool:
        """Make ``w``'s thread runnable with ``value``; False if it was already woken."""
        if w.woken:
            return False
        w.woken = True
        w.value = value
        if w.timer is not None:
            self._cancel(w.timer)
            w.timer = None
        if w.blocked:
            if w.not_before > self.now:  # woken, but its CPU is still busy: resume later
                if w.thread is not None:
                    w.thread.wchan = f"cpu (woken from {w.what})"
                self._push(_Event(w.not_before, next(self._seq), lambda: self._resume(w)))
            else:
                self._resume(w)
        return True

    def _resume(self, w: Waiter) -> None:
        if not w.blocked:  # cancelled meanwhile
            return
        w.blocked = False
        self.runnable += 1
        if w.thread is not None:
            w.thread.wchan = None
        if self._woken is not None:  # inside _fire_inline: its caller resumes w
            self._woken.append(w)
            return
        assert w.fut is not None
        w.fut.set_result(w.value)

    @staticmethod
    def _set_results(woken: list[Waiter]) -> None:
        for w in woken:
            fut = w.fut
            if fut is not None and not fut.done():  # (its task may be cancelled by now)
                fut.set_result(w.value)

    def _fire_inline(self) -> list[Waiter] | None:
        """The idle loop's work, done by the thread that just made ``runnable`` 0: fire the
        due events, in the idle loop's context, until one makes a thread runnable. Returns
        the waiters resumed (in order; the caller completes them), or None when it stopped
        first (nothing due yet, a real I/O not finished, a deadlock to report, or
        ``INLINE_MAX`` reached): the idle loop then takes over, as before."""
        ctx = self._idle_ctx
        if ctx is None or self._live_users <= 0 or self._inline_run >= INLINE_MAX:
            self._inline_run = 0
            return None
        self._inline_run += 1
        heap = self._heap
        woken: list[Waiter] = []
        self._woken = woken
        try:
            while self.runnable == 0:
                ev = self._next_event()
                if ev is None or self._strong == 0:
                    return None  # the idle loop reports the deadlock
                if isinstance(ev, IoEvent) and not ev.real:
                    return None  # the idle loop waits for it
                # firing as _idle_loop fires, copied: a shared helper is a call per event
                heapq.heappop(heap)
                if not ev.weak:
                    self._strong -= 1
                ev.cancelled = True  # fired: a late _cancel must not count it again
                if ev.time > self.now:
                    self.now = ev.time
                self.events_fired += 1
                try:
                    ctx.run(ev.fire)
                except BaseException as e:  # the idle loop raises it, as if it had fired
                    self._fire_error = e
                    if woken:
                        asyncio.get_running_loop().call_soon(self._set_results, woken)
                    if self._idle is not None:
                        self._idle.set()
                    return None
        finally:
            self._woken = None
        return woken if woken else None

    def _timeout(self, w: Waiter) -> None:
        self.wake(w, None)

    async def sleep_until(self, t: int, what: str = "clock", weak: bool = False) -> None:
        """Block the current thread until virtual time ``t``.

        ``weak``: a background timer (a sampler's): if every thread is blocked and only weak
        timers are pending, the machine is deadlocked all the same.
        """
        if t <= self.now:
            t = self.now
        w = self.waiter(what)
        await self.wait(w, deadline=t, weak=weak)

    async def sleep(self, ns: int, what: str = "clock", weak: bool = False) -> None:
        await self.sleep_until(self.now + ns, what, weak)

    # --- CPU time ------------------------------------------------------------------------------

    def charge(self, ns: int) -> None:
        """Add ``ns`` of CPU time to the current thread's debt (no await: fast path)."""
        th = _current.get()
        if th is not None:
            th.debt_ns += ns

    def nsecuptime(self) -> int:
        """The virtual time as the current thread sees it: ``now`` plus its unpaid CPU time
        (``now`` outside a thread). Reads no wall clock."""
        th = _current.get()
        return self.now + (th.debt_ns if th is not None else 0)

    async def pay(self, what: str = "cpu", min_ns: int = 1) -> None:
        """Let the current thread's CPU debt pass as virtual time, if it is ``min_ns`` or more.

        A smaller debt is carried: it delays the thread's next wake-up instead (see wait).
        """
        th = _current.get()
        if th is not None and th.debt_ns >= min_ns:
            debt = th.debt_ns
            th.debt_ns = 0
            await self.sleep_until(self.now + debt, what)

    # --- events --------------------------------------------------------------------------------

    def _push(self, ev: _Event) -> _Event:
        heapq.heappush(self._heap, (ev.time, ev.seq, ev))
        if not ev.weak:
            self._strong += 1
        return ev

    def _cancel(self, ev: _Event) -> None:
        if not ev.cancelled:
            ev.cancelled = True
            if not ev.weak:
                self._strong -= 1

    def call_at(self, t: int, fn: Callable[[], None]) -> _Event:
        """Run ``fn`` (synchronously, as an interrupt) when virtual time reaches ``t``."""
        return self._push(_Event(max(t, self.now), next(self._seq), fn))

    def io_event(self, t: int, fn: Callable[[], None]) -> IoEvent:
        """Like :meth:`call_at`, but held back until :meth:`IoEvent.real_done` is called."""
        ev = IoEvent(max(t, self.now), next(self._seq), fn)
        self._push(ev)
        return ev

    def pending(self) -> int:
        return sum(1 for _, _, ev in self._heap if not ev.cancelled)

    # --- the idle loop -------------------------------------------------------------------------

    def _maybe_idle(self) -> None:
        if self.runnable == 0 and self._idle is not None:
            self._idle.set()

    async def run(
        self,
        setup: Callable[[Clock, asyncio.TaskGroup], None] | None = None,
    ) -> None:
        """Run until every non-daemon thread has finished; then cancel the daemons.

        ``setup(clock, taskgroup)`` spawns the first threads. Raises :class:`Deadlock` when every
        thread is blocked with nothing pending; an exception in any thread propagates (as an
        ``ExceptionGroup`` from the task group), after every other task is cancelled.
        """
        self._idle = asyncio.Event()
        self._finished = asyncio.Event()
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                if setup is not None:
                    setup(self, tg)
                self._idle_ctx = contextvars.copy_context()
                idle = tg.create_task(self._idle_loop(), name="clock-idle",
                                      context=self._idle_ctx)  # fmt: skip
                if self._live_users > 0:
                    await self._finished.wait()
                idle.cancel()
                for th in self.threads:
                    if not th.done and th.task is not None:
                        th.task.cancel()
        finally:
            self._tg = None
            self._idle_ctx = None

    def start_background(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """A helper task that is not a thread (a device's thread-pool hop). It must only record."""
        if self._tg is None:
            raise RuntimeError("Clock.start_background: the clock is not running")
        return self._tg.create_task(coro, name=name)

    async def _idle_loop(self) -> None:
        assert self._idle is not None
        while True:
            await self._idle.wait()
            self._idle.clear()
            self._inline_run = 0
            if self._fire_error is not None:
                e, self._fire_error = self._fire_error, None
                raise e
            while self.runnable == 0 and self._live_users > 0:
                ev = self._next_event()
                if ev is None or self._strong == 0:
                    if self._crashed:
                        return
                    blocked = [
                        (th.name, th.wchan or "?") for th in self.threads if not th.done
                    ]
                    raise Deadlock(self.now, blocked)
                if isinstance(ev, IoEvent) and not ev.real:
                    ev._done = asyncio.Event()
                    await ev._done.wait()
                    continue  # re-check: nothing may have changed, but do not assume it
                heapq.heappop(self._heap)
                if not ev.weak:
                    self._strong -= 1
                ev.cancelled = True  # fired: a late _cancel must not count it again
                if ev.time > self.now:
                    self.now = ev.time
                self.events_fired += 1
                ev.fire()

    def _next_event(self) -> _Event | None:
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        return heap[0][2] if heap else None
