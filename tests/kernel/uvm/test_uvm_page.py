"""uvm_page: allocation flags and the paging queue operations.

Pins docs/uvm-reference.md §1.5 (what uvm_pagealloc returns; every free wakes
&uvmexp.free) and §1.6 (uvm_pageactivate, uvm_pagedeactivate clearing the reference bit and
syncing PG_CLEAN from the modify bit, wiring, uvm_pagefree, uvm_page_unbusy).
"""

from __future__ import annotations

import pytest

from kernel.kern.kern_kthread import kthread_create
from kernel.kern.kern_synch import (
    RW_WRITE,
    RWLock,
    chan,
    rw_enter,
    rw_enter_nosleep,
    rw_exit,
    rw_lock_held,
)
from kernel.sys.systm import Panic
from kernel.uvm.uvm_anon import uvm_analloc
from kernel.uvm.uvm_page import (
    PG_BUSY,
    PG_CLEAN,
    PG_CLEANCHK,
    PG_FAKE,
    PG_RDONLY,
    PG_RELEASED,
    PG_WANTED,
    PG_ZERO,
    PQ_ACTIVE,
    PQ_ANON,
    PQ_AOBJ,
    PQ_ENCRYPT,
    PQ_FREE,
    PQ_INACTIVE,
    UVM_PGA_ZERO,
    VmPage,
    uvm_lock_pageq,
    uvm_page_unbusy,
    uvm_pageactivate,
    uvm_pageactivate_154,
    uvm_pagealloc,
    uvm_pageclean,
    uvm_pagedeactivate,
    uvm_pagedeactivate_154,
    uvm_pagefree,
    uvm_pageunwire,
    uvm_pagewait,
    uvm_pagewire,
    uvm_unlock_pageq,
)
from kernel.uvm.uvm_pmemrange import uvm_pmr_freepages


def _alloc(k, flags=0):
    anon = uvm_analloc(k)
    pg = uvm_pagealloc(k, None, 0, anon, flags)
    assert pg is not None
    return pg


def _free(k, *pgs: VmPage) -> None:
    uvm_lock_pageq(k)
    for pg in pgs:
        uvm_pagefree(k, pg)
    uvm_unlock_pageq(k)


def test_pagealloc_returns_a_busy_fake_clean_page_on_no_queue(kenv):
    """§1.5: "On success the page gets PG_BUSY and PG_FAKE, is attached to the anon
    (PQ_ANON, an_page set) ... and is marked PG_CLEAN unless zeroing was asked for. The
    caller must put it on a queue (activate) itself.\""""
    k = kenv(start=False).k
    free = k.uvmexp.free
    pg = _alloc(k)
    assert pg.pg_flags & (PG_BUSY | PG_FAKE | PG_CLEAN | PQ_ANON) == (
        PG_BUSY | PG_FAKE | PG_CLEAN | PQ_ANON
    )
    assert not pg.pg_flags & (PQ_FREE | PQ_ACTIVE | PQ_INACTIVE)
    assert pg.uanon.an_page is pg and k.uvmexp.free == free - 1
    _free(k, pg)
    assert k.uvmexp.free == free and pg.pg_flags & PQ_FREE and pg.uanon is None


def test_pagealloc_zero_gives_a_zeroed_dirty_page(kenv):
    """§1.5: UVM_PGA_ZERO → UVM_PLA_ZERO; "zeroed pages are dirty" (not PG_CLEAN)."""
    env = kenv(start=False)
    k = env.k
    pg = _alloc(k)
    frame = pg.phys_addr >> 12
    env.ram.write(frame, b"\xff" * 4096)
    _free(k, pg)
    pg2 = _alloc(k, UVM_PGA_ZERO)
    assert pg2 is pg  # the free list is LIFO: the same frame comes back
    assert env.ram.read(frame) == bytes(4096)
    assert not pg2.pg_flags & PG_CLEAN and k.uvmexp.pga_zeromiss == 1
    _free(k, pg2)


def test_activate_appends_to_the_active_tail(kenv):
    """§1.6 uvm_pageactivate: removes pg from whatever queue it is on; "if wire_count == 0,
    appends it to the tail of the active queue, sets PQ_ACTIVE, active++"."""
    k = kenv(start=False).k
    a, b = _alloc(k), _alloc(k)
    uvm_lock_pageq(k)
    uvm_pageactivate(k, a)
    uvm_pageactivate(k, b)
    uvm_pagedeactivate(k, a)
    uvm_pageactivate(k, a)
    uvm_unlock_pageq(k)
    assert list(k.uvm.page_active) == [b, a]
    assert k.uvmexp.active == 2 and k.uvmexp.inactive == 0
    assert a.pg_flags & PQ_ACTIVE and not a.pg_flags & PQ_INACTIVE
    _free(k, a, b)
    assert k.uvmexp.active == 0


def test_the_1_154_queue_helpers_assert_that_the_pages_owner_is_locked(kenv):
    """uvm_page.c beside uvm_pdaemon.c 1.154: uvm_pageactivate and uvm_pagedeactivate begin
    with KASSERT(uvm_page_owner_locked_p(pg, FALSE)): the anon's lock, read or write, must
    be held (a DIAGNOSTIC panic otherwise)."""
    k = kenv(start=False).k
    pg = _alloc(k)
    lock = RWLock("test-amap")
    pg.uanon.an_lock = lock
    with pytest.raises(Panic, match="uvm_page_owner_locked_p"):
        uvm_pageactivate_154(k, pg)
    with pytest.raises(Panic, match="uvm_page_owner_locked_p"):
        uvm_pagedeactivate_154(k, pg)
    assert not pg.pg_flags & (PQ_ACTIVE | PQ_INACTIVE)
    assert rw_enter_nosleep(lock, RW_WRITE) == 0 and rw_lock_held(lock)
    uvm_pageactivate_154(k, pg)
    assert pg.pg_flags & PQ_ACTIVE
    uvm_pagedeactivate_154(k, pg)
    assert pg.pg_flags & PQ_INACTIVE and k.uvmexp.inactive == 1
    rw_exit(lock)
    _free(k, pg)


def test_deactivate_clears_the_reference_bit(kenv):
    """§1.6 uvm_pagedeactivate: appends to the inactive tail, inactive++, "clears the pmap
    reference bit"."""
    env = kenv(start=False)
    k = env.k
    pg = _alloc(k)
    env.ram.ref[pg.phys_addr >> 12] = 1
    uvm_lock_pageq(k)
    uvm_pageactivate(k, pg)
    uvm_pagedeactivate(k, pg)
    uvm_unlock_pageq(k)
    assert pg.pg_flags & PQ_INACTIVE and list(k.uvm.page_inactive) == [pg]
    assert (k.uvmexp.active, k.uvmexp.inactive) == (0, 1)
    assert not k.pmap.pmap_is_referenced(pg)
    _free(k, pg)


def test_deactivate_syncs_clean_from_the_modify_bit(kenv):
    """§1.6: "if the page is PG_CLEAN but pmap_is_modified says it was written, clears
    PG_CLEAN"; an unmodified clean page stays clean."""
    env = kenv(start=False)
    k = env.k
    written, untouched = _alloc(k), _alloc(k)
    env.ram.mod[written.phys_addr >> 12] = 1
    uvm_lock_pageq(k)
    for pg in (written, untouched):
        pg.pg_flags &= ~PG_BUSY
        uvm_pagedeactivate(k, pg)
    uvm_unlock_pageq(k)
    assert not written.pg_flags & PG_CLEAN
    assert untouched.pg_flags & PG_CLEAN
    _free(k, written, untouched)


def test_wired_pages_leave_the_queues(kenv):
    """§1.6: "Wired pages end up on no queue"; unwiring the last wiring activates."""
    k = kenv(start=False).k
    pg = _alloc(k)
    uvm_lock_pageq(k)
    uvm_pageactivate(k, pg)
    uvm_pagewire(k, pg)
    uvm_pagewire(k, pg)
    assert not pg.pg_flags & PQ_ACTIVE and k.uvmexp.active == 0 and k.uvmexp.wired == 1
    uvm_pageactivate(k, pg)  # a wired page is not queued
    assert k.uvmexp.active == 0
    uvm_pageunwire(k, pg)
    assert k.uvmexp.wired == 1 and not pg.pg_flags & PQ_ACTIVE
    uvm_pageunwire(k, pg)
    assert k.uvmexp.wired == 0 and pg.pg_flags & PQ_ACTIVE
    uvm_unlock_pageq(k)
    _free(k, pg)


def test_pageclean_clears_upstreams_flag_list_and_nothing_else(kenv):
    """§1.6 uvm_pageclean: "then clears PQ_ANON, PQ_AOBJ, PQ_ENCRYPT, PG_ZERO, PG_FAKE,
    PG_BUSY, PG_RELEASED, PG_CLEAN, PG_CLEANCHK" (uvm_page.c 1.171; 2026 the same): not
    PG_WANTED nor PG_RDONLY (issue 12 item 5)."""
    k = kenv(start=False).k
    pg = _alloc(k)
    cleared = (PQ_ANON | PQ_AOBJ | PQ_ENCRYPT | PG_ZERO | PG_FAKE | PG_BUSY | PG_RELEASED
               | PG_CLEAN | PG_CLEANCHK)  # fmt: skip
    kept = PG_WANTED | PG_RDONLY
    pg.pg_flags |= cleared | kept
    uvm_lock_pageq(k)
    uvm_pageclean(k, pg)
    uvm_unlock_pageq(k)
    assert pg.pg_flags & (cleared | kept) == kept
    pg.pg_flags &= ~kept
    uvm_pmr_freepages(k, pg, 1)
    assert pg.pg_flags & PQ_FREE


def test_every_free_wakes_the_free_sleepers(kenv):
    """§1.5 uvm_pmr_freepages: "wakeup(&uvmexp.free) on every call"."""
    env = kenv(start=False)
    k = env.k
    pgs = [_alloc(k) for _ in range(2)]
    for pg in pgs:
        w = env.clock.waiter("free")
        k.slpque.setdefault(chan(k.uvmexp, "free"), []).append(w)
        _free(k, pg)
        assert w.woken


def test_page_unbusy_wakes_wanted_sleepers_and_clears_busy(kenv):
    """§1.6 uvm_page_unbusy: "wake sleepers if PG_WANTED ... Otherwise clear PG_WANTED and
    PG_BUSY"."""
    env = kenv(start=False)
    k = env.k
    pg = _alloc(k)
    pg.pg_flags |= PG_WANTED
    w = env.clock.waiter("pg")
    k.slpque[pg] = [w]
    uvm_page_unbusy(k, [pg], 1)
    assert w.woken and not pg.pg_flags & (PG_BUSY | PG_WANTED)
    _free(k, pg)


def test_pagewait_sleeps_on_the_busy_page_with_the_owner_lock_released(run_kernel):
    """uvm_pagewait (uvm_page.c): sets PG_WANTED and sleeps on the page, releasing the
    owner's lock (PNORELOCK: the caller looks the page up again) until uvm_page_unbusy
    wakes it; while it sleeps another thread can take the lock."""
    lock = RWLock("uobjlk")
    seen = []

    async def unbusier(k, pg):
        seen.append(rw_enter_nosleep(lock, RW_WRITE))  # free: the waiter released it
        rw_exit(lock)
        uvm_page_unbusy(k, [pg], 1)

    async def body(k, env):
        pg = _alloc(k)  # PG_BUSY, as uvm_pagealloc returns it
        await rw_enter(k, lock, RW_WRITE)
        kthread_create(k, unbusier, k, pg, name="unbusier")
        await uvm_pagewait(k, pg, lock, "pgwait")
        assert seen == [0] and not rw_lock_held(lock)
        assert not pg.pg_flags & (PG_BUSY | PG_WANTED)
        _free(k, pg)

    run_kernel(body, start=False)
