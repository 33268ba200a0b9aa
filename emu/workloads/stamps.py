"""emu.workloads.stamps: content stamps that make every page a workload writes self-checking.

A stamped page is 4096 bytes: a 32-byte header, then a 4064-byte body filled with a
deterministic pattern derived from the same three values, so a page that comes back from swap
(or from a file, or through a shared object) can be checked completely and cheaply::

    off  size  field
      0     4  magic      b"UVMS" (0x534d5655 little-endian)
      4     4  pid        u32, the process that wrote the page
      8     8  page       u64, the page index inside the workload's region or object
     16     8  version    u64, 1 for the first write of the page, +1 for each rewrite
     24     4  body_crc   u32, zlib.crc32 of bytes 32..4096
     28     4  head_crc   u32, zlib.crc32 of bytes 0..28

All integers are little-endian. Version 0 means "never written": ``make_page(pid, page, 0)``
is 4096 zero bytes, so a workload's version table can start at zero and a fresh page (zero-fill,
sparse file) checks against it without a special case.

The body is 508 little-endian u64 words ``w[j] = T[j] ^ seed``: ``T`` a fixed table of
splitmix64 outputs (built once at import) and ``seed`` a 64-bit hash of (pid, page, version),
so a body costs one numpy XOR. Two stamps with different seeds differ in every body word, and
the table makes each word depend on its offset, so a page swapped for another stamp, or a body
shifted inside its page, is caught even if only its body survives.
"""

from __future__ import annotations

import struct
import zlib
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = [
    "HEADER_SIZE",
    "MAGIC",
    "PAGE_SIZE",
    "Stamp",
    "check_headers",
    "check_page",
    "describe_mismatch",
    "make_header",
    "make_page",
    "read_header",
]

PAGE_SIZE = 4096  # emu.ram.PAGE_SIZE; kept here so workloads import nothing from the hardware
HEADER_SIZE = 32
MAGIC = 0x534D5655  # b"UVMS" read as a little-endian u32
ZERO_PAGE = bytes(PAGE_SIZE)

_HEAD = struct.Struct("<IIQQI")  # magic pid page version body_crc; head_crc follows
_CRC = struct.Struct("<I")
_BODY_WORDS = (PAGE_SIZE - HEADER_SIZE) // 8
_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_HEADER_DTYPE = np.dtype(
    [("magic", "<u4"), ("pid", "<u4"), ("page", "<u8"), ("version", "<u8"),
     ("body_crc", "<u4"), ("head_crc", "<u4")]
)
assert _HEADER_DTYPE.itemsize == HEADER_SIZE


class Stamp(NamedTuple):
    """The identity a stamped page carries."""

    pid: int
    page: int
    version: int


def _seed(pid: int, page: int, version: int) -> int:
    """Hash the three values into one u64 (plain Python ints: no numpy overflow warnings)."""
    x = (pid * 0xD6E8FEB86659FD93) ^ (page * 0x9FB21C651E98DF25) ^ (version * 0xC2B2AE3D27D4EB4F)
    x &= _M64
    x ^= x >> 31
    return (x * 0xBF58476D1CE4E5B9) & _M64


def _splitmix_table(n: int) -> npt.NDArray[np.uint64]:
    """n splitmix64 outputs for counters 1..n (array arithmetic wraps silently)."""
    x = np.arange(1, n + 1, dtype=np.uint64) * np.uint64(_GOLDEN)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x.astype("<u8")


_TABLE = _splitmix_table(_BODY_WORDS)


def _body(pid: int, page: int, version: int) -> bytes:
    """The 4064-byte pattern of a stamp."""
    return (_TABLE ^ np.uint64(_seed(pid, page, version))).tobytes()


def make_header(pid: int, page: int, version: int, body_crc: int) -> bytes:
    """The 32-byte header of a stamp whose body has checksum ``body_crc``."""
    head = _HEAD.pack(MAGIC, pid, page, version, body_crc)
    return head + _CRC.pack(zlib.crc32(head))


def make_page(pid: int, page: int, version: int) -> bytes:
    """Return the 4096 bytes of stamp (pid, page, version); version 0 is the zero page.

    ``pid`` must fit in 32 bits, ``page`` and ``version`` in 64 bits.
    """
    if version == 0:
        return ZERO_PAGE
    if not (0 <= pid < 1 << 32 and 0 <= page <= _M64 and 0 < version <= _M64):
        raise ValueError(f"make_page: stamp ({pid}, {page}, {version}) out of range")
    body = _body(pid, page, version)
    return make_header(pid, page, version, zlib.crc32(body)) + body


def read_header(data: bytes | bytearray | memoryview) -> Stamp | None:
    """Return the stamp a page's header claims, or None if it holds no valid header.

    Only the header is checked (magic and header checksum), not the body.
    """
    if len(data) < HEADER_SIZE:
        return None
    magic, pid, page, version, _ = _HEAD.unpack_from(data)
    if magic != MAGIC or _CRC.unpack_from(data, 28)[0] != zlib.crc32(bytes(data[:28])):
        return None
    return Stamp(pid, page, version)


def check_page(
    data: bytes | bytearray | memoryview, pid: int, page: int, version: int
) -> str | None:
    """Check a page against stamp (pid, page, version): None if equal, else what differs.

    The description names the first difference a reader needs: wrong length, a zero page
    where a stamp was expected (or the reverse), a missing or corrupt header, a header of
    another stamp, or the first body offset that differs and how many bytes do.
    """
    if len(data) != PAGE_SIZE:
        return f"length {len(data)}, expected {PAGE_SIZE}"
    want = make_page(pid, page, version)
    if data == want:
        return None
    found = np.frombuffer(data, np.uint8)
    nonzero = np.flatnonzero(found)
    if version == 0:
        got = read_header(data)
        what = f"stamp {tuple(got)}" if got else f"non-zero bytes from offset {nonzero[0]}"
        return f"expected a zero page (never written), found {what}"
    if len(nonzero) == 0:
        return f"found a zero page, expected stamp {(pid, page, version)}"
    got = read_header(data)
    if got is None:
        magic = _HEAD.unpack_from(data)[0]
        why = "bad magic" if magic != MAGIC else "bad header checksum"
        return f"no valid stamp header ({why} {magic:#010x}), expected stamp {(pid, page, version)}"
    if got != (pid, page, version):
        names = ("pid", "page", "version")
        diffs = [f"{n} {g} != {w}" for n, g, w in zip(names, got, (pid, page, version), strict=True)
                 if g != w]
        return f"header of stamp {tuple(got)}: " + ", ".join(diffs)
    diff = np.flatnonzero(found != np.frombuffer(want, np.uint8))
    return f"body differs from the pattern at offset {diff[0]} ({len(diff)} bytes differ)"


def _name(data: bytes | bytearray | memoryview) -> str:
    stamp = read_header(data)
    if stamp is not None:
        return f"stamp({stamp.pid},{stamp.page},{stamp.version})"
    return "zeros" if not any(data) else "unstamped"


def describe_mismatch(expected: bytes, found: bytes | bytearray | memoryview) -> dict[str, object]:
    """The payload of an ``integrity.mismatch`` event (docs/log-schema.md): what each page
    claims to be (``stamp(pid,page,version)``, ``zeros`` or ``unstamped``), the first
    differing byte offset, the number of differing bytes, and the first 32 bytes of each
    in hex."""
    a = np.frombuffer(expected, np.uint8)
    b = np.frombuffer(found, np.uint8)
    n = min(len(a), len(b))
    diff = np.flatnonzero(a[:n] != b[:n])
    return {
        "expected": _name(expected), "found": _name(found),
        "offset": int(diff[0]) if len(diff) else n,
        "ndiff": len(diff) + abs(len(a) - len(b)),
        "expected_head": bytes(expected[:HEADER_SIZE]).hex(),
        "found_head": bytes(found[:HEADER_SIZE]).hex(),
    }


def check_headers(
    data: bytes | bytearray | memoryview | npt.NDArray[np.uint8],
    pid: int | npt.NDArray[np.integer],
    pages: npt.NDArray[np.integer],
    versions: npt.NDArray[np.integer],
) -> npt.NDArray[np.bool_]:
    """Header-only check of ``len(pages)`` consecutive pages in ``data``: one bool per page.

    A page whose version is 0 must start with 32 zero bytes; any other must carry a header with
    the right magic, pid, page and version. Neither checksum nor body is checked: this is the
    cheap test for big batches; follow a failure up with :func:`check_page`.
    """
    n = len(pages)
    buf = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data
    if buf.size != n * PAGE_SIZE:
        raise ValueError(f"check_headers: {buf.size} bytes for {n} pages")
    heads = np.ascontiguousarray(buf.reshape(n, PAGE_SIZE)[:, :HEADER_SIZE]).view(_HEADER_DTYPE)
    heads = heads.reshape(n)
    versions = np.asarray(versions, np.uint64)
    stamped = (
        (heads["magic"] == MAGIC)
        & (heads["pid"] == np.asarray(pid, np.uint64))
        & (heads["page"] == np.asarray(pages, np.uint64))
        & (heads["version"] == versions)
    )
    zero = ~buf.reshape(n, PAGE_SIZE)[:, :HEADER_SIZE].any(axis=1)
    return np.where(versions == 0, zero, stamped)
