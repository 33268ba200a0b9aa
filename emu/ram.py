"""emu.ram: the physical RAM arena and the per-frame referenced/modified bits.

The arena is one anonymous private mmap of ``nframes * PAGE_SIZE`` bytes, seen by numpy as a
``(nframes, PAGE_SIZE)`` uint8 array. The host kernel backs a frame with memory only when it is
first written, so a 16 GiB machine constructs instantly and costs what the workload touches.

``ref`` and ``mod`` are the per-frame referenced and modified bits (uint8, 0 or 1) that the MMU
sets on access, as hardware sets the accessed and dirty bits. They are fixed for the life of the
``Ram``: clear them in place (``ram.ref[f] = 0``), never rebind them, because the MMU keeps
byte views of them for its scalar path. ``buf`` is a flat writable memoryview of the arena for
byte copies that must not go through numpy's slicing cost.
"""

from __future__ import annotations

import mmap
import operator
import re
import sys
from typing import SupportsIndex

import numpy as np
import numpy.typing as npt

__all__ = ["PAGE_SHIFT", "PAGE_SIZE", "Ram", "parse_size"]

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
_ZERO_PAGE = bytes(PAGE_SIZE)

# PORT: Python 3.11's mmap module lacks MAP_NORESERVE; without it, heuristic overcommit may
# refuse an arena larger than host RAM + swap even though most of it is never touched.
_MAP_NORESERVE: int = getattr(mmap, "MAP_NORESERVE", 0x4000 if sys.platform == "linux" else 0)

_UNITS = {
    "k": 1 << 10, "kib": 1 << 10,
    "m": 1 << 20, "mib": 1 << 20,
    "g": 1 << 30, "gib": 1 << 30,
    "t": 1 << 40, "tib": 1 << 40,
}  # fmt: skip
_SIZE_RE = re.compile(r"\s*(\d+)\s*([a-z]*)\s*", re.IGNORECASE)
_FORMS = (
    "a size with a binary unit (512KiB, 64MiB, 4GiB, 1TiB, or K/M/G/T; case-insensitive) "
    "that is a positive multiple of 4 KiB, or a positive page count (int or digit string)"
)


def parse_size(spec: str | int) -> int:
    """parse_size: a RAM or swap size as a number of PAGE_SIZE pages.

    => "64MiB", "4gib", "16M", "512K" are byte sizes with binary units
    => 4096 or "4096" (no unit) is a page count
    => raises ValueError naming the input and the accepted forms otherwise
    """
    if isinstance(spec, bool) or not isinstance(spec, int | str):
        raise ValueError(f"parse_size: {spec!r} is not a size; expected {_FORMS}")
    if isinstance(spec, int):
        if spec <= 0:
            raise ValueError(f"parse_size: {spec!r}: must be at least 1 page; expected {_FORMS}")
        return spec
    m = _SIZE_RE.fullmatch(spec)
    if m is None:
        raise ValueError(f"parse_size: cannot parse {spec!r}; expected {_FORMS}")
    number, unit = int(m.group(1)), m.group(2).lower()
    if not unit:
        pages = number
    elif unit in _UNITS:
        nbytes = number * _UNITS[unit]
        if nbytes % PAGE_SIZE:
            raise ValueError(
                f"parse_size: {spec!r} is not a multiple of {PAGE_SIZE} bytes; expected {_FORMS}"
            )
        pages = nbytes >> PAGE_SHIFT
    else:
        raise ValueError(f"parse_size: unknown unit {m.group(2)!r} in {spec!r}; expected {_FORMS}")
    if pages <= 0:
        raise ValueError(f"parse_size: {spec!r}: must be at least 1 page; expected {_FORMS}")
    return pages


class Ram:
    """The physical memory: ``nframes`` frames of PAGE_SIZE bytes plus ref/mod bits.

    Lifecycle: open from construction until :meth:`close`; afterwards every accessor raises
    ValueError. ``view()`` memoryviews keep the host mapping alive until they are released.
    """

    __slots__ = ("_mm", "buf", "mem", "mod", "nframes", "ref")

    def __init__(self, nframes: int) -> None:
        nframes = operator.index(nframes)
        if nframes <= 0:
            raise ValueError(f"Ram: nframes must be positive, got {nframes}")
        self.nframes = nframes
        self._mm: mmap.mmap | None = mmap.mmap(
            -1, nframes * PAGE_SIZE, flags=mmap.MAP_PRIVATE | _MAP_NORESERVE
        )
        self.buf = memoryview(self._mm)
        self.mem: npt.NDArray[np.uint8] = np.frombuffer(self._mm, dtype=np.uint8).reshape(
            nframes, PAGE_SIZE
        )
        # np.zeros is calloc: the bit arrays, too, cost host memory only where written.
        self.ref: npt.NDArray[np.uint8] = np.zeros(nframes, dtype=np.uint8)
        self.mod: npt.NDArray[np.uint8] = np.zeros(nframes, dtype=np.uint8)

    @property
    def nbytes(self) -> int:
        return self.nframes * PAGE_SIZE

    def _frame(self, frame: SupportsIndex) -> int:
        f = operator.index(frame)
        if not 0 <= f < self.nframes:
            if self._mm is None:
                raise ValueError("Ram: used after close()")
            raise IndexError(f"Ram: frame {f} out of range [0, {self.nframes})")
        return f

    def _span(self, off: int, n: int) -> None:
        if off < 0 or n < 0 or off + n > PAGE_SIZE:
            raise IndexError(f"Ram: bytes [{off}, {off + n}) do not fit in a {PAGE_SIZE}-byte frame")

    def read(self, frame: SupportsIndex, off: int = 0, n: int = PAGE_SIZE) -> bytes:
        """Copy ``n`` bytes at ``off`` in ``frame`` out of the arena (no ref/mod side effect)."""
        f = self._frame(frame)
        self._span(off, n)
        base = (f << PAGE_SHIFT) + off
        return bytes(self.buf[base : base + n])

    def write(self, frame: SupportsIndex, data: bytes | bytearray | memoryview, off: int = 0) -> None:
        """Copy ``data`` into ``frame`` at ``off`` (no ref/mod side effect)."""
        f = self._frame(frame)
        n = memoryview(data).nbytes
        self._span(off, n)
        base = (f << PAGE_SHIFT) + off
        self.buf[base : base + n] = memoryview(data).cast("B")

    def zero(self, frame: SupportsIndex) -> None:
        """Fill ``frame`` with zero bytes."""
        base = self._frame(frame) << PAGE_SHIFT
        self.buf[base : base + PAGE_SIZE] = _ZERO_PAGE  # a memcpy: 5x cheaper than numpy's fill

    def copy(self, src: SupportsIndex, dst: SupportsIndex) -> None:
        """Copy frame ``src`` into frame ``dst``: a real copy into ``dst``'s bytes, never an alias."""
        s, d = self._frame(src) << PAGE_SHIFT, self._frame(dst) << PAGE_SHIFT
        if s != d:
            self.buf[d : d + PAGE_SIZE] = self.buf[s : s + PAGE_SIZE]

    def view(self, frame: SupportsIndex) -> memoryview:
        """A writable memoryview of exactly ``frame``'s PAGE_SIZE bytes in the arena (for
        preadv/pwritev straight into and out of RAM). Release it when the I/O is done."""
        base = self._frame(frame) << PAGE_SHIFT
        return self.buf[base : base + PAGE_SIZE]

    def close(self) -> None:
        """Drop the arena. Idempotent. Views still held keep the host mapping alive until they
        are released; the Ram itself is unusable afterwards."""
        mm, self._mm = self._mm, None
        if mm is None:
            return
        self.nframes = 0
        self.mem = np.zeros((0, PAGE_SIZE), dtype=np.uint8)
        self.buf.release()
        try:
            mm.close()
        except BufferError:
            pass  # an outstanding view() or numpy view: the mapping dies with the last of them

    def __enter__(self) -> Ram:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Ram {self.nframes} frames ({self.nbytes >> 20} MiB)>"
