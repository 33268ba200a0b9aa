"""kernel/arch/emu/pmap.py: the pmap over the emulated MMU, with amd64 semantics.

Pins docs/uvm-reference.md §1.7 (pmap_page_protect, pmap_is_referenced/modified,
pmap_clear_reference/modify, the attributes surviving removal) and the Pmap protocol of
kernel/uvm/uvm_pmap.py. The pmap is tested on its own: RAM, MMU and hand-made vm_pages.
"""

from __future__ import annotations

import numpy as np
import pytest

from emu.mmu import Mmu
from emu.ram import Ram
from kernel.arch.emu.pmap import EmuPmap
from kernel.sys.mman import PROT_NONE, PROT_READ, PROT_WRITE
from kernel.uvm.uvm_page import PG_RDONLY, VmPage

RW = PROT_READ | PROT_WRITE
VA = 0x1000_0000
PAGE = 4096


@pytest.fixture
def pm() -> EmuPmap:
    return EmuPmap(Mmu(Ram(16)))


def page(f: int) -> VmPage:
    return VmPage(phys_addr=f << 12)


def test_enter_extract_remove(pm: EmuPmap) -> None:
    """pmap_enter maps the page; pmap_extract returns its physical address (plus the page
    offset); pmap_remove unmaps; numpy never leaks out (ints only)."""
    space = pm.pmap_create()
    pg = page(3)
    assert pm.pmap_enter(space, VA, pg, RW, PROT_WRITE) == 0
    pa = pm.pmap_extract(space, VA + 5)
    assert pa == (3 << 12) + 5 and type(pa) is int
    assert pm.pmap_page_mapped(pg) == 1 and type(pm.pmap_page_mapped(pg)) is int
    assert pm.pmap_resident_count(space) == 1
    pm.pmap_remove(space, VA, VA + PAGE)
    assert pm.pmap_extract(space, VA) is None and pm.pmap_page_mapped(pg) == 0
    pm.pmap_destroy(space)


def test_enter_protection_decides_writability(pm: EmuPmap) -> None:
    """pmap_enter: writable iff prot has PROT_WRITE and the page is not PG_RDONLY."""
    space = pm.pmap_create()
    a, b, c = page(1), page(2), page(3)
    c.pg_flags |= PG_RDONLY
    pm.pmap_enter(space, VA, a, RW, 0)
    pm.pmap_enter(space, VA + PAGE, b, PROT_READ, 0)
    pm.pmap_enter(space, VA + 2 * PAGE, c, RW, 0)
    assert [pm.pmap_is_writable(space, VA + i * PAGE) for i in range(3)] == [True, False, False]
    pm.pmap_destroy(space)


def test_pmap_protect_only_lowers_permission(pm: EmuPmap) -> None:
    """pmap_protect: no write → read-only; no read → removed; never raises permission."""
    space = pm.pmap_create()
    pm.pmap_enter(space, VA, page(1), RW, 0)
    pm.pmap_enter(space, VA + PAGE, page(2), RW, 0)
    pm.pmap_protect(space, VA, VA + PAGE, PROT_READ)
    assert not pm.pmap_is_writable(space, VA) and pm.pmap_is_writable(space, VA + PAGE)
    pm.pmap_protect(space, VA, VA + 2 * PAGE, RW)
    assert not pm.pmap_is_writable(space, VA)
    pm.pmap_protect(space, VA, VA + 2 * PAGE, PROT_NONE)
    assert pm.pmap_resident_count(space) == 0
    pm.pmap_destroy(space)


def test_page_protect_none_removes_every_mapping_but_keeps_ref_and_mod(pm: EmuPmap) -> None:
    """§1.7: pmap_page_protect(pg, PROT_NONE) removes every mapping of pg; "On amd64 the PTE
    accessed/modified bits are folded into per-page attribute bits before removal, so a
    later pmap_is_modified/pmap_is_referenced still reports them"."""
    s1, s2 = pm.pmap_create(), pm.pmap_create()
    pg = page(5)
    pm.pmap_enter(s1, VA, pg, RW, 0)
    pm.pmap_enter(s2, VA + 7 * PAGE, pg, RW, 0)
    assert pm.pmap_page_mapped(pg) == 2
    pm.mmu.translate(s2, VA + 7 * PAGE, True)  # the CPU writes through the second mapping
    pm.pmap_page_protect(pg, PROT_NONE)
    assert pm.pmap_page_mapped(pg) == 0
    assert pm.pmap_extract(s1, VA) is None and pm.pmap_extract(s2, VA + 7 * PAGE) is None
    assert pm.pmap_is_referenced(pg) and pm.pmap_is_modified(pg)
    pm.pmap_destroy(s1)
    pm.pmap_destroy(s2)


def test_page_protect_read_write_protects_every_mapping(pm: EmuPmap) -> None:
    """§1.7: pmap_page_protect(pg, PROT_READ) makes every mapping read-only; they stay."""
    s1, s2 = pm.pmap_create(), pm.pmap_create()
    pg, other = page(5), page(6)
    pm.pmap_enter(s1, VA, pg, RW, 0)
    pm.pmap_enter(s2, VA, pg, RW, 0)
    pm.pmap_enter(s1, VA + PAGE, other, RW, 0)
    pm.pmap_page_protect(pg, PROT_READ)
    assert pm.pmap_page_mapped(pg) == 2
    assert not pm.pmap_is_writable(s1, VA) and not pm.pmap_is_writable(s2, VA)
    assert pm.pmap_is_writable(s1, VA + PAGE)
    pm.pmap_page_protect(pg, RW)  # nothing to lower
    assert not pm.pmap_is_writable(s1, VA)
    pm.pmap_destroy(s1)
    pm.pmap_destroy(s2)


def test_clear_reference_and_modify_report_the_old_bit(pm: EmuPmap) -> None:
    """§1.7: pmap_clear_reference/pmap_clear_modify clear the bit and return whether it was
    set; an access through a live mapping sets them again."""
    space = pm.pmap_create()
    pg = page(2)
    pm.pmap_enter(space, VA, pg, RW, 0)
    assert not pm.pmap_is_referenced(pg) and not pm.pmap_is_modified(pg)
    pm.mmu.translate(space, VA, False)
    assert pm.pmap_is_referenced(pg) and not pm.pmap_is_modified(pg)
    assert pm.pmap_clear_reference(pg) is True and pm.pmap_clear_reference(pg) is False
    pm.mmu.touch_batch(space, np.array([VA], np.uint64), True)
    assert pm.pmap_is_modified(pg) and pm.pmap_is_referenced(pg)
    assert pm.pmap_clear_modify(pg) is True and not pm.pmap_is_modified(pg)
    assert pm.pmap_clear_modify(pg) is False
    pm.pmap_destroy(space)


def test_zero_and_copy_page_really_copy(pm: EmuPmap) -> None:
    """pmap_zero_page zeroes the frame; pmap_copy_page copies it (no aliasing)."""
    src, dst = page(1), page(2)
    pm.ram.write(1, b"abc" * 100)
    pm.pmap_copy_page(src, dst)
    assert pm.ram.read(2, 0, 300) == b"abc" * 100
    pm.ram.write(1, b"XYZ")
    assert pm.ram.read(2, 0, 3) == b"abc"
    pm.pmap_zero_page(src)
    assert pm.ram.read(1) == bytes(PAGE)


def test_page_mappings_name_space_and_address(pm: EmuPmap) -> None:
    """PORT pmap_page_mappings: the reverse map as (pmap, va) pairs, plain ints."""
    s1, s2 = pm.pmap_create(), pm.pmap_create()
    pg = page(4)
    pm.pmap_enter(s1, VA, pg, RW, 0)
    pm.pmap_enter(s2, VA + PAGE, pg, PROT_READ, 0)
    got = sorted((id(sp), va) for sp, va in pm.pmap_page_mappings(pg))
    assert got == sorted([(id(s1), VA), (id(s2), VA + PAGE)])
    assert all(type(va) is int for _, va in pm.pmap_page_mappings(pg))
    pm.pmap_destroy(s1)
    assert pm.pmap_page_mapped(pg) == 1
    pm.pmap_destroy(s2)


def test_pmap_collect_removes_every_mapping_of_the_space_only(pm: EmuPmap) -> None:
    """§1.7: "`pmap_collect(pmap)` | optional: drop a pmap's reclaimable page-table
    resources" -- as alpha does it: remove every mapping of that address space; other spaces
    keep theirs, and the frames keep their ref/mod bits (issue 12 item 8)."""
    a, b = pm.pmap_create(), pm.pmap_create()
    pgs = [page(f) for f in range(4)]
    for i, pg in enumerate(pgs):
        pm.pmap_enter(a, VA + i * PAGE, pg, RW, 0)
    pm.pmap_enter(a, 0x7000_0000_0000, pgs[0], PROT_READ, 0)
    pm.pmap_enter(b, VA, pgs[0], RW, 0)
    pm.ram.ref[:4] = 1
    pm.ram.mod[1] = 1
    pm.pmap_collect(a)
    assert pm.pmap_resident_count(a) == 0 and pm.pmap_resident_count(b) == 1
    assert [pm.pmap_page_mapped(pg) for pg in pgs] == [1, 0, 0, 0]
    assert all(pm.pmap_is_referenced(pg) for pg in pgs) and pm.pmap_is_modified(pgs[1])
    pm.pmap_destroy(a)
    pm.pmap_destroy(b)
