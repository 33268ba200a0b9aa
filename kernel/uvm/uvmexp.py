"""uvmexp.h: the UVM's statistics and tunables (struct uvmexp).

Port of OpenBSD sys/uvm/uvmexp.h,v 1.10 2022/08/29 (field names and meanings), reduced to the
fields a 2022 kernel maintains plus the port's fault counters. One instance per boot lives in
``k.uvmexp``; code spells the C global ``uvmexp.free`` as ``k.uvmexp.free`` (style C15).

Locks: [F] uvm.fpageqlock, [P] uvm.pageqlock, [a] updated without a common lock (see the
reference, §4 item 12), [S] swap data lock, [K] boot / tune time only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(eq=False, slots=True)
class Uvmexp:
    """struct uvmexp."""

    # vm_page constants
    pagesize: int = 4096  # [K] size of a page (PAGE_SIZE): must be power of 2
    pagemask: int = 4095  # [K] page mask
    pageshift: int = 12  # [K] page shift

    # vm_page counters
    npages: int = 0  # [K] number of pages we manage
    free: int = 0  # [F] number of free pages
    active: int = 0  # [P] number of active pages
    inactive: int = 0  # [P] number of pages that we free'd but may want back
    paging: int = 0  # [a] number of pages in the process of being paged out
    wired: int = 0  # [P] number of wired pages

    zeropages: int = 0  # [F] number of zero'd pages
    reserve_pagedaemon: int = 4  # [K] number of pages reserved for pagedaemon
    reserve_kernel: int = 8  # [K] number of pages reserved for kernel
    unused01: int = 0
    vnodepages: int = 0  # XXX: number of pages used by vnode page cache
    vtextpages: int = 0  # XXX: # of pages used by vtext vnodes

    # pageout params
    freemin: int = 0  # [P] min number of free pages
    freetarg: int = 0  # [P] target number of free pages
    inactarg: int = 0  # [P] target number of inactive pages
    wiredmax: int = 0  # [P] max number of wired pages
    anonmin: int = 0
    vtextmin: int = 0
    vnodemin: int = 0
    anonminpct: int = 0
    vtextminpct: int = 0
    vnodeminpct: int = 0

    # swap
    nswapdev: int = 0  # [S] number of configured swap devices in system
    swpages: int = 0  # [S] number of PAGE_SIZE'ed swap pages
    swpginuse: int = 0  # [S] number of swap pages in use
    swpgonly: int = 0  # [a] number of swap pages in use, not also in RAM
    nswget: int = 0  # [a] number of swap pages moved from disk to RAM
    nanon: int = 0  # XXX number total of anon's in system
    unused05: int = 0
    unused06: int = 0

    # stat counters
    faults: int = 0  # page fault count
    traps: int = 0  # trap count
    intrs: int = 0  # interrupt count
    swtch: int = 0  # context switch count
    softs: int = 0  # software interrupt count
    syscalls: int = 0  # system calls
    pageins: int = 0  # pagein operation count
    unused07: int = 0
    unused08: int = 0
    pgswapin: int = 0  # pages swapped in (PORT: never counted, as upstream: see nswget)
    pgswapout: int = 0  # pages swapped out
    forks: int = 0  # forks
    forks_ppwait: int = 0
    forks_sharevm: int = 0
    pga_zerohit: int = 0  # pagealloc where zero wanted and zero was available
    pga_zeromiss: int = 0  # pagealloc where zero wanted and zero not available
    unused09: int = 0

    # fault subcounters
    fltnoram: int = 0  # number of times fault was out of ram
    fltnoanon: int = 0  # number of times fault was out of anons
    fltnoamap: int = 0  # number of times fault was out of amap chunks
    fltpgwait: int = 0  # number of times fault had to wait on a page
    fltpgrele: int = 0  # number of times fault found a released page
    fltrelck: int = 0  # number of times fault relock called
    fltrelckok: int = 0  # number of times fault relock is a success
    fltanget: int = 0  # number of times fault gets anon page
    fltanretry: int = 0  # number of times fault retrys an anon get
    fltamcopy: int = 0  # number of times fault clears "needs copy"
    fltnamap: int = 0  # number of times fault maps a neighbor anon page
    fltnomap: int = 0  # number of times fault maps a neighbor obj page
    fltlget: int = 0  # number of times fault does a locked pgo_get
    fltget: int = 0  # number of times fault does an unlocked get
    flt_anon: int = 0  # number of times fault anon (case 1a)
    flt_acow: int = 0  # number of times fault anon cow (case 1b)
    flt_obj: int = 0  # number of times fault is on object page (2a)
    flt_prcopy: int = 0  # number of times fault promotes with copy (2b)
    flt_przero: int = 0  # number of times fault promotes with zerofill (2b)

    # daemon counters
    pdwoke: int = 0  # number of times daemon woke up
    pdrevs: int = 0  # number of times daemon rev'd clock hand
    pdswout: int = 0  # number of times daemon called for swapout
    pdfreed: int = 0  # number of pages daemon freed since boot
    pdscans: int = 0  # number of pages daemon scanned since boot
    pdanscan: int = 0  # number of anonymous pages scanned by daemon
    pdobscan: int = 0  # number of object pages scanned by daemon
    pdreact: int = 0  # number of pages daemon reactivated since boot
    pdbusy: int = 0  # number of times daemon found a busy page
    pdpageouts: int = 0  # number of times daemon started a pageout
    pdpending: int = 0  # number of times daemon got a pending pagout
    pddeact: int = 0  # number of pages daemon deactivates
    unused11: int = 0
    unused12: int = 0
    unused13: int = 0
    fpswtch: int = 0  # FPU context switches
    kmapent: int = 0  # number of kernel map entries

    # PORT: fault kinds of the emulated machine (zero-fill, soft, major, busy-wait)
    flt_zero: int = 0  # PORT: zero-fill faults (first touch)
    flt_soft: int = 0  # PORT: resident page re-entered (e.g. after deactivation)
    flt_major: int = 0  # PORT: page read back from swap or a vnode
    flt_busywait: int = 0  # PORT: faults that slept on a PG_BUSY page

    def as_dict(self) -> dict[str, int]:
        """Every counter, for summaries and logs."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
