"""sys/param.h: the page size and the I/O size limits, the kernel's only definitions of them.

OpenBSD spreads these over three headers that sys/param.h pulls in: ``PAGE_SHIFT``,
``PAGE_SIZE``, ``PAGE_MASK`` and ``MAXPHYS`` come from the machine's ``machine/param.h``
(amd64 values here), ``atop``/``ptoa``/``round_page``/``trunc_page`` from ``uvm/uvm_param.h``,
and ``MAXBSIZE``, ``DEV_BSHIFT``/``DEV_BSIZE`` and ``btodb``/``dbtob`` from ``sys/param.h``
itself. Every kernel module takes them from here; the
emulated hardware (``emu.ram``) and the block devices (``devices``) keep their own, since they
know nothing of the kernel.

Port: the macros are functions; ``paddr_t``/``vaddr_t`` arithmetic is plain ``int``.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "DEV_BSHIFT",
    "DEV_BSIZE",
    "MAXBSIZE",
    "MAXPHYS",
    "PAGE_MASK",
    "PAGE_SHIFT",
    "PAGE_SIZE",
    "atop",
    "btodb",
    "dbtob",
    "ptoa",
    "round_page",
    "trunc_page",
]

PAGE_SHIFT: Final = 12  # LOG2(PAGE_SIZE)
PAGE_SIZE: Final = 1 << PAGE_SHIFT  # bytes/page
PAGE_MASK: Final = PAGE_SIZE - 1

MAXBSIZE: Final = 64 * 1024  # largest file system block (and buffer)
MAXPHYS: Final = 64 * 1024  # largest raw I/O transfer

DEV_BSHIFT: Final = 9  # log2(DEV_BSIZE)
DEV_BSIZE: Final = 1 << DEV_BSHIFT  # the disk block size


def atop(x: int) -> int:
    """atop: bytes to pages (truncating)."""
    return x >> PAGE_SHIFT


def ptoa(x: int) -> int:
    """ptoa: pages to bytes."""
    return x << PAGE_SHIFT


def btodb(x: int) -> int:
    """btodb: bytes to disk blocks (DEV_BSIZE units, truncating)."""
    return x >> DEV_BSHIFT


def dbtob(x: int) -> int:
    """dbtob: disk blocks to bytes."""
    return x << DEV_BSHIFT


def round_page(x: int) -> int:
    """round_page: round a byte address or size up to a page boundary."""
    return (x + PAGE_MASK) & ~PAGE_MASK


def trunc_page(x: int) -> int:
    """trunc_page: round a byte address or size down to a page boundary."""
    return x & ~PAGE_MASK
