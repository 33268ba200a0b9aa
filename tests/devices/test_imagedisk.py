"""devices/imagedisk.py: the sparse-image disk (ARCHITECTURE.md, "Time and determinism").

"A device starts the real write or read at once (aiofiles), and its completion is delivered to
the kernel when virtual time reaches submit + service time, never earlier, and never before the
real I/O finished. A completion that arrives from the thread pool early is only recorded."
"""

from __future__ import annotations

import errno
import os
import random
import stat
import time
from pathlib import Path
from typing import Any

import pytest
import uvloop

from devices import hostpool
from devices.faults import FaultConfig
from devices.imagedisk import ImageDisk
from devices.request import PAGE_SIZE, IoRequest
from devices.timing import NoneModel, SsdModel
from emu.clock import Clock


def _nothing(io: IoRequest) -> None:
    pass


def wbuf(blkno: int, frames: list[memoryview]) -> IoRequest:
    return IoRequest(blkno, frames, True, _nothing)


def rbuf(blkno: int, frames: list[memoryview]) -> IoRequest:
    return IoRequest(blkno, frames, False, _nothing)


# --- the image file --------------------------------------------------------------------------


def test_create_makes_a_sparse_image_of_npages_with_mode_0600(tmp_path: Path) -> None:
    d = ImageDisk(tmp_path / "swap.img", 4096, Clock(), NoneModel())
    d.create()
    try:
        st = os.stat(tmp_path / "swap.img")
        assert st.st_size == 4096 * PAGE_SIZE
        assert stat.S_IMODE(st.st_mode) == 0o600
        assert st.st_blocks * 512 < 1 << 20  # 16 MiB long, (almost) nothing allocated
        assert d.image_allocated_bytes() == st.st_blocks * 512
    finally:
        d.close()


def test_create_refuses_an_existing_path_unless_forced(tmp_path: Path) -> None:
    p = tmp_path / "swap.img"
    p.write_bytes(b"precious")
    d = ImageDisk(p, 16, Clock(), NoneModel())
    with pytest.raises(FileExistsError, match=r"already exists.*force=True") as ei:
        d.create()
    assert ei.value.filename == str(p)
    assert p.read_bytes() == b"precious"
    d.create(force=True)
    d.close()
    assert p.stat().st_size == 16 * PAGE_SIZE


def test_strategy_on_a_closed_disk_is_a_programmer_error(tmp_path: Path) -> None:
    d = ImageDisk(tmp_path / "swap.img", 16, Clock(), NoneModel())
    with pytest.raises(RuntimeError, match="not open"):
        d.strategy(wbuf(0, [memoryview(bytearray(PAGE_SIZE))]))


# --- data lands where it should -----------------------------------------------------------------


def test_gather_write_of_16_noncontiguous_frames_lands_at_its_block(
    arena: Any, make_disk: Any, io: Any, run: Any
) -> None:
    clock = Clock()
    disk = make_disk(clock, npages=1024)
    a = arena(64)
    frames = [3 * i + 1 for i in range(16)][::-1]  # scattered, in descending order
    pats = [a.fill(f, tag=100 + f) for f in frames]
    bp = wbuf(500, [a.frame(f) for f in frames])

    async def main() -> None:
        await io(clock, disk, [bp])

    run(clock, main)
    assert bp.error == 0
    assert bp.resid == 0
    fd = os.open(disk.path, os.O_RDONLY)
    try:
        for i, pat in enumerate(pats):
            assert os.pread(fd, PAGE_SIZE, (500 + i) * PAGE_SIZE) == pat
        assert os.pread(fd, PAGE_SIZE, 499 * PAGE_SIZE) == bytes(PAGE_SIZE)
        assert os.pread(fd, PAGE_SIZE, 516 * PAGE_SIZE) == bytes(PAGE_SIZE)
    finally:
        os.close(fd)


def test_read_fills_the_frames_in_place(arena: Any, make_disk: Any, io: Any, run: Any) -> None:
    clock = Clock()
    disk = make_disk(clock, npages=64)
    src = [os.urandom(PAGE_SIZE) for _ in range(4)]
    fd = os.open(disk.path, os.O_WRONLY)
    os.pwrite(fd, b"".join(src), 10 * PAGE_SIZE)
    os.close(fd)
    a = arena(16)
    frames = [a.frame(f) for f in (9, 2, 14, 5)]
    bp = rbuf(10, frames)

    async def main() -> None:
        await io(clock, disk, [bp])

    run(clock, main)
    assert bp.error == 0
    for f, want in zip((9, 2, 14, 5), src, strict=True):
        assert a.mm[f * PAGE_SIZE : (f + 1) * PAGE_SIZE] == want


def test_image_stays_sparse_after_writing_blocks_far_apart(
    arena: Any, make_disk: Any, io: Any, run: Any
) -> None:
    clock = Clock()
    disk = make_disk(clock, npages=65536)  # 256 MiB image
    a = arena(4)
    for f in range(4):
        a.fill(f, f)
    bps = [wbuf(blk, [a.frame(i)]) for i, blk in enumerate((0, 20000, 40000, 65535))]

    async def main() -> None:
        await io(clock, disk, bps)

    run(clock, main)
    assert all(bp.error == 0 for bp in bps)
    assert disk.image_allocated_bytes() <= 4 << 20  # a few fs blocks, not 256 MiB
    assert disk.written_pages == 4


# --- determinism ---------------------------------------------------------------------------------


def _workload(loop_factory: Any, delay_seed: int, make_disk: Any, arena: Any, run: Any,
              monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Three threads write and read clusters; the pool finishes in a random real order."""
    jitter = random.Random(delay_seed)
    real = hostpool._io_batch

    def hook(fd: int, ops: list[Any]) -> list[tuple[int, int]]:
        time.sleep(jitter.random() * 0.003)
        return real(fd, ops)

    monkeypatch.setattr(hostpool, "_io_batch", hook)
    clock = Clock()
    disk = make_disk(clock, npages=2048, model=SsdModel(),
                     faults=FaultConfig(fail_write_rate=0.1, seed=3), max_hops=4, max_batch=3)
    mem = arena(3 * 32)
    log: list[tuple[Any, ...]] = []

    def thread(k: int) -> Any:
        rng = random.Random(k)

        async def main() -> None:
            w = clock.waiter("x")
            left = 0

            def done(bp: IoRequest) -> None:
                nonlocal left
                log.append((clock.now, k, int(bp.write), bp.blkno, bp.t_submit,
                            bp.t_done, bp.error))
                left -= 1
                if left == 0:
                    clock.wake(w)

            for _round in range(6):
                w = clock.waiter("x")
                for j in range(rng.randint(1, 5)):
                    n = rng.randint(1, 16)
                    frames = [mem.frame(k * 32 + (j * 7 + i) % 32) for i in range(n)]
                    blk = rng.randrange(0, 2048 - n)
                    write = not rng.random() < 0.3
                    left += 1
                    disk.strategy(IoRequest(blk, frames, write, done))
                    await clock.sleep(rng.randint(0, 30_000))
                await clock.wait(w)

        return main

    run(clock, thread(0), thread(1), thread(2), loop_factory=loop_factory)
    s = disk.stats
    log.append((s.reads, s.writes, s.errors, s.bytes_written, tuple(s.latency_hist)))
    return log


def test_completions_are_identical_whatever_order_the_pool_finishes_in(
    make_disk: Any, arena: Any, run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _workload(None, 1, make_disk, arena, run, monkeypatch)
    second = _workload(None, 2, make_disk, arena, run, monkeypatch)
    assert len(first) > 30
    assert any(row[-1] == errno.EIO for row in first[:-1])
    assert first == second


def test_completions_are_identical_on_asyncio_and_uvloop(
    make_disk: Any, arena: Any, run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_asyncio = _workload(None, 5, make_disk, arena, run, monkeypatch)
    on_uvloop = _workload(uvloop.new_event_loop, 6, make_disk, arena, run, monkeypatch)
    assert on_asyncio == on_uvloop


def test_completion_is_delivered_at_t_done_in_virtual_time(
    arena: Any, make_disk: Any, run: Any
) -> None:
    clock = Clock()
    disk = make_disk(clock, model=SsdModel())
    a = arena(1)
    seen: list[int] = []
    bp = wbuf(0, [a.frame(0)])
    bp.iodone = lambda b: seen.append(clock.now)

    async def main() -> None:
        await clock.sleep(1_000)
        disk.strategy(bp)
        await clock.sleep(1_000_000)

    run(clock, main)
    assert bp.t_submit == 1_000
    assert seen == [bp.t_done] == [1_000 + 30_000 + 2_048]


# --- errors are reported, never raised ------------------------------------------------------------


@pytest.mark.parametrize(
    ("blkno", "npages", "page_bytes"),
    [(-1, 1, None), (63, 2, None), (64, 1, None), (0, 0, None), (0, 2, PAGE_SIZE // 2)],
    ids=["negative", "straddles-end", "past-end", "empty", "short-page"],
)
def test_a_malformed_request_completes_with_einval(
    blkno: int, npages: int, page_bytes: int | None, arena: Any, make_disk: Any, run: Any
) -> None:
    clock = Clock()
    disk = make_disk(clock, npages=64, model=SsdModel())
    a = arena(2)
    bp = wbuf(blkno, [a.frame(i) for i in range(npages)])
    if page_bytes is not None:
        bp.pages[1] = bp.pages[1][:page_bytes]  # a view that is not a whole page
    done: list[int] = []
    bp.iodone = lambda b: done.append(clock.now)

    async def main() -> None:
        disk.strategy(bp)  # does not raise
        await clock.sleep(10)

    run(clock, main)
    assert bp.error == errno.EINVAL
    assert bp.resid == bp.nbytes
    assert done == [0] and disk.busy_until == 0  # rejected at once, no device time
    assert disk.stats.errors == 1 and disk.stats.bytes_written == 0


def test_a_read_into_a_readonly_frame_completes_with_einval(make_disk: Any, run: Any) -> None:
    clock = Clock()
    disk = make_disk(clock, npages=4)
    bp = rbuf(0, [memoryview(bytes(PAGE_SIZE))])

    async def main() -> None:
        disk.strategy(bp)
        await clock.sleep(10)

    run(clock, main)
    assert bp.error == errno.EINVAL


@pytest.mark.parametrize(("host", "want"), [(errno.ENOSPC, errno.ENOSPC), (errno.EIO, errno.EIO),
                                            (errno.EDQUOT, errno.ENOSPC)])
def test_a_host_oserror_becomes_the_bsd_errno_on_the_buf(
    host: int, want: int, arena: Any, make_disk: Any, io: Any, run: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def hook(fd: int, ops: list[Any]) -> list[tuple[int, int]]:
        return [(0, host)] * len(ops)

    monkeypatch.setattr(hostpool, "_io_batch", hook)
    clock = Clock()
    disk = make_disk(clock, npages=8)
    a = arena(1)
    bp = wbuf(0, [a.frame(0)])

    async def main() -> None:
        await io(clock, disk, [bp])

    run(clock, main)
    assert bp.error == want and bp.resid == PAGE_SIZE


# --- counters -----------------------------------------------------------------------------------


def test_counters_and_latency_histogram(arena: Any, make_disk: Any, io: Any, run: Any) -> None:
    clock = Clock()
    disk = make_disk(clock, npages=64, model=SsdModel(), faults=FaultConfig(fail_read_slots=[(40, 40)]))
    a = arena(16)
    w1 = wbuf(0, [a.frame(i) for i in range(16)])
    w2 = wbuf(20, [a.frame(0)])
    r1 = rbuf(0, [a.frame(i) for i in range(4)])
    r2 = rbuf(40, [a.frame(5)])  # injected failure

    async def main() -> None:
        await io(clock, disk, [w1, w2, r1, r2])

    run(clock, main)
    s = disk.stats
    assert (s.writes, s.write_pages, s.bytes_written) == (2, 17, 17 * PAGE_SIZE)
    assert (s.reads, s.read_pages, s.bytes_read) == (2, 5, 4 * PAGE_SIZE)
    assert s.errors == 1
    lats = [bp.t_done - bp.t_submit for bp in (w1, w2, r1, r2)]
    assert sum(s.latency_hist) == 4
    for lat in lats:
        assert s.latency_hist[lat.bit_length()] >= 1
    assert [n for _, _, n in s.latency_buckets()] == [s.latency_hist[k] for k in
                                                      sorted({lat.bit_length() for lat in lats})]
    lo, hi, _ = s.latency_buckets()[0]
    assert lo <= min(lats) < hi
    assert disk.outstanding == 0


def test_completion_waits_for_the_real_io_even_when_virtual_time_is_ahead(
    arena: Any, make_disk: Any, run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = hostpool._io_batch

    def slow(fd: int, ops: list[Any]) -> list[tuple[int, int]]:
        time.sleep(0.05)
        return real(fd, ops)

    monkeypatch.setattr(hostpool, "_io_batch", slow)
    clock = Clock()
    disk = make_disk(clock, npages=8)  # model none: due at once in virtual time
    a = arena(1)
    pat = a.fill(0, 9)
    seen: list[tuple[int, bytes]] = []
    bp = wbuf(3, [a.frame(0)])

    def done(b: IoRequest) -> None:
        fd = os.open(disk.path, os.O_RDONLY)
        seen.append((clock.now, os.pread(fd, PAGE_SIZE, 3 * PAGE_SIZE)))
        os.close(fd)

    bp.iodone = done

    async def main() -> None:
        disk.strategy(bp)
        await clock.sleep(10)

    run(clock, main)
    assert seen == [(0, pat)]
