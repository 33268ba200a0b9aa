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
    """tools/variants_report.py as `python tools/variants_report.py` runs it: its directory
    first on the path, where it finds tools/variants_tables.py."""
    if str(ROOT / "tools") not in sys.path:
        sys.path.insert(0, str(ROOT / "tools"))
    spec = importlib.util.spec_from_file_location("variants_report",
                                                  ROOT / "tools" / "variants_report.py")  # fmt: skip
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["variants_report"] = mod
    spec.loader.exec_module(mod)
    return mod


report = _load()
tables = sys.modules["variants_tables"]


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


ENC_DOC = """# findings

<!-- variants:headline -->
old
<!-- /variants:headline -->

<!-- variants:encryption -->
old
<!-- /variants:encryption -->

<!-- variants:encryption_effect -->
old
<!-- /variants:encryption_effect -->
"""


@pytest.fixture(scope="module")
def enc_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`tiny` with swap encryption off, and its twin `enc-tiny` with it on."""
    root = tmp_path_factory.mktemp("variants-enc")
    for name, on in (("tiny", "false"), ("enc-tiny", "true")):
        spec = root / f"{name}.toml"
        spec.write_text(SPEC.format(scenario="tiny", extra=f', "kernel.swapencrypt={on}"'))
        emu(["sweep", str(spec), "--out", str(root / "runs" / name), "--jobs", "1"])
    return root / "runs"


def test_encryption_has_its_own_blocks_and_the_main_tables_stay_as_they_were(
    enc_runs: Path,
) -> None:
    groups = report.load_groups(enc_runs)
    labels = [(name, label) for name, label, _ in groups]
    assert labels == [("tiny", "tiny, 20 µs"), ("enc-tiny", "tiny, 20 µs")]
    made = report.blocks(enc_runs, groups)
    assert made["headline"].count("| tiny, 20 µs |") == 1  # encryption off only
    assert made["encryption"].count("| tiny, 20 µs | 2 |") == 1
    assert "| pages encrypted |" in made["encryption_detail"]
    assert "| pages in flight at a pass's end (max) |" in made["encryption_detail"]
    assert "pages encrypted" not in made["scenarios"] and "soft faults" not in made["scenarios"]
    off, on = groups[0][2], groups[1][2]
    assert all(r["swapencrypt.pages_encrypted"] > 0 for r in on["1.105"])
    effect = made["encryption_effect"]
    assert "| 1.105: encryption off → on | tiny, 20 µs |" in effect
    assert "| 1.154: encryption off → on | tiny, 20 µs |" in effect
    for d in tables.DAEMONS:  # each daemon's means, encryption off then on
        a = report._fmt(report._mean(off[d], "pages_written"), "n")
        b = report._fmt(report._mean(on[d], "pages_written"), "n")
        assert f"| pages written | {a} → {b} (×" in effect.split(f"| {d}:")[1]


def test_twins_are_matched_by_what_follows_the_sweeps_name() -> None:
    rows = {"1.105": [{"seed": 1}], "1.154": [{"seed": 1}]}
    groups = [("small-448k", "small-448k, 1 ms", rows), ("enc-small", "small, 1 ms", rows),
              ("ls", "ls 256KiB, 1 ms", rows), ("enc-ls", "ls 512KiB, 1 ms", rows)]  # fmt: skip
    assert tables._twins(groups, tables.CONTROLS) == [("small, 1 ms", rows, rows)]
    assert tables._twins(groups, {"ls": "enc-ls"}) == []  # another RAM size: no twin


def test_partial_check_and_blocks(
    enc_runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tmp_path / "variants.md"
    doc.write_text(ENC_DOC)
    assert report.main([str(enc_runs), "--write", str(doc), "--blocks", "encryption"]) == 0
    text = doc.read_text()
    assert "old\n<!-- /variants:headline -->" in text  # not asked for: left as it was
    assert "old\n<!-- /variants:encryption -->" not in text
    assert report.main([str(enc_runs), "--write", str(doc)]) == 0
    assert report.main([str(enc_runs), "--check", str(doc)]) == 0
    only_off = tmp_path / "runs"  # the encryption-off sweep rerun alone
    only_off.mkdir()
    (only_off / "tiny").symlink_to(enc_runs / "tiny")
    capsys.readouterr()
    assert report.main([str(only_off), "--check", str(doc)]) == 1
    assert report.main([str(only_off), "--check", str(doc), "--partial"]) == 0
    out = capsys.readouterr().out
    assert "block 'headline': 7 of 7 cells checked, the same" in out
    assert "block 'encryption': not checked (no runs for it)" in out
    text = doc.read_text()
    enc_at = text.index("<!-- variants:encryption -->")
    doc.write_text(text[:enc_at] + text[enc_at:].replace(" → ", " → 9", 1))
    assert report.main([str(only_off), "--check", str(doc), "--partial"]) == 0  # not checked
    doc.write_text(text.replace(" → ", " → 9", 1))  # in the headline
    capsys.readouterr()
    assert report.main([str(only_off), "--check", str(doc), "--partial"]) == 1
    assert "block 'headline' differs: tiny, 20 µs / pages written" in capsys.readouterr().out


def test_images_of_the_encryption_blocks(enc_runs: Path, tmp_path: Path) -> None:
    groups = report.load_groups(enc_runs)
    made = report.write_images(enc_runs, groups, tmp_path, ("encryption", "encryption_effect"))
    assert [p.name for p in made] == ["variants-enc-ratios.png", "variants-enc-effect.png"]
    assert all(p.stat().st_size > 1000 for p in made)
