"""pmap.c: the machine-dependent physical map for the emulated MMU.

Implements the ``Pmap`` protocol of ``kernel/uvm/uvm_pmap.py`` over ``emu.mmu`` and the
per-frame referenced/modified bits of ``emu.ram``, with the amd64 semantics of the reference
(§1.7). This module and ``swapdev.py`` are the only doors from ``kernel/`` to the hardware.

One ``struct pmap`` is one :class:`emu.mmu.AddressSpace`; a vm_page is a frame (its
``phys_addr >> PAGE_SHIFT``).

Deviations from amd64 ``pmap.c`` (PORT):
- The hardware keeps the referenced/modified bits per *frame*, not per PTE, so the attributes
  amd64 folds into the pv head when it zaps a PTE are simply the frame's bits: they survive
  ``pmap_remove`` and ``pmap_page_protect(PROT_NONE)`` for free, and
  ``pmap_clear_reference``/``pmap_clear_modify`` clear one byte (no TLB shootdown to model).
- ``pmap_enter`` never fails (no page-table page allocation can fail: the MMU grows its own
  arrays), and does not pre-set the referenced/modified bits from the access type: the CPU
  retries the faulting access right after the trap returns, with no await in between, and the
  MMU sets them then.
- ``pmap_collect`` exists (amd64 has none and is built without ``__HAVE_PMAP_COLLECT``): it
  removes every mapping of the address space, as alpha's does, for kernels configured with
  ``have_pmap_collect``.
- Wiring is tracked by the VM (``wire_count``); the MMU has no wired bit, so ``PMAP_WIRED`` is
  accepted and ignored.
- ``pmap_page_mapped``, ``pmap_page_mappings``, ``pmap_pte``, ``pmap_is_writable`` and
  ``pmap_resident_count`` serve DIAGNOSTIC checks (``uvm_check``) and tests;
  ``pmap_resident_count`` is a real macro upstream, the others are the port's.
- numpy integers never leave this module: every value handed back to the kernel is an ``int``
  or a ``bool``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from emu.mmu import VA_LIMIT, AddressSpace, Mmu
from emu.ram import PAGE_SHIFT, PAGE_SIZE, Ram
from kernel.sys.mman import PROT_READ, PROT_WRITE, Prot
from kernel.uvm.uvm_page import PG_RDONLY

if TYPE_CHECKING:
    from kernel.uvm.uvm_page import VmPage

__all__ = ["PMAP_CANFAIL", "PMAP_WIRED", "EmuPmap"]

# pmap_enter flags (uvm_pmap.h): the low bits carry the access type (PROT_*)
PMAP_WIRED: Final = 0x00000010  # wired mapping
PMAP_CANFAIL: Final = 0x00000020  # can fail if resource shortage


class EmuPmap:
    """The machine's pmap module: ``k.pmap``. ``pm`` arguments are address spaces."""

    __slots__ = ("_buf", "_mod", "_ref", "mmu", "ram")

    def __init__(self, mmu: Mmu) -> None:
        self.mmu = mmu
        self.ram: Ram = mmu.ram
        # byte views of the frames' ref/mod bits (fixed for the life of the Ram): an item of a
        # memoryview is a plain int, several times cheaper than indexing the numpy array
        self._ref = self.ram.ref.data
        self._buf = self.ram.buf  # the arena's bytes: the direct map (pmap_map_direct)
        self._mod = self.ram.mod.data

    def __repr__(self) -> str:
        return f"<EmuPmap over {self.ram!r}>"

    # --- address spaces ----------------------------------------------------------------------

    def pmap_create(self) -> AddressSpace:
        """pmap_create: create a pmap (one empty address space)."""
        return self.mmu.new_space()

    def pmap_destroy(self, pm: AddressSpace) -> None:
        """pmap_destroy: drop the (only) reference to a pmap: remove what is left and free it."""
        self.mmu.destroy_space(pm)

    def pmap_collect(self, pm: AddressSpace) -> None:
        """pmap_collect: the process owning ``pm`` is being swapped out: free its page-table
        resources by removing every mapping of its address space.

        => called by uvm_swapout_threads (the page daemon), with __HAVE_PMAP_COLLECT only
        => as alpha's (and ia64's): ``pmap_remove`` of the whole user range, wired mappings
           too; the frames keep their ref/mod bits, the pages stay with their owners, and a
           later access faults them back in. The daemon can then reclaim the pages without
           finding them mapped.
        """
        self.pmap_remove(pm, 0, VA_LIMIT)

    def pmap_resident_count(self, pm: AddressSpace) -> int:
        """pmap_resident_count: number of valid mappings in ``pm``."""
        return int(pm.resident)

    # --- mappings ------------------------------------------------------------------------------

    def pmap_enter(self, pm: AddressSpace, va: int, pg: VmPage, prot: Prot, flags: int) -> int:
        """pmap_enter: enter a mapping of ``pg`` at ``va`` with protection ``prot``.

        => writable iff ``prot`` has PROT_WRITE and the page is not PG_RDONLY
        => replaces any mapping ``va`` had; returns 0 (never fails here)
        """
        writable = bool(prot & PROT_WRITE) and not (pg.pg_flags & PG_RDONLY)
        self.mmu.enter(pm, va, pg.phys_addr >> PAGE_SHIFT, writable)
        return 0

    def pmap_remove(self, pm: AddressSpace, sva: int, eva: int) -> None:
        """pmap_remove: remove the mappings in [sva, eva); ref/mod stay with the frames."""
        self.mmu.remove_range(pm, sva, min(eva, VA_LIMIT))

    def pmap_protect(self, pm: AddressSpace, sva: int, eva: int, prot: Prot) -> None:
        """pmap_protect: lower the protection of [sva, eva) to ``prot``.

        => no read access: the mappings are removed (amd64 calls pmap_remove)
        => no write access: the mappings become read-only
        => permission is never raised here (that needs pmap_enter)
        """
        if not (prot & PROT_READ):
            self.pmap_remove(pm, sva, eva)
        elif not (prot & PROT_WRITE):
            self.mmu.protect_range(pm, sva, min(eva, VA_LIMIT), False)

    def pmap_extract(self, pm: AddressSpace, va: int) -> int | None:
        """pmap_extract: the physical address ``va`` maps to, or None (C: FALSE)."""
        r = self.mmu.lookup(pm, va)
        if r is None:
            return None
        return (int(r[0]) << PAGE_SHIFT) | (va & ((1 << PAGE_SHIFT) - 1))

    def pmap_update(self, pm: AddressSpace) -> None:
        """pmap_update: flush deferred TLB work. The emulated MMU has none."""

    # --- physical pages ------------------------------------------------------------------------

    def pmap_page_protect(self, pg: VmPage, prot: Prot) -> None:
        """pmap_page_protect: lower the permission of every mapping of ``pg``.

        => PROT_NONE: remove all mappings (the frame keeps its ref/mod bits, as amd64 keeps
           them in the page's attributes)
        => PROT_READ (no write): make every mapping read-only
        """
        f = pg.phys_addr >> PAGE_SHIFT
        if not (prot & PROT_READ):
            self.mmu.remove_all(f)
        elif not (prot & PROT_WRITE):
            self.mmu.write_protect_all(f)

    def pmap_is_referenced(self, pg: VmPage) -> bool:
        """pmap_is_referenced: was the page accessed since the bit was last cleared?"""
        return bool(self._ref[pg.phys_addr >> PAGE_SHIFT])

    def pmap_is_modified(self, pg: VmPage) -> bool:
        """pmap_is_modified: was the page written since the bit was last cleared?"""
        return bool(self._mod[pg.phys_addr >> PAGE_SHIFT])

    def pmap_clear_reference(self, pg: VmPage) -> bool:
        """pmap_clear_reference: clear the referenced bit; returns whether it was set."""
        f = pg.phys_addr >> PAGE_SHIFT
        was = bool(self._ref[f])
        self._ref[f] = 0
        return was

    def pmap_clear_modify(self, pg: VmPage) -> bool:
        """pmap_clear_modify: clear the modified bit; returns whether it was set."""
        f = pg.phys_addr >> PAGE_SHIFT
        was = bool(self._mod[f])
        self._mod[f] = 0
        return was

    def pmap_zero_page(self, pg: VmPage) -> None:
        """pmap_zero_page: zero the page's frame."""
        self.ram.zero(pg.phys_addr >> PAGE_SHIFT)

    def pmap_copy_page(self, src: VmPage, dst: VmPage) -> None:
        """pmap_copy_page: copy ``src``'s frame into ``dst``'s (a real copy)."""
        self.ram.copy(src.phys_addr >> PAGE_SHIFT, dst.phys_addr >> PAGE_SHIFT)

    def pmap_map_direct(self, pg: VmPage) -> memoryview:
        """pmap_map_direct: the page's frame through the direct map: a writable view of its
        bytes in the RAM arena (no referenced/modified bit changes: the kernel's own mapping)."""
        pa = pg.phys_addr  # a managed page's frame is in the arena (no Ram.view bounds check)
        return self._buf[pa : pa + PAGE_SIZE]

    def pmap_unmap_direct(self, va: memoryview) -> None:
        """pmap_unmap_direct: give back a view from pmap_map_direct."""
        va.release()

    def pmap_page_mapped(self, pg: VmPage) -> int:
        """PORT: the number of live mappings of ``pg`` (DIAGNOSTIC checks)."""
        return int(self.mmu.nmappings(pg.phys_addr >> PAGE_SHIFT))

    def pmap_page_mappings(self, pg: VmPage) -> list[tuple[AddressSpace, int]]:
        """PORT: (pmap, va) of every mapping of ``pg``, from the reverse map (uvm_check)."""
        return [(pm, int(va)) for pm, va in self.mmu.mappings(pg.phys_addr >> PAGE_SHIFT)]

    def pmap_pte(self, pm: AddressSpace, va: int) -> tuple[int, bool] | None:
        """PORT: (physical address of the page, writable) that ``va`` maps to, or None."""
        r = self.mmu.lookup(pm, va)
        if r is None:
            return None
        return int(r[0]) << PAGE_SHIFT, bool(r[1])

    def pmap_is_writable(self, pm: AddressSpace, va: int) -> bool:
        """PORT: whether ``va`` is mapped writable in ``pm`` (uvm_check, tests)."""
        r = self.mmu.lookup(pm, va)
        return r is not None and bool(r[1])
