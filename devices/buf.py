"""devices.buf: a block I/O request, after BSD's ``struct buf`` (sys/sys/buf.h).

Only the fields a swap device needs are kept. A request names whole 4 KiB pages: ``b_blkno``
counts pages on the device (not 512-byte sectors as in BSD), and ``b_data`` holds one writable
4096-byte memoryview per page, which may come from frames scattered over the RAM arena, so a
cluster of non-contiguous frames is one gather write with no copy.

Life of a request (the state machine, in prose): the caller fills a :class:`Buf`, sets
``B_BUSY`` (and ``B_CALL`` with ``b_iodone`` for an asynchronous request) and hands it to a
device's ``strategy``. From then on the device owns it until completion. At completion, in
virtual-time order, the device sets ``b_error``/``B_ERROR`` and ``b_resid`` and calls
:func:`biodone`, which sets ``B_DONE`` and calls ``b_iodone(bp)``. Errors are reported on the
request (``B_ERROR`` + ``b_error`` = ``EIO``/``ENOSPC``/``EINVAL``), never raised. To reuse a
buf, the caller sets ``b_flags`` afresh, as ``uvm_swap_io`` does: ``strategy`` resets
``b_error``/``b_resid`` but not the flags, and a second ``biodone`` without that is an error.

Port: flag values are OpenBSD's (sys/sys/buf.h); ``B_WRITE`` is 0 as in C, so a request is a
write exactly when ``B_READ`` is clear. ``biodone`` calls ``b_iodone`` whenever it is set (C
requires ``B_CALL`` too); it clears ``B_CALL`` as C does. It never calls ``brelse`` or
``wakeup``: those belong to the kernel, which its ``b_iodone`` reaches.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Final

__all__ = [
    "B_ASYNC",
    "B_BUSY",
    "B_CALL",
    "B_DONE",
    "B_ERROR",
    "B_PDAEMON",
    "B_READ",
    "B_WRITE",
    "PAGE_SHIFT",
    "PAGE_SIZE",
    "Buf",
    "BufFlags",
    "biodone",
]

PAGE_SHIFT: Final = 12
PAGE_SIZE: Final = 1 << PAGE_SHIFT


class BufFlags(enum.IntFlag):
    """b_flags: the subset of sys/sys/buf.h that block devices and the pager use."""

    B_WRITE = 0x00000000  # Write buffer (pseudo flag).
    B_ASYNC = 0x00000004  # Start I/O, do not wait.
    B_BUSY = 0x00000010  # I/O in progress.
    B_CALL = 0x00000040  # Call b_iodone from biodone.
    B_DONE = 0x00000100  # I/O completed.
    B_ERROR = 0x00000400  # I/O error occurred.
    B_READ = 0x00008000  # Read buffer.
    B_PDAEMON = 0x00200000  # I/O started by pagedaemon


B_WRITE: Final = BufFlags.B_WRITE
B_ASYNC: Final = BufFlags.B_ASYNC
B_BUSY: Final = BufFlags.B_BUSY
B_CALL: Final = BufFlags.B_CALL
B_DONE: Final = BufFlags.B_DONE
B_ERROR: Final = BufFlags.B_ERROR
B_READ: Final = BufFlags.B_READ
B_PDAEMON: Final = BufFlags.B_PDAEMON

# plain ints for hot paths (IntFlag operators run Python code in enum.py)
_B_CALL: Final = int(B_CALL)
_B_DONE: Final = int(B_DONE)


class Buf:
    """struct buf: one read or write of whole pages. See the module docstring for its life.

    Fields (owner in brackets): [C] the caller fills them before ``strategy``; [D] the device
    sets them; [K] for the kernel's own use, never read by a device.
    """

    __slots__ = (
        "b_bcount",
        "b_blkno",
        "b_bufsize",
        "b_data",
        "b_error",
        "b_flags",
        "b_iodone",
        "b_private",
        "b_resid",
        "t_done",
        "t_submit",
    )

    def __init__(
        self,
        flags: BufFlags,
        blkno: int,
        data: list[memoryview],
        iodone: Callable[[Buf], None] | None = None,
        private: object = None,
    ) -> None:
        nbytes = len(data) << PAGE_SHIFT
        self.b_flags = flags  # [C,D] BufFlags
        self.b_blkno = blkno  # [C] first page on the device
        self.b_bcount = nbytes  # [C] bytes to transfer
        self.b_bufsize = nbytes  # [C] bytes of b_data
        self.b_data = data  # [C] one writable PAGE_SIZE memoryview per page
        self.b_error = 0  # [D] errno, 0 = ok
        self.b_resid = 0  # [D] bytes not transferred
        self.b_iodone = iodone  # [C] called by biodone
        self.b_private = private  # [K]
        self.t_submit = -1  # [D] virtual ns when strategy accepted it
        self.t_done = -1  # [D] virtual ns when it completes (known at submit)

    @property
    def npages(self) -> int:
        return self.b_bcount >> PAGE_SHIFT

    def __repr__(self) -> str:
        return (
            f"<Buf {self.b_flags!r} blkno={self.b_blkno} bcount={self.b_bcount}"
            f" error={self.b_error} resid={self.b_resid}>"
        )


def biodone(bp: Buf) -> None:
    """biodone: mark I/O complete on a buffer.

    => sets B_DONE; if b_iodone is set, clears B_CALL and calls it
    Port: called by the device at completion, from the clock's idle loop (interrupt context).
    """
    # PORT: one BufFlags() from int arithmetic; each IntFlag operator costs about 1 µs.
    flags = int(bp.b_flags)
    if flags & _B_DONE:
        raise RuntimeError(f"biodone: already done {bp!r}")
    if bp.b_iodone is not None:
        bp.b_flags = BufFlags((flags | _B_DONE) & ~_B_CALL)
        bp.b_iodone(bp)
    else:
        bp.b_flags = BufFlags(flags | _B_DONE)
