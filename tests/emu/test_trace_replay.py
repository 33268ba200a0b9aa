"""Trace replay end to end: a lackey trace of a real program on a machine smaller than its
footprint (issue: trace replay; reference counts from the trace reader itself)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emu.machine import Machine
from emu.workloads.trace import DATA_DIR, open_trace


def _trace_facts(path: Path) -> tuple[int, int, int]:
    accesses = chunks = 0
    pages: set[int] = set()
    for v, _ in open_trace(path, "lackey"):
        accesses += len(v)
        chunks += 1
        pages.update(np.unique(v >> np.uint64(12)).tolist())
    return accesses, chunks, len(pages)


def test_ls_lackey_trace_replays_to_the_end_with_exact_fault_counts(tmp_path: Path) -> None:
    """/bin/ls under valgrind lackey (shipped): every distinct page is zero-filled exactly once;
    pages the daemon paged out come back as major faults; every access is replayed."""
    path = DATA_DIR / "ls.lackey.gz"
    accesses, chunks, distinct = _trace_facts(path)
    ram = 128
    assert distinct > 2 * ram, "the trace must not fit in RAM for this test to mean anything"
    m = Machine(ram=f"{ram}pages", swap="2048pages", seed=1, device="ssd", loop="asyncio", run_dir=tmp_path / "r")
    m.attach("trace_replay", name="ls", path=f"lackey:{path}", check_zero=1)
    s = m.run()
    assert s["outcome"] == "ok", s["error"]
    (w,) = s["workloads"]
    assert w["status"] == "ok", w["error"]
    assert w["accesses"] == accesses + chunks  # plus one zero-check load per chunk
    assert w["faults"]["zero_fill"] == distinct
    assert w["faults"]["major"] > 0
    assert s["uvmexp"]["pdpageouts"] > 0
    assert w["mismatches"] == 0 and w["pages_checked"] > 0
