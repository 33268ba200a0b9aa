"""uvm_pdaemon_1_154.py: aiodoned, the owner locks, the swap and constraint helpers, the
iterator, hibernate.

Catalogue ids (docs/pdaemon-1.154.md): N-D1 N-D2 N-D3 N-D3' N-D4 N-D5 N-D5' (§2.4,
uvm_aiodone_daemon, lines 311-355); N-L1 N-L2 N-L3 N-L4 (§2.5, uvmpd_trylockowner, 362-383);
N-X1 N-X2 N-X3 N-X4 N-K1 N-K2 (§2.7, uvmpd_dropswap 496-513, uvmpd_match_constraint 519-530);
N-R1 N-R2 N-R3 N-R4 (§2.8, uvmpd_iterator 532-553); N-H1 N-H2 N-H3 N-H3' N-H4 (§2.11,
uvmpd_drop / uvmpd_hibernate 961-1004). Primes are spelled ``prime``.

Machines boot with the 1.154 daemon (``pdaemon="1.154"``). The aiodone rows run its
aiodoned with a stand-in asleep on the page daemon's channel (``pw.daemonless``, then
``pw.machine_without_pagedaemon``, which starts the booted daemon's aiodoned), or the test
body as the daemon (``run_as_pagedaemon154``). N-R1 and N-R2 cannot happen with the callers
1.154 has; their tests call the iterator as no caller does, said so there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from structlog.testing import capture_logs

import kernel.uvm.uvm_pdaemon_1_154 as pd154
from kernel.kern.kern_synch import RW_WRITE, chan, rw_enter, rw_exit, wakeup
from kernel.kernel import Kernel
from kernel.sys.queue import TailQ
from kernel.sys.systm import Panic
from kernel.uvm import uvm_aobj, uvm_page
from kernel.uvm.uvm import UvmConstraintRange, no_constraint
from kernel.uvm.uvm_page import (
    PG_BUSY,
    PG_CLEAN,
    PQ_ACTIVE,
    PQ_FREE,
    PQ_INACTIVE,
    PQ_ITER,
    VmPage,
    atop,
    ptoa,
)
from kernel.uvm.uvm_swap import SWSLOT_BAD

import pdaemon_world as pw
from pdaemon154 import _scan_inactive
from pdaemon_passes import _asleep, _free_pages, _kernel_pages, _sleeper
from pdaemon_swap import _anon_round_trip, _aobj_round_trip, _async_write, _busy, _writes
from pdaemon_world import MS

if TYPE_CHECKING:
    from conftest import KernelEnv


def _batches(logs: list[Any]) -> list[Any]:
    return [e for e in logs if e["event"] == "uvm_aiodone_daemon.batch"]


# === uvm_aiodone_daemon: N-D1 - N-D5' (lines 311-355) ============================================


def test_N_D1_aiodoned_sleeps_while_no_buf_is_done(kenv: Any) -> None:
    """N-D1 (lines 325-331): "no finished buf | sleep on &uvm.aiodoned; then take the whole
    list": a wakeup with nothing queued sends it back to sleep without a batch."""
    env = kenv(npages=64, config=pw.config(pdaemon="1.154"))

    async def body(k: Kernel, env: KernelEnv) -> None:
        await env.sleep(MS)
        ad = k.uvm.aiodoned_proc
        assert k.pdaemon is pd154
        assert ad is not None and (ad.p_stat, ad.p_wmesg) == ("sleep", "aiodoned")
        with capture_logs() as logs:
            wakeup(k, chan(k.uvm, "aiodoned"))
            await env.sleep(MS)
        assert ad.p_wmesg == "aiodoned" and _batches(logs) == []

    env.run(body)


def test_N_D3_N_D3prime_N_D4_only_the_daemons_bufs_come_off_paging(run_as_pagedaemon154: Any) -> None:
    """N-D3 (lines 337-340): "buf is B_PDAEMON | paging -= its pages, before b_iodone"; N-D3':
    an async swap write by another thread was never counted and is not taken off; N-D4
    (lines 341-347): "each buf | b_iodone(bp), sched_pause": both bufs are finished (their
    pages clean, unbusied)."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("anon", 20))
        pgs = pw.pgs(env, h, 0)
        pw.deactivate(k, pgs)
        await _scan_inactive(k, 16)  # the daemon's cluster of 16, in paging
        assert k.uvmexp.paging == 16
        pd = k.uvm.pagedaemon_proc
        k.uvm.pagedaemon_proc = None  # another thread writes the other four
        await _async_write(k, [pg for pg in pgs if not pg.pg_flags & PG_BUSY])
        k.uvm.pagedaemon_proc = pd
        with capture_logs() as logs:
            await pw.until(env, lambda: not any(pg.pg_flags & PG_BUSY for pg in pgs), "done")
            await env.sleep(MS)
        batches = _batches(logs)
        assert sum(b["nbufs"] for b in batches) == 2 and sum(b["npages"] for b in batches) == 20
        assert k.uvmexp.paging == 0  # 16 off, not 20
        assert all(pg.pg_flags & PG_CLEAN for pg in pgs)
        await pw.release(env, h)

    run_as_pagedaemon154(body, npages=64, swap_pages=64)


def test_N_D4_every_buf_of_a_batch_is_finished(run_as_pagedaemon154: Any) -> None:
    """N-D1 (line 330) and N-D4 (lines 341-347): aiodoned takes the whole list of finished
    bufs and calls b_iodone on each of them, following the list. Three async writes of two
    pages complete at once; with a quantum of 1 ns aiodoned pays each buf's CPU time at its
    sched_pause (line 346), and the second and third complete meanwhile: a batch of one buf,
    then a batch of two, and every page is clean and unbusied."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("anon", 6))
        pgs = pw.pgs(env, h, 0)
        pw.deactivate(k, pgs)
        k.config.costs.yield_ns = 1
        pd = k.uvm.pagedaemon_proc
        k.uvm.pagedaemon_proc = None  # writes by another thread: not counted in paging
        for i in range(0, 6, 2):
            await _async_write(k, pgs[i : i + 2])
        k.uvm.pagedaemon_proc = pd
        with capture_logs() as logs:
            await pw.until(env, lambda: not any(pg.pg_flags & PG_BUSY for pg in pgs), "done")
            await env.sleep(MS)
        assert [(b["nbufs"], b["npages"]) for b in _batches(logs)] == [(1, 2), (2, 4)]
        assert all(pg.pg_flags & PG_CLEAN for pg in pgs)
        await pw.release(env, h)

    run_as_pagedaemon154(body, npages=64, swap_pages=64)


async def _d5_scenario(env: KernelEnv, free: int) -> tuple[bool, bool, int]:
    """A stand-in asleep on the daemon's channel and a free-memory sleeper; ``free`` pages
    free; one async write completes. Returns (daemon woken, free sleeper woken, the free
    count the batch sampled)."""
    k = env.k
    pw.machine_without_pagedaemon(k)
    pd154.uvmpd_tune(k)
    pd = _sleeper(k, chan(k.uvm, "pagedaemon"), "pgdaemon")
    fs = _sleeper(k, chan(k.uvmexp, "free"), "freewait")
    h = await pw.hold(env, "h", pw.region("anon", 4))
    held = _kernel_pages(k, k.uvmexp.free - free)
    await _async_write(k, pw.pgs(env, h, 0))
    with capture_logs() as logs:
        await pw.until(env, lambda: pd.woken_at is not None or fs.woken_at is not None, "wakeup")
        await env.sleep(MS)
    (batch,) = _batches(logs)
    woken = (not _asleep(k, pd), not _asleep(k, fs), batch["free_sampled"])
    _free_pages(k, held)
    await pw.release(env, h)
    return woken


def test_N_D2_N_D5_sampled_free_at_the_reserve_wakes_the_daemon(kenv: Any) -> None:
    """N-D2 (line 335): "always | sample free before finishing any buf"; N-D5 (lines
    350-353): "sampled free <= reserve_kernel | wake the daemon" (not the free sleepers)."""
    env = pw.daemonless(kenv, npages=64, swap_pages=64, pdaemon="1.154")
    out: list[tuple[bool, bool, int]] = []

    async def body(k: Kernel, env: KernelEnv) -> None:
        out.append(await _d5_scenario(env, k.uvmexp.reserve_kernel))

    env.run(body)
    assert out == [(True, False, 8)]


def test_N_D5prime_sampled_free_above_the_reserve_wakes_the_free_sleepers(kenv: Any) -> None:
    """N-D5': "otherwise | wake &uvmexp.free" (not the daemon)."""
    env = pw.daemonless(kenv, npages=64, swap_pages=64, pdaemon="1.154")
    out: list[tuple[bool, bool, int]] = []

    async def body(k: Kernel, env: KernelEnv) -> None:
        out.append(await _d5_scenario(env, k.uvmexp.reserve_kernel + 1))

    env.run(body)
    assert out == [(False, True, 9)]


# === uvmpd_trylockowner: N-L1 - N-L4 (lines 362-383) ==============================================


def test_N_L1_N_L4_object_pages_give_their_object_lock(kenv: Any) -> None:
    """N-L1 (lines 369-370): "page has an object | its object lock"; N-L4 (line 382): "lock
    taken | the lock, held" - a vnode page and an aobj page."""
    env = kenv(npages=64, config=pw.config(pdaemon="1.154"))

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("file", 1, "f", touch="r"), pw.region("shared", 1, "s"))
        for r in (0, 1):
            slock = pd154.uvmpd_trylockowner(pw.pg(env, h, r, 0))
            assert slock is pw.obj(h, r).vmobjlock and slock.rwl_owner is env.testproc
            rw_exit(slock)
        await pw.release(env, h)

    env.run(body)


def test_N_L2_anon_pages_give_their_anon_lock(kenv: Any) -> None:
    """N-L2 (lines 371-376): "anon page | its anon lock (asserts an anon)": the amap's lock."""
    env = kenv(npages=64, config=pw.config(pdaemon="1.154"))

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("anon", 1))
        slock = pd154.uvmpd_trylockowner(pw.pg(env, h, 0, 0))
        assert slock is pw.anon(env, h, 0, 0).an_lock is pw.lock(h, 0)
        assert slock.rwl_owner is env.testproc
        rw_exit(slock)
        await pw.release(env, h)

    env.run(body)


def test_N_L3_owner_locked_elsewhere_gives_None(kenv: Any) -> None:
    """N-L3 (lines 378-380): "try-lock fails | NULL"; the lock stays with its holder."""
    env = kenv(npages=64, config=pw.config(pdaemon="1.154"))

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("anon", 1), pw.region("file", 1, "f", touch="r"))
        cpu = pw.other_cpu(k)
        for r in (0, 1):
            lock = pw.lock(h, r)
            await pw.run_on(env, cpu, pw.enter(k, lock))
            assert pd154.uvmpd_trylockowner(pw.pg(env, h, r, 0)) is None
            assert lock.rwl_owner is cpu.proc
            await pw.run_on(env, cpu, pw.exit_(lock))
        await pw.release(env, h)

    env.run(body)


# === uvmpd_dropswap: N-X1 - N-X4 (lines 496-513) ==================================================


async def _dropswap(k: Kernel, lock: Any, pg: VmPage) -> int:
    await rw_enter(k, lock, RW_WRITE)
    r = pd154.uvmpd_dropswap(k, pg)
    rw_exit(lock)
    return r


def test_N_X1_anon_page_with_a_slot_gives_it_back_and_says_so(kenv: Any) -> None:
    """N-X1 (lines 502-505): "anon page with a slot (SWSLOT_BAD included) | free it, zero it,
    return 1" - a real slot, then the bad-slot marker (uvm_swap_free ignores it)."""
    env = kenv(npages=64, config=pw.config(pdaemon="1.154"))

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("anon", 2))
        (slot,) = await _anon_round_trip(env, h, 0, range(1))
        pg, anon = pw.pg(env, h, 0, 0), pw.anon(env, h, 0, 0)
        inuse = k.uvmexp.swpginuse
        assert await _dropswap(k, pw.lock(h, 0), pg) == 1
        assert anon.an_swslot == 0 and pw.slot_free(k, slot) and k.uvmexp.swpginuse == inuse - 1
        bad = pw.anon(env, h, 0, 1)
        bad.an_swslot = SWSLOT_BAD
        assert await _dropswap(k, pw.lock(h, 0), pw.pg(env, h, 0, 1)) == 1
        assert bad.an_swslot == 0 and k.uvmexp.swpginuse == inuse - 1
        await pw.release(env, h)

    env.run(body)


def test_N_X2_N_X3_aobj_page_returns_1_only_if_it_had_a_slot(kenv: Any) -> None:
    """N-X2 (lines 506-509): "aobj page with a slot | uao_dropswap, return 1"; N-X3 (506-512):
    "aobj page without a slot | return 0"."""
    env = kenv(npages=64, config=pw.config(pdaemon="1.154"))

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("shared", 2, "shm"))
        (slot,) = await _aobj_round_trip(env, h, 0, range(1))
        lock = pw.lock(h, 0)
        assert await _dropswap(k, lock, pw.pg(env, h, 0, 0)) == 1
        assert uvm_aobj.uao_find_swslot(k, pw.obj(h, 0), 0) == 0 and pw.slot_free(k, slot)
        assert await _dropswap(k, lock, pw.pg(env, h, 0, 1)) == 0
        await pw.release(env, h)

    env.run(body)


def test_N_X4_slotless_anon_and_vnode_pages_return_0(kenv: Any) -> None:
    """N-X4 (line 512): "anon without slot, vnode page | return 0", nothing changed."""
    env = kenv(npages=64, config=pw.config(pdaemon="1.154"))

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("file", 1, "f", touch="r"), pw.region("anon", 1))
        inuse = k.uvmexp.swpginuse
        for r in (0, 1):
            assert await _dropswap(k, pw.lock(h, r), pw.pg(env, h, r, 0)) == 0
        assert k.uvmexp.swpginuse == inuse
        await pw.release(env, h)

    env.run(body)


# === uvmpd_match_constraint: N-K1, N-K2 (lines 519-530) ===========================================


def test_N_K1_every_page_matches_no_constraint(kenv: Any) -> None:
    """N-K1 (lines 525-527): "atop(pa) in [low, high) | 1": any page against no_constraint,
    and a page against a range of page numbers that holds it."""
    env = kenv(npages=64, config=pw.config(pdaemon="1.154"))

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("anon", 2))
        for pg in pw.pgs(env, h):
            f = atop(pg.phys_addr)
            assert pd154.uvmpd_match_constraint(pg, no_constraint()) == 1
            assert pd154.uvmpd_match_constraint(pg, UvmConstraintRange(f, f + 1)) == 1
        await pw.release(env, h)

    env.run(body)


def test_N_K2_a_requesters_byte_range_matches_no_page_number(kenv: Any) -> None:
    """N-K2 (line 529): "otherwise | 0": a requester for frame f >= 1 asks for the bytes
    [4096 f, 4096 f + 4095] (uvm_wait_pla's ptoa); on a machine under 4096 pages no page
    number lies there (reference §4 item 5, kept as upstream has it), not even f's own page."""
    env = kenv(npages=64, config=pw.config(pdaemon="1.154"))

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("anon", 3))
        pgs = pw.pgs(env, h)
        f = atop(pgs[1].phys_addr)
        assert f >= 1
        byte_range = UvmConstraintRange(ptoa(f), ptoa(f + 1) - 1)
        assert [pd154.uvmpd_match_constraint(pg, byte_range) for pg in pgs] == [0, 0, 0]
        await pw.release(env, h)

    env.run(body)


# === uvmpd_iterator: N-R1 - N-R4 (lines 532-553) ==================================================


def _marker() -> VmPage:
    return VmPage(phys_addr=0, pg_flags=PQ_ITER)


def test_N_R1_contrived_null_page_returns_NULL(run_as_pagedaemon154: Any) -> None:
    """N-R1 (lines 540-541): "p == NULL | NULL" ("p is null to signal final swap i/o", a 1.133
    leftover). Unreachable: both scans only step from a page. Contrived: called with None;
    the marker is not moved."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("anon", 2))
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        q = k.uvm.page_inactive
        it = _marker()
        uvm_page.uvm_lock_pageq(k)
        q.insert_after(pgs[0], it)
        assert pd154.uvmpd_iterator(k, q, None, it) is None
        assert q.next(pgs[0]) is it
        q.remove(it)
        uvm_page.uvm_unlock_pageq(k)
        await pw.release(env, h)

    run_as_pagedaemon154(body)


class _OtherScanner(TailQ[VmPage]):
    """PORT (test): the inactive queue as a second scanner on another CPU sees it: its marker
    sits right behind ours; reading our successor, it finishes its step and takes its marker
    off (so the re-read of N-R2 finds the page). Contrived: 1.154 has one scanner per queue."""

    def __init__(self, q: TailQ[VmPage], ours: VmPage, theirs: VmPage) -> None:
        self.q, self.ours, self.theirs, self.reads = q, ours, theirs, 0

    def next(self, elm: VmPage) -> VmPage | None:
        nxt = self.q.next(elm)
        self.reads += 1
        if elm is self.ours and nxt is self.theirs:
            self.q.remove(self.theirs)  # the other CPU moves on
        return nxt

    def remove(self, elm: VmPage) -> None:
        self.q.remove(elm)

    def insert_after(self, listelm: VmPage, elm: VmPage) -> None:
        self.q.insert_after(listelm, elm)


def test_N_R2_contrived_second_marker_behind_ours_is_read_past(run_as_pagedaemon154: Any) -> None:
    """N-R2 (lines 543-545): "the marker's successor is another marker | read the successor
    again". Unreachable: one scanner per queue (and with another marker staying behind ours
    the loop would read the same element forever, §2.8). Contrived: another CPU's scanner has
    its marker right behind ours and moves on while we read (_OtherScanner): the second read
    finds the page, and our marker moves after it (N-R3)."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("anon", 2))
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        q = k.uvm.page_inactive
        ours, theirs = _marker(), _marker()
        uvm_page.uvm_lock_pageq(k)
        q.insert_after(pgs[0], ours)
        q.insert_after(ours, theirs)
        racy = _OtherScanner(q, ours, theirs)
        assert pd154.uvmpd_iterator(k, racy, pgs[0], ours) is pgs[1]
        assert racy.reads == 2 and list(q) == [pgs[0], pgs[1], ours]
        q.remove(ours)
        uvm_page.uvm_unlock_pageq(k)
        await pw.release(env, h)

    run_as_pagedaemon154(body)


def test_N_R3_N_R4_marker_moves_past_each_page_and_stays_at_the_end(
    run_as_pagedaemon154: Any,
) -> None:
    """N-R3 (lines 547-550): "a successor | move the marker after it; return it"; N-R4 (line
    552): "end of queue | NULL; the marker stays"."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("anon", 2))
        pgs = pw.pgs(env, h)
        pw.deactivate(k, pgs)
        q = k.uvm.page_inactive
        it = _marker()
        uvm_page.uvm_lock_pageq(k)
        q.insert_after(pgs[0], it)
        assert pd154.uvmpd_iterator(k, q, pgs[0], it) is pgs[1]
        assert list(q) == [pgs[0], pgs[1], it]
        assert pd154.uvmpd_iterator(k, q, pgs[1], it) is None
        assert list(q) == [pgs[0], pgs[1], it]
        q.remove(it)
        uvm_page.uvm_unlock_pageq(k)
        await pw.release(env, h)

    run_as_pagedaemon154(body)


# === uvmpd_drop / uvmpd_hibernate: N-H1 - N-H4 (lines 961-1004, HIBERNATE) ========================


def test_uvmpd_drop_and_hibernate_refuse_without_HIBERNATE(kenv: Any) -> None:
    """uvmpd_drop and uvmpd_hibernate exist only with HIBERNATE; the port refuses otherwise."""
    env = kenv(npages=64, config=pw.config(pdaemon="1.154"))

    async def body(k: Kernel, env: KernelEnv) -> None:
        with pytest.raises(Panic, match="HIBERNATE"):
            await pd154.uvmpd_drop(k, k.uvm.page_active)
        with pytest.raises(Panic, match="HIBERNATE"):
            await pd154.uvmpd_hibernate(k)

    env.run(body)


def test_N_H1_N_H2_N_H3_N_H4_hibernate_frees_clean_idle_object_pages(kenv: Any) -> None:
    """N-H1 (969-970): "anon page or no object | skip"; N-H2 (972-973): "busy | skip"; N-H3
    (975-995): "clean object page | take the object lock; still clean: aobj swpgonly +1,
    unmap, free" (without the page queue lock, which 1.105 took); N-H4 (1000-1004): "drop
    inactive, then active". Dirty object pages stay."""
    env = kenv(npages=64, config=pw.config(pdaemon="1.154", hibernate=True))

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("file", 5, "f", touch="r"),
                          pw.region("shared", 2, "shm"), pw.region("anon", 2))  # fmt: skip
        await _aobj_round_trip(env, h, 1, range(1))  # aobj page 0: clean, with a slot
        await _anon_round_trip(env, h, 2, range(1))  # anon page 0: clean, with a slot
        await pw.run_on(env, h, _writes(h, 0, [2]))
        f = pw.pgs(env, h, 0)
        pw.deactivate(k, f[:3])  # 0, 1 clean inactive; 2 inactive and dirty
        await _busy(k, pw.lock(h, 0), f[4], True)
        shm, anons = pw.pgs(env, h, 1), pw.pgs(env, h, 2)
        held_during_free: list[bool] = []
        real = uvm_page.uvm_pagefree

        def spy(k: Kernel, p: VmPage) -> None:
            held_during_free.append(k.uvm.pageqlock.mtx_owner is not None)
            real(k, p)

        swpgonly = k.uvmexp.swpgonly
        pd154.uvm_pagefree = spy  # type: ignore[attr-defined]
        try:
            await pd154.uvmpd_hibernate(k)
        finally:
            pd154.uvm_pagefree = real  # type: ignore[attr-defined]
        freed = [pg.pg_flags & PQ_FREE != 0 for pg in [*f, *shm, *anons]]
        assert freed == [True, True, False, True, False, True, False, False, False]
        assert held_during_free == [False] * 4 and k.uvmexp.swpgonly == swpgonly + 1
        await _busy(k, pw.lock(h, 0), f[4], False)
        await pw.release(env, h)

    env.run(body)


def test_N_H3_clean_aobj_pages_each_count_in_swpgonly(kenv: Any) -> None:
    """N-H3 (lines 981-983): "still clean: aobj swpgonly +1" for each page: two clean aobj pages
    with slots, dropped from the active queue, add 2 to swpgonly (their data is now only in
    swap)."""
    env = kenv(npages=64, config=pw.config(pdaemon="1.154", hibernate=True))

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("shared", 2, "shm"))
        await _aobj_round_trip(env, h, 0, range(2))
        pgs = pw.pgs(env, h, 0)
        swpgonly = k.uvmexp.swpgonly
        await pd154.uvmpd_drop(k, k.uvm.page_active)
        assert all(pg.pg_flags & PQ_FREE for pg in pgs)
        assert k.uvmexp.swpgonly == swpgonly + 2
        await pw.release(env, h)

    env.run(body)


def test_N_H3_a_dirty_object_page_is_passed_over_without_its_lock(kenv: Any) -> None:
    """N-H3 (line 975) not taken: whether the page is clean is asked before its object lock is
    taken, so a dirty page's lock is never taken: here another CPU holds it, and uvmpd_drop
    returns at once (no virtual time passes), the page still inactive and dirty."""
    env = kenv(npages=64, config=pw.config(pdaemon="1.154", hibernate=True))

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("file", 1, "f", touch="w"))
        pg = pw.pg(env, h, 0, 0)
        pw.deactivate(k, [pg])
        assert not pg.pg_flags & PG_CLEAN
        lock = pw.lock(h, 0)
        cpu = pw.other_cpu(k)
        await pw.run_on(env, cpu, pw.enter(k, lock))
        t0 = k.sched.now
        await pd154.uvmpd_drop(k, k.uvm.page_inactive)
        assert k.sched.now == t0 and lock.rwl_owner is cpu.proc
        assert pg.pg_flags & PQ_INACTIVE and not pg.pg_flags & PG_CLEAN
        await pw.run_on(env, cpu, pw.exit_(lock))
        await pw.release(env, h)

    env.run(body)


def test_N_H3prime_page_dirtied_while_the_daemon_waits_for_the_lock_stays(kenv: Any) -> None:
    """N-H3' (line 984): "no longer clean once locked | nothing": another CPU holding the
    object lock dirties the page before it lets the daemon have the lock."""
    env = kenv(npages=64, config=pw.config(pdaemon="1.154", hibernate=True))

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", pw.region("file", 1, "f", touch="r"))
        pg, lock = await pw.dirtied_under_its_lock(env, h)
        t0 = k.sched.now
        await pd154.uvmpd_drop(k, k.uvm.page_active)
        assert k.sched.now - t0 >= MS
        assert pg.pg_flags & PQ_ACTIVE and lock.rwl_owner is None
        await pw.release(env, h)

    env.run(body)
