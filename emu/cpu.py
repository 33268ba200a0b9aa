"""emu.cpu: the access path user code runs on: loads, stores and numpy batches through the MMU.

A :class:`CpuContext` is one process's view of the CPU (its address space and counters). An
access that the MMU cannot complete traps: the context awaits the kernel's trap handler, which
either fixes the mapping (the access is then retried) or raises a :class:`MemoryFault`. A batch
resumes exactly at the faulting index, so the accesses before it happen once.

Time: every access charges ``access_ns`` and every trap ``fault_ns`` to the running thread's
CPU debt (:meth:`emu.clock.Clock.charge`); when a call ends with the debt at or above
``quantum_ns`` the thread pays it (sleeps in virtual time), letting others run. Nothing awaits
on the fast path, where nothing faults and the debt is under the quantum.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import numpy as np
import numpy.typing as npt

from emu.clock import Clock, current_thread
from emu.mmu import AddressSpace, Mmu, PageFault
from emu.ram import PAGE_SHIFT, PAGE_SIZE, Ram

__all__ = ["BusError", "Cpu", "CpuContext", "MemoryFault", "SegmentationFault", "TrapHandler"]

_PAGE_MASK = PAGE_SIZE - 1
_TOUCH_WINDOW = 64  # least accesses per MMU call after a trap in touch()
_TOUCH_SCALAR = 16  # accesses in a row done one by one after a trap before batches again


class MemoryFault(Exception):
    """An access the kernel refused: the process gets a signal. ``vaddr`` is the address."""

    def __init__(self, vaddr: int, write: bool = False, reason: str = "") -> None:
        self.vaddr = vaddr
        self.write = write
        self.reason = reason
        what = f"{'write' if write else 'read'} at {vaddr:#x}"  # the type says which signal
        super().__init__(f"{what}: {reason}" if reason else what)


class SegmentationFault(MemoryFault):
    """No mapping may exist there, or the access breaks its protection (SIGSEGV)."""


class BusError(MemoryFault):
    """The page exists but its backing store failed (swap read error: SIGBUS)."""


# (context, faulting vaddr, is_write): fix the mapping and return, or raise MemoryFault.
TrapHandler = Callable[["CpuContext", int, bool], Awaitable[None]]


class Cpu:
    """The processor: the installed trap handler and the cost model, shared by all contexts.

    ``refault_limit`` bounds how many times in a row one access may trap with the handler
    returning each time; beyond it the handler is broken and RuntimeError is raised.
    """

    def __init__(
        self,
        ram: Ram,
        mmu: Mmu,
        clock: Clock,
        *,
        access_ns: int = 10,
        fault_ns: int = 1_000,
        quantum_ns: int = 100_000,
        refault_limit: int = 1_000,
    ) -> None:
        if access_ns < 0 or fault_ns < 0 or quantum_ns <= 0:
            raise ValueError("Cpu: costs must be >= 0 and the quantum > 0")
        self.ram = ram
        self.mmu = mmu
        self.clock = clock
        self.access_ns = access_ns
        self.fault_ns = fault_ns
        self.quantum_ns = quantum_ns
        self.refault_limit = refault_limit
        self.trap_handler: TrapHandler | None = None

    def context(self, space: AddressSpace, owner: object = None) -> CpuContext:
        return CpuContext(self, space, owner)


class CpuContext:
    """One process on the CPU: its address space, its owner (the kernel's proc) and counters.

    ``accesses`` counts completed accesses (a load or store counts one per page it spans);
    ``faults`` counts traps taken.
    """

    __slots__ = ("_access", "_buf", "_translate", "accesses", "cpu", "faults", "owner", "space")

    def __init__(self, cpu: Cpu, space: AddressSpace, owner: object = None) -> None:
        self.cpu = cpu
        self.space = space
        self.owner = owner
        self.accesses = 0
        self.faults = 0
        self._translate = cpu.mmu.translate
        self._access = cpu.mmu.access  # translate without the exception: -1 = would fault
        self._buf = cpu.ram.buf

    def __repr__(self) -> str:
        return f"<CpuContext asid={self.space.asid} owner={self.owner!r}>"

    async def load(self, vaddr: int, n: int) -> bytes:
        """Read ``n`` bytes at ``vaddr`` (may span pages); sets ref on each page."""
        off = vaddr & _PAGE_MASK
        if 0 < n and off + n <= PAGE_SIZE:  # one page: the fast path
            frame = self._access(self.space, vaddr, False)
            if frame < 0:
                frame = await self._refault(vaddr, False)
            base = (frame << PAGE_SHIFT) | off
            data = bytes(self._buf[base : base + n])
            self.accesses += 1
            cpu = self.cpu
            th = current_thread()
            if th is not None:  # Clock.charge(access_ns), inlined
                th.debt_ns += cpu.access_ns
                if th.debt_ns >= cpu.quantum_ns:
                    await cpu.clock.pay()
            return data
        else:
            frames = await self._frames(vaddr, n, False)
            data = b"".join(
                bytes(self._buf[(f << PAGE_SHIFT) + a : (f << PAGE_SHIFT) + b])
                for f, a, b in _pieces(vaddr, n, frames)
            )
        th = current_thread()
        if th is not None and th.debt_ns >= self.cpu.quantum_ns:
            await self.cpu.clock.pay()
        return data

    async def store(self, vaddr: int, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` at ``vaddr`` (may span pages); sets ref and mod on each page. A store
        spanning pages translates every page before writing any, as hardware checks both halves
        of a split store first."""
        if isinstance(data, memoryview):
            data = data.cast("B")
        n = len(data)
        off = vaddr & _PAGE_MASK
        if 0 < n and off + n <= PAGE_SIZE:
            frame = self._access(self.space, vaddr, True)
            if frame < 0:
                frame = await self._refault(vaddr, True)
            base = (frame << PAGE_SHIFT) | off
            self._buf[base : base + n] = data
            self.accesses += 1
            cpu = self.cpu
            th = current_thread()
            if th is not None:  # Clock.charge(access_ns), inlined
                th.debt_ns += cpu.access_ns
                if th.debt_ns >= cpu.quantum_ns:
                    await cpu.clock.pay()
            return
        else:
            frames = await self._frames(vaddr, n, True)
            src = memoryview(data)
            done = 0
            for f, a, b in _pieces(vaddr, n, frames):
                self._buf[(f << PAGE_SHIFT) + a : (f << PAGE_SHIFT) + b] = src[done : done + b - a]
                done += b - a
        th = current_thread()
        if th is not None and th.debt_ns >= self.cpu.quantum_ns:
            await self.cpu.clock.pay()

    async def touch(
        self,
        vaddrs: npt.NDArray[np.uint64] | npt.NDArray[np.int64],
        write: bool | npt.NDArray[np.bool_] = False,
    ) -> None:
        """Access every address of ``vaddrs`` in order (``write`` per access or for all),
        setting ref/mod bits; on a fault, trap and resume at the faulting access."""
        cpu = self.cpu
        mmu = cpu.mmu
        space = self.space
        # The first call covers the whole batch, so bad input fails before any access.
        fault = mmu.touch_batch(space, vaddrs, write)
        if fault is not None:
            await self._touch_rest(vaddrs, write, fault.index)
        else:
            self.accesses += len(vaddrs)
            cpu.clock.charge(len(vaddrs) * cpu.access_ns)
        th = current_thread()
        if th is not None and th.debt_ns >= cpu.quantum_ns:
            await cpu.clock.pay()

    async def _touch_rest(
        self,
        vaddrs: npt.NDArray[np.uint64] | npt.NDArray[np.int64],
        write: bool | npt.NDArray[np.bool_],
        i: int,
    ) -> None:
        """The rest of :meth:`touch` from ``i``, its first faulting access.

        PORT: after a trap the rest of the batch goes through the MMU in windows (twice the
        run that went through before the trap, at least ``_TOUCH_WINDOW`` accesses, doubling
        while none faults) instead of whole: where one access faulted the next ones often do
        too, and re-translating the whole remainder after each trap is quadratic in the
        faults of a batch. Where faults come thick (a run of fewer than ``_TOUCH_SCALAR``
        accesses before the trap), a window would cost its fifteen numpy calls for a few
        accesses: those go one by one through :meth:`Mmu.access` (the single-access path,
        with Python ints taken from the batch once) until ``_TOUCH_SCALAR`` in a row went
        through. The accesses, traps, ref/mod bits and charges are the same as one batch
        with a trap at each fault: the accesses done before a trap are charged before it.
        """
        cpu = self.cpu
        mmu = cpu.mmu
        space = self.space
        access = self._access
        access_ns = cpu.access_ns
        charge = cpu.clock.charge
        wv = isinstance(write, np.ndarray)
        vl: list[int] = []  # the batch as Python ints, made when first needed
        wl: list[bool] = []
        wr = bool(write) if not wv else False
        n = len(vaddrs)
        done = 0  # accesses counted and charged so far
        run = i  # accesses that went through before this fault, since the last trap
        tries = 0
        while i < n:
            if i > done:
                self.accesses += i - done
                charge((i - done) * access_ns)
                done = i
            if vl:
                va, w = vl[i], wl[i] if wv else wr
            else:
                va, w = int(vaddrs[i]), bool(write[i]) if wv else wr  # type: ignore[index]
            tries += 1
            await self._trap(va, w, tries)
            if access(space, va, w) < 0:
                continue  # still faults: trap again
            i += 1
            tries = 0
            if run < _TOUCH_SCALAR:  # faults come thick: one by one
                if not vl:
                    vl = vaddrs.tolist()
                    wl = write.tolist() if wv else []  # type: ignore[union-attr]
                run = 1
                while i < n and run < _TOUCH_SCALAR:
                    if access(space, vl[i], wl[i] if wv else wr) < 0:
                        break
                    i += 1
                    run += 1
                if run < _TOUCH_SCALAR:
                    continue
                window = _TOUCH_WINDOW
            else:
                window = max(_TOUCH_WINDOW, 2 * run)
                run = 1
            while i < n:  # windows, doubling while none faults
                hi = min(n, i + window)
                f = mmu.touch_batch(space, vaddrs[i:hi], write[i:hi] if wv else wr)  # type: ignore[index]
                if f is not None:
                    i += f.index
                    run += f.index
                    break
                run += hi - i
                i = hi
                window *= 2
        if n > done:
            self.accesses += n - done
            charge((n - done) * access_ns)

    async def compute(self, ns: int) -> None:
        """Spend ``ns`` of CPU time (no memory access)."""
        if ns < 0:
            raise ValueError(f"CpuContext.compute: negative time {ns}")
        self.cpu.clock.charge(ns)
        th = current_thread()
        if th is not None and th.debt_ns >= self.cpu.quantum_ns:
            await self.cpu.clock.pay()

    # --- internals: the trap path and translation ----------------------------------------------

    async def _trap(self, vaddr: int, write: bool, tries: int) -> None:
        """Take a page fault: charge it and run the kernel's handler."""
        cpu = self.cpu
        if tries > cpu.refault_limit:
            raise _refault_error(tries, vaddr, write)
        self.faults += 1
        cpu.clock.charge(cpu.fault_ns)
        handler = cpu.trap_handler
        if handler is None:
            raise SegmentationFault(vaddr, write, "no trap handler installed")
        await handler(self, vaddr, write)

    async def _refault(self, vaddr: int, write: bool) -> int:
        """Trap until one single-page access translates; its frame. (:meth:`_trap`'s body
        inline: one coroutine frame less on every fault of a load or store.)"""
        cpu = self.cpu
        tries = 0
        while True:
            tries += 1
            if tries > cpu.refault_limit:
                raise _refault_error(tries, vaddr, write)
            self.faults += 1
            cpu.clock.charge(cpu.fault_ns)
            handler = cpu.trap_handler
            if handler is None:
                raise SegmentationFault(vaddr, write, "no trap handler installed")
            await handler(self, vaddr, write)
            frame = self._access(self.space, vaddr, write)
            if frame >= 0:
                return frame

    async def _frames(self, vaddr: int, n: int, write: bool) -> list[int]:
        """Translate every page of [vaddr, vaddr+n) with no await between the translations
        that are used, trapping (and starting over) as needed; charges one access per page."""
        if n < 0:
            raise ValueError(f"CpuContext: negative length {n}")
        if n == 0:
            return []
        first, last = vaddr >> PAGE_SHIFT, (vaddr + n - 1) >> PAGE_SHIFT
        tries, last_va = 0, -1
        while True:
            try:
                frames = [
                    self._translate(self.space, max(vaddr, p << PAGE_SHIFT), write)
                    for p in range(first, last + 1)
                ]
                break
            except PageFault as pf:
                tries = tries + 1 if pf.fault.vaddr == last_va else 1
                last_va = pf.fault.vaddr
                await self._trap(last_va, write, tries)
        self.accesses += len(frames)
        self.cpu.clock.charge(len(frames) * self.cpu.access_ns)
        return frames


def _refault_error(tries: int, vaddr: int, write: bool) -> RuntimeError:
    return RuntimeError(
        f"Cpu: trap handler returned {tries - 1} times without resolving the "
        f"{'write' if write else 'read'} fault at {vaddr:#x}"
    )


def _pieces(vaddr: int, n: int, frames: list[int]) -> list[tuple[int, int, int]]:
    """(frame, start, end) byte ranges within each frame for the span [vaddr, vaddr+n)."""
    out = []
    end = vaddr + n
    for i, f in enumerate(frames):
        page = ((vaddr >> PAGE_SHIFT) + i) << PAGE_SHIFT
        out.append((f, max(vaddr, page) - page, min(end, page + PAGE_SIZE) - page))
    return out
