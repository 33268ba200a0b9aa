"""The command line: scenarios, runs, bad input refused with exit status 2 and a clear message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emu.cli import main


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_scenarios_lists_the_builtins(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(["scenarios", "--workloads"], capsys)
    assert rc == 0 and "default" in out and "small" in out and "zipf" in out


def test_run_writes_run_dir_latest_link_summary_and_plots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = _run(["run", "small", "--out", str(tmp_path)], capsys)
    assert rc == 0, out
    latest = tmp_path / "latest"
    assert latest.is_symlink()
    s = json.loads((latest / "summary.json").read_text())
    assert s["outcome"] == "ok" and s["integrity"]["mismatches"] == 0
    assert s["uvmexp"]["pdpageouts"] > 0 and s["faults"]["major"] > 0
    assert (latest / "events.jsonl").stat().st_size > 0
    assert list(latest.glob("*.png")), out
    assert "plot:" in out


@pytest.mark.parametrize(
    ("argv_extra", "needle"),
    [
        (["--set", "machine.nosuch=1"], "unknown key machine.nosuch"),
        (["--set", "machine.ram=\"3KiB\""], "machine.ram"),
        (["--set", "machine.ram=16pages"], "at least 64 pages"),
        (["--set", "device.fail_write_rate=2.0"], "probability"),
        (["--set", "device.model=\"tape\""], "device.model"),
        (["--set", "kernel.diagnostic=\"yes\""], "kernel.diagnostic"),
        (["--set", "nonsense"], "expected section.key=value"),
        (["--trace", "lackey:/no/such/file"], "no such file"),
    ],
)
def test_bad_input_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv_extra: list[str], needle: str
) -> None:
    rc, _, err = _run(["run", "small", "--out", str(tmp_path), "--quiet", *argv_extra], capsys)
    assert rc == 2
    assert needle in err
    assert err.count("\n") == 1, "one message"
    assert not list(tmp_path.glob("*/summary.json")), "nothing half-written"


def test_malformed_toml_and_unknown_sections(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[machine\nram = 1")
    rc, _, err = _run(["run", str(bad), "--out", str(tmp_path), "--quiet"], capsys)
    assert rc == 2 and "bad.toml" in err and "not valid TOML" in err
    bad.write_text("[machin]\nram = 1\n")
    rc, _, err = _run(["run", str(bad), "--out", str(tmp_path), "--quiet"], capsys)
    assert rc == 2 and "unknown section [machin]" in err
    bad.write_text('[[workload]]\nkind = "nosuch"\n')
    rc, _, err = _run(["run", str(bad), "--out", str(tmp_path), "--quiet"], capsys)
    assert rc == 2 and "unknown kind 'nosuch'" in err


def test_existing_run_dir_is_refused_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "exact"
    d.mkdir()
    rc, _, err = _run(["run", "small", "--run-dir", str(d), "--quiet"], capsys)
    assert rc == 2 and "--force" in err


def test_force_reuses_a_run_dir_that_holds_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--run-dir D --force` twice: the second run replaces the first (the machine was built
    without the flag and refused D once it held a summary)."""
    d = tmp_path / "exact"
    for _ in range(2):
        rc, _, err = _run(["run", "tiny", "--run-dir", str(d), "--force", "--quiet"], capsys)
        assert rc == 0, err
    assert json.loads((d / "summary.json").read_text())["outcome"] == "ok"
    rc, _, err = _run(["run", "tiny", "--run-dir", str(d), "--quiet"], capsys)
    assert rc == 2 and "--force" in err


def test_analyze_refuses_a_directory_that_is_not_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = _run(["analyze", str(tmp_path)], capsys)
    assert rc == 2 and "not a run directory" in err


def test_analyze_reads_a_compressed_run_that_never_wrote_its_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run killed before its summary leaves only its event log; with --compress that is
    events.jsonl.zst, which analyze reads as it reads events.jsonl."""
    d = tmp_path / "cut"
    rc, _, err = _run(["run", "tiny", "--run-dir", str(d), "--compress", "--quiet", "--no-plots"], capsys)
    assert rc == 0, err
    (d / "summary.json").unlink()
    assert not (d / "events.jsonl").exists() and (d / "events.jsonl.zst").exists()
    rc, out, err = _run(["analyze", str(d), "--out", str(tmp_path / "plots")], capsys)
    assert rc == 0, err
    assert "plot:" in out


def test_trace_with_a_bad_line_is_refused_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.lackey"
    bad.write_text("I  04000000,4\n L 7ff000010,8\n S zz,8\n")
    rc, _, err = _run(["run", "small", "--out", str(tmp_path / "o"), "--quiet",
                       "--trace", f"lackey:{bad}"], capsys)  # fmt: skip
    assert rc == 2 and "bad.lackey" in err and "3" in err
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").glob("*/summary.json"))


def test_run_dir_or_out_that_is_a_file_is_refused_as_such(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12 item 20: --run-dir (or --out) naming a file says so, with or without --force."""
    f = tmp_path / "afile"
    f.write_text("x")
    for argv in (["--run-dir", str(f)], ["--run-dir", str(f), "--force"], ["--out", str(f)]):
        rc, _, err = _run(["run", "small", "--quiet", *argv], capsys)
        assert rc == 2 and f"{f} is a file, not a directory" in err, err
    assert f.read_text() == "x"


@pytest.mark.parametrize(
    "argv_extra",
    [
        ["--set", "device.read_latency_ns=5000"],  # model "none" of tiny has no parameters
        ["--set", 'device.fail_write_slots="9-3"'],
        ["--trace", "lackey:EMPTY"],
    ],
)
def test_a_refused_run_leaves_nothing_behind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv_extra: list[str]
) -> None:
    """Issue 12 item 13: input found bad late (device models, traces) is refused before the
    run directory exists; runs/latest stays where it was."""
    (tmp_path / "empty.lackey").write_text("")
    argv_extra = [a.replace("EMPTY", str(tmp_path / "empty.lackey")) for a in argv_extra]
    out = tmp_path / "runs"
    out.mkdir()
    (out / "tiny-s7-1").mkdir()
    (out / "latest").symlink_to("tiny-s7-1")
    rc, _, err = _run(["run", "tiny", "--out", str(out), "--quiet", *argv_extra], capsys)
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert sorted(p.name for p in out.iterdir()) == ["latest", "tiny-s7-1"]
    assert (out / "latest").readlink() == Path("tiny-s7-1")
    d = tmp_path / "exact"
    rc, _, err = _run(["run", "tiny", "--run-dir", str(d), "--quiet", *argv_extra], capsys)
    assert rc == 2 and not d.exists()


def test_exit_status_says_whether_every_workload_finished(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12 item 14: 0 only when every workload finished and nothing mismatched; a killed
    process, a limit: 1; the codes are in `emu --help`."""
    rc, _, _ = _run(["run", "tiny", "--out", str(tmp_path), "--quiet"], capsys)
    assert rc == 0
    rc, _, _ = _run(["run", "tiny", "--out", str(tmp_path), "--quiet",
                     "--set", "machine.max_virtual_ns=20000"], capsys)  # fmt: skip
    assert rc == 1
    s = json.loads((tmp_path / "latest" / "summary.json").read_text())
    assert s["outcome"] == "limit" and {w["status"] for w in s["workloads"]} == {"cut"}
    with pytest.raises(SystemExit):
        main(["--help"])
    out, _ = capsys.readouterr()
    for code in ("0 ", "1 ", "2 ", "130", "143"):
        assert f"\n  {code}" in out, code


def test_a_panic_prints_its_traceback_on_stderr_even_when_quiet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A kernel developer's broken daemon (docs/try-your-own-daemon.md): `emu run` exits 1
    and shows the panic with the traceback into the daemon's own file, not only summary.json."""
    import kernel.uvm.uvm_pdaemon as seed

    text = Path(seed.__file__).read_text()
    old = "(uvmexp.active + uvmexp.inactive) // 3"
    assert text.count(old) == 1
    bad = tmp_path / "broken.py"
    bad.write_text(text.replace(old, "(uvmexp.active + uvmexp.inactive) // 0"))
    rc, out, err = _run(["run", "tiny", "--out", str(tmp_path / "runs"), "--quiet",
                         "--set", f"kernel.pdaemon={bad}"], capsys)  # fmt: skip
    assert rc == 1 and out == ""
    assert "emu: the run ended in a panic: kthread pagedaemon: ZeroDivisionError" in err
    assert f'File "{bad}", line' in err and "// 0" in err and "summary.json" in err
    rc, _, err = _run(["run", "tiny", "--out", str(tmp_path / "runs"), "--quiet"], capsys)
    assert rc == 0 and err == ""


def test_exit_status_of_a_summary() -> None:
    from emu.summary import exit_status

    ok = {"outcome": "ok", "integrity": {"mismatches": 0}, "workloads": [{"status": "ok"}]}
    assert exit_status(ok) == 0
    assert exit_status({**ok, "integrity": {"mismatches": 1}}) == 1
    assert exit_status({**ok, "workloads": [{"status": "ok"}, {"status": "error"}]}) == 1
    assert exit_status({**ok, "outcome": "deadlock"}) == 1
    assert exit_status({**ok, "outcome": "interrupted"}, 15) == 143


def test_output_off_a_terminal_is_not_cut_and_progress_is_plain_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12 item 19: `emu run | tee` prints whole tables, and progress lines on stderr."""
    from emu import harness

    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr(harness, "PROGRESS_EVERY_S", 0.0)
    rc, out, err = _run(["run", "tiny", "--out", str(tmp_path), "--no-plots"], capsys)
    assert rc == 0
    assert "processes done" in err and "\r" not in err and "\x1b" not in err
    lines = out.splitlines()
    assert max(len(x) for x in lines) > 80 and not any("…" in x for x in lines)
    assert "tiny-s7-1" in out and "latest" not in out.split("run directory:")[0]
