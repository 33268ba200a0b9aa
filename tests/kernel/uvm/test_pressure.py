"""Pressure test: 2x RAM of anonymous memory, a shared aobj region and a file mapping.

Runs the real daemon on the real machine with DIAGNOSTIC on and uvm_check after every daemon
pass and every aiodone batch (a violated invariant panics the run). Every workload verifies
the content stamp of every page it reads.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from emu.machine import Machine

RAM = 256


def test_pressure_keeps_free_above_reserve_clusters_pageouts_and_loses_nothing(
    tmp_path: Path,
) -> None:
    m = Machine(ram=f"{RAM}pages", swap="4096pages", seed=11, device="ssd", loop="asyncio", run_dir=tmp_path / "r",
                kernel={"diagnostic": True, "check_every_pass": True})  # fmt: skip
    m.attach("hog", name="hog", step_pages=32, max_pages=2 * RAM, sample=16)
    m.attach("shared_pair", name="shm0", region="shm", pages=64, rank=0, nprocs=2, accesses=800)
    m.attach("shared_pair", name="shm1", region="shm", pages=64, rank=1, nprocs=2, accesses=800)
    m.attach("file_rmw", name="file", file="f.dat", pages=64, passes=2)
    s = m.run()

    # uvm_check held after every pass (a violation is a panic: outcome would say so)
    assert s["outcome"] == "ok", s["error"]
    # every byte reads back intact
    assert s["integrity"]["mismatches"] == 0
    assert s["integrity"]["pages_checked"] > 2 * RAM
    assert all(w["status"] == "ok" for w in s["workloads"]), s["workloads"]

    evs = [orjson.loads(x) for x in (tmp_path / "r" / "events.jsonl").read_bytes().splitlines()]
    passes = [e for e in evs if e["event"] == "uvm_pageout.pass"]
    samples = [e for e in evs if e["event"] == "uvmexp.sample"]
    reserve_kernel = s["uvmexp"]["reserve_kernel"]

    # the daemon keeps free above reserve_kernel (user allocations stop at reserve_kernel + 1)
    assert min(e["free"] for e in passes + samples) > reserve_kernel

    # swap pageouts go out in clusters of up to 16 pages, most of them full
    sizes = [n for e in passes for n in e["clusters"]]
    assert sizes and max(sizes) == 16 and min(sizes) >= 1
    assert sizes.count(16) > len(sizes) // 2

    # clean pages are freed on a later pass: the first pass that pages out frees nothing it
    # wrote; frees of laundered pages come in later passes
    first_out = next(i for i, e in enumerate(passes) if e["pdpageouts"] > 0)
    assert any(e["pdfreed"] > 0 for e in passes[first_out + 1 :])
    assert s["uvmexp"]["pdfreed"] > 0 and s["faults"]["major"] > 0
    assert s["io"]["writes"] > 0 and s["io"]["reads"] > 0


def test_without_DIAGNOSTIC_the_daemon_skips_its_checks_and_still_loses_nothing(
    tmp_path: Path,
) -> None:
    """A kernel built without DIAGNOSTIC: no UNLOCK panic check, no uvm_check per pass or per
    aiodone batch; the daemon's decisions are the same kind and nothing is lost."""
    m = Machine(ram="128pages", swap="1024pages", seed=2, device="none", loop="asyncio",
                kernel={"diagnostic": False, "check_every_pass": False})  # fmt: skip
    m.attach("hog", name="hog", step_pages=32, max_pages=256, sample=16)
    m.attach("file_rmw", name="file", file="f.dat", pages=48, passes=2)
    s = m.run()
    assert s["outcome"] == "ok", s["error"]
    assert s["integrity"]["mismatches"] == 0 and s["integrity"]["pages_checked"] > 0
    assert s["uvmexp"]["pdpageouts"] > 0 and s["uvmexp"]["pdobscan"] > 0
