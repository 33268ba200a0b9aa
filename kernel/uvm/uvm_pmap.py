"""uvm_pmap.h: the machine-independent interface to the machine-dependent pmap.

The hardware boundary (style C16): the kernel reaches the MMU's page tables and the
per-page referenced/modified bits only through these calls, with their C names, so grep works.
The real implementation is ``kernel/arch/emu/pmap.py`` over the emulated MMU; tests of pure
kernel logic may use a fake, as NetBSD's pdsim does.

amd64 semantics (reference §1.7): removing a mapping keeps the page's referenced/modified
attributes, so a later ``pmap_is_modified`` still sees a write made through a removed mapping.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from kernel.sys.mman import Prot

if TYPE_CHECKING:
    from kernel.uvm.uvm_page import VmPage


class Pmap(Protocol):
    """The pmap operations of uvm_pmap.h the port uses. ``pm`` is one address space."""

    def pmap_create(self) -> Any: ...

    def pmap_destroy(self, pm: Any) -> None: ...

    def pmap_enter(self, pm: Any, va: int, pg: VmPage, prot: Prot, flags: int) -> int: ...

    def pmap_remove(self, pm: Any, sva: int, eva: int) -> None: ...

    def pmap_protect(self, pm: Any, sva: int, eva: int, prot: Prot) -> None: ...

    def pmap_extract(self, pm: Any, va: int) -> int | None: ...

    def pmap_update(self, pm: Any) -> None: ...

    def pmap_collect(self, pm: Any) -> None:
        """Only with __HAVE_PMAP_COLLECT: drop ``pm``'s reclaimable resources (its mappings)."""
        ...

    def pmap_page_protect(self, pg: VmPage, prot: Prot) -> None: ...

    def pmap_is_referenced(self, pg: VmPage) -> bool: ...

    def pmap_is_modified(self, pg: VmPage) -> bool: ...

    def pmap_clear_reference(self, pg: VmPage) -> bool: ...

    def pmap_clear_modify(self, pg: VmPage) -> bool: ...

    def pmap_zero_page(self, pg: VmPage) -> None: ...

    def pmap_copy_page(self, src: VmPage, dst: VmPage) -> None: ...

    def pmap_map_direct(self, pg: VmPage) -> memoryview:
        """amd64 __HAVE_PMAP_DIRECT: the page's bytes through the direct map (the kernel's
        view of a frame, as ``uvm_pagermapin`` gives a single page). PORT: a writable
        memoryview of the frame, to be given back with ``pmap_unmap_direct``."""
        ...

    def pmap_unmap_direct(self, va: memoryview) -> None: ...

    def pmap_page_mapped(self, pg: VmPage) -> int:
        """PORT: number of live mappings of ``pg`` (for DIAGNOSTIC checks and uvm_check)."""
        ...
