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
- The page daemon is a module chosen at boot (``k.config.pdaemon``): :func:`load_pdaemon`
  loads it (a built-in variant, "1.105" by default, the seed's ``kernel.uvm.uvm_pdaemon``, or
  "1.154"; a Python file; a module) and ``main`` keeps it in ``k.pdaemon``, whose
  ``uvm_pageout`` and ``uvm_aiodone_daemon`` become the two kernel threads and whose
  ``uvm_wait`` the rest of the kernel calls (the entry points of uvm/uvm_extern.py;
  docs/pdaemon-interface.md).
- There is no init process: the machine attaches its workloads as processes itself.
- ``curproc`` is proc0 from the start of ``main`` on, in the context that boots (C sets it
  first thing). That context goes on to run the machine's clock, so what runs outside the
  emulated threads afterwards (the devices' completion interrupts, a test calling kernel
  functions directly) runs as proc0, where C would run on the CPU's idle proc.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
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

__all__ = [
    "PDAEMON_DEFAULT", "PDAEMON_VARIANTS", "PdaemonInterfaceError", "load_pdaemon", "main", "main_kthreads",
    "pdaemon_source", "uvm_page_init",
]  # fmt: skip

PDAEMON_DEFAULT: Final = "kernel.uvm.uvm_pdaemon"  # the seed's page daemon (uvm_pdaemon.c 1.105)
# the built-in page daemons, by the revision of uvm_pdaemon.c they port ([kernel] pdaemon)
PDAEMON_VARIANTS: Final = {
    "1.105": PDAEMON_DEFAULT,
    "1.154": "kernel.uvm.uvm_pdaemon_1_154",
}

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
    k.pdaemon = load_pdaemon(k.config.pdaemon)

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
    """PORT: load the page daemon ``name`` (the one place kernel code imports a module).

    => ``name``: a built-in variant (a key of PDAEMON_VARIANTS: "1.105", "1.154"), a path to
       a Python file (it ends in ".py" or contains a "/"), or a module name
    => a file is loaded once per content, as the module ``pdaemon_file_<sha256 prefix>``
       (so two loads of one file give one module, and the name never depends on where the
       file lies); a built-in variant or a module is imported as usual
    => raises FileNotFoundError for a file that does not exist, ModuleNotFoundError for a
       module that does not, whatever the module raises while it is imported, and
       ImportError if it lacks an entry point of UvmPdaemon
    """
    kind, where = pdaemon_source(name)
    if kind == "file":
        path = Path(where)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        modname = f"pdaemon_file_{digest[:16]}"
        pd = sys.modules.get(modname)
        if pd is None:
            spec = importlib.util.spec_from_file_location(modname, path)
            assert spec is not None and spec.loader is not None
            pd = importlib.util.module_from_spec(spec)
            sys.modules[modname] = pd  # as import does: a dataclass looks its module up
            try:
                spec.loader.exec_module(pd)
            except BaseException:
                del sys.modules[modname]
                raise
    else:
        pd = importlib.import_module(where)
    missing = [f for f in UVM_PDAEMON_ENTRY_POINTS if not callable(getattr(pd, f, None))]
    if missing:
        raise PdaemonInterfaceError(name, missing)
    return cast("UvmPdaemon", pd)


class PdaemonInterfaceError(ImportError):
    """PORT: a page daemon module without every entry point of UvmPdaemon (``missing``)."""

    def __init__(self, name: str, missing: list[str]) -> None:
        super().__init__(f"load_pdaemon: {name} has no {', '.join(missing)}", name=name)
        self.missing = missing


def pdaemon_source(name: str) -> tuple[str, str]:
    """PORT: where load_pdaemon finds the daemon ``name``: ("module", a module name) for a
    built-in variant or a module, ("file", the absolute path) for a file."""
    if name in PDAEMON_VARIANTS:
        return "module", PDAEMON_VARIANTS[name]
    if name.endswith(".py") or "/" in name:
        return "file", str(Path(name).expanduser().resolve())
    return "module", name
