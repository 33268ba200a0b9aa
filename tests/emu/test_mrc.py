"""emu mrc: our kernel's miss-ratio curve beside libCacheSim's, on exactly the same page stream."""

from __future__ import annotations

import json
from pathlib import Path

import libcachesim as lcs
import numpy as np
import pytest

from emu.cli import main
from emu.config import KernelSection
from emu.mrc import POLICIES, next_access, page_stream
from emu.workloads.trace import DATA_DIR, open_trace

LIMIT = 60_000
TRACE = f"lackey:{DATA_DIR / 'ls.lackey.gz'}"


def _direct(policy: str, pages: list[int], frames: int) -> int:
    """Misses of a libCacheSim policy fed one request at a time (no trace file)."""
    nxt: dict[int, int] = {}
    after = [0] * len(pages)
    for i in range(len(pages) - 1, -1, -1):  # next access, the slow obvious way
        after[i] = nxt.get(pages[i], 2**63 - 1)
        nxt[pages[i]] = i
    cache = POLICIES[policy](cache_size=frames)
    req = lcs.Request()
    misses = 0
    for i, p in enumerate(pages):
        req.obj_id, req.obj_size, req.clock_time, req.next_access_vtime = p, 1, i, after[i]
        misses += not cache.get(req)
    return misses


@pytest.fixture(scope="module")
def mrc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("mrc")
    rc = main(["mrc", TRACE, "--ram", "256KiB..640KiB", "--points", "3", "--out", str(out / "d"),
               "--json", str(out / "mrc.json"), "--jobs", "2",
               "--set", f"workload.trace.limit={LIMIT}"])  # fmt: skip
    assert rc == 0
    doc: dict[str, object] = json.loads((out / "mrc.json").read_text())
    doc["dir"] = str(out / "d")
    return doc


def test_the_json_has_frames_accesses_and_a_curve_per_daemon_and_policy(mrc: dict) -> None:
    assert mrc["frames"] == [64, 112, 160]
    assert mrc["accesses"] == LIMIT
    assert set(mrc["curves"]) == {"uvm-1.105", "lru", "clock", "arc", "s3fifo", "belady"}
    for ys in mrc["curves"].values():
        assert len(ys) == 3 and all(0 <= y <= 1 for y in ys)
    d = Path(mrc["dir"])
    assert (d / "mrc.png").exists() and (d / "mrc.csv").exists()
    summary = json.loads(next((d / "cells").glob("*/summary.json")).read_text())
    (w,) = summary["workloads"]
    assert w["accesses"] == LIMIT, "the stream is what the workload touched"


def test_the_references_are_libcachesim_on_that_very_stream(mrc: dict) -> None:
    v = np.concatenate([c[0] for c in open_trace(TRACE)])[:LIMIT]
    pages = (v >> np.uint64(12)).tolist()
    assert page_stream({"path": TRACE, "limit": LIMIT}).tolist() == pages
    for policy in ("lru", "clock", "arc", "s3fifo", "belady"):
        want = [_direct(policy, pages, f) / LIMIT for f in mrc["frames"]]
        assert mrc["curves"][policy] == want, policy


def test_our_curve_is_never_below_belady(mrc: dict) -> None:
    ours, opt = mrc["curves"]["uvm-1.105"], mrc["curves"]["belady"]
    assert all(o >= b for o, b in zip(ours, opt, strict=True))
    assert ours[0] > mrc["curves"]["lru"][0], "the kernel keeps pages for itself"


def test_next_access_is_the_index_of_the_next_same_page() -> None:
    pages = np.array([5, 7, 5, 5, 9, 7], np.uint64)
    assert next_access(pages).tolist() == [2, 5, 3, -1, -1, -1]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--ram", "2MiB..256KiB"], "LO <= HI"),
        (["--ram", "256..512KiB"], "--ram '256..512KiB'"),
        (["--ram", "256KiB..512KiB", "--ref", "lru,nosuch"], "--ref 'nosuch'"),
        (["--ram", "256KiB..512KiB", "--points", "0"], "--points 0"),
    ],
)
def test_bad_mrc_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               argv: list[str], needle: str) -> None:  # fmt: skip
    assert main(["mrc", TRACE, "--out", str(tmp_path / "o"), *argv]) == 2
    assert needle in capsys.readouterr().err
    assert main(["mrc", "lackey:/no/such.gz", "--ram", "1MiB..2MiB", "--out",
                 str(tmp_path / "o")]) == 2  # fmt: skip
    assert "no such trace file" in capsys.readouterr().err


@pytest.mark.skipif("pdaemon" not in KernelSection.__struct_fields__,
                    reason="kernel.pdaemon (issue 13) has not landed on this branch")
def test_one_curve_per_daemon_variant(tmp_path: Path) -> None:
    rc = main(["mrc", TRACE, "--ram", "256KiB..256KiB", "--points", "1", "--out",
               str(tmp_path / "d"), "--json", str(tmp_path / "m.json"), "--jobs", "2",
               "--pdaemon", "1.105,1.154", "--ref", "belady",
               "--set", f"workload.trace.limit={LIMIT}"])  # fmt: skip
    assert rc == 0
    curves = json.loads((tmp_path / "m.json").read_text())["curves"]
    assert set(curves) == {"uvm-1.105", "uvm-1.154", "belady"}
