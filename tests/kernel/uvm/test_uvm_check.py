"""uvm_check: each invariant it guards fails loudly, naming the invariant and the culprit.

Pins style C20 ("After every test a fixture runs uvm_pagequeue_check(k), which checks that
each page's PQ_* bit matches the queue it is on and that uvmexp.active ==
len(uvm.page_active)") and the invariants listed in kernel/uvm/uvm_check.py.
"""

from __future__ import annotations

import pytest

from kernel.sys.mman import PROT_READ, PROT_WRITE
from kernel.sys.systm import Panic
from kernel.uvm import uvm_swap
from kernel.uvm.uvm_anon import uvm_analloc
from kernel.uvm.uvm_check import CHECK_WORK, uvm_check, uvm_check_pass
from kernel.uvm.uvm_page import (
    PG_BUSY,
    PQ_ACTIVE,
    VmPage,
    uvm_lock_pageq,
    uvm_pageactivate,
    uvm_pagealloc,
    uvm_pagefree,
    uvm_unlock_pageq,
)

PAGE = 4096


def _active_page(k):
    anon = uvm_analloc(k)
    pg = uvm_pagealloc(k, None, 0, anon, 0)
    assert pg is not None
    pg.pg_flags &= ~PG_BUSY
    anon.an_swslot = 0
    uvm_lock_pageq(k)
    uvm_pageactivate(k, pg)
    uvm_unlock_pageq(k)
    return pg


def _drop(k, pg):
    uvm_lock_pageq(k)
    uvm_pagefree(k, pg)
    uvm_unlock_pageq(k)


def test_a_fresh_and_a_used_kernel_pass(run_kernel):
    """A booted kernel, and one after processes mapped, paged out and exited, is clean."""

    async def work(p, env):
        va = await p.mmap(4 * PAGE)
        await p.store(va, b"x")
        await env.page_out(env.anon_at(p, va))
        env.check()  # mid-run, with a page only in swap
        assert await p.load(va, 1) == b"x"

    async def body(k, env):
        env.check()
        await env.wait(env.spawn(work, env=env))

    run_kernel(body)


def test_queue_flag_mismatch_is_named(kenv):
    """PQ_ACTIVE must match membership of the active queue."""
    env = kenv(start=False)
    k = env.k
    pg = _active_page(k)
    pg.pg_flags |= PG_BUSY  # (busy: only the queue rule is in play)
    pg.pg_flags &= ~PQ_ACTIVE
    with pytest.raises(Panic, match="PQ_ACTIVE does not match the active queue"):
        uvm_check(k)
    pg.pg_flags |= PQ_ACTIVE
    _drop(k, pg)


def test_queue_count_mismatch_is_named(kenv):
    """uvmexp.active must equal the active queue's length."""
    k = kenv(start=False).k
    k.uvmexp.active += 1
    with pytest.raises(Panic, match=r"uvmexp.active != length of page_active"):
        uvm_check(k)
    k.uvmexp.active -= 1


def test_free_count_mismatch_is_named(kenv):
    """uvmexp.free must equal the free frames."""
    k = kenv(start=False).k
    k.uvmexp.free -= 1
    with pytest.raises(Panic, match=r"uvmexp\.free != free frames"):
        uvm_check(k)
    k.uvmexp.free += 1


def test_the_check_after_a_pass_is_whole_or_amortized(kenv):
    """After a daemon pass or aiodone batch: with check_full (the suite's kernels) the whole
    check every time; without it, the whole check once the work since the last one (faults
    plus pages the daemon examined) reaches CHECK_WORK times its size (frames plus swap
    slots in use)."""
    k = kenv(start=False).k
    assert k.config.check_full
    k.uvmexp.free -= 1  # broken from the start
    with pytest.raises(Panic, match=r"uvmexp\.free != free frames"):
        uvm_check_pass(k)
    k.config.check_full = False
    size = len(k.pages) + k.uvmexp.swpginuse
    uvm_check_pass(k)  # no work yet: not checked
    k.uvmexp.faults += CHECK_WORK * size - 1
    uvm_check_pass(k)  # one unit short
    k.uvmexp.pdscans += 1
    with pytest.raises(Panic, match=r"uvmexp\.free != free frames"):
        uvm_check_pass(k)
    k.uvmexp.free += 1
    uvm_check_pass(k)  # checked just now: the next whole check is CHECK_WORK * size away
    k.uvmexp.free -= 1
    k.uvmexp.faults += CHECK_WORK * size - 1
    uvm_check_pass(k)
    k.uvmexp.free += 1


def test_orphan_page_is_named(kenv):
    """An allocated page must be queued, wired or busy."""
    k = kenv(start=False).k
    anon = uvm_analloc(k)
    pg = uvm_pagealloc(k, None, 0, anon, 0)
    assert pg is not None
    pg.pg_flags &= ~PG_BUSY
    with pytest.raises(Panic, match="on no queue, not wired and not busy") as ei:
        uvm_check(k)
    assert ei.value.detail["pg"] is pg
    _drop(k, pg)


def test_clean_anon_page_without_slot_is_named(kenv):
    """§1.2: "A resident anon page that is PG_CLEAN must have an_swslot != 0"."""
    k = kenv(start=False).k
    pg = _active_page(k)  # uvm_pagealloc without ZERO: PG_CLEAN
    with pytest.raises(Panic, match="clean anon page without a swap slot"):
        uvm_check(k)
    _drop(k, pg)


def test_leaked_swap_slot_is_named(kenv):
    """Every allocated slot must belong to an anon or an aobj index (or be bad)."""
    k = kenv(start=False).k
    slot, n = uvm_swap.uvm_swap_alloc(k, 2, False)
    assert slot and n == 2
    with pytest.raises(Panic, match="allocated swap slot has no owner") as ei:
        uvm_check(k)
    assert ei.value.detail["slot"] == slot
    uvm_swap.uvm_swap_markbad(k, slot, 2)  # bad slots are allowed to stay
    uvm_check(k)


def test_slot_with_two_owners_and_bad_swpgonly_are_named(run_kernel):
    """A slot has exactly one owner; swpgonly counts the owners whose data is only in
    swap."""

    async def work(p, env):
        va = await p.mmap(2 * PAGE)
        await p.store(va, b"a")
        await p.store(va + PAGE, b"b")
        a, b = env.anon_at(p, va), env.anon_at(p, va + PAGE)
        slot = await env.page_out(a)
        k = env.k
        k.uvmexp.swpgonly += 1
        with pytest.raises(Panic, match="swpgonly does not match"):
            env.check()
        k.uvmexp.swpgonly -= 1
        b.an_swslot = slot
        with pytest.raises(Panic, match="swap slot has two owners"):
            env.check()
        b.an_swslot = 0

    async def body(k, env):
        await env.wait(env.spawn(work, env=env))

    run_kernel(body)


def test_pte_disagreeing_with_the_map_is_named(run_kernel):
    """A PTE must map the page its map entry's amap holds, and a busy page is never
    mapped writable."""

    async def work(p, env):
        k = env.k
        va = await p.mmap(2 * PAGE)
        await p.store(va, b"a")
        await p.store(va + PAGE, b"b")
        pm = p.proc.p_vmspace.vm_map.pmap
        a, b = env.anon_at(p, va).an_page, env.anon_at(p, va + PAGE).an_page
        k.pmap.pmap_enter(pm, va, b, PROT_READ, 0)  # va now maps b's frame
        with pytest.raises(Panic, match="PTE maps another page than its map entry holds"):
            env.check()
        k.pmap.pmap_enter(pm, va, a, PROT_READ | PROT_WRITE, 0)
        a.pg_flags |= PG_BUSY
        with pytest.raises(Panic, match="busy or read-only page mapped writable"):
            env.check()
        a.pg_flags &= ~PG_BUSY

    async def body(k, env):
        await env.wait(env.spawn(work, env=env))

    run_kernel(body)


def test_an_iterator_marker_on_a_queue_is_not_counted(kenv):
    """A daemon that sleeps in the middle of a scan leaves its marker page (PQ_ITER,
    0x00080000, uvm_page.h) on the queue: it is not a real page, in no count."""
    k = kenv(start=False).k
    pg = _active_page(k)
    pg.pg_flags |= PG_BUSY  # (busy: a clean anon page may then lack a slot)
    marker = VmPage(phys_addr=0, pg_flags=0x00080000)
    k.uvm.page_active.insert_after(pg, marker)
    uvm_check(k)
    k.uvm.page_active.remove(marker)
    k.uvmexp.active += 1
    with pytest.raises(Panic, match=r"uvmexp.active != length of page_active"):
        uvm_check(k)
    k.uvmexp.active -= 1
    pg.pg_flags &= ~PG_BUSY
    _drop(k, pg)
