"""emu.workloads.trace: streamed, page-granular memory-trace readers and the replay workload.

Every reader is a generator of chunks ``(vaddrs, is_write)``: a ``uint64`` array of
page-aligned addresses and a ``bool`` array, at most ``chunk`` accesses each. Files are read a
block at a time (plain, ``.gz`` or ``.zst``), never whole, and text is parsed with numpy
(:mod:`emu.workloads.textscan`). A line or record that does not parse raises
:class:`TraceError` naming the file, the line number (text) or record index (binary) and what
was expected. Formats (docs/workloads.md has the details and the units):

- ``lackey``: valgrind ``--tool=lackey --trace-mem=yes`` output. ``I`` and ``L`` are reads,
  ``S`` a write, ``M`` (modify) one write; an access that crosses a page boundary touches both
  pages; ``==pid==`` chatter and blank lines are skipped.
- ``oracle``: libCacheSim oracleGeneral, 24-byte little-endian records ``<IQIq`` (clock_time,
  obj_id, obj_size, next_access_vtime). obj_id is a page number: address ``obj_id * 4096``;
  size ignored unless ``span``; no op field, so every access is a read.
- ``csv``: libCacheSim-style CSV; columns found by header name, or ``time,obj_id[,obj_size
  [,op]]`` without a header. ``txt``: one obj_id (a page number) per line.
- ``msr``: MSR Cambridge ``Timestamp,Hostname,DiskNumber,Type,Offset,Size,ResponseTime``; each
  I/O is split into the 4 KiB pages it covers; ``Write`` is a write.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
from msgspec import Meta

from emu.api import Count, Ns, Pages, ProcessHandle
from emu.workloads.stamps import PAGE_SIZE, ZERO_PAGE
from emu.workloads.textscan import Block, DamagedTrace, TraceError, open_binary, text_blocks

__all__ = [
    "DATA_DIR", "FORMATS", "ORACLE_DTYPE", "Chunk", "TraceError", "detect_format",
    "lcs_reader", "next_access", "open_trace", "parse_spec", "read_csv", "read_lackey",
    "read_msr", "read_oracle", "read_txt", "resolve", "trace_replay", "write_oracle",
]

Chunk = tuple[npt.NDArray[np.uint64], npt.NDArray[np.bool_]]
FORMATS = ("lackey", "oracle", "csv", "txt", "msr")
_ALIASES = {"oraclegeneral": "oracle", "valgrind": "lackey", "plain": "txt"}
DATA_DIR = Path(__file__).parent / "data"
VA_LIMIT = 1 << 48  # emu.mmu.VA_LIMIT
_MAX_PAGE = VA_LIMIT // PAGE_SIZE
_PAGE_MASK = np.uint64((1 << 64) - PAGE_SIZE)
# libCacheSim's oracleGeneral record (read by read_oracle, written by write_oracle)
ORACLE_DTYPE = np.dtype([("clock_time", "<u4"), ("obj_id", "<u8"), ("obj_size", "<u4"),
                         ("next_access_vtime", "<i8")])
assert ORACLE_DTYPE.itemsize == 24
_WRITE_OPS = np.array([b"w", b"write", b"set", b"put", b"update", b"2a", b"0a", b"aa", b"8a",
                       b"0x2a", b"0x0a", b"0xaa", b"0x8a"], "S8").view(np.uint64)
_ID_COLS = ("obj_id", "obj-id", "objid", "id", "key", "page", "block", "lbn", "lba")
_SECTOR_COLS = ("lbn", "lba")  # counted in 512-byte sectors, the rest in pages


# --- format names ------------------------------------------------------------------------------

def _canon(fmt: str) -> str | None:
    f = fmt.lower()
    f = _ALIASES.get(f, f)
    return f if f in FORMATS else None


def parse_spec(spec: str | Path) -> tuple[str | None, Path]:
    """Split ``"FORMAT:PATH"`` (``lackey:trace.out.gz``, ``oracle:x.bin``, ``msr:hm_0.csv``)
    into ``(format, path)``; a spec without a known format prefix is ``(None, path)``."""
    s = str(spec)
    head, sep, tail = s.partition(":")
    if sep and (fmt := _canon(head)) is not None:
        return fmt, Path(tail)
    return None, Path(s)


def detect_format(path: Path) -> str:
    """Guess a trace's format from its name (``.gz``/``.zst`` stripped), then its first line."""
    name = path.name.lower()
    for z in (".gz", ".zst"):
        name = name.removesuffix(z)
    if "oraclegeneral" in name or name.endswith((".bin", ".oracle")):
        return "oracle"
    if name.endswith(".txt"):
        return "txt"
    first = b""
    blocks = text_blocks(path, 1 << 16)
    try:
        for block, _ in blocks:
            first = next((ln for ln in block.split(b"\n") if ln.strip()), b"")
            if first:
                break
    except DamagedTrace:
        raise
    except TraceError:  # no newline in the first MiB: not a text trace
        pass
    finally:
        blocks.close()
    fields = first.split(b",")
    if len(fields) == 7 and (fields[3].strip().lower() in (b"read", b"write")
                             or first.lower().startswith(b"timestamp,hostname,disknumber")):
        return "msr"
    if name.endswith(".csv"):
        return "csv"
    if first.startswith((b"==", b"I  ", b" L ", b" S ", b" M ")):
        return "lackey"
    raise TraceError(f"{path}: cannot tell the trace format from the name or the first line "
                     f"{first[:60]!r}; use FORMAT:PATH with FORMAT one of {', '.join(FORMATS)}")


def resolve(spec: str | Path, fmt: str | None = None) -> tuple[str, Path]:
    """``(format, path)`` of a trace spec: ``fmt`` overrides a ``FORMAT:`` prefix, which
    overrides detection; a relative path that does not exist may name a shipped trace."""
    f, path = parse_spec(spec)
    if fmt is not None:
        f = _canon(fmt)
        if f is None:
            raise TraceError(f"{path}: unknown trace format {fmt!r}; one of {', '.join(FORMATS)}")
    if not path.exists() and not path.is_absolute() and (DATA_DIR / path).exists():
        path = DATA_DIR / path
    if not path.is_file():
        raise TraceError(f"{path}: no such trace file")
    return f or detect_format(path), path


def open_trace(
    spec: str | Path, fmt: str | None = None, chunk: int = 4096, *, span: bool = False,
    instructions: bool = True,
) -> Iterator[Chunk]:
    """Stream a trace given as ``PATH`` or ``FORMAT:PATH`` (``fmt`` overrides both) in chunks.

    ``span``: oracle/csv records with a size cover every page of ``[addr, addr + size)``.
    ``instructions``: lackey ``I`` (instruction fetch) lines count as reads (else skipped).
    """
    f, path = resolve(spec, fmt)
    if f == "lackey":
        return read_lackey(path, chunk, instructions=instructions)
    if f == "oracle":
        return read_oracle(path, chunk, span=span)
    if f == "csv":
        return read_csv(path, chunk, span=span)
    if f == "txt":
        return read_txt(path, chunk)
    return read_msr(path, chunk)


# --- readers -----------------------------------------------------------------------------------

def read_lackey(path: Path, chunk: int = 4096, *, instructions: bool = True) -> Iterator[Chunk]:
    """valgrind lackey: ``I  04222cac,3`` / `` L 7ff0000ec8,8`` / `` S ...`` / `` M ...``."""
    return _rechunk((_lackey_block(Block(b, n, path), instructions)
                     for b, n in text_blocks(path)), chunk)


def _lackey_block(blk: Block, instructions: bool) -> Chunk:
    c0, c1, c2 = blk.char(0), blk.char(1), blk.char(2)
    length = blk.ends - blk.starts
    instr = (c0 == ord("I")) & (c1 == 32)
    data = (c0 == 32) & ((c1 == ord("L")) | (c1 == ord("S")) | (c1 == ord("M")))
    rec = (instr | data) & (c2 == 32) & (length >= 6)
    chatter = (length == 0) | ((c0 == ord("=")) & (c1 == ord("=")))
    blk.check(rec | chatter, "a lackey record like ' L 0421a0c8,8' or a '==pid==' line")
    blk.keep(rec)
    c0, c1 = c0[rec], c1[rec]
    s = blk.starts + 3
    comma_at = np.flatnonzero(blk.buf == 44)
    k = np.searchsorted(comma_at, s)
    comma = np.append(comma_at, 0)[k]
    found = (k < len(comma_at)) & (comma < blk.ends)
    comma = np.where(found, comma, blk.ends)
    addr, ok_a = blk.hexadecimal(s, comma)
    size, ok_s = blk.decimal(comma + 1, blk.ends)
    blk.fail(found & ok_a & ok_s & (size >= 1) & (size <= PAGE_SIZE),
             "'ADDR,SIZE' with ADDR 1-16 hex digits and SIZE 1-4096")
    write = (c1 == ord("S")) | (c1 == ord("M"))
    if not instructions:
        keep = c0 != ord("I")
        addr, size, write = addr[keep], size[keep], write[keep]
    first = addr & _PAGE_MASK
    last = (addr + size - np.uint64(1)) & _PAGE_MASK
    cross = last != first
    if not cross.any():
        return first, write
    counts = 1 + cross.astype(np.int64)
    pages = np.repeat(first, counts)
    pages[(np.cumsum(counts) - 1)[cross]] = last[cross]
    return pages, np.repeat(write, counts)


def read_oracle(path: Path, chunk: int = 4096, *, span: bool = False) -> Iterator[Chunk]:
    """libCacheSim oracleGeneral: 24-byte records, obj_id = page number, all reads."""
    return _rechunk(_oracle_blocks(path, chunk, span), chunk)


def _oracle_blocks(path: Path, chunk: int, span: bool) -> Iterator[Chunk]:
    rec0 = 0
    with open_binary(path) as f:
        while data := f.read(max(chunk, 1024) * ORACLE_DTYPE.itemsize):
            n, extra = divmod(len(data), ORACLE_DTYPE.itemsize)
            if extra:
                raise TraceError(f"{path}: record {rec0 + n}: expected a 24-byte oracleGeneral "
                                 f"record <IQIq, got {extra} trailing bytes")
            recs = np.frombuffer(data, ORACLE_DTYPE)
            ids = recs["obj_id"]
            big = np.flatnonzero(ids >= _MAX_PAGE)
            if len(big):
                i = int(big[0])
                raise TraceError(f"{path}: record {rec0 + i}: expected obj_id (a page number) "
                                 f"below 2**36, got {int(ids[i])}")
            sizes = recs["obj_size"].astype(np.uint64) if span else None
            yield _expand(ids * np.uint64(PAGE_SIZE), sizes, np.zeros(n, bool))
            rec0 += n


def read_txt(path: Path, chunk: int = 4096) -> Iterator[Chunk]:
    """libCacheSim plain text: one obj_id (a page number) per line, all reads."""
    return _rechunk((_txt_block(Block(b, n, path)) for b, n in text_blocks(path)), chunk)


def _txt_block(blk: Block) -> Chunk:
    blk.keep(blk.ends > blk.starts)
    ids, ok = blk.decimal(blk.starts, blk.ends)
    blk.fail(ok & (ids < _MAX_PAGE), "one obj_id per line: a decimal page number below 2**36")
    return ids * np.uint64(PAGE_SIZE), np.zeros(len(ids), bool)


def read_csv(path: Path, chunk: int = 4096, *, span: bool = False) -> Iterator[Chunk]:
    """libCacheSim-style CSV (see the module docstring and docs/workloads.md)."""
    return _rechunk(_csv_blocks(path, span), chunk)


def _csv_columns(header: list[str], path: Path) -> tuple[int, int | None, int | None, int]:
    """(id column, size column, op column, bytes per id unit) from a header row."""
    cols = [h.strip().lower() for h in header]
    ids = [c for c in _ID_COLS if c in cols]
    if not ids:
        raise TraceError(f"{path}:1: expected a header naming an id column "
                         f"({', '.join(_ID_COLS)}), got {','.join(header)!r}")
    size = next((cols.index(c) for c in ("obj_size", "obj-size", "size", "bytes") if c in cols),
                None)
    op = next((cols.index(c) for c in ("op", "type", "op_type", "rw", "opcode") if c in cols),
              None)
    unit = 512 if ids[0] in _SECTOR_COLS else PAGE_SIZE
    return cols.index(ids[0]), size, op, unit


def _csv_blocks(path: Path, span: bool) -> Iterator[Chunk]:
    layout: tuple[int, int, int | None, int | None, int] | None = None
    for data, line0 in text_blocks(path):
        blk = Block(data, line0, path)
        blk.keep(blk.ends > blk.starts)
        if not len(blk):
            continue
        if layout is None:
            first = blk.text(0).split(",")
            named = {f.strip().lower() for f in first} & set(_ID_COLS)
            if not named and any(f.strip().isdigit() for f in first):  # no header
                n = len(first)
                layout = (n, 0 if n == 1 else 1, 2 if n > 2 else None, 3 if n > 3 else None,
                          PAGE_SIZE)
            else:
                layout = (len(first), *_csv_columns(first, path))
                blk.keep(np.arange(len(blk)) > 0)
        ncols, idc, sizec, opc, unit = layout
        fs, fe = blk.fields(ncols, "the same columns as the first line")
        ids, ok = blk.decimal(fs[:, idc], fe[:, idc])
        blk.fail(ok & (ids < VA_LIMIT // unit), f"a decimal id in column {idc + 1}, below "
                 f"2**48 / {unit}")
        sizes = None
        if span and sizec is not None:
            sizes, ok = blk.decimal(fs[:, sizec], fe[:, sizec])
            blk.fail(ok, f"a decimal size in column {sizec + 1}")
        write = np.zeros(len(ids), bool)
        if opc is not None:
            write = np.isin(blk.lower(fs[:, opc], fe[:, opc]).view(np.uint64), _WRITE_OPS)
        yield _expand(ids * np.uint64(unit), sizes, write)


def read_msr(path: Path, chunk: int = 4096) -> Iterator[Chunk]:
    """MSR Cambridge CSV: every I/O split into its 4 KiB pages, ``Write`` dirty."""
    return _rechunk(_msr_blocks(path), chunk)


def _msr_blocks(path: Path) -> Iterator[Chunk]:
    what = "Timestamp,Hostname,DiskNumber,Type,Offset,Size,ResponseTime"
    for data, line0 in text_blocks(path):
        blk = Block(data, line0, path)
        header = (blk.lineno == 1) & (blk.char(0) == ord("T")) & (blk.char(1) == ord("i"))
        blk.keep((blk.ends > blk.starts) & ~header)
        if not len(blk):
            continue
        fs, fe = blk.fields(7, what)
        kind = blk.lower(fs[:, 3], fe[:, 3])
        write = kind == b"write"
        off, ok_o = blk.decimal(fs[:, 4], fe[:, 4])
        size, ok_s = blk.decimal(fs[:, 5], fe[:, 5])
        blk.check(write | (kind == b"read"), f"Type Read or Write in field 4 of {what}")
        blk.fail(ok_o & ok_s & (off + size <= VA_LIMIT),
                 f"decimal Offset and Size (bytes, below 2**48) in fields 5-6 of {what}")
        yield _expand(off, np.maximum(size, np.uint64(1)), write)


# --- internals: records into page accesses, in chunks ------------------------------------------

def _expand(addr: npt.NDArray[np.uint64], size: npt.NDArray[np.uint64] | None,
            write: npt.NDArray[np.bool_]) -> Chunk:
    """One access per page of ``[addr, addr + size)`` (one page per record if no size)."""
    first = addr & _PAGE_MASK
    if size is None:
        return first, write
    end = addr + np.maximum(size, np.uint64(1)) - np.uint64(1)
    counts = ((end & _PAGE_MASK) - first) // np.uint64(PAGE_SIZE) + np.uint64(1)
    if (counts == 1).all():
        return first, write
    counts_i = counts.astype(np.int64)
    starts = np.repeat(np.cumsum(counts_i) - counts_i, counts_i)
    step = (np.arange(int(counts_i.sum()), dtype=np.int64) - starts).astype(np.uint64)
    return np.repeat(first, counts_i) + step * np.uint64(PAGE_SIZE), np.repeat(write, counts_i)


def _rechunk(blocks: Iterator[Chunk], n: int) -> Iterator[Chunk]:
    """Re-cut a stream of arrays of any length into chunks of exactly n (the last shorter)."""
    if n <= 0:
        raise ValueError(f"chunk must be > 0, got {n}")
    pend_v: list[npt.NDArray[np.uint64]] = []
    pend_w: list[npt.NDArray[np.bool_]] = []
    have = 0
    for v, w in blocks:
        pos = 0
        while pos < len(v):
            if not have and len(v) - pos >= n:
                yield v[pos:pos + n], w[pos:pos + n]
                pos += n
                continue
            take = min(n - have, len(v) - pos)
            pend_v.append(v[pos:pos + take])
            pend_w.append(w[pos:pos + take])
            have += take
            pos += take
            if have == n:
                yield np.concatenate(pend_v), np.concatenate(pend_w)
                pend_v, pend_w, have = [], [], 0
    if have:
        yield np.concatenate(pend_v), np.concatenate(pend_w)


# --- the replay workload -----------------------------------------------------------------------

async def trace_replay(
    p: ProcessHandle, path: str, fmt: str | None = None, chunk: Pages = 4096,
    limit: Count | None = None, offset: Count | None = None,
    region_shift: Annotated[int, Meta(ge=12, le=47)] = 21, collapse: bool = False,
    instructions: bool = True, span: bool = False, check_zero: Count = 0, think_ns: Ns = 0,
) -> None:
    """Replay a memory trace: map the regions it touches on first use, then touch its pages.

    Addresses are mapped lazily: when a chunk reaches a ``2**region_shift``-aligned region not
    mapped yet, the workload maps that whole region at its own address (``mmap(addr=...)``), so
    48-bit addresses work. Trace pages carry no stamps and ``touch`` never changes bytes, so
    every page must read as zeros: ``check_zero`` pages per chunk are loaded and verified so.
    Params:
        path: trace file, ``PATH`` or ``FORMAT:PATH``; a bare name may be a shipped trace.
        fmt: trace format (lackey, oracle, csv, txt, msr); default from the spec or the name.
        chunk: accesses per touch batch.
        limit: stop after this many accesses (default: the whole trace).
        offset: added to every address (default 0 for lackey, 4 GiB for block traces).
        region_shift: log2 of the lazily mapped region size (21 = 2 MiB, 30 = 1 GiB).
        collapse: merge runs of accesses to the same page within a chunk into one access.
        instructions: lackey instruction fetches count as reads.
        span: oracle/csv records cover every page of their size.
        check_zero: pages per chunk loaded and verified to be zeros.
        think_ns: virtual CPU time spent after each chunk.
    """
    fmt, fpath = resolve(path, fmt)
    if offset is None:
        offset = 0 if fmt == "lackey" else 1 << 32
    mapped: set[int] = set()
    pages: set[int] = set()
    accesses = writes = chunks = 0
    for v, w in open_trace(fpath, fmt, chunk, span=span, instructions=instructions):
        if limit is not None and accesses + len(v) > limit:
            v, w = v[:limit - accesses], w[:limit - accesses]
        if offset:
            v = v + np.uint64(offset)
        if len(v) and int(v.max()) >= VA_LIMIT:
            raise TraceError(f"{path}: address {int(v.max()):#x} (offset {offset:#x} added) "
                             "is beyond the 48-bit address space")
        if collapse and len(v) > 1:
            starts = np.flatnonzero(np.r_[True, v[1:] != v[:-1]])
            v, w = v[starts], np.logical_or.reduceat(w, starts)
        for r in np.unique(v >> np.uint64(region_shift)).tolist():
            if r not in mapped:
                await p.mmap(1 << region_shift, addr=r << region_shift)
                mapped.add(r)
        await p.touch(v, w)
        accesses += len(v)
        writes += int(np.count_nonzero(w))
        pages.update(np.unique(v).tolist())
        chunks += 1
        if check_zero and len(v):
            for a in v[p.rng.integers(0, len(v), size=check_zero)].tolist():
                p.verify(a, ZERO_PAGE, await p.load(a, PAGE_SIZE))
        if think_ns:
            await p.compute(think_ns)
        if limit is not None and accesses >= limit:
            break
    if accesses == 0 and limit != 0:
        raise TraceError(f"{fpath}: the trace holds no accesses (empty); nothing to replay")
    p.log("stats", path=str(path), fmt=fmt, accesses=accesses, writes=writes, chunks=chunks,
          distinct_pages=len(pages), regions=len(mapped), region_shift=region_shift)


def next_access(pages: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.int64]:
    """For each access, the index of the next access to the same page (-1: none)."""
    order = np.argsort(pages, kind="stable")
    nxt = np.full(len(pages), -1, np.int64)
    same = pages[order[1:]] == pages[order[:-1]]
    nxt[order[:-1][same]] = order[1:][same]
    return nxt


def write_oracle(pages: npt.NDArray[np.integer[Any]], path: Path) -> None:
    """A page stream as libCacheSim's oracleGeneral trace (one 4 KiB object per page, its
    next access filled in for Belady)."""
    rec = np.zeros(len(pages), ORACLE_DTYPE)
    rec["clock_time"] = np.arange(len(pages), dtype=np.uint64).astype(np.uint32)
    rec["obj_id"] = pages
    rec["obj_size"] = 4096
    rec["next_access_vtime"] = next_access(pages)
    rec.tofile(path)


def lcs_reader(path: Path) -> Any:
    """A libCacheSim reader of the oracleGeneral trace at ``path`` (object sizes ignored:
    every policy counts objects, here pages)."""
    import libcachesim as lcs  # only the reference policies need it

    return lcs.TraceReader(str(path), lcs.TraceType.ORACLE_GENERAL_TRACE,
                           lcs.ReaderInitParam(ignore_obj_size=True))  # fmt: skip
