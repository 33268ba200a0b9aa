"""Every kernel module imports on its own, whatever was imported before it (no import-order
trap from the cycles the C headers don't have)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import kernel

MODULES = sorted(m.name for m in pkgutil.walk_packages(kernel.__path__, "kernel."))


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_alone(module: str) -> None:
    r = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr.strip().splitlines()[-1]
