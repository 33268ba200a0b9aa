"""Fixtures for the device tests: page memory, disks on a temp dir, and a clock runner.

Page memory is a plain anonymous mmap cut into 4 KiB memoryviews, standing in for the RAM
arena (devices must not import emu.ram). Every coroutine runs inside Clock.run as an emulated
thread, so completions arrive the way the kernel will see them.
"""

from __future__ import annotations

import asyncio
import mmap
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from devices.faults import FaultConfig
from devices.imagedisk import ImageDisk
from devices.request import PAGE_SIZE, IoRequest
from devices.timing import NoneModel, TimingModel
from emu.clock import Clock

Main = Callable[[], Coroutine[Any, Any, Any]]


class Arena:
    """nframes page frames in one anonymous mmap; frame(i) is a writable 4 KiB view."""

    def __init__(self, nframes: int) -> None:
        self.mm = mmap.mmap(-1, nframes * PAGE_SIZE)
        self.view = memoryview(self.mm)
        self.frames = [self.view[i * PAGE_SIZE : (i + 1) * PAGE_SIZE] for i in range(nframes)]

    def frame(self, i: int) -> memoryview:
        return self.frames[i]

    def fill(self, i: int, tag: int) -> bytes:
        """Fill frame i with a recognisable pattern; return it."""
        pat = (tag.to_bytes(4, "little") + bytes(range(4, 16))) * (PAGE_SIZE // 16)
        self.frames[i][:] = pat
        return pat


@pytest.fixture
def arena() -> Iterator[Callable[[int], Arena]]:
    made: list[Arena] = []

    def make(nframes: int) -> Arena:
        a = Arena(nframes)
        made.append(a)
        return a

    yield make
    for a in made:
        for f in a.frames:
            f.release()
        a.view.release()
        a.mm.close()


@pytest.fixture
def make_disk(tmp_path: Path) -> Iterator[Callable[..., ImageDisk]]:
    """make_disk(clock, npages=256, model=NoneModel(), faults=None, name="sd0", **kw)."""
    made: list[ImageDisk] = []

    def make(
        clock: Clock,
        npages: int = 256,
        model: TimingModel | None = None,
        faults: FaultConfig | None = None,
        name: str = "sd0",
        **kw: Any,
    ) -> ImageDisk:
        d = ImageDisk(
            tmp_path / f"{name}-{len(made)}.img",
            npages,
            clock,
            model if model is not None else NoneModel(),
            faults,
            name=name,
            **kw,
        )
        d.create()
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


def run_clock(
    clock: Clock, *mains: Main, loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
) -> None:
    """Run each ``main`` as an emulated thread t0, t1, ... until all have returned."""

    async def go() -> None:
        def setup(c: Clock, tg: asyncio.TaskGroup) -> None:
            for i, m in enumerate(mains):
                c.spawn(m, name=f"t{i}")

        await clock.run(setup)

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(go())


async def submit_wait(clock: Clock, disk: ImageDisk, bps: list[IoRequest]) -> None:
    """Submit every request in one step (one batch), then sleep until all have completed."""
    w = clock.waiter("biowait")
    left = len(bps)

    def done(bp: IoRequest) -> None:
        nonlocal left
        left -= 1
        if left == 0:
            clock.wake(w)

    for bp in bps:
        bp.iodone = done
        disk.strategy(bp)
    await clock.wait(w)


@pytest.fixture
def io() -> Callable[[Clock, ImageDisk, list[IoRequest]], Coroutine[Any, Any, None]]:
    """``await io(clock, disk, reqs)``: submit together and wait for all."""
    return submit_wait


@pytest.fixture
def run() -> Callable[..., None]:
    """``run(clock, main, ..., loop_factory=None)``: run mains as threads."""
    return run_clock
