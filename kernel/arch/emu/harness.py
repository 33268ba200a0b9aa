"""What the test and benchmark harnesses do to a kernel that no system call offers.

The tests (``tests/kernel/conftest.py``), the benchmarks (``emu/benchmarks/_harness.py``) and
the auditor of an audited run (``emu/reliability.py``) reach the kernel's internals through
this module, so that emu/ needs no import of kernel/uvm or kernel/kern:

- :func:`page_out` pages anonymous pages out by hand, the way the page daemon's inactive
  scan does for dirty anons; think ``madvise(MADV_PAGEOUT)``.
- :func:`anon_at` and :func:`anons_of` find the anons of a process's private mapping.
- :func:`uvm_check` checks the whole kernel's invariants (kernel/uvm/uvm_check.py).

Nothing here is a port: upstream has no such entry points.
"""

from __future__ import annotations

from collections.abc import Sequence

import kernel.uvm.uvm_map as uvm_map
import kernel.uvm.uvm_page as uvm_page
import kernel.uvm.uvm_pager as uvm_pager
import kernel.uvm.uvm_swap as uvm_swap
from kernel.kern.kern_synch import RW_WRITE, rw_enter, rw_exit, wakeup
from kernel.kernel import Kernel
from kernel.sys.mman import PROT_NONE, PROT_READ
from kernel.sys.param import PAGE_SHIFT
from kernel.sys.proc import Proc
from kernel.uvm.uvm_anon import VmAnon
from kernel.uvm.uvm_check import uvm_check

__all__ = ["VmAnon", "anon_at", "anons_of", "page_out", "uvm_check"]


def anon_at(p: Proc, va: int) -> VmAnon | None:
    """The anon ``p``'s private mapping has at ``va`` (None if the slot is empty)."""
    vm = p.p_vmspace
    assert vm is not None
    entry = uvm_map.uvm_map_lookup_entry(vm.vm_map, va)
    assert entry is not None and entry.aref.ar_amap is not None, f"no amap at {va:#x}"
    slot = ((va - entry.start) >> PAGE_SHIFT) + entry.aref.ar_pageoff
    return entry.aref.ar_amap.am_anon.get(slot)


def anons_of(p: Proc, base: int, npages: int) -> list[VmAnon]:
    """The anons of ``p``'s private mapping at ``base``, one per page (each must exist)."""
    vm = p.p_vmspace
    assert vm is not None
    entry = uvm_map.uvm_map_lookup_entry(vm.vm_map, base)
    assert entry is not None and entry.aref.ar_amap is not None, f"no amap at {base:#x}"
    amap = entry.aref.ar_amap
    first = ((base - entry.start) >> PAGE_SHIFT) + entry.aref.ar_pageoff
    out = []
    for slot in range(first, first + npages):
        anon = amap.am_anon.get(slot)
        assert anon is not None, f"page {slot} of the mapping at {base:#x} has no anon"
        out.append(anon)
    return out


async def page_out(k: Kernel, anons: Sequence[VmAnon], cluster: int = 16) -> list[int]:
    """Page every anon's resident page out to swap and free it; returns the new slots.

    => clusters of up to ``cluster`` pages, each one new run of contiguous slots and one
       synchronous swap write; per page: PG_CLEAN, then the inactive scan's clean path
       (swpgonly + 1, unmap, free)
    => anons without a resident page are skipped; a resident page must not be PG_BUSY
    => raises RuntimeError when swap runs out or a write fails; may sleep
    """
    slots: list[int] = []
    for i in range(0, len(anons), cluster):
        batch = [a for a in anons[i : i + cluster] if a.an_page is not None]
        if not batch:
            continue
        for anon in batch:  # old slots back first, so the new run can be contiguous
            assert anon.an_lock is not None
            await rw_enter(k, anon.an_lock, RW_WRITE)
            if anon.an_swslot:
                uvm_swap.uvm_swap_free(k, anon.an_swslot, 1)
                anon.an_swslot = 0
            rw_exit(anon.an_lock)
        slot, n = uvm_swap.uvm_swap_alloc(k, len(batch), False)
        if not slot or n != len(batch):
            raise RuntimeError("page_out: out of swap")
        pgs: list[uvm_page.VmPage | None] = []
        for j, anon in enumerate(batch):
            assert anon.an_lock is not None
            await rw_enter(k, anon.an_lock, RW_WRITE)
            pg = anon.an_page
            assert pg is not None and not (pg.pg_flags & uvm_page.PG_BUSY)
            anon.an_swslot = slot + j
            pg.pg_flags |= uvm_page.PG_BUSY
            k.pmap.pmap_page_protect(pg, PROT_READ)
            rw_exit(anon.an_lock)
            pgs.append(pg)
        result = await uvm_swap.uvm_swap_put(k, slot, pgs, n, uvm_pager.PGO_SYNCIO)
        if result != uvm_pager.VM_PAGER_OK:
            raise RuntimeError(f"page_out: swap write failed ({result})")
        for anon, pg in zip(batch, pgs, strict=True):
            assert anon.an_lock is not None and pg is not None
            await rw_enter(k, anon.an_lock, RW_WRITE)
            k.pmap.pmap_clear_reference(pg)
            k.pmap.pmap_clear_modify(pg)
            pg.pg_flags = (pg.pg_flags | uvm_page.PG_CLEAN) & ~uvm_page.PG_BUSY
            if pg.pg_flags & uvm_page.PG_WANTED:
                pg.pg_flags &= ~uvm_page.PG_WANTED
                wakeup(k, pg)
            uvm_page.uvm_lock_pageq(k)  # the inactive scan's clean path
            k.uvmexp.swpgonly += 1
            k.pmap.pmap_page_protect(pg, PROT_NONE)
            uvm_page.uvm_pagefree(k, pg)
            uvm_page.uvm_unlock_pageq(k)
            rw_exit(anon.an_lock)
            slots.append(anon.an_swslot)
    return slots
