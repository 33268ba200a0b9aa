"""emu.config: one typed definition per scenario section drives validation, messages, --set
coercion and the key list (issue 11 item 5)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from emu.cli import main
from emu.config import SECTIONS, KernelSection, coerce, keys_help
from emu.machine import Machine
from emu.scenario import ScenarioError, load_scenario, parse_set
from emu.workloads import info


def test_a_loaded_scenario_is_typed_and_filled_with_the_definitions_defaults() -> None:
    sc = load_scenario("small")
    assert sc.machine.seed == 7 and sc.machine.loop == "asyncio" and str(sc.machine.ram) == "512KiB"
    assert sc.kernel == KernelSection(diagnostic=True, check_every_pass=True)
    assert sc.device.model == "none" and sc.device.faults()["fail_nth_io"] == 0
    assert [w.kind for w in sc.workloads] == ["hog", "uniform"]
    assert sc.workloads[0].params == {"step_pages": 40, "max_pages": 120, "sample": 8}


@pytest.mark.parametrize(
    ("item", "value"),
    [
        ("machine.seed=3", 3),
        ("machine.ram=32MiB", "32MiB"),
        ("device.fail_write_rate=1", 1),
        ("device.fail_read_slots=5", "5"),  # a string key takes the text, not the number
        ("device.fail_read_slots=1.105", "1.105"),
        ('device.model="hdd"', "hdd"),
        ("kernel.diagnostic=false", False),
        ("machine.seed=abc", "abc"),  # refused later, with the key's type in the message
    ],
)
def test_set_values_get_the_declared_type_of_their_key(item: str, value: object) -> None:
    got = parse_set(item)[2]
    assert got == value and type(got) is type(value)


def test_coerce_of_an_unknown_key_is_the_toml_value() -> None:
    assert coerce(SECTIONS["kernel"], "nosuch", "1.105") == 1.105


def test_every_key_of_every_section_is_listed_by_emu_scenarios_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = keys_help()
    for section, cls in SECTIONS.items():
        assert f"[{section}]" in text
        for f in msgspec.structs.fields(cls):
            assert f"  {f.name} = " in text, f"{section}.{f.name}"
    with pytest.raises(SystemExit):
        main(["scenarios", "--help"])
    out = capsys.readouterr().out
    assert "fail_write_rate = 0.0  (a number from 0 to 1)" in out


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"seed": "abc"}, "machine.seed = 'abc'"),
        ({"quantum_ns": -1}, "machine.quantum_ns = -1: must be >= 0"),
        ({"faults": {"fail_read_rate": 1.5}}, "device.fail_read_rate = 1.5: must be from 0 to 1"),
        ({"device_params": {"rpm": "fast"}}, "device.rpm = 'fast'"),
        ({"kernel": {"debug": 1}}, "kernel.debug = 1"),
        ({"nosuch": 1}, "unknown key machine.nosuch"),
    ],
)
def test_the_api_keywords_validate_through_the_same_definition(
    kw: dict[str, object], needle: str
) -> None:
    with pytest.raises(ScenarioError, match=needle.replace(".", r"\.").replace("(", r"\(")):
        Machine(**kw)  # type: ignore[arg-type]


def test_workload_params_are_typed_from_the_signature() -> None:
    params = {p.name: p for p in info("zipf").params}
    assert params["pages"].default == 1024 and params["pages"].what.startswith("an integer")
    assert params["scatter"].what == "true or false"
    assert info("trace_replay").params[0].required


@pytest.mark.parametrize(
    ("item", "needle"),
    [
        ("machine.seed=abc", "machine.seed = 'abc': expected an integer (seed of every"),
        ("machine.seed=1.5", "machine.seed = 1.5: expected an integer"),
        ("kernel.debug=1", "kernel.debug = 1: expected true or false (DEBUG:"),
        ("device.rpm=fast", "device.rpm = 'fast': expected an integer (hdd: spindle speed)"),
    ],
)
def test_a_value_of_the_wrong_type_says_which_type_is_expected(
    item: str, needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12 item 20: ``seed = 'abc'`` -> "expected an integer", then what the key is."""
    assert main(["run", "small", "--quiet", "--out", str(tmp_path), "--set", item]) == 2
    assert needle in capsys.readouterr().err
