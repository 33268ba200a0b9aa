"""The whole suite: every kernel a test boots runs the whole ``uvm_check`` after every daemon
pass and aiodone batch it is asked to check after (``KernelConfig.check_full``), as a
diagnostic kernel did before the check was amortized for normal runs
(kernel/uvm/uvm_check.py). A test of the amortized check sets ``check_full = False`` on its
own config after building it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kernel.kernel import KernelConfig


@pytest.fixture(autouse=True)
def _uvm_check_in_full(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    init = KernelConfig.__init__

    def full(self: KernelConfig, *args: Any, **kw: Any) -> None:
        init(self, *args, **kw)
        self.check_full = True

    monkeypatch.setattr(KernelConfig, "__init__", full)
    yield
