"""devices.request: one transfer of whole pages between page memory and a block device.

A request is the device's own type, not a BSD ``struct buf``: the kernel keeps its buf (and
its ``B_*`` flags) to itself, and its disk driver glue turns a buf into one of these. A request
names whole 4 KiB pages: ``blkno`` counts pages on the device (not 512-byte sectors), and
``pages`` holds one 4096-byte memoryview per page, which may lie anywhere in page memory, so
a cluster of scattered frames is one gather write (or scatter read) with no copy. ``write`` is
the direction: True writes the pages to the device, False reads the device into them (the
views must then be writable).

Life of a request (the state machine, in prose): its owner creates it with the block, the
page views, the direction and the completion callback ``iodone``, and hands it to a device's
``strategy``. The device sets ``t_submit`` and ``t_done`` (virtual ns) at once; from then on
it owns the request and reads the views until completion. At completion, in virtual-time
order, the device sets ``error`` (0, or ``EIO``/``ENOSPC``/``EINVAL``) and ``resid`` (bytes
not transferred) and calls ``iodone(req)``, once, like an interrupt handler. Errors are
reported on the request, never raised. The device never releases the page views: they are
the owner's from creation to release, which it does in or after ``iodone``. A request may be
submitted again after its completion; ``strategy`` resets ``error`` and ``resid``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

__all__ = ["PAGE_SHIFT", "PAGE_SIZE", "IoRequest"]

PAGE_SHIFT: Final = 12  # devices know nothing of the kernel: the block size is their own
PAGE_SIZE: Final = 1 << PAGE_SHIFT


class IoRequest:
    """A read or write of whole pages at a block of a device. See the module docstring.

    Fields (who sets them in brackets): [O] the owner, before ``strategy``; [D] the device.
    """

    __slots__ = ("blkno", "error", "iodone", "pages", "resid", "t_done", "t_submit", "write")

    def __init__(
        self,
        blkno: int,
        pages: list[memoryview],
        write: bool,
        iodone: Callable[[IoRequest], None],
    ) -> None:
        self.blkno = blkno  # [O] first page on the device
        self.pages = pages  # [O] one PAGE_SIZE memoryview per page (writable for a read)
        self.write = write  # [O] the direction: True = pages -> device
        self.iodone = iodone  # [O] called once by the device at completion
        self.error = 0  # [D] errno, 0 = ok
        self.resid = 0  # [D] bytes not transferred
        self.t_submit = -1  # [D] virtual ns when strategy accepted it
        self.t_done = -1  # [D] virtual ns when it completes (known at submit)

    @property
    def nbytes(self) -> int:
        """Bytes the request transfers: its pages, whole."""
        return len(self.pages) << PAGE_SHIFT

    def __repr__(self) -> str:
        return (
            f"<IoRequest {'write' if self.write else 'read'} blkno={self.blkno}"
            f" npages={len(self.pages)} error={self.error} resid={self.resid}>"
        )
