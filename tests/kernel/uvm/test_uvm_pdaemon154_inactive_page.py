"""uvm_pdaemon_1_154.py: uvmpd_scan_inactive (1.154 lines 564-843): where it starts, and what
it does with each page up to the decision to write it.

Catalogue ids (docs/pdaemon-1.154.md §2.9): N-I0 N-I0' (start); N-I1 N-I2 N-I3 N-I4 N-I5 N-I6
N-I7 N-I8 N-I9 N-I9a N-I9d N-I10 N-I11 (per page). Primes are spelled ``prime`` in test
names. The writing rows (N-I12 - N-I22') are in test_uvm_pdaemon154_inactive_write.py, the
swap cluster's own rows (N-C*, N-F*) in _cluster.py, uvmpd_scan and the active walk in
_scan.py.

The test body plays the page daemon on a machine booted with the 1.154 daemon (the
``run_as_pagedaemon154`` fixture: 128 pages, 256 pages of swap, no buffer cache, freetarg
12; its aiodoned finishes the writes) and calls ``uvmpd_scan_inactive(k, constraint,
shortage)`` with the page queues locked (pdaemon154._scan_inactive), so each row's condition
is exact. Pages come from user processes that map memory, write it and sleep
(``pw.hold``). The two tests of the loop that cannot be true (N-I4, N-I10) and the page that
is always on a queue (N-I9d) are driven by contrived hooks, said so in their tests.

The stop test (line 607) is ``paging + pages in the open cluster >= shortage - freed``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from structlog.testing import capture_logs

import kernel.uvm.uvm_pdaemon_1_154 as pd154
from kernel.kern.kern_synch import RWLock
from kernel.kernel import Kernel
from kernel.uvm import uvm_page, uvm_swap
from kernel.uvm.uvm import UvmConstraintRange
from kernel.uvm.uvm_page import (
    PG_BUSY,
    PG_CLEAN,
    PQ_ACTIVE,
    PQ_FREE,
    PQ_INACTIVE,
    VmPage,
)

import pdaemon_world as pw
from pdaemon154 import BIG, _inactive, _only, _racing_paging, _scan_inactive, _slot
from pdaemon_inactive import _aobj_slot, _load, _pageouts, _settle
from pdaemon_world import PAGE

if TYPE_CHECKING:
    from conftest import KernelEnv

async def _clean_inactive(env: KernelEnv, pgs: list[VmPage]) -> None:
    """Make dirty pages clean, resident and inactive, with a slot (written by a scan)."""
    k = env.k
    pw.deactivate(k, pgs)
    await _scan_inactive(k, BIG)
    await _settle(env)
    assert all(pg.pg_flags & PG_CLEAN and pg.pg_flags & PQ_INACTIVE for pg in pgs)


# === start: N-I0, N-I0' (lines 588-602) ==========================================================


def test_N_I0_scan_starts_at_the_first_page_inside_the_constraint(run_as_pagedaemon154: Any) -> None:
    """N-I0 (lines 593-596, 602): "some inactive page matches the constraint | start at the
    first one; marker after it". Pages before it are not looked at; after it the scan goes
    on whatever their address (only the start is filtered, and N-I4's filter cannot act)."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 4), free=30)
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        freed, d = await _scan_inactive(k, BIG, _only(pgs[2]))
        assert freed == 0 and d["pdscans"] == 2 and d["pgswapout"] == 2
        for pg in pgs[:2]:
            assert _slot(pg) == 0 and not pg.pg_flags & PG_BUSY
        assert [_slot(pg) for pg in pgs[2:]] == [1, 2]
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_I0prime_no_page_in_the_constraint_returns_at_once(run_as_pagedaemon154: Any) -> None:
    """N-I0' (lines 598-599): "none matches (or queue empty) | return 0: no marker, no page
    looked at" (1.105 started at the head instead)."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        freed, d = await _scan_inactive(k, BIG)  # an empty queue
        assert freed == 0 and all(v == 0 for v in d.values()), d
        h = await pw.hold(env, "w", pw.region("anon", 3), free=30)
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        nowhere = UvmConstraintRange(1 << 20, 1 << 21)  # page numbers beyond this RAM
        freed, d = await _scan_inactive(k, BIG, nowhere)
        assert freed == 0 and all(v == 0 for v in d.values()), d
        assert _inactive(k) == pgs
        await pw.release(env, h)

    run_as_pagedaemon154(body)


# === per page: N-I1 - N-I20' (lines 604-827) =====================================================


def test_N_I1_no_shortage_stops_before_the_first_page(run_as_pagedaemon154: Any) -> None:
    """N-I1 (lines 607-611): "paging + nused >= short | leave the loop": with shortage 0 the
    scan stops at the first page (pdscans 0), however little memory is free."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 4), free=9)
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        freed, d = await _scan_inactive(k, 0)
        assert freed == 0 and all(v == 0 for v in d.values()), d
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_I1_pages_in_the_open_cluster_count_toward_the_shortage(run_as_pagedaemon154: Any) -> None:
    """N-I1 with an open cluster: three dirty pages gathered meet a shortage of 3 (line 607
    counts swapcluster_nused); the fourth page is not looked at and the cluster of 3 is
    written after the loop (N-I22)."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 5), free=30)
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        with capture_logs() as logs:
            _freed, d = await _scan_inactive(k, 3)
        assert (d["pdscans"], d["pgswapout"], d["paging"]) == (3, 3, 3)
        assert _pageouts(logs) == [(3, "PEND")]
        assert [_slot(pg) for pg in pgs] == [1, 2, 3, 0, 0]
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_I1_pages_in_flight_count_toward_the_shortage(run_as_pagedaemon154: Any) -> None:
    """N-I1 with ``paging``: a write of 4 pages in flight covers a shortage of 4; a second
    scan before it completes stops at once, where 1.105 compared free + paging with 4 x
    freetarg."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 8), free=9)
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        _, d1 = await _scan_inactive(k, 4)
        assert d1["paging"] == 4 and d1["pdpending"] == 1
        _, d2 = await _scan_inactive(k, 4)
        assert d2["pdscans"] == 0
        _, d3 = await _scan_inactive(k, 5)  # one more: the fifth page
        assert d3["pdscans"] == 5 and d3["pdbusy"] == 4 and d3["pgswapout"] == 1
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_I2_N_I11_sixteen_dirty_reactivations_end_the_scan_without_swap(
    run_as_pagedaemon154: Any,
) -> None:
    """N-I2 (line 609): "dirtyreacts == 16 | leave the loop"; N-I11 (lines 719-726): "swap-backed
    and uvm_swapisfull() | dirtyreacts +1; activate". A machine without swap: swpgonly 0 >=
    0 * 99 / 100, so swap is "full" and each dirty anon page goes back to the active queue;
    the 17th is not looked at."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        assert k.uvmexp.swpages == 0 and uvm_swap.uvm_swapisfull_154(k)
        h = await pw.hold(env, "w", pw.region("anon", 18), free=20)
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        _freed, d = await _scan_inactive(k, BIG)
        assert (d["pdscans"], d["pdanscan"], d["pgswapout"], d["pdreact"]) == (16, 16, 0, 0)
        assert all(pg.pg_flags & PQ_ACTIVE for pg in pgs[:16])
        assert _inactive(k) == pgs[16:]
        await pw.release(env, h)

    run_as_pagedaemon154(body, swap_pages=0)


def test_N_I11_swap_is_full_at_99_percent_swap_only(run_as_pagedaemon154: Any) -> None:
    """N-I11: uvm_swapisfull of uvm_swap.c 1.179 is "swpgonly >= swpages * 99 / 100": with 16
    pages of swap, 15 pages living only in swap make it full (1.105 needed all 16), and the
    dirty anon page is reactivated, not written."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 15), pw.region("anon", 1), free=30)
        gone = pw.pgs(env, h, 0)
        await _clean_inactive(env, gone)
        freed, _ = await _scan_inactive(k, BIG)  # free them: only in swap now
        assert freed == 15 and k.uvmexp.swpgonly == 15
        assert uvm_swap.uvm_swapisfull_154(k) and not uvm_swap.uvm_swapisfull(k)
        pg = pw.pg(env, h, 1, 0)
        pw.deactivate(k, [pg])
        freed, d = await _scan_inactive(k, BIG)
        assert (d["pdscans"], d["pgswapout"], d["active"]) == (1, 0, 1)
        assert pg.pg_flags & PQ_ACTIVE and _slot(pg) == 0
        await pw.release(env, h)

    run_as_pagedaemon154(body, swap_pages=16)


def test_N_I11prime_a_dirty_vnode_page_is_written_even_with_swap_full(
    run_as_pagedaemon154: Any,
) -> None:
    """N-I11 (line 719) not taken: the test is "swap-backed and uvm_swapisfull()", so a dirty
    vnode page goes to its file whatever swap holds: on a machine without swap (swap "full",
    N-I2's machine) it is written (N-I19) and comes back clean and inactive, not
    reactivated."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        assert uvm_swap.uvm_swapisfull_154(k)
        h = await pw.hold(env, "w", pw.region("file", 1, "f"), free=30)
        pg = pw.pg(env, h, 0, 0)
        pw.deactivate(k, [pg])
        with capture_logs() as logs:
            _, d = await _scan_inactive(k, BIG)
        assert _pageouts(logs) == [(1, "OK")] and (d["pgswapout"], d["active"]) == (1, 0)
        assert pg.pg_flags & PQ_INACTIVE and pg.pg_flags & PG_CLEAN
        await pw.release(env, h)

    run_as_pagedaemon154(body, swap_pages=0)


def test_N_I3_each_page_looked_at_counts_in_pdscans(run_as_pagedaemon154: Any) -> None:
    """N-I3 (line 615): "otherwise | pdscans +1": once per page the loop reaches past the stop
    test, whatever happens to the page next (here: clean and freed, referenced, dirty)."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("file", 1, "f", touch="r"), pw.region("anon", 2),
                          free=30)  # fmt: skip
        f, a = pw.pg(env, h, 0, 0), pw.pgs(env, h, 1)
        pw.deactivate(k, [f, a[0]])
        pw.deactivate(k, [a[1]], unmap=False)
        await pw.run_on(env, h, _load(h.vas[1] + PAGE))  # referenced again
        freed, d = await _scan_inactive(k, BIG)
        assert d["pdscans"] == 3 and (freed, d["pdreact"], d["pgswapout"]) == (1, 1, 1)
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_I4_contrived_paging_rise_skips_a_page_outside_the_constraint(
    run_as_pagedaemon154: Any,
) -> None:
    """N-I4 (lines 622-624): "paging >= short and page outside the constraint | skip".
    Unreachable (docs/pdaemon-1.154.md §2.12: the stop test has just shown paging < short, and
    nothing between lines 607 and 622 raises paging). Contrived: while the scan pays for the
    second page, ``paging`` grows past the shortage (pdaemon154._racing_paging). The second
    page lies outside the constraint: skipped before its lock is tried; the next stop test
    ends the scan, and the open cluster (the first page) is written."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 3), free=30)
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        with _racing_paging(env, 10, lambda: k.uvmexp.pdscans == n0 + 2) as fired:
            n0 = k.uvmexp.pdscans
            _freed, d = await _scan_inactive(k, 5, _only(pgs[0]))
        assert fired == [n0 + 2]
        assert (d["pdscans"], d["pdanscan"], d["pgswapout"]) == (2, 1, 1)
        assert _slot(pgs[0]) == 1 and _slot(pgs[1]) == 0 and _slot(pgs[2]) == 0
        assert not pgs[1].pg_flags & PG_BUSY
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_I5_owner_lock_held_elsewhere_skips_the_page(run_as_pagedaemon154: Any) -> None:
    """N-I5 (lines 637-640): "owner try-lock fails | skip". Another CPU holds the amap lock of
    the first two pages; they stay as they were, the third is written."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 2), pw.region("anon", 1), free=30)
        held, other = pw.pgs(env, h, 0), pw.pgs(env, h, 1)
        pw.deactivate(k, held + other)
        cpu = pw.other_cpu(k)
        lock = pw.lock(h, 0)
        await pw.run_on(env, cpu, pw.enter(k, lock))
        _, d = await _scan_inactive(k, BIG)
        assert (d["pdscans"], d["pdanscan"], d["pgswapout"]) == (3, 1, 1)
        assert [_slot(pg) for pg in held] == [0, 0] and _slot(other[0]) == 1
        assert lock.rwl_owner is cpu.proc
        await pw.run_on(env, cpu, pw.exit_(lock))
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_I6_referenced_page_is_activated_with_the_page_queues_dropped(
    run_as_pagedaemon154: Any,
) -> None:
    """N-I6 (lines 646-653): "referenced | unlock queues, activate (takes them itself), unlock
    owner, relock; pdreact +1". The process reads the page through the mapping it kept; at
    the activation the page queues are not held (uvm_pageactivate_154 takes them)."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 1), free=30)
        pg = pw.pg(env, h, 0, 0)
        pw.deactivate(k, [pg], unmap=False)
        await pw.run_on(env, h, _load(h.vas[0]))
        held_at_activate: list[bool] = []
        real = uvm_page.uvm_pageactivate_154

        def spy(k: Kernel, p: VmPage) -> None:
            held_at_activate.append(k.uvm.pageqlock.mtx_owner is not None)
            real(k, p)

        pd154.uvm_page.uvm_pageactivate_154 = spy  # type: ignore[attr-defined]
        try:
            _, d = await _scan_inactive(k, BIG)
        finally:
            pd154.uvm_page.uvm_pageactivate_154 = real  # type: ignore[attr-defined]
        assert (d["pdscans"], d["pdreact"], d["pdanscan"]) == (1, 1, 0)
        assert held_at_activate == [False]
        assert pg.pg_flags & PQ_ACTIVE and pw.lock(h, 0).rwl_owner is None
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_I6_each_referenced_page_counts_and_the_scan_goes_on(run_as_pagedaemon154: Any) -> None:
    """N-I6 (lines 646-653) twice, then the next page: "pdreact +1" for each referenced page
    (2), and "continue": the dirty page after them is looked at and written."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 3), free=30)
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs[:2], unmap=False)
        pw.deactivate(k, pgs[2:])
        for i in range(2):
            await pw.run_on(env, h, _load(h.vas[0] + i * PAGE))
        _, d = await _scan_inactive(k, BIG)
        assert (d["pdscans"], d["pdreact"], d["pgswapout"]) == (3, 2, 1)
        assert [bool(pg.pg_flags & PQ_ACTIVE) for pg in pgs] == [True, True, False]
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_I7_busy_page_is_skipped_and_counted_in_pdbusy(run_as_pagedaemon154: Any) -> None:
    """N-I7 (lines 655-659): "busy | pdbusy +1". The pages' write from the previous scan is
    still in flight; the shortage (20) is above what is in flight (4), so the scan looks."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 4), free=30)
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        await _scan_inactive(k, BIG)
        assert all(pg.pg_flags & PG_BUSY for pg in pgs) and k.uvmexp.paging == 4
        _, d = await _scan_inactive(k, 20)
        assert (d["pdscans"], d["pdbusy"], d["pdanscan"], d["pgswapout"]) == (4, 4, 0, 0)
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_I8_object_pages_count_in_pdobscan_anon_pages_in_pdanscan(
    run_as_pagedaemon154: Any,
) -> None:
    """N-I8 (lines 662-667): "object page / anon page | pdobscan / pdanscan +1": aobj and
    vnode pages have an object."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        regions = pw.region("anon", 2), pw.region("shared", 1, "shm"), pw.region("file", 1, "f")
        h = await pw.hold(env, "w", *regions, free=30)
        pw.deactivate(k, pw.pgs(env, h, 0) + pw.pgs(env, h, 1) + pw.pgs(env, h, 2))
        _, d = await _scan_inactive(k, BIG)
        assert (d["pdscans"], d["pdanscan"], d["pdobscan"]) == (4, 2, 2)
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_I9_clean_swap_backed_pages_are_freed_and_live_only_in_swap(
    run_as_pagedaemon154: Any,
) -> None:
    """N-I9 (lines 674-702): "clean | swap-backed: swpgonly +1; unmap; dequeue; free; freed +1;
    anon: asserts a slot, an_page = NULL". The scan returns what it freed (uvmpd_scan adds it
    to pdfreed, so pdfreed does not move here). An anon and an aobj page, written and then
    mapped again by a read."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 1), pw.region("shared", 1, "shm"), free=30)
        apg, opg = pw.pg(env, h, 0, 0), pw.pg(env, h, 1, 0)
        await _clean_inactive(env, [apg, opg])
        anon = pw.anon(env, h, 0, 0)
        aslot, oslot = anon.an_swslot, _aobj_slot(k, h, 1, 0)
        for r in (0, 1):
            await pw.run_on(env, h, _load(h.vas[r]))
        pw.deactivate(k, [apg, opg], unmap=False)
        assert k.pmap.pmap_page_mapped(apg) == 1 and apg.pg_flags & PG_CLEAN
        freed, d = await _scan_inactive(k, BIG)
        assert freed == 2 and (d["pdfreed"], d["swpgonly"], d["free"], d["inactive"]) == (0, 2, 2, -2)
        assert apg.pg_flags & PQ_FREE and opg.pg_flags & PQ_FREE
        assert anon.an_page is None and anon.an_swslot == aslot
        assert _aobj_slot(k, h, 1, 0) == oslot
        assert [await pw.run_on(env, h, _load(h.vas[r], 6)) for r in (0, 1)] == [
            pw.data("w", 0, 0)[:6], pw.data("w", 1, 0)[:6]
        ]  # read back from their slots
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_I9a_clean_vnode_page_is_freed_without_swpgonly(run_as_pagedaemon154: Any) -> None:
    """N-I9a: a clean vnode page is freed (its data is in the file); swpgonly stays."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("file", 1, "f", touch="r"), free=30)
        pg = pw.pg(env, h, 0, 0)
        pw.deactivate(k, [pg])
        freed, d = await _scan_inactive(k, BIG)
        assert freed == 1 and (d["pdobscan"], d["swpgonly"], d["free"]) == (1, 0, 1)
        assert pg.pg_flags & PQ_FREE and pg.uobject is None
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_I9d_contrived_page_off_the_queues_is_freed_without_dequeueing(
    run_as_pagedaemon154: Any,
) -> None:
    """N-I9d (line 683): "page on a paging queue | dequeue before the free" is always true: the
    page came off the inactive queue under the page queue lock. Contrived: at the try-lock of
    the page's owner "another CPU" wires it (uvm_pagewire takes it off the queues; the test's
    hook runs with the scan's page queue lock, which the 2022 uvm_pagewire asserts), so at
    line 683 it is on no queue, and uvm_pagefree is called without uvm_pagedequeue."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("file", 1, "f", touch="r"), free=30)
        pg = pw.pg(env, h, 0, 0)
        pw.deactivate(k, [pg])
        lock = pw.lock(h, 0)
        dequeues: list[VmPage] = []
        real = uvm_page.uvm_pagedequeue

        def wire_it(rwl: RWLock) -> None:
            rwl.rwl_hook = None
            uvm_page.uvm_pagewire(k, pg)

        def spy(k: Kernel, p: VmPage) -> None:
            dequeues.append(p)
            real(k, p)

        lock.rwl_hook = wire_it
        pd154.uvm_pagedequeue = spy  # type: ignore[attr-defined]
        try:
            freed, _d = await _scan_inactive(k, BIG)
        finally:
            pd154.uvm_pagedequeue = real  # type: ignore[attr-defined]
        assert freed == 1 and dequeues == [] and pg.pg_flags & PQ_FREE
        assert k.uvmexp.wired == 0  # uvm_pageclean unwired it
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_I9d_page_on_the_inactive_queue_is_dequeued_first(run_as_pagedaemon154: Any) -> None:
    """N-I9d, the ordinary case: "dequeue first to prevent lock recursion" - the free sees a
    page on no queue."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("file", 1, "f", touch="r"), free=30)
        pg = pw.pg(env, h, 0, 0)
        pw.deactivate(k, [pg])
        seen: list[int] = []
        real = uvm_page.uvm_pagefree

        def spy(k: Kernel, p: VmPage) -> None:
            seen.append(p.pg_flags & (PQ_ACTIVE | PQ_INACTIVE))
            real(k, p)

        pd154.uvm_pagefree = spy  # type: ignore[attr-defined]
        try:
            freed, _ = await _scan_inactive(k, BIG)
        finally:
            pd154.uvm_pagefree = real  # type: ignore[attr-defined]
        assert freed == 1 and seen == [0]
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_I10_contrived_paging_rise_leaves_a_dirty_page_alone(run_as_pagedaemon154: Any) -> None:
    """N-I10 (lines 708-711): "dirty and paging > short | skip". Unreachable for the same reason
    as N-I4 (§2.12). Contrived: paging grows past the shortage while the scan pays for the
    page (inside the constraint, so N-I4 does not act). The page is locked, found dirty and
    left alone: not busied, no slot; the next stop test ends the scan."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 2), free=30)
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        with _racing_paging(env, 10, lambda: True) as fired:
            _, d = await _scan_inactive(k, 5)
        assert len(fired) == 1
        assert (d["pdscans"], d["pdanscan"], d["pgswapout"]) == (1, 1, 0)
        assert [_slot(pg) for pg in pgs] == [0, 0] and not pgs[0].pg_flags & PG_BUSY
        assert pw.lock(h, 0).rwl_owner is None
        await pw.release(env, h)

    run_as_pagedaemon154(body)
