"""Golden test: the page daemon's decisions on a small fixed scenario, pass by pass.

The sequence of per-pass decisions (pdscans, pdreact, pdbusy, pdfreed, pdpageouts, pddeact and
the cluster sizes) is kept in ``golden/pdaemon_passes.json`` and compared on every run, so any
unintended change of the daemon's behaviour (or of the kernel around it) shows up here. After an
intended change, regenerate it with ``UPDATE_GOLDEN=1 make test`` and explain the diff in the
commit message.

The sequence is 1.105's with swap encryption off (``vm.swapencrypt.enable=0``): with it on, the
OOM bounce reserve takes 16 pages at boot and encrypted pageouts wait for bounce pages, which
is another sequence (tests/kernel/uvm/test_uvm_swap_encrypt.py runs the daemon with it on).

Why the C would decide the same for the first two passes (machine: 256 frames, no buffer
cache, so BUFPAGES_DEFICIT = BUFPAGES_INACT = 0):

- uvmpd_tune: freemin = max(256 / 30, 16 KiB) = 8, raised to reserve_kernel + 1 = 9;
  freetarg = 9 * 4 / 3 = 12. The stop target of the inactive scan is free + paging >=
  freetarg << 2 = 48.
- Pass 1 starts with free 9, inactive 0, active 247 (the hog and the shared region have
  faulted in every page they touched; faults activate pages). inactarg = 247 / 3 = 82
  (> freetarg). free - DEFICIT (9) < freetarg (12), so uvmpd_scan runs (M8). The inactive
  queue is empty: the loop never runs (I0d). inactive_shortage = 82 - 0 = 82 and no swap
  shortage (S4': swpginuse != swpages), so the active walk removes the mappings of the first
  82 active pages and deactivates them (A5): pddeact 82, pdscans 0, no pageout.
- Pass 2 starts with free 9, inactive 82, active 165; inactarg = (165 + 82) / 3 = 82. Every
  inactive page is a dirty anon or aobj page (the workloads wrote them; deactivation cleared
  PG_CLEAN from the modify bit), not referenced since (unmapped), not busy. Each one is
  busied, write-protected and added to a swap cluster of 16 slots (I11, I12b-d); each full
  cluster is one async pageout returning PEND (I12e, I16: paging += 16). After the third
  cluster free + paging = 9 + 48 >= 48: the done test stops the scan at the next page (I1a).
  So pdscans 48, pdpageouts 3, clusters [16, 16, 16], pdfreed 0 (nothing was clean yet).
  Then inactive_shortage = 82 - 82 = 0: no deactivation (A5').
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import orjson

from emu.machine import Machine

GOLDEN = Path(__file__).parent / "golden" / "pdaemon_passes.json"
FIELDS = ("pdscans", "pdreact", "pdbusy", "pdfreed", "pdpageouts", "pddeact", "clusters")


def _passes(tmp: Path) -> list[dict[str, object]]:
    m = Machine(ram="256pages", swap="1024pages", seed=3, device="none", loop="asyncio", run_dir=tmp / "run",
                kernel={"check_every_pass": True, "bufcache": False,
                        "swapencrypt": False})  # fmt: skip
    m.attach("hog", name="hog", step_pages=32, max_pages=320, sample=8)
    m.attach("shared_pair", name="shm", region="r", pages=96, rank=0, nprocs=1, accesses=600)
    s = m.run()
    assert s["outcome"] == "ok", s["error"]
    assert s["integrity"]["mismatches"] == 0
    out = []
    for line in (tmp / "run" / "events.jsonl").read_bytes().splitlines():
        e = orjson.loads(line)
        if e["event"] == "uvm_pageout.pass":
            out.append({f: e[f] for f in FIELDS})
    return out


def test_pdaemon_decisions_match_the_golden_sequence(tmp_path: Path) -> None:
    got = _passes(tmp_path)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text("[\n" + ",\n".join(json.dumps(p) for p in got) + "\n]\n")
    want = json.loads(GOLDEN.read_text())
    assert len(got) == len(want), f"{len(got)} passes, golden has {len(want)}"
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, f"pass {i + 1} differs: got {g}, golden {w}"


def test_first_two_passes_are_the_ones_the_docstring_derives(tmp_path: Path) -> None:
    p = _passes(tmp_path)
    assert p[0] == {"pdscans": 0, "pdreact": 0, "pdbusy": 0, "pdfreed": 0, "pdpageouts": 0,
                    "pddeact": 82, "clusters": []}  # fmt: skip
    assert p[1] == {"pdscans": 48, "pdreact": 0, "pdbusy": 0, "pdfreed": 0, "pdpageouts": 3,
                    "pddeact": 0, "clusters": [16, 16, 16]}  # fmt: skip
