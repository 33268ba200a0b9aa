"""uvm_pdaemon.py: uvm_pageout, the daemon's loop: one test per row M1-M11.

Catalogue ids (docs/uvm-reference.md §2.1): M1 M1' M2 M3 M4 M5 M6 M7 M8 M8' M9 M9' M10 M10'
M11 (primes are spelled ``prime`` in test names). The rest of the daemon: uvm_wait and
uvmpd_tune in test_uvm_pdaemon_wait_tune.py, uvmpd_scan and the active walk (S*, A*) in
test_uvm_pdaemon_scan.py, the inactive scan (I*) in test_uvm_pdaemon_inactive_*.py, the
helpers of §2.4 (D*, trylockowner, dropswap, drop/hibernate) in test_uvm_pdaemon_helpers.py.
Each test quotes the row or the C comment it pins.

The machine is real: RAM, MMU, swap disk, files. Pages belong to user processes that map memory,
touch it and then sleep until the test releases them (``Holder``); "another CPU" is a kernel
thread running the jobs the test posts (``OtherCpu``), or an ``RWLock.rwl_hook`` for something
that must happen at the instant of a try-lock. The machine boots normally (the
``live_pagedaemon`` fixture): the real ``pagedaemon`` thread runs ``uvm_pageout``; the test
wakes it, or lets an allocator do so, and reads the passes back from the daemon's per-pass hook
``k.hooks["pdaemon.pass"]``, which records each pass and, where a row needs it, acts at the end
of a pass as another CPU would (``on_pass``).

Thresholds on every machine under 270 pages (uvmpd_tune, reference §1.1): freemin 9,
freetarg 12, inactarg at least 13, and the seed's stop target free + paging >= 48.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import pytest
from structlog.testing import capture_logs

import kernel.kern.vfs_bio as vfs_bio
from kernel.kern.kern_synch import RWLock, chan
from kernel.kernel import Kernel, KernelCosts
from kernel.sys.errno import ENOMEM
from kernel.uvm import uvm_pmemrange
from kernel.uvm.uvm_page import PQ_FREE, VmPage, atop, ptoa
from kernel.uvm.uvm_pmemrange import (
    UVM_PLA_NOWAIT,
    UVM_PLA_USERESERVE,
    UVM_PMA_BUSY,
    UVM_PMA_FREED,
    UVM_PMA_LINKED,
    UvmPmalloc,
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
NO_CONSTRAINT_LOGGED = -1  # the pass log line shows no_constraint's high end as -1


def _spinning_costs() -> KernelCosts:
    """Each daemon pass costs a whole scheduling quantum, so sched_pause (M11) pays it: a daemon
    that loops without sleeping runs one pass per millisecond of virtual time."""
    return KernelCosts(pass_ns=MS)


# === uvm_pageout: M1-M11 (seed lines 208-323) =====================================================


def test_M1_sleeps_when_no_request_and_no_nowait_failure(live_pagedaemon: Any) -> None:
    """M1: "`uvm_nowait_failed == 0` and request list empty | sleep on `&uvm.pagedaemon` (free
    lock, no timeout); after waking `pdwoke` +1"."""
    env, passes = live_pagedaemon(npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        await env.sleep(SECOND)
        pd = _daemon(k)
        assert (pd.p_stat, pd.p_wmesg) == ("sleep", "pgdaemon")  # no timeout in a whole second
        assert k.uvmexp.pdwoke == 0 and passes == []
        _wake_daemon(k)
        await _quiet(env, passes, 1)
        assert k.uvmexp.pdwoke == 1 and passes[0].pdwoke == 1
        assert k.uvm.fpageqlock.mtx_owner is None  # msleep released the interlock

    env.run(body)


def test_M1_counts_every_wakeup_in_pdwoke(live_pagedaemon: Any) -> None:
    """M1: "after waking `pdwoke` +1", on every wakeup: woken twice, pdwoke 2."""
    env, passes = live_pagedaemon(npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        for n in (1, 2):
            _wake_daemon(k)
            await _quiet(env, passes, n)
        assert k.uvmexp.pdwoke == 2 and [p.pdwoke for p in passes] == [1, 2]

    env.run(body)


def test_M1prime_no_sleep_while_a_nowait_failure_is_flagged(live_pagedaemon: Any) -> None:
    """M1': "flag set or list non-empty | no sleep, `pdwoke` unchanged". At the end of pass 1
    another CPU's NOWAIT allocation fails its search (reference §1.5 step 5: "sets the global
    `uvm_nowait_failed = 1` and wakes the daemon"): pass 2 follows without a sleep."""
    failed: list[int] = []

    def nowait_fails(k: Kernel, n: int) -> None:
        if n == 1:  # a one-page NOWAIT allocation inside a frame the holder owns
            out: list[VmPage] = []
            f = frame[0]
            r = uvm_pmemrange.uvm_pmr_getpages_nowait(k, 1, f, f + 1, 1, 0, 1, UVM_PLA_NOWAIT, out)
            failed.append(r)
            assert k.uvm_nowait_failed == 1

    env, passes = live_pagedaemon(nowait_fails, npages=64)
    frame: list[int] = []

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("anon", 4, None, "w"))
        frame.append(atop(pw.pg(env, h, 0, 0).phys_addr))
        with capture_logs() as logs:
            _wake_daemon(k)
            await _quiet(env, passes, 2)
        assert failed == [ENOMEM]
        assert [p.pdwoke for p in passes] == [1, 1]  # pass 2 came without a sleep
        assert k.uvm_nowait_failed == 0  # M3 of pass 2 cleared it
        assert [e["constraint_high"] for e in _pass_logs(logs)] == [NO_CONSTRAINT_LOGGED, DMA_HIGH]
        await pw.release(env, h)

    env.run(body)


async def _request_scenario(env: KernelEnv) -> dict[str, Any]:
    """A WAITOK allocation wants the frame of a clean inactive file page. The daemon's pass
    frees that page (I7), which marks the request FREED (uvm_wakeup_pla; it stays queued while
    BUSY), and M10 completes it. Snapshots of the queued request are taken at each try-lock
    of the file's object lock, during the scan."""
    k = env.k
    h = await pw.hold(env, "h", ("anon", 20, None, "w"), ("file", 4, "f.dat", "r"))
    files = pw.pgs(env, h, 1)
    pw.deactivate(k, files)
    f = atop(files[0].phys_addr)
    assert f >= 1 and k.uvmexp.free == 40
    pmr = k.uvm.pmr_control
    assert pmr is not None
    seen: list[tuple[UvmPmalloc | None, int, int, int]] = []

    def during_scan(rwl: RWLock) -> None:
        pma = pmr.allocs.first()
        if pma is not None:
            c = pma.pm_constraint
            seen.append((pma, int(pma.pm_flags), c.ucr_low, c.ucr_high))
        else:
            seen.append((None, 0, 0, 0))

    pw.lock(h, 1).rwl_hook = during_scan
    with capture_logs() as logs:
        req = _requester(k, 1, f, f + 1)
        await pw.until(env, lambda: bool(req.got), "request satisfied")
    pw.lock(h, 1).rwl_hook = None
    await pw.release(env, h)
    return {"frame": f, "req": req, "seen": seen, "logs": _pass_logs(logs), "pmr": pmr}


def test_M2_first_request_is_the_pma_marked_busy_and_its_range_is_the_constraint(
    live_pagedaemon: Any,
) -> None:
    """M2: "list non-empty | first request = pma; set its BUSY; constraint = its range".
    uvm_wait_pla queues the range in bytes: ptoa(start) .. ptoa(end) - 1 (reference §1.5)."""
    env, passes = live_pagedaemon(npages=64)
    out: dict[str, Any] = {}

    async def body(k: Kernel, env: KernelEnv) -> None:
        out.update(await _request_scenario(env))
        await _quiet(env, passes, 1)

    env.run(body)
    f = out["frame"]
    pma, flags, low, high = out["seen"][0]
    assert pma is not None and flags == UVM_PMA_LINKED | UVM_PMA_BUSY
    assert (low, high) == (ptoa(f), ptoa(f + 1) - 1)
    (log,) = out["logs"]
    assert log["pma"] is True and log["constraint_high"] == ptoa(f + 1) - 1


def test_M10_request_freed_during_the_pass_is_unlinked_and_its_requester_woken(
    live_pagedaemon: Any,
) -> None:
    """M10: "pma, FREED set | clear BUSY and LINKED, unlink, wake the requester". While the
    daemon holds it BUSY, uvm_wakeup_pla only sets FREED (reference §1.5: "if the request is
    not BUSY it also clears LINKED, unlinks it and wakes its sleeper")."""
    env, passes = live_pagedaemon(npages=64)
    out: dict[str, Any] = {}

    async def body(k: Kernel, env: KernelEnv) -> None:
        out.update(await _request_scenario(env))
        await _quiet(env, passes, 1)

    env.run(body)
    seen = out["seen"]
    pma = seen[0][0]
    assert pma is not None and len(seen) >= 2
    # after the requested frame was freed, still queued and BUSY, now FREED
    assert seen[1][:2] == (pma, UVM_PMA_LINKED | UVM_PMA_BUSY | UVM_PMA_FREED)
    assert pma.pm_flags == UVM_PMA_FREED  # M10 cleared BUSY and LINKED
    assert out["pmr"].allocs.empty() and passes[0].allocs == []
    assert out["req"].got == [out["frame"]] and out["req"].error == 0
    assert len(passes) == 1 and env.k.uvmexp.pdwoke == 1  # then M1: asleep again


def test_M10prime_unsatisfied_request_brings_the_next_pass_without_a_sleep(
    live_pagedaemon: Any,
) -> None:
    """M10': "pma, FREED not set | clear BUSY only; request stays queued → next loop does not
    sleep" ("XXX If UVM_PMA_FREED isn't set, no pages were freed.  Should we set UVM_PMA_FAIL
    in that case?"). The requested frame is a kernel page; another CPU frees it at the end of
    pass 2: uvm_wakeup_pla completes the request itself, as it is no longer BUSY."""
    held: list[VmPage] = []
    env, passes = live_pagedaemon(_free_at_pass(held, at=2), npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        held.extend(_kernel_pages(k, 1))
        g = atop(held[0].phys_addr)
        req = _requester(k, 1, g, g + 1)
        await pw.until(env, lambda: bool(req.got), "request satisfied")
        await _quiet(env, passes, 2)
        assert req.got == [g]
        p1 = passes[0]
        (pma,) = p1.allocs
        assert p1.delta["pdrevs"] == 1  # M8: a request means a scan
        assert pma.pm_flags == UVM_PMA_FREED  # completed by uvm_wakeup_pla at pass 2's end
        assert [p.pdwoke for p in passes] == [1, 1]  # M1': pass 2 without a sleep

    env.run(body)


def test_M10prime_leaves_the_request_linked_without_BUSY(live_pagedaemon: Any) -> None:
    """M10': at the end of a pass that freed nothing in its range, the request is still on
    the list, LINKED, no longer BUSY, and its requester still sleeps."""
    held: list[VmPage] = []
    state: list[tuple[int, bool, bool]] = []

    def look(k: Kernel, n: int) -> None:
        pmr = k.uvm.pmr_control
        assert pmr is not None
        pma = pmr.allocs.first()
        assert pma is not None
        state.append((int(pma.pm_flags), pmr.allocs.contains(pma), bool(k.slpque.get(pma))))
        if n == 1:
            _free_pages(k, held)

    env, _ = live_pagedaemon(look, npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        held.extend(_kernel_pages(k, 1))
        g = atop(held[0].phys_addr)
        req = _requester(k, 1, g, g + 1)
        await pw.until(env, lambda: bool(req.got), "request satisfied")

    env.run(body)
    assert state == [(UVM_PMA_LINKED, True, True)]  # the requester sleeps on the pma


def test_M3_nowait_failure_constrains_only_bufbackoff_to_dma_and_clears_the_flag(
    live_pagedaemon: Any,
) -> None:
    """M3: "list empty, flag set | constraint = `dma_constraint`; clear the flag; pma = none"
    ("XXX realisticly, this is what our nowait callers probably care about"). "with M3 the
    DMA constraint only reaches bufbackoff; the scans get `pma == NULL`"."""
    env, passes = live_pagedaemon(npages=256, bufcachepercent=50)

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("anon", 4, None, "w"))
        f = atop(pw.pg(env, h, 0, 0).phys_addr)
        bc = k.bufcache
        assert bc is not None
        with capture_logs() as logs:
            out: list[VmPage] = []
            r = uvm_pmemrange.uvm_pmr_getpages_nowait(k, 1, f, f + 1, 1, 0, 1, UVM_PLA_NOWAIT, out)
            assert r != 0 and k.uvm_nowait_failed == 1
            await _quiet(env, passes, 1)
        assert k.uvm_nowait_failed == 0 and k.uvmexp.pdwoke == 1
        (log,) = _pass_logs(logs)
        assert log["pma"] is False and log["constraint_high"] == DMA_HIGH
        assert bc.backoffs == 1 and bc.recovered == 32  # bufbackoff(&dma_constraint, 2 x 16)
        await pw.release(env, h)

    env.run(body)


def test_M4_without_request_or_flag_the_constraint_is_unrestricted(live_pagedaemon: Any) -> None:
    """M4: "list empty, flag clear | constraint = `no_constraint`"."""
    env, passes = live_pagedaemon(npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        with capture_logs() as logs:
            _wake_daemon(k)
            await _quiet(env, passes, 1)
        (log,) = _pass_logs(logs)
        assert log["pma"] is False and log["constraint_high"] == NO_CONSTRAINT_LOGGED

    env.run(body)


def test_M5_retunes_when_npages_changed_since_the_last_loop(live_pagedaemon: Any) -> None:
    """M5: "npages changed since last loop | rerun uvmpd_tune" ("check for new pages?").
    Memory hot-plug is not modelled: the test changes uvmexp.npages as uvm_page_physload
    would, then puts it back."""
    env, passes = live_pagedaemon(npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        _wake_daemon(k)
        await _quiet(env, passes, 1)
        assert (passes[0].freemin, passes[0].freetarg, passes[0].wiredmax) == (9, 12, 21)
        k.uvmexp.npages = 512
        _wake_daemon(k)
        await _quiet(env, passes, 2)
        assert (passes[1].freemin, passes[1].freetarg, passes[1].wiredmax) == (17, 22, 170)
        k.uvmexp.npages = 64
        _wake_daemon(k)
        await _quiet(env, passes, 3)
        assert (passes[2].freemin, passes[2].freetarg, passes[2].wiredmax) == (9, 12, 21)

    env.run(body)


def test_M6_inactarg_is_a_third_of_the_paging_queues(live_pagedaemon: Any) -> None:
    """M6: "inactarg = (active+inactive)/3, raised to freetarg+1 if <= freetarg": 48 active
    pages give 16; the scan (M8: inactive 0 < 16) then deactivates 16 (A5)."""
    env, passes = live_pagedaemon(npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("anon", 48, None, "w"))
        assert k.uvmexp.pdwoke == 0 and (k.uvmexp.active, k.uvmexp.inactive) == (48, 0)
        _wake_daemon(k)
        await _quiet(env, passes, 1)
        assert passes[0].inactarg == 16 and passes[0].delta["pddeact"] == 16
        await pw.release(env, h)

    env.run(body)


def test_M6_inactarg_is_raised_above_freetarg_on_small_queues(live_pagedaemon: Any) -> None:
    """M6: 9 active pages give 9 / 3 = 3 <= freetarg 12, raised to freetarg + 1 = 13."""
    env, passes = live_pagedaemon(npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("anon", 9, None, "w"))
        _wake_daemon(k)
        await _quiet(env, passes, 1)
        assert passes[0].inactarg == FREETARG + 1
        await pw.release(env, h)

    env.run(body)


def test_M6_inactarg_equal_to_freetarg_is_raised_too(live_pagedaemon: Any) -> None:
    """M6 at its boundary, "raised to freetarg+1 if **<=** freetarg": 36 active pages give
    36 / 3 = 12 = freetarg, raised to 13."""
    env, passes = live_pagedaemon(npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("anon", 36, None, "w"))
        assert (k.uvmexp.active, k.uvmexp.inactive) == (36, 0)
        _wake_daemon(k)
        await _quiet(env, passes, 1)
        assert passes[0].inactarg == FREETARG + 1
        await pw.release(env, h)

    env.run(body)


@pytest.mark.parametrize("ndrm", [0, 1])
def test_M7_size_zero_becomes_16_and_bufbackoff_gets_twice_that(
    live_pagedaemon: Any, ndrm: int
) -> None:
    """M7: "size = pma pages + max(0, freetarg - (free - DEFICIT)); 0 → 16" ("size = 16;
    /* XXX */"), then "(void) bufbackoff(&constraint, size * 2)". The cache backs off by
    max(size, bufbackpages) pages (reference §1.12): here 32. With NDRM > 0 the daemon also
    calls drmbackoff(size * 2), a no-op here (no DRM device is emulated)."""
    env, passes = live_pagedaemon(npages=256, bufcachepercent=50, ndrm=ndrm)

    async def body(k: Kernel, env: KernelEnv) -> None:
        bc = k.bufcache
        assert bc is not None and bc.bufbackpages < 32 and bc.bufpages - bc.buflowpages > 32
        free, numbufpages = k.uvmexp.free, bc.bcstats.numbufpages
        assert free >= FREETARG
        _wake_daemon(k)
        await _quiet(env, passes, 1)
        assert bc.backoffs == 1 and bc.recovered == 32
        assert bc.bcstats.numbufpages == numbufpages - 32 and k.uvmexp.free == free + 32

    env.run(body)


def test_M7_size_is_the_free_target_shortfall(live_pagedaemon: Any) -> None:
    """M7: with free 10 and no request, size = freetarg - free = 2: bufbackoff(.., 4)."""
    env, passes = live_pagedaemon(npages=256, bufcachepercent=50)

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("anon", k.uvmexp.free - 10, None, "w"))
        bc = k.bufcache
        assert bc is not None and k.uvmexp.free == 10 and k.uvmexp.pdwoke == 0
        assert vfs_bio.BUFPAGES_DEFICIT(k) == 0
        _wake_daemon(k)
        await _quiet(env, passes, 1)
        assert bc.backoffs == 1 and bc.recovered == 2 * (FREETARG - 10)
        await pw.release(env, h)

    env.run(body)


def test_M7_size_counts_the_buffer_cache_deficit(live_pagedaemon: Any) -> None:
    """M7: "size = ... + max(0, freetarg - (free - DEFICIT))": free 10, and the buffer cache
    7 pages below its floor, so size = 12 - 3 = 9 and bufbackoff(.., 18). The cache was
    set below its floor (bufadjust, as sysctl kern.bufcachepercent does), then asked to grow
    while memory was short (buf_refill): its target is 104 pages but it holds 5. A cache
    below its floor gives no page back; what the daemon asked for shows in the target,
    lowered by max(size * 2, bufbackpages) (reference §1.12): 104 - 18 = 86."""
    targets: list[int] = []

    def look(k: Kernel, n: int) -> None:
        if n == 1:
            assert k.bufcache is not None
            targets.append(k.bufcache.bufpages)

    env, _ = live_pagedaemon(look, npages=256, bufcachepercent=50)

    async def body(k: Kernel, env: KernelEnv) -> None:
        bc = k.bufcache
        assert bc is not None and (bc.buflowpages, bc.bufbackpages) == (12, 1)
        vfs_bio.bufadjust(k, 4)
        held = _kernel_pages(k, k.uvmexp.free - 10)
        vfs_bio.buf_refill(k, 100)  # one page, then the allocator refuses: free 9
        _free_pages(k, held[:1])
        assert (k.uvmexp.free, vfs_bio.BUFPAGES_DEFICIT(k), bc.bufpages) == (10, 7, 104)
        _wake_daemon(k)
        await pw.until(env, lambda: bool(targets), "pass 1")
        assert targets == [86] and bc.recovered == 0
        await env.settle()
        _free_pages(k, held[1:])

    env.run(body)


def test_M7_size_adds_the_request_pages_to_the_shortfall(live_pagedaemon: Any) -> None:
    """M7: "size = pma pages (pm_size>>PAGE_SHIFT, if pma) + ..." : a 3-page kernel request
    (USERESERVE, so the reserve does not stop it before its search) with free 10 gives
    size 3 + 2 = 5: bufbackoff(.., 10). Another CPU frees the requested frames at the end of
    the pass."""
    held: list[VmPage] = []
    env, passes = live_pagedaemon(_free_at_pass(held), npages=256, bufcachepercent=50)

    async def body(k: Kernel, env: KernelEnv) -> None:
        held.extend(_kernel_pages_at(k, 200, 3))
        h = await pw.hold(env, "h", ("anon", k.uvmexp.free - 10, None, "w"))
        bc = k.bufcache
        assert bc is not None and k.uvmexp.free == 10
        req = _requester(k, 3, 200, 203, UVM_PLA_USERESERVE)
        await pw.until(env, lambda: bool(req.got), "request satisfied")
        assert req.got == [200, 201, 202]
        assert passes[0].delta["pdrevs"] == 1
        assert bc.backoffs == 1 and bc.recovered == 2 * (3 + FREETARG - 10)
        await pw.release(env, h)

    env.run(body)


def test_M7_bufbackoff_gets_the_constraint_a_request_above_dma_recovers_nothing(
    live_pagedaemon: Any,
) -> None:
    """M7: "bufbackoff(&constraint, 2×size)" with M2's constraint. A request for memory above
    4 GiB (none on this machine): bufbackoff "return -1 if the range lies entirely above DMA
    memory" (reference §1.12), so the cache keeps its pages; the daemon goes on."""
    env, passes = live_pagedaemon(npages=256, bufcachepercent=50, costs=_spinning_costs())

    async def body(k: Kernel, env: KernelEnv) -> None:
        bc = k.bufcache
        assert bc is not None
        high = atop(DMA_HIGH + 1)  # the first page above 4 GiB
        _requester(k, 1, high, high + 1)
        await pw.until(env, lambda: len(passes) >= 2, "two passes")
        (pma,) = passes[0].allocs
        assert pma.pm_constraint.ucr_low == DMA_HIGH + 1 and pma.pm_flags == UVM_PMA_LINKED
        assert bc.backoffs >= 2 and bc.recovered == 0  # every pass asked, none got a page
        assert passes[0].delta["pdrevs"] == 1

    env.run(body)


def test_M8_scans_when_free_is_below_freetarg(live_pagedaemon: Any) -> None:
    """M8: "pma, or `free − DEFICIT < freetarg`, or `inactive + INACT < inactarg` |
    `uvmpd_scan(pma)`": free 10 < 12 with the inactive target met (18 of inactarg 18)."""
    env, passes = live_pagedaemon(npages=64, swap_pages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("anon", 54, None, "w"))
        pw.deactivate(k, pw.pgs(env, h, 0)[:18])
        assert k.uvmexp.free == 10 and k.uvmexp.inactive == 18 and k.uvmexp.pdwoke == 0
        _wake_daemon(k)
        await pw.until(env, lambda: len(passes) >= 1, "pass 1")
        p1 = passes[0]
        assert p1.inactarg == 18 and p1.delta["pdrevs"] == 1
        await env.settle()
        await pw.release(env, h)

    env.run(body)


def test_M8_scans_when_inactive_is_below_inactarg(live_pagedaemon: Any) -> None:
    """M8: free 44 >= freetarg, but inactive 0 < inactarg 13: scan, and A5 deactivates 13."""
    env, passes = live_pagedaemon(npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("anon", 20, None, "w"))
        _wake_daemon(k)
        await _quiet(env, passes, 1)
        assert passes[0].delta["pdrevs"] == 1 and passes[0].delta["pddeact"] == 13
        await pw.release(env, h)

    env.run(body)


def test_M8_scans_for_a_queued_request_even_when_both_targets_are_met(live_pagedaemon: Any) -> None:
    """M8: "pma" alone is enough: free 43 and inactive 13 = inactarg, but a request waits."""
    held: list[VmPage] = []
    env, passes = live_pagedaemon(_free_at_pass(held), npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("anon", 20, None, "w"))
        pw.deactivate(k, pw.pgs(env, h, 0)[:13])
        held.extend(_kernel_pages(k, 1))
        g = atop(held[0].phys_addr)
        req = _requester(k, 1, g, g + 1)
        await pw.until(env, lambda: bool(req.got), "request satisfied")
        p1 = passes[0]
        assert p1.free >= FREETARG and p1.inactive >= p1.inactarg == 13
        assert p1.delta["pdrevs"] == 1
        await pw.release(env, h)

    env.run(body)


def test_M8prime_no_scan_when_both_targets_are_met_and_nothing_is_requested(
    live_pagedaemon: Any,
) -> None:
    """M8': "none of those | no scan": free 44 >= 12 and inactive 13 >= inactarg 13."""
    env, passes = live_pagedaemon(npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("anon", 20, None, "w"))
        pw.deactivate(k, pw.pgs(env, h, 0)[:13])
        _wake_daemon(k)
        await _quiet(env, passes, 1)
        assert k.uvmexp.pdwoke == 1 and passes[0].inactarg == 13
        assert passes[0].delta["pdrevs"] == 0 and k.uvmexp.pdrevs == 0
        await pw.release(env, h)

    env.run(body)


def test_M8_scans_when_the_buffer_cache_deficit_takes_free_below_freetarg(
    live_pagedaemon: Any,
) -> None:
    """M8: "`free − DEFICIT < freetarg`": free 15 >= freetarg, but the buffer cache is 8 pages
    below its floor (bufadjust, as sysctl kern.bufcachepercent does), so only 7 pages count
    as free: scan. The inactive target is met (20 of inactarg 20), nothing is requested, and
    a cache below its floor gives nothing back to M7's bufbackoff."""
    env, passes = live_pagedaemon(npages=256, bufcachepercent=50)

    async def body(k: Kernel, env: KernelEnv) -> None:
        bc = k.bufcache
        assert bc is not None
        h = await pw.hold(env, "h", ("anon", 60, None, "w"))
        pw.deactivate(k, pw.pgs(env, h, 0)[:20])
        vfs_bio.bufadjust(k, bc.buflowpages - 8)
        held = _kernel_pages(k, k.uvmexp.free - 15)
        assert k.uvmexp.free == 15 and vfs_bio.BUFPAGES_DEFICIT(k) == 8 and passes == []
        assert vfs_bio.BUFPAGES_INACT(k) == 0 and k.uvmexp.inactive == 20
        _wake_daemon(k)
        await pw.until(env, lambda: len(passes) >= 1, "pass 1")
        assert passes[0].inactarg == 20 and passes[0].delta["pdrevs"] == 1
        assert bc.backoffs == 1 and bc.recovered == 0
        await env.settle()
        _free_pages(k, held)
        await pw.release(env, h)

    env.run(body)


def test_M8_the_scan_gets_the_request(live_pagedaemon: Any) -> None:
    """M8: "`uvmpd_scan(pma)`": the request goes to the scan. A WAITOK allocation wants frame
    0, which the kernel holds; its request covers bytes 0 .. 4095, so every page *number*
    of this machine is in its range (reference §4.5) and, not FREED, it keeps the inactive
    scan going although free is far above 4 x freetarg (which alone would end it at once,
    I1a): both clean inactive file pages are freed. Another CPU frees frame 0 at the end of
    the pass."""
    held: list[VmPage] = []
    env, passes = live_pagedaemon(_free_at_pass(held), npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        held.extend(_kernel_pages_at(k, 0, 1))
        h = await pw.hold(env, "h", ("anon", 4, None, "w"), ("file", 2, "f.dat", "r"))
        files = pw.pgs(env, h, 1)
        pw.deactivate(k, files)
        assert k.uvmexp.free >= 4 * FREETARG
        req = _requester(k, 1, 0, 1)
        await pw.until(env, lambda: bool(req.got), "request satisfied")
        assert req.got == [0] and passes[0].delta["pdfreed"] == 2
        assert all(pg.pg_flags & PQ_FREE for pg in files)
        await pw.release(env, h)

    env.run(body)


def test_M8prime_no_scan_when_clean_buffer_pages_make_up_the_inactive_target(
    live_pagedaemon: Any,
) -> None:
    """M8': "`inactive + INACT < inactarg`" is false when the buffer cache's clean pages
    above its floor (BUFPAGES_INACT, counted as if inactive) make up the target: 60 active
    pages, none inactive, inactarg 20, and after M7's bufbackoff 84 clean buffer pages above
    the floor; free is far above freetarg: no scan."""
    env, passes = live_pagedaemon(npages=256, bufcachepercent=50)

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("anon", 60, None, "w"))
        assert k.uvmexp.inactive == 0 and k.uvmexp.free >= 4 * FREETARG
        _wake_daemon(k)
        await _quiet(env, passes, 1)
        assert passes[0].inactarg == 20 and vfs_bio.BUFPAGES_INACT(k) == 84
        assert passes[0].delta["pdrevs"] == 0 and passes[0].delta["pddeact"] == 0
        await pw.release(env, h)

    env.run(body)


def test_M8prime_no_scan_at_exactly_the_free_target(live_pagedaemon: Any) -> None:
    """M8' at the boundary of "`free − DEFICIT < freetarg`": free 12 = freetarg is no
    shortage. The inactive target is met (17 of inactarg 52 / 3 = 17), nothing is requested
    and the buffer cache is off (M7's bufbackoff frees nothing): no scan."""
    env, passes = live_pagedaemon(npages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("anon", 52, None, "w"))
        pw.deactivate(k, pw.pgs(env, h, 0)[:17])
        assert k.uvmexp.free == FREETARG and k.uvmexp.inactive == 17
        _wake_daemon(k)
        await _quiet(env, passes, 1)
        assert passes[0].inactarg == 17 and passes[0].free == FREETARG
        assert passes[0].delta["pdrevs"] == 0
        await pw.release(env, h)

    env.run(body)


async def _m9_scenario(env: KernelEnv, free: int, dirty: int) -> tuple[int, int, int, bool]:
    """A free-memory sleeper; a process holding 54 pages of which ``dirty`` were deactivated
    (so this pass pages them out: paging > 0 at M9); kernel pages held so that ``free`` pages
    are free. Returns (free, paging, pdfreed of the pass, sleeper still queued) as seen at
    the end of pass 1, just after M9."""
    k = env.k
    seen: list[tuple[int, int, int, bool]] = []
    s = _sleeper(k, chan(k.uvmexp, "free"), "freewait")

    def look(k: Kernel, n: int) -> None:
        if n == 1:
            u = k.uvmexp
            seen.append((u.free, u.paging, passes[0].delta["pdfreed"], _asleep(k, s)))

    passes = _record_passes(k, look)
    h = await pw.hold(env, "h", ("anon", 54, None, "w"))
    pw.deactivate(k, pw.pgs(env, h, 0)[:dirty])
    held = _kernel_pages(k, k.uvmexp.free - free)
    assert k.uvmexp.free == free and _asleep(k, s)
    _wake_daemon(k)
    await pw.until(env, lambda: bool(seen), "pass 1")
    await env.settle()
    _free_pages(k, held)
    await pw.release(env, h)
    return seen[0]


def test_M9_wakes_free_sleepers_when_free_is_above_reserve_kernel(kenv: Any) -> None:
    """M9: "`free > reserve_kernel` or `paging == 0` | `wakeup(&uvmexp.free)`" ("if there's
    any free memory to be had, wake up any waiters"): free 10 > 8, although this pass's
    pageouts are in flight; the pass freed nothing, so M9 is what woke the sleeper."""
    env = kenv(npages=64, swap_pages=64, config=pw.config())
    out: list[tuple[int, int, int, bool]] = []

    async def body(k: Kernel, env: KernelEnv) -> None:
        out.append(await _m9_scenario(env, 10, dirty=8))

    env.run(body)
    assert out == [(10, 8, 0, False)]


def test_M9_wakes_free_sleepers_when_nothing_is_paging_even_at_the_reserve(kenv: Any) -> None:
    """M9: free 8 = reserve_kernel, but paging == 0: still "wake up any waiters"."""
    env = kenv(npages=64, swap_pages=64, config=pw.config())
    out: list[tuple[int, int, int, bool]] = []

    async def body(k: Kernel, env: KernelEnv) -> None:
        out.append(await _m9_scenario(env, 8, dirty=0))

    env.run(body)
    assert out == [(8, 0, 0, False)]


def test_M9prime_no_wakeup_at_the_reserve_while_pageouts_are_in_flight(kenv: Any) -> None:
    """M9 not taken: free 8 <= reserve_kernel and paging 8 > 0 (this pass's pageouts are in
    flight): the daemon leaves the free sleepers asleep; the completions will wake someone
    (D3)."""
    env = kenv(npages=64, swap_pages=64, config=pw.config())
    out: list[tuple[int, int, int, bool]] = []

    async def body(k: Kernel, env: KernelEnv) -> None:
        out.append(await _m9_scenario(env, 8, dirty=8))

    env.run(body)
    assert out == [(8, 8, 0, True)]


def test_M11_each_pass_ends_unlocked_and_pays_its_cpu_time(live_pagedaemon: Any) -> None:
    """M11: "always | unlock, `sched_pause(yield)`" ("scan done.  unlock page queues (the only
    lock we are holding)"). A daemon that loops without sleeping (a request it cannot
    satisfy, M10') yields its CPU time every pass: passes are a quantum apart."""
    env, passes = live_pagedaemon(npages=64, costs=_spinning_costs())

    async def body(k: Kernel, env: KernelEnv) -> None:
        high = atop(DMA_HIGH + 1)
        _requester(k, 1, high, high + 1)
        await pw.until(env, lambda: len(passes) >= 4, "four passes")
        times = [p.t for p in passes[:4]]
        assert all(b - a >= MS for a, b in itertools.pairwise(times))
        assert all(p.pageq_free and p.fpageq_free for p in passes)
        assert [p.pdwoke for p in passes[:4]] == [1, 1, 1, 1]

    env.run(body)
