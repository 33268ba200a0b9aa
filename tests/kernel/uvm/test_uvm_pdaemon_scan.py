"""uvm_pdaemon.py: uvmpd_scan and its active walk: one test per row S0-S4' and A1-A6.

Catalogue ids (docs/uvm-reference.md §2.2): S0 S1 S2 S3 S4 S4' and A1 A2 A3 A4a A4b A4c A5
A5' A6 (primes are spelled ``prime`` in test names), and where the inactive scan starts for
a request (reference §4.5). The inactive scan's own rows (I0a-I18e) are in
test_uvm_pdaemon_inactive_*.py, the loop (M*) in test_uvm_pdaemon_loop.py.

The machine is real: RAM, MMU, swap disk, files. Pages belong to user processes that map memory,
touch it and then sleep until the test releases them (``Holder``); "another CPU" is a kernel
thread running the jobs the test posts (``OtherCpu``), or an ``RWLock.rwl_hook`` for something
that must happen at the instant of a try-lock. The machine boots with ``start=False`` and the
test body plays the page daemon (the ``run_as_pagedaemon`` fixture: it is
``uvm.pagedaemon_proc`` with the thresholds uvm_pageout would set) and calls ``uvmpd_scan`` with
the page queues locked (``_scan``). It sets ``uvmexp.inactarg`` as the loop's M6 would leave it
for the pass, which is how a test picks inactive_shortage (S3).

Thresholds on every machine under 270 pages (uvmpd_tune, reference §1.1): freemin 9,
freetarg 12, and the seed's stop target free + paging >= 48.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import kernel.kern.vfs_bio as vfs_bio
import kernel.uvm.uvm_pdaemon as uvm_pdaemon
from kernel.kern.kern_synch import RWLock
from kernel.kernel import Kernel
from kernel.sys.mman import PROT_READ
from kernel.sys.proc import curproc
from kernel.uvm import uvm_aobj, uvm_page
from kernel.uvm.uvm import dma_constraint
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
from kernel.uvm.uvm_pmemrange import UVM_PMA_FREED, UvmPmalloc

import pdaemon_world as pw
from pdaemon_passes import _free_pages, _kernel_pages
from pdaemon_swap import _anon_round_trip, _aobj_round_trip, _busy, _writes
from pdaemon_world import FREETARG, Holder

if TYPE_CHECKING:
    from conftest import KernelEnv

SCAN_COUNTERS = (
    "pdrevs", "pdswout", "pdscans", "pdfreed", "pddeact", "pdpageouts", "swpginuse", "swpgonly",
    "free", "inactive", "active",
)  # fmt: skip


async def _scan(k: Kernel, pma: UvmPmalloc | None = None) -> dict[str, int]:
    """uvmpd_scan as uvm_pageout calls it (M8): page queues locked around it. Returns how much
    each counter of SCAN_COUNTERS moved."""
    before = {c: getattr(k.uvmexp, c) for c in SCAN_COUNTERS}
    uvm_page.uvm_lock_pageq(k)
    await uvm_pdaemon.uvmpd_scan(k, pma)
    assert k.uvm.pageqlock.mtx_owner is curproc()  # "called with pageq's locked", kept so
    uvm_page.uvm_unlock_pageq(k)
    return {c: getattr(k.uvmexp, c) - v for c, v in before.items()}



def _mapped(k: Kernel, pg: VmPage) -> bool:
    return bool(k.pmap.pmap_page_mapped(pg))



# === uvmpd_scan: S0-S4' (seed lines 877-944) ======================================================


def test_S0_every_scan_counts_a_revolution(run_as_pagedaemon: Any) -> None:
    """S0: "always | `pdrevs` +1", even when there is nothing to do."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        assert (await _scan(k))["pdrevs"] == 1
        assert (await _scan(k))["pdrevs"] == 1
        assert k.uvmexp.pdrevs == 2

    run_as_pagedaemon(body, npages=64, swap_pages=16)


def test_S1_swapout_threads_below_target_with_pmap_collect(run_as_pagedaemon: Any) -> None:
    """S1: "`__HAVE_PMAP_COLLECT` and `free − DEFICIT < freetarg` | `pdswout` +1; unlock pages;
    `uvm_swapout_threads`; re-lock" ("swap out some processes if we are below our free
    target")."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("anon", 54, None, "w"))
        assert k.uvmexp.free == 10
        d = await _scan(k)
        assert d["pdswout"] == 1 and k.uvmexp.pdswout == 1
        await pw.release(env, h)

    run_as_pagedaemon(body, npages=64, swap_pages=16, have_pmap_collect=True)


def test_S1_no_swapout_at_the_free_target_with_pmap_collect(run_as_pagedaemon: Any) -> None:
    """S1 not taken: free >= freetarg, even with __HAVE_PMAP_COLLECT."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("anon", 52, None, "w"))
        assert k.uvmexp.free == FREETARG
        assert (await _scan(k))["pdswout"] == 0
        await pw.release(env, h)

    run_as_pagedaemon(body, npages=64, swap_pages=16, have_pmap_collect=True)


def test_S1_counts_the_buffer_cache_deficit_and_every_swapout(run_as_pagedaemon: Any) -> None:
    """S1: "`__HAVE_PMAP_COLLECT` and `free − DEFICIT < freetarg` | `pdswout` +1" (C: "get
    current "free" page count" as "uvmexp.free - BUFPAGES_DEFICIT"): free 14 >= freetarg,
    but the buffer cache is 4 pages below its floor (bufadjust, as sysctl
    kern.bufcachepercent does), so only 10 count: each of two scans swaps out, pdswout 2."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        bc = k.bufcache
        assert bc is not None
        vfs_bio.bufadjust(k, bc.buflowpages - 4)
        h = await pw.hold(env, "h", ("anon", 20, None, "w"), free=14)
        assert vfs_bio.BUFPAGES_DEFICIT(k) == 4 and k.uvmexp.free == 14
        k.uvmexp.inactarg = 0
        assert (await _scan(k))["pdswout"] == 1
        assert (await _scan(k))["pdswout"] == 1
        assert k.uvmexp.pdswout == 2
        await pw.release(env, h)

    run_as_pagedaemon(body, npages=128, swap_pages=16, bufcachepercent=10, have_pmap_collect=True)


def test_S1_absent_by_default_as_on_amd64(run_as_pagedaemon: Any) -> None:
    """S1: "**Absent on amd64.**" (reference §1.13: "On amd64 the whole call is compiled out of
    the daemon since 1.105"): below target, pdswout stays 0."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        assert k.config.have_pmap_collect is False
        h = await pw.hold(env, "h", ("anon", 54, None, "w"))
        assert k.uvmexp.free == 10
        assert (await _scan(k))["pdswout"] == 0
        await pw.release(env, h)

    run_as_pagedaemon(body, npages=64, swap_pages=16)


def test_S2_the_inactive_scan_gets_the_pma(run_as_pagedaemon: Any) -> None:
    """S2: "run uvmpd_scan_inactive(pma, inactive queue)". With the free target met
    (free + paging >= 48), the scan without a request stops at once (I1a); with a request not
    yet FREED it goes on and frees the head page, which marks the request FREED, and stops."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("file", 2, "f.dat", "r"), ("anon", 6, None, "w"))
        files = pw.pgs(env, h, 0)
        pw.deactivate(k, files)
        k.uvmexp.inactarg = 1  # no inactive shortage, before or after one page is freed
        assert k.uvmexp.free == 56
        d = await _scan(k)
        assert (d["pdscans"], d["pdfreed"]) == (0, 0)
        dma = dma_constraint()
        pma = pw.linked_pma(k, dma.ucr_low, dma.ucr_high)
        d = await _scan(k, pma)
        pw.pma_done(k, pma)
        assert (d["pdscans"], d["pdfreed"]) == (1, 1) and pma.pm_flags & UVM_PMA_FREED
        assert files[0].pg_flags & PQ_FREE and files[1].pg_flags & PQ_INACTIVE
        await pw.release(env, h)

    run_as_pagedaemon(body, npages=64, swap_pages=16)


def test_scan_start_dma_pma_matches_every_page_of_the_machine(run_as_pagedaemon: Any) -> None:
    """Reference §4.5: "Request ranges are byte addresses ... but the daemon compares
    `atop(physical address)` (a page number) against them, so almost every page "matches" a
    DMA range" (the port mirrors it: module docstring). A DMA request (bytes 0 .. 0xffffffff)
    matches every page of the machine, so uvmpd_scan's inactive scan starts at whichever page
    heads the queue with the request kept: with the free target met, only the request keeps
    it going, it frees that head page (the request is then FREED) and stops."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        dma = dma_constraint()
        assert all(dma.ucr_low <= atop(ptoa(f)) < dma.ucr_high for f in range(64))
        h = await pw.hold(env, "h", ("file", 3, "f.dat", "r"), ("anon", 4, None, "w"))
        files = sorted(pw.pgs(env, h, 0), key=lambda pg: -pg.phys_addr)
        pw.deactivate(k, files)  # highest frame first
        k.uvmexp.inactarg = 0
        for head in files:
            assert k.uvm.page_inactive.first() is head
            assert k.uvmexp.free >= 4 * FREETARG  # the target is met
            pma = pw.linked_pma(k, dma.ucr_low, dma.ucr_high)
            d = await _scan(k, pma)
            pw.pma_done(k, pma)
            assert (d["pdscans"], d["pdfreed"]) == (1, 1) and pma.pm_flags & UVM_PMA_FREED
            assert head.pg_flags & PQ_FREE
        await pw.release(env, h)

    run_as_pagedaemon(body, npages=64, swap_pages=16)


def test_scan_start_byte_range_of_one_frame_matches_no_page_number(run_as_pagedaemon: Any) -> None:
    """Reference §4.5, the other side: a request for exactly the bytes of the frame holding
    a clean inactive page, ptoa(f) .. ptoa(f + 1) - 1, matches no page *number* (all < 64),
    so the scan starts at the head with the request forgotten (I0b) and, the free target
    being met, frees nothing — not even the page the request asked for."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("file", 2, "f.dat", "r"), ("anon", 4, None, "w"))
        files = pw.pgs(env, h, 0)
        pw.deactivate(k, files)
        k.uvmexp.inactarg = 2
        f = atop(files[1].phys_addr)
        assert f >= 1 and k.uvmexp.free >= 4 * FREETARG
        pma = pw.linked_pma(k, ptoa(f), ptoa(f + 1) - 1)
        d = await _scan(k, pma)
        pw.pma_done(k, pma)
        assert d["pdscans"] == 0 and d["pdfreed"] == 0 and not pma.pm_flags & UVM_PMA_FREED
        assert files[1].pg_flags & PQ_INACTIVE
        await pw.release(env, h)

    run_as_pagedaemon(body, npages=64, swap_pages=16)


def test_S3_inactive_shortage_counts_clean_buffer_pages_as_inactive(run_as_pagedaemon: Any) -> None:
    """S3: "inactive_shortage = inactarg − inactive − INACT": with inactarg 20, 4 inactive
    pages and BUFPAGES_INACT clean buffer pages above the floor, the walk deactivates
    20 - 4 - INACT pages. (Free is high, so the inactive scan stops at once, I1a.)"""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("anon", 30, None, "w"))
        pgs = pw.pgs(env, h, 0)
        pw.deactivate(k, pgs[:4])
        inact = vfs_bio.BUFPAGES_INACT(k)
        assert inact > 0 and k.uvmexp.free >= 4 * FREETARG
        k.uvmexp.inactarg = 20
        d = await _scan(k)
        assert d["pdscans"] == 0 and d["pddeact"] == 20 - 4 - inact
        assert all(pg.pg_flags & PQ_INACTIVE for pg in pgs[: 20 - inact])
        assert all(pg.pg_flags & PQ_ACTIVE for pg in pgs[20 - inact :])
        await pw.release(env, h)

    run_as_pagedaemon(body, npages=128, swap_pages=16, bufcachepercent=10)


async def _swap_in_use(env: KernelEnv, anon_pages: int, round_trips: int = 16) -> Holder:
    """Reference §1.14 on a 16-slot swap: a file page heads the active queue, then
    ``anon_pages`` anon pages; ``round_trips`` of them (0 ..) were paged out and read back, so
    they are active, PG_CLEAN, and own a slot each. No page is only in swap."""
    k = env.k
    h = await pw.hold(env, "h", ("file", 1, "f.dat", "r"), ("anon", anon_pages, None, "w"))
    await _anon_round_trip(env, h, 1, range(round_trips))
    assert k.uvmexp.swpages == 16 and k.uvmexp.swpginuse == round_trips
    assert k.uvmexp.swpgonly == 0
    k.uvmexp.inactarg = 0  # no inactive shortage: the walk runs for swap only
    return h


def _trylocks(lock: RWLock) -> list[int]:
    calls: list[int] = []
    lock.rwl_hook = lambda rwl: calls.append(1)
    return calls


@pytest.mark.parametrize(("anon_pages", "shortage"), [(53, 2), (52, 1)])
def test_S4_swap_shortage_when_swap_slots_all_in_use(
    run_as_pagedaemon: Any, anon_pages: int, shortage: int
) -> None:
    """S4: "`free − DEFICIT < freetarg` and `swpginuse == swpages` and not `uvm_swapisfull()`
    and pages_freed == 0 | swap_shortage = freetarg − (free − DEFICIT)" ("detect if we're not
    going to be able to page anything out until we free some swap resources from active
    pages"): exactly that many slots are taken from active pages."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await _swap_in_use(env, anon_pages)
        assert k.uvmexp.free == FREETARG - shortage
        d = await _scan(k)
        assert d["pdfreed"] == 0 and d["swpginuse"] == -shortage
        lost = [i for i in range(16) if pw.anon(env, h, 1, i).an_swslot == 0]
        assert lost == list(range(shortage))
        await pw.release(env, h)

    run_as_pagedaemon(body, npages=64, swap_pages=16)


def test_S4_the_swap_shortage_counts_the_buffer_cache_deficit(run_as_pagedaemon: Any) -> None:
    """S4: "swap_shortage = freetarg − (free − DEFICIT)": free 12 = freetarg, but the buffer
    cache is 2 pages below its floor (bufadjust, as sysctl kern.bufcachepercent does), so
    free counts 10: a shortage of 2, and two slots are taken from active pages."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        bc = k.bufcache
        assert bc is not None
        vfs_bio.bufadjust(k, bc.buflowpages - 2)
        h = await _swap_in_use(env, 40)
        held = _kernel_pages(k, k.uvmexp.free - FREETARG)
        assert k.uvmexp.free == FREETARG and vfs_bio.BUFPAGES_DEFICIT(k) == 2
        d = await _scan(k)
        assert d["pdfreed"] == 0 and d["swpginuse"] == -2
        lost = [i for i in range(16) if pw.anon(env, h, 1, i).an_swslot == 0]
        assert lost == [0, 1]
        _free_pages(k, held)
        await pw.release(env, h)

    run_as_pagedaemon(body, npages=128, swap_pages=16, bufcachepercent=10)


def test_S4_pages_freed_counts_this_scan_only(run_as_pagedaemon: Any) -> None:
    """S4's "pages_freed == 0" is about this scan ("pages_freed = uvmexp.pdfreed -
    pages_freed"): after a scan that freed a clean page (I7), the next one frees nothing,
    every slot is in use, free 11 < freetarg: a swap shortage of 1 although pdfreed is 1."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await _swap_in_use(env, 53)
        pw.deactivate(k, [pw.pg(env, h, 1, 15)])  # clean: paged in, never written since
        assert (await _scan(k))["pdfreed"] == 1 and k.uvmexp.pdfreed == 1
        assert k.uvmexp.free == 11 and k.uvmexp.swpginuse == k.uvmexp.swpages
        d = await _scan(k)
        assert d["pdfreed"] == 0 and d["swpginuse"] == -1
        assert pw.anon(env, h, 1, 0).an_swslot == 0
        await pw.release(env, h)

    run_as_pagedaemon(body, npages=64, swap_pages=16)


def test_S4prime_no_swap_shortage_while_a_swap_slot_is_free(run_as_pagedaemon: Any) -> None:
    """S4': "otherwise | swap_shortage = 0": 15 of 16 slots in use (swpginuse != swpages):
    no slot is taken, and with no inactive shortage the active walk does not even start."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await _swap_in_use(env, 53, round_trips=15)
        assert k.uvmexp.free < FREETARG
        calls = _trylocks(pw.lock(h, 1))
        d = await _scan(k)
        assert d["swpginuse"] == 0 and calls == []
        assert all(pw.anon(env, h, 1, i).an_swslot for i in range(15))
        await pw.release(env, h)

    run_as_pagedaemon(body, npages=64, swap_pages=16)


def test_S4prime_no_swap_shortage_when_swap_is_full(run_as_pagedaemon: Any) -> None:
    """S4': swap full (`uvm_swapisfull()`: swpgonly == swpages, every slot holds data that is
    only in swap): nothing to gain from active pages; the walk does not start."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("anon", 54, None, "w"), ("anon", 16, None, ""))
        for i in range(16):
            await env.page_out(pw.anon(env, h, 0, i))
        await pw.run_on(env, h, _writes(h, 1, range(16)))
        assert k.uvmexp.swpgonly == k.uvmexp.swpginuse == k.uvmexp.swpages == 16
        assert k.uvmexp.free == 10
        k.uvmexp.inactarg = 0
        calls0, calls1 = _trylocks(pw.lock(h, 0)), _trylocks(pw.lock(h, 1))
        d = await _scan(k)
        assert d["swpginuse"] == 0 and calls0 == calls1 == []
        await pw.release(env, h)

    run_as_pagedaemon(body, npages=64, swap_pages=16)


def test_S4prime_no_swap_shortage_when_the_inactive_scan_freed_pages(
    run_as_pagedaemon: Any,
) -> None:
    """S4': "pages_freed == 0" fails: the inactive scan freed a clean page (I7), so no slot
    is taken from the active pages although free < freetarg and every slot is in use."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await _swap_in_use(env, 53)
        pw.deactivate(k, [pw.pg(env, h, 1, 15)])  # clean: paged in, never written since
        d = await _scan(k)
        assert d["pdfreed"] == 1 and d["swpgonly"] == 1 and k.uvmexp.free == 11 < FREETARG
        assert d["swpginuse"] == 0
        assert all(pw.anon(env, h, 1, i).an_swslot for i in range(16))
        await pw.release(env, h)

    run_as_pagedaemon(body, npages=64, swap_pages=16)


def test_S4prime_no_swap_shortage_at_the_free_target(run_as_pagedaemon: Any) -> None:
    """S4': free - DEFICIT = freetarg: no shortage, every slot stays."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await _swap_in_use(env, 51)
        assert k.uvmexp.free == FREETARG
        calls = _trylocks(pw.lock(h, 1))
        d = await _scan(k)
        assert d["swpginuse"] == 0 and calls == []
        await pw.release(env, h)

    run_as_pagedaemon(body, npages=64, swap_pages=16)


# === the active walk: A1-A6 (seed lines 946-998) ==================================================


async def _two_owners(env: KernelEnv, first: int = 1, second: int = 10) -> Holder:
    """Two anon regions, each with its own amap lock; region 0's pages head the active
    queue. Free memory is plentiful (no swap shortage)."""
    h = await pw.hold(env, "h", ("anon", first, None, "w"), ("anon", second, None, "w"))
    q = list(env.k.uvm.page_active)
    assert q[:first] == pw.pgs(env, h, 0) and q[first:] == pw.pgs(env, h, 1)
    return h


def test_A1_busy_active_page_is_skipped_without_locking_its_owner(run_as_pagedaemon: Any) -> None:
    """A1: "PG_BUSY (checked without the owner lock) | skip"."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await _two_owners(env)
        busy = pw.pg(env, h, 0, 0)
        await _busy(k, pw.lock(h, 0), busy, True)
        calls = _trylocks(pw.lock(h, 0))
        k.uvmexp.inactarg = 3
        d = await _scan(k)
        assert calls == [] and busy.pg_flags & PQ_ACTIVE
        assert d["pddeact"] == 3
        assert all(pg.pg_flags & PQ_INACTIVE for pg in pw.pgs(env, h, 1)[:3])
        pw.lock(h, 0).rwl_hook = None
        await _busy(k, pw.lock(h, 0), busy, False)
        await pw.release(env, h)

    run_as_pagedaemon(body, npages=64, swap_pages=16)


def test_A2_page_whose_owner_lock_is_held_elsewhere_is_skipped(run_as_pagedaemon: Any) -> None:
    """A2: "owner try-lock fails | skip" ("lock the page's owner.")."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await _two_owners(env, first=2)
        cpu = pw.other_cpu(k)
        await pw.run_on(env, cpu, pw.enter(k, pw.lock(h, 0)))
        calls = _trylocks(pw.lock(h, 0))
        k.uvmexp.inactarg = 3
        d = await _scan(k)
        assert len(calls) == 2 and pw.lock(h, 0).rwl_owner is cpu.proc
        assert all(pg.pg_flags & PQ_ACTIVE for pg in pw.pgs(env, h, 0))
        assert d["pddeact"] == 3
        assert all(pg.pg_flags & PQ_INACTIVE for pg in pw.pgs(env, h, 1)[:3])
        pw.lock(h, 0).rwl_hook = None
        await pw.run_on(env, cpu, pw.exit_(pw.lock(h, 0)))
        await pw.release(env, h)

    run_as_pagedaemon(body, npages=64, swap_pages=16)


def test_A3_page_busied_at_the_lock_instant_is_unlocked_and_skipped(run_as_pagedaemon: Any) -> None:
    """A3: "PG_BUSY after locking | unlock, skip" ("skip this page if it's busy."). Another
    CPU busies the page between the unlocked check (A1) and the try-lock."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await _two_owners(env)
        pg = pw.pg(env, h, 0, 0)
        lock = pw.lock(h, 0)

        def busied_now(rwl: RWLock) -> None:
            rwl.rwl_hook = None
            pg.pg_flags |= PG_BUSY
            k.pmap.pmap_page_protect(pg, PROT_READ)

        lock.rwl_hook = busied_now
        k.uvmexp.inactarg = 3
        d = await _scan(k)
        assert lock.rwl_hook is None  # the try-lock happened (and succeeded) ...
        assert lock.rwl_owner is None  # ... and was released
        assert pg.pg_flags & PQ_ACTIVE and pg.pg_flags & PG_BUSY
        assert d["pddeact"] == 3
        assert all(p.pg_flags & PQ_INACTIVE for p in pw.pgs(env, h, 1)[:3])
        await _busy(k, lock, pg, False)
        await pw.release(env, h)

    run_as_pagedaemon(body, npages=64, swap_pages=16)


def test_A4a_swap_shortage_takes_the_slot_of_an_active_anon_page(run_as_pagedaemon: Any) -> None:
    """A4a: "swap_shortage > 0, PQ_ANON, slot ≠ 0 | free slot, `an_swslot` = 0, clear PG_CLEAN,
    swap_shortage −1" ("if there's a shortage of swap, free any swap allocated to this page
    so that other pages can be paged out")."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await _swap_in_use(env, 53)
        slots = [pw.anon(env, h, 1, i).an_swslot for i in range(16)]
        d = await _scan(k)
        assert d["swpginuse"] == -2
        for i in range(16):
            anon = pw.anon(env, h, 1, i)
            pg = anon.an_page
            assert pg is not None
            if i < 2:
                assert anon.an_swslot == 0 and pw.slot_free(k, slots[i])
                assert not pg.pg_flags & PG_CLEAN
            else:
                assert anon.an_swslot == slots[i] and pg.pg_flags & PG_CLEAN
        await pw.release(env, h)

    run_as_pagedaemon(body, npages=64, swap_pages=16)


def _assert_a4b_took_two_slots(k: Kernel, env: KernelEnv, h: Any, slots: list[int]) -> None:
    """A4b's effect on pages 0-15 of the region: 0 and 1 lost their slots (freed) and are
    dirty again; the others keep theirs and stay clean."""
    uobj = pw.obj(h, 0)
    for i in range(16):
        pg = pw.pg(env, h, 0, i)
        if i < 2:
            assert uvm_aobj.uao_find_swslot(k, uobj, i) == 0 and pw.slot_free(k, slots[i])
            assert not pg.pg_flags & PG_CLEAN
        else:
            assert uvm_aobj.uao_find_swslot(k, uobj, i) == slots[i]
            assert pg.pg_flags & PG_CLEAN


def test_A4b_swap_shortage_takes_the_slot_of_an_active_aobj_page(run_as_pagedaemon: Any) -> None:
    """A4b: "swap_shortage > 0, PQ_AOBJ, aobj slot ≠ 0 | clear it in the aobj, free slot,
    clear PG_CLEAN, swap_shortage −1"."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("shared", 20, "shm", "w"), ("anon", 34, None, "w"))
        slots = await _aobj_round_trip(env, h, 0, range(16))
        assert k.uvmexp.swpginuse == 16 and k.uvmexp.free == 10
        k.uvmexp.inactarg = 0
        d = await _scan(k)
        assert d["swpginuse"] == -2
        _assert_a4b_took_two_slots(k, env, h, slots)
        await pw.release(env, h)

    run_as_pagedaemon(body, npages=64, swap_pages=16)


def test_A4b_swap_shortage_takes_the_slot_of_a_page_of_a_large_aobj(run_as_pagedaemon: Any) -> None:
    """A4b for an aobj of more than 64 pages, whose slots live in a hash of 16-slot elements
    (uvm_aobj.c's UAO_USES_SWHASH): "clear it in the aobj, free slot, clear PG_CLEAN,
    swap_shortage −1". Pages 0-19 of an 80-page shared region are resident; 0-15 own slots
    (one element); the walk takes those of pages 0 and 1 out of the hash."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("shared", 80, "shm", ""), ("anon", 34, None, "w"))
        await pw.run_on(env, h, _writes(h, 0, range(20)))
        slots = await _aobj_round_trip(env, h, 0, range(16))
        assert k.uvmexp.swpginuse == 16 and k.uvmexp.free == 10
        pool = k.uao_swhash_elt_pool
        nout = pool.pr_nout
        k.uvmexp.inactarg = 0
        d = await _scan(k)
        assert d["swpginuse"] == -2 and pool.pr_nout == nout  # 14 slots keep the element
        _assert_a4b_took_two_slots(k, env, h, slots)
        await pw.release(env, h)

    run_as_pagedaemon(body, npages=64, swap_pages=16)


def test_A4c_page_without_a_slot_does_not_count_against_the_swap_shortage(
    run_as_pagedaemon: Any,
) -> None:
    """A4c: "swap_shortage > 0, no slot (or vnode page) | nothing". The walk meets the file
    page and 37 slotless anon pages before the 16 with slots; the shortage of 2 still takes
    two slots, and the slotless pages keep their flags (the file page stays PG_CLEAN)."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await _swap_in_use(env, 53)
        head = list(k.uvm.page_active)[:38]
        assert head[0] is pw.pg(env, h, 0, 0) and all(pg.uanon is None or
            pg.uanon.an_swslot == 0 for pg in head)  # fmt: skip
        flags = [pg.pg_flags for pg in head]
        d = await _scan(k)
        assert d["swpginuse"] == -2
        assert [pg.pg_flags for pg in head] == flags and head[0].pg_flags & PG_CLEAN
        await pw.release(env, h)

    run_as_pagedaemon(body, npages=64, swap_pages=16)


def test_A5_deactivates_inactive_shortage_pages_from_the_head_unmapping_them(
    run_as_pagedaemon: Any,
) -> None:
    """A5: "inactive_shortage > 0 | remove all mappings (PROT_NONE), deactivate, `pddeact` +1,
    inactive_shortage −1" ("deactivate this page if there's a shortage of inactive pages")."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("anon", 20, None, "w"))
        pgs = pw.pgs(env, h, 0)
        k.uvmexp.inactarg = 5
        d = await _scan(k)
        assert d["pddeact"] == 5 and (d["inactive"], d["active"]) == (5, -5)
        assert list(k.uvm.page_inactive) == pgs[:5]
        assert not any(_mapped(k, pg) for pg in pgs[:5])
        assert all(_mapped(k, pg) and pg.pg_flags & PQ_ACTIVE for pg in pgs[5:])
        await pw.release(env, h)

    run_as_pagedaemon(body, npages=64, swap_pages=16)


def test_A5prime_page_stays_active_and_mapped_without_inactive_shortage(
    run_as_pagedaemon: Any,
) -> None:
    """A5': "inactive_shortage ≤ 0 | page stays active": the walk runs for the swap shortage
    only; the pages that lose their slot stay on the active queue, mapped."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await _swap_in_use(env, 53)
        d = await _scan(k)
        assert d["pddeact"] == 0 and d["swpginuse"] == -2
        for i in range(2):
            pg = pw.pg(env, h, 1, i)
            assert pw.anon(env, h, 1, i).an_swslot == 0
            assert pg.pg_flags & PQ_ACTIVE and _mapped(k, pg)
        await pw.release(env, h)

    run_as_pagedaemon(body, npages=64, swap_pages=16)


def test_A6_owner_lock_is_released_after_each_page(run_as_pagedaemon: Any) -> None:
    """A6: "always | unlock owner" ("we're done with this page."): at every try-lock of the
    shared amap lock it is free again, and it is free after the walk."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("anon", 20, None, "w"))
        lock = pw.lock(h, 0)
        states: list[bool] = []
        lock.rwl_hook = lambda rwl: states.append(rwl.rwl_owner is None)
        k.uvmexp.inactarg = 5
        await _scan(k)
        lock.rwl_hook = None
        assert states == [True] * 5 and lock.rwl_owner is None
        await pw.release(env, h)

    run_as_pagedaemon(body, npages=64, swap_pages=16)
