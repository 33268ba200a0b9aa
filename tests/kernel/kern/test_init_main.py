"""init_main: proc0 is curproc from boot on; the page daemon is a module chosen at boot.

Pins kernel/kern/init_main.py's deviations: main() makes proc0 curproc first thing (C's
``curproc = p = &proc0``), so boot and the machine's interrupts run as proc0; and
``load_pdaemon`` imports the daemon module (the seed's ``kernel.uvm.uvm_pdaemon`` by default),
checks it provides every entry point of ``uvm_extern.UvmPdaemon``, and boot starts its two
kernel threads, reached as ``k.pdaemon``.
"""

from __future__ import annotations

import sys
import types

import pytest

import kernel.uvm.uvm_pdaemon as uvm_pdaemon
from kernel.kern.init_main import load_pdaemon
from kernel.sys.proc import curproc
from kernel.uvm.uvm_extern import UVM_PDAEMON_ENTRY_POINTS


def test_boot_and_the_interrupts_after_it_run_as_proc0(kenv):
    """main(): "curproc = p = &proc0" before anything else; the context that booted runs
    the clock, whose interrupts (here a timer) then run as proc0 too."""
    env = kenv(start=False)
    k = env.k
    assert curproc() is k.proc0 and k.proc0.p_pid == 0
    seen = []

    async def body(k, env):
        env.clock.call_at(env.clock.now + 1_000, lambda: seen.append(curproc()))
        await env.sleep(2_000)
        assert curproc() is env.testproc  # a thread runs as its own proc

    env.run(body)
    assert seen == [k.proc0]


def test_boot_loads_the_seed_daemon_and_starts_its_threads(run_kernel):
    """uvm_extern.h's entry points: the kernel threads are uvm_pageout and
    uvm_aiodone_daemon of the module in k.pdaemon."""

    async def body(k, env):
        assert k.pdaemon is uvm_pdaemon
        assert k.uvm.pagedaemon_proc is not None and k.uvm.pagedaemon_proc.p_comm == "pagedaemon"
        assert k.uvm.aiodoned_proc is not None and k.uvm.aiodoned_proc.p_comm == "aiodoned"

    run_kernel(body)
    assert UVM_PDAEMON_ENTRY_POINTS == ("uvm_pageout", "uvm_aiodone_daemon", "uvm_wait")


def test_a_module_without_every_entry_point_is_refused(monkeypatch):
    """A daemon module must provide uvm_pageout, uvm_aiodone_daemon and uvm_wait."""
    half = types.ModuleType("half_a_daemon")
    half.uvm_pageout = uvm_pdaemon.uvm_pageout
    monkeypatch.setitem(sys.modules, "half_a_daemon", half)
    missing = r"^load_pdaemon: half_a_daemon has no uvm_aiodone_daemon, uvm_wait$"
    with pytest.raises(ImportError, match=missing):
        load_pdaemon("half_a_daemon")
    with pytest.raises(ModuleNotFoundError):
        load_pdaemon("kernel.uvm.no_such_daemon")
    assert load_pdaemon() is uvm_pdaemon
