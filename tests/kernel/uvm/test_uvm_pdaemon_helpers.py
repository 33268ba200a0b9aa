"""uvm_pdaemon.py: the helpers around the scans (reference §2.4): aiodoned, owner locks, swap.

Catalogue ids (docs/uvm-reference.md §2.4): D1 D2 D3 (uvm_aiodone_daemon, seed lines
329-369); uvmpd_trylockowner and uvmpd_dropswap (seed lines 376-416); uvmpd_drop /
uvmpd_hibernate (seed lines 1002-1052, HIBERNATE). The loop, the scans and uvm_wait are in
the other test_uvm_pdaemon_*.py files. Each test quotes the row or the C comment it pins.

The machine is real: RAM, MMU, swap disk, files. Pages belong to user processes that map memory,
touch it and then sleep until the test releases them (``Holder``); "another CPU" is a kernel
thread running the jobs the test posts (``OtherCpu``), or an ``RWLock.rwl_hook`` for something
that must happen at the instant of a try-lock. D2 runs the scan by hand (the
``run_as_pagedaemon`` fixture: the test body is the page daemon); D3 puts a stand-in asleep on
the daemon's channel on a machine without the page daemon; the other tests boot the machine
normally.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from structlog.testing import capture_logs

import kernel.uvm.uvm_pdaemon as uvm_pdaemon
from emu.process import UserProcess
from kernel.kern.kern_synch import RW_WRITE, chan, rw_enter, rw_exit, wakeup
from kernel.kernel import Kernel
from kernel.sys.systm import Panic
from kernel.uvm import uvm_aobj, uvm_page
from kernel.uvm.uvm_page import PG_BUSY, PG_CLEAN, PG_RELEASED, PQ_ACTIVE, PQ_FREE

import pdaemon_world as pw
from pdaemon_passes import _asleep, _free_pages, _kernel_pages, _sleeper
from pdaemon_swap import _anon_round_trip, _aobj_round_trip, _async_write, _busy, _writes
from pdaemon_world import MS, PAGE

if TYPE_CHECKING:
    from conftest import KernelEnv


# === uvm_aiodone_daemon: D1-D3 (seed lines 329-369) ===============================================


def test_D1_aiodoned_sleeps_while_no_buf_is_done(kenv: Any) -> None:
    """D1: "queue empty → sleep" ("Otherwise sleep while avoiding races"): a wakeup with an
    empty queue sends it back to sleep without a batch."""
    env = kenv(npages=64, config=pw.config())

    async def body(k: Kernel, env: KernelEnv) -> None:
        await env.sleep(MS)
        ad = k.uvm.aiodoned_proc
        assert ad is not None and (ad.p_stat, ad.p_wmesg) == ("sleep", "aiodoned")
        with capture_logs() as logs:
            wakeup(k, chan(k.uvm, "aiodoned"))
            await env.sleep(MS)
        assert ad.p_wmesg == "aiodoned" and k.uvm.aio_done.empty()
        assert [e for e in logs if e["event"] == "uvm_aiodone_daemon.batch"] == []

    env.run(body)


def test_D2_only_B_PDAEMON_bufs_take_their_pages_off_paging(run_as_pagedaemon: Any) -> None:
    """D2: "B_PDAEMON → paging −= pages" ("if (bp->b_flags & B_PDAEMON) uvmexp.paging -=
    bp->b_bufsize >> PAGE_SHIFT"): the daemon's cluster (I16 counted it in paging) comes off;
    another thread's async write was never counted and is not taken off."""

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("anon", 20, None, "w"))
        pgs = pw.pgs(env, h, 0)
        pw.deactivate(k, pgs)
        uvm_page.uvm_lock_pageq(k)
        await uvm_pdaemon.uvmpd_scan_inactive(k, None, k.uvm.page_inactive)
        uvm_page.uvm_unlock_pageq(k)
        assert k.uvmexp.paging == 16  # one cluster of 16 in flight, B_PDAEMON
        k.uvm.pagedaemon_proc = None  # another thread writes the other four
        await _async_write(k, [pg for pg in pgs if not pg.pg_flags & PG_BUSY])
        with capture_logs() as logs:
            await pw.until(env, lambda: not any(pg.pg_flags & PG_BUSY for pg in pgs), "completions")
            await env.sleep(MS)
        batches = [e for e in logs if e["event"] == "uvm_aiodone_daemon.batch"]
        assert sum(e["npages"] for e in batches) == 20 and sum(e["nbufs"] for e in batches) == 2
        assert k.uvmexp.paging == 0  # 16 off, not 20
        await pw.release(env, h)

    run_as_pagedaemon(body, npages=64, swap_pages=64)


async def _d3_scenario(env: KernelEnv, free: int) -> tuple[bool, bool]:
    """A stand-in for the page daemon asleep on its channel and a free-memory sleeper; memory
    held so that ``free`` pages are free; one async write completes. Returns whether each was
    woken (daemon, free sleeper) by the completion."""
    k = env.k
    pw.machine_without_pagedaemon(k)
    uvm_page.uvm_lock_pageq(k)
    uvm_pdaemon.uvmpd_tune(k)
    uvm_page.uvm_unlock_pageq(k)
    pd = _sleeper(k, chan(k.uvm, "pagedaemon"), "pgdaemon")
    fs = _sleeper(k, chan(k.uvmexp, "free"), "freewait")
    h = await pw.hold(env, "h", ("anon", 4, None, "w"))
    held = _kernel_pages(k, k.uvmexp.free - free)
    assert k.uvmexp.free == free
    await _async_write(k, pw.pgs(env, h, 0))
    assert pd.woken_at is None and fs.woken_at is None
    with capture_logs() as logs:
        await pw.until(env, lambda: pd.woken_at is not None or fs.woken_at is not None, "a wakeup")
        await env.sleep(MS)
    (batch,) = [e for e in logs if e["event"] == "uvm_aiodone_daemon.batch"]
    assert batch["free_sampled"] == free and batch["nbufs"] == 1
    assert k.uvmexp.free == free  # completing the write freed nothing
    woken = (not _asleep(k, pd), not _asleep(k, fs))
    _free_pages(k, held)
    await pw.release(env, h)
    return woken


def test_D3_completion_with_sampled_free_at_the_reserve_wakes_the_daemon(kenv: Any) -> None:
    """D3: "sampled free ≤ reserve_kernel → wake daemon" ("if (free <= uvmexp.reserve_kernel)
    wakeup(&uvm.pagedaemon)"), and not the free sleepers."""
    env = pw.daemonless(kenv, npages=64, swap_pages=64)
    out: list[tuple[bool, bool]] = []

    async def body(k: Kernel, env: KernelEnv) -> None:
        out.append(await _d3_scenario(env, k.uvmexp.reserve_kernel))

    env.run(body)
    assert out == [(True, False)]


def test_D3_completion_with_sampled_free_above_the_reserve_wakes_the_free_sleepers(
    kenv: Any,
) -> None:
    """D3: "else wake free sleepers" ("wakeup(&uvmexp.free)"), and not the daemon."""
    env = pw.daemonless(kenv, npages=64, swap_pages=64)
    out: list[tuple[bool, bool]] = []

    async def body(k: Kernel, env: KernelEnv) -> None:
        out.append(await _d3_scenario(env, k.uvmexp.reserve_kernel + 1))

    env.run(body)
    assert out == [(False, True)]


def test_D3_decides_on_the_free_count_sampled_before_the_bufs_complete(kenv: Any) -> None:
    """D3 with reference §4.13 ("The wake-up target is chosen from the free count read before
    completing the bufs"): the process unmaps its pages while their pageout is in flight, so
    the completion frees them (PG_RELEASED, §1.10) and free climbs from 8 to 12 — yet the
    daemon is woken, as the sample said 8 <= reserve_kernel."""
    env = pw.daemonless(kenv, npages=64, swap_pages=64)

    async def body(k: Kernel, env: KernelEnv) -> None:
        pw.machine_without_pagedaemon(k)
        pd = _sleeper(k, chan(k.uvm, "pagedaemon"), "pgdaemon")
        h = await pw.hold(env, "h", ("anon", 4, None, "w"))
        pgs = pw.pgs(env, h, 0)
        held = _kernel_pages(k, k.uvmexp.free - 8)
        await _async_write(k, pgs)

        released: list[bool] = []

        async def unmap(p: UserProcess) -> None:
            await p.munmap(h.vas[0], 4 * PAGE)
            released.append(all(pg.pg_flags & PG_BUSY and pg.pg_flags & PG_RELEASED for pg in pgs))

        with capture_logs() as logs:
            await pw.run_on(env, h, unmap)
            assert released == [True]  # unmapped before the completion: left to it to free
            await pw.until(env, lambda: k.uvm.aio_done.empty() and k.uvmexp.free == 12, "done")
            await env.sleep(MS)
        (batch,) = [e for e in logs if e["event"] == "uvm_aiodone_daemon.batch"]
        assert batch["free_sampled"] == 8 and all(pg.pg_flags & PQ_FREE for pg in pgs)
        assert not _asleep(k, pd)
        assert k.uvmexp.swpginuse == 0  # the released anons gave their slots back
        _free_pages(k, held)
        await pw.release(env, h)

    env.run(body)


# === uvmpd_trylockowner, uvmpd_dropswap (seed lines 376-416) ======================================


def test_trylockowner_takes_the_object_lock_of_an_object_page(kenv: Any) -> None:
    """uvmpd_trylockowner: "if (uobj != NULL) slock = uobj->vmobjlock", write try-lock,
    "return the locked rwlock on success"."""
    env = kenv(npages=64, config=pw.config())

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("file", 1, "f.dat", "r"), ("shared", 1, "shm", "w"))
        for r in (0, 1):
            pg = pw.pg(env, h, r, 0)
            slock = uvm_pdaemon.uvmpd_trylockowner(pg)
            assert slock is pw.obj(h, r).vmobjlock and slock.rwl_owner is env.testproc
            rw_exit(slock)
        await pw.release(env, h)

    env.run(body)


def test_trylockowner_takes_the_anon_lock_of_an_anon_page(kenv: Any) -> None:
    """uvmpd_trylockowner: "else { struct vm_anon *anon = pg->uanon; KASSERT(anon != NULL);
    slock = anon->an_lock; }" (the amap's lock)."""
    env = kenv(npages=64, config=pw.config())

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("anon", 1, None, "w"))
        slock = uvm_pdaemon.uvmpd_trylockowner(pw.pg(env, h, 0, 0))
        assert slock is pw.anon(env, h, 0, 0).an_lock is pw.lock(h, 0)
        assert slock.rwl_owner is env.testproc
        rw_exit(slock)
        await pw.release(env, h)

    env.run(body)


def test_trylockowner_returns_None_when_the_owner_is_locked_elsewhere(kenv: Any) -> None:
    """uvmpd_trylockowner: "if (rw_enter(slock, RW_WRITE|RW_NOSLEEP)) return NULL" — the
    lock stays with whoever holds it."""
    env = kenv(npages=64, config=pw.config())

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("anon", 1, None, "w"), ("file", 1, "f.dat", "r"))
        cpu = pw.other_cpu(k)
        for r in (0, 1):
            lock = pw.lock(h, r)
            await pw.run_on(env, cpu, pw.enter(k, lock))
            assert uvm_pdaemon.uvmpd_trylockowner(pw.pg(env, h, r, 0)) is None
            assert lock.rwl_owner is cpu.proc
            await pw.run_on(env, cpu, pw.exit_(lock))
        await pw.release(env, h)

    env.run(body)


def test_dropswap_frees_the_slot_of_an_anon_page(kenv: Any) -> None:
    """uvmpd_dropswap: "if ((pg->pg_flags & PQ_ANON) && anon->an_swslot) {
    uvm_swap_free(anon->an_swslot, 1); anon->an_swslot = 0; }". The page was paged in, then
    written and deactivated (dirty: the case of I10/I12)."""
    env = kenv(npages=64, config=pw.config())

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("anon", 2, None, "w"))
        (slot,) = await _anon_round_trip(env, h, 0, range(1))
        await pw.run_on(env, h, _writes(h, 0, [0]))
        pg = pw.pg(env, h, 0, 0)
        pw.deactivate(k, [pg])
        assert not pg.pg_flags & PG_CLEAN
        inuse = k.uvmexp.swpginuse
        lock = pw.lock(h, 0)
        await rw_enter(k, lock, RW_WRITE)
        uvm_pdaemon.uvmpd_dropswap(k, pg)
        rw_exit(lock)
        assert pw.anon(env, h, 0, 0).an_swslot == 0 and pw.slot_free(k, slot)
        assert k.uvmexp.swpginuse == inuse - 1
        await pw.release(env, h)

    env.run(body)


def test_dropswap_frees_the_aobj_slot_of_an_aobj_page(kenv: Any) -> None:
    """uvmpd_dropswap: "else if (pg->pg_flags & PQ_AOBJ) { int slot = uao_set_swslot(
    pg->uobject, pg->offset >> PAGE_SHIFT, 0); if (slot) uvm_swap_free(slot, 1); }"."""
    env = kenv(npages=64, config=pw.config())

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("shared", 2, "shm", "w"))
        (slot,) = await _aobj_round_trip(env, h, 0, range(1))
        await pw.run_on(env, h, _writes(h, 0, [0]))
        pg = pw.pg(env, h, 0, 0)
        pw.deactivate(k, [pg])
        inuse = k.uvmexp.swpginuse
        lock = pw.lock(h, 0)
        await rw_enter(k, lock, RW_WRITE)
        uvm_pdaemon.uvmpd_dropswap(k, pg)
        rw_exit(lock)
        assert uvm_aobj.uao_find_swslot(k, pw.obj(h, 0), 0) == 0 and pw.slot_free(k, slot)
        assert k.uvmexp.swpginuse == inuse - 1
        await pw.release(env, h)

    env.run(body)


def test_dropswap_leaves_vnode_pages_and_slotless_anons_alone(kenv: Any) -> None:
    """uvmpd_dropswap: "=> called with owner locked": a vnode page has no swap, an anon
    without a slot has none to drop; nothing changes."""
    env = kenv(npages=64, config=pw.config())

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("file", 1, "f.dat", "r"), ("anon", 1, None, "w"))
        inuse = k.uvmexp.swpginuse
        for r in (0, 1):
            pg = pw.pg(env, h, r, 0)
            flags = pg.pg_flags
            lock = pw.lock(h, r)
            await rw_enter(k, lock, RW_WRITE)
            uvm_pdaemon.uvmpd_dropswap(k, pg)
            rw_exit(lock)
            assert pg.pg_flags == flags
        assert pw.anon(env, h, 1, 0).an_swslot == 0 and k.uvmexp.swpginuse == inuse
        await pw.release(env, h)

    env.run(body)


# === uvmpd_drop / uvmpd_hibernate (seed lines 1002-1052, HIBERNATE) ===============================


def test_uvmpd_drop_and_hibernate_refuse_without_HIBERNATE(kenv: Any) -> None:
    """uvmpd_drop and uvmpd_hibernate exist only "#ifdef HIBERNATE"; the port refuses to run
    them in a kernel built without it."""
    env = kenv(npages=64, config=pw.config())

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("file", 2, "f.dat", "r"))
        with pytest.raises(Panic, match="HIBERNATE"):
            await uvm_pdaemon.uvmpd_drop(k, k.uvm.page_active)
        with pytest.raises(Panic, match="HIBERNATE"):
            await uvm_pdaemon.uvmpd_hibernate(k)
        assert all(pg.pg_flags & PQ_ACTIVE for pg in pw.pgs(env, h, 0))
        await pw.release(env, h)

    env.run(body)


def test_uvmpd_hibernate_frees_clean_idle_object_pages_on_both_queues(kenv: Any) -> None:
    """uvmpd_drop: "if (p->pg_flags & PQ_ANON || p->uobject == NULL) continue; if
    (p->pg_flags & PG_BUSY) continue; if (p->pg_flags & PG_CLEAN) { ... pmap_page_protect(p,
    PROT_NONE); uvm_pagefree(p); }", a clean aobj page counting in swpgonly ("this page now
    lives only in swap"); uvmpd_hibernate runs it on the inactive then the active queue."""
    env = kenv(npages=64, config=pw.config(hibernate=True))

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(
            env, "h", ("file", 6, "f.dat", "r"), ("shared", 2, "shm", "w"), ("anon", 3, None, "w")
        )
        await _aobj_round_trip(env, h, 1, range(1))  # aobj page 0: clean, with a slot
        await _anon_round_trip(env, h, 2, range(1))  # anon page 0: clean, with a slot
        await pw.run_on(env, h, _writes(h, 0, [2]))
        f = pw.pgs(env, h, 0)
        pw.deactivate(k, f[:3])  # 0, 1 clean inactive; 2 inactive, dirty (pmap saw the write)
        assert not f[2].pg_flags & PG_CLEAN
        await _busy(k, pw.lock(h, 0), f[4], True)
        shm, anons = pw.pgs(env, h, 1), pw.pgs(env, h, 2)
        assert shm[0].pg_flags & PG_CLEAN and not shm[1].pg_flags & PG_CLEAN
        assert anons[0].pg_flags & PG_CLEAN
        swpgonly = k.uvmexp.swpgonly
        await uvm_pdaemon.uvmpd_hibernate(k)
        freed = [pg.pg_flags & PQ_FREE != 0 for pg in [*f, *shm, *anons]]
        assert freed == [True, True, False, True, False, True, True, False, False, False, False]
        assert k.uvmexp.swpgonly == swpgonly + 1
        assert uvm_page.uvm_pagelookup(pw.obj(h, 0), 0) is None
        assert k.uvm.pageqlock.mtx_owner is None and pw.lock(h, 0).rwl_owner is None
        await _busy(k, pw.lock(h, 0), f[4], False)
        got = []

        async def reread(p: UserProcess) -> None:
            got.append(await p.load(h.vas[1], PAGE))

        await pw.run_on(env, h, reread)  # the dropped aobj page comes back from swap
        assert got == [pw.data("h", 1, 0)]
        await pw.release(env, h)

    env.run(body)


def test_uvmpd_drop_rechecks_PG_CLEAN_after_waiting_for_the_object_lock(kenv: Any) -> None:
    """uvmpd_drop: rw_enter may sleep, so "if the page is clean we can free it now" is tested
    again under the lock: another CPU that held the lock dirtied the page meanwhile."""
    env = kenv(npages=64, config=pw.config(hibernate=True))

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("file", 1, "f.dat", "r"))
        pg, lock = await pw.dirtied_under_its_lock(env, h)
        t0 = k.sched.now
        await uvm_pdaemon.uvmpd_drop(k, k.uvm.page_active)
        assert k.sched.now - t0 >= MS  # it slept on the lock
        assert pg.pg_flags & PQ_ACTIVE and uvm_page.uvm_pagelookup(pw.obj(h, 0), 0) is pg
        assert lock.rwl_owner is None and k.uvm.pageqlock.mtx_owner is None
        await pw.release(env, h)

    env.run(body)


def test_uvmpd_drop_trusts_PG_CLEAN_and_drops_a_page_written_through_its_mapping(
    kenv: Any,
) -> None:
    """uvmpd_drop tests only the PG_CLEAN flag, never pmap_is_modified: a file page written
    through its mapping since it was read (the write is only in the pmap's modified bit;
    PG_CLEAN is resynced at deactivation, reference §1.6) is dropped, and the write is lost —
    the file still holds its old bytes. Upstream, the file systems are synced before
    hibernating (their flush checks the pmap), so this pins the seed's precondition."""
    env = kenv(npages=64, config=pw.config(hibernate=True))

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("file", 1, "f.dat", "r"))
        await pw.run_on(env, h, _writes(h, 0, [0]))
        pg = pw.pg(env, h, 0, 0)
        assert pg.pg_flags & PG_CLEAN and k.pmap.pmap_is_modified(pg)
        await uvm_pdaemon.uvmpd_hibernate(k)
        assert pg.pg_flags & PQ_FREE
        got: list[bytes] = []

        async def reread(p: UserProcess) -> None:
            got.append(await p.load(h.vas[0], 8))

        await pw.run_on(env, h, reread)
        assert got == [bytes(8)]  # the sparse file's zeros, not the write
        await pw.release(env, h)

    env.run(body)


def test_uvmpd_drop_passes_over_a_dirty_page_without_taking_its_object_lock(kenv: Any) -> None:
    """uvmpd_drop: "if (p->pg_flags & PG_CLEAN)" is tested before "rw_enter(uobj->vmobjlock,
    RW_WRITE)": a dirty object page is passed over at once, even while another CPU holds
    its object's lock."""
    env = kenv(npages=64, config=pw.config(hibernate=True))

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("shared", 1, "shm", "w"))
        pg = pw.pg(env, h, 0, 0)
        assert not pg.pg_flags & PG_CLEAN
        lock = pw.lock(h, 0)
        cpu = pw.other_cpu(k)
        await pw.run_on(env, cpu, pw.enter(k, lock))
        t0 = k.sched.now
        await uvm_pdaemon.uvmpd_drop(k, k.uvm.page_active)
        assert k.sched.now == t0 and lock.rwl_waiters == []  # it never waited for the lock
        assert pg.pg_flags & PQ_ACTIVE
        await pw.run_on(env, cpu, pw.exit_(lock))
        await pw.release(env, h)

    env.run(body)


def test_uvmpd_drop_counts_every_dropped_aobj_page_in_swpgonly(kenv: Any) -> None:
    """uvmpd_drop: "this page now lives only in swap" (atomic_inc_int(&uvmexp.swpgonly)) for
    each clean swap-backed page it frees: two clean aobj pages, swpgonly + 2."""
    env = kenv(npages=64, config=pw.config(hibernate=True))

    async def body(k: Kernel, env: KernelEnv) -> None:
        h = await pw.hold(env, "h", ("shared", 2, "shm", "w"))
        await _aobj_round_trip(env, h, 0, range(2))  # clean, each with its slot
        pgs = pw.pgs(env, h, 0)
        swpgonly = k.uvmexp.swpgonly
        await uvm_pdaemon.uvmpd_drop(k, k.uvm.page_active)
        assert all(pg.pg_flags & PQ_FREE for pg in pgs)
        assert k.uvmexp.swpgonly == swpgonly + 2
        await pw.release(env, h)

    env.run(body)
