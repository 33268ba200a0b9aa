"""uvm.h: the global UVM structure (struct uvm) and the physical constraint ranges.

Port of OpenBSD sys/uvm/uvm.h,v 1.71 (struct uvm) and the constraint ranges of
uvm_extern.h / machdep.c. One instance per boot lives in ``k.uvm``.

Locks: [Q] uvm.pageqlock, [F] uvm.fpageqlock, [D] uvm.aiodoned_lock, [K] boot only.
Lock order: pageqlock before fpageqlock; object and anon locks are only *tried* while
pageqlock is held (reverse order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kernel.kern.kern_synch import Mutex
from kernel.sys.param import wrap_paddr
from kernel.sys.queue import TailQ

if TYPE_CHECKING:
    from kernel.sys.proc import Proc
    from kernel.uvm.uvm_page import VmPage
    from kernel.uvm.uvm_pmemrange import UvmPmrControl


@dataclass(eq=False, slots=True)
class UvmConstraintRange:
    """struct uvm_constraint_range: physical byte addresses, ``ucr_high`` inclusive."""

    ucr_low: int
    ucr_high: int


# amd64: ISA-free DMA below 4 GiB; no_constraint spans everything, 0 .. (paddr_t)-1 (uvm_km.c).
def dma_constraint() -> UvmConstraintRange:
    return UvmConstraintRange(0x0, 0xFFFFFFFF)


def no_constraint() -> UvmConstraintRange:
    return UvmConstraintRange(0x0, wrap_paddr(-1))


@dataclass(eq=False, slots=True)
class Uvm:
    """struct uvm."""

    # vm_page queues
    page_active: TailQ[VmPage] = field(default_factory=lambda: TailQ("pageq", "page_active"))  # [Q]
    page_inactive: TailQ[VmPage] = field(
        default_factory=lambda: TailQ("pageq", "page_inactive")
    )  # [Q]
    pageqlock: Mutex = field(default_factory=lambda: Mutex("pageqlock"))  # lock for active/inactive page q
    fpageqlock: Mutex = field(default_factory=lambda: Mutex("fpageqlock"))  # lock for free page q
    page_idle_zero: bool = False  # TRUE if we should try to zero pages in the idle loop
    pmr_control: UvmPmrControl | None = None  # [F] pmemrange control data

    # page daemon trigger
    pagedaemon: int = 0  # daemon sleeps on this: chan(k.uvm, "pagedaemon")
    pagedaemon_proc: Proc | None = None  # daemon's pid

    # aiodone daemon trigger
    aiodoned: int = 0  # daemon sleeps on this: chan(k.uvm, "aiodoned")
    aiodoned_proc: Proc | None = None  # daemon's pid
    aiodoned_lock: Mutex = field(default_factory=lambda: Mutex("aiodoned_lock"))
    aio_done: TailQ[Any] = field(default_factory=lambda: TailQ("b_freelist", "aio_done"))  # [D] done bufs

    # static kernel map entry pool etc. are not modelled
    kernel_object: Any = None  # [K] kernel object (pages of it are wired kernel memory)
