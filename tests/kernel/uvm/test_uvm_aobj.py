"""uvm_aobj.py: anonymous objects, their swap slot tables, their pager get and detach.

Each test quotes the rule of docs/uvm-reference.md it pins (§1.2 aobj swap slots, §1.11
aobj helpers, §1.10 completion of aobj pages, §1.3 swpgonly).
"""

from __future__ import annotations

from typing import Any

import pytest

import kernel.uvm.uvm_aobj as uvm_aobj
import kernel.uvm.uvm_page as uvm_page
import kernel.uvm.uvm_pager as uvm_pager
import kernel.uvm.uvm_swap as uvm_swap
from devices.faults import FaultConfig
from kernel.kern.kern_kthread import kthread_create
from kernel.kern.kern_synch import RW_WRITE, rw_enter, rw_enter_nosleep, rw_exit
from kernel.kernel import Kernel, KernelConfig
from kernel.sys.mman import PROT_NONE, PROT_READ
from kernel.sys.systm import Panic
from kernel.uvm.uvm_object import UvmObject
from kernel.uvm.uvm_page import PG_BUSY, PG_CLEAN, PG_RELEASED, PQ_AOBJ, PQ_FREE
from kernel.uvm.uvm_pager import (
    PGO_ALLPAGES,
    PGO_LOCKED,
    PGO_PDFREECLUST,
    VM_PAGER_ERROR,
    VM_PAGER_OK,
    VM_PAGER_PEND,
)
from kernel.uvm.uvm_swap import SWSLOT_BAD

from pdaemon_world import until_idle as _until_idle

PAGE = 4096
DAEMON_FLAGS = PGO_ALLPAGES | PGO_PDFREECLUST


def _data(i: int) -> bytes:
    return (f"aobj page {i} ".encode() * 400)[:PAGE]


async def _touch(k: Kernel, env: Any, uobj: UvmObject, idxs: list[int]) -> list[Any]:
    """First touch of pages ``idxs`` (uao_get with PGO_LOCKED zero-fills them); each is then
    written with _data(idx), made dirty and put on the inactive queue."""
    await rw_enter(k, uobj.vmobjlock, RW_WRITE)
    pgs = []
    for idx in idxs:
        pps: list[Any] = [None]
        r, got = await uvm_aobj.uao_get(k, uobj, idx * PAGE, pps, 1, 0, 0, 0, PGO_LOCKED)
        assert (r, got) == (VM_PAGER_OK, 1)
        pg = pps[0]
        assert pg.pg_flags & PQ_AOBJ and pg.pg_flags & PG_BUSY
        env.ram.write(pg.phys_addr >> 12, _data(idx))
        pg.pg_flags &= ~(PG_BUSY | PG_CLEAN)
        uvm_page.uvm_lock_pageq(k)
        uvm_page.uvm_pagedeactivate(k, pg)
        uvm_page.uvm_unlock_pageq(k)
        pgs.append(pg)
    rw_exit(uobj.vmobjlock)
    return pgs


async def _pageout(k: Kernel, uobj: UvmObject, pgs: list[Any]) -> tuple[int, int]:
    """The page daemon's swap cluster of aobj pages (I11/I12), then uvm_pager_put."""
    await rw_enter(k, uobj.vmobjlock, RW_WRITE)
    swslot, swnpages = uvm_swap.uvm_swap_alloc(k, uvm_swap.SWCLUSTPAGES, True)
    swpps: list[Any] = [None] * uvm_swap.SWCLUSTPAGES
    for i, pg in enumerate(pgs):
        pg.pg_flags |= PG_BUSY
        k.pmap.pmap_page_protect(pg, PROT_READ)
        uvm_aobj.uao_set_swslot(k, uobj, pg.offset >> 12, swslot + i)
        swpps[i] = pg
    rw_exit(uobj.vmobjlock)
    uvm_swap.uvm_swap_free(k, swslot + len(pgs), swnpages - len(pgs))
    uvm_page.uvm_lock_pageq(k)
    r, _, _ = await uvm_pager.uvm_pager_put(
        k, None, pgs[-1], swpps, len(pgs), DAEMON_FLAGS, swslot, 0
    )
    return r, swslot


def _free_clean(k: Kernel, pg: Any) -> None:
    """uvmpd_scan_inactive I7 for a clean aobj page: swpgonly +1, unmap, free."""
    assert pg.pg_flags & PG_CLEAN and not pg.pg_flags & PG_BUSY
    k.uvmexp.swpgonly += 1
    k.pmap.pmap_page_protect(pg, PROT_NONE)
    uvm_page.uvm_lock_pageq(k)
    uvm_page.uvm_pagefree(k, pg)
    uvm_page.uvm_unlock_pageq(k)


async def _page_1_only_in_swap(k: Kernel, env: Any) -> tuple[UvmObject, int]:
    """A 4-page aobj whose page 1 was written, paged out (the write completed) and freed: it
    lives only in swap. Returns the aobj and the page's slot."""
    uobj = uvm_aobj.uao_create(k, 4 * PAGE, 0)
    env.objs.append(uobj)
    pgs = await _touch(k, env, uobj, [1])
    _, swslot = await _pageout(k, uobj, pgs)
    await _until_idle(env, pgs)
    _free_clean(k, pgs[0])
    return uobj, swslot


def _quiet() -> KernelConfig:
    return KernelConfig(bufcachepercent=0, check_every_pass=False)


# --- slot tables ------------------------------------------------------------------------------


def test_small_aobj_keeps_slots_in_an_array_and_a_big_one_in_a_hash(kenv: Any) -> None:
    """§1.2: "an aobj keeps a slot per page index, either in a flat array (objects of at most
    64 pages) or in a hash of 16-slot clusters (`UAO_SWHASH_CLUSTER_SHIFT` = 4, threshold 4
    clusters)"."""
    env = kenv(start=False)
    k = env.k
    small = uvm_aobj.uao_create(k, 64 * PAGE, 0)
    big = uvm_aobj.uao_create(k, 65 * PAGE, 0)
    assert isinstance(small, uvm_aobj.UvmAobj) and isinstance(big, uvm_aobj.UvmAobj)
    assert small.u_swslots == [0] * 64 and small.u_swhash is None
    assert big.u_swslots is None and big.u_swhash is not None
    assert uvm_aobj.UAO_SWHASH_CLUSTER_SIZE == 16 and uvm_aobj.UAO_SWHASH_THRESHOLD == 64
    assert small.uo_refs == 1 and big.uo_refs == 1


def test_set_swslot_returns_the_old_slot_and_drops_empty_clusters(kenv: Any) -> None:
    """§1.11: "`uao_set_swslot(obj, idx, slot)`: returns the previous slot ... For hashed
    objects a missing cluster element is created ... when setting, and freed when its count
    drops to 0"."""
    env = kenv(start=False)
    k = env.k
    big = uvm_aobj.uao_create(k, 200 * PAGE, 0)
    assert isinstance(big, uvm_aobj.UvmAobj)
    big.uo_refs = 0  # let the test change slots without taking the lock
    assert uvm_aobj.uao_set_swslot(k, big, 100, 7) == 0
    assert uvm_aobj.uao_set_swslot(k, big, 101, 8) == 0
    elt = uvm_aobj.uao_find_swhash_elt(big, 100, False)
    assert elt is not None and elt.count == 2 and elt.tag == 100 >> 4
    assert uvm_aobj.uao_find_swslot(k, big, 101) == 8
    assert uvm_aobj.uao_set_swslot(k, big, 100, 9) == 7
    assert uvm_aobj.uao_set_swslot(k, big, 100, 0) == 9
    assert uvm_aobj.uao_set_swslot(k, big, 101, 0) == 8
    assert uvm_aobj.uao_find_swhash_elt(big, 100, False) is None  # count 0: freed
    assert uvm_aobj.uao_set_swslot(k, big, 150, 0) == 0  # no element made to clear
    assert uvm_aobj.uao_find_swhash_elt(big, 150, False) is None


def test_setting_a_slot_on_a_noswap_object_panics_but_clearing_is_fine(kenv: Any) -> None:
    """§1.11: "Setting a slot on a NOSWAP object panics; clearing is allowed"."""
    env = kenv(start=False)
    k = env.k
    kobj = uvm_aobj.uao_create(k, 16 * PAGE, uvm_aobj.UAO_FLAG_KERNOBJ)
    assert k.uvm.kernel_object is kobj
    assert rw_enter_nosleep(kobj.vmobjlock, RW_WRITE) == 0
    assert uvm_aobj.uao_set_swslot(k, kobj, 3, 0) == 0
    assert uvm_aobj.uao_find_swslot(k, kobj, 3) == 0
    with pytest.raises(Panic, match="NOSWAP"):
        uvm_aobj.uao_set_swslot(k, kobj, 3, 5)
    rw_exit(kobj.vmobjlock)


# --- the pager: get -------------------------------------------------------------------------


def test_uao_get_zero_fills_a_first_touch(kenv: Any) -> None:
    """§1.5 / aobj pager get: a page that "hasn't existed before" is zero-filled, dirty (no
    swap copy), PQ_AOBJ, returned busy; with PGO_LOCKED too, and without the object stays
    unlocked on return."""
    env = kenv(config=_quiet())

    async def body(k: Kernel, env: Any) -> None:
        uobj = uvm_aobj.uao_create(k, 8 * PAGE, 0)
        await rw_enter(k, uobj.vmobjlock, RW_WRITE)
        pps: list[Any] = [None, None]
        r, npages = await uvm_aobj.uao_get(k, uobj, 0, pps, 2, 1, 0, 0, 0)
        assert (r, npages) == (VM_PAGER_OK, 2)
        assert pps[0] is None  # not the center, no PGO_ALLPAGES: not fetched
        pg = pps[1]
        assert pg.offset == PAGE and pg.pg_flags & PQ_AOBJ and pg.pg_flags & PG_BUSY
        assert not pg.pg_flags & (PG_CLEAN | uvm_page.PG_FAKE)
        assert env.ram.read(pg.phys_addr >> 12) == bytes(PAGE)
        assert uobj.vmobjlock.rwl_owner is None  # unlocked on return
        pg.pg_flags &= ~PG_BUSY
        uvm_page.uvm_lock_pageq(k)
        uvm_page.uvm_pageactivate(k, pg)
        uvm_page.uvm_unlock_pageq(k)
        assert uobj.pgops.pgo_detach is not None
        await uobj.pgops.pgo_detach(k, uobj)
        assert pg.pg_flags & PQ_FREE

    env.run(body)


def test_aobj_page_paged_out_and_read_back_by_uao_get(kenv: Any) -> None:
    """§1.8: "aobj pages are PQ_AOBJ (swap-backed) and go through the swap path"; §1.10 the
    completion makes them clean; freed, their data lives only in swap (swpgonly +1); the aobj
    pager get "allocate[s] page with PQ_AOBJ, swap in with uvm_swap_get" and swpgonly −1."""
    env = kenv(config=_quiet())

    async def body(k: Kernel, env: Any) -> None:
        uobj = uvm_aobj.uao_create(k, 100 * PAGE, 0)  # hashed slots
        env.objs.append(uobj)
        pgs = await _touch(k, env, uobj, [70, 71])
        r, swslot = await _pageout(k, uobj, pgs)
        assert r == VM_PAGER_PEND
        await _until_idle(env, pgs)
        for pg in pgs:
            _free_clean(k, pg)
        assert uobj.uo_npages == 0 and k.uvmexp.swpgonly == 2

        await rw_enter(k, uobj.vmobjlock, RW_WRITE)
        pps: list[Any] = [None, None]
        r, _ = await uvm_aobj.uao_get(k, uobj, 70 * PAGE, pps, 2, 0, 0, 0, PGO_ALLPAGES)
        assert r == VM_PAGER_OK
        for i, pg in enumerate(pps):
            assert env.ram.read(pg.phys_addr >> 12) == _data(70 + i)
            assert pg.pg_flags & PQ_AOBJ and not pg.pg_flags & uvm_page.PG_FAKE
            assert uvm_aobj.uao_find_swslot(k, uobj, 70 + i) == swslot + i  # still owned
            pg.pg_flags &= ~PG_BUSY
            uvm_page.uvm_lock_pageq(k)
            uvm_page.uvm_pageactivate(k, pg)
            uvm_page.uvm_unlock_pageq(k)
        assert k.uvmexp.swpgonly == 0 and k.uvmexp.nswget == 2
        env.objs.remove(uobj)
        assert uobj.pgops.pgo_detach is not None
        await uobj.pgops.pgo_detach(k, uobj)
        assert k.uvmexp.swpginuse == 0

    env.run(body)


def test_uao_get_read_error_marks_the_slot_bad(kenv: Any) -> None:
    """aobj pager get on a read error: "remove the swap slot from the aobj and mark the aobj
    as having no real slot" (SWSLOT_BAD), the old slot is marked bad and never freed, the
    page is freed and the error returned (§1.14 step 4 does the same for anons)."""
    env = kenv(config=_quiet(), faults=FaultConfig(fail_read_slots=[(0, 15)]))

    async def body(k: Kernel, env: Any) -> None:
        uobj, swslot = await _page_1_only_in_swap(k, env)
        free = k.uvmexp.free
        await rw_enter(k, uobj.vmobjlock, RW_WRITE)
        pps: list[Any] = [None]
        r, _ = await uvm_aobj.uao_get(k, uobj, PAGE, pps, 1, 0, 0, 0, 0)
        assert r == VM_PAGER_ERROR and pps[0] is None
        assert uvm_aobj.uao_find_swslot(k, uobj, 1) == SWSLOT_BAD
        sdp = uvm_swap.swapdrum_getsdp(k, swslot)
        assert sdp is not None and sdp.swd_npgbad == 1
        assert k.uvmexp.free == free and uobj.uo_npages == 0
        env.objs.remove(uobj)
        assert uobj.pgops.pgo_detach is not None
        await uobj.pgops.pgo_detach(k, uobj)
        assert k.uvmexp.swpginuse == 1  # the bad slot stays allocated
        assert k.uvmexp.swpgonly == 0  # the lost page is counted out with its SWSLOT_BAD slot

    env.run(body)


def test_uao_dropswap_range_counts_a_swslot_bad_page_out_of_swpgonly(kenv: Any) -> None:
    """PORT (docs/port.md): a failed swap-in leaves its page counted in swpgonly (§1.14 step 3:
    "OK → `swpgonly` −1", and only then) and the aobj holds SWSLOT_BAD; dropping the range
    counts that page out as uvm_anfree does for an anon ("If not resident but with a slot:
    `swpgonly −1`"). Upstream's `slot > 0` test leaves it counted forever."""
    env = kenv(config=_quiet(), faults=FaultConfig(fail_read_slots=[(0, 15)]))

    async def body(k: Kernel, env: Any) -> None:
        uobj = uvm_aobj.uao_create(k, 100 * PAGE, 0)  # hashed slots
        env.objs.append(uobj)
        pgs = await _touch(k, env, uobj, [70])
        await _pageout(k, uobj, pgs)
        await _until_idle(env, pgs)
        _free_clean(k, pgs[0])
        await rw_enter(k, uobj.vmobjlock, RW_WRITE)
        pps: list[Any] = [None]
        r, _ = await uvm_aobj.uao_get(k, uobj, 70 * PAGE, pps, 1, 0, 0, 0, 0)
        assert r == VM_PAGER_ERROR and uvm_aobj.uao_find_swslot(k, uobj, 70) == SWSLOT_BAD
        assert k.uvmexp.swpgonly == 1  # still counted: its data is only in (unreadable) swap
        await rw_enter(k, uobj.vmobjlock, RW_WRITE)  # uao_get let go of it on the error
        uvm_aobj.uao_dropswap_range(k, uobj, 64, 80)
        assert uvm_aobj.uao_find_swslot(k, uobj, 70) == 0
        assert k.uvmexp.swpgonly == 0 and k.uvmexp.swpginuse == 1  # the bad slot stays
        rw_exit(uobj.vmobjlock)
        env.objs.remove(uobj)
        assert uobj.pgops.pgo_detach is not None
        await uobj.pgops.pgo_detach(k, uobj)

    env.run(body)


def test_an_aobj_detached_while_its_swap_in_fails_counts_the_lost_page_out(kenv: Any) -> None:
    """The aobj side of "an anon freed while its swap-in fails": the last reference goes while
    uao_get sleeps on a read that fails. uao_detach marks the busy page PG_RELEASED and
    uao_free leaves its slot alone (PORT: upstream sleeps until the read is over); then the
    read fails, and the dead object's page would hold SWSLOT_BAD where no one looks again.
    The page is counted out of swpgonly and swpgonlybad with it; the slot stays marked bad."""
    env = kenv(config=_quiet(), faults=FaultConfig(fail_read_slots=[(0, 15)],
                                                   extra_latency_ns=5_000_000))  # fmt: skip
    got: dict[str, Any] = {}

    async def getter(k: Kernel, uobj: UvmObject) -> None:
        await rw_enter(k, uobj.vmobjlock, RW_WRITE)
        pps: list[Any] = [None]
        got["r"], _ = await uvm_aobj.uao_get(k, uobj, PAGE, pps, 1, 0, 0, 0, 0)

    async def body(k: Kernel, env: Any) -> None:
        uobj, swslot = await _page_1_only_in_swap(k, env)
        free = k.uvmexp.free
        kthread_create(k, getter, k, uobj, name="getter")
        while uvm_page.uvm_pagelookup(uobj, PAGE) is None:  # the read is in flight
            await env.sleep(100_000)
        pg = uvm_page.uvm_pagelookup(uobj, PAGE)
        env.objs.remove(uobj)
        assert uobj.pgops.pgo_detach is not None
        await uobj.pgops.pgo_detach(k, uobj)  # the last reference
        assert pg.pg_flags & PG_RELEASED and k.uvmexp.swpgonly == 1
        while "r" not in got:
            await env.sleep(1_000_000)
        assert got["r"] == VM_PAGER_ERROR and uobj.uo_npages == 0
        assert (k.uvmexp.swpgonly, k.swap.swpgonlybad, k.uvmexp.swpginuse) == (0, 0, 1)
        assert uvm_aobj.uao_find_swslot(k, uobj, 1) == 0  # forgotten
        sdp = uvm_swap.swapdrum_getsdp(k, swslot)
        assert sdp is not None and sdp.swd_npgbad == 1  # marked bad, stays allocated
        assert k.uvmexp.free == free  # the page read into was freed

    env.run(body)


def test_a_lost_aobj_page_counts_once_toward_swap_full(kenv: Any) -> None:
    """Issue 12 item 1, on a 2-slot swap: one aobj page read back with an error is counted in
    swpgonly (§1.14 step 3) and its slot is bad, yet it is one unusable slot, not two: swap is
    not full ("`uvm_swapisfull()`: true iff `swpgonly == swpages`", PORT: bad slots count as
    full, each once) while `uvm_swap_alloc` still hands out slot 2; it is full once slot 2
    holds data only in swap too."""
    env = kenv(swap_pages=2, config=_quiet(), faults=FaultConfig(fail_read_slots=[(0, 0)]))

    async def body(k: Kernel, env: Any) -> None:
        uobj = uvm_aobj.uao_create(k, 4 * PAGE, 0)
        env.objs.append(uobj)
        pgs = await _touch(k, env, uobj, [1])
        r, swslot = await _pageout(k, uobj, pgs)
        assert (r, swslot) == (VM_PAGER_PEND, 1)
        await _until_idle(env, pgs)
        _free_clean(k, pgs[0])
        await rw_enter(k, uobj.vmobjlock, RW_WRITE)
        pps: list[Any] = [None]
        r, _ = await uvm_aobj.uao_get(k, uobj, PAGE, pps, 1, 0, 0, 0, 0)
        assert r == VM_PAGER_ERROR and uvm_aobj.uao_find_swslot(k, uobj, 1) == SWSLOT_BAD
        sdp = uvm_swap.swapdrum_getsdp(k, 1)
        assert sdp is not None
        assert (k.uvmexp.swpgonly, sdp.swd_npgbad, k.uvmexp.swpginuse) == (1, 1, 1)
        assert not uvm_swap.uvm_swapisfull(k)
        slot, n = uvm_swap.uvm_swap_alloc(k, 1, False)
        assert (slot, n) == (2, 1)
        k.uvmexp.swpgonly += 1  # as if slot 2's page had been paged out and freed clean
        assert uvm_swap.uvm_swapisfull(k)
        k.uvmexp.swpgonly -= 1
        uvm_swap.uvm_swap_free(k, slot, 1)
        env.objs.remove(uobj)
        assert uobj.pgops.pgo_detach is not None
        await uobj.pgops.pgo_detach(k, uobj)
        assert k.uvmexp.swpgonly == 0 and not uvm_swap.uvm_swapisfull(k)

    env.run(body)


# --- detach ---------------------------------------------------------------------------------


def test_detach_frees_pages_and_slots_and_uncounts_swap_only_pages(kenv: Any) -> None:
    """§1.11 / §1.3: the last detach frees every resident page (dropping its slot) and every
    slot ("aobj range drops subtract" from swpgonly for pages only in swap)."""
    env = kenv(config=_quiet())

    async def body(k: Kernel, env: Any) -> None:
        uobj = uvm_aobj.uao_create(k, 8 * PAGE, 0)
        pgs = await _touch(k, env, uobj, [0, 1, 2])
        _r, _ = await _pageout(k, uobj, pgs)
        await _until_idle(env, pgs)
        _free_clean(k, pgs[0])  # page 0 only in swap; pages 1, 2 resident with slots
        assert k.uvmexp.swpginuse == 3 and k.uvmexp.swpgonly == 1
        assert uobj.pgops.pgo_reference is not None and uobj.pgops.pgo_detach is not None
        await uobj.pgops.pgo_reference(k, uobj)
        await uobj.pgops.pgo_detach(k, uobj)  # not the last reference
        assert uobj.uo_npages == 2
        await uobj.pgops.pgo_detach(k, uobj)
        assert all(pg.pg_flags & PQ_FREE for pg in pgs)
        assert k.uvmexp.swpginuse == 0 and k.uvmexp.swpgonly == 0

    env.run(body)


def test_detach_releases_a_page_in_pageout_and_completion_frees_it(kenv: Any) -> None:
    """uao_detach: a busy page is marked PG_RELEASED (PORT: instead of sleeping on it); §1.10:
    "PG_RELEASED, aobj page | mappings removed, aobj slot dropped, page freed"."""
    env = kenv(config=_quiet())

    async def body(k: Kernel, env: Any) -> None:
        uobj = uvm_aobj.uao_create(k, 8 * PAGE, 0)
        pgs = await _touch(k, env, uobj, [3])
        r, _ = await _pageout(k, uobj, pgs)
        assert r == VM_PAGER_PEND
        assert uobj.pgops.pgo_detach is not None
        await uobj.pgops.pgo_detach(k, uobj)
        assert pgs[0].pg_flags & PG_RELEASED and uobj.uo_npages == 1
        assert k.uvmexp.swpginuse == 1  # the page's slot waits for the I/O
        await _until_idle(env, pgs)
        assert pgs[0].pg_flags & PQ_FREE and uobj.uo_npages == 0
        assert k.uvmexp.swpginuse == 0 and k.uvmexp.swpgonly == 0

    env.run(body)


def test_failed_async_write_of_an_aobj_page_clears_its_slot(kenv: Any) -> None:
    """PORT (reference §4 item 10, upstream fixed this in uvm_pager.c 1.94): a failed pageout
    leaves the aobj page dirty, clears its slot in the aobj and marks the slot bad."""
    env = kenv(config=_quiet(), faults=FaultConfig(fail_write_slots=[(0, 0)]))

    async def body(k: Kernel, env: Any) -> None:
        uobj = uvm_aobj.uao_create(k, 8 * PAGE, 0)
        pgs = await _touch(k, env, uobj, [5])
        r, swslot = await _pageout(k, uobj, pgs)
        assert r == VM_PAGER_PEND and swslot == 1
        await _until_idle(env, pgs)
        assert not pgs[0].pg_flags & (PG_CLEAN | PG_BUSY)
        assert uvm_aobj.uao_find_swslot(k, uobj, 5) == 0
        assert env.ram.read(pgs[0].phys_addr >> 12) == _data(5)
        sdp = uvm_swap.swapdrum_getsdp(k, 1)
        assert sdp is not None and sdp.swd_npgbad == 1
        assert uobj.pgops.pgo_detach is not None
        await uobj.pgops.pgo_detach(k, uobj)
        assert k.uvmexp.swpginuse == 1  # only the bad slot

    env.run(body)


def test_uao_dropswap_frees_the_slot_and_returns_it(kenv: Any) -> None:
    """§1.11: "`uao_dropswap(obj, idx)`: clears the slot and frees it on the drum; returns the
    old slot"."""
    env = kenv(start=False)
    k = env.k
    uobj = uvm_aobj.uao_create(k, 4 * PAGE, 0)
    uobj.uo_refs = 0  # unlocked access is allowed for a dead object
    slot, _ = uvm_swap.uvm_swap_alloc(k, 1, False)
    uvm_aobj.uao_set_swslot(k, uobj, 2, slot)
    assert uvm_aobj.uao_dropswap(k, uobj, 2) == slot
    assert uvm_aobj.uao_find_swslot(k, uobj, 2) == 0 and k.uvmexp.swpginuse == 0
    assert uvm_aobj.uao_dropswap(k, uobj, 2) == 0
