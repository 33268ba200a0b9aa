"""uvm_pdaemon.py: uvmpd_scan_inactive, what it does with the pageout's result.

Catalogue ids (docs/uvm-reference.md §2.3): I16 I17 I18 I18a I18b I18c I18d I18e (pageout
result). The rest of §2.3: I0a-I11 in test_uvm_pdaemon_inactive_page.py, I12-I15 in
test_uvm_pdaemon_inactive_cluster.py.

Each test pins one row of §2.3 and quotes it, or the C comment of seed/uvm_pdaemon.c 1.105
the row comes from. As in test_uvm_pdaemon_inactive_page.py (its docstring says more), the
pages belong to user processes (``pw.hold``, with a ballast leaving ``free=`` pages free), the
test body plays the page daemon (the ``run_as_pagedaemon`` fixture) and calls the inactive
scan with the page queues locked (pdaemon_inactive._scan), and another CPU acts through
``RWLock.rwl_hook`` or the kernel thread "cpu1". Failures come from device fault injection,
the buffer pool limit (``pool_sethardlimit``: uvm_swap_io gets no buf without sleeping →
VM_PAGER_AGAIN) and pager map segments held by the test (a cluster cannot be mapped, a single
page can).

Rows that a correct kernel on one CPU cannot reach, and how they are driven here:
- I16 "p no longer PQ_INACTIVE → queue head": p stays PG_BUSY (the daemon's) from I11 until
  the write completes; upstream the window is another CPU completing the async write and
  then freeing or reactivating p (C: "a very remote chance"). Here completions run in
  aiodoned, which runs only once the daemon sleeps, so the test opens the window with
  ``k.hooks["cpu.race"]`` (kern_synch.cpu_race, right after uvm_swap_io starts an async
  write): the daemon's thread waits there while the other threads do their work.
- I18e "nextpg no longer PQ_INACTIVE → reload": the page queues stay locked from taking the
  successor to the check, and PG_BUSY pages are never requeued, so only a kernel that breaks
  that rule gets there: the test gives a file a pager that reactivates its busy pages.
- I18 "UNLOCK → panic (DIAGNOSTIC)": no put routine returns VM_PAGER_UNLOCK (uvn_put: OK,
  AGAIN, BAD, ERROR; uvm_swap_put: PEND, AGAIN, OK, ERROR; aobjs have no put); UNLOCK only
  comes from pgo_get with PGO_LOCKED. The test's pager returns it from a put.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pytest
from structlog.testing import capture_logs

from devices.faults import FaultConfig
from emu.process import UserProcess
from kernel.arch.emu import swapdev
from kernel.kern.kern_synch import RW_WRITE, RWLock, rw_enter_nosleep, rw_exit
from kernel.kernel import Kernel
from kernel.sys.proc import Proc, curproc, set_curproc
from kernel.sys.systm import Panic
from kernel.uvm import uvm_page, uvm_pager, uvm_vnode
from kernel.uvm.uvm_page import (
    PG_BUSY,
    PG_CLEAN,
    PG_RELEASED,
    PG_WANTED,
    PQ_ACTIVE,
    PQ_FREE,
    PQ_INACTIVE,
    VmPage,
)

import pdaemon_world as pw
from pdaemon_inactive import (
    _file_bytes,
    _fill_swap_with_swap_only_pages,
    _load,
    _pageouts,
    _scan,
    _settle,
)
from pdaemon_world import PAGE, Holder, Job

if TYPE_CHECKING:
    from conftest import KernelEnv


# --- a process's job, another CPU, the buffer pool ------------------------------------------------


def _munmap(va: int, n: int) -> Job:
    async def job(p: UserProcess) -> None:
        await p.munmap(va, n)

    return job


def _take_as(p: Proc | None, lock: RWLock) -> None:
    """``p`` (another CPU) takes ``lock`` at this instant (from an rwl_hook)."""
    me = curproc()
    set_curproc(p)
    try:
        assert rw_enter_nosleep(lock, RW_WRITE) == 0
    finally:
        set_curproc(me)


def _no_bufs(k: Kernel) -> None:
    """pool_sethardlimit(&bufpool, <bufs in use>): uvm_swap_io cannot get a buf without
    sleeping, so an async pageout returns VM_PAGER_AGAIN (reference §1.9 step 1)."""
    assert k.bufpool is not None
    k.bufpool.pr_hardlimit = k.bufpool.pr_nout


def _bufs_back(k: Kernel) -> None:
    assert k.bufpool is not None
    k.bufpool.pr_hardlimit = None


# === the pageout's result: I16-I18e ===============================================================


def test_I16_pend_adds_the_cluster_to_paging_and_goes_on_with_the_next_page(
    run_as_pagedaemon: Any,
) -> None:
    """I16: "PEND | `paging` += npages ...; lock pages; `pdpending` +1; next := successor of
    p if p still PQ_INACTIVE". Then aiodoned takes the B_PDAEMON buf off `paging` (D2), and
    the pages are clean, unbusied and still inactive with their new slots (§1.10)."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 17), free=20)
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        d = await _scan(k)
        assert (d["paging"], d["pdpending"]) == (17, 2)  # 16 with p, then 1 at the end
        assert all(pg.pg_flags & PG_BUSY for pg in pgs)
        assert pgs[16].uanon is not None and pgs[16].uanon.an_swslot == 17  # p's successor
        await _settle(env)
        assert k.uvmexp.paging == 0
        for pg in pgs:
            assert pg.pg_flags & PG_CLEAN and pg.pg_flags & PQ_INACTIVE
            assert not pg.pg_flags & PG_BUSY
        await pw.release(env, h)

    run_as_pagedaemon(body)


async def _hold_pager_map(k: Kernel) -> int:
    """Map pager segments until none is left (as other I/O would hold them); returns how many.
    A single page needs no segment (direct map), a cluster does (uvm_pagermapin)."""
    n = 0
    while await uvm_pager.uvm_pseg_get(k, 0):
        n += 1
    return n


def test_I16_after_the_pager_retried_pg_alone_paging_grows_by_one(run_as_pagedaemon: Any) -> None:
    """I16: "`paging` += npages (npages is 1 if the pager retried pg alone)"; §1.8 step 5:
    on AGAIN the cluster is dropped (its other pages unbusied, their slots zeroed and freed)
    and pg, which keeps the cluster's first slot, is retried alone. Here the pager map is
    exhausted: the 16-page cluster cannot be mapped, pg alone can (direct map)."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 16), free=20)
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        held = await _hold_pager_map(k)
        with capture_logs() as logs:
            d = await _scan(k)
        for _ in range(held):
            uvm_pager.uvm_pseg_release(k)
        assert _pageouts(logs) == [(1, "PEND")]
        assert (d["pdpageouts"], d["pdpending"], d["paging"], d["swpginuse"]) == (1, 1, 1, 1)
        p = pgs[15]
        assert p.pg_flags & PG_BUSY and p.uanon is not None and p.uanon.an_swslot == 1
        for pg in pgs[:15]:
            assert not pg.pg_flags & (PG_BUSY | PG_CLEAN) and pg.pg_flags & PQ_INACTIVE
            assert pg.uanon is not None and pg.uanon.an_swslot == 0
        await _settle(env)
        assert p.pg_flags & PG_CLEAN and k.uvmexp.paging == 0
        await pw.release(env, h)

    run_as_pagedaemon(body)


def test_I16_p_lost_to_another_cpu_before_the_relock_restarts_at_the_head(
    run_as_pagedaemon: Any,
) -> None:
    """I16: "next := successor of p if p still PQ_INACTIVE, else the queue head" (C: "there
    is a very remote chance that the pending async i/o can finish _before_ we get here. if
    that happens, our page "p" may no longer be on the inactive queue. so we verify this when
    determining the next page (starting over at the head if we've lost our inactive page)").

    The race needs a second CPU: right after the cluster's write is started, the daemon's CPU
    falls behind (kern_synch.cpu_race) while the write completes, aiodoned finishes it (the
    15 other pages are clean, unbusy and still at the head of the inactive queue) and the
    owner unmaps p, which frees it. The daemon, back, finds p gone and starts over at the
    head, where it frees the now clean pages in the same pass; B's page, after p, comes
    last. aiodoned took the cluster off ``paging`` before the daemon added it: the counter is
    -16 for that instant (the C has the same order)."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 16), pw.region("anon", 1), free=30)
        a, b = pw.pgs(env, h, 0), pw.pg(env, h, 1, 0)
        p = a[15]
        pw.deactivate(k, [*a, b])
        seen: dict[str, Any] = {}

        async def other_cpus(where: str) -> None:
            del k.hooks["cpu.race"]
            seen["where"] = where
            await pw.until(env, lambda: not p.pg_flags & PG_BUSY, "aiodoned finished p")
            seen["paging"] = k.uvmexp.paging
            await pw.run_on(env, h, _munmap(h.vas[0] + 15 * PAGE, PAGE))
            seen["p"] = p.pg_flags

        k.hooks["cpu.race"] = other_cpus
        with capture_logs() as logs:
            d = await _scan(k)
        assert seen["where"] == "uvm_swap_io.async"
        assert seen["paging"] == -16 and seen["p"] & PQ_FREE
        assert _pageouts(logs) == [(16, "PEND"), (1, "PEND")]
        # 16 pages up to p, the 15 again from the head (freed: clean now), then B's page
        assert (d["pdscans"], d["pdfreed"], d["pdpending"], d["paging"]) == (32, 15, 2, 1)
        assert all(pg.pg_flags & PQ_FREE for pg in a)
        assert b.pg_flags & PG_BUSY and k.uvmexp.swpgonly == 15
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon(body)


def test_I17_failed_final_flush_drops_the_whole_cluster(run_as_pagedaemon: Any) -> None:
    """I17: "not PEND, p is none (final flush failed) | next := none; lock pages"; §1.8: with
    no pg, AGAIN frees "all n" slots and the pages are dropped (unbusied, slot zeroed, still
    dirty). No buf can be had without sleeping (bufpool at its hard limit)."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 3), free=30)
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        _no_bufs(k)
        with capture_logs() as logs:
            d = await _scan(k)
        _bufs_back(k)
        assert _pageouts(logs) == [(3, "AGAIN")]
        assert (d["pdpageouts"], d["pdpending"], d["paging"], d["swpginuse"]) == (1, 0, 0, 0)
        for pg in pgs:
            assert pg.pg_flags & PQ_INACTIVE and not pg.pg_flags & (PG_BUSY | PG_CLEAN)
            assert pg.uanon is not None and pg.uanon.an_swslot == 0
        await pw.release(env, h)

    run_as_pagedaemon(body)


def test_I18_pageout_wakes_the_thread_waiting_for_the_busy_page(run_as_pagedaemon: Any) -> None:
    """I18: "not PEND, p exists | ...; wake PG_WANTED sleepers; clear BUSY and WANTED" (C:
    "handle PG_WANTED now"). At the page's try-lock the process is told to read the page;
    it runs while the daemon sleeps in the synchronous file write, faults on the busy page
    and waits for it (PG_WANTED); the daemon's clean-up wakes it."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("file", 1, "f"), free=30)
        pg = pw.pg(env, h, 0, 0)
        pw.deactivate(k, [pg])
        lock = pw.lock(h, 0)
        ticket: list[int] = []

        def tell_the_process_to_read(rwl: RWLock) -> None:
            rwl.rwl_hook = None
            ticket.append(pw.post(h, _load(h.vas[0], PAGE)))

        lock.rwl_hook = tell_the_process_to_read
        d = await _scan(k)
        assert d["pdpageouts"] == 1
        assert h.proc.proc.stats.get("flt_busywait") == 1  # it found the page busy ...
        assert h.done < ticket[0]  # ... and has not run since it was woken
        assert not pg.pg_flags & (PG_BUSY | PG_WANTED) and pg.pg_flags & PG_CLEAN
        await pw.until(env, lambda: h.done >= ticket[0], "the read")
        assert h.results[ticket[0] - 1] == pw.data("w", 0, 0)
        await pw.release(env, h)

    run_as_pagedaemon(body)


def _release_p_at_its_trylock(
    env: KernelEnv, h: Holder, p: VmPage, la: RWLock, lb: RWLock
) -> tuple[list[int], list[int]]:
    """How the I18a tests get P (page 0 of region 1 of ``h``, amap lock ``lb``) released during
    its failed pageout: at the scan's try-lock of ``lb`` another CPU takes ``la`` (amap A's
    lock: uvm_pager_dropcluster sleeps on it) and ``h`` unmaps P's region; once the unmap is
    done the other CPU records P's flags and lets ``la`` go. Returns (the unmap's ticket,
    P's flags after the unmap), both filled in during the scan."""
    cpu = pw.other_cpu(env.k)
    tickets: list[int] = []
    flags_after_unmap: list[int] = []

    async def let_a_go() -> None:  # on the other CPU, once the unmap is done
        while h.done < tickets[0]:
            await env.sleep(10_000)
        flags_after_unmap.append(p.pg_flags)
        rw_exit(la)

    async def unmap_p(up: UserProcess) -> None:
        await up.munmap(h.vas[1], PAGE)

    def at_p(rwl: RWLock) -> None:
        rwl.rwl_hook = None
        _take_as(cpu.proc, la)
        tickets.append(pw.post(h, unmap_p))
        pw.post(cpu, let_a_go)

    lb.rwl_hook = at_p
    return tickets, flags_after_unmap


class SwpgonlyUndercount(AssertionError):
    """The I18a clean-up took one off `uvmexp.swpgonly` for a page never counted there."""


def test_I18a_released_anon_page_after_failed_pageout_frees_page_and_anon(
    run_as_pagedaemon: Any,
) -> None:
    """I18a: "p is PG_RELEASED (anon only) | clear `an_page` and `p->uanon`; ...
    `uvm_anfree(anon)`; remove mappings; lock pages; next := successor; free p", with the
    1.134 fix the port carries (reference §4.1: 1.105 unlocked the anon lock first, then
    uvm_anfree asserted it held and the common exit unlocked it again; "the lock's extra
    reference taken when PG_RELEASED was set is also never dropped on this path"), and the
    port's second fix: the slot the pager left p on AGAIN is dropped before uvm_anfree, which
    would otherwise take one off swpgonly for a page never counted there (1.105 does; upstream
    uvm_pager.c 1.94 frees that slot itself).

    Making it happen: 15 pages of amap A and, last, page P of amap B fill a cluster; no buf
    can be had, so the pageout comes back AGAIN. At P's try-lock another CPU takes A's lock,
    so uvm_pager_dropcluster sleeps on it; meanwhile the process unmaps P's region: the amap
    teardown frees P's anon, whose page is busy, so uvm_anfree only sets PG_RELEASED. The
    other CPU then lets A's lock go; the retry of P alone fails again; the daemon relocks
    B's lock and finds P released.

    One aobj page lives only in swap before the scan (swpgonly 1), and must still be counted
    after it (without the port's fix it is not: SwpgonlyUndercount; with swpgonly 0 the same
    scan dies on "uvm_anfree: swpgonly underflow"). uvm_check runs at the end.
    """
    seen: dict[str, int] = {}

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(
            env, "w", pw.region("anon", 15), pw.region("anon", 1), pw.region("shared", 1, "shm"),
            free=30,
        )
        await _fill_swap_with_swap_only_pages(env, h, 2)
        assert k.uvmexp.swpgonly == 1
        a, p = pw.pgs(env, h, 0), pw.pg(env, h, 1, 0)
        anon = pw.anon(env, h, 1, 0)
        la, lb = pw.lock(h, 0), pw.lock(h, 1)
        pw.deactivate(k, [*a, p])
        tickets, flags_after_unmap = _release_p_at_its_trylock(env, h, p, la, lb)
        _no_bufs(k)
        with capture_logs() as logs:
            d = await _scan(k)
        _bufs_back(k)
        assert h.done == tickets[0]  # the unmap ran during the pageout ...
        assert flags_after_unmap[0] & (PG_BUSY | PG_RELEASED) == PG_BUSY | PG_RELEASED
        assert _pageouts(logs) == [(1, "AGAIN")]  # after the retry of P alone
        assert (d["pdpageouts"], d["pdpending"], d["paging"]) == (1, 0, 0)
        assert p.pg_flags & PQ_FREE and p.uanon is None
        assert anon.an_page is None and anon.an_lock is None and anon.an_swslot == 0
        assert lb.rwl_owner is None and la.rwl_owner is None  # each released once
        # §4.1: the reference uvm_anfree took for PG_RELEASED is never dropped on this path;
        # the amap dropped its own when the unmap freed it: the lock leaks with one
        assert lb.refs == 1
        for pg in a:  # dropped by the pager: unbusied, dirty, no slot, still inactive
            assert pg.pg_flags & PQ_INACTIVE and not pg.pg_flags & (PG_BUSY | PG_CLEAN)
            assert pg.uanon is not None and pg.uanon.an_swslot == 0
        assert k.uvmexp.swpginuse == 1  # only the aobj page's slot
        seen["swpgonly"] = k.uvmexp.swpgonly
        await pw.release(env, h)

    env = run_as_pagedaemon(body, check_at_teardown=False)  # checked below, after the count
    if seen["swpgonly"] != 1:
        raise SwpgonlyUndercount(f"swpgonly {seen['swpgonly']}, one aobj page is only in swap")
    env.check()


def test_I18a_the_scan_goes_on_with_the_successor_of_the_released_page(
    run_as_pagedaemon: Any,
) -> None:
    """I18a: "...; lock pages; **next := successor**; free p" (C: "remove page so we can get
    nextpg"): after P, released during its failed pageout and freed, the scan looks at the
    page queued after it. P gets released as in the test above (15 pages of amap A and P fill
    a cluster, no buf; at P's try-lock another CPU takes A's lock and the process unmaps P's
    region); after P comes Q, a clean page of a mapped file, which the scan then frees (I7)."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(
            env, "w", pw.region("anon", 15), pw.region("anon", 1),
            pw.region("file", 1, "f", touch="r"), free=30,
        )
        a, p, q = pw.pgs(env, h, 0), pw.pg(env, h, 1, 0), pw.pg(env, h, 2, 0)
        la, lb = pw.lock(h, 0), pw.lock(h, 1)
        pw.deactivate(k, [*a, p, q])
        _release_p_at_its_trylock(env, h, p, la, lb)
        _no_bufs(k)
        with capture_logs() as logs:
            d = await _scan(k)
        _bufs_back(k)
        assert _pageouts(logs) == [(1, "AGAIN")] and p.pg_flags & PQ_FREE
        assert (d["pdscans"], d["pdobscan"], d["pdfreed"]) == (17, 1, 1)
        assert q.pg_flags & PQ_FREE
        await pw.release(env, h)

    run_as_pagedaemon(body)


def test_I18b_vnode_write_error_reactivates_the_page(run_as_pagedaemon: Any) -> None:
    """I18b: "not released, result ≠ OK and ≠ AGAIN (ERROR/BAD/FAIL) | lock pages; next :=
    successor; activate p; clear reference" (C: "we "reactivate" page to get it out of the
    way (it will eventually drift back into the inactive queue for a retry)"). The file's
    disk fails every write."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        md = k.md
        md.files["bad"] = swapdev.vnode_create(
            k, env.tmp_path / "bad", PAGE, faults=FaultConfig(fail_write_slots=[(0, 0)])
        )
        h = await pw.hold(env, "w", pw.region("file", 1, "bad"), pw.region("anon", 1), free=30)
        pg, nxt = pw.pg(env, h, 0, 0), pw.pg(env, h, 1, 0)
        pw.deactivate(k, [pg, nxt])
        with capture_logs() as logs:
            d = await _scan(k)
        assert _pageouts(logs)[0] == (1, "ERROR")
        assert (d["pdpageouts"], d["pdpending"], d["pgswapout"]) == (2, 1, 2)
        assert pg.pg_flags & PQ_ACTIVE and not pg.pg_flags & (PG_BUSY | PG_WANTED | PG_CLEAN)
        assert not k.pmap.pmap_is_referenced(pg)
        assert nxt.pg_flags & PG_BUSY  # the scan went on with p's successor
        assert _file_bytes(env, "bad", 0) == bytes(PAGE)
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon(body)


def test_I18c_swap_again_leaves_the_page_inactive_with_one_slot(run_as_pagedaemon: Any) -> None:
    """I18c: "not released, AGAIN | lock pages; next := successor; clear reference; p stays
    inactive (swap: keeps the one slot the pager gave back)" (C: "tmp resource shortage, we
    skip to next page"). 16 pages fill a cluster; no buf: the cluster is dropped, p keeps
    the cluster's first slot, its retry alone fails too."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 16), free=30)
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        _no_bufs(k)
        with capture_logs() as logs:
            d = await _scan(k)
        _bufs_back(k)
        assert _pageouts(logs) == [(1, "AGAIN")]
        assert (d["pdpageouts"], d["pdpending"], d["paging"], d["swpginuse"]) == (1, 0, 0, 1)
        p = pgs[15]
        assert p.pg_flags & PQ_INACTIVE and not p.pg_flags & (PG_BUSY | PG_CLEAN)
        assert p.uanon is not None and p.uanon.an_swslot == 1
        assert not k.pmap.pmap_is_referenced(p)
        assert pw.lock(h, 0).rwl_owner is None
        # a later pass writes it (dropping the kept slot first, I12)
        d = await _scan(k)
        assert d["pdpending"] == 1
        await _settle(env)
        assert all(pg.pg_flags & PG_CLEAN for pg in pgs)
        await pw.release(env, h)

    run_as_pagedaemon(body)


def test_I18d_successful_vnode_pageout_marks_clean_and_a_later_pass_frees_it(
    run_as_pagedaemon: Any,
) -> None:
    """I18d: "not released, OK | lock pages; next := successor; clear ref and mod; set
    PG_CLEAN (p is freed on a **later** visit, not now)" (§2.5: "they are freed by a later
    pass once clean")."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("file", 1, "f"), free=30)
        pg = pw.pg(env, h, 0, 0)
        pw.deactivate(k, [pg])
        d = await _scan(k)
        assert d["pdfreed"] == 0 and d["pdpageouts"] == 1
        assert pg.pg_flags & PG_CLEAN and pg.pg_flags & PQ_INACTIVE
        assert not pg.pg_flags & (PG_BUSY | PG_WANTED)
        assert not k.pmap.pmap_is_modified(pg) and not k.pmap.pmap_is_referenced(pg)
        d = await _scan(k)
        assert (d["pdfreed"], d["pdpageouts"], d["free"]) == (1, 0, 1)
        assert pg.pg_flags & PQ_FREE
        assert await pw.run_on(env, h, _load(h.vas[0], PAGE)) == pw.data("w", 0, 0)  # from the file
        await pw.release(env, h)

    run_as_pagedaemon(body)


# === a pager that breaks its contract: the daemon's DIAGNOSTIC check and safety net ===============


def _bad_pager(env: KernelEnv, h: Holder, r: int, put: Callable[..., Awaitable[int]]) -> None:
    """Give the file object behind region ``r`` a pager whose put is ``put`` (the rest of
    the vnode pager is unchanged): a pager with a bug, as a third-party one could have."""
    uobj = pw.entry(h, r).uvm_obj
    assert uobj is not None and uobj.pgops is uvm_vnode.uvm_vnodeops
    uobj.pgops = dataclasses.replace(uobj.pgops, pgo_put=put)


def test_I18_pager_put_returning_unlock_panics_under_DIAGNOSTIC(kenv: Any) -> None:
    """I18: "UNLOCK result → panic (DIAGNOSTIC)" (C: "VM_PAGER_UNLOCK: should never see this
    as it is only valid for "get" operations"; panic("pagedaemon: pageout returned invalid
    'unlock' code")). No pager of this kernel returns it from a put (uvn_put: OK, AGAIN, BAD,
    ERROR; uvm_swap_put: PEND, AGAIN, OK, ERROR), so the file's pager here is a buggy one
    whose put returns UNLOCK; the check catches it as the page comes back."""
    env = pw.daemonless(kenv, npages=128, swap_pages=256)

    async def bad_put(k: Kernel, uobj: Any, pps: list[Any], npages: int, flags: int) -> int:
        return uvm_pager.VM_PAGER_UNLOCK

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("file", 1, "f"), free=30)
        _bad_pager(env, h, 0, bad_put)
        pg = pw.pg(env, h, 0, 0)
        pw.deactivate(k, [pg])
        seen.extend([pg, pw.lock(h, 0)])
        await _scan(k)

    seen: list[Any] = []
    env.check_at_teardown = False  # a panicked kernel: p stays busy, its object locked
    with pytest.raises(Panic, match="pagedaemon: pageout returned invalid 'unlock' code"):
        env.run(pw.as_pagedaemon(body))
    # the panic came as the page came back, before the daemon touched it
    pg, lock = seen
    assert pg.pg_flags & PG_BUSY and lock.rwl_owner is env.testproc
    assert env.k.uvmexp.pdpageouts == 1


def test_I18e_page_requeued_during_its_pageout_makes_the_scan_restart_at_the_head(
    run_as_pagedaemon: Any,
) -> None:
    """I18e: "if next exists but is no longer PQ_INACTIVE, next := queue head" (C: "do a
    safety check of nextpg to make sure it is on the inactive queue (it should be since
    PG_BUSY pages on the inactive queue can't be re-queued [note: not true for active
    queue])"). The page queues stay locked from taking p's successor to the check, so in a
    kernel that keeps the rule quoted nothing can trip it; the check is the daemon's guard
    against code that does not. Here the file's pager breaks the rule: after writing its
    cluster (p0 and p1) it reactivates both pages although p0 is the daemon's busy page. p0's
    successor is then p1 on the active queue; without the check the scan would walk the
    active queue from there. With it, the scan starts over at the head: B's page (whose lock
    another CPU holds, so it is skipped each time) is tried twice, then C's page is paged out.
    """
    real_put = uvm_vnode.uvm_vnodeops.pgo_put
    assert real_put is not None

    async def put_then_requeue(
        k: Kernel, uobj: Any, pps: list[VmPage | None], npages: int, flags: int
    ) -> int:
        result = await real_put(k, uobj, pps, npages, flags)
        uvm_page.uvm_lock_pageq(k)
        for pg in pps[:npages]:
            assert pg is not None
            uvm_page.uvm_pageactivate(k, pg)  # the bug: p0 is PG_BUSY, the daemon's
        uvm_page.uvm_unlock_pageq(k)
        return result

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(
            env, "w", pw.region("anon", 1), pw.region("file", 2, "f"), pw.region("anon", 1), free=30
        )
        b, (p0, p1), c = pw.pg(env, h, 0, 0), pw.pgs(env, h, 1), pw.pg(env, h, 2, 0)
        _bad_pager(env, h, 1, put_then_requeue)
        pw.deactivate(k, [b, p0, p1, c])
        cpu = pw.other_cpu(k)
        lb = pw.lock(h, 0)
        _take_as(cpu.proc, lb)
        tries: list[int] = []
        lb.rwl_hook = lambda rwl: tries.append(len(tries))
        with capture_logs() as logs:
            d = await _scan(k)
        lb.rwl_hook = None
        assert _pageouts(logs) == [(2, "OK"), (1, "PEND")]
        assert len(tries) == 2  # B's page at the head, before p0 and after the reload
        assert (d["pdscans"], d["pdpageouts"], d["pdpending"]) == (4, 2, 1)
        for pg in (p0, p1):  # written, clean, on the active queue where the pager put them
            assert pg.pg_flags & PQ_ACTIVE and pg.pg_flags & PG_CLEAN
            assert not pg.pg_flags & PG_BUSY
        assert c.pg_flags & PG_BUSY and b.pg_flags & PQ_INACTIVE
        assert _file_bytes(env, "f", 1) == pw.data("w", 1, 1)
        await pw.run_on(env, cpu, pw.exit_(lb))
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon(body)


