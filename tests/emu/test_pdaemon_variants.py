"""The page daemon chosen at boot (issue 13 item 1, docs/pdaemon-interface.md).

``[kernel] pdaemon`` names a built-in variant ("1.105", "1.154"), a Python file or a module;
``--set kernel.pdaemon=...`` and ``Machine(kernel={"pdaemon": ...})`` work the same. Bad
values are refused before any run directory exists (exit status 2, ScenarioError). A copy of
kernel/uvm/uvm_pdaemon.py runs as a user daemon unchanged, and an edited one runs the edit.
A daemon that raises ends the run with its traceback; one that never sleeps still lets
virtual time pass, so ``max_virtual_ns`` stops it. Every variant is deterministic.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

import kernel.uvm.uvm_pdaemon as uvm_pdaemon
import kernel.uvm.uvm_pdaemon_1_154 as uvm_pdaemon_1_154
from emu.cli import main
from emu.machine import Machine
from emu.scenario import ScenarioError, load_scenario

SEED_DAEMON = Path(uvm_pdaemon.__file__)
DAEMON_154 = Path(uvm_pdaemon_1_154.__file__)


def _events(run_dir: Path) -> list[dict[str, Any]]:
    out = []
    for line in (run_dir / "events.jsonl").read_bytes().splitlines():
        e = orjson.loads(line)
        out.append({k: v for k, v in e.items() if not k.startswith("wall")})
    return out


def _run(tmp: Path, name: str, pdaemon: str, *sets: str, loop: str = "asyncio") -> Any:
    """The tiny scenario with ``pdaemon``, run into tmp/name."""
    sc = load_scenario("tiny", [f"kernel.pdaemon={pdaemon}", f"machine.loop={loop}", *sets])
    m = Machine.from_scenario(sc, tmp / name)
    return m.run()


def _copy(tmp: Path, src: Path, name: str, old: str = "", new: str = "") -> Path:
    """A copy of a daemon module saved elsewhere, with ``old`` replaced by ``new`` once."""
    text = src.read_text()
    if old:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    dst = tmp / name
    dst.write_text(text)
    return dst


# === choosing ====================================================================================


def test_set_gives_the_key_a_string_and_each_form_is_accepted(tmp_path: Path) -> None:
    """``--set kernel.pdaemon=1.154`` is the string "1.154" (not the number); a path and a
    module name are accepted too; the default is "1.105"."""
    assert load_scenario("tiny").kernel.pdaemon == "1.105"
    assert load_scenario("tiny", ["kernel.pdaemon=1.154"]).kernel.pdaemon == "1.154"
    path = _copy(tmp_path, SEED_DAEMON, "mine.py")
    assert load_scenario("tiny", [f"kernel.pdaemon={path}"]).kernel.pdaemon == str(path)
    mod = "kernel.uvm.uvm_pdaemon_1_154"
    assert load_scenario("tiny", [f"kernel.pdaemon={mod}"]).kernel.pdaemon == mod
    assert Machine(ram="64pages", kernel={"pdaemon": "1.154"}).scenario.kernel.pdaemon == "1.154"


def test_the_summary_and_run_start_name_the_daemon(tmp_path: Path) -> None:
    s = _run(tmp_path, "a", "1.154", "kernel.yield_ns=20000")
    assert s["outcome"] == "ok" and s["pdaemon"] == {"name": "1.154"}
    assert _events(tmp_path / "a")[0]["pdaemon"] == {"name": "1.154"}
    assert s["uvmexp"]["pdpageouts"] > 0 and s["integrity"]["mismatches"] == 0


def test_a_copy_of_the_seed_daemon_runs_unchanged_and_an_edit_shows(tmp_path: Path) -> None:
    """A copy of kernel/uvm/uvm_pdaemon.py saved anywhere runs as a user daemon: unchanged, it
    decides exactly as the built-in (the same event log but for run.start's name); with the
    inactive target at half the queues instead of a third (``// 3`` -> ``// 2``) it
    deactivates more. The summary names the file and its sha256."""
    same = _copy(tmp_path, SEED_DAEMON, "same.py")
    edited = _copy(tmp_path, SEED_DAEMON, "edited.py",
                   "uvmexp.inactarg = (uvmexp.active + uvmexp.inactive) // 3",
                   "uvmexp.inactarg = (uvmexp.active + uvmexp.inactive) // 2")  # fmt: skip
    base = _run(tmp_path, "base", "1.105")
    s_same = _run(tmp_path, "same", str(same))
    s_edit = _run(tmp_path, "edit", str(edited))
    assert s_same["pdaemon"]["name"] == str(same) and len(s_same["pdaemon"]["sha256"]) == 64
    assert s_same["pdaemon"]["sha256"] != s_edit["pdaemon"]["sha256"]
    e_base, e_same = _events(tmp_path / "base"), _events(tmp_path / "same")
    assert e_base[1:] == e_same[1:]
    assert {k: v for k, v in e_base[0].items() if k != "pdaemon"} == {
        k: v for k, v in e_same[0].items() if k != "pdaemon"
    }
    assert s_edit["outcome"] == "ok" and s_edit["integrity"]["mismatches"] == 0
    assert s_edit["uvmexp"]["pddeact"] > base["uvmexp"]["pddeact"]


def test_a_module_name_is_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A module on sys.path, named with dots, is a daemon too."""
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    shutil.copy(SEED_DAEMON, pkg / "mydaemon.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    s = _run(tmp_path, "m", "mypkg.mydaemon")
    assert s["outcome"] == "ok" and s["pdaemon"] == {"name": "mypkg.mydaemon"}


# === bad input ===================================================================================


def _refused(value: str) -> str:
    with pytest.raises(ScenarioError) as ei:
        load_scenario("tiny", [f"kernel.pdaemon={value}"])
    msg = str(ei.value)
    assert f"kernel.pdaemon = {value!r}" in msg and "built-in variants: 1.105, 1.154" in msg
    assert "\n" not in msg
    return msg


def test_bad_daemons_are_refused_naming_the_value_and_the_variants(tmp_path: Path) -> None:
    assert "no built-in page daemon of that revision" in _refused("1.200")
    assert "no such file" in _refused(str(tmp_path / "nope.py"))
    assert "no module of that name" in _refused("mypkg_nowhere.mydaemon")
    broken = tmp_path / "broken.py"
    broken.write_text("import kernel.uvm.uvm_page\nx = undefined_name\n")
    msg = _refused(str(broken))
    assert "fails to import: NameError" in msg and f"{broken}:2" in msg
    syntax = tmp_path / "syntax.py"
    syntax.write_text("def uvm_pageout(k:\n")
    assert "fails to import: SyntaxError" in _refused(str(syntax))
    half = tmp_path / "half.py"
    half.write_text("async def uvm_pageout(k):\n    pass\n")
    msg = _refused(str(half))
    assert "it lacks uvm_aiodone_daemon, uvm_wait" in msg
    assert "uvm_pageout, uvm_aiodone_daemon, uvm_wait" in msg
    missing_dep = tmp_path / "dep.py"
    missing_dep.write_text("import no_such_package_xyz\n")
    assert "fails to import: ModuleNotFoundError" in _refused(str(missing_dep))


def test_the_api_refuses_a_bad_daemon_before_it_runs() -> None:
    with pytest.raises(ScenarioError, match=r"built-in variants: 1\.105, 1\.154"):
        Machine(ram="64pages", kernel={"pdaemon": "1.0"})


def test_the_cli_exits_2_before_any_run_directory_exists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs"
    rc = main(["run", "tiny", "--out", str(out), "--quiet", "--set", "kernel.pdaemon=./nope.py"])
    _, err = capsys.readouterr()
    assert rc == 2 and "kernel.pdaemon = './nope.py'" in err and "1.105, 1.154" in err
    assert err.count("\n") == 1 and not out.exists()


# === a daemon that fails =========================================================================


def test_a_daemon_that_raises_ends_the_run_with_its_traceback(tmp_path: Path) -> None:
    bug = _copy(tmp_path, SEED_DAEMON, "bug.py", "        snap = uvmpd_pass.pass_begin(k)",
                "        raise RuntimeError('my daemon bug')\n"
                "        snap = uvmpd_pass.pass_begin(k)")  # fmt: skip
    s = _run(tmp_path, "bug", str(bug))
    # an exception in a kernel thread is a panic (kern_kthread); its traceback shows the file
    assert s["outcome"] == "panic" and "my daemon bug" in s["error"]
    assert "bug.py" in s["traceback"] and "my daemon bug" in s["traceback"]
    assert _events(tmp_path / "bug")[-1]["traceback"] == s["traceback"]


def test_a_daemon_panic_ends_the_run_as_a_panic(tmp_path: Path) -> None:
    bug = _copy(tmp_path, SEED_DAEMON, "panics.py", "        snap = uvmpd_pass.pass_begin(k)",
                "        raise Panic('uvm_pageout: my assertion')\n"
                "        snap = uvmpd_pass.pass_begin(k)")  # fmt: skip
    s = _run(tmp_path, "panic", str(bug))
    assert s["outcome"] == "panic" and "my assertion" in s["error"]
    assert "panics.py" in s["traceback"] and (tmp_path / "panic" / "panic.txt").exists()


async def _long(p: Any) -> None:
    await p.compute(1_000_000_000)  # a second of virtual CPU time


def test_a_daemon_that_never_sleeps_still_lets_the_watchdog_fire(tmp_path: Path) -> None:
    """A daemon whose loop never sleeps: each pass charges its CPU time (uvmpd_pass.pass_end),
    so virtual time passes and ``machine.max_virtual_ns`` ends the run."""
    spin = _copy(tmp_path, SEED_DAEMON, "spin.py",
                 "        if not k.uvm_nowait_failed and pmr.allocs.empty():",
                 "        if False:")  # fmt: skip
    m = Machine(ram="64pages", swap="256pages", seed=1, device="none", loop="asyncio",
                run_dir=tmp_path / "spin", kernel={"pdaemon": str(spin)},
                max_virtual_ns=3_000_000)  # fmt: skip
    m.attach(_long, name="long")
    s = m.run()
    assert s["outcome"] == "limit" and "max_virtual_ns" in s["error"]
    assert s["daemon"]["passes"] > 1000 and s["virtual_ns"] >= 3_000_000


# === determinism =================================================================================


@pytest.mark.parametrize("variant", ["1.105", "1.154", "file"])
def test_same_seed_same_log_for_every_variant_on_both_loops(tmp_path: Path, variant: str) -> None:
    """Same scenario and seed: the same event log (wall fields and the loop's name aside) on
    asyncio twice and on uvloop, for each built-in and for a user's file (a copy of 1.154).
    The 1.154 runs use a 20 us quantum (``kernel.yield_ns``) to keep them short."""
    pd = str(_copy(tmp_path, DAEMON_154, "mine.py")) if variant == "file" else variant
    sets = [] if variant == "1.105" else ["kernel.yield_ns=20000"]
    logs = []
    for i, loop in enumerate(("asyncio", "uvloop", "asyncio")):
        _run(tmp_path, f"r{i}", pd, *sets, loop=loop)
        evs = _events(tmp_path / f"r{i}")
        evs[0].pop("loop")
        logs.append(evs)
    assert logs[0] == logs[1] == logs[2]
    assert any(e["event"] == "uvmpd_scan_inactive.pageout" for e in logs[0])
