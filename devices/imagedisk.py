"""devices.imagedisk: a disk backed by a sparse image file, with real asynchronous I/O.

The machine's block device for everything that reaches a disk: its swap devices, and the
files the vnode pager maps (each a disk of its own).

The life of one request (a :class:`~devices.request.IoRequest`), in prose:

* **submitted**: :meth:`ImageDisk.strategy` checks it (EINVAL if malformed or past the end),
  decides its fault (:mod:`devices.faults`), computes its virtual completion time
  ``t_done = max(now, busy_until) + service + extra_latency`` (one request at a time, FIFO,
  like a BSD ``bufq``) and registers ``clock.io_event(t_done, ...)``. All of this is
  synchronous, so it depends only on the order of submission.
* **on the host**: a request that passed goes to the disk's :class:`~devices.hostpool.HostPool`,
  which does the real ``pwritev``/``preadv`` on the image, at once (inline, when small and
  the disk idle) or batched through aiofiles' thread pool (devices/hostpool.py), and only
  records its result (``ev.real_done()``), so the order in which the pool finishes never
  shows. A failing or invalid request never reaches the host.
* **done**: the clock's idle loop fires the event at ``t_done`` (never before the real I/O
  finished); :meth:`ImageDisk._complete` sets the request's ``error`` and ``resid``, counts,
  and calls its ``iodone``, like an interrupt handler.

Completion order and times are the same on every run, on asyncio and on uvloop. Errors,
injected or real (a host ``OSError``: ENOSPC/EDQUOT become ENOSPC, anything else EIO), are set
on the request and never raised.
"""

from __future__ import annotations

import errno
import functools
import operator
import os
from dataclasses import dataclass, field
from typing import Final

from devices.faults import FaultConfig, FaultInjector
from devices.hostpool import IOV_MAX, HostPool, PoolIo
from devices.request import PAGE_SHIFT, PAGE_SIZE, IoRequest
from devices.timing import TimingModel
from emu.clock import Clock

__all__ = ["HIST_BUCKETS", "INLINE_PAGES", "DiskStats", "ImageDisk"]

HIST_BUCKETS: Final = 64
_NBYTES = operator.attrgetter("nbytes")
_READONLY = operator.attrgetter("readonly")
INLINE_PAGES: Final = 16  # inline_max_pages of the machine's disks: a swap cluster (64 KiB)


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


class ImageDisk:
    """A block device of ``npages`` 4 KiB blocks over a sparse image file at ``path``.

    Call :meth:`create` before use and :meth:`close` after the clock has stopped. Only
    :meth:`strategy` submits I/O; see the module docstring for a request's life. ``max_hops``,
    ``max_batch``, ``coalesce`` and ``inline_max_pages`` tune the host side
    (devices/hostpool.py).
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
            raise ValueError(f"ImageDisk {name}: npages={npages}: must be > 0")
        self.pool = HostPool(name, npages, clock, max_hops, max_batch, coalesce, inline_max_pages)
        self.path = os.fspath(path)
        self.npages = npages
        self.clock = clock
        self.model = model
        self.name = name
        self.faults = FaultInjector(faults) if faults is not None else None
        self.extra_latency_ns = faults.extra_latency_ns if faults is not None else 0
        self.stats = DiskStats()
        self.busy_until = 0  # virtual ns when the device finishes what it has accepted
        self.outstanding = 0  # submitted, not yet completed
        self.written_pages = 0  # blocks of the image ever written (its allocated data)
        self._fd = -1
        self._written = bytearray(npages)  # 1 = block written (allocated in the image)

    # --- open / close ----------------------------------------------------------------------

    def create(self, force: bool = False) -> None:
        """Create the image: a sparse file of npages * 4096 bytes, mode 0600, and open it.

        => refuses an existing path (FileExistsError) unless force, which replaces it
        """
        if self._fd >= 0:
            raise RuntimeError(f"ImageDisk.create: {self.name} is already open")
        if force and os.path.lexists(self.path):
            os.unlink(self.path)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        except FileExistsError:
            raise FileExistsError(
                errno.EEXIST,
                f"ImageDisk.create: {self.name}: the disk image already exists; refusing to"
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
        self.pool.open(fd)
        self._written[:] = bytes(self.npages)  # a fresh image holds no data
        self.written_pages = 0

    def close(self) -> None:
        """Close the image. Waits for any batch still running in the pool (e.g. after the
        clock was cancelled) so that no pool thread ever writes to a reused descriptor."""
        if self._fd < 0:
            return
        self.pool.shut()
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
            raise RuntimeError(f"ImageDisk.strategy: {self.name} is not open (call create())")
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
        req = PoolIo(io, err)
        ev = clock.io_event(t_done, functools.partial(self._complete, req))
        self.outstanding += 1
        if err:
            ev.real_done()  # nothing to do on the image
        else:
            req.ev = ev  # until real_done: req -> ev -> fire -> req is a cycle
            self.pool.submit(req)

    def _valid(self, io: IoRequest, npages: int) -> bool:
        blkno = io.blkno
        write = io.write
        if npages == 0 or npages > IOV_MAX:
            return False
        if blkno < 0 or blkno + npages > self.npages:
            return False
        pages = io.pages
        # every view exactly one page (none smaller, and they add up), writable for a read:
        # C-level passes over the views, no Python loop per page
        sizes = list(map(_NBYTES, pages))
        if min(sizes) != PAGE_SIZE or sum(sizes) != npages * PAGE_SIZE:
            return False
        return write or not any(map(_READONLY, pages))

    # --- completion --------------------------------------------------------------------------

    def _complete(self, req: PoolIo) -> None:
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
