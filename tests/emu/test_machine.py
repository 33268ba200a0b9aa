"""The Python API and the run directory (issue: make run, the workload API, logs).

Each test runs the real kernel on the real emulated machine through ``emu.machine.Machine``.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import orjson
import pytest

from emu.machine import Machine
from emu.scenario import ScenarioError


async def writer(p, pages: int = 600) -> None:  # type: ignore[no-untyped-def]
    """Write a stamp into every page, then read every page back and verify it."""
    base = await p.mmap(pages * 4096)
    for i in range(pages):
        await p.store(base + i * 4096, b"page %6d pid %4d" % (i, p.pid))
    for i in range(pages):
        data = await p.load(base + i * 4096, 20)
        p.verify(base + i * 4096, (b"page %6d pid %4d" % (i, p.pid)).ljust(20, b"\0"), data)


async def crasher(p) -> None:  # type: ignore[no-untyped-def]
    base = await p.mmap(4 * 4096)
    await p.store(base, b"x")
    raise RuntimeError("workload bug")


async def segv(p) -> None:  # type: ignore[no-untyped-def]
    await p.load(0x7000_0000_0000, 8)  # never mapped


def _events(run_dir: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in (run_dir / "events.jsonl").read_bytes().splitlines()]


def _strip_wall(evs: list[dict[str, object]]) -> list[dict[str, object]]:
    out = []
    for e in evs:
        e = {k: v for k, v in e.items() if not k.startswith("wall")}
        if e["event"] == "run.start":
            e.pop("loop", None)
        out.append(e)
    return out


def _small(tmp: Path | None, seed: int = 1, loop: str = "asyncio", **kw: object) -> Machine:
    return Machine(ram="256pages", swap="2048pages", seed=seed, device="ssd", loop=loop, run_dir=tmp, **kw)  # type: ignore[arg-type]


def test_overcommitted_writer_pages_out_and_in_and_reads_back_intact(tmp_path: Path) -> None:
    """A 600-page writer on a 256-page machine: pageouts, page-ins, every byte intact."""
    m = _small(tmp_path / "run")
    m.attach(writer, name="w", pages=600)
    s = m.run()
    assert s["outcome"] == "ok", s["error"]
    assert s["uvmexp"]["pdpageouts"] > 0
    assert s["io"]["writes"] > 0 and s["io"]["reads"] > 0
    assert s["faults"]["major"] > 0
    assert s["integrity"] == {"pages_checked": 600, "mismatches": 0}
    w = s["workloads"][0]
    assert w["status"] == "ok" and w["pages_checked"] == 600 and w["accesses"] >= 1200
    assert sum(int(n) * c for n, c in s["io"]["cluster_pages"].items()) >= s["io"]["write_pages"]
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert on_disk["outcome"] == "ok" and on_disk["virtual_ns"] == s["virtual_ns"]


def test_run_directory_files_are_private(tmp_path: Path) -> None:
    m = _small(tmp_path / "run", keep_images=True)
    m.attach(writer, name="w", pages=300)
    m.run()
    for name in ("events.jsonl", "summary.json", "swap0.img"):
        mode = stat.S_IMODE(os.stat(tmp_path / "run" / name).st_mode)
        assert mode == 0o600, (name, oct(mode))


def test_event_log_schema_first_and_last_lines(tmp_path: Path) -> None:
    m = _small(tmp_path / "run")
    m.attach(writer, name="w", pages=400)
    m.run()
    evs = _events(tmp_path / "run")
    assert evs[0]["event"] == "run.start" and evs[0]["schema"] == "uvm-emu/events/1"
    assert evs[-1]["event"] == "run.end" and evs[-1]["outcome"] == "ok"
    kinds = {e["event"] for e in evs}
    for needed in ("uvm_pageout.pass", "uvmpd_scan_inactive.pageout",
                   "uvm_aiodone_daemon.batch", "uvmexp.sample", "uvm_fault.pagein"):
        assert needed in kinds, needed
    for e in evs:
        assert isinstance(e["t_ns"], int) and "proc" in e and "level" in e
    ts = [e["t_ns"] for e in evs[1:-1]]
    assert ts == sorted(ts), "events are written in virtual-time order"


def test_same_seed_same_log_on_asyncio_and_uvloop(tmp_path: Path) -> None:
    """Same scenario and seed: identical events.jsonl apart from wall_* fields, both loops."""
    logs = []
    for i, loop in enumerate(("asyncio", "uvloop", "asyncio")):
        m = _small(tmp_path / f"r{i}", loop=loop)
        m.attach(writer, name="w", pages=400)
        m.attach("uniform", name="u", pages=100, accesses=800)
        m.run()
        logs.append(_strip_wall(_events(tmp_path / f"r{i}")))
    assert logs[0] == logs[1] == logs[2]


def test_different_seed_different_log(tmp_path: Path) -> None:
    logs = []
    for seed in (1, 2):
        m = _small(tmp_path / f"s{seed}", seed=seed)
        m.attach("uniform", name="u", pages=300, accesses=1500)
        m.run()
        logs.append(_strip_wall(_events(tmp_path / f"s{seed}")))
    assert logs[0] != logs[1]


def test_workload_exception_ends_only_that_process(tmp_path: Path) -> None:
    m = _small(tmp_path / "run")
    m.attach(crasher, name="bad")
    m.attach(segv, name="segv")
    m.attach(writer, name="good", pages=300)
    s = m.run()
    assert s["outcome"] == "ok"
    by = {w["name"]: w for w in s["workloads"]}
    assert by["bad"]["status"] == "error" and "workload bug" in by["bad"]["error"]
    assert by["segv"]["status"] == "error" and "SegmentationFault" in by["segv"]["error"]
    assert by["good"]["status"] == "ok" and by["good"]["mismatches"] == 0


def test_api_without_run_dir_returns_summary_only() -> None:
    m = _small(None)
    m.attach(writer, name="w", pages=100)
    s = m.run()
    assert s.outcome == "ok" and s.integrity["pages_checked"] == 100


def test_bad_api_input_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="at least 64 pages"):
        Machine(ram="8pages", swap="64pages")
    with pytest.raises(ScenarioError, match=r"machine\.loop"):
        Machine(loop="trio")
    with pytest.raises(ScenarioError, match=r"unknown key kernel\.nosuch"):
        Machine(kernel={"nosuch": 1})
    m = _small(tmp_path / "run")
    with pytest.raises(ScenarioError, match="unknown stock workload"):
        m.attach("nosuch")


def test_a_process_cannot_read_or_write_another_process_memory(tmp_path: Path) -> None:
    """Separate address spaces: the same virtual address in two processes is two pages, and an
    address only the other process mapped faults (SIGSEGV) instead of reaching its frame."""
    addr = 0x10_0000_0000
    seen: dict[str, bytes] = {}

    async def owner(p) -> None:  # type: ignore[no-untyped-def]
        await p.mmap(4 * 4096, addr=addr)
        await p.store(addr, b"secret of the owner")
        await p.compute(5_000_000)  # stay alive while the other process looks
        seen["owner"] = await p.load(addr, 19)

    async def snoop(p) -> None:  # type: ignore[no-untyped-def]
        await p.compute(1_000_000)
        try:
            await p.load(addr, 19)
        except Exception as e:  # the owner's address is not mapped here
            seen["fault"] = type(e).__name__.encode()
        await p.mmap(4 * 4096, addr=addr)  # same address, own fresh page
        seen["snoop"] = await p.load(addr, 19)
        await p.store(addr, b"overwritten by snoop")

    m = _small(tmp_path / "run")
    m.attach(owner, name="owner")
    m.attach(snoop, name="snoop")
    s = m.run()
    assert s["outcome"] == "ok", s["error"]
    assert seen["fault"] == b"SegmentationFault"
    assert seen["snoop"] == b"\0" * 19
    assert seen["owner"] == b"secret of the owner"


def test_a_mismatch_is_counted_and_logged_with_both_stamps(tmp_path: Path) -> None:
    """The reporting path of the integrity checks: a read that differs from the stamp the
    workload expects is counted in the summary and logged as integrity.mismatch."""
    from emu.workloads.stamps import make_page

    async def liar(p) -> None:  # type: ignore[no-untyped-def]
        base = await p.mmap(4096)
        await p.store(base, make_page(p.pid, 0, 1))
        found = await p.load(base, 4096)
        p.verify(base, make_page(p.pid, 0, 2), found)  # expects a version never written

    m = _small(tmp_path / "run")
    m.attach(liar, name="liar")
    s = m.run()
    assert s["integrity"] == {"pages_checked": 1, "mismatches": 1}
    (ev,) = [e for e in _events(tmp_path / "run") if e["event"] == "integrity.mismatch"]
    assert ev["name"] == "liar" and ev["vaddr"] > 0
    assert ev["expected"] != ev["found"] and ev["ndiff"] > 0


def test_a_file_mapping_cannot_name_a_path_outside_the_run_directory(tmp_path: Path) -> None:
    seen: list[str] = []

    async def escape(p) -> None:  # type: ignore[no-untyped-def]
        for name in ("../outside.dat", "/tmp/abs.dat", ".."):
            try:
                await p.mmap(4096, kind="file", name=name)
            except ValueError as e:
                seen.append(str(e))

    m = _small(tmp_path / "run")
    m.attach(escape, name="escape")
    assert m.run()["outcome"] == "ok"
    assert len(seen) == 3 and all("bad file name" in s for s in seen)
    assert not (tmp_path / "outside.dat").exists()


def test_a_broken_invariant_panics_the_run_and_dumps_state(tmp_path: Path) -> None:
    """Diagnostic mode: uvm_check after a daemon pass finds the corruption; outcome panic,
    the invariant named in the error, and a state dump in the run directory."""

    async def corrupt(p) -> None:  # type: ignore[no-untyped-def]
        base = await p.mmap(200 * 4096)
        await p.touch(np.arange(base, base + 200 * 4096, 4096, dtype=np.uint64), True)
        p.k.uvmexp.active += 1  # a lie the next uvm_check must catch
        await p.touch(np.arange(base, base + 200 * 4096, 4096, dtype=np.uint64), True)
        base2 = await p.mmap(300 * 4096)
        await p.touch(np.arange(base2, base2 + 300 * 4096, 4096, dtype=np.uint64), True)

    m = _small(tmp_path / "run", kernel={"check_every_pass": True})
    m.attach(corrupt, name="corrupt")
    s = m.run()
    assert s["outcome"] == "panic"
    assert "active" in s["error"]
    assert (tmp_path / "run" / "panic.txt").read_text().startswith("panic:")


def test_messages_name_a_fault_once_and_errors_by_their_errno_name(tmp_path: Path) -> None:
    """Issue 12 item 20: "SegmentationFault: SegmentationFault: ..." names itself once, and a
    failed system call says EINVAL, not 22."""
    seen: dict[str, str] = {}

    async def fixed_twice(p) -> None:  # type: ignore[no-untyped-def]
        await p.mmap(4096, addr=0x10_0000_0000)
        try:
            await p.mmap(4096, addr=0x10_0000_0001)  # not page aligned
        except OSError as e:
            seen["mmap"] = str(e)

    m = _small(tmp_path / "run")
    m.attach(segv, name="segv")
    m.attach(fixed_twice, name="fixed")
    s = m.run()
    error = {w["name"]: w for w in s["workloads"]}["segv"]["error"]
    assert error.startswith("SegmentationFault: ") and error.count("SegmentationFault") == 1
    assert "22" not in seen["mmap"] and seen["mmap"].endswith(": EINVAL"), seen


def test_an_existing_run_directory_is_refused_before_any_file_is_touched(tmp_path: Path) -> None:
    """Issue 12 item 9: refused as the CLI does (unless force=True), with one exception whose
    message names the directory and the fix; the old run's files stay as they were."""
    old = tmp_path / "old"
    old.mkdir()
    files = {"events.jsonl": b'{"event":"run.start"}\n', "summary.json": b"{}",
             "swap0.img": b"\0" * 4096}  # fmt: skip
    for name, data in files.items():
        (old / name).write_bytes(data)
    with pytest.raises(ScenarioError) as ei:
        _small(old)
    assert type(ei.value) is not ExceptionGroup
    assert str(old) in str(ei.value) and "force=True" in str(ei.value)
    # made after construction: refused by run(), still before anything is written
    later = tmp_path / "later"
    m = _small(later)
    m.attach(writer, name="w", pages=50)
    later.mkdir()
    (later / "events.jsonl").write_bytes(files["events.jsonl"])
    with pytest.raises(ScenarioError, match="already exists"):
        m.run()
    assert {p.name: p.read_bytes() for p in old.iterdir()} == files
    assert (later / "events.jsonl").read_bytes() == files["events.jsonl"]
    # force=True reuses it
    m = _small(old, force=True)
    m.attach(writer, name="w", pages=50)
    assert m.run()["outcome"] == "ok"
    assert _events(old)[0]["event"] == "run.start" and _events(old)[-1]["event"] == "run.end"


def test_a_machine_runs_once(tmp_path: Path) -> None:
    m = _small(None)
    m.attach(writer, name="w", pages=50)
    s = m.run()
    with pytest.raises(RuntimeError, match="already run"):
        m.run()
    assert m.summary is s


def test_a_workload_error_carries_its_traceback(tmp_path: Path) -> None:
    """Issue 12 item 14: the summary and the workload.error event say where in the workload
    the error came from (file:line of its own frame), and the summary has the traceback."""
    m = _small(tmp_path / "run")
    m.attach(crasher, name="bad")
    s = m.run()
    line = crasher.__code__.co_firstlineno + 3  # the raise
    where = f"tests/emu/test_machine.py:{line} in crasher"
    w = s["workloads"][0]
    assert w["status"] == "error" and w["error"] == f"RuntimeError: workload bug (at {where})"
    assert w["traceback"].startswith("Traceback (most recent call last):")
    assert f'File "tests/emu/test_machine.py", line {line}, in crasher' in w["traceback"]
    assert w["traceback"].endswith("RuntimeError: workload bug")
    ev = next(e for e in _events(tmp_path / "run") if e["event"] == "workload.error")
    assert ev["where"] == where and ev["traceback"] == w["traceback"]
