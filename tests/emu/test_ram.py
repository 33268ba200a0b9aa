"""emu.ram: sizes, the arena's byte operations and its sparseness (ARCHITECTURE.md, "emu/")."""

from __future__ import annotations

import os

import numpy as np
import pytest

from emu.ram import PAGE_SHIFT, PAGE_SIZE, Ram, parse_size


@pytest.mark.parametrize(
    ("spec", "pages"),
    [
        ("64MiB", 16384),
        ("4GiB", 1 << 20),
        ("512KiB", 128),
        ("16M", 4096),
        ("16m", 4096),
        ("1g", 1 << 18),
        ("1TiB", 1 << 28),
        ("8K", 2),
        (" 64 mib ", 16384),
        ("4096", 4096),
        (4096, 4096),
        (1, 1),
    ],
)
def test_parse_size_accepts_binary_units_and_page_counts(spec: str | int, pages: int) -> None:
    assert parse_size(spec) == pages


@pytest.mark.parametrize(
    "spec", ["", "0", 0, -4, "-4MiB", "6KiB", "1K", "64MB", "4 GB", "lots", "1.5GiB", "MiB", True]
)
def test_parse_size_rejects_bad_input_naming_it_and_the_accepted_forms(spec: object) -> None:
    with pytest.raises(ValueError) as ei:
        parse_size(spec)  # type: ignore[arg-type]
    msg = str(ei.value)
    assert repr(spec) in msg
    assert "MiB" in msg and "page count" in msg


def test_page_constants_agree() -> None:
    assert PAGE_SIZE == 1 << PAGE_SHIFT == 4096


def test_write_then_read_round_trips_and_lands_in_mem() -> None:
    with Ram(4) as ram:
        ram.write(2, b"hello", off=100)
        assert ram.read(2, 100, 5) == b"hello"
        assert bytes(ram.mem[2, 100:105]) == b"hello"
        assert ram.read(2)[:100] == bytes(100)
        assert not ram.mem[[0, 1, 3]].any()


def test_read_write_do_not_touch_ref_or_mod_bits() -> None:
    with Ram(2) as ram:
        ram.write(1, b"x")
        ram.read(1)
        assert not ram.ref.any() and not ram.mod.any()


def test_zero_clears_one_frame_only() -> None:
    with Ram(3) as ram:
        ram.mem[:] = 7
        ram.zero(1)
        assert not ram.mem[1].any()
        assert (ram.mem[0] == 7).all() and (ram.mem[2] == 7).all()


def test_copy_is_a_copy_not_an_alias() -> None:
    with Ram(3) as ram:
        ram.write(0, b"abc")
        ram.copy(0, 2)
        assert ram.read(2, 0, 3) == b"abc"
        ram.write(0, b"XYZ")
        assert ram.read(2, 0, 3) == b"abc"
        ram.copy(1, 1)  # a frame onto itself is a no-op
        assert not ram.mem[1].any()


def test_view_is_the_frames_bytes_in_the_arena() -> None:
    with Ram(3) as ram:
        v = ram.view(1)
        assert v.nbytes == PAGE_SIZE and not v.readonly
        v[10:13] = b"abc"  # as preadv would
        assert ram.read(1, 10, 3) == b"abc"
        assert bytes(ram.mem[1, 10:13]) == b"abc"
        assert not ram.mem[0].any() and not ram.mem[2].any()
        ram.write(1, b"Q", off=PAGE_SIZE - 1)
        assert v[PAGE_SIZE - 1] == ord("Q")
        v.release()


def test_view_works_with_os_preadv_and_pwritev(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "img")
    with Ram(2) as ram:
        ram.mem[0] = np.arange(PAGE_SIZE, dtype=np.uint8)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            assert os.pwritev(fd, [ram.view(0)], 0) == PAGE_SIZE
            assert os.preadv(fd, [ram.view(1)], 0) == PAGE_SIZE
        finally:
            os.close(fd)
        assert (ram.mem[1] == ram.mem[0]).all()


@pytest.mark.parametrize("frame", [-1, 4, 1 << 40])
def test_bad_frame_numbers_raise_index_error(frame: int) -> None:
    with Ram(4) as ram:
        for op in (ram.read, ram.zero, ram.view, lambda f: ram.write(f, b"x"),
                   lambda f: ram.copy(0, f), lambda f: ram.copy(f, 0)):
            with pytest.raises(IndexError, match=f"frame {frame} out of range"):
                op(frame)


def test_spans_past_the_frame_raise_index_error() -> None:
    with Ram(2) as ram:
        with pytest.raises(IndexError):
            ram.read(0, PAGE_SIZE - 2, 3)
        with pytest.raises(IndexError):
            ram.write(0, b"abc", off=PAGE_SIZE - 2)
        with pytest.raises(IndexError):
            ram.read(0, -1, 1)


def test_close_is_idempotent_and_later_use_is_an_error() -> None:
    ram = Ram(2)
    v = ram.view(0)  # an outstanding view must not make close() fail
    ram.close()
    ram.close()
    with pytest.raises(ValueError, match="after close"):
        ram.read(0)
    v.release()


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_sixteen_gib_ram_costs_only_what_is_touched() -> None:
    before = _rss_bytes()
    ram = Ram(parse_size("16GiB"))
    try:
        assert ram.nframes == 1 << 22
        last = ram.nframes - 1
        ram.write(last, b"end")
        ram.zero(12345)
        ram.ref[last] = 1
        assert ram.read(last, 0, 3) == b"end"
        assert ram.read(7, 0, 4) == bytes(4)
        grown = _rss_bytes() - before
        assert grown < 64 << 20, f"RSS grew by {grown >> 20} MiB for a 16 GiB arena"
    finally:
        ram.close()


@pytest.mark.parametrize("spec", ["0", 0, "0KiB"])
def test_parse_size_of_nothing_says_a_size_is_at_least_one_page(spec: str | int) -> None:
    """Issue 12 item 20: not "'0' is empty" but what is wanted."""
    with pytest.raises(ValueError, match="must be at least 1 page"):
        parse_size(spec)
