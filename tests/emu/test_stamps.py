"""emu.workloads.stamps: the content stamps workloads write into every page (docs/workloads.md,
"Stamps")."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from emu.workloads.stamps import (
    HEADER_SIZE,
    MAGIC,
    PAGE_SIZE,
    Stamp,
    check_headers,
    check_page,
    describe_mismatch,
    make_page,
    read_header,
)


def test_stamp_roundtrips_and_header_layout_is_as_documented() -> None:
    page = make_page(3, 7, 2)
    assert len(page) == PAGE_SIZE and check_page(page, 3, 7, 2) is None
    magic, pid, pg, version, body_crc, head_crc = struct.unpack_from("<IIQQII", page)
    assert (magic, pid, pg, version) == (MAGIC, 3, 7, 2) and page[:4] == b"UVMS"
    assert body_crc == zlib.crc32(page[HEADER_SIZE:]) and head_crc == zlib.crc32(page[:28])
    assert read_header(page) == Stamp(3, 7, 2)
    assert make_page(3, 7, 2) == page  # deterministic


def test_version_zero_is_the_zero_page() -> None:
    # "Version 0 means never written: make_page(pid, page, 0) is 4096 zero bytes"
    assert make_page(9, 9, 0) == bytes(PAGE_SIZE)
    assert check_page(bytes(PAGE_SIZE), 9, 9, 0) is None
    assert read_header(bytes(PAGE_SIZE)) is None


def test_stamps_that_differ_in_any_value_differ_in_every_body_word() -> None:
    base = np.frombuffer(make_page(1, 2, 3)[HEADER_SIZE:], "<u8")
    for other in ((2, 2, 3), (1, 3, 3), (1, 2, 4)):
        words = np.frombuffer(make_page(*other)[HEADER_SIZE:], "<u8")
        assert (words != base).all()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b.__setitem__(1000, b[1000] ^ 1), "body differs from the pattern at offset 1000"),
        (lambda b: b.__setitem__(0, 0), "bad magic"),
        (lambda b: b.__setitem__(29, b[29] ^ 1), "bad header checksum"),
        (lambda b: b.__setitem__(slice(0, PAGE_SIZE), bytes(PAGE_SIZE)), "found a zero page"),
    ],
)
def test_check_page_names_what_differs(mutate: object, message: str) -> None:
    page = bytearray(make_page(5, 6, 7))
    mutate(page)  # type: ignore[operator]
    found = check_page(page, 5, 6, 7)
    assert found is not None and message in found


def test_check_page_names_the_wrong_stamp_fields() -> None:
    assert check_page(make_page(5, 6, 6), 5, 6, 7) == "header of stamp (5, 6, 6): version 6 != 7"
    got = check_page(make_page(4, 8, 7), 5, 6, 7)
    assert got == "header of stamp (4, 8, 7): pid 4 != 5, page 8 != 6"
    assert check_page(make_page(5, 6, 7), 5, 6, 0) == (
        "expected a zero page (never written), found stamp (5, 6, 7)")
    assert check_page(b"x" * 10, 5, 6, 7) == "length 10, expected 4096"


def test_a_body_swapped_under_a_good_header_is_caught() -> None:
    page = make_page(5, 6, 7)[:HEADER_SIZE] + make_page(5, 6, 8)[HEADER_SIZE:]
    assert read_header(page) == Stamp(5, 6, 7)
    msg = check_page(page, 5, 6, 7)
    assert msg is not None and msg.startswith("body differs from the pattern at offset 32")


def test_check_headers_checks_a_batch_of_pages_by_header_only() -> None:
    versions = np.array([1, 2, 1, 0, 0])
    buf = bytearray(b"".join(make_page(1, i, int(v)) for i, v in enumerate(versions)))
    ok = check_headers(buf, 1, np.arange(5), versions)
    assert ok.tolist() == [True] * 5
    buf[PAGE_SIZE + 20] ^= 1  # page 1's version field
    buf[3 * PAGE_SIZE] = 1  # page 3 should be zero
    buf[2 * PAGE_SIZE + 2000] ^= 1  # a body byte: not looked at
    assert check_headers(buf, 1, np.arange(5), versions).tolist() == [True, False, True, False,
                                                                      True]
    assert not check_headers(buf[:PAGE_SIZE], 2, np.arange(1), versions[:1]).any()
    with pytest.raises(ValueError, match="check_headers"):
        check_headers(buf, 1, np.arange(4), versions[:4])


def test_make_page_rejects_values_that_do_not_fit() -> None:
    with pytest.raises(ValueError, match="out of range"):
        make_page(1 << 32, 0, 1)
    with pytest.raises(ValueError, match="out of range"):
        make_page(1, -1, 1)


def test_describe_mismatch_gives_the_integrity_mismatch_payload() -> None:
    # docs/log-schema.md, integrity.mismatch: expected, found, offset, ndiff, *_head
    bad = bytearray(make_page(1, 2, 3))
    bad[500] ^= 1
    bad[501] ^= 1
    d = describe_mismatch(make_page(1, 2, 3), bad)
    assert d["expected"] == d["found"] == "stamp(1,2,3)"
    assert (d["offset"], d["ndiff"]) == (500, 2)
    assert d["expected_head"] == make_page(1, 2, 3)[:32].hex()
    d = describe_mismatch(make_page(1, 2, 3), bytes(PAGE_SIZE))
    assert (d["found"], d["found_head"]) == ("zeros", "00" * 32)
    assert describe_mismatch(bytes(PAGE_SIZE), b"\1" * PAGE_SIZE)["found"] == "unstamped"
