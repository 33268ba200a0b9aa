"""uvm_glue.c: glue code between the VM system and the rest of the kernel.

Port of ``uvm_swapout_threads`` from OpenBSD sys/uvm/uvm_glue.c,v 1.84 (reference §1.13), the
only part the page daemon calls, and only when the kernel is built with
``__HAVE_PMAP_COLLECT`` (``k.config.have_pmap_collect``; amd64 is built without it).

Deviations: a process has one thread; "the thread's sleep time" is the virtual time since it
last went to sleep in msleep. The emulated pmap's ``pmap_collect`` removes every mapping of
the process (kernel/arch/emu/pmap.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from kernel.sys.proc import P_SYSTEM, P_WEXIT, Proc

if TYPE_CHECKING:
    from kernel.kernel import Kernel

maxslp: Final = 20  # seconds: a process asleep this long is swapped out
USPACE_PAGES: Final = 4  # USPACE >> PAGE_SHIFT (16 KiB of u-area on amd64)


def uvm_swapout_threads(k: Kernel) -> None:
    """uvm_swapout_threads: find processes to "swap out" (collect their pmaps).

    - look for a long sleeper: the one that has been sleeping longest, at least maxslp
    - if none, and memory is very tight, collect the longest sleeper anyway
    """
    outp: Proc | None = None
    outpri = 0
    didswap = 0
    for p in list(k.procs.values()):
        # is it a runnable swapped in process?
        if p.p_flag & (P_SYSTEM | P_WEXIT):
            continue
        if p.p_stat != "sleep":
            continue  # a running thread: skip this process
        slptime = (k.sched.now - p.p_slptime_start) // 1_000_000_000
        if slptime >= maxslp:
            k.pmap.pmap_collect(p.p_vmspace.vm_map.pmap)
            didswap += 1
            continue
        if slptime > outpri:
            outp = p
            outpri = slptime

    # If we didn't get rid of any real duds, toss out the next most
    # likely sleeping/stopped or running candidate.  We only do this
    # if we are real low on memory since we don't gain much by doing
    # it.
    if didswap == 0 and k.uvmexp.free <= USPACE_PAGES and outp is not None:
        k.pmap.pmap_collect(outp.p_vmspace.vm_map.pmap)

