"""devices/hostpool.py: a disk's transfers on the host, batched through the thread pool
(ARCHITECTURE.md, "Performance principles": hardware work allocation-free on the hot path; a
pool hop costs about 100 µs, so the engine batches, coalesces and keeps submission order).
Driven through a ImageDisk, the engine's only user."""

from __future__ import annotations

import errno
import os
import time
from typing import Any

import pytest

from devices import hostpool
from devices.request import PAGE_SIZE, IoRequest
from emu.clock import Clock


def _nothing(io: IoRequest) -> None:
    pass


def wbuf(blkno: int, frames: list[memoryview]) -> IoRequest:
    return IoRequest(blkno, frames, True, _nothing)


def rbuf(blkno: int, frames: list[memoryview]) -> IoRequest:
    return IoRequest(blkno, frames, False, _nothing)


def test_overlapping_requests_reach_the_image_in_submission_order(
    arena: Any, make_disk: Any, run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read queued behind a write of the same block, in another hop, sees the new data."""
    slow_first = [True]
    real = hostpool._io_batch

    def hook(fd: int, ops: list[Any]) -> list[tuple[int, int]]:
        if slow_first[0]:
            slow_first[0] = False
            time.sleep(0.05)  # the write's hop is the slow one
        return real(fd, ops)

    monkeypatch.setattr(hostpool, "_io_batch", hook)
    clock = Clock()
    disk = make_disk(clock, npages=64, max_hops=4)
    a = arena(2)
    pat = a.fill(0, 7)
    w = wbuf(5, [a.frame(0)])
    r = rbuf(5, [a.frame(1)])

    async def main() -> None:
        disk.strategy(w)
        await clock.sleep(1)  # a new step: the read goes to a second hop
        disk.strategy(r)
        await clock.sleep(1_000)

    run(clock, main)
    assert w.error == 0 and r.error == 0
    assert bytes(a.frame(1)) == pat


# --- batching -------------------------------------------------------------------------------------


def _count_ops(monkeypatch: pytest.MonkeyPatch) -> list[list[tuple[bool, int, int]]]:
    """Record each pool call as [(write, npages, offset), ...]."""
    calls: list[list[tuple[bool, int, int]]] = []
    real = hostpool._io_batch

    def hook(fd: int, ops: list[Any]) -> list[tuple[int, int]]:
        calls.append([(w, len(data), off) for w, data, off in ops])
        return real(fd, ops)

    monkeypatch.setattr(hostpool, "_io_batch", hook)
    return calls


def test_requests_of_one_step_go_to_the_pool_in_one_hop(
    arena: Any, make_disk: Any, io: Any, run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_ops(monkeypatch)
    clock = Clock()
    disk = make_disk(clock, npages=1024, coalesce=False)
    a = arena(16)
    bps = [wbuf(100 * i, [a.frame(j) for j in range(16)]) for i in range(5)]

    async def main() -> None:
        await io(clock, disk, bps)

    run(clock, main)
    assert calls == [[(True, 16, 100 * i * PAGE_SIZE) for i in range(5)]]


def test_adjacent_requests_in_a_hop_become_one_gather_write(
    arena: Any, make_disk: Any, io: Any, run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_ops(monkeypatch)
    clock = Clock()
    disk = make_disk(clock, npages=1024)
    a = arena(48)
    pats = [a.fill(f, f) for f in range(48)]
    bps = [wbuf(16 * i, [a.frame(16 * i + j) for j in range(16)]) for i in range(3)]
    bps.append(wbuf(200, [a.frame(0)]))  # not adjacent: its own write
    bps.append(rbuf(201, [a.frame(47)]))  # adjacent but a read: its own op

    async def main() -> None:
        await io(clock, disk, bps)

    run(clock, main)
    assert calls == [[(True, 48, 0), (True, 1, 200 * PAGE_SIZE), (False, 1, 201 * PAGE_SIZE)]]
    assert all(bp.error == 0 and bp.resid == 0 for bp in bps)
    fd = os.open(disk.path, os.O_RDONLY)
    try:
        assert [os.pread(fd, PAGE_SIZE, b * PAGE_SIZE) for b in range(48)] == pats
    finally:
        os.close(fd)


def test_a_short_coalesced_transfer_fails_only_the_requests_it_did_not_finish(
    arena: Any, make_disk: Any, io: Any, run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def hook(fd: int, ops: list[Any]) -> list[tuple[int, int]]:
        return [(3 * PAGE_SIZE, 0) for _ in ops]  # the host wrote only 3 pages

    monkeypatch.setattr(hostpool, "_io_batch", hook)
    clock = Clock()
    disk = make_disk(clock, npages=64)
    a = arena(2)
    bps = [wbuf(2 * i, [a.frame(0), a.frame(1)]) for i in range(3)]

    async def main() -> None:
        await io(clock, disk, bps)

    run(clock, main)
    assert [(bp.error, bp.resid) for bp in bps] == [
        (0, 0), (errno.EIO, PAGE_SIZE), (errno.EIO, 2 * PAGE_SIZE)
    ]
    assert disk.stats.bytes_written == 3 * PAGE_SIZE


def test_a_batch_that_reaches_the_pool_after_close_touches_nothing() -> None:
    gate = hostpool._PoolGate()
    assert hostpool._pool_run(gate, -1, []) == []
    gate.shut = True
    assert hostpool._pool_run(gate, 12345, [(True, [], 0)]) == [(0, errno.EBADF)]
