"""emu compare: N runs against the first, read from run directories only (issue 13 item 3).

Real runs of the tiny and small scenarios (a few seeds) are compared; every number is checked
against the runs' own summary.json and event log, and bad input exits 2."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
import zstandard
from rich.console import Console

from emu import compare as cmp
from emu.analyze import load_run
from emu.cli import main
from emu.machine import Machine
from emu.probes import WaitProbe
from emu.scenario import load_scenario
from kernel.uvm import uvm_pdaemon

PNG = b"\x89PNG\r\n\x1a\n"
PLOTS = ("memory.png", "pageouts.png", "fault_latency.png")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """small seed 1 (the baseline), small seed 2, tiny: real runs through `emu run`."""
    base = tmp_path_factory.mktemp("runs")
    dirs = []
    for name, seed in (("small", 1), ("small", 2), ("tiny", 7)):
        d = base / f"{name}-s{seed}"
        rc = main(["run", name, "--seed", str(seed), "--run-dir", str(d), "--quiet"])
        assert rc == 0
        dirs.append(d)
    return dirs


def _summary(d: Path) -> dict[str, Any]:
    return json.loads((d / "summary.json").read_text())


def _events(d: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (d / "events.jsonl").read_bytes().splitlines()]


def _quiet() -> Console:
    return Console(file=io.StringIO(), width=400)


def _text(runs: list[cmp.Run]) -> str:
    con = _quiet()
    con.print(cmp.table(runs))
    out = con.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


def _percentile(hist: dict[str, int], pct: int) -> int:
    """Nearest rank over the expanded sample, each latency standing for its bucket bound."""
    sample = sorted(int(b) for b, n in hist.items() for _ in range(n))
    return sample[-(-pct * len(sample) // 100) - 1]


def test_metrics_are_the_summaries_numbers(runs: list[Path]) -> None:
    for r, d in zip(cmp.load_runs(runs), runs, strict=True):
        s, m = _summary(d), r.metrics
        assert r.name == d.name and r.pdaemon == "1.105" and r.status == "ok" and r.complete
        assert m["pageouts"] == s["uvmexp"]["pdpageouts"] > 0
        assert m["pages_written"] == s["io"]["write_pages"]
        assert (m["swap_writes"], m["swap_reads"]) == (s["io"]["writes"], s["io"]["reads"])
        assert m["faults_major"] == s["faults"]["major"] > 0
        assert m["faults_zero_fill"] == s["faults"]["zero_fill"]
        for k in ("pdscans", "pdfreed", "pdreact", "pdbusy"):
            assert m[k] == s["uvmexp"][k]
        assert (m["waits"], m["wait_ns"]) == (s["waits"]["count"], s["waits"]["total_ns"])
        assert m["virtual_ns"] == s["virtual_ns"]
        first = next(e["t_ns"] for e in _events(d) if e["event"] == "uvmpd_scan_inactive.pageout")
        assert m["first_pageout_ns"] == first
        hist: dict[str, int] = {}
        for w in s["workloads"]:
            for b, n in w["fault_latency_hist"].items():
                hist[b] = hist.get(b, 0) + n
        assert m["fault_p50_ns"] == _percentile(hist, 50)
        assert m["fault_p99_ns"] == _percentile(hist, 99)


def test_waits_count_the_calls_of_uvm_wait(runs: list[Path]) -> None:
    """summary.json's waits: every call of k.pdaemon.uvm_wait, by wmesg (small pages hard
    enough that faults find no free page)."""
    w = _summary(runs[0])["waits"]
    assert w["count"] == sum(w["by_wmesg"].values()) > 0
    assert set(w["by_wmesg"]) <= {"flt_noram1", "flt_noram3", "flt_pmfail1", "flt_pmfail2",
                                  "uvm_pmr_getpages", "uvn_getpage", "uao_getpage"}
    assert w["total_ns"] > 0  # small's faulting processes are held up (tiny's are not)


def test_the_wait_probe_leaves_the_daemon_as_it_is() -> None:
    """k.pdaemon is the probe after boot: the daemon's own module behind it, every other
    attribute passed through unchanged."""
    m = Machine.from_scenario(load_scenario("tiny"))
    s = m.run()
    assert m.kernel is not None
    probe = m.kernel.pdaemon
    assert isinstance(probe, WaitProbe) and probe.inner is uvm_pdaemon
    assert probe.uvmpd_tune is uvm_pdaemon.uvmpd_tune
    assert s["waits"] == probe.as_summary() and s["waits"]["count"] > 0


@pytest.mark.parametrize("pct", [0, 1, 50, 99, 100])
def test_latency_percentile_reads_the_bucket_that_holds_the_rank(pct: int) -> None:
    hist = {"1024": 50, "2048": 49, "262144": 1}
    assert cmp.latency_percentile(hist, pct) == _percentile(hist, max(pct, 1))
    assert cmp.latency_percentile({}, pct) is None


def test_differences_and_ratios_are_against_the_first_run(runs: list[Path]) -> None:
    rs = cmp.load_runs(runs)
    doc = cmp.to_json(rs)
    assert doc["baseline"] == runs[0].name
    base = rs[0].metrics
    for r, j in zip(rs, doc["runs"], strict=True):
        for k, v in r.metrics.items():
            if base[k] is None or v is None:
                assert j["delta"][k] is None and j["ratio"][k] is None
                continue
            assert j["delta"][k] == v - base[k]
            assert j["ratio"][k] == (pytest.approx(v / base[k]) if base[k] else None)
    assert all(q in (1.0, None) for q in doc["runs"][0]["ratio"].values())
    assert cmp.versus(0, 5) == (5, None) and cmp.versus(None, 5) == (None, None)


def test_cli_writes_json_plots_and_the_table(
    runs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, jp = tmp_path / "plots", tmp_path / "cmp.json"
    rc = main(["compare", *map(str, runs), "--out", str(out), "--json", str(jp)])
    text = capsys.readouterr().out
    assert rc == 0
    for r in runs:
        assert r.name in text
    for label in ("pageouts (pdpageouts)", "fault latency p99", "time to first pageout", "×"):
        assert label in text
    doc = json.loads(jp.read_text())
    assert [r["name"] for r in doc["runs"]] == [r.name for r in runs]
    for r, d in zip(doc["runs"], runs, strict=True):
        assert {"name", "pdaemon", "metrics"} <= set(r) and r["pdaemon"] == "1.105"
        assert list(r["metrics"]) == [m.key for m in cmp.METRICS]
        assert r["metrics"]["pageouts"] == _summary(d)["uvmexp"]["pdpageouts"]
    for name in PLOTS:
        data = (out / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 5000, name
        assert f"plot: {out / name}" in text


def test_one_run_is_a_one_column_table(runs: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(runs[2]), "--no-plots"]) == 0
    text = capsys.readouterr().out
    assert runs[2].name in text and "(baseline)" in text and "Δ" not in text


def test_default_out_is_a_new_directory_outside_the_runs(
    runs: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(runs[1])  # inside a run directory: the plots go beside it
    paths = cmp.compare(runs[:2], console=_quiet())
    outdir = paths[0].parent
    assert outdir == runs[1].parent / "compare-1" and {p.name for p in paths} == set(PLOTS)
    assert cmp.compare(runs[:2], console=_quiet())[0].parent.name == "compare-2"
    shutil.rmtree(runs[1].parent / "compare-1")
    shutil.rmtree(runs[1].parent / "compare-2")


def test_daemon_name_comes_from_the_summary(runs: list[Path], tmp_path: Path) -> None:
    d = tmp_path / "other"
    shutil.copytree(runs[0], d)
    s = _summary(d)
    s["pdaemon"] = "1.154"
    (d / "summary.json").write_text(json.dumps(s))
    a, b = cmp.load_runs([runs[0], d])
    assert (a.pdaemon, b.pdaemon) == ("1.105", "1.154")
    assert b.metrics == a.metrics and "1.154" in _text([a, b])


def test_same_directory_name_twice_gets_distinct_labels(runs: list[Path], tmp_path: Path) -> None:
    d = tmp_path / "x" / runs[0].name
    shutil.copytree(runs[0], d)
    names = [r.name for r in cmp.load_runs([runs[0], d, d])]
    assert len(set(names)) == 3 and names[1] == f"x/{runs[0].name}"


def _zst(src: Path, dst: Path, cut: float = 1.0) -> None:
    """Compress the log as a streaming writer does (a block flushed every 50 lines); ``cut``
    keeps that fraction of the compressed file, as a crash mid-run would."""
    shutil.copytree(src, dst)
    buf = io.BytesIO()
    w = zstandard.ZstdCompressor().stream_writer(buf, closefd=False)
    for i, line in enumerate((dst / "events.jsonl").read_bytes().splitlines(keepends=True)):
        w.write(line)
        if i % 50 == 49:
            w.flush(zstandard.FLUSH_BLOCK)
    w.close()
    data = buf.getvalue()
    (dst / "events.jsonl.zst").write_bytes(data[: int(len(data) * cut)])
    (dst / "events.jsonl").unlink()


def test_a_compressed_log_reads_like_the_plain_one(runs: list[Path], tmp_path: Path) -> None:
    _zst(runs[1], tmp_path / "z")
    plain, packed = cmp.load_runs([runs[1], tmp_path / "z"])
    assert packed.metrics == plain.metrics and packed.data.events == plain.data.events
    assert packed.data.sample_t == plain.data.sample_t
    assert load_run(tmp_path / "z").pageout_t == load_run(runs[1]).pageout_t  # emu analyze too
    _zst(runs[1], tmp_path / "cut", cut=0.6)  # a compressed log cut short: what was written
    assert 0 < cmp.load_runs([tmp_path / "cut"])[0].data.events < plain.data.events


def test_an_unfinished_run_is_compared_on_its_log_so_far(runs: list[Path], tmp_path: Path) -> None:
    d = tmp_path / "unfinished"
    d.mkdir()
    log = (runs[0] / "events.jsonl").read_bytes()
    (d / "events.jsonl").write_bytes(log[: len(log) * 2 // 3])  # cut mid-line, no summary
    base, r = cmp.load_runs([runs[0], d])
    evs = _events(runs[0])
    kept = [orjson.loads(x) for x in log[: len(log) * 2 // 3].splitlines()[:-1]]
    passes = [e for e in kept if e["event"] == "uvm_pageout.pass"]
    assert r.status == "unfinished" and not r.complete and r.data.bad_lines == 1
    assert r.metrics["pageouts"] == sum(e["pdpageouts"] for e in passes) <= base.metrics["pageouts"]
    assert r.metrics["pdscans"] == sum(e["pdscans"] for e in passes)
    assert r.metrics["faults_major"] == sum(e["event"] == "uvm_fault.pagein" for e in kept)
    assert r.metrics["first_pageout_ns"] == base.metrics["first_pageout_ns"]
    assert r.metrics["swap_writes"] is None and r.metrics["fault_p50_ns"] is None
    assert 0 < r.metrics["virtual_ns"] <= evs[-1]["t_ns"]  # type: ignore[operator]
    text = _text([base, r])
    assert "unfinished" in text and "no summary.json yet" in text
    assert cmp.compare([base.data.dir, d], tmp_path / "p", console=_quiet())  # plots drawn


def test_interrupted_and_summary_only_runs(runs: list[Path], tmp_path: Path) -> None:
    d = tmp_path / "stuck"
    d.mkdir()
    s = _summary(runs[2])
    s.update(outcome="deadlock", error="every thread is blocked")
    (d / "summary.json").write_text(json.dumps(s))  # and no event log
    base, r = cmp.load_runs([runs[2], d])
    assert r.status == "interrupted: deadlock" and r.complete
    assert r.metrics["first_pageout_ns"] is None and r.data.events == 0
    assert {k: v for k, v in r.metrics.items() if k != "first_pageout_ns"} == {
        k: v for k, v in base.metrics.items() if k != "first_pageout_ns"}
    text = _text([base, r])
    assert "interrupted: deadlock" in text and "none" in text
    paths = cmp.compare([runs[2], d], tmp_path / "p", console=_quiet())
    assert all(p.read_bytes().startswith(PNG) for p in paths)


def test_a_summary_from_before_the_waits_key(runs: list[Path], tmp_path: Path) -> None:
    d = tmp_path / "old"
    shutil.copytree(runs[0], d)
    s = _summary(d)
    del s["waits"]
    (d / "summary.json").write_text(json.dumps(s))
    r = cmp.load_runs([d])[0]
    assert r.metrics["waits"] is None and r.metrics["wait_ns"] is None
    assert r.metrics["pageouts"] == s["uvmexp"]["pdpageouts"]


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda p: p / "nosuch", "does not exist"),
        (lambda p: (p / "f.txt", (p / "f.txt").write_text("x"))[0], "is a file"),
        (lambda p: (p / "empty", (p / "empty").mkdir())[0], "not a run directory"),
        (lambda p: (p / "bad", (p / "bad").mkdir(), (p / "bad" / "summary.json").write_text("{"))[0],
         "not valid JSON"),
    ],
)
def test_bad_input_exits_2(
    runs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Any, needle: str
) -> None:
    bad = make(tmp_path)
    rc = main(["compare", str(runs[0]), str(bad), "--out", str(tmp_path / "o")])
    _, err = capsys.readouterr()
    assert rc == 2 and needle in err and str(bad) in err and err.startswith("emu: compare: ")
    assert err.count("\n") == 1 and not (tmp_path / "o").exists()


def test_no_run_at_all_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["compare"])
    assert e.value.code == 2 and "RUN_DIR" in capsys.readouterr().err
