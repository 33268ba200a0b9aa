"""emu.benchmarks.scale: boot time, metadata per frame and scan cost as emulated RAM grows.

For each size (16 MiB, 256 MiB, 4 GiB and 16 GiB of emulated RAM) a fresh Python process
(``python -m emu.benchmarks.scale SIZE PAGES REPEATS``, so that no size inherits another's
heap) imports everything, then boots a machine the way a run does (RAM arena, MMU, CPU,
clock, a 64 MiB swap image, ``machdep.boot`` with the scenario defaults: DIAGNOSTIC and the
buffer cache at 10 % of RAM) and reports:

- ``boot_s``: wall seconds of that boot;
- ``bytes_per_frame``: host RSS growth over the boot, minus the resident pages of the RAM
  arena itself (read from ``/proc/self/smaps``), divided by the number of frames: the
  metadata the machine keeps per frame (page tables, reverse map, ref/mod bits, the free
  frame store, the vm_page array and the vm_pages the buffer cache allocated);
- ``scan_us_per_page``: the ``scan`` benchmark (:func:`emu.benchmarks.scan.measure`) on that
  machine with the same number of inactive pages at every size, which must stay flat.

Rows: ``scale.SIZE`` per size (value: boot seconds), then ``scale`` (value: boot seconds at
the largest size), which passes when that boot takes < 10 s with <= 256 bytes of metadata
per frame, and its scan cost per page is within 1.5x of the smallest size's (small machines
pay fixed costs over few frames, so their bytes per frame are larger and not a target). The reference column of ``scale`` is the smallest size's boot time.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from emu.benchmarks import BenchResult, result

SIZES = ("16MiB", "256MiB", "4GiB", "16GiB")
TARGET_BOOT_S = 10.0
TARGET_BYTES = 256
TARGET_FLAT = 1.5
SWAP_PAGES = 16384


def _sizes(quick: bool, tiny: bool) -> tuple[tuple[str, ...], int, int]:
    """(RAM sizes, inactive pages scanned, scan repeats)."""
    if tiny:
        return ("1MiB", "4MiB"), 32, 1
    return (SIZES, 2048, 3) if quick else (SIZES, 2048, 7)  # 2048 pages fit in 16 MiB


def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _mapping_rss(addr: int) -> int:
    """Resident bytes of the mapping that contains ``addr`` (/proc/self/smaps)."""
    inside = False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split(maxsplit=1)[0]
            if "-" in head and not head.endswith(":"):
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo <= addr < hi
            elif inside and head == "Rss:":
                return int(line.split()[1]) * 1024
    return 0


def child(size: str, npages: int, repeats: int) -> dict[str, float]:
    """Boot one machine of ``size`` and measure it (runs in the child process)."""
    from emu.benchmarks._harness import BenchMachine
    from emu.benchmarks.scan import measure
    from emu.ram import parse_size

    nframes = parse_size(size)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        r0 = _rss()
        t0 = time.perf_counter()
        bm = BenchMachine(Path(tmp), nframes, SWAP_PAGES, bufcache=True)
        boot = time.perf_counter() - t0
        meta = _rss() - r0 - _mapping_rss(bm.ram.mem.ctypes.data)
        ours, _, _ = measure(bm, npages, repeats, reference=False)
    return {"frames": nframes, "boot_s": boot, "bytes_per_frame": meta / nframes,
            "scan_us_per_page": statistics.median(ours) * 1e6}  # fmt: skip


def _spawn(size: str, npages: int, repeats: int) -> dict[str, float]:
    cmd = [sys.executable, "-m", "emu.benchmarks.scale", size, str(npages), str(repeats)]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(f"scale: {' '.join(cmd[2:])} failed:\n{out.stderr[-2000:]}")
    d: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return d


def run(quick: bool, tiny: bool = False) -> list[BenchResult]:
    sizes, npages, repeats = _sizes(quick, tiny)
    rows: list[BenchResult] = []
    got: dict[str, dict[str, float]] = {}
    for size in sizes:
        d = got[size] = _spawn(size, npages, repeats)
        rows.append(result(
            f"scale.{size}", d["boot_s"], "s boot", None, "", None, lower_is_better=True,
            frames=int(d["frames"]), bytes_per_frame=round(d["bytes_per_frame"], 1),
            scan_us_per_page=round(d["scan_us_per_page"], 3),
            note=f"{d['bytes_per_frame']:.0f} B/frame, scan {d['scan_us_per_page']:.2f} µs/page",
        ))  # fmt: skip
    small, big = got[sizes[0]], got[sizes[-1]]
    flat = big["scan_us_per_page"] / small["scan_us_per_page"]
    meta = big["bytes_per_frame"]
    ok = big["boot_s"] < TARGET_BOOT_S and meta <= TARGET_BYTES and flat <= TARGET_FLAT
    rows.append(result(
        "scale", big["boot_s"], f"s boot ({sizes[-1]})", small["boot_s"],
        f"< {TARGET_BOOT_S:.0f} s, <= {TARGET_BYTES} B/frame, scan flat <= {TARGET_FLAT}x", ok,
        lower_is_better=True, bytes_per_frame=round(meta, 1), scan_flatness=round(flat, 3),
        note=f"{meta:.0f} B/frame; scan {sizes[-1]}/{sizes[0]} = {flat:.2f}x",
    ))  # fmt: skip
    return rows


if __name__ == "__main__":
    print(json.dumps(child(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
