"""uvm_pdaemon_1_154.py: the swap cluster (struct swapcluster and its functions, lines 385-488).

Catalogue ids (docs/pdaemon-1.154.md §2.6): N-C1 N-C2 N-C3 N-C4 N-C5 N-C6 N-C7
(swapcluster_allocslots 399-417, swapcluster_add 419-446); N-F1 N-F2 N-F3 N-F4 N-F5
(swapcluster_flush 448-482). swapcluster_init (392-397) and swapcluster_nused (484-488) have
no branch; they are used throughout.

The test body is the page daemon on a machine booted with the 1.154 daemon
(``run_as_pagedaemon154``) and calls the cluster functions as uvmpd_scan_inactive does: a page
is busied and write-protected under its owner's lock before it is added (N-I13), and the
cluster is flushed with the page queues and the owners unlocked. N-F1 cannot happen with the
callers 1.154 has (both flush an open cluster); its test calls the function as no caller does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from structlog.testing import capture_logs

import kernel.uvm.uvm_pdaemon_1_154 as pd154
from kernel.kern.kern_synch import RW_WRITE, rw_enter, rw_exit
from kernel.kernel import Kernel
from kernel.sys.errno import ENOMEM
from kernel.sys.mman import PROT_READ
from kernel.uvm import uvm_pager, uvm_swap
from kernel.uvm.uvm_page import PG_BUSY, PG_CLEAN, PQ_INACTIVE, VmPage
from kernel.uvm.uvm_pdaemon_1_154 import Swapcluster

import pdaemon_world as pw
from pdaemon_inactive import _aobj_slot, _big_aobj, _pageouts, _settle, _store
from pdaemon_world import PAGE, Holder

if TYPE_CHECKING:
    from conftest import KernelEnv


async def _add(k: Kernel, swc: Swapcluster, h: Holder, r: int, pg: VmPage) -> int:
    """What the inactive scan does with a dirty swap-backed page (lines 744-778): busy and
    write-protect it under its owner's lock, add it to the cluster (undone if refused)."""
    lock = pw.lock(h, r)
    await rw_enter(k, lock, RW_WRITE)
    pg.pg_flags |= PG_BUSY
    k.pmap.pmap_page_protect(pg, PROT_READ)
    err = pd154.swapcluster_add(k, swc, pg)
    if err:
        pg.pg_flags &= ~PG_BUSY
    rw_exit(lock)
    return err


async def _flush(k: Kernel, swc: Swapcluster) -> int:
    """The inactive scan's final flush (lines 831-840): a pending write goes into paging (which
    aiodoned takes off again: the body is the page daemon, its writes are B_PDAEMON)."""
    npages = swc.swc_nused
    r = await pd154.swapcluster_flush(k, swc)
    if r == uvm_pager.VM_PAGER_PEND:
        k.uvmexp.paging += npages
    return r


async def _two_anons_added(env: KernelEnv) -> tuple[Holder, list[VmPage], Swapcluster]:
    """Two dirty anon pages of a holder (30 pages left free), deactivated and added to a
    cluster just opened (slots 1-16): the holder, the pages, the cluster."""
    k = env.k
    h = await pw.hold(env, "h", pw.region("anon", 2), free=30)
    pgs = pw.pgs(env, h)
    pw.deactivate(k, pgs)
    swc = Swapcluster()
    pd154.swapcluster_allocslots(k, swc)
    for pg in pgs:
        await _add(k, swc, h, 0, pg)
    return h, pgs, swc


def _slot(pg: VmPage) -> int:
    assert pg.uanon is not None
    return pg.uanon.an_swslot


# === swapcluster_allocslots: N-C1 - N-C3 (lines 399-417) ==========================================


def test_N_C3_N_C1_a_cluster_opens_with_16_slots_and_only_once(run_as_pagedaemon154: Any) -> None:
    """N-C3 (lines 412-416): "slots had | open: slot, nallocated 16, nused 0"; N-C1 (404-405):
    "allocslots: a cluster is open | 0, nothing done"."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        swc = Swapcluster()
        pd154.swapcluster_init(swc)
        assert pd154.swapcluster_allocslots(k, swc) == 0
        assert (swc.swc_slot, swc.swc_nallocated, swc.swc_nused) == (1, 16, 0)
        assert k.uvmexp.swpginuse == 16
        assert pd154.swapcluster_allocslots(k, swc) == 0  # already open
        assert (swc.swc_slot, swc.swc_nallocated, k.uvmexp.swpginuse) == (1, 16, 16)
        uvm_swap.uvm_swap_free(k, swc.swc_slot, swc.swc_nallocated)

    run_as_pagedaemon154(body)


def test_N_C3_fragmented_swap_gives_a_one_slot_cluster(run_as_pagedaemon154: Any) -> None:
    """N-C3 with lessok (line 408): no run of 16 free slots is left, so uvm_swap_alloc settles
    for one: nallocated 1."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        slot, n = uvm_swap.uvm_swap_alloc(k, 32, False)
        assert (slot, n) == (1, 32)
        for s in range(slot, slot + 32, 2):  # free every other slot
            uvm_swap.uvm_swap_free(k, s, 1)
        swc = Swapcluster()
        assert pd154.swapcluster_allocslots(k, swc) == 0
        assert (swc.swc_slot, swc.swc_nallocated) == (1, 1)
        uvm_swap.uvm_swap_free(k, 1, 1)
        for s in range(2, 33, 2):
            uvm_swap.uvm_swap_free(k, s, 1)

    run_as_pagedaemon154(body, swap_pages=32)


def test_N_C2_no_free_slot_is_ENOMEM(run_as_pagedaemon154: Any) -> None:
    """N-C2 (lines 407-410): "uvm_swap_alloc(16, lessok) gives 0 | ENOMEM"; no cluster opens."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        slot, n = uvm_swap.uvm_swap_alloc(k, 16, False)
        assert (slot, n) == (1, 16)
        swc = Swapcluster()
        assert pd154.swapcluster_allocslots(k, swc) == ENOMEM
        assert swc.swc_slot == 0
        uvm_swap.uvm_swap_free(k, slot, n)

    run_as_pagedaemon154(body, swap_pages=16)


# === swapcluster_add: N-C4 - N-C7 (lines 419-446) =================================================


def test_N_C4_N_C7_anon_pages_take_the_next_slots_in_order(run_as_pagedaemon154: Any) -> None:
    """N-C4 (lines 431-433): "anon page | an_swslot = slot + nused (asserts the anon lock)";
    N-C7 (442-445): "added | pages[nused++] = pg". Flushed after (N-F2-N-F5)."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("anon", 3), free=30)
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        swc = Swapcluster()
        assert pd154.swapcluster_allocslots(k, swc) == 0
        for pg in pgs:
            assert await _add(k, swc, h, 0, pg) == 0
        assert [_slot(pg) for pg in pgs] == [1, 2, 3]
        assert swc.swc_pages[:3] == pgs and pd154.swapcluster_nused(swc) == 3
        assert await _flush(k, swc) == uvm_pager.VM_PAGER_PEND
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_C5_aobj_page_records_its_slot_in_the_object(run_as_pagedaemon154: Any) -> None:
    """N-C5 (lines 434-438): "aobj page | uao_set_swslot(..., slot + nused)"."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("anon", 1), pw.region("shared", 1, "shm"), free=30)
        apg, opg = pw.pg(env, h, 0, 0), pw.pg(env, h, 1, 0)
        pw.deactivate(k, [apg, opg])
        swc = Swapcluster()
        pd154.swapcluster_allocslots(k, swc)
        assert await _add(k, swc, h, 0, apg) == 0
        assert await _add(k, swc, h, 1, opg) == 0
        assert _slot(apg) == 1 and _aobj_slot(k, h, 1, 0) == 2
        await _flush(k, swc)
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_C6_aobj_hash_at_the_pool_limit_refuses_the_page(run_as_pagedaemon154: Any) -> None:
    """N-C6 (lines 439-440): "uao_set_swslot returns -1 | ENOMEM, page not added" (reference §4
    item 9: the 2022 uvm_aobj.c panicked here). An 80-page shared region keeps its slots in
    a hash; page 70's element would be new, and the element pool is at its hard limit. A
    page whose element exists (page 64's, made first) is still added."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h, [p64, p70] = await _big_aobj(env, "h", (64, 70))
        swc = Swapcluster()
        pd154.swapcluster_allocslots(k, swc)
        pool = k.uao_swhash_elt_pool
        nout = pool.pr_nout
        assert await _add(k, swc, h, 0, p64) == 0  # a new element: 64..79 share it
        assert pool.pr_nout == nout + 1
        pool.pr_hardlimit = pool.pr_nout
        try:
            assert await _add(k, swc, h, 0, p70) == 0  # same element: no allocation
            swc.swc_nused -= 1  # take page 70 out again (test bookkeeping)
            await rw_enter(k, pw.lock(h, 0), RW_WRITE)
            swc.swc_pages[1] = None
            pd154.uvm_aobj.uao_set_swslot(k, pw.obj(h, 0), 70, 0)
            rw_exit(pw.lock(h, 0))
            p70.pg_flags &= ~PG_BUSY
            # now a page of a cluster whose element does not exist: refused
            await pw.run_on(env, h, _store(h.vas[0] + 20 * PAGE, b"y"))
            p20 = pw.pg(env, h, 0, 20)
            pw.deactivate(k, [p20])
            assert await _add(k, swc, h, 0, p20) == ENOMEM
            assert pd154.swapcluster_nused(swc) == 1 and _aobj_slot(k, h, 0, 20) == 0
        finally:
            pool.pr_hardlimit = None
        await _flush(k, swc)
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon154(body)


# === swapcluster_flush: N-F1 - N-F5 (lines 448-482) ===============================================


def test_N_F1_contrived_flush_without_a_cluster_returns_0(run_as_pagedaemon154: Any) -> None:
    """N-F1 (lines 454-455): "flush with no cluster open | return 0". Unreachable: both callers
    flush an open cluster (lines 796-801, 831). Contrived: called on a fresh cluster; nothing
    is written or counted."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        swc = Swapcluster()
        pd154.swapcluster_init(swc)
        with capture_logs() as logs:
            assert await pd154.swapcluster_flush(k, swc) == 0
        assert _pageouts(logs) == [] and k.uvmexp.pdpageouts == 0

    run_as_pagedaemon154(body)


def test_N_F2_N_F3_N_F5_partial_cluster_frees_its_tail_and_is_written(
    run_as_pagedaemon154: Any,
) -> None:
    """N-F2 (lines 462-463): "nused < nallocated | free the unused tail"; N-F3 (465-466):
    "pdpageouts +1; uvm_swap_put(slot, pages, nused, async)"; N-F5 (479): "cluster closed"."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h, pgs, swc = await _two_anons_added(env)
        assert k.uvmexp.swpginuse == 16
        with capture_logs() as logs:
            r = await _flush(k, swc)
        assert r == uvm_pager.VM_PAGER_PEND and _pageouts(logs) == [(2, "PEND")]
        assert k.uvmexp.swpginuse == 2 and k.uvmexp.pdpageouts == 1
        assert (swc.swc_slot, swc.swc_nused) == (0, 0)
        await _settle(env)
        assert all(pg.pg_flags & PG_CLEAN for pg in pgs)
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_F2prime_full_cluster_frees_no_tail_even_at_the_end_of_swap(
    run_as_pagedaemon154: Any,
) -> None:
    """N-F2 (line 462) not taken: "nused < nallocated" is false for a full cluster, which
    frees nothing. Here the cluster is the whole 16-slot swap device (slots 1-16): all 16 stay
    in use for the write, which completes."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("anon", 16), free=30)
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        swc = Swapcluster()
        pd154.swapcluster_allocslots(k, swc)
        for pg in pgs:
            assert await _add(k, swc, h, 0, pg) == 0
        assert (swc.swc_slot, swc.swc_nused, swc.swc_nallocated) == (1, 16, 16)
        r = await _flush(k, swc)
        assert r == uvm_pager.VM_PAGER_PEND and k.uvmexp.swpginuse == 16
        assert [_slot(pg) for pg in pgs] == list(range(1, 17))
        await _settle(env)
        assert all(pg.pg_flags & PG_CLEAN for pg in pgs)
        await pw.release(env, h)

    run_as_pagedaemon154(body, swap_pages=16)


def test_N_F4_refused_write_drops_the_whole_cluster_and_its_slots(
    run_as_pagedaemon154: Any,
) -> None:
    """N-F4 (lines 467-473): "result not PEND (must be AGAIN) | uvm_swap_dropcluster(pages,
    nused, ENOMEM); free all nused slots" - the buffer pool at its hard limit. Every page is
    unbusied, stays inactive and dirty, and keeps no slot (1.105 kept one for the page of
    interest and retried it alone)."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("anon", 2), pw.region("shared", 1, "shm"), free=30)
        pgs = pw.pgs(env, h, 0)
        opg = pw.pg(env, h, 1, 0)
        pw.deactivate(k, [*pgs, opg])
        swc = Swapcluster()
        pd154.swapcluster_allocslots(k, swc)
        for pg in pgs:
            await _add(k, swc, h, 0, pg)
        await _add(k, swc, h, 1, opg)
        assert k.bufpool is not None
        k.bufpool.pr_hardlimit = k.bufpool.pr_nout
        try:
            with capture_logs() as logs:
                r = await pd154.swapcluster_flush(k, swc)
        finally:
            k.bufpool.pr_hardlimit = None
        assert r == uvm_pager.VM_PAGER_AGAIN and _pageouts(logs) == [(3, "AGAIN")]
        assert k.uvmexp.swpginuse == 0 and swc.swc_slot == 0
        for pg in [*pgs, opg]:
            assert pg.pg_flags & PQ_INACTIVE and not pg.pg_flags & (PG_BUSY | PG_CLEAN)
        assert [_slot(pg) for pg in pgs] == [0, 0] and _aobj_slot(k, h, 1, 0) == 0
        assert all(pw.lock(h, r).rwl_owner is None for r in (0, 1))
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_F4_refused_write_clears_the_slots_of_a_large_aobj_in_its_hash(
    run_as_pagedaemon154: Any,
) -> None:
    """N-F4 (lines 467-473) for pages of an aobj of more than 64 pages, whose slots live in a
    hash of 16-slot elements: uvm_swap_dropcluster(.., ENOMEM) clears each page's slot in the
    hash (the elements made for the cluster go again), and the slots are freed."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h, pgs = await _big_aobj(env, "h", (3, 70))
        pool = k.uao_swhash_elt_pool
        nout = pool.pr_nout
        swc = Swapcluster()
        pd154.swapcluster_allocslots(k, swc)
        for pg in pgs:
            assert await _add(k, swc, h, 0, pg) == 0
        assert pool.pr_nout == nout + 2 and _aobj_slot(k, h, 0, 70) == 2
        assert k.bufpool is not None
        k.bufpool.pr_hardlimit = k.bufpool.pr_nout
        try:
            r = await pd154.swapcluster_flush(k, swc)
        finally:
            k.bufpool.pr_hardlimit = None
        assert r == uvm_pager.VM_PAGER_AGAIN and k.uvmexp.swpginuse == 0
        assert (_aobj_slot(k, h, 0, 3), _aobj_slot(k, h, 0, 70), pool.pr_nout) == (0, 0, nout)
        for pg in pgs:
            assert pg.pg_flags & PQ_INACTIVE and not pg.pg_flags & (PG_BUSY | PG_CLEAN)
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_uvm_swap_dropcluster_after_a_good_write_cleans_the_pages(
    run_as_pagedaemon154: Any,
) -> None:
    """K7: uvm_swap_dropcluster(pages, n, 0), as uvm_swap.c 1.179 calls it once encrypted
    copies were written: the pages are unbusied and clean (inferred; docs/pdaemon-1.154.md §4).
    No 1.154 daemon path passes 0; this pins the kernel function alone."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h, pgs, swc = await _two_anons_added(env)
        await uvm_pager.uvm_swap_dropcluster(k, swc.swc_pages, 2, 0)
        for pg in pgs:
            assert pg.pg_flags & PG_CLEAN and not pg.pg_flags & PG_BUSY
        assert [_slot(pg) for pg in pgs] == [1, 2]  # kept: the data is in swap
        uvm_swap.uvm_swap_free(k, 3, 14)  # the unused tail, as a flush would
        await pw.release(env, h)

    run_as_pagedaemon154(body)
