"""The page daemon's tests: swap and I/O done by hand (shared by test_uvm_pdaemon_*.py).

Jobs a Holder runs to read or write its pages again; the swap-in round trip of reference
§1.14 for anon and aobj pages (paged out by hand, read back: resident, active, PG_CLEAN and
owning a slot); an asynchronous swap write started by someone other than the daemon, built as
the inactive scan builds a cluster; and busying a page as an I/O owner does.

The helpers keep the names the test bodies call them by (a leading underscore, as when they
were local to one test file).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emu.process import UserProcess
from kernel.kern.kern_synch import RW_WRITE, RWLock, rw_enter, rw_exit
from kernel.kernel import Kernel
from kernel.sys.mman import PROT_NONE, PROT_READ
from kernel.uvm import uvm_aobj, uvm_page, uvm_pager, uvm_swap
from kernel.uvm.uvm_object import UvmObject
from kernel.uvm.uvm_page import PG_BUSY, PG_CLEAN, PQ_ACTIVE, VmPage

import pdaemon_world as pw
from pdaemon_world import PAGE, Holder, Job

if TYPE_CHECKING:
    from conftest import KernelEnv


# --- jobs for a holder ----------------------------------------------------------------------------


def _reads(h: Holder, r: int, idxs: range | list[int]) -> Job:
    async def job(p: UserProcess) -> None:
        for i in idxs:
            await p.load(h.vas[r] + i * PAGE, 8)

    return job


def _writes(h: Holder, r: int, idxs: range | list[int]) -> Job:
    async def job(p: UserProcess) -> None:
        for i in idxs:
            await p.store(h.vas[r] + i * PAGE, pw.data("rewrite", r, i))

    return job


# --- swap -----------------------------------------------------------------------------------------


async def _anon_round_trip(env: KernelEnv, h: Holder, r: int, idxs: range) -> list[int]:
    """Reference §1.14: page each anon out (new slot, write, freed), then the holder reads it
    back (swap-in): resident again, active, PG_CLEAN and still owning its slot."""
    slots = [await env.page_out(pw.anon(env, h, r, i)) for i in idxs]
    await pw.run_on(env, h, _reads(h, r, idxs))
    for i, slot in zip(idxs, slots, strict=True):
        anon = pw.anon(env, h, r, i)
        assert anon.an_swslot == slot and anon.an_page is not None
        assert anon.an_page.pg_flags & PQ_ACTIVE and anon.an_page.pg_flags & PG_CLEAN
    return slots


async def _aobj_page_out(k: Kernel, uobj: UvmObject, pg: VmPage) -> int:
    """env.page_out for an aobj page: new slot, synchronous write, PG_CLEAN, then freed the
    way the inactive scan frees a clean page (I7: swpgonly +1). Returns the slot."""
    await rw_enter(k, uobj.vmobjlock, RW_WRITE)
    idx = pg.offset >> 12
    uvm_aobj.uao_dropswap(k, uobj, idx)
    slot, n = uvm_swap.uvm_swap_alloc(k, 1, False)
    assert slot and n == 1
    uvm_aobj.uao_set_swslot(k, uobj, idx, slot)
    pg.pg_flags |= PG_BUSY
    k.pmap.pmap_page_protect(pg, PROT_READ)
    rw_exit(uobj.vmobjlock)
    r = await uvm_swap.uvm_swap_put(k, slot, [pg], 1, uvm_pager.PGO_SYNCIO)
    assert r == uvm_pager.VM_PAGER_OK
    await rw_enter(k, uobj.vmobjlock, RW_WRITE)
    k.pmap.pmap_clear_reference(pg)
    k.pmap.pmap_clear_modify(pg)
    pg.pg_flags = (pg.pg_flags | PG_CLEAN) & ~PG_BUSY
    uvm_page.uvm_lock_pageq(k)
    k.uvmexp.swpgonly += 1
    k.pmap.pmap_page_protect(pg, PROT_NONE)
    uvm_page.uvm_pagefree(k, pg)
    uvm_page.uvm_unlock_pageq(k)
    rw_exit(uobj.vmobjlock)
    return slot


async def _aobj_round_trip(env: KernelEnv, h: Holder, r: int, idxs: range) -> list[int]:
    """_anon_round_trip for the pages of a shared (aobj) region."""
    k = env.k
    uobj = pw.obj(h, r)
    slots = [await _aobj_page_out(k, uobj, pw.pg(env, h, r, i)) for i in idxs]
    await pw.run_on(env, h, _reads(h, r, idxs))
    for i, slot in zip(idxs, slots, strict=True):
        assert uvm_aobj.uao_find_swslot(k, uobj, i) == slot
        pg = pw.pg(env, h, r, i)
        assert pg.pg_flags & PQ_ACTIVE and pg.pg_flags & PG_CLEAN
    return slots


async def _async_write(k: Kernel, pgs: list[VmPage]) -> int:
    """An asynchronous swap write of idle dirty anon pages by whoever runs this, built as the
    inactive scan builds a cluster (I11/I12): busy, write-protected, one slot run; then
    uvm_pager_put (PEND). Returns the first slot."""
    n = len(pgs)
    slot, got = uvm_swap.uvm_swap_alloc(k, n, False)
    assert slot and got == n
    swpps: list[VmPage | None] = [None] * uvm_swap.SWCLUSTPAGES
    for i, pg in enumerate(pgs):
        anon = pg.uanon
        assert anon is not None and anon.an_lock is not None
        await rw_enter(k, anon.an_lock, RW_WRITE)
        assert not pg.pg_flags & (PG_BUSY | PG_CLEAN)
        pg.pg_flags |= PG_BUSY
        k.pmap.pmap_page_protect(pg, PROT_READ)
        anon.an_swslot = slot + i
        swpps[i] = pg
        rw_exit(anon.an_lock)
    uvm_page.uvm_lock_pageq(k)
    flags = uvm_pager.PGO_ALLPAGES | uvm_pager.PGO_PDFREECLUST
    r, _, _ = await uvm_pager.uvm_pager_put(k, None, pgs[-1], swpps, n, flags, slot, 0)
    assert r == uvm_pager.VM_PAGER_PEND
    return slot


# --- a page under I/O -----------------------------------------------------------------------------


async def _busy(k: Kernel, lock: RWLock, pg: VmPage, busy: bool) -> None:
    """Busy (or un-busy) a page from the test body, as an I/O owner does: under its owner's
    lock, write-protected while busy."""
    await rw_enter(k, lock, RW_WRITE)
    if busy:
        pg.pg_flags |= PG_BUSY
        k.pmap.pmap_page_protect(pg, PROT_READ)
    else:
        pg.pg_flags &= ~PG_BUSY
    rw_exit(lock)
