"""uvm_extern.h: what the rest of the kernel calls of the UVM (the page daemon's part).

After OpenBSD sys/uvm/uvm_extern.h, which declares the page daemon's entry points
(``uvm_pageout``, ``uvm_aiodone_daemon``, ``uvm_wait``) for the rest of the kernel. The port
keeps only that part here: the flags uvm_extern.h also defines stay with the modules that
take them (``UVM_PGA_*`` in uvm_page.py, ``UVM_PLA_*`` in uvm_pmemrange.py).

Deviations (PORT):
- The page daemon is a module chosen at boot (kern/init_main.py's ``load_pdaemon``), not code
  linked into the kernel: the kernel reaches it as ``k.pdaemon``, typed by
  :class:`UvmPdaemon`, and calls ``await k.pdaemon.uvm_wait(k, wmsg)`` where C calls
  ``uvm_wait(wmsg)``. No kernel module imports a daemon module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from kernel.kernel import Kernel

__all__ = ["UVM_PDAEMON_ENTRY_POINTS", "UvmPdaemon"]


class UvmPdaemon(Protocol):
    """A page daemon module (``kernel/uvm/uvm_pdaemon.py`` is the seed's, 1.105).

    init_main starts the two kernel threads; the allocators and the fault handler call
    ``uvm_wait`` when they find no free page.
    """

    async def uvm_pageout(self, k: Kernel) -> None:
        """uvm_pageout: the "pagedaemon" kernel thread (never returns)."""

    async def uvm_aiodone_daemon(self, k: Kernel) -> None:
        """uvm_aiodone_daemon: the "aiodoned" kernel thread (never returns)."""

    async def uvm_wait(self, k: Kernel, wmsg: str) -> None:
        """uvm_wait: sleep until the page daemon has freed some pages.

        => called with all locks released; the page daemon itself should not call it
        """


# the entry points a page daemon module must provide (checked when it is loaded at boot)
UVM_PDAEMON_ENTRY_POINTS: Final = tuple(n for n in vars(UvmPdaemon) if not n.startswith("_"))
