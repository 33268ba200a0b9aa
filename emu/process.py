"""emu.process: the process handle a workload drives (``emu.api.ProcessHandle``).

A workload is ``async def fn(p, **params)``; :func:`spawn` makes it a user process of a
booted kernel and hands it ``p``, a :class:`UserProcess`. Memory accesses go through the
process's CPU context (so the MMU and, on a fault, the kernel's trap path); ``mmap`` and
``munmap`` are system calls (``kernel.arch.emu.machdep``). The handle also keeps what the
machine measures of the process: its seeded ``rng`` and its ``integrity`` checks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import structlog

from emu.api import Integrity, MapKind
from emu.cpu import CpuContext
from emu.workloads.stamps import describe_mismatch
from kernel.arch.emu import machdep
from kernel.kernel import Kernel
from kernel.sys.proc import Proc

__all__ = ["UserProcess", "spawn"]

log = structlog.get_logger("emu.process")

Workload = Callable[..., Awaitable[None]]


def spawn(k: Kernel, name: str, fn: Workload, **params: Any) -> UserProcess:
    """Start ``fn(p, **params)`` as a new user process ``name``; returns its handle ``p``.

    Call while the machine runs (from the clock's setup or a thread).
    """
    handle = UserProcess.__new__(UserProcess)

    async def body() -> None:
        await fn(handle, **params)

    handle._init(k, machdep.spawn(k, name, body))
    return handle


class UserProcess:
    """A process handle (``emu.api.ProcessHandle``): what a workload calls."""

    __slots__ = ("ctx", "integrity", "k", "name", "pid", "proc", "rng")

    def _init(self, k: Kernel, p: Proc) -> None:
        self.k = k
        self.proc = p
        self.name = p.p_comm
        self.pid = p.p_pid
        ctx = p.p_md
        assert isinstance(ctx, CpuContext)
        self.ctx = ctx
        seed = int.from_bytes(
            hashlib.sha256(f"{machdep.machdep_of(k).seed}:{p.p_comm}".encode()).digest()[:8],
            "little",
        )
        self.rng = np.random.default_rng(seed)
        self.integrity = Integrity()

    def __repr__(self) -> str:
        return f"<UserProcess {self.pid} {self.name}>"

    async def mmap(
        self,
        size: int,
        kind: MapKind = "anon",
        *,
        name: str | None = None,
        addr: int | None = None,
        writable: bool = True,
    ) -> int:
        """Map ``size`` bytes (rounded up to pages); see emu.api.ProcessHandle.mmap."""
        return await machdep.mmap(
            self.k, self.proc, size, kind, name=name, addr=addr, writable=writable
        )

    async def munmap(self, addr: int, size: int) -> None:
        await machdep.munmap(self.k, self.proc, addr, size)

    async def load(self, vaddr: int, n: int) -> bytes:
        return await self.ctx.load(vaddr, n)

    async def store(self, vaddr: int, data: bytes) -> None:
        await self.ctx.store(vaddr, data)

    async def touch(self, vaddrs: np.ndarray, write: bool | np.ndarray = False) -> None:
        await self.ctx.touch(vaddrs, write)

    async def compute(self, ns: int) -> None:
        await self.ctx.compute(ns)

    def verify(self, vaddr: int, expected: bytes, found: bytes) -> bool:
        """Count one page checked; on a difference count a mismatch and log
        ``integrity.mismatch`` naming the process, the address and both stamps."""
        self.integrity.pages_checked += 1
        if expected == found:
            return True
        self.integrity.mismatches += 1
        detail = describe_mismatch(expected, found)
        if len(self.integrity.first_mismatches) < 10:
            self.integrity.first_mismatches.append({"vaddr": vaddr, "pid": self.pid, **detail})
        log.error("integrity.mismatch", name=self.name, pid=self.pid, vaddr=vaddr, **detail)
        return False

    def log(self, event: str, **kw: object) -> None:
        log.info(f"workload.{event}", pid=self.pid, **kw)
