"""The kernel's imports run top-down (docs/kernel-interfaces.md, "Import order").

Every kernel module imports on its own, whatever was imported before it; its imports stand at
the top of the file; no function imports a kernel module (the one exception: init_main's
``load_pdaemon``, which imports the page daemon chosen at boot); the layers contract in
pyproject.toml places every kernel module; and the page size is defined once, in
kernel/sys/param.py.
"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import kernel

MODULES = sorted(m.name for m in pkgutil.walk_packages(kernel.__path__, "kernel."))
ROOT = Path(kernel.__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "kernel").rglob("*.py"))

# the one function allowed to import a kernel module: the boot-time page daemon loader
LOADER = ("kernel/kern/init_main.py", "load_pdaemon")


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _is_type_checking_block(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_alone(module: str) -> None:
    r = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("path", SOURCES, ids=_rel)
def test_imports_stand_at_the_top_of_the_module(path: Path) -> None:
    """No import after the first statement that is not an import (no bottom-of-file imports)."""
    body = _tree(path).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    code_seen = None
    for node in body:
        is_import = isinstance(node, ast.Import | ast.ImportFrom) or _is_type_checking_block(node)
        if not is_import:
            code_seen = code_seen or node
        else:
            assert code_seen is None, (
                f"{_rel(path)}:{node.lineno}: import after the code at line {code_seen.lineno}"
            )


def test_no_function_imports_a_kernel_module() -> None:
    """An import inside a function (of any module) or an importlib call appears only in the
    page daemon loader."""
    found = []
    for path in SOURCES:
        for fn in ast.walk(_tree(path)):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [node.module or ""]
                elif isinstance(node, ast.Call) and "import_module" in ast.unparse(node.func):
                    names = ["importlib.import_module"]
                else:
                    continue
                if (_rel(path), fn.name) != LOADER:
                    found.append(f"{_rel(path)}:{node.lineno} in {fn.name}: {', '.join(names)}")
    assert found == []


def test_page_size_is_defined_only_in_sys_param() -> None:
    """PAGE_SHIFT, PAGE_SIZE, PAGE_MASK (and atop, ptoa) have one definition in kernel/."""
    names = {"PAGE_SHIFT", "PAGE_SIZE", "PAGE_MASK", "atop", "ptoa"}
    found = []
    for path in SOURCES:
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                defined = {t.id for t in targets if isinstance(t, ast.Name)}
            elif isinstance(node, ast.FunctionDef):
                defined = {node.name}
            else:
                continue
            found += [(_rel(path), name) for name in sorted(defined & names)]
    assert sorted(found) == [("kernel/sys/param.py", name) for name in sorted(names)]


def test_the_layers_contract_places_every_kernel_module() -> None:
    """A new kernel module must be given its place in the import order (pyproject.toml)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    [contract] = [c for c in config["contracts"] if c["type"] == "layers"]
    layers = [m.strip() for layer in contract["layers"] for m in layer.split("|")]
    unplaced = [
        m
        for m in MODULES
        if not any(m == layer or m.startswith(layer + ".") for layer in layers)
        and not any(layer.startswith(m + ".") for layer in layers)  # a package of layers
    ]
    assert unplaced == []
