"""emu.benchmarks.big: a big machine paging hard, end to end, in the default configuration.

A 256 MiB machine (1 GiB of swap, ``ssd`` model) and one ``hog`` that grows to 512 MiB in
steps of 8192 pages (``step_pages = 8192, max_pages = 131072``), writing the whole footprint
after each step, then reading every page back and checking it: about a million pages written
to swap and a million major faults. The kernel runs in the default configuration (no
``[kernel]`` section: DIAGNOSTIC, ``uvm_check`` after every daemon pass and aiodone batch,
the buffer cache; later defaults come with it), through the Python API, as a user's run does.
One repeat (it is long); the row is the wall seconds of ``Machine.run``, with its CPU time,
the virtual time covered, the faults and the pages written in the extras.

Target: <= 60 s. ``--quick`` runs the same machine and hog scaled down by 8 (32 MiB of RAM,
steps of 1024 pages up to 64 MiB): an eighth of the work, target <= 7.5 s. There is no
reference: the row is the time a user waits.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from emu.benchmarks import BenchResult, result
from emu.machine import Machine

TARGET_S = 60.0


def _sizes(quick: bool, tiny: bool) -> tuple[int, int, int, float]:
    """(RAM MiB, step pages, max pages, target seconds)."""
    if tiny:
        return 1, 64, 512, TARGET_S / 256
    return (32, 1024, 16384, TARGET_S / 8) if quick else (256, 8192, 131072, TARGET_S)


def run(quick: bool, tiny: bool = False) -> list[BenchResult]:
    ram_mib, step, maxp, target = _sizes(quick, tiny)
    with tempfile.TemporaryDirectory(prefix="bench-big-") as tmp:
        m = Machine(ram=f"{ram_mib}MiB", swap=f"{4 * ram_mib}MiB", device="ssd",
                    run_dir=Path(tmp) / "run")  # fmt: skip
        m.attach("hog", name="hog", step_pages=step, max_pages=maxp)
        t0, c0 = time.perf_counter(), time.process_time()
        s = m.run()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if s["outcome"] != "ok" or s["integrity"]["mismatches"]:
        raise RuntimeError(f"big: the run ended {s['outcome']} with "
                           f"{s['integrity']['mismatches']} mismatches: {s['error']}")  # fmt: skip
    u, written = s["uvmexp"], s["io"]["write_pages"]
    return [result(
        "big", wall, f"s wall ({ram_mib} MiB, hog {maxp * 4 // 1024} MiB)", None,
        f"<= {target:.4g} s", wall <= target, lower_is_better=True,
        cpu_s=round(cpu, 2), virtual_s=round(s["virtual_ns"] / 1e9, 3),
        flt_major=u["flt_major"], flt_zero=u["flt_zero"], pages_written=written,
        note=f"{u['flt_major'] / 1e3:.0f} k major faults, {written / 1e3:.0f} k pages "
             f"written, CPU {cpu:.1f} s",
    )]
