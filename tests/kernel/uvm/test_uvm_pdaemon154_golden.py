"""Golden test: the 1.154 daemon's decisions on a small fixed scenario, pass by pass.

The scenario is the 1.105 golden's (test_uvm_pdaemon_golden.py: 256 frames, no buffer cache,
a hog and a shared region, seed 3, swap encryption off as there), booted with
``pdaemon = "1.154"`` and a scheduling
quantum of 2 us (``yield_ns``, one daemon pass): 1.154 does not sleep while a thread is
counted in uvm_wait, and with the default 1 ms quantum each wait would cost some 500 idle
passes before the waiter runs (docs/pdaemon-1.154.md §5, question 1); with one pass per
quantum the sequence stays short and every decision is still in it. Each pass's shortage
and inactive shortage (as logged, N-M4-N-M12) and its counters (pdscans, pdreact, pdbusy,
pdfreed, pdpageouts, pddeact, the cluster sizes) are kept in
``golden/pdaemon154_passes.json``, one line per run of identical consecutive passes
(``[count, shortage, inactive_shortage, pdscans, pdreact, pdbusy, pdfreed, pdpageouts,
pddeact, clusters]``), and compared on every run. After an intended change, regenerate it
with ``UPDATE_GOLDEN=1`` and explain the diff in the commit message.

Why the C (uvm_pdaemon.c 1.154) decides the same for the first four passes (checked by hand
against the C; freemin 9, freetarg 12, BUFPAGES_DEFICIT = BUFPAGES_INACT = 0):

- Pass 1 starts as 1.105's does: free 9, inactive 0, active 247. No request: no_constraint,
  size 0 (lines 239-241). shortage = 12 - 9 + 0 = 3 (243). inactarg = 247 / 3 = 82 > 12
  (250-256); inactive_shortage = 82 - 0 - 0 = 82 (257-260). size = 3 (263), bufbackoff
  recovers 0 (no cache, 268), uvm_pmr_cache_drain 0 (273): shortage 3. uvmpd_scan (283):
  the inactive queue is empty, so uvmpd_scan_inactive returns 0 at once (598-599); swap is
  not filled (0 + 16 < 1024): no swap shortage (880); the active walk deactivates 82 pages
  (940-946). Logged: shortage 3, inactive_shortage 82, pddeact 82, nothing written.
- Pass 2 (the hog waits in uvm_wait, so no sleep, line 230): free 9, inactive 82, active
  165: shortage 3, inactarg (165 + 82) / 3 = 82, inactive_shortage 0. The inactive scan
  takes the first dirty pages into a swap cluster; after three, paging + nused = 3 >= 3 -
  0 stops it (607), and the cluster of 3 is written after the loop (831-840: pdpageouts +1
  once, paging 3). Logged: pdscans 3, pdpageouts 1, clusters [3]; the walk has nothing to do.
- Pass 3: with one pass per quantum aiodoned has finished the write (the pages are clean,
  paging 0): the scan frees the three (674-702) and stops when paging + nused >= 3 - 3
  (607): pdscans 3, pdfreed 3 (added by uvmpd_scan, 869).
- Pass 4: free 12: shortage 0; inactive 79, active 165: inactarg 244 / 3 = 81,
  inactive_shortage 2: the inactive scan stops before the first page (607: 0 >= 0), the
  walk deactivates 2. Logged: shortage 0, inactive_shortage 2, pddeact 2.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from emu.machine import Machine

GOLDEN = Path(__file__).parent / "golden" / "pdaemon154_passes.json"
FIELDS = (
    "shortage", "inactive_shortage", "pdscans", "pdreact", "pdbusy", "pdfreed", "pdpageouts",
    "pddeact", "clusters",
)  # fmt: skip


def _passes(tmp: Path) -> list[list[Any]]:
    m = Machine(ram="256pages", swap="1024pages", seed=3, device="none", loop="asyncio",
                run_dir=tmp / "run", kernel={"check_every_pass": True, "bufcache": False,
                                             "pdaemon": "1.154", "yield_ns": 2_000,
                                             "swapencrypt": False})  # fmt: skip
    m.attach("hog", name="hog", step_pages=32, max_pages=320, sample=8)
    m.attach("shared_pair", name="shm", region="r", pages=96, rank=0, nprocs=1, accesses=600)
    s = m.run()
    assert s["outcome"] == "ok", s["error"]
    assert s["integrity"]["mismatches"] == 0 and s["pdaemon"] == {"name": "1.154"}
    out = []
    for line in (tmp / "run" / "events.jsonl").read_bytes().splitlines():
        e = orjson.loads(line)
        if e["event"] == "uvm_pageout.pass":
            out.append([e[f] for f in FIELDS])
    return out


@pytest.fixture(scope="module")
def passes(tmp_path_factory: pytest.TempPathFactory) -> list[list[Any]]:
    return _passes(tmp_path_factory.mktemp("golden154"))


def _runs(passes: list[list[Any]]) -> list[list[Any]]:
    """Consecutive identical passes as [count, *fields]."""
    return [[len(list(g)), *p] for p, g in itertools.groupby(passes)]


def test_pdaemon154_decisions_match_the_golden_sequence(passes: list[list[Any]]) -> None:
    got = _runs(passes)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text("[\n" + ",\n".join(json.dumps(r) for r in got) + "\n]\n")
    want = json.loads(GOLDEN.read_text())
    assert sum(r[0] for r in got) == sum(r[0] for r in want), "number of passes"
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, f"run {i + 1} of identical passes differs: got {g}, golden {w}"


def test_first_four_passes_are_the_ones_the_docstring_derives(passes: list[list[Any]]) -> None:
    assert passes[:4] == [
        [3, 82, 0, 0, 0, 0, 0, 82, []],
        [3, 0, 3, 0, 0, 0, 1, 0, [3]],
        [3, 0, 3, 0, 0, 3, 0, 0, []],
        [0, 2, 0, 0, 0, 0, 0, 2, []],
    ]
