"""emu.benchmarks.swapwrite: swap gather-write throughput through ImageDisk vs raw os.pwritev.

Both sides write the same clusters: 16 non-contiguous 4 KiB frames of an anonymous mmap arena
each, at consecutive 16-page blocks of a fresh sparse image in a temp dir. Ours goes through
``ImageDisk.strategy`` (timing model none) from an emulated thread that keeps ``WINDOW``
clusters in flight, inside ``Clock.run``, so it pays for the request, the virtual-time event, the
thread-pool hops and the completion interrupt. The reference calls ``os.pwritev`` for each
cluster in a loop, in the same process and run. Target: ours >= 0.5x the reference.
"""

from __future__ import annotations

import asyncio
import mmap
import os
import statistics
import tempfile
import time
from collections.abc import Callable

from devices.imagedisk import ImageDisk
from devices.request import PAGE_SIZE, IoRequest
from devices.timing import NoneModel
from emu.benchmarks import BenchResult
from emu.clock import Clock

CLUSTER = 16  # pages per cluster (SWCLUSTPAGES-sized gather writes)
WINDOW = 128  # clusters in flight
NFRAMES = 4096  # 16 MiB arena
TARGET = 0.5


def _clusters(arena: memoryview, nclusters: int) -> list[list[memoryview]]:
    """Cluster i takes frames i, i + s, i + 2s, ... (mod NFRAMES) for a stride s > 1."""
    stride = 257  # odd, coprime with NFRAMES: every frame used, never two adjacent in a cluster
    out = []
    for i in range(nclusters):
        frames = [(i * CLUSTER + j) * stride % NFRAMES for j in range(CLUSTER)]
        out.append([arena[f * PAGE_SIZE : (f + 1) * PAGE_SIZE] for f in frames])
    return out


def _raw(path: str, clusters: list[list[memoryview]]) -> float:
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        os.ftruncate(fd, len(clusters) * CLUSTER * PAGE_SIZE)
        t0 = time.perf_counter()
        for i, frames in enumerate(clusters):
            os.pwritev(fd, frames, i * CLUSTER * PAGE_SIZE)
        return time.perf_counter() - t0
    finally:
        os.close(fd)
        os.unlink(path)


def _ours(
    path: str,
    clusters: list[list[memoryview]],
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> float:
    n = len(clusters)
    clock = Clock()
    disk = ImageDisk(path, n * CLUSTER, clock, NoneModel(), name="bench0")
    disk.create()
    elapsed = [0.0]
    errors = [0]

    async def writer() -> None:
        inflight = 0
        low = WINDOW // 2
        w = clock.waiter("bench")

        def done(io: IoRequest) -> None:
            nonlocal inflight
            inflight -= 1
            errors[0] += io.error != 0
            if inflight <= low:
                clock.wake(w)

        t0 = time.perf_counter()
        i = 0
        while i < n or inflight:
            while i < n and inflight < WINDOW:
                disk.strategy(IoRequest(i * CLUSTER, clusters[i], True, done))
                i += 1
                inflight += 1
            w = clock.waiter("bench")
            await clock.wait(w)
        elapsed[0] = time.perf_counter() - t0

    def setup(c: Clock, tg: asyncio.TaskGroup) -> None:
        c.spawn(writer, name="writer")

    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(clock.run(setup))
    finally:
        disk.close()
        os.unlink(path)
    if errors[0]:
        raise RuntimeError(f"swapwrite: {errors[0]} cluster writes failed")
    return elapsed[0]


def run(quick: bool, tiny: bool = False) -> list[BenchResult]:
    nclusters = 64 if tiny else 1024 if quick else 4096  # 64 MiB / 256 MiB per pass
    repeats = 1 if tiny else 5 if quick else 7
    nbytes = nclusters * CLUSTER * PAGE_SIZE
    mm = mmap.mmap(-1, NFRAMES * PAGE_SIZE)
    arena = memoryview(mm)
    for f in range(NFRAMES):  # touch every frame so both sides copy real pages
        arena[f * PAGE_SIZE : f * PAGE_SIZE + 8] = f.to_bytes(8, "little")
    clusters = _clusters(arena, nclusters)
    ours: list[float] = []
    ref: list[float] = []
    try:
        with tempfile.TemporaryDirectory(prefix="swapwrite-") as tmp:
            _ours(os.path.join(tmp, "warm.img"), clusters[:64])  # start the pool threads
            _raw(os.path.join(tmp, "warm-raw.img"), clusters[:64])
            for k in range(repeats):  # interleave, alternating who goes first: drift hits both
                raw_path, our_path = os.path.join(tmp, f"raw{k}.img"), os.path.join(tmp, f"ours{k}.img")
                if k % 2:
                    ours.append(_ours(our_path, clusters))
                    ref.append(_raw(raw_path, clusters))
                else:
                    ref.append(_raw(raw_path, clusters))
                    ours.append(_ours(our_path, clusters))
    finally:
        for c in clusters:
            for v in c:
                v.release()
        arena.release()
        mm.close()
    t_ours, t_ref = statistics.median(ours), statistics.median(ref)
    value, reference = nbytes / t_ours / 1e6, nbytes / t_ref / 1e6
    ratio = value / reference
    return [
        BenchResult(
            name="swapwrite",
            value=round(value, 1),
            unit="MB/s",
            reference=round(reference, 1),
            ratio=round(ratio, 3),
            target=f">= {TARGET}x",
            passed=ratio >= TARGET,
            spread=(max(ours) - min(ours)) / t_ours if t_ours else 0.0,
            extra={"clusters": nclusters, "cluster_pages": CLUSTER, "window": WINDOW},
        )
    ]
