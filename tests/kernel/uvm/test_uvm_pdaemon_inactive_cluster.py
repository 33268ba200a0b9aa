"""uvm_pdaemon.py: uvmpd_scan_inactive, building swap clusters and starting the pageout.

Catalogue ids (docs/uvm-reference.md §2.3): I12 I12a I12b I12c I12d I12e (swap-backed dirty
page); I13 (object dirty page); I14 (final flush); I15 (pageout). The rest of §2.3: I0a-I11
in test_uvm_pdaemon_inactive_page.py, I16-I18e in test_uvm_pdaemon_inactive_result.py.

Each test pins one row of §2.3 and quotes it, or the C comment of seed/uvm_pdaemon.c 1.105
the row comes from. As in test_uvm_pdaemon_inactive_page.py (its docstring says more), the
pages belong to user processes (``pw.hold``, with a ballast leaving ``free=`` pages free), the
test body plays the page daemon (the ``run_as_pagedaemon`` fixture) and calls the inactive
scan with the page queues locked (pdaemon_inactive._scan), and another CPU acts through
``RWLock.rwl_hook`` or the kernel thread "cpu1". A bad swap slot comes from device fault
injection.

Thresholds on the machines used here (uvmpd_tune, reference §1.1): npages < 270 gives
freemin 9, freetarg 12, and the seed's stop target free + paging ≥ 4 × freetarg = 48.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from structlog.testing import capture_logs

from devices.faults import FaultConfig
from kernel.kern.kern_synch import RWLock
from kernel.kernel import Kernel
from kernel.uvm import uvm_swap
from kernel.uvm.uvm_page import PG_BUSY, PG_CLEAN, PQ_ACTIVE, PQ_INACTIVE

import pdaemon_world as pw
from pdaemon_inactive import (
    _aobj_slot,
    _big_aobj,
    _file_bytes,
    _load,
    _pageouts,
    _scan,
    _settle,
    _store,
)
from pdaemon_world import PAGE

if TYPE_CHECKING:
    from conftest import KernelEnv


# === swap-backed dirty pages: I12-I12e ============================================================


def test_I12_old_slot_is_freed_before_the_page_joins_a_new_cluster(run_as_pagedaemon: Any) -> None:
    """I12: "drop the page's old slot (no-op if none)" (C: "free old swap slot (if any)").
    P (slot 1) and Q (slot 2) were paged out; P was written again. P's pageout frees slot 1
    and takes the first free run of 16 slots, which now starts at 3."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 2), free=30)
        p, q = pw.pgs(env, h)
        pw.deactivate(k, [p, q])
        await _scan(k)
        await _settle(env)
        assert (p.uanon.an_swslot, q.uanon.an_swslot) == (1, 2)  # type: ignore[union-attr]
        await pw.run_on(env, h, _store(h.vas[0], b"P again"))
        await pw.run_on(env, h, _load(h.vas[0] + PAGE))  # Q: active again (clean, slot 2)
        pw.deactivate(k, [p])
        assert not p.pg_flags & PG_CLEAN and q.pg_flags & PQ_ACTIVE
        d = await _scan(k)
        assert d["pgswapout"] == 1
        assert p.uanon is not None and p.uanon.an_swslot == 3
        assert pw.slot_free(k, 1) and k.uvmexp.swpginuse == 2  # Q's slot 2 and P's slot 3
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon(body)


def test_I12a_no_swap_slot_left_unbusies_the_page_and_leaves_it_dirty(
    run_as_pagedaemon: Any,
) -> None:
    """I12a: "no open cluster, `uvm_swap_alloc(16, lessok)` returns 0 | clear PG_BUSY,
    unlock, skip. Page stays inactive and dirty ... and `pgswapout` was already counted" (C:
    "no swap?  give up!"). Every slot belongs to a resident, clean, active page (paged out
    and read back in), so swap is not "full" (swpgonly 0) but no slot is free."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 16), pw.region("anon", 1), free=20)
        owners = pw.pgs(env, h, 0)
        pw.deactivate(k, owners)
        await _scan(k)
        await _settle(env)
        for i in range(16):
            await pw.run_on(env, h, _load(h.vas[0] + i * PAGE))  # active again, keep their slots
        assert k.uvmexp.swpginuse == k.uvmexp.swpages == 16 and k.uvmexp.swpgonly == 0
        pg = pw.pg(env, h, 1, 0)
        pw.deactivate(k, [pg])
        d = await _scan(k)
        assert (d["pdscans"], d["pgswapout"], d["pdpageouts"], d["paging"]) == (1, 1, 0, 0)
        assert pg.pg_flags & PQ_INACTIVE and not pg.pg_flags & (PG_BUSY | PG_CLEAN)
        assert pg.uanon is not None and pg.uanon.an_swslot == 0
        assert pw.lock(h, 1).rwl_owner is None
        await pw.release(env, h)

    run_as_pagedaemon(body, swap_pages=16)


def test_I12a_a_page_whose_old_slot_went_bad_loses_it_and_gets_none(run_as_pagedaemon: Any) -> None:
    """I12a: "Page stays inactive and dirty, has lost its old slot (I12), and `pgswapout` was
    already counted". A good old slot would be freed and found again (lessok), so the page
    can only end up with no slot when its old slot is bad: uvm_swap_free leaves bad slots
    allocated. Here 16 of the 17 slots went bad in one failed write of a shared region (the
    port keeps such pages dirty, reference §4 item 10); another CPU held the aobj's lock at
    completion, so the pages kept their (bad) slots. The 17th slot belongs to a resident,
    clean, active page, so swap is not full (uvm_swapisfull counts bad slots as full, PORT)
    but no slot is free. The next scan drops each bad slot (I10 and I12: "no-op" on the
    drum) and finds no slot to replace it."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("shared", 16, "shm"), pw.region("anon", 1), free=20)
        pgs = pw.pgs(env, h)
        keeper = pw.pg(env, h, 1, 0)
        pw.deactivate(k, [*pgs, keeper])
        await _scan(k)  # the region's cluster gets slots 1..16 (fails), the keeper slot 17
        cpu = pw.other_cpu(k)
        lock = pw.lock(h, 0)
        await pw.run_on(env, cpu, pw.enter(k, lock))  # held while aiodoned completes the write
        await pw.until(env, lambda: not any(pg.pg_flags & PG_BUSY for pg in pgs), "completion")
        await pw.run_on(env, cpu, pw.exit_(lock))
        await _settle(env)
        await pw.run_on(env, h, _load(h.vas[1]))  # the keeper is active again and keeps slot 17
        old = [_aobj_slot(k, h, 0, i) for i in range(16)]
        assert old == list(range(1, 17))  # kept, and bad: allocated for good
        assert pw.anon(env, h, 1, 0).an_swslot == 17
        assert k.uvmexp.swpginuse == k.uvmexp.swpages == 17 and k.uvmexp.swpgonly == 0
        assert not uvm_swap.uvm_swapisfull(k)
        assert not any(pg.pg_flags & PG_CLEAN for pg in pgs)

        d = await _scan(k)
        assert (d["pdscans"], d["pgswapout"], d["pdpageouts"], d["swpginuse"]) == (16, 16, 0, 0)
        for i, pg in enumerate(pgs):
            assert pg.pg_flags & PQ_INACTIVE and not pg.pg_flags & (PG_BUSY | PG_CLEAN)
            assert _aobj_slot(k, h, 0, i) == 0
        await pw.release(env, h)

    run_as_pagedaemon(body, swap_pages=17, faults=FaultConfig(fail_write_slots=[(0, 15)]))


def test_I12b_cluster_opens_with_sixteen_slots(run_as_pagedaemon: Any) -> None:
    """I12b: "no open cluster, allocation succeeds | open a cluster: swslot, swnpages (16
    ...), swcpages = 0". Seen at the second page's try-lock: 16 slots are allocated for the
    cluster that holds one page."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 1), pw.region("anon", 1), free=30)
        first, second = pw.pg(env, h, 0, 0), pw.pg(env, h, 1, 0)
        pw.deactivate(k, [first, second])
        seen: list[int] = []
        pw.lock(h, 1).rwl_hook = lambda rwl: seen.append(k.uvmexp.swpginuse)
        await _scan(k)
        assert seen == [16]
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon(body)


def test_I12b_lessok_opens_a_one_slot_cluster_when_sixteen_do_not_fit(
    run_as_pagedaemon: Any,
) -> None:
    """I12b: "... swnpages (16 or 1)"; uvm_swap_alloc: "If nothing fits and n > 1 and lessok,
    n is set to 1". With 15 free slots, each dirty page is a full cluster of one, paged out
    with p at once (I12e)."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 1), pw.region("anon", 3), free=30)
        pw.deactivate(k, pw.pgs(env, h, 0))
        await _scan(k)  # takes slot 1 (the other 15 of its cluster are given back)
        await _settle(env)
        await pw.run_on(env, h, _load(h.vas[0]))  # back on the active queue, keeps slot 1
        pgs = pw.pgs(env, h, 1)
        pw.deactivate(k, pgs)
        with capture_logs() as logs:
            d = await _scan(k)
        assert _pageouts(logs) == [(1, "PEND")] * 3
        assert (d["pdpageouts"], d["pdpending"], d["paging"]) == (3, 3, 3)
        assert [pg.uanon.an_swslot for pg in pgs] == [2, 3, 4]  # type: ignore[union-attr]
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon(body, swap_pages=16)


def test_I12c_the_slot_is_recorded_in_the_anon_or_in_the_aobj(run_as_pagedaemon: Any) -> None:
    """I12c: "append p; set its slot (anon field or aobj slot) to swslot + swcpages"
    (C: "add block to cluster"). Anon and aobj pages share one cluster."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 2), pw.region("shared", 2, "shm"), free=30)
        a, o = pw.pgs(env, h, 0), pw.pgs(env, h, 1)
        pw.deactivate(k, [a[0], o[0], a[1], o[1]])
        with capture_logs() as logs:
            await _scan(k)
        assert _pageouts(logs) == [(4, "PEND")]
        assert (pw.anon(env, h, 0, 0).an_swslot, pw.anon(env, h, 0, 1).an_swslot) == (1, 3)
        assert (_aobj_slot(k, h, 1, 0), _aobj_slot(k, h, 1, 1)) == (2, 4)
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon(body)


def test_I12c_the_slot_of_a_page_of_a_large_aobj_goes_into_its_swap_hash(
    run_as_pagedaemon: Any,
) -> None:
    """I12c for an aobj of more than 64 pages, which keeps its slots in a hash of 16-slot
    elements rather than an array (uvm_aobj.c's UAO_USES_SWHASH): "set its slot (...aobj
    slot) to swslot + swcpages" makes the elements of pages 3 and 70 (two clusters of the
    object), counted in the element pool."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h, _ = await _big_aobj(env, "w", (3, 70))
        pool = k.uao_swhash_elt_pool
        nout = pool.pr_nout
        with capture_logs() as logs:
            await _scan(k)
        assert _pageouts(logs) == [(2, "PEND")]
        assert (_aobj_slot(k, h, 0, 3), _aobj_slot(k, h, 0, 70)) == (1, 2)
        assert pool.pr_nout == nout + 2
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon(body)


def test_I12d_a_cluster_that_is_not_full_waits_for_the_next_page(run_as_pagedaemon: Any) -> None:
    """I12d: "swcpages < swnpages | skip to next page (cluster not full)" (C: "cluster not
    full yet?"). At the second page's try-lock the first page is busy in the cluster with
    its slot, and nothing has been written yet."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 1), pw.region("anon", 1), free=30)
        first, second = pw.pg(env, h, 0, 0), pw.pg(env, h, 1, 0)
        pw.deactivate(k, [first, second])
        seen: list[tuple[int, int, bool, int]] = []

        def look(rwl: RWLock) -> None:
            assert first.uanon is not None
            seen.append(
                (
                    k.uvmexp.pdpageouts,
                    k.uvmexp.paging,
                    bool(first.pg_flags & PG_BUSY),
                    first.uanon.an_swslot,
                )
            )

        pw.lock(h, 1).rwl_hook = look
        d = await _scan(k)
        assert seen == [(0, 0, True, 1)]
        assert pw.lock(h, 0).rwl_owner is None  # unlocked before moving on
        assert d["pdpageouts"] == 1  # both pages went out together at the end
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon(body)


def test_I12e_a_full_cluster_is_paged_out_at_once(run_as_pagedaemon: Any) -> None:
    """I12e: "cluster full | pageout of the cluster (I15)" - with the 16th page as p, before
    the 17th page is looked at."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 16), pw.region("anon", 1), free=25)
        pw.deactivate(k, pw.pgs(env, h, 0) + pw.pgs(env, h, 1))
        seen: list[tuple[int, int, int]] = []
        pw.lock(h, 1).rwl_hook = lambda rwl: seen.append(
            (k.uvmexp.pdpageouts, k.uvmexp.pdpending, k.uvmexp.paging)
        )
        with capture_logs() as logs:
            d = await _scan(k)
        assert seen == [(1, 1, 16)]
        assert _pageouts(logs) == [(16, "PEND"), (1, "PEND")]
        assert d["pdpageouts"] == 2
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon(body)


# === object pages, the final flush, the pageout: I13-I15 ==========================================


def test_I13_dirty_vnode_page_is_written_synchronously_through_its_object(
    run_as_pagedaemon: Any,
) -> None:
    """I13: "Object (vnode) dirty page - page stays locked; array of 16, start 0; pageout
    (I15) with the object"; §1.8: "object pageouts from the daemon are synchronous": the
    file holds the data when uvm_pager_put returns OK, nothing is added to `paging`."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("file", 1, "f"), free=30)
        pg = pw.pg(env, h, 0, 0)
        pw.deactivate(k, [pg])
        assert _file_bytes(env, "f", 0) == bytes(PAGE)
        with capture_logs() as logs:
            d = await _scan(k)
        assert [(e["npages"], e["result"], e["swap"]) for e in logs if "npages" in e] == [
            (1, "OK", False)
        ]
        assert (d["pdobscan"], d["pgswapout"], d["pdpageouts"]) == (1, 1, 1)
        assert (d["pdpending"], d["paging"], d["swpginuse"]) == (0, 0, 0)
        assert _file_bytes(env, "f", 0) == pw.data("w", 0, 0)
        assert pw.lock(h, 0).rwl_owner is None
        await pw.release(env, h)

    run_as_pagedaemon(body)


def test_I14_final_flush_writes_the_partial_cluster_and_frees_unused_slots(
    run_as_pagedaemon: Any,
) -> None:
    """I14: "p is NONE with an open cluster: swap_backed := true; pageout of the cluster";
    I15: "if swcpages < swnpages (only on the final flush ...) free the unused slot tail"
    (C: "if this is final pageout we could have a few extra swap blocks")."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 3), free=30)
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        with capture_logs() as logs:
            d = await _scan(k)
        assert [(e["npages"], e["swslot"]) for e in logs if "npages" in e] == [(3, 1)]
        assert (d["pdpageouts"], d["pdpending"], d["paging"], d["swpginuse"]) == (1, 1, 3, 3)
        assert all(pw.slot_free(k, s) for s in range(4, 17))
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon(body)


def test_I15_pdpageouts_counts_one_per_cluster(run_as_pagedaemon: Any) -> None:
    """I15: "`pdpageouts` +1" per uvm_pager_put call (§2.5: "`pgswapout` counts attempts,
    `pdpageouts` counts I/O starts (once per cluster)")."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 20), free=20)
        pw.deactivate(k, pw.pgs(env, h))
        d = await _scan(k)
        assert (d["pgswapout"], d["pdpageouts"], d["pdpending"], d["paging"]) == (20, 2, 2, 20)
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon(body)


