"""uvm_pdaemon.py: uvmpd_scan_inactive, one test per row of its branch catalogue.

Each test pins one row of docs/uvm-reference.md §2.3 (I0a … I18e) and quotes it, or the C
comment of seed/uvm_pdaemon.c 1.105 the row comes from. The machine is real (RAM, MMU, swap
disk, files); the pages are made by user processes that map memory, write it and then sleep
until the test releases them. The test body plays the page daemon: the machine boots with
``start=False``, the body installs the trap handler and an aiodone daemon, calls uvmpd_tune
as uvm_pageout does, names itself ``uvm.pagedaemon_proc`` (so its swap writes are B_PDAEMON
and aiodoned takes them off ``uvmexp.paging``), deactivates pages the way the active scan does
(A5: PROT_NONE, then uvm_pagedeactivate) and calls ``uvmpd_scan_inactive(k, pma,
k.uvm.page_inactive)`` with the page queues locked. That makes every row's condition exact.

Concurrency ("another CPU acting at that instant") goes through ``RWLock.rwl_hook``, called
at each try-lock the scan makes, and through a kernel thread "cpu1" that holds locks while
the scan runs. Failures come from device fault injection, the buffer pool limit
(``pool_sethardlimit``: uvm_swap_io gets no buf without sleeping → VM_PAGER_AGAIN) and pager
map segments held by the test (a cluster cannot be mapped, a single page can).

Thresholds on the machines used here (uvmpd_tune, reference §1.1): npages < 270 gives
freemin 9, freetarg 12, and the seed's stop target free + paging ≥ 4 × freetarg = 48.

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

import kernel.uvm.uvm_pdaemon as uvm_pdaemon
from devices.faults import FaultConfig
from emu.process import UserProcess
from kernel.arch.emu import swapdev
from kernel.kern.kern_synch import (
    RW_WRITE,
    RWLock,
    rw_enter_nosleep,
    rw_exit,
)
from kernel.kernel import Kernel, KernelConfig
from kernel.sys.proc import Proc, curproc, set_curproc
from kernel.sys.systm import Panic
from kernel.uvm import uvm_aobj, uvm_page, uvm_pager, uvm_pmemrange, uvm_swap, uvm_vnode
from kernel.uvm.uvm_page import (
    PG_BUSY,
    PG_CLEAN,
    PG_RELEASED,
    PG_WANTED,
    PQ_ACTIVE,
    PQ_FREE,
    PQ_INACTIVE,
    VmPage,
    atop,
    ptoa,
)
from kernel.uvm.uvm_pmemrange import (
    UVM_PLA_NOWAIT,
    UVM_PMA_BUSY,
    UVM_PMA_FREED,
    UVM_PMA_LINKED,
    UvmPmalloc,
)

import pdaemon_world as pw
from pdaemon_world import Holder, Job

if TYPE_CHECKING:
    from conftest import KernelEnv

PAGE = 4096
STOP = 48  # 4 × freetarg on every machine of this file (freetarg 12)

COUNTERS = (
    "pdscans", "pdreact", "pdbusy", "pdanscan", "pdobscan", "pdfreed", "pdpageouts",
    "pdpending", "pgswapout", "swpgonly", "swpginuse", "paging", "free",
)  # fmt: skip


# --- the machine --------------------------------------------------------------------------------


def _machine(kenv: Any, npages: int = 128, swap_pages: int = 256, **kw: Any) -> KernelEnv:
    """A booted machine whose kernel threads the test body starts itself (see module doc)."""
    env: KernelEnv = kenv(
        npages=npages,
        swap_pages=swap_pages,
        start=False,
        config=KernelConfig(bufcachepercent=0),
        **kw,
    )
    return env


async def _scan(k: Kernel, pma: UvmPmalloc | None = None) -> dict[str, int]:
    """uvmpd_scan's call of uvmpd_scan_inactive (S2): page queues locked around it.
    Returns how much each counter of COUNTERS moved."""
    before = _snap(k)
    uvm_page.uvm_lock_pageq(k)
    await uvm_pdaemon.uvmpd_scan_inactive(k, pma, k.uvm.page_inactive)
    assert k.uvm.pageqlock.mtx_owner is curproc()  # returns with the page queues locked
    uvm_page.uvm_unlock_pageq(k)
    return _delta(k, before)


def _snap(k: Kernel) -> dict[str, int]:
    return {c: getattr(k.uvmexp, c) for c in COUNTERS}


def _delta(k: Kernel, before: dict[str, int]) -> dict[str, int]:
    return {c: getattr(k.uvmexp, c) - v for c, v in before.items()}


def _inactive(k: Kernel) -> list[VmPage]:
    return list(k.uvm.page_inactive)


async def _settle(env: KernelEnv) -> None:
    """Until aiodoned finished every pageout in flight."""
    await env.settle(step_ns=100_000)


# --- other threads: user processes that hold pages, and another CPU --------------------------------


async def _pressure(env: KernelEnv, free: int) -> Holder:
    """A process holding enough active pages that exactly ``free`` pages stay free."""
    n = env.k.uvmexp.free - free
    h = await pw.hold(env, "ballast", pw.region("anon", n))
    assert env.k.uvmexp.free == free
    return h


def _load(va: int, n: int = 8) -> Job:
    async def job(p: UserProcess) -> bytes:
        return await p.load(va, n)

    return job


def _store(va: int, data: bytes) -> Job:
    async def job(p: UserProcess) -> None:
        await p.store(va, data)

    return job


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


# --- pmas, swap, files ------------------------------------------------------------------------------


def _no_bufs(k: Kernel) -> None:
    """pool_sethardlimit(&bufpool, <bufs in use>): uvm_swap_io cannot get a buf without
    sleeping, so an async pageout returns VM_PAGER_AGAIN (reference §1.9 step 1)."""
    assert k.swap is not None
    k.swap.bufpool_hardlimit = k.swap.bufpool_nout


def _bufs_back(k: Kernel) -> None:
    assert k.swap is not None
    k.swap.bufpool_hardlimit = None


def _aobj_slot(k: Kernel, h: Holder, r: int, i: int) -> int:
    entry = pw.entry(h, r)
    assert entry.uvm_obj is not None
    return uvm_aobj.uao_find_swslot(k, entry.uvm_obj, (entry.offset >> 12) + i)


def _file_bytes(env: KernelEnv, name: str, i: int) -> bytes:
    vp = env.k.md.files[name]
    with open(vp.v_dev.disk.path, "rb") as f:
        f.seek(i * PAGE)
        return f.read(PAGE)


def _pageouts(logs: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [(e["npages"], e["result"]) for e in logs if e["event"] == "uvmpd_scan_inactive.pageout"]


# === start position: I0a-I0d ========================================================================


def test_I0d_empty_inactive_queue_does_nothing(kenv: Any) -> None:
    """I0d: "inactive queue empty | loop never runs; nothing happens" (even below target and
    with a request: the pma finds no page, p = TAILQ_FIRST = NULL, the loop never starts)."""
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        ballast = await _pressure(env, 20)
        pma = pw.linked_pma(k, 0, 1 << 40)
        assert k.uvm.page_inactive.empty()
        d = await _scan(k, pma)
        assert all(v == 0 for v in d.values()), d
        assert pma.pm_flags == UVM_PMA_LINKED | UVM_PMA_BUSY
        pw.pma_done(k, pma)
        await pw.release(env, ballast)

    env.run(body)


def test_I0c_without_pma_the_scan_starts_at_the_head(kenv: Any) -> None:
    """I0c: "no pma | start at head"; the loop then follows the queue (I2: "next :=
    successor of p"), so the cluster's slots are handed out in queue order."""
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("anon", 4))
        ballast = await _pressure(env, 30)
        pgs = pw.pgs(env, h)
        order = [pgs[2], pgs[0], pgs[3], pgs[1]]
        pw.deactivate(k, order)
        assert _inactive(k) == order
        d = await _scan(k)
        assert d["pdscans"] == 4 and d["pgswapout"] == 4
        slots = [pg.uanon.an_swslot for pg in order]  # type: ignore[union-attr]
        assert slots == [1, 2, 3, 4]
        await _settle(env)
        await pw.release(env, h, ballast)

    env.run(body)


def test_I0a_scan_starts_at_the_first_page_whose_page_number_is_in_the_pma_range(
    kenv: Any,
) -> None:
    """I0a: "pma given and some inactive page has atop(PA) in [ucr_low, ucr_high) | start at
    the first such page". The pages before it are not looked at; the pages after it are,
    whatever their address (the range only picks the start). The pma is not FREED, so the
    scan goes on although free memory is far above 4 × freetarg."""
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("anon", 4))
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        assert k.uvmexp.free >= STOP
        f2 = atop(pgs[2].phys_addr)
        pma = pw.linked_pma(k, f2, f2 + 1)
        d = await _scan(k, pma)
        assert d["pdscans"] == 2 and d["pgswapout"] == 2 and d["pdpageouts"] == 1
        for pg in pgs[:2]:  # before the start: untouched
            assert pg.pg_flags & PQ_INACTIVE and not pg.pg_flags & (PG_BUSY | PG_CLEAN)
            assert pg.uanon is not None and pg.uanon.an_swslot == 0
        assert [pg.uanon.an_swslot for pg in pgs[2:]] == [1, 2]  # type: ignore[union-attr]
        assert not pma.pm_flags & UVM_PMA_FREED
        pw.pma_done(k, pma)
        await _settle(env)
        await pw.release(env, h)

    env.run(body)


def test_I0a_units_mismatch_page_numbers_are_compared_with_byte_bounds(kenv: Any) -> None:
    """Reference §4.5: "Request ranges are byte addresses (`uvm_wait_pla` passes ptoa
    values ...) but the daemon compares `atop(physical address)` (a page number) against
    them", and the port keeps it ("as the C does it"). A request for exactly the bytes of
    page X's frame, as uvm_wait_pla builds it (low = ptoa(f), high = ptoa(f + 1) - 1), does
    not select X: no page matches, the scan starts at the head and forgets the pma (I0b), so
    with free ≥ 4 × freetarg it stops at once. The bytes [f, f + 1) - inside frame 0, nowhere
    near X - do select X."""
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("anon", 3))
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        f = atop(pgs[1].phys_addr)
        assert f > 0

        bytes_of_x = pw.linked_pma(k, ptoa(f), ptoa(f + 1) - 1)
        d = await _scan(k, bytes_of_x)
        assert d["pdscans"] == 0  # X's own byte range: no match, pma forgotten
        pw.pma_done(k, bytes_of_x)

        number_of_x = pw.linked_pma(k, f, f + 1)
        assert not (f <= pgs[1].phys_addr < f + 1)  # X's bytes are not in this range ...
        d = await _scan(k, number_of_x)
        assert d["pdscans"] == 2  # ... yet the scan starts at X
        assert pgs[0].uanon is not None and pgs[0].uanon.an_swslot == 0
        assert pgs[1].pg_flags & PG_BUSY and pgs[2].pg_flags & PG_BUSY
        pw.pma_done(k, number_of_x)
        await _settle(env)
        await pw.release(env, h)

    env.run(body)


def test_I0b_pma_that_matches_no_page_starts_at_head_and_is_forgotten(kenv: Any) -> None:
    """I0b: "pma given, no match | start at head, **pma forgotten** (treated as NULL)". A
    pma that is not FREED keeps the done test false (I0a); forgotten, the global target
    alone ends the scan: free 40, one 16-page cluster in flight → 40 + 16 ≥ 48, stop, and
    the last 4 pages are never looked at."""
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("anon", 20))
        ballast = await _pressure(env, 40)
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        pma = pw.linked_pma(k, 1 << 20, 1 << 21)  # page numbers far above this machine's RAM
        d = await _scan(k, pma)
        assert d["pdscans"] == 16 and d["pdpageouts"] == 1 and d["paging"] == 16
        assert pgs[0].uanon is not None and pgs[0].uanon.an_swslot == 1  # the head first
        for pg in pgs[16:]:
            assert pg.uanon is not None and pg.uanon.an_swslot == 0
            assert not pg.pg_flags & PG_BUSY
        assert pma.pm_flags == UVM_PMA_LINKED | UVM_PMA_BUSY
        pw.pma_done(k, pma)
        await _settle(env)
        await pw.release(env, h, ballast)

    env.run(body)


# === per page: I1-I7 ================================================================================


def test_I1a_target_met_leaves_before_the_first_page(kenv: Any) -> None:
    """I1a: "done test true ... no open cluster | leave the loop"; the done test is "(pma is
    NULL or pma has FREED) and free + paging ≥ 4 × freetarg" (C: "see if we've met our
    target" ... "exit now if no swap-i/o pending")."""
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("anon", 4))
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        assert k.uvmexp.free >= STOP
        d = await _scan(k)
        assert all(v == 0 for v in d.values()), d
        assert _inactive(k) == pgs
        assert not any(pg.pg_flags & (PG_BUSY | PG_CLEAN) for pg in pgs)
        await pw.release(env, h)

    env.run(body)


def test_I1b_target_met_with_an_open_cluster_flushes_it_and_stops(kenv: Any) -> None:
    """I1b: "same, cluster open | p := none, next := none → final flush (I14)" (C: "set p
    to null to signal final swap i/o"). Two dirty pages open a cluster; the clean pages after
    them are freed one by one (I7) until free reaches 48: the open cluster of 2 is then
    written and the scan ends, leaving the remaining clean pages alone."""
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("anon", 6), pw.region("anon", 2))
        ballast = await _pressure(env, 45)
        clean, dirty = pw.pgs(env, h, 0), pw.pgs(env, h, 1)
        # make the first region clean (paged out, still resident), then queue dirty first
        pw.deactivate(k, clean)
        await _scan(k)
        await _settle(env)
        assert all(pg.pg_flags & PG_CLEAN for pg in clean)
        for i in range(6):
            await pw.run_on(env, h, _load(h.vas[0] + i * PAGE))  # soft faults: active again
        pw.deactivate(k, dirty + clean)
        assert k.uvmexp.free == 45 and k.uvmexp.swpginuse == 6

        with capture_logs() as logs:
            d = await _scan(k)
        assert d["pdfreed"] == 3  # 45 + 3 = 48: the target is met at clean[3]
        assert _pageouts(logs) == [(2, "PEND")]
        assert d["pdscans"] == 5 and d["pdpageouts"] == 1 and d["paging"] == 2
        assert [pg.uanon.an_swslot for pg in dirty] == [7, 8]  # type: ignore[union-attr]
        assert k.uvmexp.swpginuse == 8  # slots 9..22 of the cluster were given back
        for pg in clean[3:]:
            assert pg.pg_flags & PQ_INACTIVE and pg.pg_flags & PG_CLEAN
        await _settle(env)
        await pw.release(env, h, ballast)

    env.run(body)


def test_I2_every_page_looked_at_counts_in_pdscans(kenv: Any) -> None:
    """I2: "otherwise | `pdscans` +1; next := successor of p" - before the owner is even
    try-locked, so a page skipped at I3 or I4 counts as well."""
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("anon", 1), pw.region("anon", 1), pw.region("anon", 1))
        ballast = await _pressure(env, 30)
        locked, referenced, dirty = pw.pg(env, h, 0, 0), pw.pg(env, h, 1, 0), pw.pg(env, h, 2, 0)
        pw.deactivate(k, [locked, referenced], unmap=False)
        pw.deactivate(k, [dirty])
        await pw.run_on(env, h, _load(h.vas[1]))  # through its mapping: referenced again
        cpu = pw.other_cpu(k)
        await pw.run_on(env, cpu, pw.enter(k, pw.lock(h, 0)))
        d = await _scan(k)
        assert d["pdscans"] == 3
        assert (d["pdreact"], d["pdanscan"], d["pgswapout"]) == (1, 1, 1)
        await pw.run_on(env, cpu, pw.exit_(pw.lock(h, 0)))
        await _settle(env)
        await pw.release(env, h, ballast)

    env.run(body)


def test_I3_owner_lock_held_elsewhere_skips_the_page(kenv: Any) -> None:
    """I3: "owner try-lock fails | skip (continue)" (C: "if our attempt fails we skip on to
    the next page (no harm done)"). Another CPU holds the amap lock of the first two pages;
    they stay as they were, the third page is paged out."""
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("anon", 2), pw.region("anon", 1))
        ballast = await _pressure(env, 30)
        held, free_ = pw.pgs(env, h, 0), pw.pgs(env, h, 1)
        pw.deactivate(k, held + free_)
        cpu = pw.other_cpu(k)
        lock = pw.lock(h, 0)
        await pw.run_on(env, cpu, pw.enter(k, lock))
        d = await _scan(k)
        assert d["pdscans"] == 3 and d["pdanscan"] == 1 and d["pgswapout"] == 1
        for pg in held:
            assert pg.pg_flags & PQ_INACTIVE and not pg.pg_flags & (PG_BUSY | PG_CLEAN)
            assert pg.uanon is not None and pg.uanon.an_swslot == 0
        assert lock.rwl_owner is cpu.proc  # the scan left it alone
        assert free_[0].pg_flags & PG_BUSY and free_[0].uanon.an_swslot == 1  # type: ignore[union-attr]
        await pw.run_on(env, cpu, pw.exit_(lock))
        await _settle(env)
        await pw.release(env, h, ballast)

    env.run(body)


def test_I4_referenced_page_goes_back_to_the_active_queue(kenv: Any) -> None:
    """I4: "`pmap_is_referenced(p)` | activate, unlock, `pdreact` +1, skip" (C: "move
    referenced pages back to active queue and skip to next page"). The process reads the
    page through the mapping it kept after deactivation: the MMU sets the referenced bit."""
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("anon", 1))
        ballast = await _pressure(env, 30)
        pg = pw.pg(env, h, 0, 0)
        pw.deactivate(k, [pg], unmap=False)
        assert not k.pmap.pmap_is_referenced(pg)
        await pw.run_on(env, h, _load(h.vas[0]))
        assert k.pmap.pmap_is_referenced(pg) and pg.pg_flags & PQ_INACTIVE
        d = await _scan(k)
        assert (d["pdscans"], d["pdreact"]) == (1, 1)
        assert d["pdanscan"] == 0 and d["pgswapout"] == 0
        assert pg.pg_flags & PQ_ACTIVE and not pg.pg_flags & (PG_BUSY | PG_CLEAN)
        assert pw.lock(h, 0).rwl_owner is False  # unlocked again
        await pw.release(env, h, ballast)

    env.run(body)


def test_I5_busy_page_is_skipped_and_counted_in_pdbusy(kenv: Any) -> None:
    """I5: "PG_BUSY | unlock, `pdbusy` +1, skip". The pages are busy because the previous
    scan's pageout of them is still in flight (aiodoned has not run yet)."""
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("anon", 4))
        ballast = await _pressure(env, 30)
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        d1 = await _scan(k)
        assert d1["pdpending"] == 1 and all(pg.pg_flags & PG_BUSY for pg in pgs)
        d = await _scan(k)  # no await in between: the write is still in flight
        assert (d["pdscans"], d["pdbusy"]) == (4, 4)
        assert d["pdanscan"] == 0 and d["pgswapout"] == 0 and d["pdpageouts"] == 0
        assert _inactive(k) == pgs
        await _settle(env)
        assert not any(pg.pg_flags & PG_BUSY for pg in pgs)
        await pw.release(env, h, ballast)

    env.run(body)


def test_I6_object_pages_count_in_pdobscan_anon_pages_in_pdanscan(kenv: Any) -> None:
    """I6: "`pdobscan` +1 if the page has an object, else `pdanscan` +1" - aobj (shared
    memory) and vnode pages both have an object."""
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(
            env, "w", pw.region("anon", 2), pw.region("shared", 1, "shm"), pw.region("file", 1, "f")
        )
        ballast = await _pressure(env, 30)
        pw.deactivate(k, pw.pgs(env, h, 0) + pw.pgs(env, h, 1) + pw.pgs(env, h, 2))
        d = await _scan(k)
        assert (d["pdscans"], d["pdanscan"], d["pdobscan"]) == (4, 2, 2)
        await _settle(env)
        await pw.release(env, h, ballast)

    env.run(body)


def test_I7_clean_swap_backed_page_is_unmapped_freed_and_lives_only_in_swap(kenv: Any) -> None:
    """I7: "PG_CLEAN | if swap-backed `swpgonly` +1; remove all mappings; free page;
    `pdfreed` +1; anon: assert slot ≠ 0, clear `an_page`" (C: "this page now lives only in
    swap"). An anon page and an aobj page, paged out earlier, mapped again by a read; the
    scan frees both; the next touch reads the same bytes back from their slots."""
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("anon", 1), pw.region("shared", 1, "shm"))
        ballast = await _pressure(env, 30)
        apg, opg = pw.pg(env, h, 0, 0), pw.pg(env, h, 1, 0)
        pw.deactivate(k, [apg, opg])
        await _scan(k)
        await _settle(env)
        anon = pw.anon(env, h, 0, 0)
        aslot, oslot = anon.an_swslot, _aobj_slot(k, h, 1, 0)
        assert aslot and oslot
        for r in (0, 1):
            await pw.run_on(env, h, _load(h.vas[r]))  # mapped again, still clean
        pw.deactivate(k, [apg, opg], unmap=False)
        assert k.pmap.pmap_page_mapped(apg) == 1 and k.pmap.pmap_page_mapped(opg) == 1
        assert apg.pg_flags & PG_CLEAN and opg.pg_flags & PG_CLEAN

        d = await _scan(k)
        assert (d["pdfreed"], d["swpgonly"], d["free"]) == (2, 2, 2)
        assert (d["pdanscan"], d["pdobscan"], d["pgswapout"]) == (1, 1, 0)
        for pg in (apg, opg):
            assert pg.pg_flags & PQ_FREE
        assert anon.an_page is None and anon.an_swslot == aslot
        entry = pw.entry(h, 1)
        assert entry.uvm_obj is not None and uvm_page.uvm_pagelookup(entry.uvm_obj, 0) is None
        assert _aobj_slot(k, h, 1, 0) == oslot
        vm = h.proc.proc.p_vmspace
        assert k.pmap.pmap_extract(vm.vm_map.pmap, h.vas[0]) is None  # unmapped
        for r in (0, 1):
            assert await pw.run_on(env, h, _load(h.vas[r], PAGE)) == pw.data("w", r, 0)
        assert k.uvmexp.swpgonly == 0
        await pw.release(env, h, ballast)

    env.run(body)


def test_I7_clean_vnode_page_is_freed_without_counting_swpgonly(kenv: Any) -> None:
    """I7 for an object page that is not swap-backed: "if swap-backed `swpgonly` +1" does
    not apply; the page is freed (its data is in the file)."""
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("file", 1, "f", touch="r"))
        ballast = await _pressure(env, 30)
        pg = pw.pg(env, h, 0, 0)
        assert pg.pg_flags & PG_CLEAN
        pw.deactivate(k, [pg])
        d = await _scan(k)
        assert (d["pdfreed"], d["pdobscan"], d["swpgonly"], d["free"]) == (1, 1, 0, 1)
        assert pg.pg_flags & PQ_FREE and pg.uobject is None
        await pw.release(env, h, ballast)

    env.run(body)


def test_I8_target_met_meanwhile_dirty_page_is_left_alone(kenv: Any) -> None:
    """I8: "dirty, (no pma or FREED), free + paging **>** 4×freetarg | unlock, skip -
    reachable only if `paging` or the pma flag changed since I1" (C: "skip it if we'll have
    met our free target when all the current pageouts complete"). The request is not FREED
    at I1, so the scan goes on with plenty of free memory; at the page's try-lock another
    CPU frees a page inside the request's range: uvm_wakeup_pla sets UVM_PMA_FREED (the
    request stays linked: the daemon has it BUSY), and the dirty page is skipped."""
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("anon", 2))
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        other: list[VmPage] = []  # a page "another CPU" owns (a kernel allocation)
        assert (
            uvm_pmemrange.uvm_pmr_getpages_nowait(k, 1, 0, 0, 1, 0, 1, UVM_PLA_NOWAIT, other) == 0
        )
        assert k.uvmexp.free > STOP
        pma = pw.linked_pma(k, 0, 0xFFFFFFFF)  # dma_constraint: every page matches
        lock = pw.lock(h, 0)

        def other_cpu_frees(rwl: RWLock) -> None:
            rwl.rwl_hook = None
            assert not pma.pm_flags & UVM_PMA_FREED
            uvm_pmemrange.uvm_pmr_freepageq(k, other)

        lock.rwl_hook = other_cpu_frees
        d = await _scan(k, pma)
        assert pma.pm_flags == UVM_PMA_LINKED | UVM_PMA_BUSY | UVM_PMA_FREED
        assert (d["pdscans"], d["pdanscan"], d["pgswapout"], d["pdpageouts"]) == (1, 1, 0, 0)
        for pg in pgs:  # the first skipped at I8; the done test is true at the second
            assert pg.pg_flags & PQ_INACTIVE and not pg.pg_flags & (PG_BUSY | PG_CLEAN)
            assert pg.uanon is not None and pg.uanon.an_swslot == 0
        assert lock.rwl_owner is False
        pw.pma_done(k, pma)
        await pw.release(env, h)

    env.run(body)


async def _fill_swap_with_swap_only_pages(env: KernelEnv, h: Holder, r: int) -> None:
    """Page region ``r`` of ``h`` out and free it: its pages then live only in swap."""
    k = env.k
    pgs = pw.pgs(env, h, r)
    pw.deactivate(k, pgs)
    await _scan(k)
    await _settle(env)
    d = await _scan(k)
    assert d["pdfreed"] == len(pgs)


def test_I9_swap_full_reactivates_dirty_swap_backed_pages(kenv: Any) -> None:
    """I9: "dirty, swap-backed, `uvm_swapisfull()` | dirtyreacts +1, activate, unlock, skip
    (no counter)" (C: "this page is dirty, but we can't page it out since all pages in swap
    are only in swap. reactivate it"). uvm_swapisfull in 2022: swpgonly == swpages."""
    env = _machine(kenv, swap_pages=16)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("anon", 16), pw.region("anon", 3))
        ballast = await _pressure(env, 20)
        await _fill_swap_with_swap_only_pages(env, h, 0)
        assert k.uvmexp.swpgonly == k.uvmexp.swpages == 16
        dirty = pw.pgs(env, h, 1)
        pw.deactivate(k, dirty)
        d = await _scan(k)
        assert (d["pdscans"], d["pdanscan"], d["pgswapout"], d["pdpageouts"]) == (3, 3, 0, 0)
        for pg in dirty:
            assert pg.pg_flags & PQ_ACTIVE and not pg.pg_flags & (PG_BUSY | PG_CLEAN)
            assert pg.uanon is not None and pg.uanon.an_swslot == 0
        assert k.uvmexp.inactive == 0
        await pw.release(env, h, ballast)

    env.run(body)


def test_I9_sixteen_dirty_reactivations_end_the_pass(kenv: Any) -> None:
    """I9 with I1a: "UVMPD_NUMDIRTYREACTS is how many dirty pages the pagedaemon will
    reactivate in a pass thru the inactive list when swap is full"; at dirtyreacts == 16 the
    loop is left (I1a) even though free memory is below target."""
    env = _machine(kenv, swap_pages=16)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("anon", 16), pw.region("anon", 18))
        ballast = await _pressure(env, 12)
        await _fill_swap_with_swap_only_pages(env, h, 0)
        dirty = pw.pgs(env, h, 1)
        pw.deactivate(k, dirty)
        assert k.uvmexp.free == 28
        d = await _scan(k)
        assert d["pdscans"] == 16 and d["pdanscan"] == 16
        assert all(pg.pg_flags & PQ_ACTIVE for pg in dirty[:16])
        assert _inactive(k) == dirty[16:]
        await pw.release(env, h, ballast)

    env.run(body)


def test_I9_with_no_swap_device_swap_counts_as_full(kenv: Any) -> None:
    """I9 on a machine without swap: uvm_swapisfull() is "swpgonly == swpages", and 0 == 0,
    so dirty anon pages are reactivated (at most 16 a pass) and never reach I11/I12a. (The
    reference's §4 item 8 says they take I11/I12a on every pass; in 2022 they do not.)"""
    env = _machine(kenv, swap_pages=0)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("anon", 3))
        ballast = await _pressure(env, 30)
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        assert k.uvmexp.swpages == 0 and uvm_swap.uvm_swapisfull(k)
        d = await _scan(k)
        assert (d["pdanscan"], d["pgswapout"], d["pdpageouts"]) == (3, 0, 0)
        assert all(pg.pg_flags & PQ_ACTIVE for pg in pgs)
        await pw.release(env, h, ballast)

    env.run(body)


async def _redirty(env: KernelEnv, h: Holder, r: int) -> None:
    """The process writes every page of region ``r`` again (after it was paged out and is
    still resident): soft faults, pages active and modified; deactivation clears PG_CLEAN."""
    for i in range(h.regions[r][1]):
        await pw.run_on(env, h, _store(h.vas[r] + i * PAGE, pw.data("again", r, i)))


def test_I10_swap_slots_all_in_use_the_page_gives_up_its_own_slot(kenv: Any) -> None:
    """I10: "dirty, swap-backed, `swpginuse == swpages` | drop the page's own slot now (falls
    through)" (C: "free any swap allocated to the page so that other pages can be paged
    out"). Every slot belongs to a resident page that was written again: each page frees its
    slot, which is then the only one uvm_swap_alloc(16, lessok) can find: one-page clusters."""
    env = _machine(kenv, swap_pages=16)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("anon", 16))
        ballast = await _pressure(env, 22)
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        await _scan(k)
        await _settle(env)
        old = [pg.uanon.an_swslot for pg in pgs]  # type: ignore[union-attr]
        await _redirty(env, h, 0)
        pw.deactivate(k, pgs)
        assert not any(pg.pg_flags & PG_CLEAN for pg in pgs)
        assert k.uvmexp.swpginuse == k.uvmexp.swpages and k.uvmexp.swpgonly == 0

        seen: list[int] = []

        def look(rwl: RWLock) -> None:  # at each try-lock: what did the previous page get?
            seen.append(k.uvmexp.swpginuse)

        pw.lock(h, 0).rwl_hook = look
        with capture_logs() as logs:
            d = await _scan(k)
        pw.lock(h, 0).rwl_hook = None
        assert seen == [16] * 16  # each page found swap full, freed its slot, got one back
        assert _pageouts(logs) == [(1, "PEND")] * 16
        assert (d["pgswapout"], d["pdpageouts"], d["paging"]) == (16, 16, 16)
        assert [pg.uanon.an_swslot for pg in pgs] == old  # type: ignore[union-attr]
        await _settle(env)
        await pw.release(env, h, ballast)

    env.run(body)


def test_I11_dirty_page_is_busied_write_protected_and_counted_in_pgswapout(kenv: Any) -> None:
    """I11: "remember swap_backed; set PG_BUSY; write-protect all mappings; `pgswapout` +1"
    (C: "we first mark the page busy so that no one else will touch the page. we write
    protect all the mappings of the page so that no one touches it while it is in I/O")."""
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("anon", 1))
        ballast = await _pressure(env, 30)
        pg = pw.pg(env, h, 0, 0)
        pm = h.proc.proc.p_vmspace.vm_map.pmap
        pw.deactivate(k, [pg], unmap=False)
        assert k.pmap.pmap_is_writable(pm, h.vas[0])
        d = await _scan(k)
        assert d["pgswapout"] == 1
        assert pg.pg_flags & PG_BUSY  # the write is in flight
        assert k.pmap.pmap_page_mapped(pg) == 1 and not k.pmap.pmap_is_writable(pm, h.vas[0])
        await _settle(env)
        assert pg.pg_flags & PG_CLEAN and not pg.pg_flags & PG_BUSY
        await pw.run_on(env, h, _store(h.vas[0], b"after"))  # a write faults and goes through
        assert await pw.run_on(env, h, _load(h.vas[0], 5)) == b"after"
        await pw.release(env, h, ballast)

    env.run(body)


# === swap-backed dirty pages: I12-I12e ===============================================================


def test_I12_old_slot_is_freed_before_the_page_joins_a_new_cluster(kenv: Any) -> None:
    """I12: "drop the page's old slot (no-op if none)" (C: "free old swap slot (if any)").
    P (slot 1) and Q (slot 2) were paged out; P was written again. P's pageout frees slot 1
    and takes the first free run of 16 slots, which now starts at 3."""
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("anon", 2))
        ballast = await _pressure(env, 30)
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
        await pw.release(env, h, ballast)

    env.run(body)


def test_I12a_no_swap_slot_left_unbusies_the_page_and_leaves_it_dirty(kenv: Any) -> None:
    """I12a: "no open cluster, `uvm_swap_alloc(16, lessok)` returns 0 | clear PG_BUSY,
    unlock, skip. Page stays inactive and dirty ... and `pgswapout` was already counted" (C:
    "no swap?  give up!"). Every slot belongs to a resident, clean, active page (paged out
    and read back in), so swap is not "full" (swpgonly 0) but no slot is free."""
    env = _machine(kenv, swap_pages=16)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("anon", 16), pw.region("anon", 1))
        ballast = await _pressure(env, 20)
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
        assert pw.lock(h, 1).rwl_owner is False
        await pw.release(env, h, ballast)

    env.run(body)


def test_I12a_a_page_whose_old_slot_went_bad_loses_it_and_gets_none(kenv: Any) -> None:
    """I12a: "Page stays inactive and dirty, has lost its old slot (I12), and `pgswapout` was
    already counted". A good old slot would be freed and found again (lessok), so the page
    can only end up with no slot when its old slot is bad: uvm_swap_free leaves bad slots
    allocated. Here 16 of the 17 slots went bad in one failed write of a shared region (the
    port keeps such pages dirty, reference §4 item 10); another CPU held the aobj's lock at
    completion, so the pages kept their (bad) slots. The 17th slot belongs to a resident,
    clean, active page, so swap is not full (uvm_swapisfull counts bad slots as full, PORT)
    but no slot is free. The next scan drops each bad slot (I10 and I12: "no-op" on the
    drum) and finds no slot to replace it."""
    env = _machine(kenv, swap_pages=17, faults=FaultConfig(fail_write_slots=[(0, 15)]))

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("shared", 16, "shm"), pw.region("anon", 1))
        ballast = await _pressure(env, 20)
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
        await pw.release(env, h, ballast)

    env.run(body)


def test_I12b_cluster_opens_with_sixteen_slots(kenv: Any) -> None:
    """I12b: "no open cluster, allocation succeeds | open a cluster: swslot, swnpages (16
    ...), swcpages = 0". Seen at the second page's try-lock: 16 slots are allocated for the
    cluster that holds one page."""
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("anon", 1), pw.region("anon", 1))
        ballast = await _pressure(env, 30)
        first, second = pw.pg(env, h, 0, 0), pw.pg(env, h, 1, 0)
        pw.deactivate(k, [first, second])
        seen: list[int] = []
        pw.lock(h, 1).rwl_hook = lambda rwl: seen.append(k.uvmexp.swpginuse)
        await _scan(k)
        assert seen == [16]
        await _settle(env)
        await pw.release(env, h, ballast)

    env.run(body)


def test_I12b_lessok_opens_a_one_slot_cluster_when_sixteen_do_not_fit(kenv: Any) -> None:
    """I12b: "... swnpages (16 or 1)"; uvm_swap_alloc: "If nothing fits and n > 1 and lessok,
    n is set to 1". With 15 free slots, each dirty page is a full cluster of one, paged out
    with p at once (I12e)."""
    env = _machine(kenv, swap_pages=16)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("anon", 1), pw.region("anon", 3))
        ballast = await _pressure(env, 30)
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
        await pw.release(env, h, ballast)

    env.run(body)


def test_I12c_the_slot_is_recorded_in_the_anon_or_in_the_aobj(kenv: Any) -> None:
    """I12c: "append p; set its slot (anon field or aobj slot) to swslot + swcpages"
    (C: "add block to cluster"). Anon and aobj pages share one cluster."""
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("anon", 2), pw.region("shared", 2, "shm"))
        ballast = await _pressure(env, 30)
        a, o = pw.pgs(env, h, 0), pw.pgs(env, h, 1)
        pw.deactivate(k, [a[0], o[0], a[1], o[1]])
        with capture_logs() as logs:
            await _scan(k)
        assert _pageouts(logs) == [(4, "PEND")]
        assert (pw.anon(env, h, 0, 0).an_swslot, pw.anon(env, h, 0, 1).an_swslot) == (1, 3)
        assert (_aobj_slot(k, h, 1, 0), _aobj_slot(k, h, 1, 1)) == (2, 4)
        await _settle(env)
        await pw.release(env, h, ballast)

    env.run(body)


def test_I12d_a_cluster_that_is_not_full_waits_for_the_next_page(kenv: Any) -> None:
    """I12d: "swcpages < swnpages | skip to next page (cluster not full)" (C: "cluster not
    full yet?"). At the second page's try-lock the first page is busy in the cluster with
    its slot, and nothing has been written yet."""
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("anon", 1), pw.region("anon", 1))
        ballast = await _pressure(env, 30)
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
        assert pw.lock(h, 0).rwl_owner is False  # unlocked before moving on
        assert d["pdpageouts"] == 1  # both pages went out together at the end
        await _settle(env)
        await pw.release(env, h, ballast)

    env.run(body)


def test_I12e_a_full_cluster_is_paged_out_at_once(kenv: Any) -> None:
    """I12e: "cluster full | pageout of the cluster (I15)" - with the 16th page as p, before
    the 17th page is looked at."""
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("anon", 16), pw.region("anon", 1))
        ballast = await _pressure(env, 25)
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
        await pw.release(env, h, ballast)

    env.run(body)


# === object pages, the pageout and its result: I13-I18e ============================================


def test_I13_dirty_vnode_page_is_written_synchronously_through_its_object(kenv: Any) -> None:
    """I13: "Object (vnode) dirty page - page stays locked; array of 16, start 0; pageout
    (I15) with the object"; §1.8: "object pageouts from the daemon are synchronous": the
    file holds the data when uvm_pager_put returns OK, nothing is added to `paging`."""
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("file", 1, "f"))
        ballast = await _pressure(env, 30)
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
        assert pw.lock(h, 0).rwl_owner is False
        await pw.release(env, h, ballast)

    env.run(body)


def test_I14_final_flush_writes_the_partial_cluster_and_frees_unused_slots(kenv: Any) -> None:
    """I14: "p is NONE with an open cluster: swap_backed := true; pageout of the cluster";
    I15: "if swcpages < swnpages (only on the final flush ...) free the unused slot tail"
    (C: "if this is final pageout we could have a few extra swap blocks")."""
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("anon", 3))
        ballast = await _pressure(env, 30)
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        with capture_logs() as logs:
            d = await _scan(k)
        assert [(e["npages"], e["swslot"]) for e in logs if "npages" in e] == [(3, 1)]
        assert (d["pdpageouts"], d["pdpending"], d["paging"], d["swpginuse"]) == (1, 1, 3, 3)
        assert all(pw.slot_free(k, s) for s in range(4, 17))
        await _settle(env)
        await pw.release(env, h, ballast)

    env.run(body)


def test_I15_pdpageouts_counts_one_per_cluster(kenv: Any) -> None:
    """I15: "`pdpageouts` +1" per uvm_pager_put call (§2.5: "`pgswapout` counts attempts,
    `pdpageouts` counts I/O starts (once per cluster)")."""
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("anon", 20))
        ballast = await _pressure(env, 20)
        pw.deactivate(k, pw.pgs(env, h))
        d = await _scan(k)
        assert (d["pgswapout"], d["pdpageouts"], d["pdpending"], d["paging"]) == (20, 2, 2, 20)
        await _settle(env)
        await pw.release(env, h, ballast)

    env.run(body)


def test_I16_pend_adds_the_cluster_to_paging_and_goes_on_with_the_next_page(kenv: Any) -> None:
    """I16: "PEND | `paging` += npages ...; lock pages; `pdpending` +1; next := successor of
    p if p still PQ_INACTIVE". Then aiodoned takes the B_PDAEMON buf off `paging` (D2), and
    the pages are clean, unbusied and still inactive with their new slots (§1.10)."""
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("anon", 17))
        ballast = await _pressure(env, 20)
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
        await pw.release(env, h, ballast)

    env.run(body)


async def _hold_pager_map(k: Kernel) -> int:
    """Map pager segments until none is left (as other I/O would hold them); returns how many.
    A single page needs no segment (direct map), a cluster does (uvm_pagermapin)."""
    n = 0
    while await uvm_pager.uvm_pseg_get(k, 0):
        n += 1
    return n


def test_I16_after_the_pager_retried_pg_alone_paging_grows_by_one(kenv: Any) -> None:
    """I16: "`paging` += npages (npages is 1 if the pager retried pg alone)"; §1.8 step 5:
    on AGAIN the cluster is dropped (its other pages unbusied, their slots zeroed and freed)
    and pg, which keeps the cluster's first slot, is retried alone. Here the pager map is
    exhausted: the 16-page cluster cannot be mapped, pg alone can (direct map)."""
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("anon", 16))
        ballast = await _pressure(env, 20)
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
        await pw.release(env, h, ballast)

    env.run(body)


def test_I16_p_lost_to_another_cpu_before_the_relock_restarts_at_the_head(kenv: Any) -> None:
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
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("anon", 16), pw.region("anon", 1))
        ballast = await _pressure(env, 30)
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
        await pw.release(env, h, ballast)

    env.run(body)


def test_I17_failed_final_flush_drops_the_whole_cluster(kenv: Any) -> None:
    """I17: "not PEND, p is none (final flush failed) | next := none; lock pages"; §1.8: with
    no pg, AGAIN frees "all n" slots and the pages are dropped (unbusied, slot zeroed, still
    dirty). No buf can be had without sleeping (bufpool at its hard limit)."""
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("anon", 3))
        ballast = await _pressure(env, 30)
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
        await pw.release(env, h, ballast)

    env.run(body)


def test_I18_pageout_wakes_the_thread_waiting_for_the_busy_page(kenv: Any) -> None:
    """I18: "not PEND, p exists | ...; wake PG_WANTED sleepers; clear BUSY and WANTED" (C:
    "handle PG_WANTED now"). At the page's try-lock the process is told to read the page;
    it runs while the daemon sleeps in the synchronous file write, faults on the busy page
    and waits for it (PG_WANTED); the daemon's clean-up wakes it."""
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("file", 1, "f"))
        ballast = await _pressure(env, 30)
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
        await pw.release(env, h, ballast)

    env.run(body)


class SwpgonlyUndercount(AssertionError):
    """The I18a clean-up took one off `uvmexp.swpgonly` for a page never counted there."""


def test_I18a_released_anon_page_after_failed_pageout_frees_page_and_anon(kenv: Any) -> None:
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
    env = _machine(kenv)
    seen: dict[str, int] = {}

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(
            env, "w", pw.region("anon", 15), pw.region("anon", 1), pw.region("shared", 1, "shm")
        )
        ballast = await _pressure(env, 30)
        await _fill_swap_with_swap_only_pages(env, h, 2)
        assert k.uvmexp.swpgonly == 1
        a, p = pw.pgs(env, h, 0), pw.pg(env, h, 1, 0)
        anon = pw.anon(env, h, 1, 0)
        la, lb = pw.lock(h, 0), pw.lock(h, 1)
        pw.deactivate(k, [*a, p])
        cpu = pw.other_cpu(k)
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
        assert lb.rwl_owner is False and la.rwl_owner is False  # each released once
        # §4.1: the reference uvm_anfree took for PG_RELEASED is never dropped on this path;
        # the amap dropped its own when the unmap freed it: the lock leaks with one
        assert lb.refs == 1
        for pg in a:  # dropped by the pager: unbusied, dirty, no slot, still inactive
            assert pg.pg_flags & PQ_INACTIVE and not pg.pg_flags & (PG_BUSY | PG_CLEAN)
            assert pg.uanon is not None and pg.uanon.an_swslot == 0
        assert k.uvmexp.swpginuse == 1  # only the aobj page's slot
        seen["swpgonly"] = k.uvmexp.swpgonly
        await pw.release(env, h, ballast)

    env.check_at_teardown = False  # checked below, after the swpgonly count
    env.run(body)
    if seen["swpgonly"] != 1:
        raise SwpgonlyUndercount(f"swpgonly {seen['swpgonly']}, one aobj page is only in swap")
    env.check()


def test_I18b_vnode_write_error_reactivates_the_page(kenv: Any) -> None:
    """I18b: "not released, result ≠ OK and ≠ AGAIN (ERROR/BAD/FAIL) | lock pages; next :=
    successor; activate p; clear reference" (C: "we "reactivate" page to get it out of the
    way (it will eventually drift back into the inactive queue for a retry)"). The file's
    disk fails every write."""
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        md = k.md
        md.files["bad"] = swapdev.vnode_create(
            k, env.tmp_path / "bad", PAGE, faults=FaultConfig(fail_write_slots=[(0, 0)])
        )
        h = await pw.hold(env, "w", pw.region("file", 1, "bad"), pw.region("anon", 1))
        ballast = await _pressure(env, 30)
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
        await pw.release(env, h, ballast)

    env.run(body)


def test_I18c_swap_again_leaves_the_page_inactive_with_one_slot(kenv: Any) -> None:
    """I18c: "not released, AGAIN | lock pages; next := successor; clear reference; p stays
    inactive (swap: keeps the one slot the pager gave back)" (C: "tmp resource shortage, we
    skip to next page"). 16 pages fill a cluster; no buf: the cluster is dropped, p keeps
    the cluster's first slot, its retry alone fails too."""
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("anon", 16))
        ballast = await _pressure(env, 30)
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
        assert pw.lock(h, 0).rwl_owner is False
        # a later pass writes it (dropping the kept slot first, I12)
        d = await _scan(k)
        assert d["pdpending"] == 1
        await _settle(env)
        assert all(pg.pg_flags & PG_CLEAN for pg in pgs)
        await pw.release(env, h, ballast)

    env.run(body)


def test_I18d_successful_vnode_pageout_marks_clean_and_a_later_pass_frees_it(kenv: Any) -> None:
    """I18d: "not released, OK | lock pages; next := successor; clear ref and mod; set
    PG_CLEAN (p is freed on a **later** visit, not now)" (§2.5: "they are freed by a later
    pass once clean")."""
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("file", 1, "f"))
        ballast = await _pressure(env, 30)
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
        await pw.release(env, h, ballast)

    env.run(body)


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
    env = _machine(kenv)

    async def bad_put(k: Kernel, uobj: Any, pps: list[Any], npages: int, flags: int) -> int:
        return uvm_pager.VM_PAGER_UNLOCK

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("file", 1, "f"))
        await _pressure(env, 30)
        _bad_pager(env, h, 0, bad_put)
        pg = pw.pg(env, h, 0, 0)
        pw.deactivate(k, [pg])
        seen.extend([pg, pw.lock(h, 0)])
        await _scan(k)

    seen: list[Any] = []
    env.check_at_teardown = False  # a panicked kernel: p stays busy, its object locked
    with pytest.raises(Panic, match="pagedaemon: pageout returned invalid 'unlock' code"):
        env.run(body)
    # the panic came as the page came back, before the daemon touched it
    pg, lock = seen
    assert pg.pg_flags & PG_BUSY and lock.rwl_owner is env.testproc
    assert env.k.uvmexp.pdpageouts == 1


def test_I18e_page_requeued_during_its_pageout_makes_the_scan_restart_at_the_head(
    kenv: Any,
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
    env = _machine(kenv)
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
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(
            env, "w", pw.region("anon", 1), pw.region("file", 2, "f"), pw.region("anon", 1)
        )
        ballast = await _pressure(env, 30)
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
        await pw.release(env, h, ballast)

    env.run(body)


# === the stop target (reference §4.3) =================================================================


@pytest.mark.parametrize(("free", "paged_out"), [(31, 32), (32, 16)])
def test_scan_starts_pageouts_until_free_plus_paging_reaches_four_times_freetarg(
    kenv: Any, free: int, paged_out: int
) -> None:
    """Reference §4.3: "The target free + paging ≥ 4×freetarg pages out up to four times the
    shortfall" (kept by the port: "Everything else, including the 4 x freetarg stop target
    ... is as the C does it"). freetarg is 12 here, so the scan goes on until free + paging
    ≥ 48 (a 1 × freetarg target would not scan at all): with free 32 one 16-page cluster in
    flight reaches 48 exactly; with free 31 it takes a second one."""
    env = _machine(kenv)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.be_the_pagedaemon(k, env)
        h = await pw.hold(env, "w", pw.region("anon", 40))
        ballast = await _pressure(env, free)
        assert free >= k.uvmexp.freetarg
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        d = await _scan(k)
        assert (d["pgswapout"], d["paging"], d["pdscans"]) == (paged_out, paged_out, paged_out)
        assert k.uvmexp.free + k.uvmexp.paging >= 4 * k.uvmexp.freetarg
        assert k.uvmexp.free + k.uvmexp.paging - 16 < 4 * k.uvmexp.freetarg
        assert all(not pg.pg_flags & PG_BUSY for pg in pgs[paged_out:])
        await _settle(env)
        await pw.release(env, h, ballast)

    env.run(body)
