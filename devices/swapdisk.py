"""devices.swapdisk: a swap disk backed by a sparse image file, with real asynchronous I/O.

The life of one request (a :class:`~devices.request.IoRequest`), in prose:

* **submitted**: :meth:`SwapDisk.strategy` checks it (EINVAL if malformed or past the end),
  decides its fault (:mod:`devices.faults`), computes its virtual completion time
  ``t_done = max(now, busy_until) + service + extra_latency`` (one request at a time, FIFO,
  like a BSD ``bufq``) and registers ``clock.io_event(t_done, ...)``. All of this is
  synchronous, so it depends only on the order of submission.
* **queued / in the pool**: requests queued in the same event-loop step go to aiofiles' thread
  pool together, in one call doing an ``os.pwritev`` (a gather write straight from the frames'
  memoryviews) or ``os.preadv`` (filling them in place) per request: a pool hop costs about
  100 µs, and each syscall the pool makes needs the GIL, which the event loop holds while it
  runs. So runs of requests adjacent on the disk, in the same direction, become one syscall of
  up to ``IOV_MAX`` pages (``coalesce``), as a disk queue merges them. Up to ``max_hops`` hops
  of up to ``max_batch`` requests are in flight; a request touching a block held by an earlier
  hop waits for it, so overlapping requests reach the image in submission order. A failing or
  invalid request never reaches the pool.
* **inline** (``inline_max_pages``, off by default): a request of at most that many pages
  that finds the device idle (nothing queued, no hop in flight) is done at once, on the
  event loop's thread, by the same code a hop runs: a 4 KiB ``preadv`` or a 64 KiB
  ``pwritev`` into the host's page cache takes microseconds, a pool hop about 100 µs (and
  far more on a loaded host, where waking the pool thread costs a context switch), and the
  emulated thread that waits for a page-in can do nothing meanwhile. Submission order is
  kept (nothing is ahead of it), and the completion is still delivered by the clock at
  ``t_done``, so virtual time and every completion are the same as through the pool.
* **real done**: when a hop returns, ``ev.real_done()`` only records each result, so the
  order in which the pool finishes never shows.
* **done**: the clock's idle loop fires the event at ``t_done`` (never before the real I/O
  finished); :meth:`SwapDisk._complete` sets the request's ``error`` and ``resid``, counts,
  and calls its ``iodone``, like an interrupt handler.

Completion order and times are the same on every run, on asyncio and on uvloop. Errors,
injected or real (a host ``OSError``: ENOSPC/EDQUOT become ENOSPC, anything else EIO), are set
on the request and never raised.
"""

from __future__ import annotations

import errno
import functools
import os
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Final

import aiofiles.os

from devices.faults import FaultConfig, FaultInjector
from devices.request import PAGE_SHIFT, PAGE_SIZE, IoRequest
from devices.timing import TimingModel
from emu.clock import Clock, IoEvent

__all__ = ["HIST_BUCKETS", "INLINE_PAGES", "DiskStats", "SwapDisk"]

HIST_BUCKETS: Final = 64
IOV_MAX: Final = 1024
INLINE_PAGES: Final = 16  # inline_max_pages of the machine's disks: a swap cluster (64 KiB)
# (is_write, page memoryviews, byte offset) -> (bytes transferred, errno)
_Op = tuple[bool, list[memoryview], int]
_Result = tuple[int, int]


@dataclass
class DiskStats:
    """A device's counters, updated at completion. ``reads``..``write_pages`` count completed
    requests, failed ones too; ``bytes_*`` count bytes transferred; ``errors`` counts failed
    requests.
    ``latency_hist[k]``: requests whose virtual latency ``t_done - t_submit`` (ns) has bit
    length k (bucket 0 is 0 ns, bucket k >= 1 is ``[2**(k-1), 2**k)``)."""

    reads: int = 0
    writes: int = 0
    read_pages: int = 0
    write_pages: int = 0
    errors: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    latency_hist: list[int] = field(default_factory=lambda: [0] * HIST_BUCKETS)

    def latency_buckets(self) -> list[tuple[int, int, int]]:
        """The non-empty buckets as ``(low_ns, high_ns_exclusive, count)``."""
        return [
            (1 << (k - 1) if k else 0, 1 << k, n) for k, n in enumerate(self.latency_hist) if n
        ]


class _Req:
    """The device's private record of one submitted request."""

    __slots__ = ("err", "ev", "hi", "io", "lo", "nbytes", "write")

    def __init__(self, io: IoRequest, err: int) -> None:
        self.io = io
        self.write = io.write
        self.err = err  # errno it completes with (injected at submit, or real from the pool)
        self.nbytes = 0  # bytes the real I/O transferred
        self.lo = io.blkno
        self.hi = io.blkno + len(io.pages)
        self.ev: IoEvent | None = None


class SwapDisk:
    """A block device of ``npages`` 4 KiB blocks over a sparse image file at ``path``.

    Call :meth:`create` before use and :meth:`close` after the clock has stopped. Only
    :meth:`strategy` submits I/O; see the module docstring for a request's life.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        npages: int,
        clock: Clock,
        model: TimingModel,
        faults: FaultConfig | None = None,
        name: str = "sd0",
        max_hops: int = 2,
        max_batch: int = 64,
        coalesce: bool = True,
        inline_max_pages: int = 0,
    ) -> None:
        if npages <= 0:
            raise ValueError(f"SwapDisk {name}: npages={npages}: must be > 0")
        if max_hops < 1 or max_hops > 255 or max_batch < 1:
            raise ValueError(f"SwapDisk {name}: need 1 <= max_hops <= 255 and max_batch >= 1")
        self.path = os.fspath(path)
        self.npages = npages
        self.clock = clock
        self.model = model
        self.name = name
        self.max_hops = max_hops
        self.max_batch = max_batch
        self.coalesce = coalesce
        self.inline_max_pages = inline_max_pages  # see "inline" in the module docstring
        self.faults = FaultInjector(faults) if faults is not None else None
        self.extra_latency_ns = faults.extra_latency_ns if faults is not None else 0
        self.stats = DiskStats()
        self.busy_until = 0  # virtual ns when the device finishes what it has accepted
        self.outstanding = 0  # submitted, not yet completed
        self.written_pages = 0  # blocks of the image ever written (its allocated data)
        self._fd = -1
        self._written = bytearray(npages)  # 1 = block written (allocated in the image)
        self._owner = bytearray(npages)  # hop slot (1..max_hops) holding the block, 0 = none
        self._pending: deque[_Req] = deque()  # FIFO of requests not yet handed to the pool
        self._hops = 0  # hop tasks alive
        self._slots = list(range(max_hops, 0, -1))  # free hop slots
        self._flush_scheduled = False  # a started hop task has not yet taken its batch
        self._gate = _PoolGate()

    # --- open / close ----------------------------------------------------------------------

    def create(self, force: bool = False) -> None:
        """Create the image: a sparse file of npages * 4096 bytes, mode 0600, and open it.

        => refuses an existing path (FileExistsError) unless force, which replaces it
        """
        if self._fd >= 0:
            raise RuntimeError(f"SwapDisk.create: {self.name} is already open")
        if force and os.path.lexists(self.path):
            os.unlink(self.path)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        except FileExistsError:
            raise FileExistsError(
                errno.EEXIST,
                f"SwapDisk.create: {self.name}: the swap image already exists; refusing to"
                " overwrite it (remove it, pick another path, or pass force=True)",
                self.path,
            ) from None
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            os.ftruncate(fd, self.npages << PAGE_SHIFT)
        except OSError:
            os.close(fd)
            os.unlink(self.path)
            raise
        self._fd = fd
        self._gate = _PoolGate()
        self._written[:] = bytes(self.npages)  # a fresh image holds no data
        self.written_pages = 0

    def close(self) -> None:
        """Close the image. Waits for any batch still running in the pool (e.g. after the
        clock was cancelled) so that no pool thread ever writes to a reused descriptor."""
        if self._fd < 0:
            return
        with self._gate.cv:
            self._gate.shut = True
            self._gate.cv.wait_for(lambda: self._gate.busy == 0)
        os.close(self._fd)
        self._fd = -1

    def image_allocated_bytes(self) -> int:
        """Bytes the host file system has allocated to the image (st_blocks * 512)."""
        st = os.fstat(self._fd) if self._fd >= 0 else os.stat(self.path)
        return st.st_blocks * 512

    # --- submit ------------------------------------------------------------------------------

    def strategy(self, io: IoRequest) -> None:
        """strategy: queue the read or write of io.pages at block io.blkno.

        => never raises for I/O errors: they are set on io at completion (EINVAL for a
           malformed request or one past the end of the device, EIO, ENOSPC)
        => completion calls io.iodone(io) from the clock's idle loop at io.t_done
        """
        if self._fd < 0:
            raise RuntimeError(f"SwapDisk.strategy: {self.name} is not open (call create())")
        clock = self.clock
        now = clock.now
        write = io.write
        io.error = 0
        io.resid = 0
        io.t_submit = now
        blkno = io.blkno
        npages = len(io.pages)
        if not self._valid(io, npages):
            err = errno.EINVAL
            t_done = now  # rejected before the queue: takes no device time
        else:
            err = 0
            lo, hi = blkno, blkno + npages
            new = 0
            if write:
                new = self._written.count(0, lo, hi)
            if self.faults is not None:
                after = (self.written_pages + new) << PAGE_SHIFT
                err = self.faults.decide(write, blkno, npages, after)
            if write and err == 0 and new:
                self._written[lo:hi] = b"\x01" * npages
                self.written_pages += new
            start = max(now, self.busy_until)
            t_done = start + self.model.service_ns(write, blkno, npages) + self.extra_latency_ns
            self.busy_until = t_done
        io.t_done = t_done
        req = _Req(io, err)
        ev = clock.io_event(t_done, functools.partial(self._complete, req))
        self.outstanding += 1
        if err:
            ev.real_done()  # nothing to do on the image
        else:
            req.ev = ev  # until real_done: req -> ev -> fire -> req is a cycle
            if npages <= self.inline_max_pages and not self._pending and not self._hops:
                self._record([[req]], _io_batch(self._fd, [(write, io.pages, blkno << PAGE_SHIFT)]))
            else:
                self._pending.append(req)
                self._kick()

    def _valid(self, io: IoRequest, npages: int) -> bool:
        blkno = io.blkno
        write = io.write
        if npages == 0 or npages > IOV_MAX:
            return False
        if blkno < 0 or blkno + npages > self.npages:
            return False
        for m in io.pages:
            if m.nbytes != PAGE_SIZE or (not write and m.readonly):
                return False
        return True

    # --- the pool hops -----------------------------------------------------------------------

    def _kick(self) -> None:
        """Start a hop task unless one is about to take the queue or all slots are busy."""
        if not self._flush_scheduled and self._hops < self.max_hops and self._pending:
            self._flush_scheduled = True
            self._hops += 1
            self.clock.start_background(self._hop(), name=f"{self.name}-hop")

    def _take(self, slot: int) -> list[_Req]:
        """Take a batch off the queue head, stopping at a request that overlaps a block held
        by another hop (so overlapping requests reach the image in submission order)."""
        pending = self._pending
        owner = self._owner
        mark = bytes((slot,))
        batch: list[_Req] = []
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
                    results = await _aio_pool_run(self._gate, self._fd, ops)
                except OSError as e:
                    results = [(0, e.errno or errno.EIO)] * len(ops)
                except Exception:
                    self._record(groups, [(0, errno.EIO)] * len(ops))
                    raise
                self._record(groups, results)
        finally:
            self._hops -= 1
            self._slots.append(slot)

    def _coalesce(self, batch: list[_Req]) -> tuple[list[list[_Req]], list[_Op]]:
        """Group runs of same-direction requests that follow each other on the disk (up to
        IOV_MAX pages); return the groups and one pwritev/preadv op per group."""
        groups: list[list[_Req]] = []
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

    def _record(self, groups: list[list[_Req]], results: list[_Result]) -> None:
        """Give each request its share of its group's result and mark its real I/O done."""
        owner = self._owner
        for g, (nbytes, err) in zip(groups, results, strict=True):
            for r in g:
                owner[r.lo : r.hi] = bytes(r.hi - r.lo)
                want = (r.hi - r.lo) << PAGE_SHIFT
                r.nbytes = got = min(nbytes, want)
                nbytes -= got
                if err:
                    r.err = errno.ENOSPC if err in (errno.ENOSPC, errno.EDQUOT) else errno.EIO
                elif got != want:
                    r.err = errno.EIO  # short transfer
                assert r.ev is not None
                r.ev.real_done()
                r.ev = None

    # --- completion --------------------------------------------------------------------------

    def _complete(self, req: _Req) -> None:
        """The completion interrupt: runs from the clock's idle loop at io.t_done.

        => sets io.error and io.resid, counts, then calls io.iodone(io)
        """
        io = req.io
        st, npages = self.stats, req.hi - req.lo
        nbytes = npages << PAGE_SHIFT
        if req.err:
            io.error = req.err
            io.resid = nbytes - req.nbytes
            st.errors += 1
        moved = nbytes - io.resid
        if req.write:
            st.writes += 1
            st.write_pages += npages
            st.bytes_written += moved
        else:
            st.reads += 1
            st.read_pages += npages
            st.bytes_read += moved
        lat = io.t_done - io.t_submit
        st.latency_hist[min(lat.bit_length(), HIST_BUCKETS - 1)] += 1
        self.outstanding -= 1
        io.iodone(io)


# --- port helpers: what runs in the thread pool -------------------------------------------------


class _PoolGate:
    """Lets close() wait for batches running in the pool; a batch that starts after close()
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
