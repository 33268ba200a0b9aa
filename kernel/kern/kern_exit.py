"""kern_exit.c: process exit.

Port of the part of OpenBSD sys/kern/kern_exit.c (``exit1``) and uvm_glue.c (``uvm_exit``)
that releases a process's memory: every mapping is removed, and with the map entries go the
amaps, anons, pages and swap slots behind them (uvm_map.py, uvm_amap.py, uvm_anon.py). A
page that is busy (under pageout or being read back) is not freed here: ``uvm_anfree`` marks
it PG_RELEASED and the I/O's owner frees it when the I/O completes, as upstream.

Deviations (PORT): there are no signals, file descriptors, parents or zombies to reap: the
proc leaves ``k.procs`` once its memory is gone; ``rv`` is recorded in ``p.stats["xstat"]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

import kernel.uvm.uvm_map as uvm_map
from kernel.kern.kern_synch import wakeup
from kernel.sys.proc import P_WEXIT, Proc
from kernel.sys.systm import Panic

if TYPE_CHECKING:
    from kernel.kernel import Kernel

__all__ = ["exit1", "uvm_exit"]

log = structlog.get_logger("kern.exit")


async def exit1(k: Kernel, p: Proc, rv: int) -> None:
    """exit1: the process is done: release its address space and leave the proc table.

    => called by the process's own thread (kern_fork.py), never twice
    => may sleep
    """
    if p.p_flag & P_WEXIT:
        raise Panic(f"exit1: {p!r} is already exiting")
    p.p_flag |= P_WEXIT
    p.stats["xstat"] = rv
    # Release the user portion of address space.
    await uvm_exit(k, p)
    p.p_stat = "zomb"
    k.procs.pop(p.p_pid, None)
    # PORT: wake whoever waits for this process (the parent's wait4 upstream).
    wakeup(k, p)
    log.info("exit1", pid=p.p_pid, comm=p.p_comm, rv=rv)


async def uvm_exit(k: Kernel, p: Proc) -> None:
    """uvm_exit: exit a virtual address space

    => drops the process's reference to its vmspace (the last one frees it)
    => may sleep
    """
    vm = p.p_vmspace
    if vm is None:
        return
    await uvm_map.uvmspace_free(k, vm)
    p.p_vmspace = None
