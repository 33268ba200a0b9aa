"""emu.benchmarks.scan: inactive pages examined per second by ``uvmpd_scan_inactive``.

A booted machine (timing model ``none``, buffer cache off) and one process that writes
``npages`` private anonymous pages and then sleeps, keeping them. Per repeat, from a kernel
thread: every page of the active queue is deactivated (``uvm_pagedeactivate``, as the active
scan does, which clears its referenced bit), the process's pages are accessed once through the
MMU (``Mmu.touch_batch``: the hardware sets their referenced bits), and then the daemon's
inactive scan runs over the whole queue, timed with the host clock, with the page queues
locked as the daemon holds them. It is given a pending constrained allocation (a
``uvm_pmalloc`` covering all of RAM that nothing frees) so that its stop test never ends it
early: it examines every page, finds each referenced and reactivates it (``pdreact``), which
the row checks. Our figure: pages examined (``pdscans``) per second.

The reference, between our repeats: the same walk in plain Python over a ``__slots__``
doubly linked list of as many nodes: per node, test a flag word and a referenced byte, unlink
it and append it to a second list. Target: >= 300 k pages/s.

:func:`measure` is also used by the ``scale`` benchmark (scan cost per page at each RAM size).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import kernel.uvm.uvm_page as uvm_page
import kernel.uvm.uvm_pdaemon as uvm_pdaemon
from emu.benchmarks import BenchResult, result, spread
from emu.benchmarks._harness import BenchMachine
from emu.process import UserProcess
from emu.ram import PAGE_SIZE
from kernel.kern.kern_synch import INFSLP, PVM, tsleep_nsec, wakeup
from kernel.kernel import Kernel
from kernel.uvm.uvm import no_constraint
from kernel.uvm.uvm_pmemrange import UvmPmalloc

TARGET = 300e3  # pages/s
BASE = 0x400000


def _sizes(quick: bool, tiny: bool) -> tuple[int, int]:
    """(inactive pages, repeats)."""
    if tiny:
        return 64, 1
    return (8192, 5) if quick else (32768, 7)


class Baton:
    """A flag one thread raises and another sleeps on (kernel sleep/wakeup, no lost wakeup:
    the flag is tested and the sleep queued with no await in between)."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.up = False

    def raise_(self) -> None:
        self.up = True
        wakeup(self.k, self)

    async def take(self) -> None:
        while not self.up:
            await tsleep_nsec(self.k, self, PVM, "baton", INFSLP)
        self.up = False


class _Node:
    __slots__ = ("flags", "frame", "next", "prev")

    def __init__(self, frame: int) -> None:
        self.frame = frame
        self.flags = 0x20000  # "inactive"
        self.prev: _Node | None = None
        self.next: _Node | None = None


class _List:
    __slots__ = ("first", "last", "n")

    def __init__(self) -> None:
        self.first: _Node | None = None
        self.last: _Node | None = None
        self.n = 0

    def append(self, x: _Node) -> None:
        x.prev, x.next = self.last, None
        if self.last is None:
            self.first = x
        else:
            self.last.next = x
        self.last = x
        self.n += 1

    def remove(self, x: _Node) -> None:
        if x.next is None:
            self.last = x.prev
        else:
            x.next.prev = x.prev
        if x.prev is None:
            self.first = x.next
        else:
            x.prev.next = x.next
        self.n -= 1


def _reference(npages: int) -> float:
    """Seconds for the plain-Python walk over ``npages`` nodes."""
    inactive, active = _List(), _List()
    ref = bytearray(b"\x01" * npages)
    for f in range(npages):
        inactive.append(_Node(f))
    t0 = time.perf_counter()
    p = inactive.first
    while p is not None:
        nxt = p.next
        if ref[p.frame] and not p.flags & 1:
            inactive.remove(p)
            p.flags = (p.flags & ~0x20000) | 0x40000
            active.append(p)
        p = nxt
    t = time.perf_counter() - t0
    assert active.n == npages
    return t


def measure(bm: BenchMachine, npages: int, repeats: int,
            reference: bool = True) -> tuple[list[float], list[float], list[float]]:  # fmt: skip
    """On the booted machine ``bm`` (closed afterwards), scan ``npages`` referenced inactive
    pages ``repeats`` times; returns our wall seconds per page, our main-thread CPU seconds
    per page and the reference's seconds per page, per repeat."""
    k = bm.k
    ready, done = Baton(k), Baton(k)
    ours: list[float] = []
    refs: list[float] = []
    cpus: list[float] = []
    procs: list[UserProcess] = []

    async def owner(p: UserProcess) -> None:
        await p.mmap(npages * PAGE_SIZE, addr=BASE)
        for i in range(npages):
            await p.store(BASE + i * PAGE_SIZE, i.to_bytes(8, "little"))
        ready.raise_()
        await done.take()

    async def body(bm: BenchMachine) -> None:
        procs.append(bm.spawn(owner, name="owner"))
        await ready.take()
        space = procs[0].ctx.space
        vaddrs = (BASE + np.arange(npages, dtype=np.uint64) * PAGE_SIZE).astype(np.uint64)
        pma = UvmPmalloc(pm_constraint=no_constraint(), pm_size=PAGE_SIZE)
        u = k.uvmexp
        for r in range(repeats):
            if reference and r % 2:
                refs.append(_reference(npages) / npages)
            uvm_page.uvm_lock_pageq(k)
            for pg in list(k.uvm.page_active):
                uvm_page.uvm_pagedeactivate(k, pg)
            uvm_page.uvm_unlock_pageq(k)
            if bm.mmu.touch_batch(space, vaddrs, False) is not None:
                raise AssertionError("scan: an owner page is not mapped")
            n = u.inactive
            s0, r0 = u.pdscans, u.pdreact
            uvm_page.uvm_lock_pageq(k)
            t0, c0 = time.perf_counter(), time.thread_time()
            await uvm_pdaemon.uvmpd_scan_inactive(k, pma, k.uvm.page_inactive)
            t = time.perf_counter() - t0
            cpus.append(time.thread_time() - c0)
            uvm_page.uvm_unlock_pageq(k)
            scanned, react = u.pdscans - s0, u.pdreact - r0
            if scanned != n or react != n or n < npages:
                raise AssertionError(f"scan: {n} inactive, {scanned} scanned, {react} reactivated")
            ours.append(t / scanned)
            cpus[-1] /= scanned
            if reference and not r % 2:
                refs.append(_reference(npages) / npages)
        done.raise_()
        await bm.wait(*procs)

    try:
        bm.run(body)
    finally:
        bm.close()
    return ours, cpus, refs


def run(quick: bool, tiny: bool = False) -> list[BenchResult]:
    npages, repeats = _sizes(quick, tiny)
    with tempfile.TemporaryDirectory(prefix="bench-scan-") as tmp:
        _reference(npages)  # warm-up
        bm = BenchMachine(Path(tmp), npages + npages // 2 + 512, 256)
        ours, cpus, refs = measure(bm, npages, repeats)
    t_ours, t_ref, t_cpu = statistics.median(ours), statistics.median(refs), statistics.median(cpus)
    value, reference = 1 / t_ours, 1 / t_ref
    return [result(
        "scan", value / 1e3, "k pages/s", reference / 1e3, f">= {TARGET / 1e3:.0f} k/s",
        value >= TARGET, spread(ours), pages=npages, repeats=repeats,
        cpu_us_per_page=round(t_cpu * 1e6, 3),
        note=f"{t_ours * 1e6:.2f} µs/page wall, {t_cpu * 1e6:.2f} CPU (ref {t_ref * 1e6:.2f})",
    )]
