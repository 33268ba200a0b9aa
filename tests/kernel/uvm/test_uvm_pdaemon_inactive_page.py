"""uvm_pdaemon.py: uvmpd_scan_inactive, where it starts and what it does with each page.

Catalogue ids (docs/uvm-reference.md §2.3): I0a I0b I0c I0d (start position); I1a I1b I2 I3
I4 I5 I6 I7 I8 I9 I10 I11 (per page); and the stop target free + paging >= 4 x freetarg
(reference §4.3). The rest of §2.3: I12-I15 in test_uvm_pdaemon_inactive_cluster.py,
I16-I18e in test_uvm_pdaemon_inactive_result.py.

Each test pins one row of §2.3 and quotes it, or the C comment of seed/uvm_pdaemon.c 1.105
the row comes from. The machine is real (RAM, MMU, swap disk, files); the pages are made by
user processes that map memory, write it and then sleep until the test releases them
(``pw.hold``; with ``free=`` a ballast process leaves exactly that many pages free). The test
body plays the page daemon (the ``run_as_pagedaemon`` fixture: the machine boots with
``start=False``, the body starts the trap handler and an aiodone daemon, tunes as uvm_pageout
does and names itself ``uvm.pagedaemon_proc``, so its swap writes are B_PDAEMON and aiodoned
takes them off ``uvmexp.paging``), deactivates pages the way the active scan does (A5:
PROT_NONE, then uvm_pagedeactivate) and calls ``uvmpd_scan_inactive(k, pma,
k.uvm.page_inactive)`` with the page queues locked (pdaemon_inactive._scan). That makes every
row's condition exact. Concurrency ("another CPU acting at that instant") goes through
``RWLock.rwl_hook``, called at each try-lock the scan makes, and through a kernel thread
"cpu1" that holds locks while the scan runs.

Thresholds on the machines used here (uvmpd_tune, reference §1.1): npages < 270 gives
freemin 9, freetarg 12, and the seed's stop target free + paging ≥ 4 × freetarg = 48.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from structlog.testing import capture_logs

import kernel.kern.vfs_bio as vfs_bio
from kernel.kern.kern_synch import RWLock
from kernel.kernel import Kernel
from kernel.uvm import uvm_page, uvm_pmemrange, uvm_swap
from kernel.uvm.uvm_page import (
    PG_BUSY,
    PG_CLEAN,
    PQ_ACTIVE,
    PQ_FREE,
    PQ_INACTIVE,
    VmPage,
    atop,
    ptoa,
)
from kernel.uvm.uvm_pmemrange import UVM_PLA_NOWAIT, UVM_PMA_BUSY, UVM_PMA_FREED, UVM_PMA_LINKED

import pdaemon_world as pw
from pdaemon_inactive import (
    _aobj_slot,
    _file_bytes,
    _fill_swap_with_swap_only_pages,
    _load,
    _pageouts,
    _scan,
    _settle,
    _store,
)
from pdaemon_world import PAGE, Holder

if TYPE_CHECKING:
    from conftest import KernelEnv

STOP = 48  # 4 × freetarg on every machine of this file (freetarg 12)


def _inactive(k: Kernel) -> list[VmPage]:
    return list(k.uvm.page_inactive)


# === start position: I0a-I0d ======================================================================


def test_I0d_empty_inactive_queue_does_nothing(run_as_pagedaemon: Any) -> None:
    """I0d: "inactive queue empty | loop never runs; nothing happens" (even below target and
    with a request: the pma finds no page, p = TAILQ_FIRST = NULL, the loop never starts)."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        ballast = await pw.pressure(env, 20)
        pma = pw.linked_pma(k, 0, 1 << 40)
        assert k.uvm.page_inactive.empty()
        d = await _scan(k, pma)
        assert all(v == 0 for v in d.values()), d
        assert pma.pm_flags == UVM_PMA_LINKED | UVM_PMA_BUSY
        pw.pma_done(k, pma)
        await pw.release(env, ballast)

    run_as_pagedaemon(body)


def test_I0c_without_pma_the_scan_starts_at_the_head(run_as_pagedaemon: Any) -> None:
    """I0c: "no pma | start at head"; the loop then follows the queue (I2: "next :=
    successor of p"), so the cluster's slots are handed out in queue order."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 4), free=30)
        pgs = pw.pgs(env, h)
        order = [pgs[2], pgs[0], pgs[3], pgs[1]]
        pw.deactivate(k, order)
        assert _inactive(k) == order
        d = await _scan(k)
        assert d["pdscans"] == 4 and d["pgswapout"] == 4
        slots = [pg.uanon.an_swslot for pg in order]  # type: ignore[union-attr]
        assert slots == [1, 2, 3, 4]
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon(body)


def test_I0a_scan_starts_at_the_first_page_whose_page_number_is_in_the_pma_range(
    run_as_pagedaemon: Any,
) -> None:
    """I0a: "pma given and some inactive page has atop(PA) in [ucr_low, ucr_high) | start at
    the first such page". The pages before it are not looked at; the pages after it are,
    whatever their address (the range only picks the start). The pma is not FREED, so the
    scan goes on although free memory is far above 4 × freetarg."""

    async def body(k: Kernel, env: KernelEnv) -> None:
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

    run_as_pagedaemon(body)


def test_I0a_units_mismatch_page_numbers_are_compared_with_byte_bounds(
    run_as_pagedaemon: Any,
) -> None:
    """Reference §4.5: "Request ranges are byte addresses (`uvm_wait_pla` passes ptoa
    values ...) but the daemon compares `atop(physical address)` (a page number) against
    them", and the port keeps it ("as the C does it"). A request for exactly the bytes of
    page X's frame, as uvm_wait_pla builds it (low = ptoa(f), high = ptoa(f + 1) - 1), does
    not select X: no page matches, the scan starts at the head and forgets the pma (I0b), so
    with free ≥ 4 × freetarg it stops at once. The bytes [f, f + 1) - inside frame 0, nowhere
    near X - do select X."""

    async def body(k: Kernel, env: KernelEnv) -> None:
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

    run_as_pagedaemon(body)


def test_I0a_the_pma_range_is_half_open_a_page_number_equal_to_ucr_high_is_out(
    run_as_pagedaemon: Any,
) -> None:
    """I0a: "atop(PA) in [ucr_low, ucr_high)" (C: "paddr >= pma->pm_constraint.ucr_low &&
    paddr < pma->pm_constraint.ucr_high"). Two pages queued higher frame first, the range
    [lower frame, higher frame): the head's page number equals ucr_high, so the scan starts
    at the second page and the head is never looked at."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 2))
        lo, hi = sorted(pw.pgs(env, h), key=lambda pg: pg.phys_addr)
        pw.deactivate(k, [hi, lo])
        pma = pw.linked_pma(k, atop(lo.phys_addr), atop(hi.phys_addr))
        d = await _scan(k, pma)
        assert d["pdscans"] == 1 and d["pgswapout"] == 1
        assert lo.uanon is not None and lo.uanon.an_swslot == 1
        assert hi.uanon is not None and hi.uanon.an_swslot == 0
        assert hi.pg_flags & PQ_INACTIVE and not hi.pg_flags & PG_BUSY
        pw.pma_done(k, pma)
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon(body)


def test_I0b_pma_that_matches_no_page_starts_at_head_and_is_forgotten(
    run_as_pagedaemon: Any,
) -> None:
    """I0b: "pma given, no match | start at head, **pma forgotten** (treated as NULL)". A
    pma that is not FREED keeps the done test false (I0a); forgotten, the global target
    alone ends the scan: free 40, one 16-page cluster in flight → 40 + 16 ≥ 48, stop, and
    the last 4 pages are never looked at."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 20), free=40)
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
        await pw.release(env, h)

    run_as_pagedaemon(body)


# === per page: I1-I11 =============================================================================


def test_I1a_target_met_leaves_before_the_first_page(run_as_pagedaemon: Any) -> None:
    """I1a: "done test true ... no open cluster | leave the loop"; the done test is "(pma is
    NULL or pma has FREED) and free + paging ≥ 4 × freetarg" (C: "see if we've met our
    target" ... "exit now if no swap-i/o pending")."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 4))
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        assert k.uvmexp.free >= STOP
        d = await _scan(k)
        assert all(v == 0 for v in d.values()), d
        assert _inactive(k) == pgs
        assert not any(pg.pg_flags & (PG_BUSY | PG_CLEAN) for pg in pgs)
        await pw.release(env, h)

    run_as_pagedaemon(body)


def test_I1b_target_met_with_an_open_cluster_flushes_it_and_stops(run_as_pagedaemon: Any) -> None:
    """I1b: "same, cluster open | p := none, next := none → final flush (I14)" (C: "set p
    to null to signal final swap i/o"). Two dirty pages open a cluster; the clean pages after
    them are freed one by one (I7) until free reaches 48: the open cluster of 2 is then
    written and the scan ends, leaving the remaining clean pages alone."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 6), pw.region("anon", 2), free=45)
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
        await pw.release(env, h)

    run_as_pagedaemon(body)


def test_I2_every_page_looked_at_counts_in_pdscans(run_as_pagedaemon: Any) -> None:
    """I2: "otherwise | `pdscans` +1; next := successor of p" - before the owner is even
    try-locked, so a page skipped at I3 or I4 counts as well."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(
            env, "w", pw.region("anon", 1), pw.region("anon", 1), pw.region("anon", 1), free=30
        )
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
        await pw.release(env, h)

    run_as_pagedaemon(body)


def test_I3_owner_lock_held_elsewhere_skips_the_page(run_as_pagedaemon: Any) -> None:
    """I3: "owner try-lock fails | skip (continue)" (C: "if our attempt fails we skip on to
    the next page (no harm done)"). Another CPU holds the amap lock of the first two pages;
    they stay as they were, the third page is paged out."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 2), pw.region("anon", 1), free=30)
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
        await pw.release(env, h)

    run_as_pagedaemon(body)


def test_I4_referenced_page_goes_back_to_the_active_queue(run_as_pagedaemon: Any) -> None:
    """I4: "`pmap_is_referenced(p)` | activate, unlock, `pdreact` +1, skip" (C: "move
    referenced pages back to active queue and skip to next page"). The process reads the
    page through the mapping it kept after deactivation: the MMU sets the referenced bit."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 1), free=30)
        pg = pw.pg(env, h, 0, 0)
        pw.deactivate(k, [pg], unmap=False)
        assert not k.pmap.pmap_is_referenced(pg)
        await pw.run_on(env, h, _load(h.vas[0]))
        assert k.pmap.pmap_is_referenced(pg) and pg.pg_flags & PQ_INACTIVE
        d = await _scan(k)
        assert (d["pdscans"], d["pdreact"]) == (1, 1)
        assert d["pdanscan"] == 0 and d["pgswapout"] == 0
        assert pg.pg_flags & PQ_ACTIVE and not pg.pg_flags & (PG_BUSY | PG_CLEAN)
        assert pw.lock(h, 0).rwl_owner is None  # unlocked again
        await pw.release(env, h)

    run_as_pagedaemon(body)


def test_I4_every_referenced_page_counts_in_pdreact(run_as_pagedaemon: Any) -> None:
    """I4: "`pdreact` +1" for each referenced page: two pages the process read since their
    deactivation, two reactivations."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 2), free=30)
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs, unmap=False)
        for i in range(2):
            await pw.run_on(env, h, _load(h.vas[0] + i * PAGE))
        d = await _scan(k)
        assert (d["pdscans"], d["pdreact"]) == (2, 2) and k.uvmexp.pdreact == 2
        assert all(pg.pg_flags & PQ_ACTIVE for pg in pgs)
        await pw.release(env, h)

    run_as_pagedaemon(body)


def test_I5_busy_page_is_skipped_and_counted_in_pdbusy(run_as_pagedaemon: Any) -> None:
    """I5: "PG_BUSY | unlock, `pdbusy` +1, skip". The pages are busy because the previous
    scan's pageout of them is still in flight (aiodoned has not run yet)."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 4), free=30)
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
        await pw.release(env, h)

    run_as_pagedaemon(body)


def test_I6_object_pages_count_in_pdobscan_anon_pages_in_pdanscan(run_as_pagedaemon: Any) -> None:
    """I6: "`pdobscan` +1 if the page has an object, else `pdanscan` +1" - aobj (shared
    memory) and vnode pages both have an object."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        regions = pw.region("anon", 2), pw.region("shared", 1, "shm"), pw.region("file", 1, "f")
        h = await pw.hold(env, "w", *regions, free=30)
        pw.deactivate(k, pw.pgs(env, h, 0) + pw.pgs(env, h, 1) + pw.pgs(env, h, 2))
        d = await _scan(k)
        assert (d["pdscans"], d["pdanscan"], d["pdobscan"]) == (4, 2, 2)
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon(body)


def test_I7_clean_swap_backed_page_is_unmapped_freed_and_lives_only_in_swap(
    run_as_pagedaemon: Any,
) -> None:
    """I7: "PG_CLEAN | if swap-backed `swpgonly` +1; remove all mappings; free page;
    `pdfreed` +1; anon: assert slot ≠ 0, clear `an_page`" (C: "this page now lives only in
    swap"). An anon page and an aobj page, paged out earlier, mapped again by a read; the
    scan frees both; the next touch reads the same bytes back from their slots."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 1), pw.region("shared", 1, "shm"), free=30)
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
        await pw.release(env, h)

    run_as_pagedaemon(body)


def test_I7_clean_vnode_page_is_freed_without_counting_swpgonly(run_as_pagedaemon: Any) -> None:
    """I7 for an object page that is not swap-backed: "if swap-backed `swpgonly` +1" does
    not apply; the page is freed (its data is in the file)."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("file", 1, "f", touch="r"), free=30)
        pg = pw.pg(env, h, 0, 0)
        assert pg.pg_flags & PG_CLEAN
        pw.deactivate(k, [pg])
        d = await _scan(k)
        assert (d["pdfreed"], d["pdobscan"], d["swpgonly"], d["free"]) == (1, 1, 0, 1)
        assert pg.pg_flags & PQ_FREE and pg.uobject is None
        await pw.release(env, h)

    run_as_pagedaemon(body)


def test_I8_target_met_meanwhile_dirty_page_is_left_alone(run_as_pagedaemon: Any) -> None:
    """I8: "dirty, (no pma or FREED), free + paging **>** 4×freetarg | unlock, skip -
    reachable only if `paging` or the pma flag changed since I1" (C: "skip it if we'll have
    met our free target when all the current pageouts complete"). The request is not FREED
    at I1, so the scan goes on with plenty of free memory; at the page's try-lock another
    CPU frees a page inside the request's range: uvm_wakeup_pla sets UVM_PMA_FREED (the
    request stays linked: the daemon has it BUSY), and the dirty page is skipped."""

    async def body(k: Kernel, env: KernelEnv) -> None:
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
        assert lock.rwl_owner is None
        pw.pma_done(k, pma)
        await pw.release(env, h)

    run_as_pagedaemon(body)


@pytest.mark.parametrize(("free", "skipped"), [(40, True), (32, False)])
def test_I8_counts_the_pageouts_in_flight_toward_the_target(
    run_as_pagedaemon: Any, free: int, skipped: bool
) -> None:
    """I8: "dirty, (no pma or FREED), free + paging **>** 4×freetarg | unlock, skip" with
    pageouts in flight. A DMA request keeps the scan going past the target: 16 dirty pages
    go out in one cluster (paging 16), page Y opens a second cluster, and at page X's
    try-lock another CPU frees a page of the request (FREED). With free 40, 40 + 16 > 48:
    X is skipped, and the loop goes on (C: "continue") to the final flush of Y's cluster.
    With free 32, 32 + 16 = 48 is not more than 48: X joins Y's cluster."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        regions = pw.region("anon", 16), pw.region("anon", 1), pw.region("anon", 1)
        h = await pw.hold(env, "w", *regions, free=free + 1)
        other: list[VmPage] = []  # a page "another CPU" owns (a kernel allocation)
        assert (
            uvm_pmemrange.uvm_pmr_getpages_nowait(k, 1, 0, 0, 1, 0, 1, UVM_PLA_NOWAIT, other) == 0
        )
        (y,), (x,) = pw.pgs(env, h, 1), pw.pgs(env, h, 2)
        pw.deactivate(k, [*pw.pgs(env, h, 0), y, x])
        pma = pw.linked_pma(k, 0, 0xFFFFFFFF)
        seen: list[tuple[int, int]] = []

        def other_cpu_frees(rwl: RWLock) -> None:
            rwl.rwl_hook = None
            seen.append((k.uvmexp.free, k.uvmexp.paging))
            uvm_pmemrange.uvm_pmr_freepageq(k, other)

        pw.lock(h, 2).rwl_hook = other_cpu_frees
        with capture_logs() as logs:
            d = await _scan(k, pma)
        assert seen == [(free, 16)] and pma.pm_flags & UVM_PMA_FREED
        assert d["pdscans"] == 18
        if skipped:
            assert _pageouts(logs) == [(16, "PEND"), (1, "PEND")] and d["pgswapout"] == 17
            assert x.pg_flags & PQ_INACTIVE and not x.pg_flags & PG_BUSY
            assert x.uanon is not None and x.uanon.an_swslot == 0
        else:
            assert _pageouts(logs) == [(16, "PEND"), (2, "PEND")] and d["pgswapout"] == 18
        assert y.pg_flags & PG_BUSY  # written: the final flush
        pw.pma_done(k, pma)
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon(body)


def test_I9_swap_full_reactivates_dirty_swap_backed_pages(run_as_pagedaemon: Any) -> None:
    """I9: "dirty, swap-backed, `uvm_swapisfull()` | dirtyreacts +1, activate, unlock, skip
    (no counter)" (C: "this page is dirty, but we can't page it out since all pages in swap
    are only in swap. reactivate it"). uvm_swapisfull in 2022: swpgonly == swpages."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 16), pw.region("anon", 3), free=20)
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
        await pw.release(env, h)

    run_as_pagedaemon(body, swap_pages=16)


def test_I9_a_dirty_file_page_is_written_to_its_file_even_when_swap_is_full(
    run_as_pagedaemon: Any,
) -> None:
    """I9 is for swap-backed pages only ("if ((p->pg_flags & PQ_SWAPBACKED) &&
    uvm_swapisfull())"): with swap full, a dirty page of a mapped file is not reactivated
    but written to its file (I11, I15: a synchronous vnode put)."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 16), pw.region("file", 1, "f"), free=20)
        await _fill_swap_with_swap_only_pages(env, h, 0)
        assert uvm_swap.uvm_swapisfull(k)
        pg = pw.pg(env, h, 1, 0)
        pw.deactivate(k, [pg])
        d = await _scan(k)
        assert (d["pdscans"], d["pdobscan"], d["pgswapout"], d["pdpageouts"]) == (1, 1, 1, 1)
        assert pg.pg_flags & PQ_INACTIVE and pg.pg_flags & PG_CLEAN
        assert _file_bytes(env, "f", 0) == pw.data("w", 1, 0)
        await pw.release(env, h)

    run_as_pagedaemon(body, swap_pages=16)


def test_I9_sixteen_dirty_reactivations_end_the_pass(run_as_pagedaemon: Any) -> None:
    """I9 with I1a: "UVMPD_NUMDIRTYREACTS is how many dirty pages the pagedaemon will
    reactivate in a pass thru the inactive list when swap is full"; at dirtyreacts == 16 the
    loop is left (I1a) even though free memory is below target."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 16), pw.region("anon", 18), free=12)
        await _fill_swap_with_swap_only_pages(env, h, 0)
        dirty = pw.pgs(env, h, 1)
        pw.deactivate(k, dirty)
        assert k.uvmexp.free == 28
        d = await _scan(k)
        assert d["pdscans"] == 16 and d["pdanscan"] == 16
        assert all(pg.pg_flags & PQ_ACTIVE for pg in dirty[:16])
        assert _inactive(k) == dirty[16:]
        await pw.release(env, h)

    run_as_pagedaemon(body, swap_pages=16)


def test_I9_with_no_swap_device_swap_counts_as_full(run_as_pagedaemon: Any) -> None:
    """I9 on a machine without swap: uvm_swapisfull() is "swpgonly == swpages", and 0 == 0,
    so dirty anon pages are reactivated (at most 16 a pass) and never reach I11/I12a. (The
    reference's §4 item 8 says they take I11/I12a on every pass; in 2022 they do not.)"""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 3), free=30)
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        assert k.uvmexp.swpages == 0 and uvm_swap.uvm_swapisfull(k)
        d = await _scan(k)
        assert (d["pdanscan"], d["pgswapout"], d["pdpageouts"]) == (3, 0, 0)
        assert all(pg.pg_flags & PQ_ACTIVE for pg in pgs)
        await pw.release(env, h)

    run_as_pagedaemon(body, swap_pages=0)


async def _redirty(env: KernelEnv, h: Holder, r: int) -> None:
    """The process writes every page of region ``r`` again (after it was paged out and is
    still resident): soft faults, pages active and modified; deactivation clears PG_CLEAN."""
    for i in range(h.regions[r][1]):
        await pw.run_on(env, h, _store(h.vas[r] + i * PAGE, pw.data("again", r, i)))


def test_I10_swap_slots_all_in_use_the_page_gives_up_its_own_slot(run_as_pagedaemon: Any) -> None:
    """I10: "dirty, swap-backed, `swpginuse == swpages` | drop the page's own slot now (falls
    through)" (C: "free any swap allocated to the page so that other pages can be paged
    out"). Every slot belongs to a resident page that was written again: each page frees its
    slot, which is then the only one uvm_swap_alloc(16, lessok) can find: one-page clusters."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 16), free=22)
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
        await pw.release(env, h)

    run_as_pagedaemon(body, swap_pages=16)


def test_I11_dirty_page_is_busied_write_protected_and_counted_in_pgswapout(
    run_as_pagedaemon: Any,
) -> None:
    """I11: "remember swap_backed; set PG_BUSY; write-protect all mappings; `pgswapout` +1"
    (C: "we first mark the page busy so that no one else will touch the page. we write
    protect all the mappings of the page so that no one touches it while it is in I/O")."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 1), free=30)
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
        await pw.release(env, h)

    run_as_pagedaemon(body)


# === the stop target (reference §4.3) =============================================================


@pytest.mark.parametrize(("free", "paged_out"), [(31, 32), (32, 16)])
def test_scan_starts_pageouts_until_free_plus_paging_reaches_four_times_freetarg(
    run_as_pagedaemon: Any, free: int, paged_out: int
) -> None:
    """Reference §4.3: "The target free + paging ≥ 4×freetarg pages out up to four times the
    shortfall" (kept by the port: "Everything else, including the 4 x freetarg stop target
    ... is as the C does it"). freetarg is 12 here, so the scan goes on until free + paging
    ≥ 48 (a 1 × freetarg target would not scan at all): with free 32 one 16-page cluster in
    flight reaches 48 exactly; with free 31 it takes a second one."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "w", pw.region("anon", 40), free=free)
        assert free >= k.uvmexp.freetarg
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        d = await _scan(k)
        assert (d["pgswapout"], d["paging"], d["pdscans"]) == (paged_out, paged_out, paged_out)
        assert k.uvmexp.free + k.uvmexp.paging >= 4 * k.uvmexp.freetarg
        assert k.uvmexp.free + k.uvmexp.paging - 16 < 4 * k.uvmexp.freetarg
        assert all(not pg.pg_flags & PG_BUSY for pg in pgs[paged_out:])
        await _settle(env)
        await pw.release(env, h)

    run_as_pagedaemon(body)


def test_scan_stop_target_does_not_count_the_buffer_cache_deficit_as_free(
    run_as_pagedaemon: Any,
) -> None:
    """The done test of I1 uses "free = uvmexp.free - BUFPAGES_DEFICIT" ("see if we've met
    our target"): pages the buffer cache lacks below its floor are not really free. The cache
    is set 4 pages below its floor (bufadjust, as sysctl kern.bufcachepercent does); with
    free 40 the scan frees clean file pages (I7) until 40 + n - 4 >= 48: 12 of them, not 8."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        bc = k.bufcache
        assert bc is not None
        vfs_bio.bufadjust(k, bc.buflowpages - 4)
        assert vfs_bio.BUFPAGES_DEFICIT(k) == 4 and vfs_bio.BUFPAGES_INACT(k) == 0
        h = await pw.hold(env, "r", pw.region("file", 20, "f.dat", "r"), free=40)
        files = pw.pgs(env, h)
        pw.deactivate(k, files)
        d = await _scan(k)
        assert (d["pdfreed"], d["pdscans"], d["pgswapout"]) == (12, 12, 0)
        assert k.uvmexp.free - vfs_bio.BUFPAGES_DEFICIT(k) == STOP
        assert all(pg.pg_flags & PQ_INACTIVE for pg in files[12:])
        await pw.release(env, h)

    run_as_pagedaemon(body, bufcachepercent=10)
