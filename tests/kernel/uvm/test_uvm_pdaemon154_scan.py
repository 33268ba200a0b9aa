"""uvm_pdaemon_1_154.py: uvmpd_scan (lines 851-954) and its walk of the active queue.

Catalogue ids (docs/pdaemon-1.154.md §2.10): N-S0 N-S1 N-S2 N-S2' N-S3 (before the walk);
N-A0 N-A1 N-A2 N-A3 N-A4 N-A5 N-A5' N-A6 N-A6' N-A7 (the walk). Primes are spelled
``prime``. The inactive scan's own rows are in test_uvm_pdaemon154_inactive_*.py.

The test body is the page daemon on a machine booted with the 1.154 daemon
(``run_as_pagedaemon154``) and calls ``uvmpd_scan(k, constraint, shortage,
inactive_shortage)`` with the page queues locked (pdaemon154._scan), as uvm_pageout does
(lines 283-285); the two shortages are the test's choice, as the loop computes them at the top
of a pass. The swap shortage (N-S2) needs swap with fewer than 16 free slots, some held by
resident pages: those are anon pages paged out and read back (``_anon_round_trip``: active,
clean, owning a slot).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import kernel.uvm.uvm_pdaemon_1_154 as pd154
from kernel.kern.kern_synch import RWLock
from kernel.kernel import Kernel
from kernel.uvm import uvm_swap
from kernel.uvm.uvm import UvmConstraintRange
from kernel.uvm.uvm_page import PG_BUSY, PG_CLEAN, PQ_ACTIVE, PQ_INACTIVE, PQ_ITER, VmPage, atop

import pdaemon_world as pw
from pdaemon154 import _markers, _scan, _scan_inactive
from pdaemon_inactive import _settle
from pdaemon_swap import _anon_round_trip, _busy
from pdaemon_world import Holder

if TYPE_CHECKING:
    from conftest import KernelEnv


def _slot(pg: VmPage) -> int:
    assert pg.uanon is not None
    return pg.uanon.an_swslot


async def _swap_short(env: KernelEnv, n: int = 26) -> tuple[Holder, list[VmPage], VmPage]:
    """Swap of 40 slots with ``n`` held by resident active anon pages (filled if in use + 16 >=
    40: so with the default 26; not full: nothing is swap-only), plus one active anon page without a slot at the head
    of the active queue. Returns the holder, the pages with slots, the slotless page."""
    k = env.k
    h = await pw.hold(env, "w", pw.region("anon", 1), pw.region("anon", n))
    await _anon_round_trip(env, h, 1, range(n))
    assert uvm_swap.uvm_swapisfilled(k) == (n + 16 >= 40) and not uvm_swap.uvm_swapisfull_154(k)
    fresh = pw.pg(env, h, 0, 0)
    assert k.uvm.page_active.first() is fresh and _slot(fresh) == 0
    return h, pw.pgs(env, h, 1), fresh


# === before the walk: N-S0 - N-S3 (lines 861-887) =================================================


def test_N_S0_N_S1_every_scan_counts_a_revolution_and_adds_what_was_freed(
    run_as_pagedaemon154: Any,
) -> None:
    """N-S0 (line 861): "always | pdrevs +1"; N-S1 (869-871): "inactive scan; pdfreed +=
    freed; shortage -= freed": two clean inactive pages freed, pdfreed 2 (1.105 counted per
    page in the scan)."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("file", 2, "f", touch="r"), free=30)
        pw.deactivate(k, pw.pgs(env, h))
        d = await _scan(k, 5, 0)
        assert (d["pdrevs"], d["pdfreed"], d["free"], d["pddeact"]) == (1, 2, 2, 0)
        d = await _scan(k, 0, 0)
        assert (d["pdrevs"], d["pdfreed"]) == (1, 0)
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_S2_N_A5_N_A6prime_short_swap_takes_slots_from_active_pages(
    run_as_pagedaemon154: Any,
) -> None:
    """N-S2 (lines 880-884): "shortage > 0 and swapisfilled and not swapisfull and freed == 0 |
    swap_shortage = shortage"; N-A5 (929-934): "swap shortage and uvmpd_dropswap freed a slot
    | clear PG_CLEAN; swap_shortage -1"; N-A5' (930): the slotless page at the head is passed
    over; N-A6' (940): with no inactive shortage the pages stay active. Shortage 3: three
    slots come back, then the walk ends (N-A0)."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h, pgs, fresh = await _swap_short(env)
        d = await _scan(k, 3, 0)
        assert (d["pdrevs"], d["swpginuse"], d["pddeact"], d["inactive"]) == (1, -3, 0, 0)
        assert [_slot(pg) == 0 for pg in pgs[:4]] == [True, True, True, False]
        for pg in pgs[:3]:
            assert pg.pg_flags & PQ_ACTIVE and not pg.pg_flags & PG_CLEAN
        assert pgs[3].pg_flags & PG_CLEAN and fresh.pg_flags & PQ_ACTIVE
        await pw.release(env, h)

    run_as_pagedaemon154(body, swap_pages=40)


def test_N_S2prime_no_shortage_left_no_swap_shortage(run_as_pagedaemon154: Any) -> None:
    """N-S2' (line 880), first conjunct: "shortage > 0" false - the same machine with
    shortage 0: no slot is taken."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h, pgs, _ = await _swap_short(env)
        d = await _scan(k, 0, 0)
        assert d["swpginuse"] == 0 and all(_slot(pg) for pg in pgs)
        await pw.release(env, h)

    run_as_pagedaemon154(body, swap_pages=40)


@pytest.mark.parametrize("shortage", [0, 1, 2])
def test_N_S2_a_shortage_of_one_page_is_a_swap_shortage_of_one(
    run_as_pagedaemon154: Any, shortage: int
) -> None:
    """N-S2 (line 880), first conjunct at its boundary: "shortage > 0 | swap_shortage =
    shortage": a shortage of 1 takes one slot from an active page, 2 take two, 0 none (N-S2')."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h, pgs, _ = await _swap_short(env)
        d = await _scan(k, shortage, 0)
        assert d["swpginuse"] == -shortage
        assert [_slot(pg) == 0 for pg in pgs[:3]] == [i < shortage for i in range(3)]
        await pw.release(env, h)

    run_as_pagedaemon154(body, swap_pages=40)


def test_N_S2prime_swap_not_filled_no_swap_shortage(run_as_pagedaemon154: Any) -> None:
    """N-S2', second conjunct: 16 or more free slots (uvm_swapisfilled false)."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h, pgs, _ = await _swap_short(env, 20)
        assert not uvm_swap.uvm_swapisfilled(k)
        d = await _scan(k, 3, 0)
        assert d["swpginuse"] == 0 and all(_slot(pg) for pg in pgs)
        await pw.release(env, h)

    run_as_pagedaemon154(body, swap_pages=40)


def test_N_S2prime_swap_full_no_swap_shortage(run_as_pagedaemon154: Any) -> None:
    """N-S2', third conjunct: uvm_swapisfull (99 % swap-only) - taking slots from resident
    pages would not help what is only in swap. 16 slots: 15 swap-only, one held by an active
    page."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 15), pw.region("anon", 1), free=30)
        gone = pw.pgs(env, h, 0)
        pw.deactivate(k, gone)
        await _scan_inactive(k, 1000)
        await _settle(env)
        await _scan_inactive(k, 1000)
        (slot,) = await _anon_round_trip(env, h, 1, range(1))
        assert uvm_swap.uvm_swapisfull_154(k) and uvm_swap.uvm_swapisfilled(k)
        d = await _scan(k, 3, 0)
        assert d["swpginuse"] == 0 and _slot(pw.pg(env, h, 1, 0)) == slot
        await pw.release(env, h)

    run_as_pagedaemon154(body, swap_pages=16)


def test_N_S2prime_something_freed_no_swap_shortage(run_as_pagedaemon154: Any) -> None:
    """N-S2', fourth conjunct: "pages_freed == 0" false - the inactive scan freed a clean page,
    so, though a shortage of 2 remains, no slot is taken."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h, pgs, _ = await _swap_short(env)
        clean = pgs[-1]
        pw.deactivate(k, [clean])
        d = await _scan(k, 3, 0)
        assert d["pdfreed"] == 1 and d["swpginuse"] == 0
        assert all(_slot(pg) for pg in pgs[:-1])
        await pw.release(env, h)

    run_as_pagedaemon154(body, swap_pages=40)


def test_N_S3_empty_active_queue_returns_before_the_walk(run_as_pagedaemon154: Any) -> None:
    """N-S3 (lines 886-887): "active queue empty | return before the walk" - everything is
    inactive; an inactive shortage changes nothing."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 2))
        pw.deactivate(k, pw.pgs(env, h))
        assert k.uvm.page_active.empty()
        d = await _scan(k, 0, 5)
        assert (d["pdrevs"], d["pddeact"], d["inactive"]) == (1, 0, 0)
        assert _markers(k.uvm.page_active) == 0
        await pw.release(env, h)

    run_as_pagedaemon154(body)


# === the active walk: N-A0 - N-A7 (lines 889-953) =================================================


def test_N_A0_no_shortage_leaves_the_walk_at_once(run_as_pagedaemon154: Any) -> None:
    """N-A0 (lines 890-892): "both shortages <= 0 (also at entry) | leave (marker removed, line
    953)": nothing is deactivated, no lock is tried."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 2), free=30)
        tries: list[int] = []
        pw.lock(h, 0).rwl_hook = lambda rwl: tries.append(1)
        d = await _scan(k, 0, 0)
        pw.lock(h, 0).rwl_hook = None
        assert (d["pdrevs"], d["pddeact"], d["active"]) == (1, 0, 0) and tries == []
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_A6_N_A7_deactivation_unmaps_and_stops_at_the_inactive_target(
    run_as_pagedaemon154: Any,
) -> None:
    """N-A6 (lines 940-946): "inactive_shortage > 0 | unlock queues; deactivate (unmaps the
    page: 2026 uvm_pagedeactivate); relock; pddeact +1; inactive_shortage -1"; N-A7 (951):
    "unlock owner". Two of three pages go; the walk stops at the target (N-A0)."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 3), free=30)
        pgs = pw.pgs(env, h)
        assert all(k.pmap.pmap_page_mapped(pg) for pg in pgs)
        held_at: list[bool] = []
        real = pd154.uvm_page.uvm_pagedeactivate_154

        def spy(k: Kernel, p: VmPage) -> None:
            held_at.append(k.uvm.pageqlock.mtx_owner is not None)
            real(k, p)

        pd154.uvm_page.uvm_pagedeactivate_154 = spy  # type: ignore[attr-defined]
        try:
            d = await _scan(k, 0, 2)
        finally:
            pd154.uvm_page.uvm_pagedeactivate_154 = real  # type: ignore[attr-defined]
        assert (d["pddeact"], d["inactive"], d["active"]) == (2, 2, -2) and held_at == [False] * 2
        for pg in pgs[:2]:
            assert pg.pg_flags & PQ_INACTIVE and not k.pmap.pmap_page_mapped(pg)
        assert pgs[2].pg_flags & PQ_ACTIVE and pw.lock(h, 0).rwl_owner is None
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_A1_busy_page_is_passed_over_without_its_lock(run_as_pagedaemon154: Any) -> None:
    """N-A1 (lines 893-895): "busy | skip, no lock": the first page is busy (under I/O); its
    owner's lock is not tried, and the next page is deactivated instead."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 1), pw.region("anon", 1), free=30)
        busy, other = pw.pg(env, h, 0, 0), pw.pg(env, h, 1, 0)
        await _busy(k, pw.lock(h, 0), busy, True)
        tries: list[int] = []
        pw.lock(h, 0).rwl_hook = lambda rwl: tries.append(1)
        d = await _scan(k, 0, 1)
        pw.lock(h, 0).rwl_hook = None
        assert d["pddeact"] == 1 and tries == []
        assert busy.pg_flags & PQ_ACTIVE and other.pg_flags & PQ_INACTIVE
        await _busy(k, pw.lock(h, 0), busy, False)
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_A2_pages_outside_the_constraint_are_not_deactivated(run_as_pagedaemon154: Any) -> None:
    """N-A2 (lines 905-907): "deactivating, no swap shortage, page outside the constraint |
    skip" (1.105 and 1.109 deactivated any page): only the page inside is deactivated."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 3), free=30)
        pgs = pw.pgs(env, h)
        f = atop(pgs[2].phys_addr)
        d = await _scan(k, 0, 3, UvmConstraintRange(f, f + 1))
        assert d["pddeact"] == 1
        assert [bool(pg.pg_flags & PQ_INACTIVE) for pg in pgs] == [False, False, True]
        await pw.release(env, h)

    run_as_pagedaemon154(body)


@pytest.mark.parametrize(("inactive_shortage", "deactivated"), [(1, [False, False, True]), (0, [])])
def test_N_A2_an_inactive_shortage_of_one_page_keeps_to_the_constraint(
    run_as_pagedaemon154: Any, inactive_shortage: int, deactivated: list[bool]
) -> None:
    """N-A2 (line 905) at the boundary of its first test: with an inactive shortage of 1 the
    pages outside the constraint are still passed over and the one inside is deactivated;
    with 0 the walk does not run (N-A0)."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 3), free=30)
        pgs = pw.pgs(env, h)
        f = atop(pgs[2].phys_addr)
        d = await _scan(k, 0, inactive_shortage, UvmConstraintRange(f, f + 1))
        assert d["pddeact"] == inactive_shortage
        inactive = [bool(pg.pg_flags & PQ_INACTIVE) for pg in pgs]
        assert inactive == (deactivated or [False] * 3)
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_A3_owner_locked_elsewhere_is_passed_over(run_as_pagedaemon154: Any) -> None:
    """N-A3 (lines 912-915): "try-lock fails | skip"."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 1), pw.region("anon", 1), free=30)
        cpu = pw.other_cpu(k)
        await pw.run_on(env, cpu, pw.enter(k, pw.lock(h, 0)))
        d = await _scan(k, 0, 1)
        assert d["pddeact"] == 1
        assert pw.pg(env, h, 0, 0).pg_flags & PQ_ACTIVE
        assert pw.pg(env, h, 1, 0).pg_flags & PQ_INACTIVE
        await pw.run_on(env, cpu, pw.exit_(pw.lock(h, 0)))
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_R3_the_walks_marker_is_a_PQ_ITER_page_right_behind_its_page(
    run_as_pagedaemon154: Any,
) -> None:
    """Lines 856 and 890 with N-R3 (lines 547-550): the active walk puts a marker page (only
    PQ_ITER set) right behind the page it works on and moves it along, so that it can go on
    from there after dropping the page queues to deactivate (N-A6). Seen at each owner
    try-lock: one page that is not a holder's page, flagged PQ_ITER only, behind the first
    page still active."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 3))
        pgs = pw.pgs(env, h)
        seen: list[tuple[list[int], bool]] = []

        def look(rwl: RWLock) -> None:
            q = list(k.uvm.page_active)
            extra = [i for i, pg in enumerate(q) if not any(pg is x for x in pgs)]
            current = next(pg for pg in pgs if pg.pg_flags & PQ_ACTIVE)
            seen.append(([q[i].pg_flags for i in extra], q[extra[0] - 1] is current))

        pw.lock(h, 0).rwl_hook = look
        d = await _scan(k, 0, 2)
        pw.lock(h, 0).rwl_hook = None
        assert d["pddeact"] == 2 and seen == [([PQ_ITER], True)] * 2
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_A4_page_busied_by_its_owner_meanwhile_is_passed_over(run_as_pagedaemon154: Any) -> None:
    """N-A4 (lines 920-923): "busy once locked | unlock, skip": at the try-lock another CPU
    busies the page (the lock hook)."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 1), pw.region("anon", 1), free=30)
        first, other = pw.pg(env, h, 0, 0), pw.pg(env, h, 1, 0)

        def busy_it(rwl: RWLock) -> None:
            rwl.rwl_hook = None
            first.pg_flags |= PG_BUSY

        pw.lock(h, 0).rwl_hook = busy_it
        d = await _scan(k, 0, 1)
        assert d["pddeact"] == 1 and first.pg_flags & PQ_ACTIVE and other.pg_flags & PQ_INACTIVE
        assert pw.lock(h, 0).rwl_owner is None
        first.pg_flags &= ~PG_BUSY
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_A5_N_A6_short_swap_and_inactive_target_both_worked_on(
    run_as_pagedaemon154: Any,
) -> None:
    """N-A5 with N-A6: with both shortages the walk takes the slot and deactivates the same
    page, until both are met (the constraint is ignored while swap is short, line 905)."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h, pgs, fresh = await _swap_short(env)
        nowhere = UvmConstraintRange(1 << 20, 1 << 21)
        d = await _scan(k, 2, 3, nowhere)
        assert (d["pddeact"], d["swpginuse"]) == (3, -2)
        assert fresh.pg_flags & PQ_INACTIVE  # no slot: deactivated only
        assert [_slot(pg) == 0 for pg in pgs[:3]] == [True, True, False]
        assert all(pg.pg_flags & PQ_INACTIVE for pg in pgs[:2]) and pgs[2].pg_flags & PQ_ACTIVE
        await pw.release(env, h)

    run_as_pagedaemon154(body, swap_pages=40)
