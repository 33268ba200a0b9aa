"""swapdev: the disk driver glue of the emulated machine (the door from kernel/ to devices/).

The machine-dependent side of swap and file I/O: what bdevsw's strategy routine and the
disk driver are to OpenBSD. The UVM hands a sys/buf.h ``Buf`` (its pages in ``b_pages``, the
block, as a page of the device, in ``b_blkno``) to a :class:`EmuDisk`; the disk makes a
``devices.request.IoRequest`` of it: the block, the direction (``B_READ`` or not: the
``B_*`` flags stay in the kernel), and views of the pages' frames in the RAM arena, so a
cluster of scattered frames becomes one gather write (or scatter read) with no copy; then it
starts the request on a ``devices.imagedisk.ImageDisk``. The frame views are this module's
from creation to release: the device only reads or fills them. At completion, which the
device delivers from the clock's idle loop (an interrupt), the device's error and residual
are copied onto the kernel's buf (``B_ERROR``, ``b_error``, ``b_resid``), the views are
released (the pager mapping goes away), and vfs_bio's ``biodone`` runs the buf's
``b_iodone``.

Only this module and ``pmap.py`` in kernel/ import emu/ or devices/ (import-linter checks it).

Port: the emulated disk's DMA reaches all of RAM and there is no swap encryption, so the UVM
never bounces a page (uvm_swap.py).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import kernel.uvm.uvm_swap as uvm_swap
import kernel.uvm.uvm_vnode as uvm_vnode
from devices.faults import FaultConfig
from devices.imagedisk import INLINE_PAGES, ImageDisk
from devices.request import IoRequest
from devices.timing import NoneModel, TimingModel
from emu.clock import Clock
from emu.ram import Ram
from kernel.kern.vfs_bio import biodone
from kernel.sys.buf import B_ERROR, B_READ, Buf
from kernel.sys.param import PAGE_SHIFT, PAGE_SIZE

if TYPE_CHECKING:
    from kernel.kernel import Kernel

__all__ = ["EmuDisk", "swap_on_fn", "vnode_create"]



class EmuDisk:
    """A block device of the emulated machine: an ImageDisk plus the RAM its DMA reaches.

    Implements ``kernel.uvm.uvm_swap.BlockDev``. ``dv_isblk``: the UVM keeps page 0 of a
    block device for its disklabel; the default (a swap *file*) uses every page.
    """

    __slots__ = ("disk", "dv_isblk", "dv_name", "dv_npages", "nio", "ram")

    def __init__(self, disk: ImageDisk, ram: Ram, isblk: bool = False) -> None:
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
        => the views of their frames are made here and released by _iodone
        => completion copies the outcome to B_ERROR/b_error/b_resid and calls biodone(bp)
        """
        npages = bp.b_bcount >> PAGE_SHIFT
        assert len(bp.b_pages) >= npages, "dv_strategy: fewer pages than b_bcount"
        buf = self.ram.buf  # Ram.view without its frame check: a vm_page's frame is valid
        views = [buf[pg.phys_addr : pg.phys_addr + PAGE_SIZE] for pg in bp.b_pages[:npages]]
        write = not (bp.b_flags & B_READ)
        req = IoRequest(bp.b_blkno, views, write, functools.partial(self._iodone, bp))
        self.nio += 1
        self.disk.strategy(req)

    def _iodone(self, bp: Buf, req: IoRequest) -> None:
        """The device's completion (interrupt context): hand the outcome to the kernel."""
        if req.error:
            bp.b_flags |= B_ERROR
            bp.b_error = req.error
        bp.b_resid = req.resid
        for m in req.pages:  # the pager mapping goes away with the request
            m.release()
        req.pages = []
        self.nio -= 1
        biodone(bp)

    def close(self) -> None:
        """Close the disk's image (after the clock has stopped)."""
        self.disk.close()


def swap_on_fn(disk: ImageDisk, priority: int = 0) -> Callable[[Kernel], int]:
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
    disk = ImageDisk(
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
