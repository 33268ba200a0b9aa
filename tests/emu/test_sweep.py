"""emu sweep: the spec refused with exit 2 before anything runs, cells named by their inputs,
run on the process pool, landed as ordinary run directories, resumed, results readable by
DuckDB and pyarrow, and each cell's log the one `emu run` writes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import msgspec
import psutil
import pyarrow.parquet as pq
import pytest

from emu import rundir
from emu.cli import main
from emu.config import KernelSection
from emu.machine import Machine
from emu.scenario import load_scenario
from emu.sweep import PoolEngine, SweepError, sweep
from emu.sweep.cells import _localize, make_task, pack, unpack
from emu.sweep.driver import run_sweep
from emu.sweep.spec import load_spec, make_spec, plan

SPEC = """
[sweep]
scenario = "small"
seeds = [1, 2]

[grid]
"machine.ram" = ["384KiB", "1MiB"]
"""


def _spec(tmp_path: Path, text: str = SPEC, name: str = "spec.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _events(run_dir: Path, name: str) -> list[dict[str, object]]:
    return [{k: v for k, v in ev.items() if not k.startswith("wall")}
            for ev in rundir.read_events(run_dir / name)]  # fmt: skip


def _summary(run_dir: Path) -> dict[str, object]:
    s = json.loads((run_dir / "summary.json").read_text())
    return {k: v for k, v in s.items() if not k.startswith("wall")}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[sweep]\nscenario='small'\n[grids]\n", "unknown section [grids]"),
        ("[sweep]\nscenario='small'\nseed=[1]\n", "unknown key sweep.seed"),
        ("[sweep]\nscenario='small'\nseeds=[]\n", "sweep.seeds"),
        ("[sweep]\nscenario='small'\nseeds=['a']\n", "sweep.seeds"),
        ("[sweep]\nseeds=[1]\n", "needs scenario"),
        ("[sweep]\nscenario='small'\n[grid]\n'machine.ram'=[]\n", 'machine.ram" = []: empty'),
        ("[sweep]\nscenario='small'\n[grid]\n'machine.ram'='1MiB'\n", "expected a list"),
        ("[sweep]\nscenario='small'\n[grid]\n'machine.ram'=['1MiB', 2]\n", "mixed types"),
        ("[sweep]\nscenario='small'\n[grid]\n'machine.nosuch'=[1]\n", "unknown key; keys of"),
        ("[sweep]\nscenario='small'\n[grid]\n'ram'=[1]\n", "a grid key is a scenario key"),
        ("[sweep]\nscenario='small'\n[grid]\n'machine.seed'=[1]\n", "seeds are not a grid key"),
        ("[sweep]\nscenario='small'\n[grid]\n'machine.ram'=['1MiB', '3KiB']\n",
         "cell (machine.ram='3KiB', seed 1)"),
        ("[sweep]\nscenario='small'\n[grid]\n'workload.hog.max_pages'=[10, -1]\n",
         "workload.hog.max_pages=-1"),
        ("[sweep]\nscenario='nosuch'\n", "no such file and no built-in"),
        ("[sweep]\ntrace='lackey:/no/such.gz'\n", "no such trace file"),
        ("[sweep]\nscenario='small'\nmetrics=['nosuch.x']\n", "no summary field"),
    ],
)
def test_bad_specs_exit_2_naming_the_key_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, needle: str
) -> None:
    out = tmp_path / "out"
    rc, _, err = _run(["sweep", str(_spec(tmp_path, text)), "--out", str(out)], capsys)
    assert rc == 2, err
    assert needle in err
    assert not out.exists(), "nothing made before every cell is valid"


def test_every_numeric_part_of_a_summary_is_a_metric(tmp_path: Path) -> None:
    """`metrics` accepts each top-level field of summary.json that holds numbers (`waits` was
    refused: waits.total_ns, the time in uvm_wait, could not be plotted)."""
    s = Machine.from_scenario(load_scenario("tiny")).run()
    tops = [k for k, v in s.items() if isinstance(v, int | float | dict | list)
            and not isinstance(v, bool) and k not in ("seed", "pdaemon")]  # fmt: skip
    assert "waits" in tops
    names = [f"{k}.x" if isinstance(s[k], dict | list) else k for k in tops]
    spec = load_spec(_spec(tmp_path, f"[sweep]\nscenario='tiny'\nmetrics={names!r}\n"))
    assert list(spec.sweep.metrics) == names


def test_an_unreadable_trace_and_an_unreachable_ray_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.lackey"
    bad.write_text("this is no lackey line\n")
    rc, _, err = _run(["sweep", str(_spec(tmp_path, f"[sweep]\ntrace='lackey:{bad}'\n")),
                       "--out", str(tmp_path / "o1")], capsys)  # fmt: skip
    assert rc == 2 and "sweep.trace" in err and "lackey record" in err
    spec = _spec(tmp_path, "[sweep]\nscenario='tiny'\n")
    for addr, needle in (("127.0.0.1:1", "cannot reach 127.0.0.1:1"), ("nonsense", "HOST:PORT")):
        rc, _, err = _run(["sweep", str(spec), "--out", str(tmp_path / "o2"), "--ray", addr],
                          capsys)  # fmt: skip
        assert rc == 2 and needle in err, err
    rc, _, err = _run(["sweep", str(spec), "--out", str(tmp_path / "o3"), "--jobs", "0"], capsys)
    assert rc == 2 and "--jobs 0" in err


def test_a_sweep_lands_every_cell_and_results_read_with_duckdb_and_pyarrow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    rc, stdout, _ = _run(["sweep", str(_spec(tmp_path)), "--out", str(out), "--jobs", "2"], capsys)
    assert rc == 0, stdout
    cells = sorted(p for p in (out / "cells").iterdir())
    assert len(cells) == 4
    for c in cells:
        assert {p.name for p in c.iterdir()} >= {"cell.json", "summary.json", "events.jsonl.zst"}
        assert sum(p.stat().st_size for p in c.rglob("*") if p.is_file()) < 100_000
    t = pq.read_table(out / "results.parquet")
    assert t.num_rows == 4
    cols = set(t.column_names)
    assert {"machine.ram", "seed", "outcome", "cell", "error", "uvmexp.pdpageouts",
            "faults.major", "integrity.mismatches", "virtual_ns", "wall_s",
            "workloads.hog.faults.major", "io.cluster_pages.mean"} <= cols  # fmt: skip
    assert not any(c.startswith("io.cluster_pages.1") for c in cols), "histograms summarised"
    rows = duckdb.sql(
        f"select \"machine.ram\", seed, outcome, \"uvmexp.pdpageouts\" "
        f"from read_parquet('{out / 'results.parquet'}') order by 1, 2").fetchall()
    assert [r[:3] for r in rows] == [("1MiB", 1, "ok"), ("1MiB", 2, "ok"),
                                     ("384KiB", 1, "ok"), ("384KiB", 2, "ok")]  # fmt: skip
    assert rows[2][3] > 0 and rows[0][3] == 0, "less memory, more pageouts"
    csv = duckdb.sql(f"select count(*) from read_csv_auto('{out / 'results.csv'}')").fetchall()[0]
    assert csv == (4,)
    log = cells[0] / "events.jsonl.zst"
    n = duckdb.sql(f"select count(*) from read_json_auto('{log}') "
                   "where event = 'uvm_pageout.pass'").fetchall()[0]  # fmt: skip
    assert n is not None and n[0] >= 0
    assert list((out / "plots").glob("*.png")) == [out / "plots" / "machine.ram.png"]


def test_a_cell_is_the_run_emu_run_makes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Same scenario, overrides and seed: the same events and summary (wall_* aside)."""
    spec = make_spec({"scenario": "small", "seeds": [3]}, {"machine.ram": ["384KiB"]})
    r = sweep(spec, tmp_path / "sw", PoolEngine(1), progress=False)
    assert r.ran == 1 and r.failed == 0
    (cell,) = (tmp_path / "sw" / "cells").iterdir()
    rc, _, _ = _run(["run", "small", "--seed", "3", "--ram", "384KiB", "--events", "compact",
                     "--compress", "--run-dir", str(tmp_path / "run"), "--quiet"], capsys)  # fmt: skip
    assert rc == 0
    assert _events(cell, "events.jsonl.zst") == _events(tmp_path / "run", "events.jsonl.zst")
    assert _summary(cell) == _summary(tmp_path / "run")


def test_resume_skips_landed_cells_refuses_another_spec_and_retries_failed(tmp_path: Path) -> None:
    text = ("[sweep]\nscenario='small'\nseeds=[1]\n[grid]\n"
            "'machine.max_virtual_ns'=[0, 100000]\n")  # the second stops early: outcome limit
    spec = load_spec(_spec(tmp_path, text))
    out = tmp_path / "out"
    r = sweep(spec, out, PoolEngine(2), progress=False)
    assert (r.ran, r.failed) == (2, 1)
    t = pq.read_table(out / "results.parquet").to_pylist()
    bad = next(row for row in t if row["outcome"] != "ok")
    assert bad["outcome"] == "limit" and "max_virtual_ns" in bad["error"]
    stamps = {p: p.stat().st_mtime_ns for p in (out / "cells").rglob("*")}
    r = sweep(spec, out, PoolEngine(2), progress=False)
    assert (r.ran, r.skipped) == (0, 2)
    assert {p: p.stat().st_mtime_ns for p in (out / "cells").rglob("*")} == stamps, "untouched"
    r = sweep(spec, out, PoolEngine(2), retry_failed=True, progress=False)
    assert (r.ran, r.skipped, r.failed) == (1, 1, 1)
    ok_cell = next(row["cell"] for row in t if row["outcome"] == "ok")
    assert (out / "cells" / ok_cell / "summary.json").stat().st_mtime_ns == stamps[
        out / "cells" / ok_cell / "summary.json"]
    other = load_spec(_spec(tmp_path, text.replace("100000", "200000"), "other.toml"))
    with pytest.raises(SweepError, match=r"grid: .*100000.* in DIR, now .*200000"):
        sweep(other, out, PoolEngine(1), progress=False)


def test_a_crashing_cell_is_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    spec = make_spec({"scenario": "tiny"}, {"machine.swap": ["2MiB", "4MiB"]})
    cells = plan(spec)
    tasks = [make_task(c, spec) for c in cells]
    broken = msgspec.structs.replace(tasks[0], log_level="nonsense")  # the machine raises

    r = run_sweep(spec, cells, [broken, tasks[1]], tmp_path / "o", PoolEngine(2), progress=False)
    assert (r.ran, r.failed) == (2, 1)
    rows = {row["cell"]: row for row in pq.read_table(tmp_path / "o" / "results.parquet").to_pylist()}
    assert rows[broken.cell]["outcome"] == "failed" and "NONSENSE" in rows[broken.cell]["error"]
    assert rows[tasks[1].cell]["outcome"] == "ok"


def test_cell_ids_follow_inputs_and_input_files_travel(tmp_path: Path) -> None:
    trace = tmp_path / "t.lackey"
    trace.write_text(" L 0421a0c8,8\n S 0522a0c8,8\n" * 50)
    text = f"[sweep]\ntrace='lackey:{trace}'\n[grid]\n'machine.ram'=['256KiB', '512KiB']\n"
    spec = load_spec(_spec(tmp_path, text))
    ids = [make_task(c, spec).cell for c in plan(spec)]
    assert ids == [make_task(c, spec).cell for c in plan(spec)], "stable"
    assert len(set(ids)) == 2
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.copy(trace, moved / "t.lackey")
    spec2 = load_spec(_spec(moved, text.replace(str(trace), str(moved / "t.lackey"))))
    assert [make_task(c, spec2).cell for c in plan(spec2)] == ids, "a moved file: same cells"
    trace.write_text(" L 0421a0c8,8\n" * 99)
    assert [make_task(c, spec).cell for c in plan(spec)] != ids, "new content: new cells"
    # a worker without the file gets its bytes once and runs on its own copy
    task = make_task(plan(spec)[0], spec)
    data = trace.read_bytes()
    trace.unlink()
    (sha,) = task.inputs.values()
    sc = _localize(task, {sha: data}.__getitem__)
    path = sc.workloads[0].params["path"]
    assert path != str(trace) and sha in path and Path(path).read_bytes() == data


def test_pack_and_unpack_keep_a_run_directory(tmp_path: Path) -> None:
    src = tmp_path / "a"
    (src / "files").mkdir(parents=True)
    (src / "summary.json").write_text("{}")
    (src / "files" / "data.bin").write_bytes(bytes(1 << 20))
    unpack(pack(src), tmp_path / "b")
    assert (tmp_path / "b" / "summary.json").read_text() == "{}"
    assert (tmp_path / "b" / "files").is_dir()
    assert not (tmp_path / "b" / "files" / "data.bin").exists(), "mapped files stay behind"


def _tree(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def test_ctrl_c_stops_cleanly_and_the_next_run_resumes(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "[sweep]\nscenario='small'\nseeds=[1, 2, 3, 4, 5, 6, 7, 8]\n"
                           "[grid]\n'machine.ram'=['384KiB', '448KiB', '512KiB', '640KiB']\n")
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "emu.cli", "sweep", str(spec), "--out", str(out), "--jobs", "2"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    workers: set[psutil.Process] = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        workers.update(_tree(proc.pid))
        if len([d for d in (out / "cells").glob("[0-9a-f]*")] if (out / "cells").exists() else []) >= 3:
            break
        time.sleep(0.05)
    workers.update(_tree(proc.pid))
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"interrupted" in err
    _gone, alive = psutil.wait_procs(list(workers), timeout=10)
    assert not alive, f"workers left behind: {alive}"
    landed = {d.name: (d / "cell.json").stat().st_mtime_ns for d in (out / "cells").glob("[0-9a-f]*")}
    assert 3 <= len(landed) < 32
    res = subprocess.run(argv, capture_output=True, timeout=300, env={**os.environ})
    assert res.returncode == 0, res.stderr
    assert f"{len(landed)} already done".encode() in res.stdout
    for name, stamp in landed.items():
        assert (out / "cells" / name / "cell.json").stat().st_mtime_ns == stamp
    assert pq.read_table(out / "results.parquet").num_rows == 32


@pytest.mark.skipif("pdaemon" not in KernelSection.__struct_fields__,
                    reason="kernel.pdaemon (issue 13) has not landed on this branch")
def test_daemon_variants_are_a_grid_key(tmp_path: Path) -> None:
    spec = make_spec({"scenario": "small"}, {"kernel.pdaemon": ["1.105", "1.154"]})
    r = sweep(spec, tmp_path / "o", PoolEngine(2), progress=False)
    assert (r.ran, r.failed) == (2, 0)
    t = pq.read_table(tmp_path / "o" / "results.parquet")
    assert t.column("kernel.pdaemon").to_pylist() == ["1.105", "1.154"]


def test_flatten_spreads_numbers_and_summarises_open_ended_maps() -> None:
    from emu.sweep.results import flatten

    s = {"seed": 1, "virtual_ns": 10, "io": {"writes": 2, "cluster_pages": {"4": 1, "16": 3}},
         "waits": {"count": 3, "by_wmesg": {"flt_noram1": 2, "flt_noram3": 1}},
         "workloads": [{"name": "hog", "faults": {"major": 5}, "fault_latency_hist": {}}],
         "error": None, "outcome": "ok"}  # fmt: skip
    assert flatten(s) == {
        "seed": 1, "virtual_ns": 10, "io.writes": 2, "io.cluster_pages.count": 4,
        "io.cluster_pages.mean": 13.0, "io.cluster_pages.max": 16, "waits.count": 3,
        "waits.by_wmesg.total": 3, "workloads.hog.faults.major": 5,
        "workloads.hog.fault_latency_hist.count": 0,
        "workloads.hog.fault_latency_hist.mean": None,
        "workloads.hog.fault_latency_hist.max": None,
    }  # fmt: skip


def test_sigterm_stops_a_sweep_like_ctrl_c(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "[sweep]\nscenario='small'\nseeds=[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]\n")
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "emu.cli", "sweep", str(spec), "--out", str(out), "--jobs", "2"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((out / "cells").glob("[0-9a-f]*") if (out / "cells").exists() else []):
        time.sleep(0.05)
    workers = _tree(proc.pid)
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (143, 0), err  # 0: it had just finished
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive


def test_a_grid_key_with_one_value_is_a_constant_not_an_axis(tmp_path: Path) -> None:
    """Only keys that vary get a plot: a key held at one value would draw single points."""
    import pyarrow as pa

    from emu.sweep.plots import plot

    t = pa.Table.from_pylist([
        {"machine.ram": ram, "kernel.yield_ns": 20_000, "seed": 1, "outcome": "ok",
         "virtual_ns": n}
        for ram, n in (("384KiB", 3), ("1MiB", 1))
    ])  # fmt: skip
    grid = {"machine.ram": ["384KiB", "1MiB"], "kernel.yield_ns": [20_000]}
    paths = plot(t, grid, ["virtual_ns"], tmp_path)
    assert [p.name for p in paths] == ["machine.ram.png"]
