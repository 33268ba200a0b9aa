"""docs/try-your-own-daemon.md runs as printed (issue 13 item 4): every line of its sh blocks,
in order, from a directory laid out as a checkout after `make run`; the compare table the doc
shows is the one the commands print; the broken daemon panics with its traceback and exit
status 1; and the whole walkthrough takes well under a minute."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "try-your-own-daemon.md"
BUDGET_S = 60.0  # "under a minute" for a person; the commands alone take about 5 s here


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), re.S)


def _commands() -> list[str]:
    lines = [ln for b in _blocks("sh") for ln in b.splitlines() if ln.strip()]
    assert any(ln.startswith(".venv/bin/emu compare ") for ln in lines), "no emu compare line"
    return lines


def _words(line: str) -> list[str]:
    return line.split()


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory laid out as a checkout after `make run`: .venv/bin and the kernel sources."""
    root = tmp_path_factory.mktemp("checkout")
    (root / ".venv").mkdir()
    (root / ".venv" / "bin").symlink_to(Path(sys.executable).parent)
    (root / "kernel").symlink_to(ROOT / "kernel")
    return root


def test_the_walkthrough_runs_as_printed_and_prints_what_the_doc_shows(checkout: Path) -> None:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "120"}
    shown = [_words(ln) for ln in _blocks("text")[0].splitlines() if ln.strip()]
    t0 = time.perf_counter()
    for line in _commands():
        r = subprocess.run(["bash", "-c", line], cwd=checkout, capture_output=True, text=True,
                           env=env, timeout=BUDGET_S)  # fmt: skip
        assert r.returncode == 0, f"{line}\n{r.stdout}\n{r.stderr}"
        if line.startswith("grep "):
            assert "316:" in r.stdout, "the doc names line 316 of the port"
        if " compare " in line:
            printed = [_words(ln) for ln in r.stdout.splitlines()]
            for row in shown:  # each metric row of the doc, as printed (spacing aside)
                assert row in printed, f"doc shows {' '.join(row)!r}; compare printed:\n{r.stdout}"
            assert "./mydaemon.py" in r.stdout
            for png in ("memory.png", "pageouts.png", "fault_latency.png"):
                assert (checkout / "runs" / "stock-vs-mine" / png).exists()
        if "broken.py --run-dir" in line:
            assert r.stdout.strip() == "exit status: 1"
            err = r.stderr
            assert "emu: the run ended in a panic: kthread pagedaemon: ZeroDivisionError" in err
            assert 'broken.py", line 316, in uvm_pageout' in err and "// 0" in err
            assert "runs/broken/summary.json" in err
            assert (checkout / "runs" / "broken" / "panic.txt").exists()
    elapsed = time.perf_counter() - t0
    assert elapsed < BUDGET_S, f"the walkthrough took {elapsed:.1f} s"
