"""emu.workloads.textscan: vectorised scanning of text trace files, a block of lines at a time.

Trace files are read in blocks of whole lines (:func:`text_blocks`, plain, ``.gz`` or ``.zst``)
and each block is scanned with numpy, never with a Python loop per line: :class:`Block` finds
the lines, splits comma-separated fields and parses decimal and hexadecimal numbers of all
lines at once. A number is parsed as SWAR ("SIMD within a register") arithmetic on u64 words:
the (up to) 16 bytes that end the field are gathered as two unaligned u64 loads per line, then
checked and folded into a value with a dozen whole-array integer operations, whatever the number
of lines. Whatever does not parse is reported with its file and line number.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Generator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
import zstandard

__all__ = ["Block", "DamagedTrace", "TraceError", "open_binary", "text_blocks"]

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
B = npt.NDArray[np.bool_]

_PAD = 24  # zero bytes before and after a block, so every gather stays in bounds
_MAX_LINE = 1 << 20


class TraceError(ValueError):
    """A trace file that cannot be read: names the file, the line or record, and what was
    expected."""


class DamagedTrace(TraceError):
    """A compressed trace that is cut short or corrupt: names the file and the damage."""




def _bytes(b: int) -> np.uint64:
    """The byte b repeated in all 8 bytes of a u64."""
    return np.uint64(b * 0x0101010101010101)


_B01, _B0F, _B20, _B30, _B7F, _B80 = (_bytes(b) for b in (0x01, 0x0F, 0x20, 0x30, 0x7F, 0x80))
_ENDS = np.array([-16, -8])
_KEEP = np.array([(1 << (8 * k)) - 1 for k in range(9)], np.uint64)  # the low k bytes
_LEAD = np.tril(np.full((17, 16), 0xFF, np.uint8), -1)[:, :16].copy().view(np.uint64)


def _in_range(t: U64, lo: int, hi: int) -> U64:
    """Per byte of 7-bit bytes t: bit 7 set iff lo <= byte <= hi (no carry crosses a byte)."""
    return ((t + _bytes(0x80 - lo)) & ~(t + _bytes(0x7F - hi))) & _B80


class _Compressed:
    """A compressed trace read as bytes: a cut or damaged file raises TraceError naming the
    file and what is wrong (not EOFError, BadGzipFile or a zstd error from deep inside)."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path = path
        self.kind = kind
        self._raw: BinaryIO = open(path, "rb")  # closed by __exit__
        self._gz = gzip.GzipFile(fileobj=self._raw) if kind == "gzip" else None
        self._zd = zstandard.ZstdDecompressor()
        self._zobj = self._zd.decompressobj()
        self._zbuf = bytearray()
        self._zin = False  # a zstd frame has begun and not ended

    def read(self, n: int) -> bytes:
        try:
            return self._gz.read(n) if self._gz is not None else self._zstd_read(n)
        except EOFError as e:
            raise DamagedTrace(f"{self.path}: the {self.kind} data is cut short (truncated "
                             f"file?): {e}") from e  # fmt: skip
        except (OSError, zlib.error, zstandard.ZstdError) as e:
            raise DamagedTrace(f"{self.path}: not readable as {self.kind} (corrupt, or not "
                             f"{self.kind} at all): {e}") from e  # fmt: skip

    def _zstd_read(self, n: int) -> bytes:
        while len(self._zbuf) < n:
            data = self._raw.read(1 << 16)
            if not data:
                if self._zin:
                    raise EOFError("the last zstd frame has no end")
                break
            while data:
                self._zin = True
                self._zbuf += self._zobj.decompress(data)
                data = b""
                if self._zobj.eof:  # a frame ended: the next one, if any, starts afresh
                    self._zin = False
                    data = self._zobj.unused_data
                    self._zobj = self._zd.decompressobj()
        out = bytes(self._zbuf[:n])
        del self._zbuf[:n]  # cheap: a bytearray drops its head without moving the rest
        return out

    def __enter__(self) -> _Compressed:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._gz is not None:
            self._gz.close()
        self._raw.close()


def open_binary(path: Path) -> Any:
    """Open a trace for reading bytes, decompressing ``.gz`` and ``.zst`` on the fly."""
    if path.name.endswith(".gz"):
        return _Compressed(path, "gzip")
    if path.name.endswith(".zst"):
        return _Compressed(path, "zstd")
    return open(path, "rb")  # the caller's with-statement closes it


def text_blocks(path: Path, block_bytes: int = 1 << 18) -> Generator[tuple[bytes, int], None, None]:
    """Yield ``(block, first line number)``: blocks of whole lines, each ending in a newline."""
    line = 1
    rest = b""
    with open_binary(path) as f:
        while data := f.read(block_bytes):
            data = rest + data if rest else data
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                rest = data
                if len(rest) > _MAX_LINE:
                    raise TraceError(f"{path}:{line}: expected a text line, found over "
                                     f"{_MAX_LINE} bytes without a newline (binary file?)")
                continue
            block, rest = data[:cut], data[cut:]
            yield block, line
            line += block.count(b"\n")
    if rest:
        yield rest + b"\n", line


class Block:
    """One block of text lines, scanned with numpy.

    ``buf`` is the block padded with zeros; ``starts[i]``/``ends[i]`` delimit line ``i``
    (without its newline or a trailing CR) and ``lineno[i]`` is its number in the file.
    Methods that parse return their values and an ``ok`` mask; :meth:`check` notes the first
    line that is not ok and :meth:`fail` raises for the earliest line noted.
    """

    def __init__(self, data: bytes, line0: int, path: Path) -> None:
        self.path = path
        buf = np.zeros(len(data) + 2 * _PAD, np.uint8)
        buf[_PAD:-_PAD] = np.frombuffer(data, np.uint8)
        self.buf = buf
        ends = np.flatnonzero(buf == 10)
        starts = np.empty_like(ends)
        starts[:1] = _PAD
        starts[1:] = ends[:-1] + 1
        ends -= (buf[ends - 1] == 13) & (ends > starts)
        self.starts: I64 = starts
        self.ends: I64 = ends
        self.lineno: I64 = line0 + np.arange(len(ends), dtype=np.int64)
        self.error: tuple[int, str] | None = None  # (line, message) of the first bad line
        # the u64 that starts at each byte (unaligned, overlapping): 8 bytes in one gather
        self.words: U64 = np.ndarray((len(buf) - 7,), "<u8", buf, 0, (1,))

    def __len__(self) -> int:
        return len(self.ends)

    def keep(self, mask: B) -> None:
        """Drop the lines where ``mask`` is false (blank lines, comments, chatter)."""
        self.starts, self.ends, self.lineno = self.starts[mask], self.ends[mask], self.lineno[mask]

    def char(self, k: int) -> npt.NDArray[np.uint8]:
        """Byte ``k`` of every line (zero or the next line's bytes past a short line's end)."""
        return self.buf[self.starts + k]

    def text(self, i: int) -> str:
        return bytes(self.buf[self.starts[i]:self.ends[i]]).decode("utf-8", "replace")

    def check(self, ok: B, expected: str) -> None:
        """Note the first line where ``ok`` is false (the earliest over all checks so far)."""
        if ok.all():
            return
        i = int(np.argmin(ok))
        if self.error is None or self.lineno[i] < self.error[0]:
            msg = f"{self.path}:{self.lineno[i]}: expected {expected}, got {self.text(i)!r}"
            self.error = (int(self.lineno[i]), msg)

    def fail(self, ok: B | None = None, expected: str = "") -> None:
        """:meth:`check` ``ok``, then raise TraceError for the earliest bad line noted."""
        if ok is not None:
            self.check(ok, expected)
        if self.error is not None:
            raise TraceError(self.error[1])

    def fields(self, ncols: int, what: str) -> tuple[I64, I64]:
        """Split every line into exactly ``ncols`` comma-separated fields: ``(fs, fe)``, both
        ``(n, ncols)``, the start and end of each field. Raises for a line with another count.
        """
        n = len(self)
        commas = np.flatnonzero(self.buf == 44)
        first = np.searchsorted(commas, self.starts)
        self.fail(np.searchsorted(commas, self.ends) - first == ncols - 1,
                  f"{ncols} comma-separated fields ({what})")
        fe = np.empty((n, ncols), np.int64)
        if ncols > 1:  # the commas of line i are commas[first[i]:first[i] + ncols - 1]
            fe[:, :-1] = commas[first[:, None] + np.arange(ncols - 1)]
        fe[:, -1] = self.ends
        fs = np.empty_like(fe)
        fs[:, 0] = self.starts
        fs[:, 1:] = fe[:, :-1] + 1
        return fs, fe

    def _digits(self, s: I64, e: I64, hexa: bool) -> tuple[U64, B]:
        """The bytes s..e of each row right-aligned into 16 bytes (8 if no field is longer),
        leading bytes set to "0", as u64 words per row (little-endian: the first character in
        the lowest byte of word 0), and ok: 1..16 characters, all (hexa)decimal digits.
        SWAR arithmetic on whole words: no per-byte work, few temporaries.
        """
        n = e - s
        one = int(n.max(initial=0)) <= 8
        lead = np.take(_LEAD, np.clip(16 - n, 8 if one else 0, 16), axis=0)
        if one:
            lead = lead[:, 1:]
        w = self.words[e[:, None] + (_ENDS[1:] if one else _ENDS)]  # the bytes ending at e
        t = w & _B7F
        valid = _in_range(t, 0x30, 0x39)
        if hexa:
            t |= _B20
            valid |= _in_range(t, 0x61, 0x66)
        valid &= ~w  # bit 7 of a non-ASCII byte
        valid |= lead
        valid &= _B80
        ok = (n >= 1) & (n <= 16) & (valid[:, 0] == _B80)
        if not one:
            ok &= valid[:, 1] == _B80
        w &= ~lead
        w |= lead & _B30
        return w, ok

    def decimal(self, s: I64, e: I64) -> tuple[U64, B]:
        """Parse unsigned decimal fields s..e (1..16 digits) of all rows."""
        d, ok = self._digits(s, e, False)
        d -= _B30  # one digit 0..9 per byte
        d = (d * np.uint64(10) + (d >> np.uint64(8))) & np.uint64(0x00FF00FF00FF00FF)
        d = (d * np.uint64(100) + (d >> np.uint64(16))) & np.uint64(0x0000FFFF0000FFFF)
        d = (d * np.uint64(10000) + (d >> np.uint64(32))) & np.uint64(0xFFFFFFFF)
        if d.shape[1] == 1:
            return d[:, 0], ok
        return d[:, 0] * np.uint64(100_000_000) + d[:, 1], ok

    def hexadecimal(self, s: I64, e: I64) -> tuple[U64, B]:
        """Parse hexadecimal fields s..e (1..16 digits, no 0x) of all rows."""
        w, ok = self._digits(s, e, True)
        d = (w & _B0F) + np.uint64(9) * ((w >> np.uint64(6)) & _B01)  # one nibble per byte
        d = d.byteswap()  # first character in the top byte
        d = (d | (d >> np.uint64(4))) & np.uint64(0x00FF00FF00FF00FF)
        d = (d | (d >> np.uint64(8))) & np.uint64(0x0000FFFF0000FFFF)
        d = (d | (d >> np.uint64(16))) & np.uint64(0xFFFFFFFF)
        if d.shape[1] == 1:
            return d[:, 0], ok
        return (d[:, 0] << np.uint64(32)) | d[:, 1], ok

    def lower(self, s: I64, e: I64) -> npt.NDArray[np.bytes_]:
        """The first 8 bytes of the fields s..e, lower-cased, as ``S8`` strings."""
        n = np.clip(e - s, 0, 8)
        w = self.words[s] & _KEEP[n]  # bytes past the field's end become 0
        w |= _in_range(w & _B7F, 0x41, 0x5A) >> np.uint64(2)  # A-Z: set 0x20
        out: npt.NDArray[np.bytes_] = w.view("S8")
        return out
