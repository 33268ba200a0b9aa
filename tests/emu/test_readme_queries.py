"""Every query of the README's "Reading the log" runs as printed after `make run` (issue 12
item 18): the duckdb lines with the project's own `.venv/bin/duckdb`, the jq lines when the
machine has jq."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from emu.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"


def _queries() -> list[str]:
    text = README.read_text()
    section = text.split("## Reading the log", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "README: no sh block under 'Reading the log'"
    lines = [ln for ln in block.group(1).splitlines() if ln.strip()]
    assert any(ln.startswith(".venv/bin/duckdb ") for ln in lines)
    return lines


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory laid out as a checkout after `make run`: .venv/bin and runs/latest."""
    root = tmp_path_factory.mktemp("checkout")
    (root / ".venv").mkdir()
    (root / ".venv" / "bin").symlink_to(Path(sys.executable).parent)
    assert main(["run", "small", "--out", str(root / "runs"), "--quiet"]) == 0
    return root


@pytest.mark.parametrize("line", _queries())
def test_readme_query_runs_as_printed(checkout: Path, line: str) -> None:
    tool = line.split()[0]
    if tool == "jq" and shutil.which("jq") is None:
        pytest.skip("no jq on this machine")
    if tool.endswith("duckdb"):
        assert (checkout / tool).exists(), "duckdb-cli is a project dependency"
    r = subprocess.run(["bash", "-c", line], cwd=checkout, capture_output=True, text=True,
                       env={**os.environ, "NO_COLOR": "1"}, timeout=120)  # fmt: skip
    assert r.returncode == 0 and r.stdout.strip(), r.stderr
    assert "Error" not in r.stderr, r.stderr
    if "uvmexp.sample" in line:
        assert "ms" in r.stdout and "free" in r.stdout
    if "group by 1" in line:
        assert "uvm_pageout.pass" in r.stdout
