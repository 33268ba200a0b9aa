"""emu.analyze: tables and plots of run directories written to docs/log-schema.md and
docs/summary-schema.md ("Must not crash on a run with no pageouts, no samples, or a run that
ended in deadlock/panic")."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import pytest
from rich.console import Console

from emu.analyze import analyze, load_run

PNG = b"\x89PNG\r\n\x1a\n"
NAMES = ["memory.png", "paging_rate.png", "clusters.png", "fault_latency.png"]


def _summary(outcome: str = "ok", workloads: bool = True) -> dict[str, Any]:
    wl = [{
        "name": "hog", "pid": 2, "kind": "hog", "accesses": 5000,
        "faults": {"zero_fill": 400, "soft": 30, "major": 12, "busy_wait": 1},
        "fault_latency_hist": {"1024": 400, "2048": 30, "262144": 12},
        "status": "ok", "error": None, "pages_checked": 300, "mismatches": 0,
    }] if workloads else []
    return {
        "schema": "uvm-emu/summary/1", "scenario": "test", "seed": 1, "loop": "asyncio",
        "outcome": outcome, "error": None if outcome == "ok" else "stuck: pagedaemon on free",
        "ram_pages": 512, "swap_pages": 2048, "virtual_ns": 2_000_000_000, "wall_s": 1.5,
        "uvmexp": {"faults": 443, "pdwoke": 3, "pdpageouts": 48, "free": 20},
        "faults": {"zero_fill": 400, "soft": 30, "major": 12, "busy_wait": 1},
        "io": {"writes": 6, "write_pages": 48, "reads": 12, "read_pages": 12, "errors": 0,
               "cluster_pages": {"8": 6} if workloads else {}},
        "integrity": {"pages_checked": 300, "mismatches": 0},
        "workloads": wl, "daemon": {"passes": 3, "scans": 3},
    }


def _events(full: bool = True) -> list[dict[str, Any]]:
    ev: list[dict[str, Any]] = [{
        "t_ns": 0, "event": "run.start", "proc": "kernel", "level": "info",
        "schema": "uvm-emu/events/1", "scenario": "test", "seed": 1, "ram_pages": 512,
        "swap_pages": 2048, "loop": "asyncio", "wall_start": "2026-01-01T00:00:00+00:00"}]
    if full:
        for i in range(20):
            ev.append({"t_ns": i * 100_000_000, "event": "uvmexp.sample", "proc": "sampler",
                       "level": "info", "free": 300 - 10 * i, "active": 100 + 5 * i,
                       "inactive": 50, "paging": i % 3, "wired": 10, "swpginuse": i,
                       "swpgonly": 0, "freemin": 16, "freetarg": 21, "inactarg": 120,
                       "pdpageouts": i, "nswget": 0, "faults": 20 * i})
        for i in range(3):
            ev.append({"t_ns": 500_000_000 + i * 1000, "event": "uvm_pageout.pass",
                       "proc": "pagedaemon", "level": "info", "pdrevs": 1, "pdscans": 40,
                       "pdreact": 2, "pdbusy": 0, "pdfreed": 16, "pdpageouts": 2,
                       "pdpending": 0, "pddeact": 30, "pdanscan": 40, "pdobscan": 0,
                       "pgswapout": 16, "pdswout": 0, "scanned": True, "pma": False,
                       "free": 30, "inactive": 80, "active": 200, "paging": 16,
                       "freetarg": 21, "inactarg": 120, "clusters": [8, 8]})
            ev.append({"t_ns": 500_000_100 + i * 1000, "event": "uvmpd_scan_inactive.pageout",
                       "proc": "pagedaemon", "level": "info", "swap": True, "swslot": 8 * i,
                       "npages": 8, "result": "PEND", "paging": 8})
        ev.append({"t_ns": 1_500_000_000, "event": "uvm_fault.pagein", "proc": "hog",
                   "level": "info", "pid": 2, "vaddr": 4096, "swslot": 3,
                   "latency_ns": 200_000, "ok": True})
        ev.append({"t_ns": 1_600_000_000, "event": "integrity.mismatch", "proc": "hog",
                   "level": "error", "vaddr": 8192, "expected": "stamp", "found": "zeros"})
    ev.append({"t_ns": 2_000_000_000, "event": "run.end", "proc": "kernel", "level": "info",
               "outcome": "ok", "virtual_ns": 2_000_000_000, "wall_s": 1.5})
    return ev


def make_run(d: Path, outcome: str = "ok", full: bool = True, tail: bytes = b"") -> Path:
    d.mkdir(parents=True)
    (d / "summary.json").write_bytes(orjson.dumps(_summary(outcome, full)))
    (d / "events.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in _events(full))
                                     + tail)
    return d


def _console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=200, color_system=None), buf


def test_analyze_prints_the_tables_and_writes_the_four_plots(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run1")
    con, buf = _console()
    paths = analyze(run, console=con)
    assert [p.name for p in paths] == NAMES
    for p in paths:
        assert p.parent == run and p.read_bytes().startswith(PNG) and p.stat().st_size > 5000
    text = buf.getvalue()
    for needle in ("outcome", "pdpageouts", "faults major", "pages checked", "hog",
                   "cluster size histogram", "integrity.mismatch", "<262µs"):
        assert needle in text, needle


def test_load_run_collects_samples_passes_pageouts_and_pageins(tmp_path: Path) -> None:
    r = load_run(make_run(tmp_path / "run1"))
    assert len(r.sample_t) == 20 and r.samples["freetarg"][0] == 21
    assert r.passes == 3 and r.pass_sums["pdfreed"] == 48 and r.clusters == {8: 6}
    assert r.pageout_pages == [8, 8, 8] and len(r.pagein_t) == 1
    assert r.start["schema"] == "uvm-emu/events/1" and r.end["outcome"] == "ok"


@pytest.mark.parametrize("outcome", ["deadlock", "panic", "error"])
def test_analyze_survives_a_run_with_no_samples_no_pageouts_and_a_bad_outcome(
        tmp_path: Path, outcome: str) -> None:
    run = make_run(tmp_path / "r", outcome, full=False, tail=b'{"t_ns": 5, "event": "uvm')
    con, buf = _console()
    paths = analyze(run, console=con)
    assert all(p.read_bytes().startswith(PNG) for p in paths)
    assert outcome in buf.getvalue() and load_run(run).bad_lines == 1


def test_analyze_of_a_directory_without_log_or_summary_does_not_crash(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    con, buf = _console()
    assert len(analyze(tmp_path / "empty", console=con)) == 4
    assert "unknown" in buf.getvalue()


def test_two_runs_are_compared_side_by_side(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a")
    b = make_run(tmp_path / "b", "deadlock", full=False)
    con, buf = _console()
    paths = analyze(a, b, console=con)
    # issue 12 item 19: beside the runs, named after both, never inside the first run
    assert {p.parent for p in paths} == {tmp_path / "compare-a-vs-b"}
    assert "deadlock" in buf.getvalue() and "workloads: b" in buf.getvalue()
    paths = analyze(a, b, out=tmp_path / "cmp", console=con)
    assert all(p.parent == tmp_path / "cmp" and p.exists() for p in paths)


def test_plots_false_prints_tables_only(tmp_path: Path) -> None:
    run = make_run(tmp_path / "r")
    con, _ = _console()
    assert analyze(run, plots=False, console=con) == []
    assert not (run / "memory.png").exists()


def test_runs_are_labelled_by_their_real_names(tmp_path: Path) -> None:
    """Issue 12 item 19: `runs/latest` shows as the run it points at."""
    a = make_run(tmp_path / "default-s1-1")
    b = make_run(tmp_path / "default-s2-1")
    (tmp_path / "latest").symlink_to(a.name)
    con, buf = _console()
    paths = analyze(tmp_path / "latest", b, console=con)
    text = buf.getvalue()
    assert "default-s1-1" in text and "latest" not in text
    assert {p.parent for p in paths} == {tmp_path / "compare-default-s1-1-vs-default-s2-1"}
    assert not list(a.glob("compare-*"))


def test_a_run_killed_before_its_summary_is_shown_from_its_log(tmp_path: Path) -> None:
    """Issue 12 item 10: no summary.json (SIGKILL): what the log holds, said to be unfinished."""
    run = make_run(tmp_path / "killed", tail=b'{"t_ns": 1900000000, "event": "uvm_fau')
    (run / "summary.json").unlink()
    r = load_run(run)
    assert not r.finished and r.bad_lines == 1
    assert r.summary["outcome"] == "did not finish" and r.summary["scenario"] == "test"
    assert r.summary["uvmexp"]["free"] == 300 - 10 * 19, "the last uvmexp.sample"
    con, buf = _console()
    analyze(run, console=con, plots=False)
    assert "the run did not finish" in buf.getvalue()
