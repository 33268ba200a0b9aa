"""kern_synch: msleep/wakeup, mutexes and rwlocks.

Pins docs/uvm-reference.md §1.4 (msleep_nsec drops the interlock and re-takes it unless
PNORELOCK; INFSLP; EWOULDBLOCK on timeout; wakeup wakes every sleeper; rwsleep_nsec does the
same with an rwlock), style C11 (mutex
misuse panics; rwlocks track their owner; RW_NOSLEEP returns EBUSY) and C12 (no lost
wakeup: the sleeper is queued before the interlock drops).
"""

from __future__ import annotations

import contextvars

import pytest

from kernel.kern.kern_kthread import kthread_create
from kernel.kern.kern_synch import (
    INFSLP,
    MUTEX_ASSERT_LOCKED,
    PNORELOCK,
    PVM,
    RW_READ,
    RW_WRITE,
    Mutex,
    RWLock,
    chan,
    msleep_nsec,
    mtx_enter,
    mtx_leave,
    rw_enter,
    rw_enter_nosleep,
    rw_exit,
    rw_lock_held,
    rw_write_held,
    rwsleep_nsec,
    tsleep_nsec,
    wakeup,
    wakeup_one,
)
from kernel.sys.errno import EBUSY, EWOULDBLOCK
from kernel.sys.systm import Panic


def test_msleep_times_out_with_ewouldblock(run_kernel):
    """§1.4: "on timeout the call returns EWOULDBLOCK" once the time has passed."""

    async def body(k, env):
        r = await tsleep_nsec(k, ("nobody", 1), PVM, "nap", 3_000_000)
        assert r == EWOULDBLOCK and env.clock.now == 3_000_000
        assert ("nobody", 1) not in k.slpque  # the timed-out sleeper left the queue

    run_kernel(body, start=False)


def test_wakeup_wakes_every_sleeper_and_wakeup_one_the_first(run_kernel):
    """§1.4: "wakeup(chan) wakes every thread sleeping on chan"; wakeup_one the first."""
    woke = []

    async def sleeper(k, name):
        r = await tsleep_nsec(k, "chan", PVM, name, INFSLP)
        woke.append((name, r))

    async def body(k, env):
        for name in ("a", "b", "c"):
            kthread_create(k, sleeper, k, name, name=name)
        await env.sleep(1000)
        wakeup_one(k, "chan")
        await env.sleep(1000)
        assert woke == [("a", 0)]
        wakeup(k, "chan")
        await env.sleep(1000)
        assert sorted(woke) == [("a", 0), ("b", 0), ("c", 0)]

    run_kernel(body, start=False)


def test_msleep_drops_and_retakes_the_interlock(run_kernel):
    """§1.4: msleep_nsec "atomically drops mtx and sleeps on chan; on return re-takes mtx
    unless PNORELOCK"."""
    mtx = Mutex("test")

    async def waker(k):
        mtx_enter(mtx)  # free while the sleeper sleeps
        wakeup(k, chan(mtx, "c"))
        mtx_leave(mtx)

    async def body(k, env):
        kthread_create(k, waker, k, name="waker")
        mtx_enter(mtx)
        assert await msleep_nsec(k, chan(mtx, "c"), mtx, PVM, "relock", INFSLP) == 0
        MUTEX_ASSERT_LOCKED(mtx)
        assert mtx.mtx_owner is env.testproc
        kthread_create(k, waker, k, name="waker2")
        assert await msleep_nsec(k, chan(mtx, "c"), mtx, PVM | PNORELOCK, "norelock", INFSLP) == 0
        assert mtx.mtx_owner is None

    run_kernel(body, start=False)


def test_no_lost_wakeup_when_the_waker_runs_right_after_the_unlock(run_kernel):
    """C12: the sleeper is queued *before* the interlock is released, so a waker that
    takes the interlock as soon as it is free and wakes cannot be missed."""
    mtx = Mutex("cond")
    state = {"ready": False}

    async def waker(k):
        # spin until the sleeper has released the interlock, then set and wake at once
        while mtx.mtx_owner is not None:
            await env_ref["env"].sleep(1)
        mtx_enter(mtx)
        state["ready"] = True
        wakeup(k, state_chan)
        mtx_leave(mtx)

    env_ref = {}
    state_chan = chan(state, "ready")

    async def body(k, env):
        env_ref["env"] = env
        mtx_enter(mtx)
        kthread_create(k, waker, k, name="waker")
        while not state["ready"]:
            r = await msleep_nsec(k, state_chan, mtx, PVM, "cond", 1_000_000_000)
            assert r == 0  # woken, never timed out
        mtx_leave(mtx)

    run_kernel(body, start=False)


def test_mutex_misuse_panics(kenv):
    """C11: mtx_enter on a held mutex, mtx_leave of a free one, and MUTEX_ASSERT_LOCKED
    without holding it panic, with the function name first."""
    kenv(start=False)
    m = Mutex("m")
    with pytest.raises(Panic, match=r"^mutex m not held"):
        MUTEX_ASSERT_LOCKED(m)
    mtx_enter(m)
    with pytest.raises(Panic, match=r"^mtx_enter: m already held"):
        mtx_enter(m)
    mtx_leave(m)
    with pytest.raises(Panic, match=r"^mtx_leave: m not held"):
        mtx_leave(m)


def test_a_lock_taken_where_no_proc_runs_panics():
    """C11: a lock's owner is the proc holding it; before any boot no proc runs (curproc
    is None), so taking a mutex or write-locking an rwlock there panics."""
    nowhere = contextvars.Context()  # a context no boot has run in
    with pytest.raises(Panic, match=r"^mtx_enter: m taken where no proc runs"):
        nowhere.run(mtx_enter, Mutex("m"))
    with pytest.raises(Panic, match=r"^rw_enter: lk taken where no proc runs"):
        nowhere.run(rw_enter_nosleep, RWLock("lk"), RW_WRITE)


def test_mutex_left_by_another_thread_panics(run_kernel):
    """C11: both lock classes track the owning proc; leaving someone else's mutex panics."""
    m = Mutex("owned")

    async def thief(k):
        with pytest.raises(Panic, match="held by"):
            mtx_leave(m)

    async def body(k, env):
        mtx_enter(m)
        kthread_create(k, thief, k, name="thief")
        await env.sleep(1000)
        mtx_leave(m)

    run_kernel(body, start=False)


def test_rwlock_nosleep_returns_ebusy_and_tracks_the_writer(run_kernel):
    """C11: rw_enter_nosleep returns 0 or EBUSY as in C; rw_write_held knows the owner;
    readers share; locking against myself panics."""
    lk = RWLock("lk")

    async def other(k, out):
        out.append(rw_enter_nosleep(lk, RW_WRITE))
        out.append(rw_write_held(lk))

    async def body(k, env):
        assert rw_enter_nosleep(lk, RW_READ) == 0
        assert rw_enter_nosleep(lk, RW_READ) == 0
        assert rw_enter_nosleep(lk, RW_WRITE) == EBUSY
        rw_exit(lk)
        rw_exit(lk)
        assert rw_enter_nosleep(lk, RW_WRITE) == 0 and rw_write_held(lk)
        out: list[object] = []
        kthread_create(k, other, k, out, name="other")
        await env.sleep(1000)
        assert out == [EBUSY, False]
        with pytest.raises(Panic, match="locking against myself"):
            rw_enter_nosleep(lk, RW_WRITE)
        rw_exit(lk)
        with pytest.raises(Panic, match="not held"):
            rw_exit(lk)

    run_kernel(body, start=False)


def test_rwlock_blocking_enter_waits_for_the_writer(run_kernel):
    """rw_enter sleeps while the lock is held and gets it when the holder exits; rw_exit
    by a thread that does not hold the write lock panics."""
    lk = RWLock("lk")
    order = []

    async def writer(k):
        with pytest.raises(Panic, match=r"^rw_exit: lk write-held by"):
            rw_exit(lk)
        await rw_enter(k, lk, RW_WRITE)
        order.append("writer in")
        rw_exit(lk)

    async def body(k, env):
        await rw_enter(k, lk, RW_WRITE)
        kthread_create(k, writer, k, name="writer")
        await env.sleep(5_000)
        order.append("holder out")
        rw_exit(lk)
        await env.sleep(5_000)
        assert order == ["holder out", "writer in"]

    run_kernel(body, start=False)


def test_rwsleep_drops_the_rwlock_and_retakes_it_as_it_was_held(run_kernel):
    """§1.4 for rwlocks: rwsleep_nsec releases the lock while asleep (another thread can
    write-lock it meanwhile) and takes it again for reading or writing, as it was held,
    unless PNORELOCK; a timeout returns EWOULDBLOCK and relocks too."""
    lk = RWLock("lk")
    seen: list[object] = []

    async def waker(k):
        seen.append(rw_enter_nosleep(lk, RW_WRITE))  # free while the sleeper sleeps
        rw_exit(lk)
        wakeup(k, chan(lk, "c"))

    async def body(k, env):
        await rw_enter(k, lk, RW_WRITE)
        kthread_create(k, waker, k, name="waker")
        assert await rwsleep_nsec(k, chan(lk, "c"), lk, PVM, "wrelock", INFSLP) == 0
        assert rw_write_held(lk) and seen == [0]
        rw_exit(lk)

        await rw_enter(k, lk, RW_READ)
        kthread_create(k, waker, k, name="waker2")
        assert await rwsleep_nsec(k, chan(lk, "c"), lk, PVM, "rrelock", INFSLP) == 0
        assert lk.rwl_readers == 1 and not rw_write_held(lk) and seen == [0, 0]
        rw_exit(lk)

        await rw_enter(k, lk, RW_WRITE)
        assert await rwsleep_nsec(k, chan(lk, "c"), lk, PVM, "timeout", 1_000) == EWOULDBLOCK
        assert rw_write_held(lk)
        kthread_create(k, waker, k, name="waker3")
        r = await rwsleep_nsec(k, chan(lk, "c"), lk, PVM | PNORELOCK, "norelock", INFSLP)
        assert r == 0 and not rw_lock_held(lk) and seen == [0, 0, 0]

    run_kernel(body, start=False)
