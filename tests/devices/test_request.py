"""devices/request.py: the device's own request: a block, page views, a direction and a
completion callback; the device reports an errno and a residual (no BSD flags)."""

from __future__ import annotations

import pytest

from devices.request import PAGE_SIZE, IoRequest


def _nothing(io: IoRequest) -> None:
    pass


def test_request_counts_bytes_from_its_pages_and_has_no_dict() -> None:
    pages = [memoryview(bytearray(PAGE_SIZE)) for _ in range(3)]
    io = IoRequest(7, pages, True, _nothing)
    assert (io.blkno, io.nbytes, len(io.pages), io.write) == (7, 3 * PAGE_SIZE, 3, True)
    assert (io.error, io.resid, io.iodone) == (0, 0, _nothing)
    assert (io.t_submit, io.t_done) == (-1, -1)
    with pytest.raises(AttributeError):
        io.b_flags = 0  # type: ignore[attr-defined]


def test_a_request_names_its_direction_not_flags() -> None:
    page = [memoryview(bytearray(PAGE_SIZE))]
    assert repr(IoRequest(3, page, False, _nothing)) == (
        "<IoRequest read blkno=3 npages=1 error=0 resid=0>"
    )
    assert repr(IoRequest(3, page, True, _nothing)).startswith("<IoRequest write ")


def test_devices_count_in_4k_pages_of_their_own() -> None:
    assert PAGE_SIZE == 4096
