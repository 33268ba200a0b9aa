"""Workload params are checked before the run against the workload's signature and
annotations: names, types, ranges (issue 12 item 12)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from emu.api import Pages, ProcessHandle
from emu.cli import main
from emu.machine import Machine
from emu.scenario import load_scenario

ZIPF = '[[workload]]\nkind = "zipf"\nname = "z"\naccesses = 64\n'


def _run(tmp_path: Path, toml: str, *argv: str) -> int:
    path = tmp_path / "s.toml"
    path.write_text('[machine]\nram = "512KiB"\nswap = "2MiB"\nloop = "asyncio"\n' + toml)
    return main(["run", str(path), "--out", str(tmp_path / "runs"), "--quiet", *argv])


@pytest.mark.parametrize(
    ("extra", "argv", "needle"),
    [
        ("nosuch = 1\n", [], "workload 'z' (zipf): unknown param nosuch; known params of zipf: "
                            "accesses, alpha, pages, scatter, think_ns, write_fraction"),
        ('think_ns = "many"\n', [], "workload 'z' (zipf): think_ns = 'many': expected an "
                                    "integer >= 0 (virtual CPU time spent after each page"),
        ("write_fraction = 2.0\n", [], "workload 'z' (zipf): write_fraction = 2.0: must be from "
                                       "0 to 1 (chance that an access writes"),
        ("pages = 0\n", [], "workload 'z' (zipf): pages = 0: must be >= 1 (region size in pages)"),
        ("", ["--set", "workload.z.alpha=-1"], "workload 'z' (zipf): alpha = -1: must be >= 0"),
        ("", ["--set", "workload.z.scatter=yes"], "scatter = 'yes': expected true or false"),
        ("", ["--set", "workload.nosuch.pages=1"], "no workload named 'nosuch'; workloads: z"),
        ("", ["--set", "workload.z=1"], "expected workload.NAME.PARAM=VALUE"),
    ],
)
def test_bad_params_in_toml_and_set_exit_2_naming_the_workload_the_key_and_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str, argv: list[str], needle: str
) -> None:
    rc = _run(tmp_path, ZIPF + extra, *argv)
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists(), "refused before the run directory is made"


def test_set_gives_a_workload_param_its_declared_type(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(ZIPF)
    sc = load_scenario(str(path), ["workload.z.accesses=10", "workload.z.write_fraction=1"])
    assert sc.workloads[0].params == {"accesses": 10, "write_fraction": 1.0}
    assert type(sc.workloads[0].params["write_fraction"]) is float


async def _sized(p: ProcessHandle, n: Pages = 1, label: str = "x", **rest: Any) -> None:
    pass


def _sync(p: Any) -> None:
    pass


@pytest.mark.parametrize(
    ("fn", "params", "exc", "needle"),
    [
        ("zipf", {"nosuch": 1}, TypeError, "unknown param nosuch; known params of zipf"),
        ("zipf", {"pages": "64"}, TypeError, "pages = '64': expected an integer >= 1"),
        ("zipf", {"alpha": -0.5}, ValueError, "alpha = -0.5: must be >= 0"),
        ("file_rmw", {"order": "backwards"}, ValueError, "use \"random\" or \"seq\""),
        ("trace_replay", {}, TypeError, "path is missing: trace file"),
        (_sized, {"n": 0}, ValueError, "workload 'w' (_sized): n = 0: must be >= 1"),
        (_sized, {"label": 3}, TypeError, "label = 3: expected a string"),
        (_sync, {}, TypeError, "is not a coroutine function"),
        (lambda p: None, {}, TypeError, "is not a coroutine function"),
    ],
)
def test_attach_refuses_bad_params_with_value_or_type_errors(
    fn: Any, params: dict[str, Any], exc: type[Exception], needle: str
) -> None:
    m = Machine(loop="asyncio")
    with pytest.raises(exc, match=needle.replace("(", r"\(").replace(")", r"\)")):
        m.attach(fn, name="w", **params)


def test_attach_converts_params_and_lets_var_keyword_params_through() -> None:
    m = Machine(loop="asyncio")
    m.attach("zipf", name="z", write_fraction=1, pages=8)
    m.attach(_sized, name="s", n=2, other=[1, 2])
    assert m._attached[0][3] == {"write_fraction": 1.0, "pages": 8}
    assert type(m._attached[0][3]["write_fraction"]) is float
    assert m._attached[1][3] == {"n": 2, "other": [1, 2]}
