"""sys/buf.h: the kernel's struct buf and the buffer flags the UVM uses.

The kernel's view of an I/O request, and the only one with ``B_*`` flags. The disk driver
glue (kernel/arch/emu/swapdev.py) turns it into a request of the emulated disk
(devices.request.IoRequest: a block, page views and a direction), and on the device's
completion interrupt copies the outcome back here (``B_ERROR``, ``b_error``, ``b_resid``)
and calls ``biodone``, which lives with ``biowait`` in kern/vfs_bio.py as in vfs_bio.c.

Port: ``b_data`` is not a kernel virtual address; ``b_pages`` lists the vm_pages whose frames
the transfer reads or fills, which is what uvm_aio_aiodone recovers from the VA upstream.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from kernel.sys.flags import fast_ops
from kernel.sys.queue import TailQEntry

if TYPE_CHECKING:
    from kernel.kernel import Kernel


@fast_ops
class BFlags(enum.IntFlag):
    """b_flags (sys/buf.h values)."""

    B_WRITE = 0x00000000  # Write buffer (pseudo flag).
    B_AGE = 0x00000001  # Move to age queue when I/O done.
    B_NEEDCOMMIT = 0x00000002  # Needs committing to stable storage
    B_ASYNC = 0x00000004  # Start I/O, do not wait.
    B_BAD = 0x00000008  # Bad block revectoring in progress.
    B_BUSY = 0x00000010  # I/O in progress.
    B_CACHE = 0x00000020  # Bread found us in the cache.
    B_CALL = 0x00000040  # Call b_iodone from biodone.
    B_DELWRI = 0x00000080  # Delay I/O until buffer reused.
    B_DONE = 0x00000100  # I/O completed.
    B_EINTR = 0x00000200  # I/O was interrupted
    B_ERROR = 0x00000400  # I/O error occurred.
    B_INVAL = 0x00000800  # Does not contain valid info.
    B_NOCACHE = 0x00001000  # Do not cache block after use.
    B_PHYS = 0x00002000  # I/O to user memory.
    B_RAW = 0x00004000  # Set by physio for raw transfers.
    B_READ = 0x00008000  # Read buffer.
    B_WANTED = 0x00010000  # Process wants this buffer.
    B_WRITEINPROG = 0x00020000  # Write in progress.
    B_XXX = 0x00040000  # Debugging flag.
    B_DEFERRED = 0x00080000  # Skipped over for cleaning
    B_SCANNED = 0x00100000  # Block already pushed during sync
    B_PDAEMON = 0x00200000  # I/O started by pagedaemon
    B_RELEASED = 0x00400000  # free this buffer after its kvm
    B_WARM = 0x00800000  # buffer is or has been on the warm queue
    B_COLD = 0x01000000  # buffer is on the cold queue
    B_BC = 0x02000000  # buffer is managed by the cache
    B_DMA = 0x04000000  # buffer is DMA reachable


B_WRITE: Final = BFlags.B_WRITE
B_ASYNC: Final = BFlags.B_ASYNC
B_BUSY: Final = BFlags.B_BUSY
B_CALL: Final = BFlags.B_CALL
B_DONE: Final = BFlags.B_DONE
B_ERROR: Final = BFlags.B_ERROR
B_NOCACHE: Final = BFlags.B_NOCACHE
B_RAW: Final = BFlags.B_RAW
B_READ: Final = BFlags.B_READ
B_PDAEMON: Final = BFlags.B_PDAEMON


@dataclass(eq=False, slots=True)
class Buf:
    """struct buf (the fields the UVM uses)."""

    b_flags: BFlags = B_WRITE
    b_bufsize: int = 0  # Allocated buffer size.
    b_bcount: int = 0  # Valid bytes in buffer.
    b_resid: int = 0  # Remaining I/O.
    b_error: int = 0  # Errno value.
    b_blkno: int = 0  # Underlying physical block number (drum slot for swap I/O).
    b_pages: list[Any] = field(default_factory=list)  # PORT: the vm_pages of the transfer
    # PORT: a bounced swap write (swap encryption): the original pages behind the bounce
    # pages in b_pages, busy until the write is done (uvm_swap.py, uvm_pager.py)
    b_origpages: list[Any] = field(default_factory=list)
    b_iodone: Callable[[Buf], None] | None = None  # Function called upon completion.
    b_freelist: TailQEntry[Buf] = field(default_factory=TailQEntry)  # Free list position
    b_kernel: Kernel | None = None  # PORT: the kernel this buf belongs to (for b_iodone)
    b_dev: Any = None  # PORT: the swap device it goes to

