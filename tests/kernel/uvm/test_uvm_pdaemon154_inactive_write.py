"""uvm_pdaemon_1_154.py: uvmpd_scan_inactive (1.154 lines 564-843): writing dirty pages, and
the end of the scan.

Catalogue ids (docs/pdaemon-1.154.md §2.9): N-I12 N-I13 N-I14 N-I15 N-I16 N-I17 N-I18 N-I19
N-I20 N-I20' (per page, once it is dirty and swap is not full); N-I21 N-I22 N-I22a N-I22'
(after the loop). Primes are spelled ``prime``. The first rows (N-I0 - N-I11) are in
test_uvm_pdaemon154_inactive_page.py; the swap cluster's own rows in _cluster.py.

As there: the test body is the page daemon on a machine booted with the 1.154 daemon
(``run_as_pagedaemon154``) and calls ``uvmpd_scan_inactive(k, constraint, shortage)`` with
the page queues locked. Swap with few free slots is made of anon pages paged out and read
back (``_anon_round_trip``: resident, clean, owning a slot).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from structlog.testing import capture_logs

import kernel.uvm.uvm_pdaemon_1_154 as pd154
from kernel.kern.kern_synch import RWLock
from kernel.kernel import Kernel
from kernel.sys.proc import curproc
from kernel.uvm import uvm_swap
from kernel.uvm.uvm_page import (
    PG_BUSY,
    PG_CLEAN,
    PQ_ACTIVE,
    PQ_FREE,
    PQ_INACTIVE,
    PQ_ITER,
    VmPage,
)

import pdaemon_world as pw
from pdaemon154 import BIG, _inactive, _markers, _scan_inactive, _slot
from pdaemon_inactive import _aobj_slot, _pageouts, _settle, _store
from pdaemon_swap import _anon_round_trip
from pdaemon_world import PAGE, Holder

if TYPE_CHECKING:
    from conftest import KernelEnv

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


async def _no_free_slot(env: KernelEnv, n: int) -> tuple[Holder, list[VmPage]]:
    """N-I15's machine (run with 16 swap slots): every slot in use by a resident clean page
    (region 0, not swap-only, so swap is not "full"), and ``n`` dirty anon pages (region 1)
    deactivated. Returns the holder and those n pages."""
    k = env.k
    h = await pw.hold(env, "w", pw.region("anon", 16), pw.region("anon", n), free=30)
    await _anon_round_trip(env, h, 0, range(16))
    assert k.uvmexp.swpginuse == 16 and not uvm_swap.uvm_swapisfull_154(k)
    pgs = pw.pgs(env, h, 1)
    pw.deactivate(k, pgs)
    return h, pgs


def test_N_I15_no_slot_unbusies_and_reactivates_the_page(run_as_pagedaemon154: Any) -> None:
    """N-I15 (lines 759-768): "swapcluster_allocslots fails (N-C2) | unbusy; dirtyreacts +1;
    activate" (1.105 left it inactive, uncounted). Every slot of 16 is in use by a resident
    clean page (not swap-only, so swap is not "full")."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h, pgs = await _no_free_slot(env, 2)
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


def test_N_I2_N_I15_sixteen_pages_without_a_slot_end_the_scan(run_as_pagedaemon154: Any) -> None:
    """N-I15 (line 762) counts toward N-I2 (line 609): "dirtyreacts == 16 | leave the loop".
    N-I15's machine (every slot of 16 in use by a resident clean page) with 17 dirty anon
    pages inactive: 16 find no slot and go back to the active queue, the 17th is not looked
    at."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h, pgs = await _no_free_slot(env, 17)
        _, d = await _scan_inactive(k, BIG)
        assert (d["pdscans"], d["pgswapout"], d["pdpageouts"]) == (16, 16, 0)
        assert all(pg.pg_flags & PQ_ACTIVE for pg in pgs[:16]) and _inactive(k) == pgs[16:]
        await pw.release(env, h)

    run_as_pagedaemon154(body, swap_pages=16)


def test_N_I2_N_I16_sixteen_refused_aobj_pages_end_the_scan(run_as_pagedaemon154: Any) -> None:
    """N-I16 (line 775) counts toward N-I2 (line 609). A 272-page shared region keeps its slots
    in a hash of 16-slot elements; pages 0, 16, .., 256 would each need an element of their
    own, and the element pool is at its hard limit. After an anon page (slot 1 of the
    cluster), 16 of them are refused and reactivated; the 17th is not looked at; the anon
    page is written after the loop."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("shared", 272, "big", touch=""),
                          pw.region("anon", 1), free=30)  # fmt: skip
        for i in range(0, 272, 16):
            await pw.run_on(env, h, _store(h.vas[0] + i * PAGE, b"x"))
        opgs = [pw.pg(env, h, 0, i) for i in range(0, 272, 16)]
        apg = pw.pg(env, h, 1, 0)
        pw.deactivate(k, [apg, *opgs])
        pool = k.uao_swhash_elt_pool
        pool.pr_hardlimit = pool.pr_nout
        try:
            with capture_logs() as logs:
                _, d = await _scan_inactive(k, BIG)
        finally:
            pool.pr_hardlimit = None
        assert (d["pdscans"], d["pdobscan"], d["pgswapout"]) == (17, 16, 17)
        assert all(pg.pg_flags & PQ_ACTIVE for pg in opgs[:16])
        assert _inactive(k) == [apg, opgs[16]]  # the anon page is being written
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


def test_N_I18_N_I20_N_I22_two_full_clusters_then_a_partial_one(run_as_pagedaemon154: Any) -> None:
    """N-I18 and N-I20 twice, then N-I22: 33 dirty anon pages and a large shortage. Each full
    cluster is written as soon as it is full (the next page opens a new one), counted twice in
    pdpageouts (lines 796 and 465) and once in pdpending, its pages added to paging; the 33rd
    page is written after the loop (pdpageouts once more). Totals: 5 pageouts counted, 3
    pending writes, 33 pages in flight."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 33), free=30)
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        with capture_logs() as logs:
            _, d = await _scan_inactive(k, BIG)
        assert _pageouts(logs) == [(16, "PEND"), (16, "PEND"), (1, "PEND")]
        assert (d["pdpageouts"], d["pdpending"], d["paging"]) == (5, 3, 33)
        assert [_slot(pg) for pg in pgs] == list(range(1, 34))
        await _settle(env)
        assert all(pg.pg_flags & PG_CLEAN for pg in pgs)
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
