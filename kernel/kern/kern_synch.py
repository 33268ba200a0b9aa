"""kern_synch.c: sleep and wakeup, plus the mutex and rwlock primitives the UVM uses.

Port of the parts of OpenBSD sys/kern/kern_synch.c, kern_lock.c and kern_rwlock.c that the
page daemon and its callers need, over the emulated machine's scheduler.

Deviations:
- Functions that touch the global sleep queue take the :class:`Kernel` first (style C15):
  ``wakeup(k, chan)``, ``await msleep_nsec(k, chan, mtx, prio, wmesg, nsecs)``.
- A wait channel is any hashable value. An object passes itself; C's "address of a field"
  becomes ``chan(obj, "field")``.
- ``Mutex`` never blocks: the machine is a single host thread, so finding a mutex held can only
  mean that its holder awaited while holding it. ``mtx_enter`` panics then (xv6's acquire).
- A lock's owner is the proc that holds it (C's mutex records the CPU): ``curproc()``, which is
  proc0 during boot and in the machine's interrupts (kern/init_main.py), so every holder is a
  real proc. ``mtx_owner`` / ``rwl_owner`` are ``None`` while the lock is free (not
  write-held); taking a lock where no proc runs (before any boot) panics.
- ``rw_enter`` may sleep, so it is a coroutine; the ``RW_NOSLEEP`` form is the separate plain
  function ``rw_enter_nosleep`` returning 0 or EBUSY (style C11).
- ``rwsleep_nsec`` releases the rwlock before it queues the sleeper, where upstream queues
  first; no ``await`` comes between the two, so the argument below holds for it too.

No lost wakeups (xv6's argument): ``msleep_nsec`` puts the caller on the channel's queue
*before* it releases the interlock, and no ``await`` comes between the two. Whoever changes the
condition must hold the interlock, so it either ran before us (and we saw its change before
deciding to sleep) or it runs after we are queued (and its ``wakeup`` finds us). Wakeups may be
spurious; callers re-test their condition in a loop.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, Final, Protocol

from kernel.sys.errno import EBUSY, EWOULDBLOCK
from kernel.sys.param import PNORELOCK, PVM  # re-exported: sleepers import the sleep API here
from kernel.sys.proc import Proc, curproc
from kernel.sys.systm import Panic

if TYPE_CHECKING:
    from kernel.kernel import Kernel

__all__ = [
    "INFSLP",
    "MUTEX_ASSERT_LOCKED",
    "MUTEX_ASSERT_UNLOCKED",
    "PNORELOCK",
    "PVM",
    "RW_NOSLEEP",
    "RW_READ",
    "RW_WRITE",
    "Mutex",
    "RWLock",
    "Scheduler",
    "chan",
    "cpu_race",
    "msleep_nsec",
    "mtx_enter",
    "mtx_leave",
    "rw_enter",
    "rw_enter_nosleep",
    "rw_exit",
    "rw_lock_held",
    "rw_write_held",
    "rwsleep_nsec",
    "sched_pause",
    "tsleep_nsec",
    "wakeup",
    "wakeup_one",
]

INFSLP: Final = 0xFFFFFFFFFFFFFFFF  # no timeout

RW_WRITE: Final = 0x0001
RW_READ: Final = 0x0002
RW_NOSLEEP: Final = 0x0040


def MSEC_TO_NSEC(ms: int) -> int:
    return ms * 1_000_000


class Scheduler(Protocol):
    """What the kernel needs from the machine's clock (emu.clock.Clock implements it)."""

    now: int

    def waiter(self, what: str) -> Any: ...

    async def wait(self, w: Any, deadline: int | None = None) -> Any: ...

    def wake(self, w: Any, value: Any = True) -> bool: ...

    def charge(self, ns: int) -> None: ...

    def nsecuptime(self) -> int:
        """nsecuptime: the time as the calling thread sees it (its unpaid CPU time included)."""
        ...

    async def pay(self, what: str = "cpu", min_ns: int = 1) -> None: ...


def chan(obj: object, field: str) -> tuple[int, str]:
    """The channel ``&obj->field``: stable for the object's lifetime, like an address."""
    return (id(obj), field)


# --- mutexes ----------------------------------------------------------------------------------


class Mutex:
    """struct mutex. Never sleeps; tracks its owner so MUTEX_ASSERT_LOCKED works."""

    __slots__ = ("mtx_owner", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.mtx_owner: Proc | None = None  # the holder; None = free

    def __repr__(self) -> str:
        return f"<mutex {self.name} {'free' if self.mtx_owner is None else 'held'}>"


def mtx_enter(mtx: Mutex) -> None:
    if mtx.mtx_owner is not None:
        raise Panic(
            f"mtx_enter: {mtx.name} already held by {mtx.mtx_owner!r}"
            " (held across an await, or locking against myself)"
        )
    p = curproc()
    if p is None:
        raise Panic(f"mtx_enter: {mtx.name} taken where no proc runs (before boot)")
    mtx.mtx_owner = p


def mtx_leave(mtx: Mutex) -> None:
    if mtx.mtx_owner is None:
        raise Panic(f"mtx_leave: {mtx.name} not held")
    if mtx.mtx_owner is not curproc():
        raise Panic(f"mtx_leave: {mtx.name} held by {mtx.mtx_owner!r}, not {curproc()!r}")
    mtx.mtx_owner = None


def MUTEX_ASSERT_LOCKED(mtx: Mutex) -> None:
    if mtx.mtx_owner is None or mtx.mtx_owner is not curproc():
        raise Panic(f"mutex {mtx.name} not held")


def MUTEX_ASSERT_UNLOCKED(mtx: Mutex) -> None:
    if mtx.mtx_owner is not None and mtx.mtx_owner is curproc():
        raise Panic(f"mutex {mtx.name} held")


# --- sleep queues -----------------------------------------------------------------------------


async def msleep_nsec(
    k: Kernel, ident: Hashable, mtx: Mutex | None, priority: int, wmesg: str, nsecs: int
) -> int:
    """msleep_nsec: atomically release ``mtx`` and sleep on ``ident``.

    => re-takes ``mtx`` on return unless PNORELOCK is or-ed into ``priority``
    => returns 0 when woken, EWOULDBLOCK when ``nsecs`` passed first (INFSLP: never)
    => may sleep
    """
    sched = k.sched
    w = sched.waiter(f"{wmesg}")
    k.slpque.setdefault(ident, []).append(w)  # queued before the interlock drops
    p = curproc()
    if p is not None:
        p.p_stat, p.p_wmesg = "sleep", wmesg
        p.p_slptime_start = sched.now
    if mtx is not None:
        mtx_leave(mtx)
    deadline = None if nsecs == INFSLP else sched.now + nsecs
    v = await sched.wait(w, deadline)
    if p is not None:
        p.p_stat, p.p_wmesg = "run", None
    error = 0
    if v is None:  # the timer fired: take ourselves off the queue
        q = k.slpque.get(ident)
        if q is not None and w in q:
            q.remove(w)
            if not q:
                del k.slpque[ident]
        error = EWOULDBLOCK
    if mtx is not None and not (priority & PNORELOCK):
        mtx_enter(mtx)
    return error


async def tsleep_nsec(k: Kernel, ident: Hashable, priority: int, wmesg: str, nsecs: int) -> int:
    """tsleep_nsec: msleep_nsec without an interlock. => may sleep"""
    return await msleep_nsec(k, ident, None, priority, wmesg, nsecs)


def wakeup(k: Kernel, ident: Hashable) -> None:
    """wakeup: make every thread sleeping on ``ident`` runnable."""
    q = k.slpque.pop(ident, None)
    if q:
        for w in q:
            k.sched.wake(w, True)


def wakeup_one(k: Kernel, ident: Hashable) -> None:
    """wakeup_one: make the first thread sleeping on ``ident`` runnable."""
    q = k.slpque.get(ident)
    if q:
        w = q.pop(0)
        if not q:
            del k.slpque[ident]
        k.sched.wake(w, True)


async def sched_pause(k: Kernel) -> None:
    """sched_pause(yield): a yield point; lets the CPU time this thread ran pass.

    Port: upstream yields only if the scheduler flagged SPCF_SHOULDYIELD. Here every thread has
    a CPU of its own; the thread "should yield" once it has run for a scheduling quantum
    (``k.config.costs.yield_ns``): then the CPU time it has charged passes (emu.clock). Less is
    carried into its next sleep, which it enters at once, so no wakeup is lost meanwhile.
    """
    await k.sched.pay("sched_pause", k.config.costs.yield_ns)


# --- races with other CPUs --------------------------------------------------------------------


async def cpu_race(k: Kernel, where: str) -> None:
    """PORT: a window in which, on a multiprocessor, other CPUs can get ahead of this thread.

    The machine runs one kernel thread at a time (as the big kernel lock would), so what
    another CPU does inside such a window (take an I/O completion interrupt, run aiodoned,
    let a process free or fault a page) here only happens after this thread next sleeps. A
    test that needs the race installs ``k.hooks["cpu.race"]``, an async callable given
    ``where``; it runs on this thread and may sleep, and while it sleeps the other threads
    run, as they would on the other CPUs. The caller must hold no mutex (the hook may sleep).
    Without a hook this returns at once and never suspends.

    Windows: ``"uvm_swap_io.async"``: an async swap write has been started and the caller
    (the page daemon) has not yet relocked the page queues to look at its page again.
    ``"uvmfault_anonget.io"``: a fault's swap read is over (or failed at once on a bad slot)
    and the faulting thread has not yet relocked the map and the anon.
    """
    hook = k.hooks.get("cpu.race")
    if hook is not None:
        await hook(where)


# --- rwlocks ----------------------------------------------------------------------------------


class RWLock:
    """struct rwlock. One writer or many readers; tracks the writer for rw_write_held.

    Sleepers wait on the lock itself; ``rw_exit`` wakes them all and they retry, like the
    upstream slow path.
    """

    __slots__ = ("name", "refs", "rwl_hook", "rwl_owner", "rwl_readers", "rwl_waiters")

    def __init__(self, name: str) -> None:
        self.name = name
        self.rwl_owner: Proc | None = None  # the writer; None = not write-held
        self.rwl_readers = 0
        self.rwl_waiters: list[tuple[Scheduler, Any]] = []
        self.refs = 1  # PORT: rw_obj_hold/rw_obj_free reference count (shared amap locks)
        # PORT: a scheduler hook for tests: called at every try-enter, it stands for work another
        # CPU does at that instant (a free, a completion), so races that need a second CPU
        # can be driven without mocking the code under test.
        self.rwl_hook: Callable[[RWLock], None] | None = None

    def __repr__(self) -> str:
        st = "free"
        if self.rwl_owner is not None:
            st = f"write-held by {self.rwl_owner!r}"
        elif self.rwl_readers:
            st = f"{self.rwl_readers} readers"
        return f"<rwlock {self.name} {st}>"


def _rw_try(rwl: RWLock, flags: int) -> bool:
    if flags & RW_WRITE:
        if rwl.rwl_owner is None and rwl.rwl_readers == 0:
            p = curproc()
            if p is None:
                raise Panic(f"rw_enter: {rwl.name} taken where no proc runs (before boot)")
            rwl.rwl_owner = p
            return True
        if rwl.rwl_owner is not None and rwl.rwl_owner is curproc():
            raise Panic(f"rw_enter: {rwl.name} locking against myself")
        return False
    if rwl.rwl_owner is None:
        rwl.rwl_readers += 1
        return True
    return False


def rw_enter_nosleep(rwl: RWLock, flags: int) -> int:
    """rw_enter(rwl, flags|RW_NOSLEEP): 0 on success, EBUSY if it would sleep."""
    if rwl.rwl_hook is not None:
        rwl.rwl_hook(rwl)
    return 0 if _rw_try(rwl, flags) else int(EBUSY)


async def rw_enter(k: Kernel, rwl: RWLock, flags: int) -> int:
    """rw_enter: take ``rwl`` for RW_WRITE or RW_READ, sleeping while it is held.

    => may sleep (unless RW_NOSLEEP is given, then returns EBUSY instead)
    """
    if flags & RW_NOSLEEP:
        return rw_enter_nosleep(rwl, flags)
    while not _rw_try(rwl, flags):
        w = k.sched.waiter(f"rwlock:{rwl.name}")
        rwl.rwl_waiters.append((k.sched, w))
        await k.sched.wait(w)
    return 0


def rw_exit(rwl: RWLock) -> None:
    """rw_exit: release a read or write hold and wake every sleeper to retry."""
    if rwl.rwl_owner is not None:
        if rwl.rwl_owner is not curproc():
            raise Panic(f"rw_exit: {rwl.name} write-held by {rwl.rwl_owner!r}, not {curproc()!r}")
        rwl.rwl_owner = None
    elif rwl.rwl_readers > 0:
        rwl.rwl_readers -= 1
    else:
        raise Panic(f"rw_exit: {rwl.name} not held")
    if rwl.rwl_waiters and rwl.rwl_owner is None and rwl.rwl_readers == 0:
        waiters, rwl.rwl_waiters = rwl.rwl_waiters, []
        for sched, w in waiters:
            sched.wake(w, True)


def rw_write_held(rwl: RWLock) -> bool:
    """rw_write_held: true iff the current proc holds ``rwl`` for writing."""
    return rwl.rwl_owner is not None and rwl.rwl_owner is curproc()


def rw_lock_held(rwl: RWLock) -> bool:
    return rwl.rwl_owner is not None or rwl.rwl_readers > 0


async def rwsleep_nsec(
    k: Kernel, ident: Hashable, rwl: RWLock, priority: int, wmesg: str, nsecs: int
) -> int:
    """rwsleep_nsec: release ``rwl`` and sleep on ``ident``, as one step.

    => ``rwl`` is held, for reading or writing, on entry
    => taken again the same way on return, unless PNORELOCK is or-ed into ``priority``
    => returns 0 when woken, EWOULDBLOCK when ``nsecs`` passed first (INFSLP: never)
    => may sleep
    """
    status = RW_WRITE if rw_write_held(rwl) else RW_READ  # rw_status(rwl)
    rw_exit(rwl)
    error = await msleep_nsec(k, ident, None, priority, wmesg, nsecs)
    if not (priority & PNORELOCK):
        await rw_enter(k, rwl, status)
    return error
