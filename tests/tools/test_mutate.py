"""tools/mutate.py: the filter ``make mutate`` adds to mutmut's, the sample, the report."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutate", ROOT / "tools" / "mutate.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["mutate"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


mutate = _load()
M = "kernel.uvm.uvm_pdaemon."


def _diff(old: str, new: str) -> str:
    p = "kernel/uvm/uvm_pdaemon.py"
    return f"--- {p}\n+++ {p}\n@@ -1,3 +1,3 @@\n     a = 1\n-{old}\n+{new}\n     b = 2"


def test_the_modules_are_mutmuts_only_mutate_list() -> None:
    assert mutate.modules(ROOT / "pyproject.toml")[0] == "kernel/uvm/uvm_pdaemon.py"
    assert mutate.module_of("kernel/uvm/uvm_pdaemon_1_154.py") == "kernel.uvm.uvm_pdaemon_1_154"


def test_function_of_a_mutant_name() -> None:
    assert mutate.function_of(M + "x_uvm_wait__mutmut_3") == "x_uvm_wait"
    assert mutate.function_of(M + "x__pass_end__mutmut_12") == "x__pass_end"


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("x_uvmpd_scan__mutmut_1", None),
        ("x__pass_begin__mutmut_1", "port helper"),  # _pass_begin
        ("xǁ_PassSnapǁ__init____mutmut_1", "port helper"),  # a method
    ],
)
def test_only_the_ported_functions_are_tested(name: str, why: str | None) -> None:
    assert mutate.excluded(M + name, _diff("    x = y - z", "    x = y + z")) == why


@pytest.mark.parametrize(
    ("old", "new", "why"),
    [
        ('    a = cast("VmAnon", pg.uanon)', '    a = cast("XXVmAnonXX", pg.uanon)', "cast type"),
        ('    a = cast("VmAnon", pg.uanon)', "    a = cast(None, pg.uanon)", "cast type"),
        ('    a = cast("VmAnon", pg.uanon)', "    a = cast(pg.uanon)", None),  # TypeError
        ('    a = cast("VmAnon", pg.uanon)', '    a = cast("VmAnon", None)', None),
        ('    if f and cast("VmAnon", p).s:', '    if f or cast("VmAnon", p).s:', None),
    ],
)
def test_a_change_confined_to_the_type_argument_of_cast_is_left_out(
    old: str, new: str, why: str | None
) -> None:
    assert mutate.excluded(M + "x_uvmpd_scan__mutmut_9", _diff(old, new)) == why


def test_change_is_the_mutated_code_on_one_line() -> None:
    assert mutate.change(_diff("    x = y - z", "    x = y + z")) == "x = y + z"


def test_a_sample_is_the_same_for_the_same_seed() -> None:
    names = [f"{M}x_f__mutmut_{i}" for i in range(100)]
    a = mutate.sample(names, 10)
    assert a == mutate.sample(list(reversed(names)), 10) and len(set(a)) == 10
    assert a != mutate.sample(names, 10, seed=18)
    assert mutate.sample(names, 500) == sorted(names)


def test_equivalents_are_read_from_the_docs_list() -> None:
    text = (
        "intro\n"
        "- `kernel.uvm.uvm_pdaemon.x_f__mutmut_2` `x = (17 * 1024) >> PAGE_SHIFT`: same pages\n"
        "- not an entry\n"
    )
    (name, e), *rest = mutate.equivalents(text).items()
    assert rest == [] and name == M + "x_f__mutmut_2"
    assert (e.change, e.reason) == ("x = (17 * 1024) >> PAGE_SHIFT", "same pages")


def test_tally_subtracts_the_equivalents_that_survived() -> None:
    diffs = {f"{M}x_f__mutmut_{i}": _diff("    x = 1", f"    x = {i}") for i in range(1, 6)}
    results = {
        f"{M}x_f__mutmut_1": "killed",
        f"{M}x_f__mutmut_2": "timeout",
        f"{M}x_f__mutmut_3": "survived",  # equivalent
        f"{M}x_f__mutmut_4": "survived",
        f"{M}x_f__mutmut_5": "killed",  # listed, but killed: stale
    }
    equiv = {
        f"{M}x_f__mutmut_3": mutate.Equivalent("x = 3", "r"),
        f"{M}x_f__mutmut_5": mutate.Equivalent("x = 5", "r"),
    }
    report = mutate.Report(mutants=7, excluded=Counter({"port helper": 2}))
    mutate.tally(report, results, diffs, equiv)
    assert (report.tested, report.detected, report.equivalent) == (5, 3, 1)
    assert report.score == 75.0  # 3 of 4
    assert report.survivors == {f"{M}x_f__mutmut_4": "survived: x = 4"}
    assert report.stale == [f"{M}x_f__mutmut_5"]
    text = mutate.render(report, "title", 90.0)
    assert "score                      75.0 %" in text and "1.5 min" in text


def test_a_listed_equivalent_whose_code_changed_is_stale_and_counts_as_a_survivor() -> None:
    name = f"{M}x_f__mutmut_1"
    report = mutate.Report(mutants=1)
    equiv = {name: mutate.Equivalent("x = 9", "r")}
    mutate.tally(report, {name: "survived"}, {name: _diff("    x = 1", "    x = 2")}, equiv)
    assert report.equivalent == 0 and report.stale == [name] and report.score == 0.0


def test_a_stale_entry_names_the_survivors_of_its_function_with_the_same_change() -> None:
    """An edit above a listed mutant renumbers it: the report says which survivor of the
    same function now makes the listed change."""
    old, new = f"{M}x_f__mutmut_3", f"{M}x_f__mutmut_2"
    diffs = {
        old: _diff("    x = 1", "    x = 2"),
        new: _diff("    y = 1", "    y = None"),
        f"{M}x_g__mutmut_1": _diff("    y = 1", "    y = None"),  # another function
    }
    results = {old: "survived", new: "survived", f"{M}x_g__mutmut_1": "survived"}
    report = mutate.Report(mutants=3)
    mutate.tally(report, results, diffs, {old: mutate.Equivalent("y = None", "r")})
    assert report.stale == [f"{old}  (same change now: {new})"]


def test_tally_adds_up_mutmuts_time_on_the_tested_mutants() -> None:
    diffs = {f"{M}x_f__mutmut_{i}": _diff("    x = 1", f"    x = {i}") for i in (1, 2)}
    results = {f"{M}x_f__mutmut_1": "killed", f"{M}x_f__mutmut_2": "survived"}
    report = mutate.Report(mutants=2)
    durations = {f"{M}x_f__mutmut_1": 30.0, f"{M}x_f__mutmut_2": 60.0, f"{M}x_g__mutmut_1": 9.0}
    mutate.tally(report, results, diffs, {}, durations)
    assert report.seconds == 90.0
    assert "1.5 min" in mutate.render(report, "kernel/uvm/uvm_pdaemon.py", report.seconds)
