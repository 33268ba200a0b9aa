"""The page daemon's tests, around the real daemon thread (shared by test_uvm_pdaemon_*.py).

Passes of the real ``pagedaemon`` thread, recorded by the daemon's per-pass hook
``k.hooks["pdaemon.pass"]`` (:class:`PassRec`, :func:`_record_passes`, which the
``live_pagedaemon`` fixture installs; :func:`_quiet` waits until the daemon sleeps again),
kernel threads asleep on a channel (:class:`Sleeper`), pages the kernel holds, and kernel
threads in a sleeping allocation (:class:`Requester`, which makes uvm_wait_pla queue a
request for the daemon).

The helpers keep the names the test bodies call them by (a leading underscore, as when they
were local to one test file).
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kernel.kern.kern_kthread import kthread_create
from kernel.kern.kern_synch import INFSLP, PVM, chan, tsleep_nsec, wakeup
from kernel.kernel import Kernel
from kernel.sys.proc import Proc
from kernel.uvm import uvm_page, uvm_pmemrange
from kernel.uvm.uvm_page import PG_BUSY, VmPage, atop
from kernel.uvm.uvm_pmemrange import (
    UVM_PLA_NOWAIT,
    UVM_PLA_USERESERVE,
    UVM_PLA_WAITOK,
    UvmPmalloc,
)

import pdaemon_world as pw
from pdaemon_world import MS

if TYPE_CHECKING:
    from conftest import KernelEnv


# --- the daemon's passes --------------------------------------------------------------------------


@dataclass
class PassRec:
    """What the ``pdaemon.pass`` hook saw at the end of one pass of uvm_pageout."""

    delta: dict[str, int]
    t: int
    pdwoke: int
    free: int
    paging: int
    inactive: int
    inactarg: int
    freemin: int
    freetarg: int
    wiredmax: int
    nowait_failed: int
    allocs: list[UvmPmalloc]
    pageq_free: bool
    fpageq_free: bool


OnPass = Callable[[Kernel, int], None]


def _record_passes(k: Kernel, on_pass: OnPass | None = None) -> list[PassRec]:
    """Install the daemon's per-pass hook; ``on_pass(k, n)`` runs after pass n is recorded, in
    the daemon's context, standing for another CPU acting at that instant."""
    passes: list[PassRec] = []
    pmr = k.uvm.pmr_control
    assert pmr is not None

    def hook(k: Kernel, delta: dict[str, int], clusters: list[int]) -> None:
        u = k.uvmexp
        rec = PassRec(
            delta=dict(delta),
            t=k.sched.now,
            pdwoke=u.pdwoke,
            free=u.free,
            paging=u.paging,
            inactive=u.inactive,
            inactarg=u.inactarg,
            freemin=u.freemin,
            freetarg=u.freetarg,
            wiredmax=u.wiredmax,
            nowait_failed=k.uvm_nowait_failed,
            allocs=list(pmr.allocs),
            pageq_free=k.uvm.pageqlock.mtx_owner is None,
            fpageq_free=k.uvm.fpageqlock.mtx_owner is None,
        )
        passes.append(rec)
        if on_pass is not None:
            on_pass(k, len(passes))

    k.hooks["pdaemon.pass"] = hook
    return passes


def _pass_logs(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == "uvm_pageout.pass"]


def _wake_daemon(k: Kernel) -> None:
    """wakeup(&uvm.pagedaemon), as an allocator does (reference §1.5 step 1)."""
    wakeup(k, chan(k.uvm, "pagedaemon"))


def _daemon(k: Kernel) -> Proc:
    p = k.uvm.pagedaemon_proc
    assert p is not None
    return p


async def _quiet(env: KernelEnv, passes: list[PassRec], n: int) -> None:
    """Until the daemon has made ``n`` passes and sleeps again on its channel (M1)."""
    pd = _daemon(env.k)

    def settled() -> bool:
        return len(passes) > n or (len(passes) == n and pd.p_wmesg == "pgdaemon")

    await pw.until(env, settled, f"{n} passes")
    await env.sleep(10 * MS)
    assert len(passes) == n and pd.p_wmesg == "pgdaemon"


# --- sleepers -------------------------------------------------------------------------------------


@dataclass(eq=False)
class Sleeper:
    """A kernel thread asleep on one channel until a wakeup; records what it saw when it ran
    again (a wakeup only makes it runnable: _asleep tells whether it is still queued)."""

    ident: Any = None
    woken_at: int | None = None
    pdwoke: int | None = None
    free: int | None = None


def _sleeper(k: Kernel, ident: Any, name: str) -> Sleeper:
    s = Sleeper(ident)

    async def main() -> None:
        await tsleep_nsec(k, ident, PVM, name, INFSLP)
        s.woken_at, s.pdwoke, s.free = k.sched.now, k.uvmexp.pdwoke, k.uvmexp.free

    kthread_create(k, main, name=name)
    return s


def _asleep(k: Kernel, s: Sleeper) -> bool:
    """Still on its channel's sleep queue (wakeup() takes the whole queue off)."""
    return bool(k.slpque.get(s.ident))


# --- memory the kernel holds, allocation requests -------------------------------------------------


def _kernel_pages(k: Kernel, n: int) -> list[VmPage]:
    """``n`` pages the kernel holds (busy, no owner, on no queue), from the reserve if need be."""
    pgs = []
    for _ in range(n):
        pg = uvm_page.uvm_pagealloc(k, None, 0, None, uvm_page.UVM_PGA_USERESERVE)
        assert pg is not None
        pgs.append(pg)
    return pgs


def _kernel_pages_at(k: Kernel, start: int, n: int) -> list[VmPage]:
    """The ``n`` free frames from ``start`` on, held by the kernel like _kernel_pages."""
    out: list[VmPage] = []
    flags = UVM_PLA_NOWAIT | UVM_PLA_USERESERVE
    r = uvm_pmemrange.uvm_pmr_getpages_nowait(k, n, start, start + n, 1, 0, n, flags, out)
    assert r == 0 and [atop(pg.phys_addr) for pg in out] == list(range(start, start + n))
    for pg in out:
        pg.pg_flags |= PG_BUSY
    return out


def _free_pages(k: Kernel, pgs: list[VmPage]) -> None:
    uvm_page.uvm_lock_pageq(k)
    for pg in pgs:
        uvm_page.uvm_pagefree(k, pg)
    uvm_page.uvm_unlock_pageq(k)


def _free_at_pass(held: list[VmPage], at: int = 1) -> Callable[[Kernel, int], None]:
    """A per-pass hook (``on_pass`` of the live_pagedaemon fixtures): another CPU frees the
    pages of ``held`` (filled in by the test) at the end of pass ``at``."""

    def free_them(k: Kernel, n: int) -> None:
        if n == at:
            _free_pages(k, held)

    return free_them


@dataclass(eq=False)
class Requester:
    """A kernel thread in a WAITOK allocation of ``count`` pages in frames [start, end)."""

    got: list[int] = field(default_factory=list)
    error: int | None = None


def _requester(k: Kernel, count: int, start: int, end: int, flags: int = 0) -> Requester:
    """uvm_pmr_getpages(WAITOK): the search fails, uvm_wait_pla queues a request (a pma) and
    wakes the daemon (reference §1.5 step 5); once woken it retries. The pages it gets are
    recorded and given back at once."""
    req = Requester()

    async def main() -> None:
        out: list[VmPage] = []
        req.error = await uvm_pmemrange.uvm_pmr_getpages(
            k, count, start, end, 1, 0, count, UVM_PLA_WAITOK | flags, out
        )
        req.got = [atop(pg.phys_addr) for pg in out]
        _free_pages(k, out)

    kthread_create(k, main, name="requester")
    return req
