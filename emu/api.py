"""emu.api: the interface a workload coroutine sees.

A workload is ``async def fn(p: ProcessHandle, **params) -> None``. ``Machine.attach(fn, ...)``
makes it a process with its own address space; ``p`` is its handle. Everything a workload
does to memory goes through ``p`` and so through the emulated MMU and the kernel.

The params are checked against ``fn``'s signature before the run: unknown names and values
of the wrong type raise TypeError, values out of range ValueError. A range is part of the
annotation: ``pages: Pages = 256`` (an int >= 1); ``Count`` (>= 0), ``Fraction`` (0 to 1)
and ``Ns`` (virtual ns, >= 0) are the others defined here; any
``Annotated[int, msgspec.Meta(ge=.., le=..)]`` works the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from emu.config import Count, Fraction, Ns, Pages

__all__ = ["Count", "Fraction", "Integrity", "MapKind", "Ns", "Pages", "ProcessHandle"]

MapKind = Literal["anon", "shared", "file"]


@dataclass
class Integrity:
    """Content checks a process made: every verified read counts one page checked."""

    pages_checked: int = 0
    mismatches: int = 0
    first_mismatches: list[dict[str, object]] = field(default_factory=list)  # at most 10 kept


class ProcessHandle(Protocol):
    """What a workload may call. All addresses are virtual addresses of this process."""

    name: str
    pid: int
    rng: np.random.Generator  # seeded from the machine's seed and the process name
    integrity: Integrity

    async def mmap(
        self,
        size: int,
        kind: MapKind = "anon",
        *,
        name: str | None = None,
        addr: int | None = None,
        writable: bool = True,
    ) -> int:
        """Map ``size`` bytes (rounded up to pages) and return the address.

        ``kind``: ``"anon"`` private anonymous memory; ``"shared"`` the shared anonymous region
        called ``name`` (created on first use, an aobj, shared by every process that maps it);
        ``"file"`` the file called ``name`` in the run directory (a vnode, created sparse at
        ``size`` on first use). ``addr``: map exactly there (MAP_FIXED); it must be free.
        """
        ...

    async def munmap(self, addr: int, size: int) -> None: ...

    async def load(self, vaddr: int, n: int) -> bytes: ...

    async def store(self, vaddr: int, data: bytes) -> None: ...

    async def touch(self, vaddrs: np.ndarray, write: bool | np.ndarray = False) -> None:
        """Access every address of the batch (uint64), in order, faulting as needed."""
        ...

    async def compute(self, ns: int) -> None:
        """Spend ``ns`` of virtual CPU time."""
        ...

    def verify(self, vaddr: int, expected: bytes, found: bytes) -> bool:
        """Count one page checked; on a difference count a mismatch and log it. Returns ok."""
        ...

    def log(self, event: str, **kw: object) -> None:
        """Emit a structured event for this process (``workload.<event>``)."""
        ...
