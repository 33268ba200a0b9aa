"""devices/buf.py: the block request, after OpenBSD sys/sys/buf.h and biodone() in vfs_bio.c.

"biodone: mark I/O complete on a buffer. If a callback has been requested, e.g. the pageout
daemon, do so. Otherwise, awaken waiting processes."
"""

from __future__ import annotations

import pytest

from devices import buf
from devices.buf import (
    B_ASYNC,
    B_BUSY,
    B_CALL,
    B_DONE,
    B_ERROR,
    B_PDAEMON,
    B_READ,
    B_WRITE,
    PAGE_SIZE,
    Buf,
    BufFlags,
    biodone,
)


def test_flags_keep_openbsd_values_and_b_write_is_zero() -> None:
    assert int(B_WRITE) == 0
    assert (B_ASYNC, B_BUSY, B_CALL, B_DONE, B_ERROR, B_READ, B_PDAEMON) == (
        0x4, 0x10, 0x40, 0x100, 0x400, 0x8000, 0x200000,
    )


def test_module_aliases_are_the_enum_members() -> None:
    for member in BufFlags:
        assert member.name is not None and getattr(buf, member.name) is member
    assert getattr(buf, "B_WRITE") is BufFlags.B_WRITE  # noqa: B009 (0 is no iteration member)


def test_flag_words_print_like_the_c_macros() -> None:
    assert (B_READ | B_ASYNC | B_CALL).name == "B_ASYNC|B_CALL|B_READ"


def test_buf_counts_bytes_from_its_pages_and_has_no_dict() -> None:
    pages = [memoryview(bytearray(PAGE_SIZE)) for _ in range(3)]
    bp = Buf(B_WRITE | B_BUSY, 7, pages, private="owner")
    assert (bp.b_blkno, bp.b_bcount, bp.b_bufsize, bp.npages) == (7, 3 * PAGE_SIZE, 3 * PAGE_SIZE, 3)
    assert (bp.b_error, bp.b_resid, bp.b_iodone, bp.b_private) == (0, 0, None, "owner")
    assert (bp.t_submit, bp.t_done) == (-1, -1)
    with pytest.raises(AttributeError):
        bp.b_vp = None  # type: ignore[attr-defined]


def test_biodone_sets_b_done_clears_b_call_and_calls_b_iodone() -> None:
    seen: list[BufFlags] = []
    bp = Buf(B_WRITE | B_BUSY | B_ASYNC | B_CALL, 0, [], iodone=lambda b: seen.append(b.b_flags))
    biodone(bp)
    assert seen == [B_BUSY | B_ASYNC | B_DONE]
    assert bp.b_flags & B_BUSY  # the callee releases the buffer, not biodone


def test_biodone_twice_is_an_error() -> None:
    bp = Buf(B_READ, 0, [])
    biodone(bp)
    with pytest.raises(RuntimeError, match=r"^biodone: already done"):
        biodone(bp)
