"""init_main.c: the machine-independent part of booting the kernel.

Port of the parts of OpenBSD sys/kern/init_main.c (``main``) that the emulated machine needs:
initialise the VM system (uvm_init: the page array, the free lists, the reserves), the buffer
cache (bufinit), proc0, and the swap devices; then, once the scheduler runs, fork the kernel
threads (the page daemon and the aiodone daemon).

Deviations (PORT):
- ``main`` is split in two. :func:`main` runs before the machine's clock starts (no thread
  may be created yet); :func:`main_kthreads` is the part of ``main`` after
  ``scheduler_start``, called from inside the running clock (the machine's setup callback).
- Swap is configured at boot from the devices the machine hands over (upstream swapctl(8)
  adds it later from userland), through the device-specific ``swap_on`` callables the
  machine-dependent code provides.
- The page daemon is a module chosen at boot: :func:`load_pdaemon` imports it (by default
  ``kernel.uvm.uvm_pdaemon``, the seed's 1.105) and ``main`` keeps it in ``k.pdaemon``, whose
  ``uvm_pageout`` and ``uvm_aiodone_daemon`` become the two kernel threads and whose
  ``uvm_wait`` the rest of the kernel calls (the entry points of uvm/uvm_extern.py).
- There is no init process: the machine attaches its workloads as processes itself.
- ``curproc`` is proc0 from the start of ``main`` on, in the context that boots (C sets it
  first thing). That context goes on to run the machine's clock, so what runs outside the
  emulated threads afterwards (the devices' completion interrupts, a test calling kernel
  functions directly) runs as proc0, where C would run on the CPU's idle proc.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, cast

import structlog

import kernel.kern.kern_kthread as kern_kthread
import kernel.kern.vfs_bio as vfs_bio
import kernel.uvm.uvm_pmemrange as uvm_pmemrange
import kernel.uvm.uvm_swap as uvm_swap
from kernel.sys.proc import P_SYSTEM, Proc, set_curproc
from kernel.uvm.uvm_extern import UVM_PDAEMON_ENTRY_POINTS

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.uvm.uvm_extern import UvmPdaemon

__all__ = ["PDAEMON_DEFAULT", "load_pdaemon", "main", "main_kthreads", "uvm_page_init"]

PDAEMON_DEFAULT: Final = "kernel.uvm.uvm_pdaemon"  # the seed's page daemon (uvm_pdaemon.c 1.105)

log = structlog.get_logger("kern.init_main")


def uvm_page_init(k: Kernel, npages: int) -> None:
    """uvm_page_init: init the page system.   called from uvm_init().

    => every frame of the machine is managed and starts out free
    => sets the allocator reserves (reference §1.1)
    """
    k.pages = [None] * npages  # PORT: vm_page structures are created lazily
    uvm_pmemrange.uvm_pmr_init(k, npages)
    k.uvmexp.npages = npages
    # init reserve thresholds
    k.uvmexp.reserve_pagedaemon = 4
    k.uvmexp.reserve_kernel = 8


def main(k: Kernel, npages: int, swapdevs: list[Callable[[Kernel], int]]) -> None:
    """main: initialise the kernel on a machine of ``npages`` frames.

    => ``swapdevs``: one ``swap_on(k) -> errno`` per swap device, in priority order
       (machine-dependent: kernel/arch/emu/machdep.py builds them)
    => runs before the clock: no sleeping, no threads
    """
    # PORT: the page daemon this kernel runs (the C links one in).
    k.pdaemon = load_pdaemon()

    # Initialize process and pgrp structures.
    p = Proc(p_pid=0, p_comm="swapper", p_flag=P_SYSTEM)
    k.proc0 = p
    set_curproc(p)  # curproc = p = &proc0
    k.procs[0] = p
    k.nextpid = 1

    # Initialize the virtual memory system.
    uvm_page_init(k, npages)

    # Initialize the buffer cache (all memory of the machine is DMA-reachable).
    vfs_bio.bufinit(k, npages)

    # Initialize swap (the swap list and the drum).
    uvm_swap.uvm_swap_init(k)

    # PORT: configure swap (swapctl -a) on every device handed over.
    for swap_on in swapdevs:
        error = swap_on(k)
        if error != 0:
            log.error("swap_on.failed", error=error)

    log.info(
        "boot",
        npages=npages,
        free=k.uvmexp.free,
        swpages=k.uvmexp.swpages,
        bufpages=0 if k.bufcache is None else k.bufcache.bcstats.numbufpages,
    )


def main_kthreads(k: Kernel) -> list[Proc]:
    """main, after scheduler_start: create the kernel threads.

    => called inside the running machine (the clock's setup)
    => starts "pagedaemon" (uvm_pageout) and "aiodoned" (uvm_aiodone_daemon) of the page
       daemon module chosen at boot (``k.pdaemon``)
    """
    # Create the pageout daemon kernel thread.
    pagedaemon = kern_kthread.kthread_create(k, k.pdaemon.uvm_pageout, k, name="pagedaemon")
    # Create the aiodone daemon kernel thread.
    aiodoned = kern_kthread.kthread_create(k, k.pdaemon.uvm_aiodone_daemon, k, name="aiodoned")
    return [pagedaemon, aiodoned]


# --- port helpers ---------------------------------------------------------------------------


def load_pdaemon(name: str = PDAEMON_DEFAULT) -> UvmPdaemon:
    """PORT: import the page daemon module ``name`` (the one import a kernel function does).

    => raises ImportError if it cannot be imported or lacks an entry point of UvmPdaemon
    """
    pd = importlib.import_module(name)
    missing = [f for f in UVM_PDAEMON_ENTRY_POINTS if not callable(getattr(pd, f, None))]
    if missing:
        raise ImportError(f"load_pdaemon: {name} has no {', '.join(missing)}", name=name)
    return cast("UvmPdaemon", pd)
