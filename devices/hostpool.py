"""devices.hostpool: a disk's transfers on its image file, batched through a host thread pool.

A device decides *what* a request does and *when* it completes in virtual time
(devices/imagedisk.py); this engine only moves the bytes, on the host, as cheaply as it can,
and records each result. The life of a transfer here, in prose:

* **queued / in the pool**: transfers queued in the same event-loop step go to aiofiles' thread
  pool together, in one call doing an ``os.pwritev`` (a gather write straight from the frames'
  memoryviews) or ``os.preadv`` (filling them in place) per transfer: a pool hop costs about
  100 µs, and each syscall the pool makes needs the GIL, which the event loop holds while it
  runs. So runs of transfers adjacent on the disk, in the same direction, become one syscall of
  up to ``IOV_MAX`` pages (``coalesce``), as a disk queue merges them. Up to ``max_hops`` hops
  of up to ``max_batch`` transfers are in flight; a transfer touching a block held by an
  earlier hop waits for it, so overlapping transfers reach the image in submission order.
* **inline** (``inline_max_pages``, off by default): a transfer of at most that many pages
  that finds the engine idle (nothing queued, no hop in flight) is done at once, on the
  event loop's thread, by the same code a hop runs: a 4 KiB ``preadv`` or a 64 KiB
  ``pwritev`` into the host's page cache takes microseconds, a pool hop about 100 µs (and
  far more on a loaded host, where waking the pool thread costs a context switch), and the
  emulated thread that waits for a page-in can do nothing meanwhile. Submission order is
  kept (nothing is ahead of it).
* **real done**: when a hop returns (or the inline call does), each transfer gets its byte
  count and errno (a host ``OSError``: ENOSPC/EDQUOT become ENOSPC, a short transfer or
  anything else EIO), and ``ev.real_done()`` records it, so the order in which the pool
  finishes never shows: the device's completion still fires at its virtual time.
"""

from __future__ import annotations

import errno
import os
import threading
from collections import deque
from typing import Final

import aiofiles.os

from devices.request import PAGE_SHIFT, IoRequest
from emu.clock import Clock, IoEvent

__all__ = ["IOV_MAX", "HostPool", "PoolIo"]

IOV_MAX: Final = 1024
# (is_write, page memoryviews, byte offset) -> (bytes transferred, errno)
_Op = tuple[bool, list[memoryview], int]
_Result = tuple[int, int]


class PoolIo:
    """One transfer of a request on the image: the device's private record of it.

    ``err`` is the errno it completes with (injected by the device at submit, or real, set
    here); ``nbytes`` what the real I/O transferred; ``ev`` the device's completion event,
    until the real I/O is done.
    """

    __slots__ = ("err", "ev", "hi", "io", "lo", "nbytes", "write")

    def __init__(self, io: IoRequest, err: int) -> None:
        self.io = io
        self.write = io.write
        self.err = err
        self.nbytes = 0
        self.lo = io.blkno
        self.hi = io.blkno + len(io.pages)
        self.ev: IoEvent | None = None


class HostPool:
    """The host side of one disk: its open image and the hops to aiofiles' thread pool.

    :meth:`open` before :meth:`submit`; :meth:`shut` before closing the descriptor. See the
    module docstring for a transfer's life.
    """

    def __init__(
        self,
        name: str,
        npages: int,
        clock: Clock,
        max_hops: int = 2,
        max_batch: int = 64,
        coalesce: bool = True,
        inline_max_pages: int = 0,
    ) -> None:
        if max_hops < 1 or max_hops > 255 or max_batch < 1:
            raise ValueError(f"ImageDisk {name}: need 1 <= max_hops <= 255 and max_batch >= 1")
        self.name = name
        self.clock = clock
        self.max_hops = max_hops
        self.max_batch = max_batch
        self.coalesce = coalesce
        self.inline_max_pages = inline_max_pages  # see "inline" in the module docstring
        self.fd = -1
        self._owner = bytearray(npages)  # hop slot (1..max_hops) holding the block, 0 = none
        self._pending: deque[PoolIo] = deque()  # FIFO of transfers not yet handed to the pool
        self._hops = 0  # hop tasks alive
        self._slots = list(range(max_hops, 0, -1))  # free hop slots
        self._flush_scheduled = False  # a started hop task has not yet taken its batch
        self._gate = _PoolGate()

    def open(self, fd: int) -> None:
        """Start doing transfers on ``fd``, the freshly opened image."""
        self.fd = fd
        self._gate = _PoolGate()

    def shut(self) -> None:
        """Wait for any batch still running in the pool (e.g. after the clock was cancelled);
        later batches do nothing, so no pool thread ever writes to a reused descriptor."""
        with self._gate.cv:
            self._gate.shut = True
            self._gate.cv.wait_for(lambda: self._gate.busy == 0)
        self.fd = -1

    def submit(self, r: PoolIo) -> None:
        """Do ``r`` inline if it is small and the engine idle, else queue it for a hop.

        => r.ev is set; r.ev.real_done() is called once r's result is recorded
        """
        if r.hi - r.lo <= self.inline_max_pages and not self._pending and not self._hops:
            [(nbytes, err)] = _io_batch(self.fd, [(r.write, r.io.pages, r.lo << PAGE_SHIFT)])
            _result(r, nbytes, err)  # no hop holds a block: nothing in _owner to clear
        else:
            self._pending.append(r)
            self._kick()

    # --- the pool hops -----------------------------------------------------------------------

    def _kick(self) -> None:
        """Start a hop task unless one is about to take the queue or all slots are busy."""
        if not self._flush_scheduled and self._hops < self.max_hops and self._pending:
            self._flush_scheduled = True
            self._hops += 1
            self.clock.start_background(self._hop(), name=f"{self.name}-hop")

    def _take(self, slot: int) -> list[PoolIo]:
        """Take a batch off the queue head, stopping at a transfer that overlaps a block held
        by another hop (so overlapping transfers reach the image in submission order)."""
        pending = self._pending
        owner = self._owner
        mark = bytes((slot,))
        batch: list[PoolIo] = []
        while pending and len(batch) < self.max_batch:
            r = pending[0]
            lo, hi = r.lo, r.hi
            n = hi - lo
            free = owner.count(0, lo, hi)
            if free != n and free + owner.count(slot, lo, hi) != n:
                break
            owner[lo:hi] = mark * n
            batch.append(pending.popleft())
        return batch

    async def _hop(self) -> None:
        """A helper task (not a thread): run batches in the pool until the queue is empty.

        It only records results (real_done); completions are delivered by the clock.
        """
        slot = self._slots.pop()
        try:
            self._flush_scheduled = False
            while True:
                batch = self._take(slot)
                if not batch:
                    return
                self._kick()  # more queued than one batch: let another hop run alongside
                groups, ops = self._coalesce(batch)
                try:
                    results = await _aio_pool_run(self._gate, self.fd, ops)
                except OSError as e:
                    results = [(0, e.errno or errno.EIO)] * len(ops)
                except Exception:
                    self._record(groups, [(0, errno.EIO)] * len(ops))
                    raise
                self._record(groups, results)
        finally:
            self._hops -= 1
            self._slots.append(slot)

    def _coalesce(self, batch: list[PoolIo]) -> tuple[list[list[PoolIo]], list[_Op]]:
        """Group runs of same-direction transfers that follow each other on the disk (up to
        IOV_MAX pages); return the groups and one pwritev/preadv op per group."""
        groups: list[list[PoolIo]] = []
        npages = 0
        for r in batch:
            if self.coalesce and groups:
                last = groups[-1][-1]
                if r.write == last.write and r.lo == last.hi and npages + r.hi - r.lo <= IOV_MAX:
                    groups[-1].append(r)
                    npages += r.hi - r.lo
                    continue
            groups.append([r])
            npages = r.hi - r.lo
        ops: list[_Op] = [
            (g[0].write, [m for r in g for m in r.io.pages] if len(g) > 1 else g[0].io.pages,
             g[0].lo << PAGE_SHIFT)
            for g in groups
        ]
        return groups, ops

    def _record(self, groups: list[list[PoolIo]], results: list[_Result]) -> None:
        """Give each transfer its share of its group's result and mark its real I/O done."""
        owner = self._owner
        for g, (nbytes, err) in zip(groups, results, strict=True):
            for r in g:
                owner[r.lo : r.hi] = bytes(r.hi - r.lo)
                nbytes -= _result(r, nbytes, err)


def _result(r: PoolIo, nbytes: int, err: int) -> int:
    """Give ``r`` its share of ``nbytes`` transferred (and ``err``), mark its real I/O
    done; returns the bytes it took."""
    want = (r.hi - r.lo) << PAGE_SHIFT
    r.nbytes = got = min(nbytes, want)
    if err:
        r.err = errno.ENOSPC if err in (errno.ENOSPC, errno.EDQUOT) else errno.EIO
    elif got != want:
        r.err = errno.EIO  # short transfer
    assert r.ev is not None
    r.ev.real_done()
    r.ev = None
    return got


# --- what runs in the thread pool -------------------------------------------------


class _PoolGate:
    """Lets shut() wait for batches running in the pool; a batch that starts after shut()
    does nothing (EBADF) instead of touching a descriptor number that may have been reused."""

    __slots__ = ("busy", "cv", "shut")

    def __init__(self) -> None:
        self.cv = threading.Condition()
        self.busy = 0
        self.shut = False


def _io_batch(fd: int, ops: list[_Op]) -> list[_Result]:
    """Do a batch of gather writes / scatter reads, in order. Runs in a pool thread."""
    out: list[_Result] = []
    for write, data, off in ops:
        try:
            n = os.pwritev(fd, data, off) if write else os.preadv(fd, data, off)
        except OSError as e:
            out.append((0, e.errno or errno.EIO))
        else:
            out.append((n, 0))
    return out


def _pool_run(gate: _PoolGate, fd: int, ops: list[_Op]) -> list[_Result]:
    with gate.cv:
        if gate.shut:
            return [(0, errno.EBADF)] * len(ops)
        gate.busy += 1
    try:
        return _io_batch(fd, ops)  # looked up at call time: tests may wrap it
    finally:
        with gate.cv:
            gate.busy -= 1
            gate.cv.notify_all()


_aio_pool_run = aiofiles.os.wrap(_pool_run)
