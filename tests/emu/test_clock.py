"""emu.clock: virtual time, the idle loop and deadlock detection (ARCHITECTURE.md, "Time and
determinism": "With the same scenario and seed, two runs produce the same event log ... on
asyncio and on uvloop alike")."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from emu.clock import Clock, Deadlock, IoEvent, Waiter, current_thread

Fn = Callable[[], Coroutine[Any, Any, None]]
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


def run(clock: Clock, threads: dict[str, Fn], daemons: dict[str, Fn] | None = None,
        loop: str = "asyncio") -> None:
    def setup(c: Clock, tg: asyncio.TaskGroup) -> None:
        for name, fn in threads.items():
            c.spawn(fn, name=name)
        for name, fn in (daemons or {}).items():
            c.spawn(fn, name=name, daemon=True)

    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        runner.run(clock.run(setup))


def test_threads_wake_in_deadline_order_and_ties_break_by_seq() -> None:
    clock = Clock()
    log: list[tuple[int, str]] = []

    def sleeper(name: str, *deadlines: int) -> Fn:
        async def fn() -> None:
            for t in deadlines:
                await clock.sleep_until(t)
                log.append((clock.now, name))
        return fn

    run(clock, {"a": sleeper("a", 30, 50), "b": sleeper("b", 10, 50), "c": sleeper("c", 30)})
    # At t=30 a and c tie: a blocked first (lower seq). At t=50, b's timer was pushed at t=10,
    # before a's (pushed at t=30), so b wakes first.
    assert log == [(10, "b"), (30, "a"), (30, "c"), (50, "b"), (50, "a")]


def test_call_at_ties_fire_in_submission_order() -> None:
    clock = Clock()
    fired: list[str] = []

    async def main() -> None:
        for name in "xyz":
            clock.call_at(100, lambda n=name: fired.append(n))  # type: ignore[misc]
        clock.call_at(50, lambda: fired.append("early"))
        await clock.sleep_until(200)

    run(clock, {"main": main})
    assert fired == ["early", "x", "y", "z"] and clock.now == 200


def test_sleep_until_a_past_time_returns_at_the_current_time() -> None:
    clock = Clock()
    seen: list[int] = []

    async def main() -> None:
        await clock.sleep(40)
        await clock.sleep_until(10)
        seen.append(clock.now)

    run(clock, {"main": main})
    assert seen == [40]


def test_time_stands_still_while_a_thread_is_runnable() -> None:
    clock = Clock()
    seen: list[tuple[str, int]] = []

    async def sleeper() -> None:
        await clock.sleep(5)
        seen.append(("sleeper", clock.now))

    async def spinner() -> None:
        for _ in range(100):
            await asyncio.sleep(0)  # a runnable thread yielding to the loop, not blocking
        seen.append(("spinner", clock.now))

    run(clock, {"sleeper": sleeper, "spinner": spinner})
    assert seen == [("spinner", 0), ("sleeper", 5)]


def test_charge_accumulates_debt_and_pay_turns_it_into_time() -> None:
    clock = Clock()
    seen: list[tuple[int, int]] = []

    async def main() -> None:
        clock.charge(300)
        clock.charge(200)
        th = current_thread()
        assert th is not None
        seen.append((clock.now, th.debt_ns))
        await clock.pay()
        seen.append((clock.now, th.debt_ns))
        await clock.pay()  # no debt: no time passes
        seen.append((clock.now, th.debt_ns))

    run(clock, {"main": main})
    assert seen == [(0, 500), (500, 0), (500, 0)]
    clock.charge(7)  # outside any thread: ignored, not an error


def test_wake_before_wait_is_not_lost_and_wait_returns_the_value() -> None:
    clock = Clock()
    got: list[object] = []

    async def main() -> None:
        w = clock.waiter("chan")
        assert clock.wake(w, "v") and not clock.wake(w, "again")
        got.append(await clock.wait(w))
        w2 = clock.waiter("timeout")
        got.append(await clock.wait(w2, deadline=clock.now + 10))
        got.append(clock.now)

    run(clock, {"main": main})
    assert got == ["v", None, 10]


def test_deadlock_names_every_blocked_thread_and_its_channel() -> None:
    clock = Clock()

    def blocker(what: str) -> Fn:
        async def fn() -> None:
            await clock.wait(clock.waiter(what))
        return fn

    async def ticker() -> None:
        await clock.sleep(25)
        await clock.wait(clock.waiter("never"))

    with pytest.raises(ExceptionGroup) as ei:
        run(clock, {"proc1": blocker("uvm_wait"), "proc2": blocker("pg_wanted")},
            daemons={"pagedaemon": ticker})
    (dl,) = ei.value.exceptions
    assert isinstance(dl, Deadlock)
    assert dl.now == 25
    assert sorted(dl.blocked) == [("pagedaemon", "never"), ("proc1", "uvm_wait"),
                                  ("proc2", "pg_wanted")]
    for word in ("proc1 on uvm_wait", "proc2 on pg_wanted", "pagedaemon on never"):
        assert word in str(dl)


def test_a_thread_dying_of_an_error_is_not_reported_as_a_deadlock() -> None:
    """A thread that raises while every other thread is blocked: the error propagates alone
    (the idle loop must not see the blocked threads as a deadlock before the task group
    cancels them)."""
    clock = Clock()

    async def blocker() -> None:
        await clock.wait(clock.waiter("hold"))

    async def crasher() -> None:
        await clock.sleep(5)
        raise ValueError("kernel bug")

    with pytest.raises(ExceptionGroup) as ei:
        run(clock, {"proc1": blocker, "proc2": crasher})
    (err,) = ei.value.exceptions
    assert isinstance(err, ValueError) and str(err) == "kernel bug"


def test_daemons_are_cancelled_when_the_last_user_thread_ends() -> None:
    clock = Clock()
    ticks: list[int] = []

    async def daemon() -> None:
        while True:
            await clock.sleep(10)
            ticks.append(clock.now)

    async def user() -> None:
        await clock.sleep(35)

    run(clock, {"user": user}, daemons={"tick": daemon})
    assert ticks == [10, 20, 30] and clock.now == 35


def io_scenario(clock: Clock, late: bool, log: list[tuple[int, str]]) -> dict[str, Fn]:
    """A thread submits I/O due at t=100; the 'thread pool' reports real completion either at
    once (early) or only after the idle loop has reached the event (late)."""

    async def io_thread() -> None:
        w = clock.waiter("biowait")

        def biodone() -> None:  # the completion interrupt
            log.append((clock.now, "iodone"))
            clock.wake(w)

        ev: IoEvent = clock.io_event(100, biodone)

        async def pool() -> None:
            while clock.runnable or clock.now < 60:  # until every thread is blocked
                await asyncio.sleep(0)
            for _ in range(20):
                await asyncio.sleep(0)
            log.append((clock.now, "real_done"))
            ev.real_done()

        if late:
            clock.start_background(pool(), name="pool")
        else:
            log.append((clock.now, "real_done"))
            ev.real_done()
        await clock.wait(w)
        log.append((clock.now, "io_thread woke"))

    async def other() -> None:
        await clock.sleep(60)
        log.append((clock.now, "other"))

    return {"io": io_thread, "other": other}


@pytest.mark.parametrize("late", [False, True])
def test_io_event_fires_at_its_time_and_never_before_the_real_io(late: bool) -> None:
    clock = Clock()
    log: list[tuple[int, str]] = []
    run(clock, io_scenario(clock, late, log))
    if late:
        assert log == [(60, "other"), (60, "real_done"), (100, "iodone"), (100, "io_thread woke")]
    else:
        assert log == [(0, "real_done"), (60, "other"), (100, "iodone"), (100, "io_thread woke")]
    assert clock.now == 100


def mixed_scenario(clock: Clock, log: list[tuple[int, str]]) -> dict[str, Fn]:
    """Sleeps, charges, wakes between threads, timers and I/O events, for the loop comparison."""
    chan = {"w": clock.waiter("x")}

    def worker(name: str, step: int) -> Fn:
        async def fn() -> None:
            for i in range(6):
                clock.charge(step * (i + 1))
                await clock.pay()
                log.append((clock.now, f"{name}{i}"))
                if i == 2 and name == "a":
                    clock.wake(chan["w"], "hello")
        return fn

    async def waiter() -> None:
        chan["w"] = clock.waiter("hello")
        log.append((clock.now, f"waiter got {await clock.wait(chan['w'])}"))
        clock.call_at(clock.now + 7, lambda: log.append((clock.now, "timer")))

    async def doer() -> None:
        for k in range(3):
            w = clock.waiter("io")

            def done(w: Waiter = w) -> None:
                clock.wake(w)

            clock.io_event(clock.now + 13, done).real_done()
            await clock.wait(w)
            log.append((clock.now, f"io{k}"))

    return {"a": worker("a", 5), "b": worker("b", 7), "waiter": waiter, **io_scenario(
        clock, True, log), "doer": doer}


def test_the_same_scenario_gives_the_same_log_on_asyncio_and_uvloop() -> None:
    logs = {}
    for loop in LOOPS:
        clock = Clock()
        log: list[tuple[int, str]] = []
        run(clock, mixed_scenario(clock, log), loop=loop)
        logs[loop] = (log, clock.now, clock.events_fired)
    assert logs["asyncio"] == logs["uvloop"]
    assert len(logs["asyncio"][0]) > 20


@pytest.mark.parametrize("loop", list(LOOPS))
@pytest.mark.parametrize("order", ["abc", "bac", "cba", "cab"])
def test_one_event_waking_several_threads_runs_them_in_wake_order(loop: str, order: str) -> None:
    """The last thread to block fires the due events itself (module doc); when one event
    wakes several threads they run in the order it woke them, whichever of them fired it."""
    clock = Clock()
    ran: list[str] = []
    waiters: dict[str, Waiter] = {}

    def thread(name: str) -> Fn:
        async def fn() -> None:
            w = waiters[name] = clock.waiter(name)
            await clock.wait(w)
            ran.append(name)
        return fn

    async def last() -> None:
        await clock.sleep(5)  # a and b are blocked by now: this one blocks last
        clock.call_at(clock.now + 1, lambda: [clock.wake(waiters[n]) for n in order])
        await thread("c")()

    run(clock, {"a": thread("a"), "b": thread("b"), "c": last}, loop=loop)
    assert ran == list(order)


@pytest.mark.parametrize("loop", list(LOOPS))
def test_a_thread_woken_alone_by_what_it_fired_does_not_suspend(loop: str) -> None:
    clock = Clock()
    futs: list[object] = []

    async def main() -> None:
        for _ in range(3):
            w = clock.waiter("nap")
            assert await clock.wait(w, deadline=clock.now + 10) is None  # its own timer
            futs.append(w.fut)  # no future was made: it never went back to the event loop

    run(clock, {"main": main}, loop=loop)
    assert futs == [None] * 3 and clock.now == 30
