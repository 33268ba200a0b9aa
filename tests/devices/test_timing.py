"""devices/timing.py: when a request completes (ARCHITECTURE.md: "a timing model (none / ssd /
hdd) that says when a request completes in virtual time"), and the device's FIFO queue."""

from __future__ import annotations

from typing import Any

import pytest

from devices.faults import FaultConfig
from devices.request import IoRequest
from devices.timing import HddModel, NoneModel, SsdModel, make_model
from emu.clock import Clock


def _nothing(io: IoRequest) -> None:
    pass

# --- the models alone ------------------------------------------------------------------------------


def test_none_model_takes_no_time() -> None:
    assert NoneModel().service_ns(True, 123, 16) == 0


def test_ssd_is_fixed_latency_plus_bytes_over_bandwidth() -> None:
    m = SsdModel()  # read 80 µs, write 30 µs, 2 GB/s
    assert m.service_ns(True, 0, 16) == 30_000 + 65_536 // 2  # 64 KiB at 2 B/ns
    assert m.service_ns(False, 999, 1) == 80_000 + 2_048
    slow = SsdModel(read_latency_ns=0, write_latency_ns=0, bandwidth_bps=3)
    assert slow.service_ns(True, 0, 1) == -(-4096 * 10**9 // 3)  # rounds up


def test_hdd_streams_a_sequential_request_without_seek_or_rotation() -> None:
    m = HddModel(bandwidth_bps=100_000_000)
    first = m.service_ns(True, 1000, 16)
    assert m.head == 1016
    assert m.service_ns(True, 1016, 16) == 16 * 4096 * 10 // 1  # 40.96 µs per page at 100 MB/s
    assert first > m.rotation_ns + m.settle_ns


def test_hdd_seek_grows_with_distance() -> None:
    near, far = HddModel(), HddModel()
    assert near.service_ns(False, 100, 1) < far.service_ns(False, 1_000_000, 1)
    assert far.head == 1_000_001  # the head stays after the block it served
    assert far.seek_ns(1_000_001) == 0
    assert far.seek_ns(1_000_000) == far.settle_ns + far.seek_ns_per_sqrt_block


def test_hdd_seek_depends_on_where_the_head_is() -> None:
    m = HddModel(settle_ns=1_000, seek_ns_per_sqrt_block=10)
    assert m.seek_ns(10_000) == 1_000 + 10 * 100
    m.service_ns(True, 9_990, 10)  # head now at 10_000
    assert m.seek_ns(10_000) == 0
    assert m.seek_ns(10_100) == 1_000 + 10 * 10
    assert m.rotation_ns == 4_166_666  # half a turn at 7200 rpm


def test_make_model_builds_each_model_with_params() -> None:
    assert isinstance(make_model("none"), NoneModel)
    ssd = make_model("ssd", write_latency_ns=5, bandwidth_bps=1e9)
    assert isinstance(ssd, SsdModel) and ssd.write_latency_ns == 5 and ssd.bandwidth_bps == 10**9
    assert isinstance(make_model("hdd", rpm=5400), HddModel)


@pytest.mark.parametrize(
    ("name", "params", "msg"),
    [
        ("nvme", {}, r"unknown timing model 'nvme': accepted models are none, ssd, hdd"),
        ("ssd", {"latency": 1}, r"'ssd' has no parameter 'latency'.*read_latency_ns, "
                                r"write_latency_ns, bandwidth_bps"),
        ("none", {"x": 1}, r"'none' has no parameter 'x': accepted parameters are none"),
        ("hdd", {"rpm": 0}, r"rpm must be >= 1"),
        ("ssd", {"bandwidth_bps": "fast"}, r"bandwidth_bps must be an integer"),
        ("ssd", {"read_latency_ns": 1.5}, r"read_latency_ns must be a whole number"),
        ("ssd", {"read_latency_ns": True}, r"must be an integer"),
    ],
)
def test_make_model_names_the_bad_model_or_param(name: str, params: dict[str, Any], msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        make_model(name, **params)


# --- through the device: one request at a time, FIFO ----------------------------------------------


def _submit_all(clock: Clock, disk: Any, bps: list[IoRequest], at: list[int], run: Any) -> list[int]:
    """Submit bps[i] at virtual time at[i]; return the virtual times their completions ran."""
    seen: list[int] = []
    for bp in bps:
        bp.iodone = lambda b: seen.append(clock.now)

    async def main() -> None:
        for bp, t in zip(bps, at, strict=True):
            await clock.sleep_until(t)
            disk.strategy(bp)
        await clock.sleep(100_000_000)

    run(clock, main)
    return seen


def test_model_none_completes_at_submit_time(arena: Any, make_disk: Any, run: Any) -> None:
    clock = Clock()
    disk = make_disk(clock, model=NoneModel())
    a = arena(2)
    bps = [IoRequest(i, [a.frame(i)], True, _nothing) for i in range(2)]
    assert _submit_all(clock, disk, bps, [500, 700], run) == [500, 700]
    assert [bp.t_done for bp in bps] == [500, 700]


def test_fifo_queue_delays_a_second_request_until_the_first_is_served(
    arena: Any, make_disk: Any, run: Any
) -> None:
    clock = Clock()
    disk = make_disk(clock, model=SsdModel())
    a = arena(3)
    w = IoRequest(0, [a.frame(0)], True, _nothing)  # 32_048 ns
    r = IoRequest(9, [a.frame(1)], False, _nothing)  # 82_048 ns, queued behind w
    late = IoRequest(9, [a.frame(2)], False, _nothing)  # device idle again by then
    done = _submit_all(clock, disk, [w, r, late], [0, 10_000, 1_000_000], run)
    assert done == [32_048, 32_048 + 82_048, 1_082_048]
    assert r.t_submit == 10_000 and r.t_done - r.t_submit == 22_048 + 82_048


def test_hdd_head_moves_with_each_request_through_the_device(
    arena: Any, make_disk: Any, run: Any
) -> None:
    clock = Clock()
    model = HddModel()
    disk = make_disk(clock, npages=4096, model=model)
    a = arena(1)
    bps = [IoRequest(blk, [a.frame(0)], True, _nothing) for blk in (4000, 4001, 0)]
    done = _submit_all(clock, disk, bps, [0, 0, 0], run)
    xfer = -(-4096 * 10**9 // 150_000_000)
    seek_far = 1_000_000 + 5_000 * 63  # isqrt(4000) == 63
    assert done[0] == seek_far + 4_166_666 + xfer
    assert done[1] == done[0] + xfer  # sequential: streams on
    assert done[2] == done[1] + 1_000_000 + 5_000 * 63 + 4_166_666 + xfer  # isqrt(4002) == 63
    assert model.head == 1


def test_extra_latency_is_added_to_every_request_and_keeps_the_device_busy(
    arena: Any, make_disk: Any, run: Any
) -> None:
    clock = Clock()
    disk = make_disk(clock, model=SsdModel(), faults=FaultConfig(extra_latency_ns=1_000_000))
    a = arena(2)
    bps = [IoRequest(i, [a.frame(i)], True, _nothing) for i in range(2)]
    done = _submit_all(clock, disk, bps, [0, 0], run)
    assert done == [1_032_048, 2_064_096]
