"""The I/O-error sweep and the soak (issue #6, items 4 and 6; docs/reliability.md).

The sweep fails each swap I/O of a scenario in turn (``device.fail_nth_io = k``) and asks of
every run: outcome ``ok`` (or exactly the process error a failed read implies), no integrity
mismatch, ``uvm_check`` clean with DIAGNOSTIC and check_every_pass, no hang.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from emu.cli import main
from emu.reliability import audited_run, sweep
from emu.scenario import ScenarioError, load_scenario
from emu.soak import soak


def test_fail_nth_io_counts_exactly_the_summary_io_of_an_audited_run() -> None:
    """devices/faults.py: fail_nth_io counts "the n-th request the device accepts"; the
    summary's io.writes + io.reads counts completed requests. The auditor waits for every
    request to complete, so the two agree; file I/O is in neither (its disk has no faults)."""
    sc = load_scenario("small")
    s, audit, m = audited_run(sc)
    assert s["outcome"] == "ok" and audit.check == "ok"
    assert m.kernel is not None
    disk = m.kernel.md.swapdevs[0]
    assert disk.faults is not None
    assert disk.faults.nio == len(audit.ios) == s["io"]["writes"] + s["io"]["reads"]
    assert 150 <= len(audit.ios) <= 400, "small has a few hundred I/Os"
    assert {w for w, _, _ in filter(None, audit.ios)} == {True, False}
    assert s["uvmexp"]["pdpageouts"] > 0 and s["faults"]["major"] > 0


def test_full_sweep_of_tiny_every_run_is_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The whole sweep through the CLI: exit 0, a table, and one JSON row per I/O."""
    out = tmp_path / "sweep.json"
    rc = main(["ioerr-sweep", "tiny", "--json", str(out)])
    text = capsys.readouterr().out
    rep = json.loads(out.read_text())
    assert rc == 0, text[-2000:]
    rows = rep["rows"]
    assert rep["ios"] == rep["summary_ios"] == len(rows) >= 80
    assert [r["k"] for r in rows] == list(range(1, len(rows) + 1))
    for r in rows:
        assert r["clean"], r
        assert r["outcome"] == "ok" and r["mismatches"] == 0 and r["uvm_check"] == "ok"
        assert not r["hung"]
        if r["io"] == "write":
            assert r["failed"] == [] and r["bad_slots"] == r["npages"]
        else:
            assert len(r["failed"]) == 1 and ": BusError" in r["failed"][0]
    kinds = {r["io"] for r in rows}
    assert kinds == {"read", "write"}
    assert rep["totals"]["hung"] == 0 and rep["totals"]["mismatches"] == 0
    assert "swept" in text and "0 unclean" in text


def test_sweep_with_stride_and_max_runs_spreads_the_runs() -> None:
    rep = sweep(load_scenario("tiny"), stride=7, max_runs=4)
    ks = list(range(1, rep.ios + 1, 7))
    assert [r.k for r in rep.rows] == [ks[i * len(ks) // 4] for i in range(4)]
    assert rep.clean


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["device.fail_write_rate=0.01"], "device.fail_write_rate"),
        (["machine.swap_devices=2"], "one swap device"),
    ],
)
def test_sweep_refuses_a_scenario_it_cannot_sweep(overrides: list[str], needle: str) -> None:
    with pytest.raises(ScenarioError, match=needle):
        sweep(load_scenario("tiny", overrides))


def test_soak_one_short_run_reports_pages_checked_and_no_problem(capsys: pytest.CaptureFixture[str]) -> None:
    """``emu soak --minutes 0.01``: at least one run; exit 0; the figures are printed."""
    rc = main(["soak", "--minutes", "0.001", "--seed", "2"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "soak: 1 runs" in out and "0 mismatches" in out and "host RSS" in out
    assert "soak: ok" in out


def test_soak_of_a_clean_scenario_is_ok_and_measures_the_host() -> None:
    rep = soak(load_scenario("tiny"), minutes=0, seed=1, out=io.StringIO())
    assert rep.runs == 1 and rep.ok and rep.pages_checked > 0 and rep.mismatches == 0
    assert rep.rss_first_kib > 0 and rep.fds_end == rep.fds_first


def test_soak_fails_on_a_process_that_crashes_and_on_a_run_that_does_not_end() -> None:
    """Only a BusError after an injected fault is an expected process end; anything else,
    and any outcome but ok, is a problem that makes `emu soak` exit 1."""
    # each param is valid on its own; the workload refuses the pair when it runs
    data = {"machine": {"ram": "128pages", "swap": "512pages", "loop": "asyncio"},
            "workload": [{"kind": "phase_shift", "name": "bad", "pages": 8,
                          "working_set": 16}]}  # fmt: skip
    rep = soak(load_scenario(data), minutes=0, out=io.StringIO())
    assert not rep.ok and "process bad: ValueError" in rep.problems[0]
    data["workload"] = [{"kind": "hog", "name": "hog", "max_pages": 256}]
    data["machine"]["max_virtual_ns"] = 100_000
    rep = soak(load_scenario(data), minutes=0, out=io.StringIO())
    assert not rep.ok and "outcome limit" in rep.problems[0]  # issue 12 item 16: a limit


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["ioerr-sweep", "nosuch"], "no such file and no built-in"),
        (["ioerr-sweep", "tiny", "--stride", "0"], "--stride"),
        (["ioerr-sweep", "soak"], "device.fail_write_rate"),
        (["ioerr-sweep", "tiny", "--json", "/proc/no/such/dir/sweep.json"], "--json"),
        (["soak", "--minutes", "-1"], "--minutes"),
    ],
)
def test_bad_input_exits_2_before_any_run(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 2 and needle in err and err.count("\n") == 1 and out == ""
