"""sys/param.h: the page size, the I/O size limits and the sleep priorities, the kernel's only
definitions of them.

OpenBSD spreads these over three headers that sys/param.h pulls in: ``PAGE_SHIFT``,
``PAGE_SIZE``, ``PAGE_MASK`` and ``MAXPHYS`` come from the machine's ``machine/param.h``
(amd64 values here), ``atop``/``ptoa``/``round_page``/``trunc_page`` from ``uvm/uvm_param.h``,
and ``MAXBSIZE``, ``DEV_BSHIFT``/``DEV_BSIZE`` and ``btodb``/``dbtob`` from ``sys/param.h``
itself. Every kernel module takes them from here; the
emulated hardware (``emu.ram``) and the block devices (``devices``) keep their own, since they
know nothing of the kernel.

Port: the macros are functions; ``paddr_t``/``vaddr_t`` arithmetic is plain ``int``, except
where the C relies on ``paddr_t`` being unsigned (``ptoa(0) - 1`` is all-ones, and
``(paddr_t)-1`` is the top of physical memory): there ``wrap_paddr`` does the wrap.
``paddr_t`` itself is ``machine/_types.h``'s (``sys/types.h`` pulls it in).
"""

from __future__ import annotations

from typing import Final, NewType

__all__ = [
    "DEV_BSHIFT",
    "DEV_BSIZE",
    "MAXBSIZE",
    "MAXPHYS",
    "PAGE_MASK",
    "PAGE_SHIFT",
    "PAGE_SIZE",
    "PNORELOCK",
    "PRIBIO",
    "PVM",
    "atop",
    "btodb",
    "dbtob",
    "paddr_t",
    "ptoa",
    "round_page",
    "trunc_page",
    "wrap_paddr",
]

paddr_t = NewType("paddr_t", int)  # a physical address: unsigned long, 64 bits on amd64

PAGE_SHIFT: Final = 12  # LOG2(PAGE_SIZE)
PAGE_SIZE: Final = 1 << PAGE_SHIFT  # bytes/page
PAGE_MASK: Final = PAGE_SIZE - 1

MAXBSIZE: Final = 64 * 1024  # largest file system block (and buffer)
MAXPHYS: Final = 64 * 1024  # largest raw I/O transfer

# Priorities (sys/param.h): a sleep's priority, or-ed with its flags
PVM: Final = 4
PRIBIO: Final = 16  # disk I/O waits
PNORELOCK: Final = 0x200  # msleep: don't re-take the interlock on return

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


def wrap_paddr(x: int) -> paddr_t:
    """PORT: ``(paddr_t)x``: ``x`` modulo 2^64, as C's unsigned arithmetic wraps."""
    return paddr_t(x & 0xFFFF_FFFF_FFFF_FFFF)
