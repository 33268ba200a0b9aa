"""uvm_pdaemon.py: uvm_wait and uvmpd_tune, the daemon's door for sleepers and its thresholds.

Catalogue: uvm_wait (seed lines 118-163) and uvmpd_tune (seed lines 172-196), which the branch
catalogue (docs/uvm-reference.md §2) leaves out of its tables: uvm_wait's wakeup and sleep, the
daemon waiting for itself (bufbackoff, "deadlock detected", DEBUG panic), proc0 under and
without DIAGNOSTIC; uvmpd_tune's worked example, its small-machine floor and its freetarg floor.
The loop itself (M1-M11) is in test_uvm_pdaemon_loop.py. Each test quotes the C comment or the
reference text it pins.

The machine is real: RAM, MMU, swap disk, files. Pages belong to user processes that map
memory, touch it and then sleep until the test releases them (``Holder``); "another CPU" is a
kernel thread running the jobs the test posts (``OtherCpu``), or an ``RWLock.rwl_hook`` for
something that must happen at the instant of a try-lock.

Thresholds on every machine under 270 pages (uvmpd_tune, reference §1.1): freemin 9,
freetarg 12.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from structlog.testing import capture_logs

import kernel.uvm.uvm_pdaemon as uvm_pdaemon
from kernel.kern.kern_synch import chan
from kernel.kernel import Kernel
from kernel.sys.proc import set_curproc
from kernel.sys.systm import Panic
from kernel.uvm import uvm_page

import pdaemon_world as pw
from pdaemon_passes import _free_pages, _kernel_pages
from pdaemon_world import MS

if TYPE_CHECKING:
    from conftest import KernelEnv


# === uvm_wait (seed lines 118-163) ================================================================


def test_uvm_wait_wakes_the_daemon_and_sleeps_until_free_memory_is_announced(
    live_pagedaemon: Any,
) -> None:
    """uvm_wait: "wake the daemon!" then msleep on &uvmexp.free with PNORELOCK; the daemon's
    pass ends with M9 ("if there's any free memory to be had, wake up any waiters")."""
    env, passes = live_pagedaemon(npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        await env.sleep(MS)
        assert k.uvmexp.pdwoke == 0
        await uvm_pdaemon.uvm_wait(k, "testwait")
        assert k.uvmexp.pdwoke == 1 and len(passes) == 1
        assert k.uvm.fpageqlock.mtx_owner is None  # PNORELOCK: returns with no lock held

    env.run(body)


def test_uvm_wait_by_the_daemon_returns_at_once_when_bufbackoff_succeeds(kenv: Any) -> None:
    """uvm_wait: "check for page daemon going to sleep (waiting for itself)": the daemon
    prints, tries bufbackoff(NULL, 4) and returns if that reported success."""
    env = pw.daemonless(kenv, npages=256, swap_pages=16, bufcachepercent=10)

    async def body(k: Kernel, env: KernelEnv) -> None:
        k.uvm.pagedaemon_proc = env.testproc
        bc = k.bufcache
        assert bc is not None and bc.bufpages - bc.buflowpages >= 4
        free, t0 = k.uvmexp.free, k.sched.now
        with capture_logs() as logs:
            await uvm_pdaemon.uvm_wait(k, "selfwait")
        assert k.sched.now == t0  # no sleep
        assert bc.backoffs == 1 and bc.recovered == 4 and k.uvmexp.free == free + 4
        events = [e["event"] for e in logs]
        assert "uvm_wait.emergency_bufbackoff" in events
        assert "pagedaemon.deadlock_detected" not in events

    env.run(body)


def test_uvm_wait_by_the_daemon_without_bufbackoff_reports_deadlock_and_sleeps_125ms(
    kenv: Any,
) -> None:
    """uvm_wait: "[2] put a timeout on the sleep, thus causing the pagedaemon to only pause
    (rather than sleep forever)": printf "pagedaemon: deadlock detected!", timo = 125 ms.
    With no buffer cache bufbackoff fails (reference §1.12)."""
    env = pw.daemonless(kenv, npages=64, swap_pages=16)

    async def body(k: Kernel, env: KernelEnv) -> None:
        k.uvm.pagedaemon_proc = env.testproc
        t0 = k.sched.now
        with capture_logs() as logs:
            await uvm_pdaemon.uvm_wait(k, "selfwait")
        assert k.sched.now - t0 == 125 * MS  # nobody woke it: the timeout ended the sleep
        events = [e["event"] for e in logs]
        assert events.index("uvm_wait.emergency_bufbackoff") < events.index(
            "pagedaemon.deadlock_detected"
        )
        assert k.uvm.fpageqlock.mtx_owner is None

    env.run(body)


def test_uvm_wait_by_the_daemon_panics_on_deadlock_under_DEBUG(kenv: Any) -> None:
    """uvm_wait: "for now we panic if DEBUG is defined" (panic("pagedaemon deadlock"))."""
    env = pw.daemonless(kenv, npages=64, swap_pages=16, debug=True)

    async def body(k: Kernel, env: KernelEnv) -> None:
        k.uvm.pagedaemon_proc = env.testproc
        with pytest.raises(Panic, match="pagedaemon deadlock"):
            await uvm_pdaemon.uvm_wait(k, "selfwait")
        assert k.slpque.get(chan(k.uvmexp, "free")) is None  # it never went to sleep

    env.run(body)


def test_uvm_wait_from_proc0_panics_under_DIAGNOSTIC(kenv: Any) -> None:
    """uvm_wait, #ifdef DIAGNOSTIC: "if (curproc == &proc0) panic("%s: cannot sleep for
    memory during boot", __func__)"."""
    env = pw.daemonless(kenv, npages=64, swap_pages=16)

    async def body(k: Kernel, env: KernelEnv) -> None:
        set_curproc(k.proc0)
        try:
            with pytest.raises(Panic, match="cannot sleep for memory during boot"):
                await uvm_pdaemon.uvm_wait(k, "boot")
        finally:
            set_curproc(env.testproc)

    env.run(body)


def test_uvm_wait_from_proc0_without_DIAGNOSTIC_sleeps_like_any_caller(kenv: Any) -> None:
    """Without DIAGNOSTIC the proc0 check is compiled out: proc0 sleeps on &uvmexp.free until
    a page is freed (uvm_pmr_freepages wakes &uvmexp.free on every call, reference §1.5)."""
    env = pw.daemonless(kenv, npages=64, swap_pages=16, diagnostic=False)

    async def body(k: Kernel, env: KernelEnv) -> None:
        (pg,) = _kernel_pages(k, 1)
        cpu = pw.other_cpu(k)

        async def free_later() -> None:
            await env.sleep(5 * MS)
            _free_pages(k, [pg])

        pw.post(cpu, free_later)
        set_curproc(k.proc0)
        try:
            await uvm_pdaemon.uvm_wait(k, "boot")
        finally:
            set_curproc(env.testproc)
        assert k.sched.now == 5 * MS

    env.run(body)


# === uvmpd_tune (seed lines 172-196) ==============================================================


def test_uvmpd_tune_worked_example_4096_pages(run_kernel: Any) -> None:
    """Reference §1.1 worked example: "npages = 4096 (16 MiB) gives freemin 136, freetarg 181,
    and the seed's stop target free + paging >= 4 x freetarg = 724 pages"; wiredmax =
    npages / 3. uvm_pageout tunes once at start ("ensure correct priority and set paging
    parameters")."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        await env.sleep(MS)

    env = run_kernel(body, npages=4096, swap_pages=16, config=pw.config())
    u = env.k.uvmexp
    assert (u.freemin, u.freetarg, u.wiredmax) == (136, 181, 1365)
    assert u.freetarg << 2 == 724


@pytest.mark.parametrize(
    ("npages", "freemin", "freetarg", "wiredmax"),
    [(16, 9, 12, 5), (64, 9, 12, 21), (269, 9, 12, 89), (300, 10, 13, 100), (512, 17, 22, 170)],
)
def test_uvmpd_tune_keeps_freemin_above_reserve_kernel_on_small_machines(
    run_kernel: Any, npages: int, freemin: int, freetarg: int, wiredmax: int
) -> None:
    """uvmpd_tune: freemin = max(npages / 30, 16 KiB); "Make sure there's always a user page
    free": at least reserve_kernel + 1 = 9; freetarg = freemin * 4 / 3."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        await env.sleep(MS)

    env = run_kernel(body, npages=npages, swap_pages=16, config=pw.config())
    u = env.k.uvmexp
    assert u.reserve_kernel == 8 and u.freemin >= u.reserve_kernel + 1
    assert (u.freemin, u.freetarg, u.wiredmax) == (freemin, freetarg, wiredmax)


def _tune(k: Kernel, npages: int) -> tuple[int, int]:
    """uvmpd_tune of ``k`` as if it had ``npages`` (uvmexp.npages restored after)."""
    u = k.uvmexp
    saved = u.npages, u.freemin, u.freetarg, u.wiredmax
    u.npages = npages
    uvm_page.uvm_lock_pageq(k)
    try:
        uvm_pdaemon.uvmpd_tune(k)
    finally:
        uvm_page.uvm_unlock_pageq(k)
    got = u.freemin, u.freetarg
    u.npages, u.freemin, u.freetarg, u.wiredmax = saved
    return got


def test_uvmpd_tune_freetarg_floor_never_acts_with_4k_pages(run_kernel: Any) -> None:
    """uvmpd_tune: "if (uvmexp.freetarg <= uvmexp.freemin) uvmexp.freetarg = uvmexp.freemin +
    1;" acts only when freemin * 4 / 3 <= freemin, that is freemin <= 2. With 4 KiB pages the
    16 KiB floor alone makes freemin at least 4 (and reserve_kernel 8 makes it at least 9),
    so on this machine the line is dead whatever npages and reserve_kernel are: the booted
    kernel's own uvmpd_tune, for every npages up to 2^16 and a sweep to 2^30, with
    reserve_kernel 0 to 8."""
    seen: list[tuple[int, int, int]] = []

    async def body(k: Kernel, env: KernelEnv) -> None:
        u = k.uvmexp
        reserve = u.reserve_kernel
        sizes = [*range(1, 1 << 16), *(1 << b for b in range(16, 31)), 3 * (1 << 20) + 7]
        for rk in range(0, 9):
            u.reserve_kernel = rk
            for n in sizes:
                freemin, freetarg = _tune(k, n)
                assert freemin >= max(4, rk + 1) and freetarg == freemin * 4 // 3 > freemin
            seen.append((rk, *_tune(k, 4096)))
        u.reserve_kernel = reserve

    run_kernel(body, npages=64, swap_pages=16, config=pw.config())
    assert seen[0] == (0, 136, 181) and seen[8] == (8, 136, 181)


def test_uvmpd_tune_freetarg_floor_on_a_16k_page_port_with_a_one_page_reserve(
    run_kernel: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the floor is for: with 16 KiB pages the 16 KiB minimum is one page, and with a
    kernel reserve of one page "Make sure there's always a user page free" raises freemin to
    reserve_kernel + 1 = 2; then freetarg = 2 * 4 / 3 = 2 <= freemin, and the floor makes it
    freemin + 1 = 3 (above 16 KiB pages: npages 59 gives npages / 30 = 1). Neither this page
    size nor this reserve exists on this machine (previous test); the daemon's PAGE_SHIFT
    and uvmexp.reserve_kernel are changed around one call of the booted kernel's
    uvmpd_tune, the rest of the machine stays at 4 KiB pages."""
    got: list[tuple[int, int]] = []

    async def body(k: Kernel, env: KernelEnv) -> None:
        u = k.uvmexp
        reserve = u.reserve_kernel
        u.reserve_kernel = 1
        with monkeypatch.context() as m:
            m.setattr(uvm_pdaemon, "PAGE_SHIFT", 14)
            got.extend([_tune(k, 59), _tune(k, 60), _tune(k, 120)])
        u.reserve_kernel = reserve

    run_kernel(body, npages=64, swap_pages=16, config=pw.config())
    # 59 and 60 pages: freemin 2 → floor; 120 pages: freemin 4, freetarg 5 (no floor)
    assert got == [(2, 3), (2, 3), (4, 5)]


def test_uvmpd_tune_reserve_floor_at_its_boundary(run_kernel: Any) -> None:
    """uvmpd_tune: "Make sure there's always a user page free": "if (uvmexp.freemin <
    uvmexp.reserve_kernel + 1) uvmexp.freemin = uvmexp.reserve_kernel + 1;" at its boundary,
    with reserve_kernel 8: npages / 30 one below it (8: raised to 9), equal to it (9: kept),
    one above it (10: kept), through the booted kernel's uvmpd_tune."""
    got: dict[int, tuple[int, int]] = {}

    async def body(k: Kernel, env: KernelEnv) -> None:
        assert k.uvmexp.reserve_kernel == 8
        for npages in (240, 269, 270, 299, 300):
            got[npages] = _tune(k, npages)

    run_kernel(body, npages=64, swap_pages=16, config=pw.config())
    assert got == {240: (9, 12), 269: (9, 12), 270: (9, 12), 299: (9, 12), 300: (10, 13)}
