"""uvm_pmemrange: when allocation wakes the page daemon, the reserves, and the requests.

Pins docs/uvm-reference.md §1.5: the five steps of uvm_pmr_getpages (wake-up rule, kernel
reserve, page-daemon reserve, search, search failure with uvm_nowait_failed / uvm_wait_pla),
uvm_wakeup_pla's FREED / LINKED / BUSY handling, and the wake-up on every free.
"""

from __future__ import annotations

import contextvars

from kernel.kern.kern_kthread import kthread_create
from kernel.kern.kern_synch import chan, mtx_enter, mtx_leave
from kernel.sys.errno import ENOMEM
from kernel.sys.proc import P_SYSTEM, Proc, set_curproc
from kernel.uvm import uvm_pmemrange as pmr
from kernel.uvm.uvm import UvmConstraintRange
from kernel.uvm.uvm_page import uvm_lock_pageq, uvm_pagefree, uvm_unlock_pageq


def _daemon_waiter(env):
    w = env.clock.waiter("pagedaemon")
    env.k.slpque.setdefault(chan(env.k.uvm, "pagedaemon"), []).append(w)
    return w


def _get(k, count=1, start=0, end=0, flags=pmr.UVM_PLA_NOWAIT):
    pgl = []
    return pmr.uvm_pmr_getpages_nowait(k, count, start, end, 1, 0, 1, flags, pgl), pgl


def _free(k, pgl):
    uvm_lock_pageq(k)
    for pg in pgl:
        uvm_pagefree(k, pg)
    uvm_unlock_pageq(k)


def _drain_to(k, free, flags=pmr.UVM_PLA_NOWAIT | pmr.UVM_PLA_USERESERVE):
    """Allocate until uvmexp.free == free (as a kernel allocator with USERESERVE would)."""
    held = []
    while k.uvmexp.free > free:
        err, pgl = _get(k, flags=flags)
        assert err == 0
        held += pgl
    return held


def test_step1_wakes_the_daemon_below_freemin(kenv):
    """Step 1: wake the daemon if free − BUFPAGES_DEFICIT < freemin."""
    env = kenv(start=False)
    k = env.k
    k.uvmexp.freemin, k.uvmexp.freetarg = 100, 120
    held = _drain_to(k, 100)
    w = _daemon_waiter(env)
    err, pgl = _get(k)  # free == freemin: no wake-up
    assert err == 0 and not w.woken
    err, pgl2 = _get(k)  # free == freemin − 1
    assert err == 0 and w.woken
    _free(k, held + pgl + pgl2)


def test_step1_wakes_the_daemon_below_freetarg_only_if_inactive_is_short(kenv):
    """Step 1: "or if free − BUFPAGES_DEFICIT < freetarg and inactive + BUFPAGES_INACT <
    inactarg"."""
    env = kenv(start=False)
    k = env.k
    k.uvmexp.freemin, k.uvmexp.freetarg = 10, 300
    k.uvmexp.inactarg = 0  # inactive (0) is not short
    w = _daemon_waiter(env)
    err, a = _get(k)
    assert err == 0 and not w.woken
    k.uvmexp.inactarg = 1  # now it is
    err, b = _get(k)
    assert err == 0 and w.woken
    _free(k, a + b)


def test_step2_kernel_reserve_refuses_without_usereserve(kenv):
    """Step 2: "Fails with ENOMEM if free ≤ reserve_kernel + count and USERESERVE is not
    set (no daemon flag is set in this case)"."""
    k = kenv(start=False).k
    held = _drain_to(k, k.uvmexp.reserve_kernel + 1)
    err, pgl = _get(k)
    assert err == ENOMEM and pgl == [] and k.uvm_nowait_failed == 0
    err, pgl = _get(k, flags=pmr.UVM_PLA_NOWAIT | pmr.UVM_PLA_USERESERVE)
    assert err == 0
    _free(k, held + pgl)


def test_step3_pagedaemon_reserve_is_for_the_daemon_only(kenv):
    """Step 3: "If free ≤ reserve_pagedaemon + count and the caller is neither the daemon
    nor the syncer: ... ENOMEM"; the daemon itself gets the page."""
    k = kenv(start=False).k
    k.uvm.pagedaemon_proc = Proc(p_pid=99, p_comm="pagedaemon", p_flag=P_SYSTEM)
    held = _drain_to(k, k.uvmexp.reserve_pagedaemon + 1)
    flags = pmr.UVM_PLA_NOWAIT | pmr.UVM_PLA_USERESERVE
    err, _ = _get(k, flags=flags)
    assert err == ENOMEM

    def as_daemon():
        set_curproc(k.uvm.pagedaemon_proc)
        return _get(k, flags=flags)

    err, pgl = contextvars.copy_context().run(as_daemon)
    assert err == 0 and len(pgl) == 1
    _free(k, held + pgl)


def test_step5_nowait_search_failure_sets_uvm_nowait_failed(kenv):
    """Step 5: "NOWAIT without UVM_PLA_NOWAKE → sets the global uvm_nowait_failed = 1 and
    wakes the daemon"; with NOWAKE neither happens."""
    env = kenv(start=False)
    k = env.k
    err, low = _get(k, count=4, start=0, end=4)  # take every frame of [0, 4)
    assert err == 0 and sorted(pg.phys_addr >> 12 for pg in low) == [0, 1, 2, 3]
    w = _daemon_waiter(env)
    err, _ = _get(k, start=0, end=4, flags=pmr.UVM_PLA_NOWAIT | pmr.UVM_PLA_NOWAKE)
    assert err == ENOMEM and k.uvm_nowait_failed == 0 and not w.woken
    err, _ = _get(k, start=0, end=4)
    assert err == ENOMEM and k.uvm_nowait_failed == 1 and w.woken
    _free(k, low)


def test_waitok_constrained_request_sleeps_until_a_page_in_range_is_freed(run_kernel):
    """Step 5 with WAITOK → uvm_wait_pla: a request is linked on pmr_control.allocs and the
    caller sleeps while LINKED; uvm_wakeup_pla on a free in its range sets FREED, clears
    LINKED, unlinks it and wakes it; the allocation is then retried."""
    got = {}

    async def body(k, env):
        err, low = _get(k, count=4, start=0, end=4)
        assert err == 0

        async def freer(k):
            await env.sleep(1_000_000)
            allocs = k.uvm.pmr_control.allocs
            pma = allocs.first()
            assert pma is not None and pma.pm_flags == pmr.UVM_PMA_LINKED
            assert (pma.pm_constraint.ucr_low, pma.pm_constraint.ucr_high) == (0, 4 * 4096 - 1)
            _free(k, [pg for pg in low if pg.phys_addr >> 12 == 2])
            assert pma.pm_flags & pmr.UVM_PMA_FREED and not pma.pm_flags & pmr.UVM_PMA_LINKED
            assert allocs.empty()

        kthread_create(k, freer, k, name="freer")
        pgl = []
        flags = pmr.UVM_PLA_WAITOK | pmr.UVM_PLA_USERESERVE
        err = await pmr.uvm_pmr_getpages(k, 1, 0, 4, 1, 0, 1, flags, pgl)
        got["at"] = env.clock.now
        assert err == 0 and pgl[0].phys_addr >> 12 == 2
        _free(k, [pg for pg in low if pg.phys_addr >> 12 != 2] + pgl)

    run_kernel(body, start=False)
    assert got["at"] >= 1_000_000


def test_waitok_unconstrained_request_waits_for_any_page(run_kernel):
    """Step 5 with WAITOK and no constraint (start = end = 0): uvm_wait_pla gets
    "ptoa(start), ptoa(end)−1": paddr_t is unsigned, so the range is 0 .. all-ones and a free
    of any page completes it (issue 12 item 3: -1 in Python matched no page, and the request
    slept forever). The syncer may dig into both reserves, so its search is what fails."""

    async def body(k, env):
        k.syncerproc = env.testproc
        held = _drain_to(k, 0)

        async def freer(k):
            await env.sleep(1_000_000)
            pma = k.uvm.pmr_control.allocs.first()
            assert pma is not None
            assert (pma.pm_constraint.ucr_low, pma.pm_constraint.ucr_high) == (0, 2**64 - 1)
            _free(k, held[-1:])

        kthread_create(k, freer, k, name="freer")
        pgl = []
        flags = pmr.UVM_PLA_WAITOK | pmr.UVM_PLA_USERESERVE
        err = await pmr.uvm_pmr_getpages(k, 1, 0, 0, 1, 0, 1, flags, pgl)
        assert err == 0 and pgl[0] is held[-1] and env.clock.now >= 1_000_000
        _free(k, held[:-1] + pgl)

    env = run_kernel(body, start=False)
    assert env.k.uvmexp.free == env.k.uvmexp.npages


def test_wakeup_pla_marks_a_busy_request_freed_but_leaves_it_linked(kenv):
    """uvm_wakeup_pla: "for each queued request whose byte range overlaps the freed range it
    sets FREED; if the request is not BUSY it also clears LINKED, unlinks it and wakes its
    sleeper"; a request outside the range is untouched."""
    env = kenv(start=False)
    k = env.k
    allocs = k.uvm.pmr_control.allocs
    busy = pmr.UvmPmalloc(UvmConstraintRange(0, 8191), 4096, pmr.UVM_PMA_LINKED | pmr.UVM_PMA_BUSY)
    far = pmr.UvmPmalloc(UvmConstraintRange(1 << 20, (1 << 21) - 1), 4096, pmr.UVM_PMA_LINKED)
    allocs.insert_tail(busy)
    allocs.insert_tail(far)
    mtx_enter(k.uvm.fpageqlock)
    pmr.uvm_wakeup_pla(k, 4096, 4096)
    mtx_leave(k.uvm.fpageqlock)
    assert busy.pm_flags == pmr.UVM_PMA_LINKED | pmr.UVM_PMA_BUSY | pmr.UVM_PMA_FREED
    assert far.pm_flags == pmr.UVM_PMA_LINKED
    assert list(allocs) == [busy, far]
    allocs.remove(busy)
    allocs.remove(far)


def test_step2_kernel_reserve_refuses_waitok_too(run_kernel):
    """Step 2: "Fails with ENOMEM if free ≤ reserve_kernel + count and USERESERVE is not set"
    -- with WAITOK too: only step 3 sleeps (uvm_pmemrange.c returns ENOMEM there before it
    looks at UVM_PLA_WAITOK). Issue 12 item 2: this request used to sleep in uvm_wait."""

    async def body(k, env):
        held = _drain_to(k, k.uvmexp.reserve_kernel + 1)
        pgl = []
        now = env.clock.now
        err = await pmr.uvm_pmr_getpages(k, 1, 0, 0, 1, 0, 1, pmr.UVM_PLA_WAITOK, pgl)
        assert err == ENOMEM and pgl == [] and env.clock.now == now
        assert env.testproc.p_wmesg is None
        _free(k, held)

    env = run_kernel(body, start=False)
    assert env.k.uvmexp.free == env.k.uvmexp.npages


def test_step3_waitok_below_the_pagedaemon_reserve_sleeps_in_uvm_wait(run_kernel):
    """Step 3 with WAITOK: "calls uvm_wait("uvm_pmr_getpages") and retries from step 1";
    uvm_wait wakes the daemon and sleeps on &uvmexp.free; a free wakes it. (The request
    uses the kernel reserve, USERESERVE, so that step 2 lets it through.)"""

    async def body(k, env):
        held = _drain_to(k, k.uvmexp.reserve_pagedaemon + 1)

        async def freer(k):
            await env.sleep(2_000_000)
            assert env.testproc.p_wmesg == "uvm_pmr_getpages"
            _free(k, held[:4])

        kthread_create(k, freer, k, name="freer")
        pgl = []
        flags = pmr.UVM_PLA_WAITOK | pmr.UVM_PLA_USERESERVE
        err = await pmr.uvm_pmr_getpages(k, 1, 0, 0, 1, 0, 1, flags, pgl)
        assert err == 0 and env.clock.now >= 2_000_000
        _free(k, held[4:] + pgl)

    env = run_kernel(body, start=False)
    assert env.k.uvmexp.free == env.k.uvmexp.npages
