"""kernel/sys/buf.py: struct buf and its flags (OpenBSD sys/sys/buf.h), and biodone() of
vfs_bio.c: "biodone: mark I/O complete on a buffer. If a callback has been requested, e.g. the
pageout daemon, do so. Otherwise, awaken waiting processes." """

from __future__ import annotations

import pytest

from kernel.sys import buf
from kernel.sys.buf import (
    B_ASYNC,
    B_BUSY,
    B_CALL,
    B_DONE,
    B_ERROR,
    B_PDAEMON,
    B_READ,
    B_WRITE,
    BFlags,
    Buf,
    biodone,
)


def test_flags_keep_openbsd_values_and_b_write_is_zero() -> None:
    assert int(B_WRITE) == 0
    assert (B_ASYNC, B_BUSY, B_CALL, B_DONE, B_ERROR, B_READ, B_PDAEMON) == (
        0x4, 0x10, 0x40, 0x100, 0x400, 0x8000, 0x200000,
    )


def test_module_aliases_are_the_enum_members() -> None:
    aliases = [name for name in buf.__dict__ if name.startswith("B_")]
    assert "B_WRITE" in aliases and "B_CALL" in aliases
    for name in aliases:
        assert getattr(buf, name) is BFlags[name]


def test_flag_words_print_like_the_c_macros() -> None:
    assert (B_READ | B_ASYNC | B_CALL).name == "B_ASYNC|B_CALL|B_READ"


def test_biodone_sets_b_done_clears_b_call_and_calls_b_iodone() -> None:
    seen: list[BFlags] = []
    bp = Buf(b_flags=B_WRITE | B_BUSY | B_ASYNC | B_CALL, b_iodone=lambda b: seen.append(b.b_flags))
    biodone(bp)
    assert seen == [B_BUSY | B_ASYNC | B_DONE]
    assert bp.b_flags & B_BUSY  # the callee releases the buffer, not biodone


def test_biodone_calls_b_iodone_only_for_b_call_bufs() -> None:
    seen: list[Buf] = []
    bp = Buf(b_flags=B_READ | B_BUSY, b_iodone=seen.append)
    biodone(bp)
    assert seen == [] and bp.b_flags == B_READ | B_BUSY | B_DONE


def test_biodone_twice_is_an_error() -> None:
    bp = Buf(b_flags=B_READ)
    biodone(bp)
    with pytest.raises(AssertionError, match=r"^biodone already"):
        biodone(bp)
