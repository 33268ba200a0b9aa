"""Fixtures of the page daemon's tests (test_uvm_pdaemon_*.py): the two ways they run its code.

- ``run_as_pagedaemon(body, ...)``: the test body plays the page daemon on a machine booted
  with ``start=False`` (pdaemon_world.daemonless, then be_the_pagedaemon) and calls the
  daemon's functions itself: the scan rows (S*, A*, I*) and aiodoned's D2.
- ``live_pagedaemon(on_pass, ...)``: a machine booted normally, whose real ``pagedaemon``
  thread runs uvm_pageout, with every pass recorded (pdaemon_passes._record_passes): the
  loop rows (M*) and uvm_wait.

Both build on ``kenv`` (tests/kernel/conftest.py), so uvm_check runs after each test. The
1.154 daemon's tests (test_uvm_pdaemon154_*.py) use ``run_as_pagedaemon154`` and
``live_pagedaemon154``: the same, on a machine booted with ``pdaemon = "1.154"``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import pdaemon_world as pw
from pdaemon_passes import OnPass, PassRec, _record_passes

if TYPE_CHECKING:
    from devices.faults import FaultConfig

    from conftest import Body, KernelEnv  # tests/kernel/conftest.py


@pytest.fixture
def run_as_pagedaemon(kenv: Any) -> Any:
    """``run_as_pagedaemon(body, npages=128, swap_pages=256, faults=None,
    check_at_teardown=True, **config)``: boot without kernel threads (the buffer cache off
    unless ``config`` turns it on: pdaemon_world.config), run ``body`` as the page daemon,
    return the env. The defaults are the inactive scan's machine (freetarg 12, stop target
    48 with room for a ballast)."""

    def run(
        body: Body,
        *,
        npages: int = 128,
        swap_pages: int = 256,
        faults: FaultConfig | None = None,
        check_at_teardown: bool = True,
        **cfg: Any,
    ) -> KernelEnv:
        env = pw.daemonless(kenv, npages=npages, swap_pages=swap_pages, faults=faults, **cfg)
        env.check_at_teardown = check_at_teardown
        env.run(pw.as_pagedaemon(body))
        return env

    return run


@pytest.fixture
def live_pagedaemon(kenv: Any) -> Any:
    """``live_pagedaemon(on_pass=None, npages=64, swap_pages=1024, **config)``: a machine
    booted with its kernel threads (the buffer cache off unless ``config`` turns it on) and
    the list its daemon's passes are recorded in, ``on_pass(k, n)`` running after pass n;
    returns ``(env, passes)``, not yet run."""

    def boot(
        on_pass: OnPass | None = None, *, npages: int = 64, swap_pages: int = 1024, **cfg: Any
    ) -> tuple[KernelEnv, list[PassRec]]:
        env: KernelEnv = kenv(npages=npages, swap_pages=swap_pages, config=pw.config(**cfg))
        return env, _record_passes(env.k, on_pass)

    return boot


@pytest.fixture
def run_as_pagedaemon154(run_as_pagedaemon: Any) -> Any:
    """``run_as_pagedaemon`` on a machine booted with the 1.154 daemon (its aiodoned runs,
    its uvmpd_tune tunes; the body calls kernel.uvm.uvm_pdaemon_1_154's functions)."""

    def run(body: Body, **kw: Any) -> KernelEnv:
        env: KernelEnv = run_as_pagedaemon(body, pdaemon="1.154", **kw)
        return env

    return run


@pytest.fixture
def live_pagedaemon154(live_pagedaemon: Any) -> Any:
    """``live_pagedaemon`` on a machine booted with the 1.154 daemon."""

    def boot(on_pass: OnPass | None = None, **kw: Any) -> tuple[KernelEnv, list[PassRec]]:
        booted: tuple[KernelEnv, list[PassRec]] = live_pagedaemon(on_pass, pdaemon="1.154", **kw)
        return booted

    return boot
