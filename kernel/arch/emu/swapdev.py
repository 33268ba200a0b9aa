"""swapdev: the disk driver glue of the emulated machine (the door from kernel/ to devices/).

The machine-dependent side of swap and file I/O: what bdevsw's strategy routine and the
disk driver are to OpenBSD. The UVM hands a sys/buf.h ``Buf`` (its pages in ``b_pages``, the
block, as a page of the device, in ``b_blkno``) to a :class:`EmuDisk`; the disk turns it
into a ``devices.buf.Buf`` whose data are views of the pages' frames in the RAM arena, so a
cluster of scattered frames becomes one gather write (or scatter read) with no copy, and
starts it on a ``devices.swapdisk.SwapDisk``. At completion, which the device delivers from
the clock's idle loop (an interrupt), the outcome is copied back onto the kernel's buf, the
frame views are released (the pager mapping goes away), and sys/buf.h's ``biodone`` runs the
buf's ``b_iodone``.

Only this module and ``pmap.py`` in kernel/ import emu/ or devices/ (import-linter checks it).

Port: the emulated disk's DMA reaches all of RAM and there is no swap encryption, so the UVM
never bounces a page (uvm_swap.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import kernel.uvm.uvm_swap as uvm_swap
import kernel.uvm.uvm_vnode as uvm_vnode
from devices.buf import B_ASYNC as DEV_B_ASYNC
from devices.buf import B_BUSY as DEV_B_BUSY
from devices.buf import B_CALL as DEV_B_CALL
from devices.buf import B_ERROR as DEV_B_ERROR
from devices.buf import B_READ as DEV_B_READ
from devices.buf import B_WRITE as DEV_B_WRITE
from devices.buf import Buf as DevBuf
from devices.faults import FaultConfig
from devices.swapdisk import INLINE_PAGES, SwapDisk
from devices.timing import NoneModel, TimingModel
from emu.clock import Clock
from emu.ram import Ram
from kernel.sys.buf import B_ASYNC, B_ERROR, B_READ, Buf, biodone
from kernel.sys.param import PAGE_SHIFT

if TYPE_CHECKING:
    from kernel.kernel import Kernel

__all__ = ["EmuDisk", "swap_on_fn", "vnode_create"]



class EmuDisk:
    """A block device of the emulated machine: a SwapDisk plus the RAM its DMA reaches.

    Implements ``kernel.uvm.uvm_swap.BlockDev``. ``dv_isblk``: the UVM keeps page 0 of a
    block device for its disklabel; the default (a swap *file*) uses every page.
    """

    __slots__ = ("disk", "dv_isblk", "dv_name", "dv_npages", "nio", "ram")

    def __init__(self, disk: SwapDisk, ram: Ram, isblk: bool = False) -> None:
        self.disk = disk
        self.ram = ram
        self.dv_name = disk.name
        self.dv_npages = disk.npages
        self.dv_isblk = isblk
        self.nio = 0  # requests started and not yet completed

    def __repr__(self) -> str:
        return f"<EmuDisk {self.dv_name} {self.dv_npages} pages>"

    def dv_strategy(self, bp: Buf) -> None:
        """strategy: start ``bp`` on the disk (never sleeps).

        => bp.b_blkno is a page of this disk; bp.b_pages the pages to write or fill
        => completion copies b_error/B_ERROR/b_resid back and calls biodone(bp)
        """
        npages = bp.b_bcount >> PAGE_SHIFT
        assert len(bp.b_pages) >= npages, "dv_strategy: fewer pages than b_bcount"
        views = [self.ram.view(pg.phys_addr >> PAGE_SHIFT) for pg in bp.b_pages[:npages]]
        flags = DEV_B_BUSY | DEV_B_CALL
        flags |= DEV_B_READ if bp.b_flags & B_READ else DEV_B_WRITE
        if bp.b_flags & B_ASYNC:
            flags |= DEV_B_ASYNC
        dbp = DevBuf(flags, bp.b_blkno, views, iodone=self._iodone, private=bp)
        bp.b_private = dbp
        self.nio += 1
        self.disk.strategy(dbp)

    def _iodone(self, dbp: DevBuf) -> None:
        """The device's completion (interrupt context): hand the outcome to the kernel."""
        bp = dbp.b_private
        assert isinstance(bp, Buf)
        if dbp.b_flags & DEV_B_ERROR:
            bp.b_flags |= B_ERROR
            bp.b_error = dbp.b_error
        bp.b_resid = dbp.b_resid
        for m in dbp.b_data:  # the pager mapping goes away with the request
            m.release()
        dbp.b_data = []
        bp.b_private = None
        self.nio -= 1
        biodone(bp)

    def close(self) -> None:
        """Close the disk's image (after the clock has stopped)."""
        self.disk.close()


def swap_on_fn(disk: SwapDisk, priority: int = 0) -> Callable[[Kernel], int]:
    """The boot-time ``swap_on(k) -> errno`` of ``disk`` (init_main.main calls it).

    => the disk must be created (open); its DMA reaches the machine's RAM (``k.md.ram``)
    """

    def swap_on(k: Kernel) -> int:
        ram = k.md.ram
        assert isinstance(ram, Ram)
        return uvm_swap.swap_on(k, EmuDisk(disk, ram), priority)

    return swap_on


def vnode_create(
    k: Kernel,
    path: str | os.PathLike[str],
    size: int,
    model: TimingModel | None = None,
    ram: Ram | None = None,
    faults: FaultConfig | None = None,
) -> uvm_vnode.Vnode:
    """A file of ``size`` bytes for the vnode pager: a fresh sparse image at ``path``.

    => the file is a disk of its own (rounded up to pages), read and written through
       uvm_vnode's synchronous I/O; ``model`` defaults to an infinitely fast disk
    => ``ram`` defaults to the machine's (``k.md.ram``); ``faults`` as for a swap disk;
       close with ``vp.v_dev.close()``
    """
    if ram is None:
        ram = k.md.ram
    assert isinstance(ram, Ram)
    npages = max(1, (size + (1 << PAGE_SHIFT) - 1) >> PAGE_SHIFT)
    clock = k.sched
    assert isinstance(clock, Clock), "vnode_create: the kernel does not run on an emu Clock"
    disk = SwapDisk(
        path,
        npages,
        clock,
        model if model is not None else NoneModel(),
        faults,
        name=os.path.basename(os.fspath(path)),
        inline_max_pages=INLINE_PAGES,
    )
    disk.create(force=True)
    vp = uvm_vnode.Vnode(v_name=disk.name, v_dev=EmuDisk(disk, ram), v_blkoff=0, v_size=size)
    uvm_vnode.uvm_vnp_obj_alloc(vp)
    return vp
