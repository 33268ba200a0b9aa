"""uvm_pager.py: uvm_pager_put's outcome table, dropping clusters, and async completion.

Each test quotes the rule of docs/uvm-reference.md it pins (§1.8 uvm_pager_put and
uvm_pager_dropcluster, §1.10 completion: uvm_aio_biodone → uvm.aio_done → aiodoned →
uvm_aio_aiodone → uvm_aio_aiodone_pages, §1.14 the round trip, §4 item 10 for the one
deliberate deviation). The swap clusters are built the way uvmpd_scan_inactive builds them
(I11/I12 of §2.3): pages busied and write-protected, one contiguous slot run, each owner's
slot set, the unused tail of the run freed.
"""

from __future__ import annotations

from typing import Any

from structlog.testing import capture_logs

import kernel.uvm.uvm_anon as uvm_anon
import kernel.uvm.uvm_page as uvm_page
import kernel.uvm.uvm_pager as uvm_pager
import kernel.uvm.uvm_swap as uvm_swap
import kernel.uvm.uvm_vnode as uvm_vnode
from devices.faults import FaultConfig
from kernel.arch.emu import swapdev
from kernel.kern.kern_synch import RW_WRITE, RWLock, rw_enter, rw_exit
from kernel.kernel import Kernel, KernelConfig
from kernel.sys.buf import B_CALL, Buf
from kernel.sys.errno import EIO
from kernel.sys.mman import PROT_READ, PROT_WRITE
from kernel.uvm.uvm_page import PG_BUSY, PG_CLEAN, PG_RELEASED, PQ_FREE, PQ_INACTIVE
from kernel.uvm.uvm_pager import (
    PGO_ALLPAGES,
    PGO_PDFREECLUST,
    PGO_SYNCIO,
    VM_PAGER_AGAIN,
    VM_PAGER_ERROR,
    VM_PAGER_OK,
    VM_PAGER_PEND,
)

import pdaemon_world as pw
from pdaemon_world import until_idle as _until_idle

PAGE = 4096
DAEMON_FLAGS = PGO_ALLPAGES | PGO_PDFREECLUST


def _quiet() -> KernelConfig:
    """Tests hold anons outside any amap: run uvm_check at teardown only."""
    return KernelConfig(bufcachepercent=0, check_every_pass=False)


def _data(i: int) -> bytes:
    return (f"page {i} ".encode() * 600)[:PAGE]


def _dirty_anons(k: Kernel, env: Any, n: int) -> tuple[RWLock, list[Any], list[Any]]:
    """n dirty anon pages (page i holds _data(i)) on the inactive queue, one amap lock."""
    return pw.dirty_anons(k, env, n, _data)


def _build_cluster(k: Kernel, pgs: list[Any]) -> tuple[int, list[Any]]:
    """uvmpd_scan_inactive I11/I12: busy + write-protect each page, give it the next slot of
    one uvm_swap_alloc(SWCLUSTPAGES) run, free the run's unused tail. Returns (swslot, swpps).
    """
    swslot, swnpages = uvm_swap.uvm_swap_alloc(k, uvm_swap.SWCLUSTPAGES, True)
    assert swslot and swnpages >= len(pgs)
    swpps: list[Any] = [None] * uvm_swap.SWCLUSTPAGES
    for i, pg in enumerate(pgs):
        pg.pg_flags |= PG_BUSY
        k.pmap.pmap_page_protect(pg, PROT_READ)
        assert pg.uanon is not None
        pg.uanon.an_swslot = swslot + i
        swpps[i] = pg
    if len(pgs) < swnpages:
        uvm_swap.uvm_swap_free(k, swslot + len(pgs), swnpages - len(pgs))
    return swslot, swpps


def _free_clean(k: Kernel, pg: Any) -> None:
    """uvmpd_scan_inactive I7: a clean swap-backed page now lives only in swap: free it."""
    assert pg.pg_flags & PG_CLEAN and not pg.pg_flags & PG_BUSY
    k.uvmexp.swpgonly += 1
    k.pmap.pmap_page_protect(pg, 0)
    uvm_page.uvm_lock_pageq(k)
    uvm_page.uvm_pagefree(k, pg)
    uvm_page.uvm_unlock_pageq(k)


async def _read_back(k: Kernel, env: Any, anon: Any) -> bytes:
    """§1.14 step 3: a page for the anon, filled by uvm_swap_get; returns its bytes."""
    r, data = await pw.read_back(k, env, anon)
    assert r == VM_PAGER_OK
    return data


async def _free_anons(k: Kernel, lock: RWLock, anons: list[Any]) -> None:
    await rw_enter(k, lock, RW_WRITE)
    for anon in anons:
        if anon.an_page is not None and anon.an_page.pg_flags & PG_BUSY:
            continue  # the test checks a PG_RELEASED dance on it
        uvm_anon.uvm_anfree(k, anon)
    rw_exit(lock)


# --- PEND: async swap pageout and its completion ----------------------------------------------


def test_anon_cluster_pageout_pends_completes_through_aiodone_and_reads_back(kenv: Any) -> None:
    """§1.8: swap-backed pageout = `uvm_swap_put(start, pages, n, flags)`, PEND: "async swap
    write queued ... owned by the aiodone path"; §1.10: at completion each page is "PG_CLEAN
    set, BUSY/WANTED cleared, waiters woken, stays on the **inactive** queue with its new
    slot"; §1.14: freed, then uvm_swap_get brings back the same bytes, swpgonly −1."""
    env = kenv(config=_quiet())

    async def body(k: Kernel, env: Any) -> None:
        lock, anons, pgs = _dirty_anons(k, env, 3)
        swslot, swpps = _build_cluster(k, pgs)
        uvm_page.uvm_lock_pageq(k)
        r, _, npages = await uvm_pager.uvm_pager_put(
            k, None, pgs[-1], swpps, 3, DAEMON_FLAGS, swslot, 0
        )
        assert (r, npages) == (VM_PAGER_PEND, 3)
        assert k.uvm.pageqlock.mtx_owner is None  # returns with the page queues unlocked
        assert all(pg.pg_flags & PG_BUSY for pg in pgs)  # the I/O owns them now

        await _until_idle(env, pgs)
        for i, pg in enumerate(pgs):
            assert pg.pg_flags & PG_CLEAN and pg.pg_flags & PQ_INACTIVE
            assert not pg.pg_flags & PG_BUSY
            assert anons[i].an_swslot == swslot + i
            assert not k.pmap.pmap_is_modified(pg)
        assert k.uvmexp.paging == 0  # not the page daemon's buf: no B_PDAEMON

        for pg in pgs:
            _free_clean(k, pg)
        assert k.uvmexp.swpgonly == 3 and all(a.an_page is None for a in anons)
        for i, anon in enumerate(anons):
            assert await _read_back(k, env, anon) == _data(i)
        assert k.uvmexp.swpgonly == 0 and k.uvmexp.swpginuse == 3
        await _free_anons(k, lock, anons)
        assert k.uvmexp.swpginuse == 0

    env.run(body)


def test_pagedaemon_pageout_is_b_pdaemon_and_aiodoned_drops_paging(kenv: Any) -> None:
    """§1.9 uvm_swap_io step 7: "set **B_PDAEMON if the caller is the daemon**"; §1.10 step 2:
    aiodoned "if B_PDAEMON, subtracts the buf's page count from `paging`"."""
    env = kenv(config=_quiet())

    async def body(k: Kernel, env: Any) -> None:
        lock, anons, pgs = _dirty_anons(k, env, 2)
        swslot, swpps = _build_cluster(k, pgs)
        real = k.uvm.pagedaemon_proc
        k.uvm.pagedaemon_proc = env.testproc  # we play the page daemon for this call
        try:
            uvm_page.uvm_lock_pageq(k)
            r, _, npages = await uvm_pager.uvm_pager_put(
                k, None, pgs[-1], swpps, 2, DAEMON_FLAGS, swslot, 0
            )
        finally:
            k.uvm.pagedaemon_proc = real
        assert r == VM_PAGER_PEND
        k.uvmexp.paging += npages  # uvmpd_scan_inactive I16
        await _until_idle(env, pgs)
        assert k.uvmexp.paging == 0
        await _free_anons(k, lock, anons)

    env.run(body)


def test_released_anon_page_is_freed_with_its_anon_at_completion(kenv: Any) -> None:
    """§1.11: uvm_anfree of a busy page sets "PG_RELEASED, take an extra reference on the
    lock, return (the I/O owner finishes it)"; §1.10: "PG_RELEASED, anon | anon lock taken,
    page freed, anon freed (slot freed), extra lock reference dropped"."""
    env = kenv(config=_quiet())

    async def body(k: Kernel, env: Any) -> None:
        lock, anons, pgs = _dirty_anons(k, env, 2)
        swslot, swpps = _build_cluster(k, pgs)
        uvm_page.uvm_lock_pageq(k)
        r, _, _ = await uvm_pager.uvm_pager_put(k, None, pgs[-1], swpps, 2, DAEMON_FLAGS, swslot, 0)
        assert r == VM_PAGER_PEND
        # the process unmaps: the amap frees its anons while the write is in flight
        await rw_enter(k, lock, RW_WRITE)
        uvm_anon.uvm_anfree(k, anons[0])
        rw_exit(lock)
        assert pgs[0].pg_flags & PG_RELEASED and lock.refs == 2
        assert anons[0].an_page is pgs[0]  # not freed yet: the I/O owns it
        await _until_idle(env, [pgs[1]])
        assert pgs[0].pg_flags & PQ_FREE  # freed at completion
        assert anons[0].an_page is None and anons[0].an_swslot == 0
        assert lock.refs == 1
        assert k.uvmexp.swpginuse == 1 and k.uvmexp.swpgonly == 0
        await _free_anons(k, lock, anons[1:])

    env.run(body)


def test_aio_biodone_queues_the_buf_for_aiodoned(kenv: Any) -> None:
    """§1.10 step 1: uvm_aio_biodone "sets the buf's done handler to `uvm_aio_aiodone`, appends
    the buf to `uvm.aio_done` under `aiodoned_lock`, wakes `uvm.aiodoned`"."""
    env = kenv(start=False)
    k = env.k
    bp = Buf(b_flags=B_CALL, b_kernel=k, b_iodone=uvm_pager.uvm_aio_biodone)
    uvm_pager.uvm_aio_biodone(bp)
    assert k.uvm.aio_done.first() is bp
    assert bp.b_iodone is uvm_pager.uvm_aio_aiodone
    assert k.uvm.aiodoned_lock.mtx_owner is None
    k.uvm.aio_done.remove(bp)


# --- AGAIN ----------------------------------------------------------------------------------


def test_again_drops_the_cluster_and_retries_pg_alone(kenv: Any) -> None:
    """§1.8 step 5: on AGAIN "drop the cluster with `PGO_REALLOCSWAP` (zero each non-pg page's
    slot)", "set pg's slot to the cluster's **first** slot", "free the slots not kept (start+1
    … for n−1 pages when pg exists)", "retry **once more with pg alone** (n = 1)". Here the
    pager map is exhausted, so the cluster cannot be mapped but pg alone (direct map) can."""
    env = kenv(config=_quiet())

    async def body(k: Kernel, env: Any) -> None:
        lock, anons, pgs = _dirty_anons(k, env, 3)
        pg = pgs[-1]
        swslot, swpps = _build_cluster(k, pgs)
        assert k.swap is not None
        k.swap.uvm_pseg_max = 0  # no pager map segment left, even for the daemon
        uvm_page.uvm_lock_pageq(k)
        r, ppsp, npages = await uvm_pager.uvm_pager_put(
            k, None, pg, swpps, 3, DAEMON_FLAGS, swslot, 0
        )
        assert (r, npages) == (VM_PAGER_PEND, 1)  # pg alone went out
        assert ppsp[0] is pg
        assert anons[-1].an_swslot == swslot  # pg moved to the cluster's first slot
        for a, p in zip(anons[:2], pgs[:2], strict=True):
            assert a.an_swslot == 0  # dropped: unbusied, still dirty, no slot
            assert not p.pg_flags & (PG_BUSY | PG_CLEAN)
        assert k.uvmexp.swpginuse == 1  # slots start+1 .. start+2 were freed
        await _until_idle(env, [pg])
        k.swap.uvm_pseg_max = uvm_swap.UVM_PSEG_SEGS
        assert pg.pg_flags & PG_CLEAN
        _free_clean(k, pg)
        assert await _read_back(k, env, anons[-1]) == _data(2)
        await _free_anons(k, lock, anons)

    env.run(body)


def test_again_twice_returns_again_and_pg_keeps_exactly_one_slot(kenv: Any) -> None:
    """§1.8 step 5: "a further failure returns to the caller, who only has to handle pg";
    AGAIN row: "dropped, slots zeroed and freed | still busy, keeps one slot (swap)". Here
    the buffer pool is empty, so even pg alone cannot go."""
    env = kenv(config=_quiet())

    async def body(k: Kernel, env: Any) -> None:
        lock, anons, pgs = _dirty_anons(k, env, 3)
        pg = pgs[-1]
        swslot, swpps = _build_cluster(k, pgs)
        assert k.bufpool is not None
        k.bufpool.pr_hardlimit = 0
        uvm_page.uvm_lock_pageq(k)
        r, _, npages = await uvm_pager.uvm_pager_put(k, None, pg, swpps, 3, DAEMON_FLAGS, swslot, 0)
        k.bufpool.pr_hardlimit = None
        assert (r, npages) == (VM_PAGER_AGAIN, 1)
        assert pg.pg_flags & PG_BUSY  # the caller's to clean up (daemon I18c)
        assert anons[-1].an_swslot == swslot and k.uvmexp.swpginuse == 1
        assert [a.an_swslot for a in anons[:2]] == [0, 0]
        assert not any(p.pg_flags & PG_BUSY for p in pgs[:2])
        pg.pg_flags &= ~PG_BUSY  # what the daemon does (I18c)
        await _free_anons(k, lock, anons)
        assert k.uvmexp.swpginuse == 0

    env.run(body)


def test_again_without_pg_drops_the_whole_cluster_and_frees_every_slot(kenv: Any) -> None:
    """§1.8 step 5: "free the slots not kept (... all n when it does not [exist])"; "pg may be
    NULL for swap clusters" and then there is no retry."""
    env = kenv(config=_quiet())

    async def body(k: Kernel, env: Any) -> None:
        lock, anons, pgs = _dirty_anons(k, env, 2)
        swslot, swpps = _build_cluster(k, pgs)
        assert k.bufpool is not None
        k.bufpool.pr_hardlimit = 0
        uvm_page.uvm_lock_pageq(k)
        r, _, npages = await uvm_pager.uvm_pager_put(
            k, None, None, swpps, 2, DAEMON_FLAGS, swslot, 0
        )
        k.bufpool.pr_hardlimit = None
        assert (r, npages) == (VM_PAGER_AGAIN, 2)
        assert k.uvmexp.swpginuse == 0
        assert all(a.an_swslot == 0 for a in anons)
        assert not any(p.pg_flags & (PG_BUSY | PG_CLEAN) for p in pgs)
        await _free_anons(k, lock, anons)

    env.run(body)


# --- ERROR ------------------------------------------------------------------------------------


def test_hard_swap_error_drops_cluster_and_marks_the_range_bad(kenv: Any) -> None:
    """§1.8 step 5: "for swap with a pg: set pg's slot ... to 0 on hard errors"; "On a hard
    error (swap): mark the whole slot range bad (bad slots stay allocated forever)"; ERROR row:
    "swap only for sync I/O". A sync write to a failing region makes it."""
    env = kenv(config=_quiet(), faults=FaultConfig(fail_write_slots=[(0, 2)]))

    async def body(k: Kernel, env: Any) -> None:
        lock, anons, pgs = _dirty_anons(k, env, 3)
        pg = pgs[-1]
        swslot, swpps = _build_cluster(k, pgs)
        uvm_page.uvm_lock_pageq(k)
        r, _, npages = await uvm_pager.uvm_pager_put(
            k, None, pg, swpps, 3, DAEMON_FLAGS | PGO_SYNCIO, swslot, 0
        )
        assert (r, npages) == (VM_PAGER_ERROR, 3)
        assert pg.pg_flags & PG_BUSY and anons[-1].an_swslot == 0
        assert [a.an_swslot for a in anons[:2]] == [0, 0]
        sdp = uvm_swap.swapdrum_getsdp(k, swslot)
        assert sdp is not None and sdp.swd_npgbad == 3
        assert k.uvmexp.swpginuse == 3  # bad slots stay allocated ...
        pg.pg_flags &= ~PG_BUSY
        nslot, _ = uvm_swap.uvm_swap_alloc(k, 1, False)
        assert nslot == swslot + 3  # ... and are never handed out again
        uvm_swap.uvm_swap_free(k, nslot, 1)
        await _free_anons(k, lock, anons)

    env.run(body)


def test_failed_async_write_keeps_pages_dirty_and_marks_slots_bad(kenv: Any) -> None:
    """PORT (reference §4 item 10; upstream fixed this in uvm_pager.c 1.94): 2022 treated "any
    error other than ENOMEM" as success, "the page is then freed as clean and its data is
    lost; the slot is not marked bad". Here the pages stay dirty and unbusied, lose their
    slot, the range is marked bad, and the next pageout saves the data to fresh slots."""
    env = kenv(config=_quiet(), faults=FaultConfig(fail_write_slots=[(0, 1)]))

    async def body(k: Kernel, env: Any) -> None:
        lock, anons, pgs = _dirty_anons(k, env, 2)
        swslot, swpps = _build_cluster(k, pgs)
        assert swslot == 1
        uvm_page.uvm_lock_pageq(k)
        r, _, _ = await uvm_pager.uvm_pager_put(k, None, pgs[-1], swpps, 2, DAEMON_FLAGS, 1, 0)
        assert r == VM_PAGER_PEND  # the error comes at completion
        with capture_logs() as logs:
            await _until_idle(env, pgs)
        errs = [e for e in logs if e["event"] == "uvm_aio_aiodone_pages.write_error"]
        assert [(e["swslot"], e["npages"], e["error"]) for e in errs] == [(1, 2, EIO)]
        for i, (a, p) in enumerate(zip(anons, pgs, strict=True)):
            assert not p.pg_flags & (PG_CLEAN | PG_BUSY)  # dirty: the daemon may not free it
            assert p.pg_flags & PQ_INACTIVE
            assert a.an_swslot == 0  # forgets the bad slot
            assert env.ram.read(p.phys_addr >> 12) == _data(i)  # nothing lost
        sdp = uvm_swap.swapdrum_getsdp(k, 1)
        assert sdp is not None and sdp.swd_npgbad == 2 and k.uvmexp.swpginuse == 2

        # the next pageout gets fresh slots and works; the data comes back intact
        swslot2, swpps2 = _build_cluster(k, pgs)
        assert swslot2 == 3
        uvm_page.uvm_lock_pageq(k)
        r, _, _ = await uvm_pager.uvm_pager_put(
            k, None, pgs[-1], swpps2, 2, DAEMON_FLAGS, swslot2, 0
        )
        assert r == VM_PAGER_PEND
        await _until_idle(env, pgs)
        for p in pgs:
            _free_clean(k, p)
        for i, a in enumerate(anons):
            assert await _read_back(k, env, a) == _data(i)
        await _free_anons(k, lock, anons)
        assert k.uvmexp.swpginuse == 2  # only the two bad slots

    env.run(body)


# --- object (vnode) pageout: OK and ERROR ----------------------------------------------------


async def _dirty_vnode_pages(k: Kernel, env: Any, vp: Any, n: int) -> tuple[Any, list[Any]]:
    """Attach vp and give it n dirty inactive pages at offsets 0.. (page i holds _data(i))."""
    uobj = await uvm_vnode.uvn_attach(k, vp, PROT_READ | PROT_WRITE)
    assert uobj is not None
    await rw_enter(k, uobj.vmobjlock, RW_WRITE)
    pgs = []
    for i in range(n):
        pg = uvm_page.uvm_pagealloc(k, uobj, i * PAGE, None, 0)
        assert pg is not None
        env.ram.write(pg.phys_addr >> 12, _data(i))
        pg.pg_flags &= ~(PG_BUSY | uvm_page.PG_FAKE | PG_CLEAN)
        uvm_page.uvm_lock_pageq(k)
        uvm_page.uvm_pagedeactivate(k, pg)
        uvm_page.uvm_unlock_pageq(k)
        pgs.append(pg)
    return uobj, pgs


def test_vnode_pageout_ok_returns_the_cluster_clean_except_pg(kenv: Any) -> None:
    """§1.8: object pageout builds the cluster with the pager's uvm_mk_pcluster; OK row:
    "vnode write done synchronously | unbusied, marked clean (PDFREECLUST) | still busy; the
    daemon cleans it up"; §1.8 "Vnode put ... never PEND"."""
    env = kenv(config=_quiet())

    async def body(k: Kernel, env: Any) -> None:
        vp = swapdev.vnode_create(k, env.tmp_path / "f.dat", 4 * PAGE, ram=env.ram)
        uobj, pgs = await _dirty_vnode_pages(k, env, vp, 4)
        pg = pgs[0]
        pg.pg_flags |= PG_BUSY
        k.pmap.pmap_page_protect(pg, PROT_READ)
        pps: list[Any] = [None] * uvm_swap.SWCLUSTPAGES
        uvm_page.uvm_lock_pageq(k)
        r, ppsp, npages = await uvm_pager.uvm_pager_put(
            k, uobj, pg, pps, len(pps), DAEMON_FLAGS, 0, 0
        )
        assert (r, npages) == (VM_PAGER_OK, 4)
        assert ppsp == pgs  # offsets 0..3: the window [0, 4 pages)
        assert pg.pg_flags & PG_BUSY and not pg.pg_flags & PG_CLEAN
        for p in pgs[1:]:
            assert p.pg_flags & PG_CLEAN and not p.pg_flags & PG_BUSY
        pg.pg_flags = (pg.pg_flags | PG_CLEAN) & ~PG_BUSY  # daemon I18d
        rw_exit(uobj.vmobjlock)
        assert vp.v_dev.disk.stats.writes == 1  # one clustered write
        for i in range(4):
            assert _file_page(vp, i) == _data(i)
        assert uobj.pgops.pgo_detach is not None
        await uobj.pgops.pgo_detach(k, uobj)
        vp.v_dev.close()

    env.run(body)


def test_vnode_pageout_error_drops_the_cluster(kenv: Any) -> None:
    """§1.8 ERROR row: "vnode I/O error ... | dropped | still busy"; step 5: "Any other
    result, when n > 1 ...: drop the cluster"."""
    env = kenv(config=_quiet())

    async def body(k: Kernel, env: Any) -> None:
        vp = swapdev.vnode_create(
            k, env.tmp_path / "bad.dat", 2 * PAGE, ram=env.ram,
            faults=FaultConfig(fail_write_slots=[(0, 1)]),
        )  # fmt: skip
        uobj, pgs = await _dirty_vnode_pages(k, env, vp, 2)
        pg = pgs[0]
        pg.pg_flags |= PG_BUSY
        pps: list[Any] = [None] * uvm_swap.SWCLUSTPAGES
        uvm_page.uvm_lock_pageq(k)
        r, _, npages = await uvm_pager.uvm_pager_put(k, uobj, pg, pps, len(pps), DAEMON_FLAGS, 0, 0)
        assert (r, npages) == (VM_PAGER_ERROR, 2)
        assert pg.pg_flags & PG_BUSY
        assert not pgs[1].pg_flags & (PG_BUSY | PG_CLEAN)  # dropped, still dirty
        pg.pg_flags &= ~PG_BUSY
        # the file must not be freed with dirty pages that cannot be written: make them clean
        for p in pgs:
            p.pg_flags |= PG_CLEAN
        rw_exit(uobj.vmobjlock)
        assert uobj.pgops.pgo_detach is not None
        await uobj.pgops.pgo_detach(k, uobj)
        vp.v_dev.close()

    env.run(body)


def _file_page(vp: Any, i: int) -> bytes:
    """Page i of the vnode's backing file, read straight from the host."""
    with open(vp.v_dev.disk.path, "rb") as f:
        f.seek(i * PAGE)
        return f.read(PAGE)
