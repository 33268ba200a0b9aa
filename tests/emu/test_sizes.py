"""Sizes: bytes in the API, a unit in TOML and --set, whole pages, RAM the host can back,
no swap at all, and the buffer cache's percentage (issue 12 item 17)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import emu.scenario
from emu.cli import main
from emu.machine import Machine
from emu.scenario import ScenarioError, load_scenario


def test_an_int_size_in_the_api_is_bytes() -> None:
    m = Machine(ram=16 * 1024 * 1024, swap=64 * 4096)
    assert m.ram_pages == 4096 and m.swap_pages == 64  # not 64 GiB of RAM
    m = Machine(ram="300pages", swap="1MiB")
    assert m.ram_pages == 300 and m.swap_pages == 256
    assert load_scenario({"machine": {"ram": 1 << 20}}).machine.ram.pages == 256


@pytest.mark.parametrize(
    ("item", "needle"),
    [
        ("machine.ram=128", "machine.ram = 128: a bare number is not a size; give a unit: KiB, "
                            'MiB, GiB or pages (e.g. "64MiB" or "16384pages")'),
        ('machine.swap="4096"', "machine.swap = '4096': a bare number is not a size; give a unit"),
        ("machine.swap=lots", "machine.swap = 'lots': not a size; give a unit"),
        ("machine.ram=6KiB", "machine.ram = '6KiB': 6 KiB is not a whole number of 4 KiB pages "
                             "(6144 bytes = 1 page + 2048 bytes); use a multiple of 4 KiB"),
        ("machine.ram=0", "machine.ram = '0' is 0 pages; the kernel needs at least 64 pages"),
        ("machine.swap=1pages", "is 1 page, less than one page per swap device "
                                "(machine.swap_devices = 2)"),
        ("kernel.bufcachepercent=95", "kernel.bufcachepercent = 95: must be from 5 to 90"),
        ("kernel.bufcachepercent=0", "kernel.bufcachepercent = 0: must be from 5 to 90"),
    ],
)
def test_bad_sizes_in_set_exit_2_with_the_figure_and_the_fix(
    item: str, needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "small", "--quiet", "--out", str(tmp_path / "o"), "--set", item,
            "--set", "machine.swap_devices=2"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1, err


def test_a_bare_number_in_a_scenario_file_is_refused_with_the_units(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text("[machine]\nram = 256\n")
    with pytest.raises(ScenarioError, match=r"s\.toml: machine\.ram = 256: a bare number is not"):
        load_scenario(str(path))


def test_sizes_that_are_not_whole_pages_are_refused_in_the_api() -> None:
    with pytest.raises(ValueError, match=r"machine\.ram = 10000: 10000 bytes is not a whole "
                                         r"number of 4 KiB pages \(10000 bytes = 2 pages \+ 1808"):
        Machine(ram=10_000)
    with pytest.raises(TypeError, match=r"machine\.swap = 1\.5: expected a size"):
        Machine(swap=1.5)  # type: ignore[arg-type]


def test_more_ram_than_the_host_can_back_is_refused_with_both_figures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(emu.scenario, "host_memory", lambda: 1 << 30)
    with pytest.raises(ScenarioError, match=r"machine\.ram = '2GiB' is more than this host can "
                                            r'back: 2048 MiB asked, 1024 MiB of memory available; '
                                            r'use at most "1024MiB"'):
        Machine(ram="2GiB")
    assert Machine(ram="1GiB").ram_pages == 1 << 18


def test_no_swap_runs_end_to_end(tmp_path: Path) -> None:
    """OpenBSD runs without swap: what fits in RAM runs as usual; a process that needs more
    memory than RAM is killed "out of swap", and the run still ends normally."""
    m = Machine(ram="1MiB", swap=0, loop="asyncio", device="none",
                kernel={"check_every_pass": True})  # fmt: skip
    m.attach("uniform", name="fits", pages=64, accesses=300)
    s = m.run()
    assert s.outcome == "ok" and s.swap_pages == 0, s.error
    assert s.workloads[0]["status"] == "ok" and s.integrity["mismatches"] == 0
    assert s.io["writes"] == s.io["reads"] == 0

    rc = main(["run", "small", "--quiet", "--out", str(tmp_path), "--set", "machine.swap=0"])
    assert rc == 1  # issue 12 item 14: a process was killed, so the exit status says so
    s = json.loads((tmp_path / "latest" / "summary.json").read_text())
    assert s["outcome"] == "ok" and s["swap_pages"] == 0 and s["io"]["writes"] == 0
    assert s["uvmexp"]["pdpageouts"] == 0 and s["integrity"]["mismatches"] == 0
    failed = [w for w in s["workloads"] if w["status"] != "ok"]  # 2x overcommit, nowhere to page
    assert failed and all("killed: out of swap" in w["error"] for w in failed)
