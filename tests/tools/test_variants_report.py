"""tools/variants_report.py: the tables of docs/variants.md from sweeps, --write and --check."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import orjson
import pytest

from emu.cli import main as emu

ROOT = Path(__file__).resolve().parents[2]
SPEC = """
[sweep]
scenario = "{scenario}"
seeds = [1, 2]
set = ["kernel.check_every_pass=false"{extra}]

[grid]
"kernel.pdaemon" = ["1.105", "1.154"]
"kernel.yield_ns" = [20000]
"""
DOC = """# findings

<!-- variants:headline -->
old
<!-- /variants:headline -->

text

<!-- variants:scenarios -->
<!-- /variants:scenarios -->
"""


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("variants_report",
                                                  ROOT / "tools" / "variants_report.py")  # fmt: skip
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["variants_report"] = mod
    spec.loader.exec_module(mod)
    return mod


report = _load()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two tiny sweeps as docs/variants/ names them: `tiny` ends ok, `small` is cut by a
    virtual-time limit in every cell."""
    root = tmp_path_factory.mktemp("variants")
    for name, extra in (("tiny", ""), ("small", ', "machine.max_virtual_ns=100000"')):
        spec = root / f"{name}.toml"
        spec.write_text(SPEC.format(scenario=name, extra=extra))
        emu(["sweep", str(spec), "--out", str(root / "runs" / name), "--jobs", "1"])
    return root / "runs"


def test_tables_come_from_the_compare_json_and_the_results(runs: Path) -> None:
    groups = report.load_groups(runs)
    assert [label for _, label, _ in groups] == ["tiny, 20 µs", "small, 20 µs"]
    js = orjson.loads((runs / "tiny" / "compare" / "tiny-20-us.json").read_bytes())["runs"]
    assert [(r["pdaemon"], r["seed"]) for r in js] == [("1.105", 1), ("1.105", 2),
                                                        ("1.154", 1), ("1.154", 2)]  # fmt: skip
    by = groups[0][2]
    assert [r["pages_written"] for r in by["1.105"]] == [r["metrics"]["pages_written"]
                                                         for r in js[:2]]  # fmt: skip
    head = report.headline(groups)
    mean = (js[0]["metrics"]["pages_written"] + js[1]["metrics"]["pages_written"]) / 2
    assert f"| tiny, 20 µs | 2 | {report._fmt(mean, 'n')} → " in head
    assert "| small, 20 µs | 2 | limit in 2/2 seeds (at 100 µs, 100 µs) → limit in 2/2" in head
    detail = report.detail(groups, ("tiny",))
    assert "| daemon passes |" in detail and "| batches waking the daemon | 0 → 0 |" in detail


def test_write_fills_the_marked_blocks_and_check_finds_a_changed_number(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tmp_path / "variants.md"
    doc.write_text(DOC)
    assert report.main([str(runs), "--check", str(doc)]) == 1  # "old" is not the table
    assert report.main([str(runs), "--write", str(doc)]) == 0
    text = doc.read_text()
    assert "old" not in text and "| scenario or trace, quantum |" in text and "\ntext\n" in text
    assert report.main([str(runs), "--check", str(doc)]) == 0
    doc.write_text(text.replace(" → ", " → 9", 1))
    capsys.readouterr()
    assert report.main([str(runs), "--check", str(doc)]) == 1
    assert "block 'headline' differs" in capsys.readouterr().out
