"""uvm_pdaemon_1_154.py: uvmpd_scan_inactive (1.154 lines 564-843), row by row.

Catalogue ids (docs/pdaemon-1.154.md §2.9): N-I0 N-I0' (start); N-I1 N-I2 N-I3 N-I4 N-I5 N-I6
N-I7 N-I8 N-I9 N-I9a N-I9d N-I10 N-I11 N-I12 N-I13 N-I14 N-I15 N-I16 N-I17 N-I18 N-I19 N-I20
N-I20' (per page); N-I21 N-I22 N-I22a N-I22' (after the loop). Primes are spelled ``prime``
in test names. The swap cluster's own rows (N-C*, N-F*) are in
test_uvm_pdaemon154_cluster.py; uvmpd_scan and the active walk in _scan.py.

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
from kernel.sys.proc import curproc
from kernel.uvm import uvm_page, uvm_swap
from kernel.uvm.uvm import UvmConstraintRange
from kernel.uvm.uvm_page import (
    PG_BUSY,
    PG_CLEAN,
    PQ_ACTIVE,
    PQ_FREE,
    PQ_INACTIVE,
    PQ_ITER,
    VmPage,
    atop,
)

import pdaemon_world as pw
from pdaemon154 import _markers, _racing_paging, _scan_inactive
from pdaemon_inactive import _aobj_slot, _load, _pageouts, _settle, _store
from pdaemon_swap import _anon_round_trip
from pdaemon_world import PAGE

if TYPE_CHECKING:
    from conftest import KernelEnv

BIG = 1000  # a shortage the scan never reaches


def _inactive(k: Kernel) -> list[VmPage]:
    return list(k.uvm.page_inactive)


def _slot(pg: VmPage) -> int:
    assert pg.uanon is not None
    return pg.uanon.an_swslot


def _only(pg: VmPage) -> UvmConstraintRange:
    """A constraint whose page-number range holds exactly ``pg`` (uvmpd_match_constraint
    compares page numbers, N-K1)."""
    f = atop(pg.phys_addr)
    return UvmConstraintRange(f, f + 1)


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


def test_N_I12_fewer_free_slots_than_a_cluster_drops_the_pages_own_slot(
    run_as_pagedaemon154: Any,
) -> None:
    """N-I12 (lines 733-734): "swap-backed and uvm_swapisfilled() (in use + 16 >= swpages) |
    drop its own slot, fall through". 40 slots, 26 held by resident clean pages: a dirty page
    that owns one of them gives it back before the cluster is opened (1.105 did this only
    with every slot in use)."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 26), free=30)
        await _anon_round_trip(env, h, 0, range(26))
        assert k.uvmexp.swpginuse == 26 and uvm_swap.uvm_swapisfilled(k)
        assert not uvm_swap.uvm_swapisfull_154(k)
        await pw.run_on(env, h, _store(h.vas[0], b"dirty again"))
        pg = pw.pg(env, h, 0, 0)
        old = _slot(pg)
        pw.deactivate(k, [pg])
        assert not pg.pg_flags & PG_CLEAN
        drops: list[tuple[VmPage, int, int]] = []  # page, its slot, what dropswap said
        real = pd154.uvmpd_dropswap

        def spy(k: Kernel, p: VmPage) -> int:
            slot = _slot(p)
            r = real(k, p)
            drops.append((p, slot, r))
            return r

        pd154.uvmpd_dropswap = spy  # type: ignore[assignment]
        try:
            _, d = await _scan_inactive(k, BIG)
        finally:
            pd154.uvmpd_dropswap = real  # type: ignore[assignment]
        # line 734 drops the slot; line 756 then finds none
        assert drops == [(pg, old, 1), (pg, 0, 0)]
        assert d["pgswapout"] == 1 and _slot(pg) != 0  # the cluster's (first fit: old again)
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon154(body, swap_pages=40)


def test_N_I13_a_dirty_page_is_busied_write_protected_and_counted(
    run_as_pagedaemon154: Any,
) -> None:
    """N-I13 (lines 744-748): "every dirty page reaching here | PG_BUSY, write-protect,
    pgswapout +1": while its write is in flight the page is busy and mapped read-only."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 1), free=30)
        pg = pw.pg(env, h, 0, 0)
        pw.deactivate(k, [pg], unmap=False)
        _, d = await _scan_inactive(k, BIG)
        assert d["pgswapout"] == 1 and pg.pg_flags & PG_BUSY
        vm = h.proc.proc.p_vmspace
        pte = k.pmap.pmap_pte(vm.vm_map.pmap, h.vas[0])  # type: ignore[attr-defined]
        assert pte is not None and not pte[1]  # mapped, not writable
        await _settle(env)
        assert pg.pg_flags & PG_CLEAN and not pg.pg_flags & PG_BUSY
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_I14_a_page_written_before_gets_a_new_slot(run_as_pagedaemon154: Any) -> None:
    """N-I14 (lines 754-756): "swap-backed | drop its old slot": a page paged out before and
    dirtied again leaves its old slot and joins the new cluster."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 1), free=30)
        (old,) = await _anon_round_trip(env, h, 0, range(1))
        await pw.run_on(env, h, _store(h.vas[0], b"new"))
        pg = pw.pg(env, h, 0, 0)
        pw.deactivate(k, [pg])
        freed_slots: list[int] = []
        real = uvm_swap.uvm_swap_free

        def spy(k: Kernel, slot: int, n: int) -> None:
            freed_slots.append(slot)
            real(k, slot, n)

        pd154.uvm_swap.uvm_swap_free = spy  # type: ignore[attr-defined]
        try:
            _, d = await _scan_inactive(k, BIG)
        finally:
            pd154.uvm_swap.uvm_swap_free = real  # type: ignore[attr-defined]
        assert freed_slots[0] == old  # line 756; then the cluster's unused tail (N-F2)
        assert d["pgswapout"] == 1 and d["swpginuse"] == 0  # one freed, one taken
        assert _slot(pg) == old  # first fit: the cluster starts at the slot just freed
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_I15_no_slot_unbusies_and_reactivates_the_page(run_as_pagedaemon154: Any) -> None:
    """N-I15 (lines 759-768): "swapcluster_allocslots fails (N-C2) | unbusy; dirtyreacts +1;
    activate" (1.105 left it inactive, uncounted). Every slot of 16 is in use by a resident
    clean page (not swap-only, so swap is not "full")."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 16), pw.region("anon", 2), free=30)
        await _anon_round_trip(env, h, 0, range(16))
        assert k.uvmexp.swpginuse == 16 and not uvm_swap.uvm_swapisfull_154(k)
        pgs = pw.pgs(env, h, 1)
        pw.deactivate(k, pgs)
        _, d = await _scan_inactive(k, BIG)
        assert (d["pdscans"], d["pgswapout"], d["pdpageouts"]) == (2, 2, 0)
        for pg in pgs:
            assert pg.pg_flags & PQ_ACTIVE and not pg.pg_flags & PG_BUSY and _slot(pg) == 0
        await pw.release(env, h)

    run_as_pagedaemon154(body, swap_pages=16)


def test_N_I16_aobj_page_without_a_hash_element_is_reactivated(run_as_pagedaemon154: Any) -> None:
    """N-I16 (lines 771-780): "swapcluster_add fails (N-C6) | unbusy; dirtyreacts +1; activate
    (the cluster's slots stay allocated for later pages)". A shared region of 80 pages keeps
    its slots in a hash; the swap hash element pool is at its hard limit, so page 70's slot
    cannot be recorded (uao_set_swslot -1). The anon page after it takes the cluster's first
    slot."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("shared", 80, "big", touch=""),
                          pw.region("anon", 1), free=30)  # fmt: skip
        await pw.run_on(env, h, _store(h.vas[0] + 70 * PAGE, b"seventy"))
        opg, apg = pw.pg(env, h, 0, 70), pw.pg(env, h, 1, 0)
        pool = k.uao_swhash_elt_pool
        pool.pr_hardlimit = pool.pr_nout
        pw.deactivate(k, [opg, apg])
        try:
            with capture_logs() as logs:
                _, d = await _scan_inactive(k, BIG)
        finally:
            pool.pr_hardlimit = None
        assert (d["pdscans"], d["pgswapout"], d["pdobscan"]) == (2, 2, 1)
        assert opg.pg_flags & PQ_ACTIVE and not opg.pg_flags & PG_BUSY
        assert _aobj_slot(k, h, 0, 70) == 0
        assert _slot(apg) == 1 and _pageouts(logs) == [(1, "PEND")]
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_I17_first_dirty_page_opens_a_cluster_and_the_scan_goes_on(
    run_as_pagedaemon154: Any,
) -> None:
    """N-I17 (lines 781-785): "added, cluster not full | unlock owner; next page": two dirty
    pages take slots 1 and 2 of one cluster, written once after the loop."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 2), free=30)
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        with capture_logs() as logs:
            _, d = await _scan_inactive(k, BIG)
        assert [_slot(pg) for pg in pgs] == [1, 2] and _pageouts(logs) == [(2, "PEND")]
        assert pw.lock(h, 0).rwl_owner is None and d["pdpageouts"] == 1
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_I18_N_I20_full_cluster_is_written_and_counted_twice(run_as_pagedaemon154: Any) -> None:
    """N-I18 (lines 796-801): "cluster full | pdpageouts +1 and +1 again in flush (N-F3);
    unlock queues; flush"; N-I20 (lines 822-826): "result PEND | relock; paging += npages;
    pdpending +1". 16 dirty pages: one write, pdpageouts 2 (upstream's double count)."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 17), free=30)
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        with capture_logs() as logs:
            _, d = await _scan_inactive(k, 16)
        assert _pageouts(logs) == [(16, "PEND")]
        assert (d["pdpageouts"], d["pdpending"], d["paging"], d["pdscans"]) == (2, 1, 16, 16)
        assert _slot(pgs[16]) == 0
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_I19_N_I20prime_vnode_page_is_written_and_handed_back_clean(
    run_as_pagedaemon154: Any,
) -> None:
    """N-I19 (lines 803-819): "object (vnode) page | pdpageouts +1; uvm_pager_put(ALLPAGES,
    PDFREECLUST): returns with the queues unlocked and every page of the cluster, p included,
    unbusied"; N-I20' (line 822): "not PEND | relock only". The write is synchronous: the
    scan sleeps with its marker in the queue, and goes on from the marker after (uvm_check,
    run while the marker is queued, does not count it). Both dirty file pages are written as one cluster and come
    back clean, inactive and unbusied: the second, next in the queue, is then freed (N-I9a)."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("file", 2, "f"), pw.region("anon", 1), free=30)
        fpgs, apg = pw.pgs(env, h, 0), pw.pg(env, h, 1, 0)
        pw.deactivate(k, [*fpgs, apg])
        seen: list[int] = []
        lock = pw.lock(h, 1)

        def look(rwl: RWLock) -> None:  # at the anon page's try-lock, after the file write
            rwl.rwl_hook = None
            seen.append(_markers(k.uvm.page_inactive))
            env.check()  # uvm_check does not count the marker as an inactive page

        lock.rwl_hook = look
        with capture_logs() as logs:
            freed, d = await _scan_inactive(k, BIG)
        assert _pageouts(logs) == [(2, "OK"), (1, "PEND")]
        assert (d["pdpageouts"], d["pdpending"], d["paging"], d["pdobscan"]) == (2, 1, 1, 2)
        assert fpgs[0].pg_flags & PG_CLEAN and fpgs[0].pg_flags & PQ_INACTIVE
        assert not fpgs[0].pg_flags & PG_BUSY
        assert freed == 1 and fpgs[1].pg_flags & PQ_FREE
        assert seen == [1]
        assert _slot(apg) == 1  # the scan went on after the write, from its marker
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_I21_the_marker_is_removed_after_the_loop(run_as_pagedaemon154: Any) -> None:
    """N-I21 (line 828): "always (after N-I1/N-I2/end) | remove the marker". While the scan works
    on a page, the marker sits right after it (line 602, then uvmpd_iterator, N-R3); after
    the scan no PQ_ITER page is queued and the page queues are as they were."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 3), free=30)
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        q = k.uvm.page_inactive
        after: list[bool] = []

        def look(rwl: RWLock) -> None:  # the try-lock of page n (one amap: one lock)
            nxt = q.next(pgs[len(after)])
            after.append(nxt is not None and nxt.pg_flags == PQ_ITER)

        pw.lock(h, 0).rwl_hook = look
        await _scan_inactive(k, BIG)
        pw.lock(h, 0).rwl_hook = None
        assert after == [True, True, True]
        assert _markers(q) == 0 and _inactive(k) == pgs and len(q) == k.uvmexp.inactive == 3
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon154(body)


# === after the loop: N-I22, N-I22a, N-I22' (lines 830-840) =======================================


def test_N_I22_open_cluster_is_written_after_the_loop(run_as_pagedaemon154: Any) -> None:
    """N-I22 (lines 831-840): "a cluster is open | unlock; flush (pdpageouts +1 once); relock;
    PEND: paging += nused, pdpending +1". The queue ends with 3 dirty pages gathered."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 3), free=30)
        pw.deactivate(k, pw.pgs(env, h))
        with capture_logs() as logs:
            _, d = await _scan_inactive(k, BIG)
        assert _pageouts(logs) == [(3, "PEND")]
        assert (d["pdpageouts"], d["pdpending"], d["paging"], d["swpginuse"]) == (1, 1, 3, 3)
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_I22a_final_flush_refused_changes_no_paging(run_as_pagedaemon154: Any) -> None:
    """N-I22a: the final flush gets VM_PAGER_AGAIN (the buffer pool at its hard limit): no
    paging, no pdpending; the pages are back, unbusied and dirty, and their slots free
    (N-F4)."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 3), free=30)
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        assert k.bufpool is not None
        k.bufpool.pr_hardlimit = k.bufpool.pr_nout
        try:
            with capture_logs() as logs:
                _, d = await _scan_inactive(k, BIG)
        finally:
            k.bufpool.pr_hardlimit = None
        assert _pageouts(logs) == [(3, "AGAIN")]
        assert (d["pdpageouts"], d["pdpending"], d["paging"], d["swpginuse"]) == (1, 0, 0, 0)
        for pg in pgs:
            assert pg.pg_flags & PQ_INACTIVE and not pg.pg_flags & (PG_BUSY | PG_CLEAN)
            assert _slot(pg) == 0
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_I22prime_no_cluster_no_flush(run_as_pagedaemon154: Any) -> None:
    """N-I22' (line 831): "no cluster | nothing": a scan of clean pages only writes nothing."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("file", 2, "f", touch="r"), free=30)
        pw.deactivate(k, pw.pgs(env, h))
        with capture_logs() as logs:
            freed, d = await _scan_inactive(k, BIG)
        assert freed == 2 and _pageouts(logs) == [] and d["pdpageouts"] == 0
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_scan_runs_as_the_pagedaemon(run_as_pagedaemon154: Any) -> None:
    """The fixture's body is uvm.pagedaemon_proc (its swap writes are B_PDAEMON)."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        assert k.uvm.pagedaemon_proc is curproc() and k.pdaemon is pd154

    run_as_pagedaemon154(body)
