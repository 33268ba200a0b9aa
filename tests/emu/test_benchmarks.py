"""The benchmark suite's structure: every registered benchmark runs in its tiny mode (tiny
sizes, one repeat) and returns well-formed rows; ``emu bench --json`` writes the documented
shape. No timing is asserted anywhere: figures from a shared machine are not test material."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from emu.benchmarks import MODULES, BenchResult, encryption_costs, interleaved, load, result, spread
from emu.cli import main

JSON_KEYS = {"value", "unit", "reference", "ratio", "target", "pass"}
# the rows each benchmark must produce (scale: one per size, then the summary)
ROWS = {name: [name] for name in MODULES}
ROWS["scale"] = ["scale.1MiB", "scale.4MiB", "scale"]


def _check_row(r: BenchResult) -> None:
    assert isinstance(r, BenchResult)
    assert r.name and isinstance(r.unit, str) and r.unit
    assert math.isfinite(r.value) and r.value >= 0
    if r.reference is None:
        assert r.ratio is None
    else:
        assert math.isfinite(r.reference) and r.reference > 0
        # the ratio is printed to 3 decimals
        assert r.ratio is not None and math.isclose(r.ratio, r.value / r.reference, rel_tol=2e-3, abs_tol=1e-3)
    assert r.passed in (None, True, False)
    assert (r.passed is None) == (r.target == "") or r.name == "scale"
    assert r.spread >= 0
    d = r.as_json()
    assert JSON_KEYS <= set(d)
    json.dumps(d)  # plain JSON values only


@pytest.mark.parametrize("name", list(MODULES))
def test_each_benchmark_returns_well_formed_rows_in_tiny_mode(name: str) -> None:
    rows = load(name)(False, tiny=True)
    assert [r.name for r in rows] == ROWS[name]
    for r in rows:
        _check_row(r)


def test_the_pageout_rows_report_the_daemons_work_per_page_written() -> None:
    """Both pageout rows carry the uvmexp counters of pageout.KERNEL_COUNTERS per page written,
    so a cost ratio between them can be told apart from a change in what the kernel did."""
    from emu.benchmarks.pageout import KERNEL_COUNTERS

    for row in load("pageout")(False, tiny=True) + load("pageout_plain")(False, tiny=True):
        per_page = {n: row.extra[f"{n}_per_page"] for n in KERNEL_COUNTERS}
        assert per_page["pdscans"] >= 1  # every page written was scanned at least once
        assert 0 < per_page["pdpageouts"] <= 1 and per_page["pdrevs"] > 0


def test_the_suite_covers_the_issue_and_every_entry_resolves() -> None:
    want = {"access", "load_store", "fault_zero", "fault_soft", "fault_major", "pageout", "scan",
            "trace", "scale", "run"}  # fmt: skip
    assert want <= set(MODULES)
    for name in MODULES:
        assert callable(load(name))


def test_bench_json_has_the_documented_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    fake = [result("access", 50.0, "M accesses/s", 60.0, ">= 0.6x", True, 0.1, note="n"),
            result("run", 3.0, "s wall", None, "", None, lower_is_better=True)]  # fmt: skip
    monkeypatch.setattr("emu.benchmarks.load", lambda name: lambda quick, tiny=False: fake)
    out = tmp_path / "b" / "bench.json"
    assert main(["bench", "--quick", "--only", "access", "--json", str(out), "--quiet"]) == 0
    data = json.loads(out.read_text())
    assert set(data) == {"benchmarks"}
    assert set(data["benchmarks"]) == {"access", "run"}
    for row in data["benchmarks"].values():
        assert JSON_KEYS <= set(row)
    assert data["benchmarks"]["access"]["pass"] is True
    assert data["benchmarks"]["run"]["reference"] is None
    table = capsys.readouterr().out
    assert "access" in table and "pass" in table


def test_bench_refuses_an_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--only", "nosuch"]) == 2
    assert "nosuch" in capsys.readouterr().err


def test_helpers() -> None:
    assert spread([1.0, 2.0, 3.0]) == 1.0
    assert spread([5.0]) == 0.0
    calls: list[str] = []
    times = interleaved({"a": lambda: calls.append("a") or 1.0,
                         "b": lambda: calls.append("b") or 2.0}, 3)  # fmt: skip
    assert times == {"a": [1.0] * 3, "b": [2.0] * 3}
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then rotating order
    r = result("x", 123456.0, "u", 2.0, ">= 1x", True)
    assert r.value == 123500.0 and r.ratio == 61730.0


def test_emu_bench_reports_what_encryption_costs_each_row_measured_both_ways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """pageout: k pages per CPU second, so the cost is plain / on; fault_major: CPU µs per
    fault from its extra field, on / plain. A row measured one way only has no cost."""
    fake = [result("pageout", 40.0, "k pages/CPU s", 900.0, ">= 0.5x", False),
            result("pageout_plain", 64.0, "k pages/CPU s", 900.0, ">= 0.5x", False),
            result("fault_major", 18.0, "k faults/s", 90.0, ">= 30 k/s", False, cpu_us_per_fault=84.0),
            result("fault_major_plain", 20.0, "k faults/s", 90.0, ">= 30 k/s", False, cpu_us_per_fault=70.0),
            result("fault_zero", 60.0, "k faults/s", 200.0, ">= 100 k/s", False)]  # fmt: skip
    assert encryption_costs(fake) == {"pageout": 1.6, "fault_major": 1.2}
    assert encryption_costs(fake[2:]) == {"fault_major": 1.2}
    assert encryption_costs(fake[4:]) == {}
    monkeypatch.setattr("emu.benchmarks.load", lambda name: lambda quick, tiny=False: fake)
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--only", "pageout", "--json", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "swap encryption costs 1.60x on pageout" in printed and "SHORT" in printed
    assert "swap encryption costs 1.20x on fault_major" in printed
    assert json.loads(out.read_text())["encryption_cost"] == {
        "pageout": 1.6, "fault_major": 1.2, "target_below": 1.5}


def test_ctrl_c_stops_emu_bench_inside_a_replay_that_never_yields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A benchmark machine's replay runs in one event-loop step (its swap reads complete
    inline), so asyncio.Runner's Ctrl-C, which only cancels the loop's task, was not heard
    until the replay ended and the bench went on. ``emu bench`` raises KeyboardInterrupt at
    once instead: the replay never finishes, nothing is written, the status is 130."""
    import os
    import signal
    import threading

    from emu.benchmarks import trace_miss

    pages, writes = trace_miss.make_stream(512, 60_000)  # a few seconds of replay
    finished: list[bool] = []

    def replay(quick: bool, tiny: bool = False) -> list[BenchResult]:
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
        trace_miss._ours(tmp_path / "m", pages, writes, 512)
        finished.append(True)
        return []

    monkeypatch.setattr("emu.benchmarks.load", lambda name: replay)
    out = tmp_path / "bench.json"
    assert main(["bench", "--only", "trace_miss", "--json", str(out), "--quiet"]) == 130
    assert not finished and not out.exists()
    assert "emu: bench interrupted by SIGINT" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
