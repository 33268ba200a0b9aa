"""kernel/sys/buf.py: struct buf and its flags (OpenBSD sys/sys/buf.h); the only ``B_*``
flags in the tree (devices have their own request with a direction)."""

from __future__ import annotations

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
