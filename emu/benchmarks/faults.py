"""emu.benchmarks.faults: page faults per second of each kind on a booted kernel.

One :class:`~emu.benchmarks._harness.BenchMachine` per kind (timing model ``none``, RAM four
times the pages touched, so the page daemon never runs; the default kernel configuration,
:func:`~emu.benchmarks._harness.default_config`) and one user process that maps
``npages`` of private anonymous memory and, per repeat, takes exactly ``npages`` faults of one
kind with single 8-byte accesses (``p.store``/``p.load``, as a workload does), timed with the
host clock around the loop. The kernel's counters check the kind: the row fails loudly if a
repeat took anything but ``npages`` faults of that kind.

- ``fault_zero``: first writes to a fresh mapping: zero-fill faults (anon + page allocated
  and zeroed, mapping entered). Each repeat maps a fresh range and unmaps it afterwards.
- ``fault_soft``: reads of resident pages whose mappings were removed, as the daemon's active
  scan removes them (``pmap_remove`` of the range): the fault finds the anon's page and maps
  it again.
- ``fault_major``: reads of pages paged out to swap beforehand (``page_out``: 16-page
  clusters, untimed): the fault reads the page back from the swap image.

References, run inside the same process between our repeats (the order alternates):

- zero and soft: the emulator's irreducible work for that fault, in plain Python over a Ram
  and an Mmu of their own: the access traps (``PageFault``), the "handler" pops a free frame
  and zeroes it (zero) or looks the frame up in a dict (soft), enters the mapping, and the
  access is retried. The ratio says what the faithful kernel path costs on top.
- major: ``os.pread`` of the same number of 4 KiB pages, one by one in the same order, from a
  file holding the same bytes (the issue's reference).

Targets: ``fault_zero`` >= 100 k/s, ``fault_major`` >= 30 k/s; ``fault_soft`` has none.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from emu.benchmarks import BenchResult, result, spread
from emu.benchmarks._harness import BenchMachine, anons_of, default_config, page_out
from emu.mmu import Mmu, PageFault
from emu.process import UserProcess
from emu.ram import PAGE_SHIFT, PAGE_SIZE, Ram

Kind = Literal["zero", "soft", "major"]
TARGETS: dict[Kind, float | None] = {"zero": 100e3, "soft": None, "major": 30e3}
_COUNTER: dict[Kind, str] = {"zero": "flt_zero", "soft": "flt_soft", "major": "flt_major"}
BASE = 0x400000


def _sizes(quick: bool, tiny: bool) -> tuple[int, int]:
    """(pages per repeat, repeats)."""
    if tiny:
        return 32, 1
    return (2048, 5) if quick else (8192, 9)


class _Reference:
    """The plain-Python reference of one fault kind (see the module docstring)."""

    def __init__(self, kind: Kind, npages: int, workdir: Path) -> None:
        self.kind = kind
        self.npages = npages
        self.ram = Ram(npages + 1)
        self.mmu = Mmu(self.ram)
        self.space = self.mmu.new_space()
        self.addrs = [BASE + (i << PAGE_SHIFT) for i in range(npages)]
        self.fd = -1
        if kind == "major":
            path = workdir / "ref.img"
            self.fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o600)
            page = bytearray(PAGE_SIZE)
            for i in range(npages):
                page[:8] = i.to_bytes(8, "little")
                os.pwrite(self.fd, page, i * PAGE_SIZE)

    def once(self) -> float:
        """One timed pass of ``npages`` faults; seconds."""
        mmu, space, ram = self.mmu, self.space, self.ram
        if self.kind == "major":
            fd, n = self.fd, 0
            t0 = time.perf_counter()
            for i in range(self.npages):
                n += len(os.pread(fd, PAGE_SIZE, i * PAGE_SIZE))
            t = time.perf_counter() - t0
            assert n == self.npages * PAGE_SIZE
            return t
        mmu.remove_range(space, 0, 1 << 47)
        free = list(range(self.npages))
        table = {a >> PAGE_SHIFT: f for a, f in zip(self.addrs, free, strict=True)}
        buf = ram.buf
        data = b"12345678"
        zero = self.kind == "zero"
        t0 = time.perf_counter()
        for a in self.addrs:
            try:
                f = mmu.translate(space, a, zero)
            except PageFault:
                if zero:
                    f = free.pop()
                    ram.zero(f)
                else:
                    f = table[a >> PAGE_SHIFT]
                mmu.enter(space, a, f, True)
                f = mmu.translate(space, a, zero)
            off = f << PAGE_SHIFT
            if zero:
                buf[off : off + 8] = data
            else:
                bytes(buf[off : off + 8])
        return time.perf_counter() - t0

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
        self.ram.close()


def _measure(kind: Kind, npages: int, repeats: int,
             workdir: Path, swapencrypt: bool = True) -> tuple[list[float], list[float], list[float]]:  # fmt: skip
    """(our wall seconds, our main-thread CPU seconds, reference seconds) per repeat."""
    ref = _Reference(kind, npages, workdir)
    bm = BenchMachine(workdir / "m", 4 * npages + 512, 2 * npages + 256,
                      config=default_config(swapencrypt))
    ours: list[float] = []
    cpus: list[float] = []
    refs: list[float] = []
    counts: list[int] = []
    k = bm.k

    async def proc(p: UserProcess) -> None:
        size = npages * PAGE_SIZE
        addrs = [BASE + (i << PAGE_SHIFT) for i in range(npages)]
        stamps = [i.to_bytes(8, "little") for i in range(npages)]
        if kind != "zero":
            await p.mmap(size, addr=BASE)
            for a, s in zip(addrs, stamps, strict=True):
                await p.store(a, s)
        anons = anons_of(p, BASE, npages) if kind == "major" else []
        ref.once()  # warm-up
        for r in range(repeats):
            if r % 2:
                refs.append(ref.once())
            if kind == "zero":
                await p.mmap(size, addr=BASE)
            elif kind == "soft":  # unmap, as the daemon's active scan does
                space = p.proc.p_vmspace.vm_map.pmap  # type: ignore[union-attr]
                k.pmap.pmap_remove(space, BASE, BASE + size)
            else:
                await page_out(k, anons)
            c0 = getattr(k.uvmexp, _COUNTER[kind])
            if kind == "zero":
                t0, cpu0 = time.perf_counter(), time.thread_time()
                for a, s in zip(addrs, stamps, strict=True):
                    await p.store(a, s)
                ours.append(time.perf_counter() - t0)
                cpus.append(time.thread_time() - cpu0)
            else:
                bad = 0
                t0, cpu0 = time.perf_counter(), time.thread_time()
                for a, s in zip(addrs, stamps, strict=True):
                    bad += await p.load(a, 8) != s
                ours.append(time.perf_counter() - t0)
                cpus.append(time.thread_time() - cpu0)
                if bad:
                    raise AssertionError(f"fault_{kind}: {bad} pages read back wrong")
            counts.append(getattr(k.uvmexp, _COUNTER[kind]) - c0)
            if kind == "zero":
                await p.munmap(BASE, size)
            if not r % 2:
                refs.append(ref.once())

    async def body(bm: BenchMachine) -> None:
        await bm.wait(bm.spawn(proc, name=f"fault_{kind}"))

    try:
        bm.run(body)
    finally:
        bm.close()
        ref.close()
    if any(c != npages for c in counts):
        raise AssertionError(f"fault_{kind}: expected {npages} {_COUNTER[kind]} per repeat, got {counts}")
    return ours, cpus, refs


def _run(kind: Kind, quick: bool, tiny: bool, swapencrypt: bool = True) -> list[BenchResult]:
    npages, repeats = _sizes(quick, tiny)
    with tempfile.TemporaryDirectory(prefix=f"bench-fault-{kind}-") as tmp:
        ours, cpus, refs = _measure(kind, npages, repeats, Path(tmp), swapencrypt)
    t_ours, t_ref = statistics.median(ours), statistics.median(refs)
    t_cpu = statistics.median(cpus)
    value, reference = npages / t_ours, npages / t_ref
    target = TARGETS[kind]
    extra: dict[str, Any] = {"pages": npages, "repeats": repeats,
                             "us_per_fault": round(t_ours / npages * 1e6, 2),
                             "cpu_us_per_fault": round(t_cpu / npages * 1e6, 2),
                             "ref_us_per_fault": round(t_ref / npages * 1e6, 3)}  # fmt: skip
    return [result(
        f"fault_{kind}" + ("" if swapencrypt else "_plain"), value / 1e3, "k faults/s", reference / 1e3,
        f">= {target / 1e3:.0f} k/s" if target else "",
        None if target is None else value >= target, spread(ours),
        note=f"{t_ours / npages * 1e6:.1f} µs/fault wall, {t_cpu / npages * 1e6:.1f} µs CPU",
        **extra,
    )]


def run_zero(quick: bool, tiny: bool = False) -> list[BenchResult]:
    return _run("zero", quick, tiny)


def run_soft(quick: bool, tiny: bool = False) -> list[BenchResult]:
    return _run("soft", quick, tiny)


def run_major(quick: bool, tiny: bool = False) -> list[BenchResult]:
    return _run("major", quick, tiny)


def run_major_plain(quick: bool, tiny: bool = False) -> list[BenchResult]:
    """``fault_major_plain``: major faults of pages written with swap encryption off
    (``fault_major`` reads and decrypts pages written encrypted, the default)."""
    return _run("major", quick, tiny, swapencrypt=False)


def run(quick: bool, tiny: bool = False) -> list[BenchResult]:
    return run_zero(quick, tiny) + run_soft(quick, tiny) + run_major(quick, tiny)

