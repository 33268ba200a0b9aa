"""kernel/arch/emu/swapdev.py: the disk driver glue between the kernel's struct buf and the
device's request (issue 11 item 4: "let kernel/arch/emu/swapdev.py own the page views from
creation to release"). Pins what the glue promises its BlockDev callers (uvm_swap.BlockDev):
the transfer lands in the pages' frames, the device's outcome comes back as B_ERROR, b_error
and b_resid, and sys/buf.h's biodone runs the buf's b_iodone.
"""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path
from typing import Any

import pytest

from devices.faults import FaultConfig
from devices.imagedisk import ImageDisk
from devices.request import IoRequest
from devices.timing import SsdModel
from emu.clock import Clock
from emu.ram import Ram
from kernel.arch.emu.swapdev import EmuDisk
from kernel.sys.buf import B_BUSY, B_CALL, B_DONE, B_ERROR, B_READ, B_WRITE, Buf
from kernel.uvm.uvm_page import VmPage

PAGE = 4096


@pytest.fixture
def machine(tmp_path: Path) -> Any:
    clock = Clock()
    ram = Ram(8)
    disk = ImageDisk(tmp_path / "sd0.img", 16, clock, SsdModel(),
                     FaultConfig(fail_write_slots=[(9, 9)]))
    disk.create()
    yield clock, ram, disk
    disk.close()
    ram.close()


def _transfer(clock: Clock, dev: EmuDisk, bp: Buf) -> list[IoRequest]:
    """Start ``bp`` on ``dev`` from an emulated thread and wait for its b_iodone; return the
    device requests the glue made."""
    seen: list[IoRequest] = []
    real = dev.disk.strategy

    def spy(io: IoRequest) -> None:
        seen.append(io)
        real(io)

    dev.disk.strategy = spy  # type: ignore[method-assign]

    async def main() -> None:
        w = clock.waiter("biowait")
        bp.b_iodone = lambda b: clock.wake(w)
        dev.dv_strategy(bp)
        assert dev.nio == 1
        await clock.wait(w)

    async def go() -> None:
        await clock.run(lambda c, tg: c.spawn(main, name="t0"))

    asyncio.run(go())
    return seen


def test_a_write_gathers_the_frames_and_releases_their_views_at_completion(machine: Any) -> None:
    clock, ram, disk = machine
    dev = EmuDisk(disk, ram)
    for f in (5, 2):
        ram.write(f, bytes([f]) * PAGE)
    bp = Buf(b_flags=B_WRITE | B_BUSY | B_CALL, b_blkno=3, b_bufsize=2 * PAGE, b_bcount=2 * PAGE,
             b_pages=[VmPage(phys_addr=5 << 12), VmPage(phys_addr=2 << 12)])
    (io,) = _transfer(clock, dev, bp)
    assert io.write and io.blkno == 3
    assert io.pages == []  # the glue released its views: the pager mapping is gone
    assert bp.b_flags == B_WRITE | B_BUSY | B_DONE and (bp.b_error, bp.b_resid) == (0, 0)
    assert dev.nio == 0
    with open(disk.path, "rb") as f:
        f.seek(3 * PAGE)
        assert f.read(2 * PAGE) == bytes([5]) * PAGE + bytes([2]) * PAGE


def test_a_read_fills_the_frame_in_place(machine: Any) -> None:
    clock, ram, disk = machine
    with open(disk.path, "r+b") as f:
        f.seek(4 * PAGE)
        f.write(b"\x77" * PAGE)
    dev = EmuDisk(disk, ram)
    bp = Buf(b_flags=B_READ | B_BUSY | B_CALL, b_blkno=4, b_bufsize=PAGE, b_bcount=PAGE,
             b_pages=[VmPage(phys_addr=6 << 12)])
    (io,) = _transfer(clock, dev, bp)
    assert not io.write
    assert ram.read(6, 0, PAGE) == b"\x77" * PAGE
    assert not bp.b_flags & B_ERROR


def test_the_device_error_comes_back_as_b_error_and_b_resid(machine: Any) -> None:
    clock, ram, disk = machine
    dev = EmuDisk(disk, ram)
    bp = Buf(b_flags=B_WRITE | B_BUSY | B_CALL, b_blkno=8, b_bufsize=2 * PAGE, b_bcount=2 * PAGE,
             b_pages=[VmPage(phys_addr=0), VmPage(phys_addr=1 << 12)])
    (io,) = _transfer(clock, dev, bp)
    assert io.error == errno.EIO and io.pages == []
    assert bp.b_flags & B_ERROR and bp.b_flags & B_DONE
    assert (bp.b_error, bp.b_resid) == (errno.EIO, 2 * PAGE)
