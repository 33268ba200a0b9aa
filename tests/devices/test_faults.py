"""devices/faults.py: fault injection (ARCHITECTURE.md: "fault injection (errors on chosen blocks
or at a rate, slow device, full disk)"); style.md C17: no exception leaks into the kernel, the
device reports an error on the request (``error = EIO``) and completes it."""

from __future__ import annotations

import errno
import os
from typing import Any

import pytest

from devices.faults import FaultConfig, FaultInjector, parse_slots
from devices.request import PAGE_SIZE, IoRequest
from emu.clock import Clock

# --- configuration ------------------------------------------------------------------------------


def test_parse_slots_reads_inclusive_ranges_and_single_blocks() -> None:
    assert parse_slots("100-200") == [(100, 200)]
    assert parse_slots(" 100-200, 300-310 ,7") == [(100, 200), (300, 310), (7, 7)]
    assert parse_slots("") == []


@pytest.mark.parametrize("text", ["a-b", "1-2-3", "10-", "-5"])
def test_parse_slots_names_the_bad_piece(text: str) -> None:
    with pytest.raises(ValueError, match="bad block range"):
        parse_slots(text)


def test_config_accepts_slot_strings_and_toml_lists() -> None:
    cfg = FaultConfig(fail_write_slots="1-2,5", fail_read_slots=[[3, 4]])  # type: ignore[arg-type,list-item]
    assert cfg.fail_write_slots == [(1, 2), (5, 5)] and cfg.fail_read_slots == [(3, 4)]


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"fail_write_rate": 1.5}, r"fail_write_rate=1.5: must be a probability between 0 and 1"),
        ({"fail_read_rate": -0.1}, r"fail_read_rate=-0.1: must be a probability"),
        ({"fail_write_slots": [(9, 3)]}, r"fail_write_slots: range \(9, 3\) is empty"),
        ({"fail_read_slots": [(-1, 3)]}, r"fail_read_slots: range \(-1, 3\)"),
        ({"fail_nth_io": -1}, r"fail_nth_io=-1: must be >= 0 \(0 turns it off\)"),
        ({"extra_latency_ns": 0.5}, r"extra_latency_ns=0.5: must be an integer"),
        ({"max_image_bytes": -1}, r"max_image_bytes=-1: must be a byte count >= 0"),
        ({"seed": "x"}, r"seed='x': must be an integer"),
    ],
)
def test_validate_names_the_key_and_the_fix(kw: dict[str, Any], msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        FaultConfig(**kw).validate()


def test_from_mapping_rejects_unknown_keys_listing_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown fault key 'fail_rate'.*fail_write_rate"):
        FaultConfig.from_mapping({"fail_rate": 0.1})
    cfg = FaultConfig.from_mapping({"fail_read_slots": "5-6", "seed": 4})
    assert cfg.fail_read_slots == [(5, 6)] and cfg.seed == 4


def test_a_bad_slot_pair_is_reported() -> None:
    with pytest.raises(ValueError, match=r"range \[1\] is not a pair"):
        FaultConfig(fail_read_slots=[[1]])  # type: ignore[list-item]


def test_the_injector_validates_its_config() -> None:
    with pytest.raises(ValueError, match="fail_read_rate"):
        FaultInjector(FaultConfig(fail_read_rate=2.0))


def test_rate_decisions_are_reproducible_with_a_seed() -> None:
    def fails(seed: int) -> list[int]:
        inj = FaultInjector(FaultConfig(fail_write_rate=0.3, seed=seed))
        return [i for i in range(200) if inj.decide(True, i, 1, 0)]

    assert fails(1) == fails(1)
    assert fails(1) != fails(2)
    assert 30 < len(fails(1)) < 90


def test_slot_ranges_do_not_shift_which_requests_fail_by_rate() -> None:
    plain = FaultInjector(FaultConfig(fail_write_rate=0.3, seed=1))
    slots = FaultInjector(FaultConfig(fail_write_rate=0.3, seed=1, fail_write_slots=[(0, 9)]))
    a = [plain.decide(True, i, 1, 0) for i in range(100)]
    b = [slots.decide(True, i, 1, 0) for i in range(100)]
    assert a[10:] == b[10:] and b[:10] == [errno.EIO] * 10


# --- through the device ---------------------------------------------------------------------------


def _run_bufs(clock: Clock, disk: Any, bps: list[IoRequest], run: Any) -> None:
    """Submit each request in its own step (so they complete in order) and wait past the last."""

    async def main() -> None:
        for bp in bps:
            disk.strategy(bp)  # never raises
            await clock.sleep(1)
        await clock.sleep(10_000_000)

    run(clock, main)


def _bufs(a: Any, spec: list[tuple[str, int, int]]) -> list[IoRequest]:
    out = []
    for op, blk, n in spec:
        out.append(IoRequest(blk, [a.frame(i) for i in range(n)], op == "w", lambda b: None))
    return out


def _image(disk: Any, blk: int) -> bytes:
    fd = os.open(disk.path, os.O_RDONLY)
    try:
        return os.pread(fd, PAGE_SIZE, blk * PAGE_SIZE)
    finally:
        os.close(fd)


def test_rate_failures_through_the_device_repeat_with_the_seed(
    arena: Any, make_disk: Any, run: Any
) -> None:
    def errors(seed: int) -> list[int]:
        clock = Clock()
        disk = make_disk(clock, faults=FaultConfig(fail_write_rate=0.25, fail_read_rate=0.25,
                                                   seed=seed))
        a = arena(2)
        bps = _bufs(a, [("w" if i % 2 else "r", i, 2) for i in range(60)])
        _run_bufs(clock, disk, bps, run)
        assert disk.stats.errors == sum(1 for bp in bps if bp.error)
        return [bp.error for bp in bps]

    assert errors(7) == errors(7)
    assert errors(7) != errors(8)
    assert set(errors(7)) == {0, errno.EIO}


def test_write_slot_range_fails_writes_touching_it_and_leaves_the_image_alone(
    arena: Any, make_disk: Any, run: Any
) -> None:
    clock = Clock()
    disk = make_disk(clock, faults=FaultConfig.from_mapping({"fail_write_slots": "100-101,200-200"}))
    a = arena(4)
    a.fill(0, 1)
    bps = _bufs(a, [("w", 96, 4), ("w", 98, 4), ("w", 101, 2), ("w", 102, 4), ("r", 100, 1)])
    _run_bufs(clock, disk, bps, run)
    assert [bp.error for bp in bps] == [0, errno.EIO, errno.EIO, 0, 0]
    assert bps[1].error and bps[1].resid == bps[1].nbytes
    assert _image(disk, 98) == bytes(PAGE_SIZE)  # bps[0]'s zero page, not bps[1]'s pattern
    assert _image(disk, 100) == bytes(PAGE_SIZE)
    assert disk.stats.bytes_written == 8 * PAGE_SIZE


def test_read_slot_range_fails_reads_and_leaves_the_frames_alone(
    arena: Any, make_disk: Any, run: Any
) -> None:
    clock = Clock()
    disk = make_disk(clock, faults=FaultConfig(fail_read_slots=[(10, 10)]))
    fd = os.open(disk.path, os.O_WRONLY)
    os.pwrite(fd, b"\xee" * 3 * PAGE_SIZE, 9 * PAGE_SIZE)
    os.close(fd)
    a = arena(3)
    kept = [a.fill(0, 1), a.fill(1, 2)]
    a.fill(2, 3)
    fail = IoRequest(9, [a.frame(0), a.frame(1)], False, lambda b: None)
    ok = IoRequest(11, [a.frame(2)], False, lambda b: None)
    _run_bufs(clock, disk, [fail, ok], run)
    assert (fail.error, ok.error) == (errno.EIO, 0)
    assert [bytes(a.frame(0)), bytes(a.frame(1))] == kept
    assert bytes(a.frame(2)) == b"\xee" * PAGE_SIZE


def test_nth_io_fails_exactly_that_request(arena: Any, make_disk: Any, run: Any) -> None:
    clock = Clock()
    disk = make_disk(clock, faults=FaultConfig(fail_nth_io=3))
    a = arena(1)
    bps = _bufs(a, [("w", 0, 1), ("r", 0, 1), ("w", 1, 1), ("r", 1, 1), ("w", 2, 1)])
    _run_bufs(clock, disk, bps, run)
    assert [bp.error for bp in bps] == [0, 0, errno.EIO, 0, 0]


def test_max_image_bytes_refuses_growing_writes_with_enospc_and_the_file_stays_small(
    arena: Any, make_disk: Any, run: Any
) -> None:
    clock = Clock()
    disk = make_disk(clock, npages=4096, faults=FaultConfig(max_image_bytes=4 * PAGE_SIZE))
    a = arena(4)
    for i in range(4):
        a.fill(i, i + 1)
    bps = _bufs(a, [("w", 0, 3), ("w", 2000, 2), ("w", 2000, 1), ("w", 1, 2), ("w", 4000, 1),
                    ("w", 4001, 1)])
    _run_bufs(clock, disk, bps, run)
    # 3 pages, +2 > 4 refused, +1 = 4 ok, rewrite of allocated blocks ok, then full
    assert [bp.error for bp in bps] == [0, errno.ENOSPC, 0, 0, errno.ENOSPC, errno.ENOSPC]
    assert bps[1].error and bps[1].resid == 2 * PAGE_SIZE
    assert disk.written_pages == 4
    assert _image(disk, 2001) == bytes(PAGE_SIZE) and _image(disk, 4000) == bytes(PAGE_SIZE)
    assert disk.image_allocated_bytes() <= 1 << 20  # of a 16 MiB image
    assert disk.stats.errors == 3


def test_reads_are_never_refused_by_max_image_bytes(arena: Any, make_disk: Any, run: Any) -> None:
    clock = Clock()
    disk = make_disk(clock, faults=FaultConfig(max_image_bytes=0))
    a = arena(1)
    bps = _bufs(a, [("r", 5, 1), ("w", 5, 1)])
    _run_bufs(clock, disk, bps, run)
    assert [bp.error for bp in bps] == [0, errno.ENOSPC]


def test_failed_requests_take_device_time_like_any_other(
    arena: Any, make_disk: Any, run: Any
) -> None:
    from devices.timing import SsdModel

    clock = Clock()
    disk = make_disk(clock, model=SsdModel(), faults=FaultConfig(fail_nth_io=1))
    a = arena(1)
    bps = _bufs(a, [("w", 0, 1), ("w", 1, 1)])

    async def main() -> None:
        for bp in bps:
            disk.strategy(bp)
        await clock.sleep(1_000_000)

    run(clock, main)
    assert [bp.error for bp in bps] == [errno.EIO, 0]
    assert [bp.t_done for bp in bps] == [32_048, 64_096]
