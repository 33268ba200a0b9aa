"""uvm_pdaemon_1_154.py: uvm_pageout, the daemon's loop (lines 205-305), row by row.

Catalogue ids (docs/pdaemon-1.154.md §2.3): N-M0 N-M1 N-M1a N-M1b N-M2 N-M2n N-M3 N-M4 N-M5
N-M5a N-M6 N-M7 N-M7' N-M8 N-M9 N-M10 N-M11 N-M11' N-M12 N-M13 N-M13' N-M14 N-M14' N-M15.
Primes are spelled ``prime``. uvm_wait and uvmpd_tune are in _wait_tune.py, the scans in
_inactive_*.py and _scan.py.

The machine boots with the 1.154 daemon (the ``live_pagedaemon154`` fixture: the real
``pagedaemon`` thread runs uvm_pageout; the buffer cache is off unless a test turns it on).
The test wakes it, or lets an allocator or a sleeper do so, and reads each pass back from
the per-pass hook ``k.hooks["pdaemon.pass"]`` (PassRec) and from its log line, which carries
the pass's ``shortage`` (after the caches' share, floored at 0) and ``inactive_shortage``.
What the daemon asks of the buffer cache is seen by wrapping ``vfs_bio.bufbackoff_154``.

1.154 does not sleep while a request is queued or a thread is counted in uvm_wait: such a
daemon runs one pass after another, each paying ``pass_ns``, and lets the other threads run
every ``yield_ns`` of CPU time (sched_pause, N-M15; docs/pdaemon-1.154.md §5, question 1).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest
from structlog.testing import capture_logs

import kernel.uvm.uvm_pdaemon_1_154 as pd154
from kernel.kern.kern_kthread import kthread_create
from kernel.kern.kern_synch import chan
from kernel.kernel import Kernel, KernelCosts
from kernel.sys.errno import ENOMEM
from kernel.uvm import uvm_pmemrange
from kernel.uvm.uvm import UvmConstraintRange
from kernel.uvm.uvm_page import VmPage, atop
from kernel.uvm.uvm_pmemrange import (
    UVM_PLA_NOWAIT,
    UVM_PLA_USERESERVE,
    UVM_PMA_FREED,
    UVM_PMA_LINKED,
)

import pdaemon_world as pw
from pdaemon_passes import (
    _asleep,
    _daemon,
    _free_at_pass,
    _free_pages,
    _kernel_pages,
    _kernel_pages_at,
    _pass_logs,
    _quiet,
    _record_passes,
    _requester,
    _sleeper,
    _wake_daemon,
)
from pdaemon_world import FREETARG, MS

if TYPE_CHECKING:
    from conftest import KernelEnv

SECOND = 1_000_000_000
DMA_HIGH = 0xFFFFFFFF
NO_CONSTRAINT_LOGGED = -1


@contextmanager
def _backoffs() -> Iterator[list[tuple[UvmConstraintRange | None, int, int]]]:
    """Record each call of bufbackoff_154 the daemon makes: (range, size, what it returned)."""
    calls: list[tuple[UvmConstraintRange | None, int, int]] = []
    real = pd154.vfs_bio.bufbackoff_154

    def spy(k: Kernel, range: UvmConstraintRange | None, size: int) -> int:
        r = real(k, range, size)
        calls.append((range, size, r))
        return r

    pd154.vfs_bio.bufbackoff_154 = spy  # type: ignore[attr-defined]
    try:
        yield calls
    finally:
        pd154.vfs_bio.bufbackoff_154 = real  # type: ignore[attr-defined]


def _waiter(k: Kernel, name: str = "waiter") -> list[int]:
    """A kernel thread in uvm_wait (as an allocator that found nothing would be); the list
    gets the time it returned."""
    back: list[int] = []

    async def main() -> None:
        await k.pdaemon.uvm_wait(k, name)
        back.append(k.sched.now)

    kthread_create(k, main, name=name)
    return back


# === N-M0 - N-M3: start, sleep, the request (lines 205-241) =======================================


def test_N_M0_the_daemon_tunes_and_makes_its_nowait_request(live_pagedaemon154: Any) -> None:
    """N-M0 (lines 213-223): "pagedaemon_proc; tune; nowait_pma = {dma_constraint, 16 pages,
    flags 0}" - not queued until a NOWAIT allocation fails (N-M2n)."""
    env, _passes = live_pagedaemon154(npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        await env.sleep(MS)
        assert _daemon(k).p_comm == "pagedaemon" and k.pdaemon is pd154
        pma = k.nowait_pma
        assert pma is not None and (pma.pm_size, pma.pm_flags) == (16 * 4096, 0)
        assert (pma.pm_constraint.ucr_low, pma.pm_constraint.ucr_high) == (0, DMA_HIGH)
        assert (k.uvmexp.freemin, k.uvmexp.freetarg, k.uvmexp.wiredmax) == (9, 12, 21)

    env.run(body)


def test_N_M1_idle_daemon_sleeps_and_counts_its_wakeups(live_pagedaemon154: Any) -> None:
    """N-M1 (lines 228-234): "no request queued and uvm_wait_counter == 0 | sleep on
    &uvm.pagedaemon; pdwoke +1 after"."""
    env, passes = live_pagedaemon154(npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        await env.sleep(SECOND)
        pd = _daemon(k)
        assert (pd.p_stat, pd.p_wmesg) == ("sleep", "pgdaemon") and passes == []
        _wake_daemon(k)
        await _quiet(env, passes, 1)
        _wake_daemon(k)
        await _quiet(env, passes, 2)
        assert [p.pdwoke for p in passes] == [1, 2] and k.uvm.fpageqlock.mtx_owner is None

    env.run(body)


def test_N_M1a_N_M2_a_queued_request_keeps_the_daemon_going_and_stays_queued(
    live_pagedaemon154: Any,
) -> None:
    """N-M1a (line 229): "a request is queued | no sleep"; N-M2 (236-238): "first request pma |
    size = its pages; constraint = struct copy of its range; the request is neither marked
    BUSY nor unlinked" - a pass hook sees it LINKED only. A requester wants a frame the
    kernel holds; passes follow each other without a sleep until another CPU frees the frame
    (uvm_wakeup_pla unlinks the request), and the daemon sleeps again."""
    held: list[VmPage] = []
    flags: list[list[int]] = []

    def free_it(k: Kernel, n: int) -> None:
        flags.append([pma.pm_flags for pma in k.uvm.pmr_control.allocs])  # type: ignore[union-attr]
        if n == 3:
            _free_pages(k, held)

    env, passes = live_pagedaemon154(free_it, npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        held.extend(_kernel_pages_at(k, 40, 1))
        g = 40
        with capture_logs() as logs, _backoffs() as calls:
            req = _requester(k, 1, g, g + 1)
            await pw.until(env, lambda: bool(req.got), "request satisfied")
            await _quiet(env, passes, len(passes))
        assert req.got == [g]
        assert [p.pdwoke for p in passes[:3]] == [1, 1, 1]
        assert flags[:3] == [[UVM_PMA_LINKED]] * 3  # not BUSY, not unlinked by the daemon
        (pma,) = passes[0].allocs
        assert pma.pm_constraint.ucr_high == 4096 * (g + 1) - 1
        logs_ = _pass_logs(logs)
        assert logs_[0]["pma"] is True and logs_[0]["constraint_high"] == 4096 * (g + 1) - 1
        range_, size, _ = calls[0]
        assert range_ is not None and range_ is not pma.pm_constraint  # a struct copy
        assert size == 2 * 1  # one page asked, no shortage
        assert len(passes) == 3 and k.uvm.pmr_control.allocs.empty()  # type: ignore[union-attr]

    env.run(body)


def test_N_M1b_a_thread_counted_in_uvm_wait_keeps_the_daemon_going(live_pagedaemon154: Any) -> None:
    """N-M1b (line 230): "no request, uvm_wait_counter > 0 | no sleep" (reference §4 item 14,
    fixed). The first pass wakes the waiter (N-M14), but it stays counted until it runs,
    which here is when the daemon has used up its quantum (``yield_ns``, 1 ms; 2 us a
    pass): about 500 passes with pdwoke unchanged and the waiter counted in each, then the
    daemon sleeps."""
    counts: list[int] = []
    env, passes = live_pagedaemon154(lambda k, n: counts.append(k.uvm_wait_counter), npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        back = _waiter(k)
        await pw.until(env, lambda: bool(back), "waiter back")
        await _quiet(env, passes, len(passes))
        n = len(passes)
        assert 400 <= n <= 600, n
        assert all(p.pdwoke == 1 for p in passes)
        assert set(counts) == {1} and k.uvm_wait_counter == 0  # counted through every pass
        assert k.sched.now >= MS  # the daemon paid its quantum: then the waiter ran

    env.run(body)


def test_N_M1b_the_quantum_decides_how_long_the_daemon_spins(live_pagedaemon154: Any) -> None:
    """N-M1b with ``yield_ns`` (the ``[kernel] yield_ns`` key): a quantum of 100 us gives the
    waiter the CPU after about 50 passes instead of 500."""
    env, passes = live_pagedaemon154(npages=64, costs=KernelCosts(yield_ns=100_000))

    async def body(k: Kernel, env: KernelEnv) -> None:
        back = _waiter(k)
        await pw.until(env, lambda: bool(back), "waiter back")
        await _quiet(env, passes, len(passes))
        assert 40 <= len(passes) <= 60, len(passes)

    env.run(body)


def test_N_M2n_a_failed_nowait_search_queues_nowait_pma_at_the_head(
    live_pagedaemon154: Any,
) -> None:
    """N-M2n (lines 236-238 with uvm_pmemrange.c 1.82): a NOWAIT allocation whose search fails
    links nowait_pma at the *head* of the requests and wakes the daemon; its pass then works
    for 16 pages of DMA memory (constraint_high 0xffffffff, bufbackoff asked for 2 x (16 +
    shortage)). A frame freed anywhere below 4 GiB completes it (uvm_wakeup_pla): here the
    frame another CPU frees at the end of pass 3, which a requester queued first waits for."""
    held: list[VmPage] = []
    failed: list[int] = []
    order: list[list[Any]] = []

    def on_pass(k: Kernel, n: int) -> None:
        order.append(list(k.uvm.pmr_control.allocs))  # type: ignore[union-attr]
        if n == 1:
            out: list[VmPage] = []
            g = atop(held[0].phys_addr)
            failed.append(uvm_pmemrange.uvm_pmr_getpages_nowait(
                k, 1, g, g + 1, 1, 0, 1, UVM_PLA_NOWAIT, out))  # fmt: skip
        if n == 3:
            _free_pages(k, held)

    env, passes = live_pagedaemon154(on_pass, npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        held.extend(_kernel_pages(k, 1))
        g = atop(held[0].phys_addr)
        with capture_logs() as logs, _backoffs() as calls:
            req = _requester(k, 1, g, g + 1)
            await pw.until(env, lambda: bool(req.got), "request satisfied")
            await _quiet(env, passes, len(passes))
        assert failed == [ENOMEM] and k.uvm_nowait_failed == 0  # 1.105's flag unused
        assert order[1][0] is k.nowait_pma and len(order[1]) == 2
        lines = _pass_logs(logs)
        assert lines[1]["constraint_high"] == DMA_HIGH
        assert calls[1][1] == 2 * 16
        assert k.nowait_pma is not None and k.nowait_pma.pm_flags == UVM_PMA_FREED  # unlinked
        assert len(passes) == 3 and k.uvm.pmr_control.allocs.empty()  # type: ignore[union-attr]

    env.run(body)


def test_N_M3_no_request_means_no_constraint(live_pagedaemon154: Any) -> None:
    """N-M3 (lines 239-241): "no request | constraint no_constraint, size 0"."""
    env, passes = live_pagedaemon154(npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        with capture_logs() as logs:
            _wake_daemon(k)
            await _quiet(env, passes, 1)
        (line,) = _pass_logs(logs)
        assert line["pma"] is False and line["constraint_high"] == NO_CONSTRAINT_LOGGED

    env.run(body)


# === N-M4 - N-M12: how much to free (lines 243-278) ===============================================


def test_N_M4_shortage_adds_the_buffer_caches_deficit(live_pagedaemon154: Any) -> None:
    """N-M4 (lines 243-245): "shortage = freetarg - free + BUFPAGES_DEFICIT": the buffer cache
    7 pages below its floor (someone lowered bufcachepercent), so at its floor it gives
    nothing back; every pass's shortage is 12 - free + 7, and 7 with free at freetarg."""
    env, passes = live_pagedaemon154(npages=256, bufcachepercent=50)

    async def body(k: Kernel, env: KernelEnv) -> None:
        bc = k.bufcache
        assert bc is not None
        pd154.vfs_bio.bufadjust(k, bc.buflowpages - 7)
        assert pd154.vfs_bio.BUFPAGES_DEFICIT(k) == 7
        with capture_logs() as logs:
            h = await pw.hold(env, "h", pw.region("anon", k.uvmexp.free - FREETARG))
            n = len(passes)
            _wake_daemon(k)
            await pw.until(env, lambda: len(passes) > n, "a pass at free 12")
        lines = _pass_logs(logs)
        assert all(e["shortage"] == max(0, FREETARG - e["free_start"] + 7) for e in lines)
        assert lines[n]["free_start"] == FREETARG and lines[n]["shortage"] == 7
        await env.settle()
        await pw.release(env, h)

    env.run(body)


def test_N_M5_inactarg_is_a_third_of_the_paging_queues(live_pagedaemon154: Any) -> None:
    """N-M5 (lines 250-253): "inactarg = (active + inactive) / 3": 48 active pages give 16."""
    env, passes = live_pagedaemon154(npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("anon", 48))
        _wake_daemon(k)
        await _quiet(env, passes, 1)
        assert passes[0].inactarg == 16 and passes[0].delta["pddeact"] == 16
        await pw.release(env, h)

    env.run(body)


def test_N_M5a_inactarg_is_raised_above_freetarg_on_small_queues(live_pagedaemon154: Any) -> None:
    """N-M5a (lines 254-256): "inactarg <= freetarg | inactarg = freetarg + 1"."""
    env, passes = live_pagedaemon154(npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("anon", 9))
        _wake_daemon(k)
        await _quiet(env, passes, 1)
        assert passes[0].inactarg == FREETARG + 1
        await pw.release(env, h)

    env.run(body)


@pytest.mark.parametrize(("pages", "inactarg"), [(35, FREETARG + 1), (36, FREETARG + 1), (39, 13)])
def test_N_M5a_the_raise_at_its_boundary(
    live_pagedaemon154: Any, pages: int, inactarg: int
) -> None:
    """N-M5a (line 254) at its boundary: "inactarg <= freetarg | inactarg = freetarg + 1".
    35 pages on the paging queues give a third of 11 (below freetarg 12: raised to 13), 36
    give 12 (equal: raised to 13), 39 give 13 (above: kept, not raised)."""
    env, passes = live_pagedaemon154(npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("anon", pages))
        assert k.uvmexp.active + k.uvmexp.inactive == pages
        _wake_daemon(k)
        await _quiet(env, passes, 1)
        assert passes[0].inactarg == inactarg
        await pw.release(env, h)

    env.run(body)


def test_N_M6_inactive_shortage_is_taken_before_any_scan(live_pagedaemon154: Any) -> None:
    """N-M6 (lines 257-260): "inactive_shortage = inactarg - inactive - BUFPAGES_INACT, before
    any scan" (1.105: after the inactive scan): 48 active pages, none inactive: the pass
    logs 16, the shortage it then worked off."""
    env, passes = live_pagedaemon154(npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("anon", 48))
        with capture_logs() as logs:
            _wake_daemon(k)
            await _quiet(env, passes, 1)
        assert _pass_logs(logs)[0]["inactive_shortage"] == 16 and k.uvmexp.inactive == 16
        await pw.release(env, h)

    env.run(body)


def test_N_M6_clean_buffer_cache_pages_count_as_inactive(live_pagedaemon154: Any) -> None:
    """N-M6 with the buffer cache above its floor: BUFPAGES_INACT (its clean pages above the
    floor) lowers the inactive shortage, here below zero: nothing is deactivated."""
    env, passes = live_pagedaemon154(npages=256, bufcachepercent=50)

    async def body(k: Kernel, env: KernelEnv) -> None:
        inact = pd154.vfs_bio.BUFPAGES_INACT(k)
        assert inact > FREETARG + 1
        h = await pw.hold(env, "h", pw.region("anon", 10))
        with capture_logs() as logs:
            _wake_daemon(k)
            await _quiet(env, passes, 1)
        (line,) = _pass_logs(logs)
        assert line["inactive_shortage"] == FREETARG + 1 - inact and line["pddeact"] == 0
        await pw.release(env, h)

    env.run(body)


def test_N_M7prime_N_M8_nothing_asked_backs_the_cache_off_by_32(live_pagedaemon154: Any) -> None:
    """N-M7' (263): free at or above freetarg: size stays 0; N-M8 (265-266): "size == 0 | size
    = 16" (marked XXX upstream): bufbackoff(.., 32)."""
    env, passes = live_pagedaemon154(npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        with _backoffs() as calls:
            _wake_daemon(k)
            await _quiet(env, passes, 1)
        assert [(c[1], c[2]) for c in calls] == [(32, 0)]  # no cache: 0 recovered

    env.run(body)


def test_N_M7_size_is_the_shortage_plus_the_request(live_pagedaemon154: Any) -> None:
    """N-M7 (263-264): "shortage > 0 | size += shortage": free 10 gives shortage 2; with a
    3-page request queued, size 3 + 2 = 5: bufbackoff(.., 10)."""
    held: list[VmPage] = []
    env, _passes = live_pagedaemon154(_free_at_pass(held), npages=256)

    async def body(k: Kernel, env: KernelEnv) -> None:
        held.extend(_kernel_pages_at(k, 200, 3))
        h = await pw.hold(env, "h", pw.region("anon", k.uvmexp.free - 10))
        assert k.uvmexp.free == 10
        with _backoffs() as calls:
            req = _requester(k, 3, 200, 203, UVM_PLA_USERESERVE)
            await pw.until(env, lambda: bool(req.got), "request satisfied")
        assert calls[0][1] == 2 * (3 + FREETARG - 10)
        await env.settle()
        await pw.release(env, h)

    env.run(body)


@pytest.mark.parametrize(("free", "size"), [(11, 1), (12, 16), (13, 16)])
def test_N_M7_a_shortage_of_one_page_is_the_size(
    live_pagedaemon154: Any, free: int, size: int
) -> None:
    """N-M7 (line 263) at its boundary, with no request: free 11 (one below freetarg) is a
    shortage of 1, the size: bufbackoff(.., 2); free 12 (equal) and 13 (above) leave size 0,
    then 16 (N-M8): bufbackoff(.., 32)."""
    env, passes = live_pagedaemon154(npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("anon", k.uvmexp.free - free))
        with _backoffs() as calls:
            _wake_daemon(k)
            await pw.until(env, lambda: len(passes) >= 1, "pass 1")
        assert calls[0][1] == 2 * size
        await env.settle()
        await pw.release(env, h)

    env.run(body)


def test_N_M9_N_M12_the_cache_covers_the_shortage_and_the_scan_frees_nothing(
    live_pagedaemon154: Any,
) -> None:
    """N-M9 (line 268): "shortage -= bufbackoff(&constraint, 2 size)" (pages recovered); N-M12
    (277-278): "shortage < 0 | shortage = 0". Free 10: shortage 2; the cache, above its floor,
    gives back 4: the pass logs shortage 0, pages nothing out and frees nothing."""
    env, passes = live_pagedaemon154(npages=256, bufcachepercent=50)

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("anon", k.uvmexp.free - 10))
        assert k.uvmexp.free == 10
        pw.deactivate(k, pw.pgs(env, h)[:200])  # dirty pages the scan could write
        with capture_logs() as logs, _backoffs() as calls:
            _wake_daemon(k)
            await _quiet(env, passes, 1)
        line = _pass_logs(logs)[0]
        assert calls[0][1:] == (4, 4) and line["shortage"] == 0
        assert line["pdpageouts"] == 0 and line["pdscans"] == 0 and k.uvmexp.free == 14
        await pw.release(env, h)

    env.run(body)


@pytest.mark.parametrize("free", [10, 11, 12, 13, 40])
def test_N_M10_drmbackoff_only_with_DRM_and_a_shortage(live_pagedaemon154: Any, free: int) -> None:
    """N-M10 (lines 269-272): "NDRM > 0 and shortage > 0 | shortage -= drmbackoff(2 size)" - the
    stand-in gives back 0. With free 40 there is no shortage: not called."""
    env, passes = live_pagedaemon154(npages=64, ndrm=1)
    calls: list[int] = []
    real = pd154._drmbackoff

    def spy(k: Kernel, npages: int) -> int:
        calls.append(npages)
        return real(k, npages)

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("anon", k.uvmexp.free - free))
        pd154._drmbackoff = spy  # type: ignore[assignment]
        try:
            _wake_daemon(k)
            await pw.until(env, lambda: len(passes) >= 1, "pass 1")
        finally:
            pd154._drmbackoff = real  # type: ignore[assignment]
        assert calls == ([2 * (FREETARG - free)] if free < FREETARG else [])
        await env.settle()
        await pw.release(env, h)

    env.run(body)


@contextmanager
def _drm(gives: int) -> Iterator[list[int]]:
    """drmbackoff as a DRM device with ``gives`` pages to give back (the stand-in has none);
    records the size of each call."""
    calls: list[int] = []
    real = pd154._drmbackoff

    def drm(k: Kernel, npages: int) -> int:
        calls.append(npages)
        return real(k, npages) + gives

    pd154._drmbackoff = drm  # type: ignore[assignment]
    try:
        yield calls
    finally:
        pd154._drmbackoff = real  # type: ignore[assignment]


@pytest.mark.parametrize(("ndrm", "called", "shortage"), [(1, [6], 2), (0, [], 3)])
def test_N_M10_what_drm_gives_back_comes_off_the_shortage(
    live_pagedaemon154: Any, ndrm: int, called: list[int], shortage: int
) -> None:
    """N-M10 (lines 269-272): "NDRM > 0 and shortage > 0 | shortage -= drmbackoff(2 size)",
    with a DRM device that gives back a page (the stand-in gives none): free 9 is a shortage
    of 3, drmbackoff(6) gives 1, the pass logs 2. A kernel without DRM (NDRM 0, the default)
    never calls it: the pass logs 3."""
    env, passes = live_pagedaemon154(npages=64, ndrm=ndrm)

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("anon", k.uvmexp.free - 9))
        with _drm(1) as calls, capture_logs() as logs:
            _wake_daemon(k)
            await pw.until(env, lambda: len(passes) >= 1, "pass 1")
        assert calls[:1] == called and _pass_logs(logs)[0]["shortage"] == shortage
        await env.settle()
        await pw.release(env, h)

    env.run(body)


@pytest.mark.parametrize("free", [10, 11, 12, 13, 40])
def test_N_M11_the_page_cache_drain_only_with_a_shortage_left(
    live_pagedaemon154: Any, free: int
) -> None:
    """N-M11 (273-274): "shortage > 0 | shortage -= uvm_pmr_cache_drain()" (the stand-in has no
    per-CPU cache and gives 0; here it is made to give 1, and the shortage logged is one
    less); N-M11': no shortage left: not called."""
    env, passes = live_pagedaemon154(npages=64)
    calls: list[int] = []
    real = uvm_pmemrange.uvm_pmr_cache_drain

    def drain(k: Kernel) -> int:
        calls.append(real(k))
        return 1

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("anon", k.uvmexp.free - free))
        pd154.uvm_pmemrange.uvm_pmr_cache_drain = drain  # type: ignore[attr-defined]
        try:
            with capture_logs() as logs:
                _wake_daemon(k)
                await pw.until(env, lambda: len(passes) >= 1, "pass 1")
        finally:
            pd154.uvm_pmemrange.uvm_pmr_cache_drain = real  # type: ignore[attr-defined]
        shortage = _pass_logs(logs)[0]["shortage"]
        if free < FREETARG:
            assert calls == [0] and shortage == FREETARG - free - 1
        else:
            assert calls == [] and shortage == 0
        await env.settle()
        await pw.release(env, h)

    env.run(body)


# === N-M13 - N-M15: scan, wake, pause (lines 283-302) =============================================


def test_N_M13_scans_for_a_free_shortage_alone(live_pagedaemon154: Any) -> None:
    """N-M13 (283-285): "shortage > 0 | uvmpd_scan": free 10, inactive target met."""
    env, passes = live_pagedaemon154(npages=64, swap_pages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("anon", 54))
        pw.deactivate(k, pw.pgs(env, h)[:18])
        assert k.uvmexp.free == 10
        with capture_logs() as logs:
            _wake_daemon(k)
            await pw.until(env, lambda: len(passes) >= 1, "pass 1")
        line = _pass_logs(logs)[0]
        assert line["inactive_shortage"] <= 0 and line["shortage"] == 2 and line["pdrevs"] == 1
        await env.settle()
        await pw.release(env, h)

    env.run(body)


@pytest.mark.parametrize(("free", "revs"), [(11, 1), (12, 0), (13, 0)])
def test_N_M13_a_free_shortage_of_one_page_is_enough(
    live_pagedaemon154: Any, free: int, revs: int
) -> None:
    """N-M13 (line 284), second disjunct at its boundary: no request, inactive target met
    (a third of the held pages inactive): free 11 is a shortage of 1 (scan), free 12 of 0 and
    free 13 of -1, floored at 0 (N-M13': no scan)."""
    env, passes = live_pagedaemon154(npages=64, swap_pages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        n = k.uvmexp.free - free
        h = await pw.hold(env, "h", pw.region("anon", n))
        pw.deactivate(k, pw.pgs(env, h)[: n // 3])
        assert k.uvmexp.free == free
        with capture_logs() as logs:
            _wake_daemon(k)
            await pw.until(env, lambda: len(passes) >= 1, "pass 1")
        line = _pass_logs(logs)[0]
        assert line["inactive_shortage"] <= 0 and line["shortage"] == max(0, FREETARG - free)
        assert line["pdrevs"] == revs
        await env.settle()
        await pw.release(env, h)

    env.run(body)


def test_N_M13_scans_for_an_inactive_shortage_alone(live_pagedaemon154: Any) -> None:
    """N-M13: "inactive_shortage > 0 | uvmpd_scan": plenty free, nothing inactive."""
    env, passes = live_pagedaemon154(npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("anon", 20))
        with capture_logs() as logs:
            _wake_daemon(k)
            await _quiet(env, passes, 1)
        line = _pass_logs(logs)[0]
        assert line["shortage"] == 0 and line["inactive_shortage"] == 13
        assert line["pdrevs"] == 1 and line["pddeact"] == 13
        await pw.release(env, h)

    env.run(body)


@pytest.mark.parametrize(("inactive", "revs"), [(12, 1), (13, 0), (14, 0)])
def test_N_M13_an_inactive_shortage_of_one_page_is_enough(
    live_pagedaemon154: Any, inactive: int, revs: int
) -> None:
    """N-M13 (line 284), third disjunct at its boundary: plenty free, no request, 20 pages on
    the paging queues (inactarg 13): 12 inactive is an inactive shortage of 1 (scan, one page
    deactivated), 13 of 0 and 14 of -1 (N-M13': no scan)."""
    env, passes = live_pagedaemon154(npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("anon", 20))
        pw.deactivate(k, pw.pgs(env, h)[:inactive])
        with capture_logs() as logs:
            _wake_daemon(k)
            await _quiet(env, passes, 1)
        line = _pass_logs(logs)[0]
        assert line["shortage"] == 0 and line["inactive_shortage"] == 13 - inactive
        assert line["pdrevs"] == revs and line["pddeact"] == max(0, 13 - inactive)
        await pw.release(env, h)

    env.run(body)


def test_N_M13_scans_for_a_request_alone(live_pagedaemon154: Any) -> None:
    """N-M13: "request | uvmpd_scan": both targets met, a request waits."""
    held: list[VmPage] = []
    env, _passes = live_pagedaemon154(_free_at_pass(held), npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("anon", 20))
        pw.deactivate(k, pw.pgs(env, h)[:13])
        held.extend(_kernel_pages(k, 1))
        g = atop(held[0].phys_addr)
        with capture_logs() as logs:
            req = _requester(k, 1, g, g + 1)
            await pw.until(env, lambda: bool(req.got), "request satisfied")
        line = _pass_logs(logs)[0]
        assert line["shortage"] == 0 and line["inactive_shortage"] <= 0 and line["pdrevs"] == 1
        await pw.release(env, h)

    env.run(body)


def test_N_M13prime_no_scan_when_nothing_is_short(live_pagedaemon154: Any) -> None:
    """N-M13': "none | no scan (pdrevs unchanged)": free 44, inactive 13 = inactarg."""
    env, passes = live_pagedaemon154(npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("anon", 20))
        pw.deactivate(k, pw.pgs(env, h)[:13])
        _wake_daemon(k)
        await _quiet(env, passes, 1)
        assert passes[0].delta["pdrevs"] == 0 and k.uvmexp.pdrevs == 0
        await pw.release(env, h)

    env.run(body)


async def _m14_scenario(env: KernelEnv, free: int, dirty: int) -> tuple[int, int, bool]:
    """A free-memory sleeper; 54 pages held, ``dirty`` of them inactive (this pass writes them);
    kernel pages held so that ``free`` are free. Returns (free, paging, sleeper still queued)
    at the end of pass 1."""
    k = env.k
    seen: list[tuple[int, int, bool]] = []
    s = _sleeper(k, chan(k.uvmexp, "free"), "freewait")

    def look(k: Kernel, n: int) -> None:
        if n == 1:
            seen.append((k.uvmexp.free, k.uvmexp.paging, _asleep(k, s)))

    _record_passes(k, look)
    h = await pw.hold(env, "h", pw.region("anon", 54))
    pw.deactivate(k, pw.pgs(env, h)[:dirty])
    held = _kernel_pages(k, k.uvmexp.free - free)
    _wake_daemon(k)
    await pw.until(env, lambda: bool(seen), "pass 1")
    await env.settle()
    _free_pages(k, held)
    await pw.release(env, h)
    return seen[0]


@pytest.mark.parametrize(
    ("free", "dirty", "want"),
    [(10, 8, (10, 2, False)), (8, 0, (8, 0, False)), (8, 8, (8, 4, True))],
    ids=["N_M14_free_above_the_reserve", "N_M14_nothing_in_flight", "N_M14prime_at_reserve_paging"],
)
def test_N_M14_wakes_the_free_sleepers_if_memory_can_be_had(
    kenv: Any, free: int, dirty: int, want: tuple[int, int, bool]
) -> None:
    """N-M14 (291-295): "free > reserve_kernel or paging == 0 | wakeup(&uvmexp.free)"; N-M14':
    free at the reserve (8) with this pass's writes in flight: the sleeper stays asleep. The
    shortage decides how much is in flight: 2 with free 10, 4 with free 8."""
    env = kenv(npages=64, swap_pages=64, config=pw.config(pdaemon="1.154"))
    out: list[tuple[int, int, bool]] = []

    async def body(k: Kernel, env: KernelEnv) -> None:
        out.append(await _m14_scenario(env, free, dirty))

    env.run(body)
    assert out == [want]


def test_N_M15_each_pass_ends_unlocked_and_pays_its_cpu_time(live_pagedaemon154: Any) -> None:
    """N-M15 (300-302): "unlock the page queues, sched_pause": a daemon that cannot satisfy a
    request (memory above 4 GiB) loops without sleeping and yields every pass when a pass
    costs a whole quantum: passes are a quantum apart, every lock free between them."""
    env, passes = live_pagedaemon154(npages=64, costs=KernelCosts(pass_ns=MS))

    async def body(k: Kernel, env: KernelEnv) -> None:
        high = atop(DMA_HIGH + 1)
        _requester(k, 1, high, high + 1)
        await pw.until(env, lambda: len(passes) >= 4, "four passes")
        times = [p.t for p in passes[:4]]
        assert all(b - a >= MS for a, b in itertools.pairwise(times))
        assert all(p.pageq_free and p.fpageq_free for p in passes)
        assert [p.pdwoke for p in passes[:4]] == [1, 1, 1, 1]

    env.run(body)
