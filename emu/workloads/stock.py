"""emu.workloads.stock: stock workloads that check every page they read.

Each workload is ``async def name(p: ProcessHandle, **params) -> None``. It keeps a version
table for the pages it owns (0 = never written) and stamps every page it writes
(:mod:`emu.workloads.stamps`); every checked read goes through ``p.verify`` against the stamp it
last wrote, or against zeros for a page never written. Bulk accesses that need no content check
use ``p.touch``, which sets reference and modify bits but never changes a byte, so stamps
survive them. All randomness comes from ``p.rng``, all time from ``p.compute``: runs are
deterministic. At exit each workload logs ``workload.stats`` with its counts.

Params are documented in each docstring under ``Params:`` (``describe()`` in the package reads
them); docs/workloads.md is the user guide.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import numpy.typing as npt
from msgspec import Meta

from emu.api import Count, Fraction, MapKind, Ns, Pages, ProcessHandle
from emu.workloads.stamps import PAGE_SIZE, ZERO_PAGE, check_page, make_page, read_header

__all__ = ["file_rmw", "hog", "phase_shift", "seq_scan", "shared_pair", "uniform", "zipf"]

_BATCH = 1024  # random draws made at once


class _Pages:
    """A workload's checked pages: their addresses, version table and access counts.

    ``vaddr[i]`` is where logical page ``i`` is mapped; the stamp of page ``i`` carries
    ``(owner, i, version[i])``. ``owner`` is the writer's pid.
    """

    def __init__(self, p: ProcessHandle, think_ns: int = 0) -> None:
        self.p = p
        self.owner = p.pid
        self.think_ns = think_ns
        self.vaddr: npt.NDArray[np.uint64] = np.zeros(0, np.uint64)
        self.version: npt.NDArray[np.int64] = np.zeros(0, np.int64)
        self.reads = 0
        self.writes = 0
        self.touched = 0

    async def map(self, npages: int, kind: MapKind = "anon", name: str | None = None) -> int:
        """Map ``npages`` more pages and append them to the table; returns the address."""
        base = await self.p.mmap(npages * PAGE_SIZE, kind, name=name)
        self.rebase(len(self.vaddr), base, npages)
        return base

    def rebase(self, first: int, base: int, npages: int) -> None:
        """Pages first..first+npages now live at base (a new mapping of the same object)."""
        new = np.uint64(base) + np.arange(npages, dtype=np.uint64) * np.uint64(PAGE_SIZE)
        if first == len(self.vaddr):
            self.vaddr = np.concatenate([self.vaddr, new])
            self.version = np.concatenate([self.version, np.zeros(npages, np.int64)])
        else:
            self.vaddr[first:first + npages] = new

    async def write(self, i: int) -> None:
        """Write the next version of page i's stamp."""
        self.version[i] += 1
        await self.p.store(int(self.vaddr[i]), make_page(self.owner, i, int(self.version[i])))
        self.writes += 1
        await self.think()

    async def read(self, i: int) -> bool:
        """Read page i and verify it holds the last stamp written (zeros if none)."""
        data = await self.p.load(int(self.vaddr[i]), PAGE_SIZE)
        self.reads += 1
        ok = self.check(i, make_page(self.owner, i, int(self.version[i])), data)
        await self.think()
        return ok

    def check(self, i: int, expected: bytes, found: bytes) -> bool:
        """p.verify the page; on a mismatch also log what differs (workload.mismatch_detail)."""
        vaddr = int(self.vaddr[i])
        ok = self.p.verify(vaddr, expected, found)
        if not ok:
            want = read_header(expected)  # None: the zero page was expected
            detail = check_page(found, *want) if want else check_page(found, 0, i, 0)
            self.p.log("mismatch_detail", vaddr=vaddr, page=i, detail=detail)
        return ok

    async def access(self, i: int, write: bool) -> None:
        await (self.write(i) if write else self.read(i))

    async def touch_all(self, write: bool) -> None:
        """One bulk pass over every page (no content check, bytes unchanged)."""
        await self.p.touch(self.vaddr, write)
        self.touched += len(self.vaddr)

    async def think(self) -> None:
        if self.think_ns:
            await self.p.compute(self.think_ns)

    def log_stats(self, **extra: object) -> None:
        self.p.log(
            "stats", reads=self.reads, writes=self.writes, touched=self.touched,
            accesses=self.reads + self.writes + self.touched, pages=len(self.vaddr),
            written_pages=int(np.count_nonzero(self.version)), **extra,
        )


async def _random_accesses(
    p: ProcessHandle, pg: _Pages, pick: npt.NDArray[np.float64] | None, lo: int, n: int,
    accesses: int, write_fraction: float,
) -> None:
    """``accesses`` checked accesses to pages lo..lo+n-1 (mod the table size), drawn uniformly
    or from the cumulative distribution ``pick``; a fraction ``write_fraction`` are writes."""
    total = len(pg.vaddr)
    done = 0
    while done < accesses:
        k = min(_BATCH, accesses - done)
        if pick is None:
            idx = p.rng.integers(0, n, size=k)
        else:
            idx = np.minimum(np.searchsorted(pick, p.rng.random(k), side="right"), n - 1)
        writes = p.rng.random(k) < write_fraction
        for i, w in zip(((idx + lo) % total).tolist(), writes.tolist(), strict=True):
            await pg.access(i, w)
        done += k


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


async def seq_scan(
    p: ProcessHandle, pages: Pages = 256, passes: Count = 4, write_fraction: Fraction = 0.1,
    think_ns: Ns = 0,
) -> None:
    """Sequential passes over one anonymous region: write it all, then read and verify.

    Params:
        pages: region size in pages.
        passes: number of passes; the first writes every page in order.
        write_fraction: in later passes, the chance that a verified page is then rewritten.
        think_ns: virtual CPU time spent after each page access.
    """
    _check_fraction("write_fraction", write_fraction)
    pg = _Pages(p, think_ns)
    await pg.map(pages)
    for npass in range(passes):
        rewrite = p.rng.random(pages) < write_fraction
        for i in range(pages):
            if npass == 0:
                await pg.write(i)
                continue
            await pg.read(i)
            if rewrite[i]:
                await pg.write(i)
    pg.log_stats()


async def uniform(
    p: ProcessHandle, pages: Pages = 256, accesses: Count = 4096, write_fraction: Fraction = 0.3,
    think_ns: Ns = 0,
) -> None:
    """Uniformly random page accesses over one anonymous region.

    Params:
        pages: region size in pages.
        accesses: number of checked page accesses.
        write_fraction: chance that an access writes a new stamp instead of reading.
        think_ns: virtual CPU time spent after each page access.
    """
    _check_fraction("write_fraction", write_fraction)
    pg = _Pages(p, think_ns)
    await pg.map(pages)
    await _random_accesses(p, pg, None, 0, pages, accesses, write_fraction)
    pg.log_stats()


def _zipf_cdf(n: int, alpha: float) -> npt.NDArray[np.float64]:
    """Cumulative distribution of ranks 1..n with P(k) proportional to k**-alpha."""
    w = np.arange(1, n + 1, dtype=np.float64) ** -alpha
    cdf: npt.NDArray[np.float64] = np.cumsum(w)
    cdf /= cdf[-1]
    return cdf


async def zipf(
    p: ProcessHandle, pages: Pages = 1024, accesses: Count = 8192,
    alpha: Annotated[float, Meta(ge=0)] = 1.0, write_fraction: Fraction = 0.3,
    scatter: bool = True, think_ns: Ns = 0,
) -> None:
    """Zipf-distributed page accesses: a small hot set and a long cold tail.

    Params:
        pages: region size in pages.
        accesses: number of checked page accesses.
        alpha: Zipf exponent (>= 0; 0 is uniform, larger is more skewed).
        write_fraction: chance that an access writes a new stamp instead of reading.
        scatter: place the ranks on a random permutation of the pages (else page 0 is hottest).
        think_ns: virtual CPU time spent after each page access.
    """
    _check_fraction("write_fraction", write_fraction)
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    pg = _Pages(p, think_ns)
    await pg.map(pages)
    cdf = _zipf_cdf(pages, alpha)
    perm = p.rng.permutation(pages) if scatter else np.arange(pages)
    done = 0
    while done < accesses:
        k = min(_BATCH, accesses - done)
        ranks = np.minimum(np.searchsorted(cdf, p.rng.random(k), side="right"), pages - 1)
        writes = p.rng.random(k) < write_fraction
        for i, w in zip(perm[ranks].tolist(), writes.tolist(), strict=True):
            await pg.access(i, w)
        done += k
    pg.log_stats(alpha=alpha)


async def phase_shift(
    p: ProcessHandle, pages: Pages = 1024, working_set: Pages = 128, phases: Count = 4,
    accesses_per_phase: Count = 2048, shift: int | None = None, write_fraction: Fraction = 0.3,
    think_ns: Ns = 0,
) -> None:
    """A working set that moves between phases: uniform accesses inside a window of pages.

    In phase k the window is pages ``k*shift .. k*shift + working_set - 1`` (mod ``pages``).
    Params:
        pages: region size in pages.
        working_set: window size in pages.
        phases: number of phases.
        accesses_per_phase: checked page accesses in each phase.
        shift: how far the window moves each phase, in pages (default: working_set, disjoint).
        write_fraction: chance that an access writes a new stamp instead of reading.
        think_ns: virtual CPU time spent after each page access.
    """
    _check_fraction("write_fraction", write_fraction)
    if not 0 < working_set <= pages:
        raise ValueError(f"working_set must be in 1..{pages}, got {working_set}")
    step = working_set if shift is None else shift
    pg = _Pages(p, think_ns)
    await pg.map(pages)
    for k in range(phases):
        p.log("phase", phase=k, first_page=(k * step) % pages, working_set=working_set)
        await _random_accesses(p, pg, None, k * step, working_set, accesses_per_phase,
                               write_fraction)
    pg.log_stats(phases=phases)


async def hog(
    p: ProcessHandle, step_pages: Pages = 64, max_pages: Count = 4096, dirty: bool = True,
    sample: Count = 16, final_check: bool = True, think_ns: Ns = 0,
) -> None:
    """Grow memory step by step to a limit, touching the whole footprint after each step.

    Each step maps ``step_pages`` more anonymous pages and writes a stamp into each, then
    touches every page mapped so far (writing, if ``dirty``, so all of it must be paged out
    again), then reads and verifies ``sample`` random pages.
    Params:
        step_pages: pages added per step.
        max_pages: stop growing at this many pages.
        dirty: the bulk touch writes (sets the modify bit) rather than reads.
        sample: random pages read and verified after each step.
        final_check: read and verify every page at the end.
        think_ns: virtual CPU time spent after each checked page access.
    """
    if step_pages <= 0:
        raise ValueError(f"step_pages must be > 0, got {step_pages}")
    pg = _Pages(p, think_ns)
    steps = 0
    while len(pg.vaddr) < max_pages:
        first = len(pg.vaddr)
        n = min(step_pages, max_pages - first)
        await pg.map(n)
        for i in range(first, first + n):
            await pg.write(i)
        await pg.touch_all(dirty)
        for i in p.rng.integers(0, len(pg.vaddr), size=sample).tolist():
            await pg.read(i)
        steps += 1
        p.log("grow", step=steps, pages=len(pg.vaddr))
    if final_check:
        for i in range(len(pg.vaddr)):
            await pg.read(i)
    pg.log_stats(steps=steps)


async def shared_pair(
    p: ProcessHandle, region: str = "pair", pages: Pages = 256, rank: Count = 0,
    nprocs: Annotated[int, Meta(ge=1)] = 2, accesses: Count = 4096,
    write_fraction: Fraction = 0.5, peer_fraction: Fraction = 0.25, think_ns: Ns = 0,
) -> None:
    """One of ``nprocs`` processes sharing the anonymous region ``region`` (an aobj).

    Start it once per rank with the same ``region``, ``pages`` and ``nprocs``. Process
    ``rank`` owns pages ``i`` with ``i % nprocs == rank``: only it writes them, so it knows
    their exact stamps and checks them fully. It also reads pages of the other ranks: such a
    page must be zeros, or a complete, valid stamp of page ``i`` by that rank's writer (its pid
    learnt on first sight, then fixed) whose version never goes backwards between two reads.
    Params:
        region: name of the shared region; every rank must use the same one.
        pages: region size in pages.
        rank: this process's rank, 0..nprocs-1.
        nprocs: number of processes sharing the region.
        accesses: number of checked page accesses.
        write_fraction: chance that an access to an own page writes a new stamp.
        peer_fraction: chance that an access reads another rank's page.
        think_ns: virtual CPU time spent after each page access.
    """
    _check_fraction("write_fraction", write_fraction)
    _check_fraction("peer_fraction", peer_fraction)
    if not 0 <= rank < nprocs or pages < nprocs:
        raise ValueError(f"need 0 <= rank < nprocs <= pages, got {rank}, {nprocs}, {pages}")
    pg = _Pages(p, think_ns)
    await pg.map(pages, "shared", name=region)
    own = np.arange(rank, pages, nprocs)
    peers = np.flatnonzero(np.arange(pages) % nprocs != rank)
    peer_pid: dict[int, int] = {}
    seen = np.zeros(pages, np.int64)  # highest version read of each peer page
    peer_reads = 0
    done = 0
    while done < accesses:
        k = min(_BATCH, accesses - done)
        to_peer = p.rng.random(k) < peer_fraction
        writes = p.rng.random(k) < write_fraction
        own_i = own[p.rng.integers(0, len(own), size=k)]
        peer_i = peers[p.rng.integers(0, len(peers), size=k)] if len(peers) else own_i
        to_peer &= len(peers) > 0
        for j in range(k):
            if not to_peer[j]:
                await pg.access(int(own_i[j]), bool(writes[j]))
                continue
            i = int(peer_i[j])
            data = await p.load(int(pg.vaddr[i]), PAGE_SIZE)
            peer_reads += 1
            pg.check(i, _peer_expected(data, i, i % nprocs, peer_pid, seen), data)
            await pg.think()
        done += k
    pg.log_stats(rank=rank, peer_reads=peer_reads)


def _peer_expected(
    data: bytes, i: int, owner: int, peer_pid: dict[int, int], seen: npt.NDArray[np.int64]
) -> bytes:
    """What a read of another rank's page i may return, given what was read before."""
    stamp = read_header(data)
    if stamp is None:  # zeros are fine until a stamp has been seen there
        pid = peer_pid.get(owner, 0)
        return make_page(pid, i, int(seen[i])) if seen[i] or data != ZERO_PAGE else ZERO_PAGE
    pid = peer_pid.setdefault(owner, stamp.pid)
    version = max(stamp.version, int(seen[i]))
    seen[i] = version
    return make_page(pid, i, version)


async def file_rmw(
    p: ProcessHandle, file: str = "rmw.dat", pages: Pages = 256, passes: Count = 4,
    order: Literal["seq", "random"] = "seq", remap: bool = True, think_ns: Ns = 0,
) -> None:
    """Read, verify, modify and write back every page of a file mapping, pass after pass.

    The file (a vnode, created sparse) starts as zeros; each pass reads each page, verifies its
    last stamp, and writes the next version. With ``remap`` the file is unmapped and mapped
    again between passes, so later reads come through the vnode pager, not this mapping.
    Params:
        file: file name in the run directory; one process per file.
        pages: file size in pages.
        passes: number of read-modify-write passes.
        order: "seq" (page order) or "random" (a new permutation each pass).
        remap: munmap and mmap the file again between passes.
        think_ns: virtual CPU time spent after each page access.
    """
    if order not in ("seq", "random"):
        raise ValueError(f"order must be 'seq' or 'random', got {order!r}")
    pg = _Pages(p, think_ns)
    base = await pg.map(pages, "file", name=file)
    for npass in range(passes):
        if remap and npass:
            await p.munmap(base, pages * PAGE_SIZE)
            base = await p.mmap(pages * PAGE_SIZE, "file", name=file)
            pg.rebase(0, base, pages)
        seq = p.rng.permutation(pages) if order == "random" else np.arange(pages)
        for i in seq.tolist():
            await pg.read(i)
            await pg.write(i)
    pg.log_stats(passes=passes)
