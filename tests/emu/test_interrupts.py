"""Runs that stop early: real signals to a real `emu run`, SIGKILL, the wall-clock limit (also
against a workload that never yields), the live log, and run() under a running event loop
(issue 12 items 10, 11, 16, 21)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import orjson
import pytest

from emu.machine import Machine

# a run that goes on for minutes: a small machine, one process that never runs out of work
LONG = """
[machine]
ram = "512KiB"
swap = "2MiB"
loop = "{loop}"
sample_interval_ns = 50_000
[device]
model = "none"
[[workload]]
kind = "uniform"
name = "forever"
pages = 200
accesses = 100_000_000
"""


def _start(tmp: Path, loop: str = "asyncio", *extra: str) -> tuple[subprocess.Popen[str], Path]:
    sc = tmp / "long.toml"
    sc.write_text(LONG.format(loop=loop))
    run_dir = tmp / "run"
    proc = subprocess.Popen([sys.executable, "-m", "emu.cli", "run", str(sc), "--run-dir",
                             str(run_dir), "--no-plots", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    return proc, run_dir


def _wait_for_events(run_dir: Path, n: int = 20, timeout: float = 60.0) -> None:
    """Until the running machine's log holds ``n`` lines: it is flushed while the run goes on
    (issue 12 item 11: ``tail -f`` follows a run)."""
    log = run_dir / "events.jsonl"
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if log.exists() and log.read_bytes().count(b"\n") >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{log}: fewer than {n} lines after {timeout} s")


def _lines(run_dir: Path) -> list[dict[str, object]]:
    return [orjson.loads(x) for x in (run_dir / "events.jsonl").read_bytes().splitlines()]


@pytest.mark.parametrize(("signum", "status", "loop"), [
    (signal.SIGINT, 130, "uvloop"), (signal.SIGTERM, 143, "asyncio"),
])  # fmt: skip
def test_a_signal_stops_emu_run_with_a_summary_one_line_and_its_exit_status(
    tmp_path: Path, signum: int, status: int, loop: str
) -> None:
    proc, run_dir = _start(tmp_path, loop)
    _wait_for_events(run_dir)
    t0 = time.monotonic()
    proc.send_signal(signum)
    _out, err = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 5, "stops promptly"
    assert proc.returncode == status, err
    name = signal.Signals(signum).name
    assert err.count("\n") == 1 and f"interrupted by {name}" in err and "Traceback" not in err
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["outcome"] == "interrupted" and s["error"] == f"interrupted by {name}"
    assert s["uvmexp"]["faults"] > 0 and s["virtual_ns"] > 0, "the counters so far"
    assert [w["status"] for w in s["workloads"]] == ["cut"]
    evs = _lines(run_dir)
    assert evs[-1]["event"] == "run.end" and evs[-1]["outcome"] == "interrupted"
    # emu analyze reads an interrupted run
    r = subprocess.run([sys.executable, "-m", "emu.cli", "analyze", str(run_dir), "--out",
                        str(tmp_path / "plots")], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0 and "interrupted" in r.stdout, r.stderr


def test_sigkill_leaves_a_valid_log_that_analyze_shows_as_not_finished(tmp_path: Path) -> None:
    proc, run_dir = _start(tmp_path)
    _wait_for_events(run_dir, n=200)
    proc.kill()
    proc.communicate(timeout=30)
    assert not (run_dir / "summary.json").exists()
    raw = (run_dir / "events.jsonl").read_bytes()
    assert raw.endswith(b"\n") and all(orjson.loads(x) for x in raw.splitlines())
    r = subprocess.run([sys.executable, "-m", "emu.cli", "analyze", str(run_dir), "--out",
                        str(tmp_path / "plots")], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "did not finish" in r.stdout and "uvmexp.sample" in r.stdout
    assert "forever" in r.stdout, "the workloads it started"


def test_timeout_flag_cuts_the_run_with_outcome_limit(tmp_path: Path) -> None:
    proc, run_dir = _start(tmp_path, "asyncio", "--timeout", "2", "--quiet")
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["outcome"] == "limit" and s["error"].startswith("machine.max_wall_s = 2 s")
    assert [w["status"] for w in s["workloads"]] == ["cut"]


async def spin(p) -> None:  # type: ignore[no-untyped-def]
    """Never yields: a plain Python loop after one store."""
    base = await p.mmap(4096)
    await p.store(base, b"x")
    while True:
        pass


async def polite(p) -> None:  # type: ignore[no-untyped-def]
    base = await p.mmap(2 * 4096)
    for i in range(2):
        await p.store(base + i * 4096, b"y")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_wall_limit_stops_a_workload_that_never_yields(tmp_path: Path, loop: str) -> None:
    m = Machine(ram="256pages", swap="1024pages", loop=loop, max_wall_s=0.5,
                run_dir=tmp_path / "run")  # fmt: skip
    m.attach(polite, name="polite")
    m.attach(spin, name="spin")
    t0 = time.monotonic()
    s = m.run()
    assert time.monotonic() - t0 < 10
    assert s.outcome == "limit" and "machine.max_wall_s" in s.error
    by = {w["name"]: w["status"] for w in s.workloads}
    assert by == {"polite": "ok", "spin": "cut"}
    assert _lines(tmp_path / "run")[-1]["outcome"] == "limit"


def test_virtual_limit_is_outcome_limit_and_cuts_the_workloads() -> None:
    m = Machine(ram="256pages", swap="1024pages", loop="asyncio", max_virtual_ns=200_000)
    m.attach("uniform", name="u", pages=100, accesses=1_000_000)
    s = m.run()
    assert s.outcome == "limit" and s.error.startswith("machine.max_virtual_ns = 200000")
    assert s.workloads[0]["status"] == "cut"


def test_stop_from_another_thread_interrupts_the_run(tmp_path: Path) -> None:
    m = Machine(ram="256pages", swap="1024pages", loop="asyncio", run_dir=tmp_path / "run")
    m.attach("uniform", name="u", pages=100, accesses=100_000_000)
    threading.Timer(1.0, m.stop).start()
    s = m.run()
    assert s.outcome == "interrupted" and s.error == "interrupted by Machine.stop()"
    assert m.summary is s and json.loads((tmp_path / "run" / "summary.json").read_text())


async def slow_logger(p) -> None:  # type: ignore[no-untyped-def]
    """Logs one event, then holds the loop for 2.5 s of short wall-clock sleeps (stuck)."""
    p.log("hello")
    end = time.monotonic() + 2.5
    while time.monotonic() < end:
        time.sleep(0.01)


def test_the_log_is_flushed_while_a_stuck_run_goes_on(tmp_path: Path) -> None:
    """Issue 12 item 11: a stuck run's log reaches the file within a wall-clock second."""
    m = Machine(ram="256pages", swap="1024pages", loop="asyncio", run_dir=tmp_path / "run")
    m.attach(slow_logger, name="stuck")
    t = threading.Thread(target=m.run)
    t.start()
    log = tmp_path / "run" / "events.jsonl"
    t0 = time.monotonic()
    seen = False
    while time.monotonic() - t0 < 3 and not seen:
        seen = log.exists() and b'"workload.hello"' in log.read_bytes()
        time.sleep(0.05)
    t.join()
    assert seen, "workload.hello on disk while the run was stuck"
    assert m.summary is not None and m.summary.outcome == "ok"


async def writer(p, pages: int = 300) -> None:  # type: ignore[no-untyped-def]
    base = await p.mmap(pages * 4096)
    for i in range(pages):
        await p.store(base + i * 4096, b"page %d" % i)
    for i in range(pages):
        p.verify(base + i * 4096, (b"page %d" % i).ljust(16, b"\0"), await p.load(base + i * 4096, 16))


def _notebook_machine(run_dir: Path) -> Machine:
    m = Machine(ram="256pages", swap="2048pages", seed=3, loop="uvloop", run_dir=run_dir)
    m.attach(writer, name="w")
    m.attach("zipf", name="z", pages=200, accesses=2000)
    return m


def _strip(evs: list[dict[str, object]]) -> list[dict[str, object]]:
    return [{k: v for k, v in e.items() if not k.startswith("wall")} for e in evs]


def test_run_inside_a_running_loop_gives_the_same_log_as_a_plain_run(tmp_path: Path) -> None:
    """Issue 12 item 21: run() from a notebook (a loop is running) works, deterministically;
    ``await m.arun()`` too; no coroutine is left un-awaited."""
    plain = _notebook_machine(tmp_path / "plain").run()

    async def cell() -> object:
        return _notebook_machine(tmp_path / "nested").run()

    async def async_cell() -> object:
        return await _notebook_machine(tmp_path / "awaited").arun()

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nested = asyncio.run(cell())
        awaited = asyncio.run(async_cell())
    assert plain["outcome"] == nested["outcome"] == awaited["outcome"] == "ok"  # type: ignore[index]
    logs = [_strip(_lines(tmp_path / d)) for d in ("plain", "nested", "awaited")]
    assert logs[0] == logs[1] == logs[2]
