"""uvm_pdaemon_1_154.py: uvm_wait (lines 119-166) and uvmpd_tune (lines 171-193).

Catalogue ids (docs/pdaemon-1.154.md): N-W1 N-W2 N-W3 N-W4 N-W5 (§2.1); N-T1 N-T2 N-T3 N-T4
(§2.2). The loop is in test_uvm_pdaemon154_loop.py.

Machines boot with the 1.154 daemon. uvm_wait's sleepers are counted in
``k.uvm_wait_counter`` (1.154 line 117), which keeps that daemon running passes while any is
counted (N-M1b). Thresholds on every machine under 270 pages: freemin 9, freetarg 12.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from structlog.testing import capture_logs

import kernel.uvm.uvm_pdaemon_1_154 as pd154
from kernel.kern.kern_kthread import kthread_create
from kernel.kern.kern_synch import chan
from kernel.kernel import Kernel
from kernel.sys.proc import set_curproc
from kernel.sys.systm import Panic

import pdaemon_world as pw
from pdaemon_passes import _free_pages, _kernel_pages
from pdaemon_world import MS

if TYPE_CHECKING:
    from conftest import KernelEnv


# === uvm_wait: N-W1 - N-W5 (lines 119-166) ========================================================


def test_N_W1_proc0_may_not_sleep_for_memory_under_DIAGNOSTIC(kenv: Any) -> None:
    """N-W1 (lines 124-127): "DIAGNOSTIC and the caller is proc0 | panic "uvm_wait: cannot
    sleep for memory during boot"" - before it counts itself."""
    env = pw.daemonless(kenv, npages=64, swap_pages=16, pdaemon="1.154")

    async def body(k: Kernel, env: KernelEnv) -> None:
        set_curproc(k.proc0)
        try:
            with pytest.raises(Panic, match="cannot sleep for memory during boot"):
                await pd154.uvm_wait(k, "boot")
        finally:
            set_curproc(env.testproc)
        assert k.uvm_wait_counter == 0

    env.run(body)


def test_N_W1prime_proc0_without_DIAGNOSTIC_sleeps_like_any_caller(kenv: Any) -> None:
    """N-W1 compiled out (no DIAGNOSTIC): proc0 is counted and sleeps on &uvmexp.free until a
    page is freed."""
    env = pw.daemonless(kenv, npages=64, swap_pages=16, pdaemon="1.154", diagnostic=False)

    async def body(k: Kernel, env: KernelEnv) -> None:
        (pg,) = _kernel_pages(k, 1)
        cpu = pw.other_cpu(k)
        seen: list[int] = []

        async def free_later() -> None:
            await env.sleep(5 * MS)
            seen.append(k.uvm_wait_counter)
            _free_pages(k, [pg])

        pw.post(cpu, free_later)
        set_curproc(k.proc0)
        try:
            await pd154.uvm_wait(k, "boot")
        finally:
            set_curproc(env.testproc)
        assert k.sched.now == 5 * MS and seen == [1] and k.uvm_wait_counter == 0

    env.run(body)


def test_N_W2_daemon_gets_four_pages_from_the_buffer_cache_and_does_not_sleep(kenv: Any) -> None:
    """N-W2 (lines 132-135): "caller is the daemon and bufbackoff(NULL, 4) recovers >= 4 pages
    | print, return at once (no sleep, no counter)" (1.105 tested bufbackoff's 0)."""
    env = pw.daemonless(kenv, npages=256, swap_pages=16, pdaemon="1.154", bufcachepercent=10)

    async def body(k: Kernel, env: KernelEnv) -> None:
        k.uvm.pagedaemon_proc = env.testproc
        bc = k.bufcache
        assert bc is not None and bc.bufpages - bc.buflowpages >= max(4, bc.bufbackpages)
        free, t0 = k.uvmexp.free, k.sched.now
        with capture_logs() as logs:
            await pd154.uvm_wait(k, "selfwait")
        assert k.sched.now == t0 and k.uvm_wait_counter == 0
        assert bc.recovered == 4 and k.uvmexp.free == free + 4
        events = [e["event"] for e in logs]
        assert "uvm_wait.emergency_bufbackoff" in events
        assert "pagedaemon.deadlock_detected" not in events

    env.run(body)


def test_N_W3_daemon_without_cache_reports_deadlock_and_sleeps_125ms(kenv: Any) -> None:
    """N-W3 (lines 136-154): "caller is the daemon, fewer than 4 recovered | print "deadlock
    detected", timeout 125 ms"; without a buffer cache bufbackoff recovers 0. The daemon is
    counted while it sleeps (N-W5)."""
    env = pw.daemonless(kenv, npages=64, swap_pages=16, pdaemon="1.154")

    async def body(k: Kernel, env: KernelEnv) -> None:
        k.uvm.pagedaemon_proc = env.testproc
        cpu = pw.other_cpu(k)
        seen: list[int] = []

        async def look() -> None:
            await env.sleep(MS)
            seen.append(k.uvm_wait_counter)

        pw.post(cpu, look)
        t0 = k.sched.now
        with capture_logs() as logs:
            await pd154.uvm_wait(k, "selfwait")
        assert k.sched.now - t0 == 125 * MS and seen == [1] and k.uvm_wait_counter == 0
        events = [e["event"] for e in logs]
        assert events.index("uvm_wait.emergency_bufbackoff") < events.index(
            "pagedaemon.deadlock_detected"
        )

    env.run(body)


def test_N_W3_daemon_with_a_cache_at_its_floor_also_sleeps(kenv: Any) -> None:
    """N-W3: a buffer cache at its floor recovers 0 pages too (bufbackoff_154's floor case)."""
    env = pw.daemonless(kenv, npages=256, swap_pages=16, pdaemon="1.154", bufcachepercent=10)

    async def body(k: Kernel, env: KernelEnv) -> None:
        k.uvm.pagedaemon_proc = env.testproc
        bc = k.bufcache
        assert bc is not None
        pd154.vfs_bio.bufadjust(k, bc.buflowpages)
        t0 = k.sched.now
        await pd154.uvm_wait(k, "selfwait")
        assert k.sched.now - t0 == 125 * MS and bc.recovered == 0

    env.run(body)


def test_N_W4_daemon_deadlock_panics_under_DEBUG(kenv: Any) -> None:
    """N-W4 (lines 155-158): "N-W3 on a DEBUG kernel | panic "pagedaemon deadlock"" - before it
    is counted or sleeps."""
    env = pw.daemonless(kenv, npages=64, swap_pages=16, pdaemon="1.154", debug=True)

    async def body(k: Kernel, env: KernelEnv) -> None:
        k.uvm.pagedaemon_proc = env.testproc
        with pytest.raises(Panic, match="pagedaemon deadlock"):
            await pd154.uvm_wait(k, "selfwait")
        assert k.uvm_wait_counter == 0 and k.slpque.get(chan(k.uvmexp, "free")) is None

    env.run(body)


def test_N_W5_a_waiter_is_counted_while_it_sleeps(live_pagedaemon154: Any) -> None:
    """N-W5 (lines 161-165): "every caller reaching here | uvm_wait_counter +1, wake the daemon,
    sleep on &uvmexp.free (PNORELOCK), uvm_wait_counter -1 once running again". The daemon's
    pass sees the count (1) and wakes the waiter at its end (N-M14); the waiter leaves the
    count only when it runs again."""
    counts: list[int] = []
    env, _passes = live_pagedaemon154(lambda k, n: counts.append(k.uvm_wait_counter), npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        await env.sleep(MS)
        assert k.uvmexp.pdwoke == 0
        await pd154.uvm_wait(k, "testwait")
        assert k.uvm_wait_counter == 0 and k.uvm.fpageqlock.mtx_owner is None
        assert counts and counts[0] == 1 and k.uvmexp.pdwoke == 1

    env.run(body)


def test_N_W5_two_waiters_are_counted_two(live_pagedaemon154: Any) -> None:
    """N-W5 (lines 162, 165): uvm_wait_counter is a count: two kernel threads asleep in
    uvm_wait at once count 2 (the daemon's passes see it), each takes its own 1 off when it
    runs again, and the count ends at 0."""
    counts: list[int] = []
    env, _passes = live_pagedaemon154(lambda k, n: counts.append(k.uvm_wait_counter), npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        back: list[str] = []

        async def waiter(name: str) -> None:
            await k.pdaemon.uvm_wait(k, name)
            back.append(name)

        await env.sleep(MS)
        for name in ("w1", "w2"):
            kthread_create(k, waiter, name, name=name)
        await pw.until(env, lambda: len(back) == 2, "both waiters back")
        await env.settle()
        assert max(counts) == 2 and k.uvm_wait_counter == 0

    env.run(body)


def test_N_W5_a_faulting_process_waits_counted(live_pagedaemon154: Any) -> None:
    """N-W5 from the fault handler: a process touching more pages than are free sleeps in
    uvm_wait ("flt_noram1") counted, until the daemon has paged enough out."""
    seen: list[tuple[int, str | None]] = []

    def look(k: Kernel, n: int) -> None:
        p = h.proc.proc if h.up is not None else None
        seen.append((k.uvm_wait_counter, p.p_wmesg if p is not None else None))

    env, _passes = live_pagedaemon154(look, npages=64, swap_pages=256)
    h = pw.Holder(env.k, regions=[pw.region("anon", 70)])

    async def body(k: Kernel, env: KernelEnv) -> None:
        h.up = env.spawn(pw._holder_main, "big", h=h)
        await pw.until(env, lambda: h.ready, "70 pages touched")
        assert any(c == 1 and w is not None and w.startswith("flt_") for c, w in seen)
        await env.settle()
        assert k.uvm_wait_counter == 0
        await pw.release(env, h)

    env.run(body)


# === uvmpd_tune: N-T1 - N-T4 (lines 171-193) ======================================================


@pytest.mark.parametrize(
    ("npages", "freemin", "freetarg", "wiredmax"),
    [(64, 9, 12, 21), (269, 9, 12, 89), (512, 17, 22, 170), (4096, 136, 181, 1365)],
)
def test_N_T1_N_T2_N_T4_thresholds_from_the_size_of_memory(
    run_kernel: Any, npages: int, freemin: int, freetarg: int, wiredmax: int
) -> None:
    """N-T1 (176-179): freemin = max(npages / 30, 16 KiB of pages); N-T2 (182-184): "below
    reserve_kernel + 1 | raise" (taken under 270 pages, not from 512 on); N-T3' (187-190):
    freetarg = freemin * 4 / 3; N-T4 (192): wiredmax = npages / 3. Called once, by
    uvm_pageout at start."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        await env.sleep(MS)

    env = run_kernel(body, npages=npages, swap_pages=16, config=pw.config(pdaemon="1.154"))
    u = env.k.uvmexp
    assert (u.freemin, u.freetarg, u.wiredmax) == (freemin, freetarg, wiredmax)


def test_N_T3_freetarg_floor_on_a_16k_page_port_with_a_one_page_reserve(
    run_kernel: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """N-T3 (lines 187-190): "freemin*4/3 <= freemin | freetarg = freemin + 1": unreachable with
    4 KiB pages and reserve_kernel 8 (the 1.105 tests sweep it); with the daemon's PAGE_SHIFT
    at 14 and a one-page reserve, freemin is 2 and the floor gives 3."""
    got: list[tuple[int, int]] = []

    async def body(k: Kernel, env: KernelEnv) -> None:
        u = k.uvmexp
        saved = u.npages, u.reserve_kernel, u.freemin, u.freetarg, u.wiredmax
        u.reserve_kernel = 1
        with monkeypatch.context() as m:
            m.setattr(pd154, "PAGE_SHIFT", 14)
            for n in (59, 120):
                u.npages = n
                pd154.uvmpd_tune(k)
                got.append((u.freemin, u.freetarg))
        u.npages, u.reserve_kernel, u.freemin, u.freetarg, u.wiredmax = saved

    run_kernel(body, npages=64, swap_pages=16, config=pw.config(pdaemon="1.154"))
    assert got == [(2, 3), (4, 5)]


def test_uvm_wait_is_the_booted_daemons(kenv: Any) -> None:
    """The kernel's callers reach 1.154's uvm_wait through k.pdaemon (uvm_extern.py)."""
    env = kenv(npages=64, config=pw.config(pdaemon="1.154"))
    assert env.k.pdaemon.uvm_wait is pd154.uvm_wait
