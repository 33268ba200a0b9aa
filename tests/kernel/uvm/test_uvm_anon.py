"""uvm_anon.py: anon allocation, freeing (with the PG_RELEASED dance) and swap slots.

Each test quotes the rule of docs/uvm-reference.md it pins (§1.2 vm_anon, §1.11 the anon
helpers, §1.14 the swap-in round trip).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import kernel.uvm.uvm_anon as uvm_anon
import kernel.uvm.uvm_map as uvm_map
import kernel.uvm.uvm_page as uvm_page
import kernel.uvm.uvm_pager as uvm_pager
import kernel.uvm.uvm_swap as uvm_swap
from kernel.kern.kern_synch import RW_WRITE, RWLock, rw_enter, rw_exit
from kernel.kernel import Kernel, KernelConfig
from kernel.sys.mman import PROT_NONE, PROT_READ
from kernel.sys.systm import Panic
from kernel.uvm.uvm_page import PG_BUSY, PG_CLEAN, PG_RELEASED, PQ_FREE
from kernel.uvm.uvm_pager import PGO_ALLPAGES, PGO_PDFREECLUST, VM_PAGER_PEND

PAGE = 4096


def _quiet() -> KernelConfig:
    return KernelConfig(bufcachepercent=0, check_every_pass=False)


def _resident(k: Kernel, lock: RWLock) -> tuple[uvm_anon.VmAnon, Any]:
    """A fresh anon (no references left: the test owns it) with an idle active page."""
    anon = uvm_anon.uvm_analloc(k)
    anon.an_lock = lock
    anon.an_ref = 0
    pg = uvm_page.uvm_pagealloc(k, None, 0, anon, 0)
    assert pg is not None
    pg.pg_flags &= ~(PG_BUSY | uvm_page.PG_FAKE | PG_CLEAN)
    uvm_page.uvm_lock_pageq(k)
    uvm_page.uvm_pageactivate(k, pg)
    uvm_page.uvm_unlock_pageq(k)
    return anon, pg


def test_analloc_gives_one_reference_and_nothing_else(kenv: Any) -> None:
    """§1.2 vm_anon: `an_lock`, `an_page` ("resident page or none"), `an_ref`, `an_swslot`
    ("0 = none"); uvm_analloc: the anon "will have no lock associated", one reference."""
    env = kenv(start=False)
    anon = uvm_anon.uvm_analloc(env.k)
    assert (anon.an_lock, anon.an_ref, anon.an_page, anon.an_swslot) == (None, 1, None, 0)


def test_anfree_frees_an_idle_resident_page_and_the_slot(kenv: Any) -> None:
    """§1.11: "If resident and not busy: remove mappings, free the page. ... Then clear the
    anon's lock pointer, free its slot (`uvm_anon_dropswap`)"."""
    env = kenv(config=_quiet())

    async def body(k: Kernel, env: Any) -> None:
        lock = RWLock("amap")
        anon, pg = _resident(k, lock)
        anon.an_swslot, _ = uvm_swap.uvm_swap_alloc(k, 1, False)
        await rw_enter(k, lock, RW_WRITE)
        uvm_anon.uvm_anfree(k, anon)
        rw_exit(lock)
        assert pg.pg_flags & PQ_FREE and anon.an_page is None
        assert anon.an_lock is None and anon.an_swslot == 0
        assert k.uvmexp.swpginuse == 0 and k.uvmexp.swpgonly == 0

    env.run(body)


def test_anfree_of_a_swap_only_anon_uncounts_swpgonly(kenv: Any) -> None:
    """§1.11: "If not resident but with a slot: `swpgonly −1`"."""
    env = kenv(start=False)
    k = env.k
    anon = uvm_anon.uvm_analloc(k)
    anon.an_ref = 0
    anon.an_swslot, _ = uvm_swap.uvm_swap_alloc(k, 1, False)
    k.uvmexp.swpgonly = 1
    uvm_anon.uvm_anfree(k, anon)  # no lock: an anon that never had one
    assert k.uvmexp.swpgonly == 0 and k.uvmexp.swpginuse == 0 and anon.an_swslot == 0


def test_anfree_requires_no_references(kenv: Any) -> None:
    """§1.11: uvm_anfree "requires `an_ref == 0`"."""
    env = kenv(start=False)
    with pytest.raises(Panic, match="still referenced"):
        uvm_anon.uvm_anfree(env.k, uvm_anon.uvm_analloc(env.k))


def test_anfree_of_a_busy_page_releases_it_and_anon_release_finishes(kenv: Any) -> None:
    """§1.11: "If the page is resident and busy: set PG_RELEASED, take an extra reference on
    the lock, return (the I/O owner finishes it)"; "`uvm_anon_release(anon)`: ... frees the
    page, frees the anon, releases the lock and drops the lock's extra reference"."""
    env = kenv(config=_quiet())

    async def body(k: Kernel, env: Any) -> None:
        lock = RWLock("amap")
        anon, pg = _resident(k, lock)
        anon.an_swslot, _ = uvm_swap.uvm_swap_alloc(k, 1, False)
        pg.pg_flags |= PG_BUSY  # I/O in flight
        await rw_enter(k, lock, RW_WRITE)
        uvm_anon.uvm_anfree(k, anon)
        rw_exit(lock)
        assert pg.pg_flags & PG_RELEASED and lock.refs == 2
        assert anon.an_page is pg and anon.an_lock is lock and anon.an_swslot != 0

        # the I/O owner, done: releases page and anon under the anon's lock
        await rw_enter(k, lock, RW_WRITE)
        uvm_anon.uvm_anon_release(k, anon)
        assert lock.rwl_owner is None  # released by uvm_anon_release
        assert lock.refs == 1
        assert pg.pg_flags & PQ_FREE and anon.an_page is None and anon.an_swslot == 0
        assert k.uvmexp.swpginuse == 0 and k.uvmexp.swpgonly == 0

    env.run(body)


def test_anon_release_from_a_context_that_cannot_sleep_takes_the_lock_itself(
    kenv: Any,
) -> None:
    """PORT: uvm_page_unbusy (the aiodone path) calls uvm_anon_release without the anon's
    lock (it cannot sleep to take it); §1.6 says it takes it: uvm_anon_release does."""
    env = kenv(config=_quiet())

    async def body(k: Kernel, env: Any) -> None:
        lock = RWLock("amap")
        anon, pg = _resident(k, lock)
        pg.pg_flags |= PG_BUSY
        await rw_enter(k, lock, RW_WRITE)
        uvm_anon.uvm_anfree(k, anon)
        rw_exit(lock)
        uvm_page.uvm_page_unbusy(k, [pg], 1)
        assert pg.pg_flags & PQ_FREE and lock.rwl_owner is None and lock.refs == 1

    env.run(body)


def test_anon_dropswap_frees_the_slot(kenv: Any) -> None:
    """§1.11 / uvmpd_dropswap: "anon page with a slot → free the slot and zero `an_swslot`";
    a SWSLOT_BAD slot is just forgotten (uvm_swap_free "ignores SWSLOT_BAD")."""
    env = kenv(start=False)
    k = env.k
    anon = uvm_anon.uvm_analloc(k)
    anon.an_ref = 0
    anon.an_swslot, _ = uvm_swap.uvm_swap_alloc(k, 1, False)
    uvm_anon.uvm_anon_dropswap(k, anon)
    assert anon.an_swslot == 0 and k.uvmexp.swpginuse == 0
    anon.an_swslot = uvm_swap.SWSLOT_BAD
    uvm_anon.uvm_anon_dropswap(k, anon)
    assert anon.an_swslot == 0


def test_anfree_list_leaves_cleaned_pages_for_the_caller(kenv: Any) -> None:
    """uvm_anfree_list with a page list: the page is "clean[ed] ... and put on pglist for
    later freeing" instead of freed."""
    env = kenv(config=_quiet())

    async def body(k: Kernel, env: Any) -> None:
        lock = RWLock("amap")
        anon, pg = _resident(k, lock)
        pgl: list[Any] = []
        await rw_enter(k, lock, RW_WRITE)
        uvm_anon.uvm_anfree_list(k, anon, pgl)
        rw_exit(lock)
        assert pgl == [pg] and not pg.pg_flags & PQ_FREE and anon.an_page is None
        uvm_page.uvm_lock_pageq(k)
        uvm_page.uvm_pagefree(k, pg)
        uvm_page.uvm_unlock_pageq(k)

    env.run(body)


def test_process_reads_back_its_paged_out_page_through_the_fault_path(kenv: Any) -> None:
    """§1.14, end to end: a process's dirty anon page is paged out (PEND, aiodone), freed as
    clean (swpgonly +1); the process touches it again: uvm_fault → uvmfault_anonget →
    uvm_swap_get, `nswget` +1, `swpgonly` −1, and the process reads the same bytes."""
    env = kenv(npages=256, swap_pages=64)
    data = bytes(np.random.default_rng(7).integers(0, 256, PAGE, dtype=np.uint8))
    state: dict[str, Any] = {}

    async def work(p: Any) -> None:
        va = await p.mmap(PAGE)
        await p.store(va, data)
        state["va"] = va
        while "go" not in state:
            await p.compute(100_000)
        state["got"] = await p.load(va, PAGE)

    async def body(k: Kernel, env: Any) -> None:
        up = env.spawn(work, "w0")
        while "va" not in state:
            await env.sleep(100_000)
        entry = uvm_map.uvm_map_lookup_entry(up.proc.p_vmspace.vm_map, state["va"])
        assert entry is not None and entry.aref.ar_amap is not None
        anon = entry.aref.ar_amap.am_anon[entry.aref.ar_pageoff]
        pg = anon.an_page
        assert pg is not None and anon.an_lock is not None

        # what the page daemon does to a dirty inactive anon page (I11, I12, I15)
        await rw_enter(k, anon.an_lock, RW_WRITE)
        pg.pg_flags |= PG_BUSY
        k.pmap.pmap_page_protect(pg, PROT_READ)
        slot, _ = uvm_swap.uvm_swap_alloc(k, 1, False)
        anon.an_swslot = slot
        rw_exit(anon.an_lock)
        uvm_page.uvm_lock_pageq(k)
        r, _, _ = await uvm_pager.uvm_pager_put(
            k, None, pg, [pg], 1, PGO_ALLPAGES | PGO_PDFREECLUST, slot, 0
        )
        assert r == VM_PAGER_PEND
        while pg.pg_flags & PG_BUSY:
            await env.sleep(100_000)
        assert pg.pg_flags & PG_CLEAN

        # a later pass frees the clean page (I7)
        await rw_enter(k, anon.an_lock, RW_WRITE)
        k.uvmexp.swpgonly += 1
        k.pmap.pmap_page_protect(pg, PROT_NONE)
        uvm_page.uvm_lock_pageq(k)
        uvm_page.uvm_pagefree(k, pg)
        uvm_page.uvm_unlock_pageq(k)
        rw_exit(anon.an_lock)
        assert anon.an_page is None

        nswget = k.uvmexp.nswget
        state["go"] = True
        await env.wait(up)
        assert state["got"] == data
        assert k.uvmexp.nswget == nswget + 1 and k.uvmexp.swpgonly == 0

    env.run(body)
