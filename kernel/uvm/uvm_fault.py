"""uvm_fault.c: fault handler

Port of OpenBSD sys/uvm/uvm_fault.c, structured as upstream since 2021 (uvm_fault_check,
uvm_fault_upper, uvm_fault_lower, uvmfault_anonget, uvmfault_promote), with the 2022
semantics the reference describes (§1.7, §1.14). Read it next to the C.

 a word on page faults (from the C):

   CASE 1: upper layer faults                   CASE 2: lower layer faults

   case [1]: upper layer fault [anon active]
     1A: [read] or [write with anon->an_ref == 1]
         I/O takes place in upper level anon and uobj is not touched.
     1B: [write with anon->an_ref > 1]
         new anon is alloc'd and data is copied off ["COW"]

   case [2]: lower layer fault [uobj]
     2A: [read on non-NULL uobj] or [write to non-copy_on_write area]
         I/O takes place directly in object.
     2B: [write to copy_on_write] or [read on NULL uobj]
         data is "promoted" from uobj to a new anon.
         if uobj is null, then we zero fill.

 we follow the standard UVM locking protocol ordering:

 MAPS => AMAP => UOBJ => ANON => PAGE QUEUES (PQ)
 we hold a PG_BUSY page if we unlock for I/O

Deviations (PORT):
- Every fault is "narrow": no fault-ahead of neighbouring pages (uvmadvice is not used), so
  each access to an unmapped page is a fault of its own and is counted.
- VM_FAULT_WIRE is not supported (no mlock); the map lock, amap lock and object lock are
  always taken for writing, as the 2022 code does ("exclusive lock for now").
- A write to an object page that is PG_BUSY (e.g. an aobj page under pageout) waits for it
  here, before calling the pager, so the wait is counted (``flt_busywait``); upstream the
  pager's get sleeps on it.
- A swap read error makes uvmfault_anonget return EIO (upstream: EACCES, marked XXX), so the
  process gets SIGBUS (``emu.cpu.BusError``) as the machine's design asks.
- uvmfault_anonget counts out of ``uvmexp.swpgonly`` the page of an anon freed while its
  swap read failed (PG_RELEASED after an error): upstream's uvm_anon_release (since it stopped
  calling uvm_anfree) only frees the slot, so that page stayed counted forever (docs/port.md,
  known bugs). A ``cpu_race`` window after the read lets tests free the anon right there.
- PGO_DONTCARE (zero fill) is ``None`` for ``uobjpage``; ERESTART is -1 as in sys/errno.h.
- ``uvm_wait`` is called as ``await k.pdaemon.uvm_wait(k, wmsg)``: the page daemon is a
  module chosen at boot (uvm_extern.py), which this module does not import.
- The fault kinds of the emulated machine are counted in uvmexp (``flt_zero``, ``flt_soft``,
  ``flt_major``, ``flt_busywait``) and in the process's ``stats``; a fault that restarts is
  counted once, by the most expensive thing it did (major > zero > soft). Each fault charges
  ``k.config.costs.fault_ns`` of virtual CPU time.
- A major fault that succeeds logs one ``uvm_fault.pagein`` event (docs/log-schema.md): the
  process, the faulting address and the fault's virtual latency as the faulting thread sees
  it (``k.sched.nsecuptime()``, its unpaid CPU time included).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import structlog

import kernel.uvm.uvm_amap as uvm_amap
import kernel.uvm.uvm_anon as uvm_anon
import kernel.uvm.uvm_aobj as uvm_aobj
import kernel.uvm.uvm_map as uvm_map
import kernel.uvm.uvm_swap as uvm_swap
from kernel.kern.kern_synch import (
    INFSLP,
    MSEC_TO_NSEC,
    PNORELOCK,
    PVM,
    RW_WRITE,
    cpu_race,
    rw_enter,
    rw_exit,
    rwsleep_nsec,
    tsleep_nsec,
    wakeup,
)
from kernel.sys.errno import EACCES, EFAULT, EIO, ENOMEM
from kernel.sys.mman import PROT_NONE, PROT_WRITE, Prot
from kernel.sys.param import PAGE_MASK, PAGE_SHIFT, PAGE_SIZE
from kernel.sys.proc import curproc
from kernel.sys.systm import KASSERT, Panic
from kernel.uvm.uvm_object import UVM_OBJ_IS_AOBJ
from kernel.uvm.uvm_page import (
    PG_BUSY,
    PG_FAKE,
    PG_RELEASED,
    PG_WANTED,
    PQ_ANON,
    UVM_PGA_ZERO,
    VmPage,
    uvm_lock_pageq,
    uvm_page_unbusy,
    uvm_pageactivate,
    uvm_pagealloc,
    uvm_pagecopy,
    uvm_pagefree,
    uvm_pagelookup,
    uvm_unlock_pageq,
)
from kernel.uvm.uvm_pager import PGO_LOCKED, PGO_SYNCIO, VM_PAGER_AGAIN, VM_PAGER_OK

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.uvm.uvm_amap import VmAmap
    from kernel.uvm.uvm_anon import VmAnon
    from kernel.uvm.uvm_map import VmMap, VmMapEntry
    from kernel.uvm.uvm_object import UvmObject

__all__ = [
    "ERESTART",
    "VM_FAULT_INVALID",
    "VM_FAULT_PROTECT",
    "VM_FAULT_WIRE",
    "UvmFaultctx",
    "UvmFaultinfo",
    "uvm_fault",
    "uvmfault_anonget",
]

# vm_fault_t (uvm_extern.h)
VM_FAULT_INVALID: Final = 0  # invalid mapping
VM_FAULT_PROTECT: Final = 1  # protection
VM_FAULT_WIRE: Final = 2  # wire mapping

ERESTART: Final = -1  # sys/errno.h: restart syscall (kernel internal)
PROT_MASK: Final = Prot(0x07)

log = structlog.get_logger("uvm.fault")

_NOWAKE: Final = ("uvm_fault", "nowake")  # static int nowake: a channel nobody wakes

# PORT: fault kinds, in increasing cost
_KIND_NONE: Final = 0
_KIND_SOFT: Final = 1
_KIND_ZERO: Final = 2
_KIND_MAJOR: Final = 3
_KIND_NAMES: Final = {_KIND_SOFT: "flt_soft", _KIND_ZERO: "flt_zero", _KIND_MAJOR: "flt_major"}


@dataclass(eq=False, slots=True)
class UvmFaultinfo:
    """struct uvm_faultinfo: the "IN" and "OUT" parameters of a fault's map lookup."""

    orig_map: VmMap  # IN: original map
    orig_rvaddr: int  # IN: original rounded VA
    orig_size: int  # IN: original size of interest
    map: VmMap | None = None  # map (could be a submap)
    entry: VmMapEntry | None = None  # entry that we are working on
    size: int = 0  # size of interest
    mapv: int = 0  # map's version number


@dataclass(eq=False, slots=True)
class UvmFaultctx:
    """struct uvm_faultctx: set up by uvm_fault_check() and read-only after that."""

    access_type: Prot
    enter_prot: Prot = PROT_NONE
    startva: int = 0
    npages: int = 1
    centeridx: int = 0
    narrow: bool = True
    wired: bool = False
    promote: bool = False
    upper_lock_type: int = RW_WRITE
    lower_lock_type: int = RW_WRITE
    kind: int = _KIND_NONE  # PORT: the most expensive fault kind seen (module docstring)
    anons: list[VmAnon | None] = field(default_factory=list)  # PORT: anons_store


def MASK(entry: VmMapEntry) -> Prot:
    """MASK(entry): the access a lower-layer page may be entered with."""
    if entry.etype & uvm_map.UVM_ET_COPYONWRITE:
        return PROT_MASK & ~PROT_WRITE
    return PROT_MASK


# --- F A U L T   -   m a i n   e n t r y   p o i n t ---------------------------------------


async def uvm_fault(
    k: Kernel, orig_map: VmMap, vaddr: int, fault_type: int, access_type: Prot
) -> int:
    """uvm_fault: page fault handler

    => called from MD code to resolve a page fault
    => VM data structures usually should be unlocked.   however, it is
       possible to call here with the main map locked if the caller
       gets a write lock, sets it recursive, and then calls us (c.f.
       uvm_map_pageable).   this should be avoided because it keeps
       the map locked off during I/O.
    => MUST NEVER BE CALLED IN INTERRUPT CONTEXT
    => returns 0 or an errno (EFAULT: no mapping, EACCES: protection, EIO: backing store
       error, ENOMEM: out of swap); may sleep
    """
    t0 = k.sched.nsecuptime()  # PORT: the page-in event's latency
    k.uvmexp.faults += 1
    _pstat("faults")
    k.sched.charge(k.config.costs.fault_ns)
    if fault_type == VM_FAULT_WIRE:
        raise Panic("uvm_fault: VM_FAULT_WIRE is not supported")

    # init the IN parameters in the ufi
    ufi = UvmFaultinfo(orig_map=orig_map, orig_rvaddr=vaddr & ~PAGE_MASK, orig_size=PAGE_SIZE)
    flt = UvmFaultctx(access_type=access_type)

    error = ERESTART
    while error == ERESTART:  # ReFault:
        error = await uvm_fault_check(k, ufi, flt)
        if error != 0:
            continue
        # True if there is an anon at the faulting address
        shadowed = uvm_fault_upper_lookup(k, ufi, flt)
        if shadowed:
            # case 1: fault on an anon in our amap
            error = await uvm_fault_upper(k, ufi, flt)
        else:
            # case 2: fault on backing obj or zero fill
            error = await uvm_fault_lower(k, ufi, flt)

    if error == 0 and flt.kind != _KIND_NONE:
        name = _KIND_NAMES[flt.kind]
        setattr(k.uvmexp, name, getattr(k.uvmexp, name) + 1)
        _pstat(name)
        if flt.kind == _KIND_MAJOR:
            _log_pagein(vaddr, k.sched.nsecuptime() - t0)
    return error


async def uvm_fault_check(k: Kernel, ufi: UvmFaultinfo, flt: UvmFaultctx) -> int:
    """uvm_fault_check: check prot, handle needs-copy, etc.

        1. lookup entry.
        2. check protection.
        3. adjust fault condition (mainly for simulated fault).
        4. handle needs-copy (lazy amap copy).
        5. establish range of interest for neighbor fault (aka pre-fault).
        6. look up anons (if amap exists).
        7. flush pages (if MADV_SEQUENTIAL)

    => called with nothing locked.
    => if we fail (result != 0) we unlock everything.
    => initialize/adjust many members of flt.
    => may sleep
    """
    # lookup and lock the maps
    if not await uvmfault_lookup(k, ufi, False):
        return int(EFAULT)
    entry = ufi.entry
    assert entry is not None and ufi.map is not None
    if not (ufi.map.flags & uvm_map.VM_MAP_PAGEABLE):
        raise Panic(f"uvm_fault: fault on non-pageable map ({ufi.map!r}, {ufi.orig_rvaddr:#x})")

    # check protection
    if (entry.protection & flt.access_type) != flt.access_type:
        uvmfault_unlockmaps(ufi, False)
        return int(EACCES)

    # "enter_prot" is the protection we want to enter the page in at.
    # for certain pages (e.g. copy-on-write pages) this protection can
    # be more strict than ufi->entry->protection.  "wired" means either
    # the entry is wired or we are fault-wiring the pg.
    flt.enter_prot = entry.protection

    # handle "needs_copy" case.
    if entry.etype & uvm_map.UVM_ET_NEEDSCOPY:
        raise Panic("uvm_fault_check: needs-copy entry (amap_copy is not ported)")

    # identify the players
    amap = entry.aref.ar_amap  # upper layer
    uobj = entry.uvm_obj  # lower layer

    # check for a case 0 fault.  if nothing backing the entry then
    # error now.
    if amap is None and uobj is None:
        uvmfault_unlockmaps(ufi, False)
        return int(EFAULT)

    # PORT: narrow fault! (no fault-ahead)
    flt.startva = ufi.orig_rvaddr
    flt.npages = 1
    flt.centeridx = 0

    # if we've got an amap then lock it and extract current anons.
    if amap is not None:
        if flt.access_type & PROT_WRITE:
            # assume we're about to COW.
            flt.upper_lock_type = RW_WRITE
        await uvm_amap.amap_lock(k, amap, flt.upper_lock_type)
        flt.anons = uvm_amap.amap_lookups(entry.aref, flt.startva - entry.start, flt.npages)
    else:
        flt.anons = []  # to be safe

    if flt.access_type & PROT_WRITE:
        # we are about to dirty the object and that
        # requires a write lock.
        flt.lower_lock_type = RW_WRITE
    return 0


def uvm_fault_upper_lookup(k: Kernel, ufi: UvmFaultinfo, flt: UvmFaultctx) -> bool:
    """uvm_fault_upper_lookup: look up existing h/w mapping and amap.

    iterate range of interest:
        1. check if h/w mapping exists.  if yes, we don't care
        2. check if anon exists.  if not, page is lower.
        3. if anon exists, enter h/w mapping for neighbors.

    => called with amap locked (if exists).
    => PORT: the range is the faulting page only, so there are no neighbours to enter.
    """
    assert ufi.entry is not None
    amap = ufi.entry.aref.ar_amap
    if amap is None or flt.anons[flt.centeridx] is None:
        return False
    return True


async def uvm_fault_upper(k: Kernel, ufi: UvmFaultinfo, flt: UvmFaultctx) -> int:
    """uvm_fault_upper: handle upper fault.

        1. acquire anon lock.
        2. get anon.  let uvmfault_anonget do the dirty work.
        3. if COW, promote data to new anon
        4. enter h/w mapping

    => may sleep
    """
    entry = ufi.entry
    assert entry is not None
    amap = entry.aref.ar_amap
    assert amap is not None
    anon = flt.anons[flt.centeridx]
    assert anon is not None
    KASSERT(k, anon.an_lock is amap.am_lock)

    # no matter if we have case 1A or case 1B we are going to need to
    # have the anon's memory resident.   ensure that now.
    #
    # let uvmfault_anonget do the dirty work.
    # if it fails (!OK) it will unlock everything for us.
    # if it succeeds, locks are still valid and locked.
    # also, if it is OK, then the anon's page is on the queues.
    error = await uvmfault_anonget(k, ufi, amap, anon, flt)
    if error != 0:
        return error

    # if we are case 1B then we will need to allocate a new blank
    # anon to transfer the data into.   note that we have a lock
    # on anon, so no one can busy or release the page until we are done.
    # also note that the ref count can't drop to zero here because
    # it is > 1 and we are only dropping one ref.
    #
    # in the (hopefully very rare) case that we are out of RAM we
    # will unlock, wait for more RAM, and refault.
    #
    # if we are out of anon VM we wait for RAM to become available.
    if (flt.access_type & PROT_WRITE) and anon.an_ref > 1:
        k.uvmexp.flt_acow += 1
        oanon = anon  # oanon = old
        error, nanon, pg = await uvmfault_promote(k, ufi, oanon.an_page)
        if error != 0:
            return error
        assert nanon is not None and pg is not None
        anon = nanon
        # un-busy! new page
        pg.pg_flags &= ~(PG_BUSY | PG_FAKE)
        ret = uvm_amap.amap_add(k, entry.aref, ufi.orig_rvaddr - entry.start, anon, True)
        KASSERT(k, ret == 0)
        # deref: can not drop to zero here by defn!
        KASSERT(k, oanon.an_ref > 1)
        oanon.an_ref -= 1
    else:
        k.uvmexp.flt_anon += 1
        pg = anon.an_page
        if anon.an_ref > 1:  # disallow writes to ref > 1 anons
            flt.enter_prot = flt.enter_prot & ~PROT_WRITE
    assert pg is not None
    flt.kind = max(flt.kind, _KIND_SOFT)

    # now map the page in .
    if (
        k.pmap.pmap_enter(ufi.orig_map.pmap, ufi.orig_rvaddr, pg, flt.enter_prot, flt.access_type)
        != 0
    ):
        # No need to undo what we did; we can simply think of
        # this as the pmap throwing away the mapping information.
        #
        # We do, however, have to go through the ReFault path,
        # as the map may change while we're asleep.
        uvmfault_unlockall(ufi, amap, None)
        if _uvm_swapisfull(k):
            return int(ENOMEM)
        await k.pdaemon.uvm_wait(k, "flt_pmfail1")
        return ERESTART

    # ... update the page queues.
    uvm_lock_pageq(k)
    uvm_pageactivate(k, pg)
    uvm_unlock_pageq(k)

    # done case 1!  finish up by unlocking everything and returning success
    uvmfault_unlockall(ufi, amap, None)
    k.pmap.pmap_update(ufi.orig_map.pmap)
    return 0


async def uvmfault_anonget(
    k: Kernel, ufi: UvmFaultinfo | None, amap: VmAmap | None, anon: VmAnon, flt: UvmFaultctx
) -> int:
    """uvmfault_anonget: get data in an anon into a non-busy, non-released
    page in that anon.

    => Map, amap and thus anon should be locked by caller.
    => If we fail, we unlock everything and error is returned.
    => If we are successful, return with everything still locked.
    => We do not move the page on the queues [gets moved later].  If we
       allocate a new page [we_own], it gets put on the queues.  Either way,
       the result is that the page is on the queues at return time
    => returns 0, ERESTART or EIO (PORT: upstream EACCES); may sleep
    """
    assert anon.an_lock is not None
    KASSERT(k, amap is None or anon.an_lock is amap.am_lock)

    # Increment the counters.
    k.uvmexp.fltanget += 1
    if anon.an_page is not None:
        _pstat("minflt")
    else:
        _pstat("majflt")
    error = 0

    # Loop until we get the anon data, or fail.
    while True:
        # Note: 'we_own' will become true if we set PG_BUSY on a page.
        we_own = False
        pg = anon.an_page

        # Is page resident?  Make sure it is not busy/released.
        if pg is not None:
            KASSERT(k, pg.pg_flags & PQ_ANON)
            KASSERT(k, pg.uanon is anon)

            # if the page is busy, we drop all the locks and
            # try again.
            if not (pg.pg_flags & (PG_BUSY | PG_RELEASED)):
                return 0
            pg.pg_flags |= PG_WANTED
            k.uvmexp.fltpgwait += 1
            k.uvmexp.flt_busywait += 1
            _pstat("flt_busywait")

            # The last unlock must be an atomic unlock and wait
            # on the owner of page.
            KASSERT(k, pg.uobject is None)
            uvmfault_unlockall(ufi, None, None)
            await rwsleep_nsec(k, pg, anon.an_lock, PVM | PNORELOCK, "anonget2", INFSLP)
        else:
            # No page, therefore allocate one.
            pg = uvm_pagealloc(k, None, 0, anon, 0)
            if pg is None:
                # Out of memory.  Wait a little.
                uvmfault_unlockall(ufi, amap, None)
                k.uvmexp.fltnoram += 1
                await k.pdaemon.uvm_wait(k, "flt_noram1")
            else:
                # PG_BUSY bit is set.
                we_own = True
                uvmfault_unlockall(ufi, amap, None)

                # Pass a PG_BUSY+PG_FAKE+PG_CLEAN page into
                # the uvm_swap_get() function with all data
                # structures unlocked.  Note that it is OK
                # to read an_swslot here, because we hold
                # PG_BUSY on the page.
                k.uvmexp.pageins += 1
                flt.kind = _KIND_MAJOR
                k.sched.charge(k.config.costs.pagein_ns)
                error = await uvm_swap.uvm_swap_get(k, pg, anon.an_swslot, PGO_SYNCIO)
                await cpu_race(k, "uvmfault_anonget.io")  # PORT: see kern_synch.cpu_race

                # We clean up after the I/O below in the
                # 'we_own' case.

        # Re-lock the map and anon.
        locked = await uvmfault_relock(k, ufi)
        if locked or we_own:
            await rw_enter(k, anon.an_lock, RW_WRITE)

        # If we own the page (i.e. we set PG_BUSY), then we need
        # to clean up after the I/O.  There are three cases to
        # consider:
        #
        # 1) Page was released during I/O: free anon and ReFault.
        # 2) I/O not OK.  Free the page and cause the fault to fail.
        # 3) I/O OK!  Activate the page and sync with the non-we_own
        #    case (i.e. drop anon lock if not locked).
        if we_own:
            assert pg is not None
            if pg.pg_flags & PG_WANTED:
                wakeup(k, pg)

            # if we were RELEASED during I/O, then our anon is
            # no longer part of an amap.   we need to free the
            # anon and try again.
            if pg.pg_flags & PG_RELEASED:
                KASSERT(k, anon.an_ref == 0)
                # Released while we had unlocked amap.
                if locked:
                    uvmfault_unlockall(ufi, None, None)
                if error != VM_PAGER_OK:
                    # PORT: the read failed, so the data never left swap (uvm_swap_get
                    # counts a page out of swpgonly only when it reads it) and now goes
                    # with the anon. uvm_anon_release only drops the slot: count the page
                    # out here, as uvm_anfree does for an anon with no page (docs/port.md)
                    KASSERT(k, k.uvmexp.swpgonly > 0)
                    k.uvmexp.swpgonly -= 1
                    if anon.an_swslot == uvm_swap.SWSLOT_BAD:  # see uvm_swap.py
                        uvm_swap.swpgonlybad_add(k, -1)
                uvm_anon.uvm_anon_release(k, anon)  # frees page for us
                k.uvmexp.fltpgrele += 1
                return ERESTART  # refault!

            if error != VM_PAGER_OK:
                # remove page from anon
                anon.an_page = None

                # Remove the swap slot from the anon and
                # mark the anon as having no real slot.
                # Do not free the swap slot, thus preventing
                # it from being used again.
                uvm_swap.uvm_swap_markbad(k, anon.an_swslot, 1)
                if anon.an_swslot > 0:  # PORT: a bad slot counted in swpgonly (uvm_swap.py)
                    uvm_swap.swpgonlybad_add(k, 1)
                anon.an_swslot = uvm_swap.SWSLOT_BAD

                # Note: page was never !PG_BUSY, so it
                # cannot be mapped and thus no need to
                # pmap_page_protect() it.
                uvm_lock_pageq(k)
                uvm_pagefree(k, pg)
                uvm_unlock_pageq(k)

                if locked:
                    uvmfault_unlockall(ufi, None, None)
                rw_exit(anon.an_lock)
                # An error occurred while trying to bring
                # in the page -- this is the only error we
                # return right now.
                return int(EIO)  # PORT: EACCES /* XXX */ upstream

            # We have successfully read the page, activate it.
            k.pmap.pmap_clear_modify(pg)
            uvm_lock_pageq(k)
            uvm_pageactivate(k, pg)
            uvm_unlock_pageq(k)
            pg.pg_flags &= ~(PG_WANTED | PG_BUSY | PG_FAKE)

        # We were not able to re-lock the map - restart the fault.
        if not locked:
            if we_own:
                rw_exit(anon.an_lock)
            return ERESTART

        # Verify that no one has touched the amap and moved
        # the anon on us.
        if ufi is not None:
            assert ufi.entry is not None
            if uvm_amap.amap_lookup(ufi.entry.aref, ufi.orig_rvaddr - ufi.entry.start) is not anon:
                uvmfault_unlockall(ufi, amap, None)
                return ERESTART

        # Retry..
        k.uvmexp.fltanretry += 1


async def uvmfault_promote(
    k: Kernel, ufi: UvmFaultinfo, uobjpage: VmPage | None
) -> tuple[int, VmAnon | None, VmPage | None]:
    """uvmfault_promote: promote data to a new anon.  used for 1B and 2B.

        1. allocate an anon and a page.
        2. fill its contents.

    => if we fail (result != 0) we unlock everything.
    => on success, return a new locked anon and its busy page.
    => it's caller's responsibility to put the promoted nanon->an_page to the
       page queue.
    => PORT: ``uobjpage`` None is PGO_DONTCARE (zero fill); C returns the anon and page
       through pointers
    => may sleep
    """
    assert ufi.entry is not None
    amap = ufi.entry.aref.ar_amap
    assert amap is not None
    uobj: UvmObject | None = uobjpage.uobject if uobjpage is not None else None

    anon = uvm_anon.uvm_analloc(k)
    pg: VmPage | None = None
    if anon is not None:
        anon.an_lock = amap.am_lock
        pg = uvm_pagealloc(k, None, 0, anon, UVM_PGA_ZERO if uobjpage is None else 0)

    # check for out of RAM
    if anon is None or pg is None:
        if uobjpage is not None:
            # PORT: 2022 un-busies the object page (pgo_get busied it) before unlocking
            _uobjpage_unbusy(k, uobjpage)
        uvmfault_unlockall(ufi, amap, uobj)
        if anon is None:
            k.uvmexp.fltnoanon += 1
        else:
            anon.an_lock = None
            anon.an_ref -= 1
            uvm_anon.uvm_anfree(k, anon)
            k.uvmexp.fltnoram += 1

        if _uvm_swapisfull(k):
            return int(ENOMEM), None, None

        # out of RAM, wait for more
        if anon is None:
            await k.pdaemon.uvm_wait(k, "flt_noanon")  # PORT: uvm_anwait()
        else:
            await k.pdaemon.uvm_wait(k, "flt_noram3")
        return ERESTART, None, None

    # copy the page [pg now dirty]
    if uobjpage is not None:
        uvm_pagecopy(k, uobjpage, pg)
    return 0, anon, pg


async def uvm_fault_lower_lookup(k: Kernel, ufi: UvmFaultinfo, flt: UvmFaultctx) -> VmPage | None:
    """uvm_fault_lower_lookup: look up on-memory uobj pages.

        1. get on-memory pages.
        2. if failed, give up (get only center page later).
        3. if succeeded, enter h/w mapping of neighbor pages.

    => returns with the object locked; the center page (made PG_BUSY by pgo_get, as in
       2022: the caller un-busies it), or None if it is not resident and idle
    => may sleep
    """
    entry = ufi.entry
    assert entry is not None
    uobj = entry.uvm_obj
    assert uobj is not None and uobj.pgops.pgo_get is not None

    await rw_enter(k, uobj.vmobjlock, flt.lower_lock_type)

    k.uvmexp.fltlget += 1
    pages: list[VmPage | None] = [None] * flt.npages
    _, gotpages = await uobj.pgops.pgo_get(
        k,
        uobj,
        entry.offset + (flt.startva - entry.start),
        pages,
        flt.npages,
        flt.centeridx,
        flt.access_type & MASK(entry),
        entry.advice,
        PGO_LOCKED,
    )

    # check for pages to map, if we got any
    if gotpages == 0:
        return None
    # if center page is resident and not PG_BUSY, then pgo_get
    # made it PG_BUSY for us and gave us a handle to it.
    # remember this page as "uobjpage." (for later use).
    uobjpage = pages[flt.centeridx]
    if uobjpage is not None:
        KASSERT(k, uobjpage.pg_flags & PG_BUSY)
        KASSERT(k, not (uobjpage.pg_flags & PG_RELEASED))
    return uobjpage


async def uvm_fault_lower(k: Kernel, ufi: UvmFaultinfo, flt: UvmFaultctx) -> int:
    """uvm_fault_lower: handle lower fault.

        1. check uobj
        1.1. if null, ZFOD.
        1.2. if not null, look up unmapped neighbor pages.
        2. for center page, check if promote.
        2.1. ZFOD always needs promotion.
        2.2. other uobjs, when entry is marked COW (usually MAP_PRIVATE vnode).
        3. if uobj is not ZFOD and page is not found, do i/o.
        4. dispatch either direct / promote fault.

    => may sleep
    """
    entry = ufi.entry
    assert entry is not None
    amap = entry.aref.ar_amap
    uobj = entry.uvm_obj
    anon: VmAnon | None = None
    pg: VmPage | None

    # now, if the desired page is not shadowed by the amap and we have
    # a backing object that does not have a special fault routine, then
    # we ask (with pgo_get) the object for resident pages that we care
    # about and attempt to map them in.  we do not let pgo_get block
    # (PGO_LOCKED).
    uobjpage: VmPage | None
    uoff = (ufi.orig_rvaddr - entry.start) + entry.offset
    if uobj is None:
        # zero fill; don't care neighbor pages
        uobjpage = None
        was_resident = False
    else:
        # PORT: an aobj's pgo_get zero-fills a new page even with PGO_LOCKED: note whether
        # the page was there before, to count the fault's kind.
        was_resident = uvm_pagelookup(uobj, uoff) is not None
        uobjpage = await uvm_fault_lower_lookup(k, ufi, flt)

    # note that uobjpage can not be PGO_DONTCARE at this point.  we now
    # set uobjpage to PGO_DONTCARE if we are doing a zero fill.  if we
    # have a backing object, check and see if we are going to promote
    # the data up to an anon during the fault.
    if uobj is None:
        # PORT: uobjpage = PGO_DONTCARE
        flt.promote = True  # always need anon here
    else:
        flt.promote = bool(flt.access_type & PROT_WRITE) and bool(
            entry.etype & uvm_map.UVM_ET_COPYONWRITE
        )

    # if uobjpage is not null then we do not need to do I/O to get the
    # uobjpage.
    #
    # if uobjpage is null, then we need to ask the pager to
    # get the data for us.   once we have the data, we need to reverify
    # the state the world.   we are currently not holding any resources.
    if uobj is None:
        flt.kind = max(flt.kind, _KIND_ZERO)
    elif uobjpage is not None:
        # update rusage counters
        _pstat("minflt")
        flt.kind = max(flt.kind, _KIND_SOFT if was_resident else _KIND_ZERO)
        uvm_lock_pageq(k)
        uvm_pageactivate(k, uobjpage)
        uvm_unlock_pageq(k)
    else:
        # PORT: a busy object page (e.g. under pageout) is waited for here.
        busy = uvm_pagelookup(uobj, uoff)
        if busy is not None and busy.pg_flags & (PG_BUSY | PG_RELEASED):
            busy.pg_flags |= PG_WANTED
            k.uvmexp.fltpgwait += 1
            k.uvmexp.flt_busywait += 1
            _pstat("flt_busywait")
            uvmfault_unlockall(ufi, amap, None)
            await rwsleep_nsec(k, busy, uobj.vmobjlock, PVM | PNORELOCK, "fltobjbsy", INFSLP)
            return ERESTART
        error, uobj, uobjpage = await uvm_fault_lower_io(k, ufi, flt, uobj)
        if error != 0:
            return error

    # notes:
    #  - at this point uobjpage can not be NULL
    #  - at this point uobjpage could be PG_WANTED (handle later)
    if not flt.promote:
        # we are not promoting.   if the mapping is COW ensure that we
        # don't give more access than we should (e.g. when doing a read
        # fault on a COPYONWRITE mapping we want to map the COW page in
        # R/O even though the entry protection could be R/W).
        #
        # set "pg" to the page we want to map in (uobjpage, usually)
        k.uvmexp.flt_obj += 1
        if entry.etype & uvm_map.UVM_ET_COPYONWRITE:
            flt.enter_prot &= ~PROT_WRITE
        pg = uobjpage  # map in the actual object
        assert pg is not None
    else:
        assert amap is not None

        # if we are going to promote the data to an anon we
        # allocate a blank anon here and plug it into our amap.
        error, anon, pg = await uvmfault_promote(k, ufi, uobjpage)
        if error != 0:
            return error
        assert anon is not None and pg is not None

        # fill in the data
        if uobjpage is not None:
            k.uvmexp.flt_prcopy += 1
            # promote to shared amap?  make sure all sharing
            # procs see it
            if amap.am_flags & uvm_amap.AMAP_SHARED:
                k.pmap.pmap_page_protect(uobjpage, PROT_NONE)
            # dispose of uobjpage.  it can't be PG_RELEASED
            # since we still hold the object lock.
            _uobjpage_unbusy(k, uobjpage)
            # done with copied uobjpage.
            assert uobj is not None
            rw_exit(uobj.vmobjlock)
            uobj = None
        else:
            k.uvmexp.flt_przero += 1
            # Page is zero'd and marked dirty by uvm_pagealloc(),
            # called in uvmfault_promote() above.

        uvm_amap.amap_add(k, entry.aref, ufi.orig_rvaddr - entry.start, anon, False)

    # all resources are present.   we can now map it in and free our
    # resources.
    if (
        k.pmap.pmap_enter(ufi.orig_map.pmap, ufi.orig_rvaddr, pg, flt.enter_prot, flt.access_type)
        != 0
    ):
        # No need to undo what we did; we can simply think of
        # this as the pmap throwing away the mapping information.
        #
        # We do, however, have to go through the ReFault path,
        # as the map may change while we're asleep.
        if pg.pg_flags & PG_WANTED:
            wakeup(k, pg)
        pg.pg_flags &= ~(PG_BUSY | PG_FAKE | PG_WANTED)
        uvmfault_unlockall(ufi, amap, uobj)
        if _uvm_swapisfull(k):
            return int(ENOMEM)
        await k.pdaemon.uvm_wait(k, "flt_pmfail2")
        return ERESTART

    uvm_lock_pageq(k)
    uvm_pageactivate(k, pg)
    uvm_unlock_pageq(k)

    if pg.pg_flags & PG_WANTED:
        wakeup(k, pg)

    pg.pg_flags &= ~(PG_BUSY | PG_FAKE | PG_WANTED)
    uvmfault_unlockall(ufi, amap, uobj)
    k.pmap.pmap_update(ufi.orig_map.pmap)
    return 0


async def uvm_fault_lower_io(
    k: Kernel, ufi: UvmFaultinfo, flt: UvmFaultctx, uobj: UvmObject
) -> tuple[int, UvmObject | None, VmPage | None]:
    """uvm_fault_lower_io: get lower page from backing store.

        1. unlock everything, because i/o will block.
        2. call pgo_get.
        3. if failed, recover.
        4. if succeeded, relock everything and verify things.

    => called with the maps, amap and object locked
    => returns (0, object, page) with the object locked and the page unbusied, or an errno
       with everything unlocked; may sleep
    """
    entry = ufi.entry
    assert entry is not None
    amap = entry.aref.ar_amap

    # grab everything we need from the entry before we unlock
    uoff = (ufi.orig_rvaddr - entry.start) + entry.offset
    access_type = flt.access_type & MASK(entry)
    advice = entry.advice

    # Upgrade to a write lock if needed. (PORT: the object lock is always write-held.)
    uvmfault_unlockall(ufi, amap, None)

    # update rusage counters
    _pstat("majflt")
    # PORT: an aobj page that never went to swap is zero-filled by the pager, not read.
    if UVM_OBJ_IS_AOBJ(uobj) and uvm_aobj.uao_find_swslot(k, uobj, uoff >> PAGE_SHIFT) == 0:
        flt.kind = max(flt.kind, _KIND_ZERO)
    else:
        flt.kind = _KIND_MAJOR
        k.sched.charge(k.config.costs.pagein_ns)

    k.uvmexp.fltget += 1
    pages: list[VmPage | None] = [None]
    assert uobj.pgops.pgo_get is not None
    result, _ = await uobj.pgops.pgo_get(
        k, uobj, uoff, pages, 1, 0, access_type, advice, PGO_SYNCIO
    )
    pg = pages[0]

    # recover from I/O
    if result != VM_PAGER_OK:
        if result == VM_PAGER_AGAIN:
            await tsleep_nsec(k, _NOWAKE, PVM, "fltagain2", MSEC_TO_NSEC(5))
            return ERESTART, None, None
        return int(EIO), None, None
    assert pg is not None

    # re-verify the state of the world.
    locked = await uvmfault_relock(k, ufi)
    if locked and amap is not None:
        await uvm_amap.amap_lock(k, amap, flt.upper_lock_type)

    # might be changed
    ruobj = pg.uobject
    assert ruobj is not None
    await rw_enter(k, ruobj.vmobjlock, flt.lower_lock_type)
    KASSERT(k, pg.pg_flags & PG_BUSY)

    # Re-verify that amap slot is still free. if there is
    # a problem, we clean up.
    if (
        locked
        and amap is not None
        and uvm_amap.amap_lookup(entry.aref, ufi.orig_rvaddr - entry.start) is not None
    ):
        uvmfault_unlockall(ufi, amap, None)
        locked = False

    # release the page now, still holding object lock
    if pg.pg_flags & PG_RELEASED:
        # PORT: the object let go of it during the I/O: uvm_page_unbusy frees it.
        if locked:
            uvmfault_unlockall(ufi, amap, None)
            locked = False
        uvm_page_unbusy(k, [pg], 1)
    else:
        _uobjpage_unbusy(k, pg)

    if not locked:
        rw_exit(ruobj.vmobjlock)
        return ERESTART, None, None

    # we have the data in pg.  we are holding object lock (so the page
    # can't be released on us).
    return 0, ruobj, pg


# --- lookup and locking ---------------------------------------------------------------------


def uvmfault_unlockmaps(ufi: UvmFaultinfo | None, write_locked: bool) -> None:
    """uvmfault_unlockmaps: unlock the maps"""
    # ufi can be NULL when this isn't really a fault,
    # but merely paging in anon data.
    if ufi is None:
        return
    assert ufi.map is not None
    if write_locked:
        uvm_map.vm_map_unlock(ufi.map)
    else:
        uvm_map.vm_map_unlock_read(ufi.map)


def uvmfault_unlockall(
    ufi: UvmFaultinfo | None, amap: VmAmap | None, uobj: UvmObject | None
) -> None:
    """uvmfault_unlockall: unlock everything passed in.

    => maps must be read-locked (not write-locked).
    """
    if uobj is not None:
        rw_exit(uobj.vmobjlock)
    if amap is not None:
        uvm_amap.amap_unlock(amap)
    uvmfault_unlockmaps(ufi, False)


async def uvmfault_lookup(k: Kernel, ufi: UvmFaultinfo, write_lock: bool) -> bool:
    """uvmfault_lookup: lookup a virtual address in a map

    => caller must provide a uvm_faultinfo structure with the IN
       params properly filled in
    => if the lookup is a success we will return with the maps locked
    => if "write_lock" is TRUE, we write_lock the map, otherwise we only
       get a read lock.
    => may sleep
    """
    # init ufi values for lookup.
    ufi.map = ufi.orig_map
    ufi.size = ufi.orig_size

    if ufi.orig_rvaddr < ufi.map.min_offset or ufi.orig_rvaddr >= ufi.map.max_offset:
        return False

    # lock map
    if write_lock:
        await uvm_map.vm_map_lock(k, ufi.map)
    else:
        await uvm_map.vm_map_lock_read(k, ufi.map)

    # lookup
    entry = uvm_map.uvm_map_lookup_entry(ufi.map, ufi.orig_rvaddr)
    if entry is None:
        uvmfault_unlockmaps(ufi, write_lock)
        return False
    ufi.entry = entry

    # reduce size if necessary
    if entry.end - ufi.orig_rvaddr < ufi.size:
        ufi.size = entry.end - ufi.orig_rvaddr

    # got it!
    ufi.mapv = ufi.map.timestamp
    return True


async def uvmfault_relock(k: Kernel, ufi: UvmFaultinfo | None) -> bool:
    """uvmfault_relock: attempt to relock the same version of the map

    => fault data structures should be unlocked before calling.
    => if a success (TRUE) maps will be locked after call.
    => may sleep
    """
    # ufi can be NULL when this isn't really a fault,
    # but merely paging in anon data.
    if ufi is None:
        return True
    assert ufi.map is not None

    k.uvmexp.fltrelck += 1
    # relock map.   fail if version mismatch (in which case nothing
    # gets locked).
    await uvm_map.vm_map_lock_read(k, ufi.map)
    if ufi.mapv != ufi.map.timestamp:
        uvm_map.vm_map_unlock_read(ufi.map)
        return False

    k.uvmexp.fltrelckok += 1
    return True  # got it!


# --- port helpers ---------------------------------------------------------------------------


def _pstat(key: str) -> None:
    """Count one event in the current process's stats (p_ru and the fault kinds)."""
    p = curproc()
    if p is not None:
        p.stats[key] = p.stats.get(key, 0) + 1


def _log_pagein(vaddr: int, latency_ns: int) -> None:
    """The ``uvm_fault.pagein`` event of a major fault that succeeded."""
    p = curproc()
    log.info("uvm_fault.pagein", pid=p.p_pid if p is not None else -1, vaddr=vaddr,
             latency_ns=latency_ns, ok=True)  # fmt: skip


def _uobjpage_unbusy(k: Kernel, pg: VmPage) -> None:
    """Activate an object page pgo_get busied for us, wake its waiters and un-busy it."""
    uvm_lock_pageq(k)
    uvm_pageactivate(k, pg)  # make sure it is in queues
    uvm_unlock_pageq(k)
    if pg.pg_flags & PG_WANTED:
        wakeup(k, pg)
    pg.pg_flags &= ~(PG_BUSY | PG_WANTED)


def _uvm_swapisfull(k: Kernel) -> bool:
    """uvm_swapisfull(), also on a kernel booted without swap state (then: full)."""
    if k.swap is None:
        return True
    return uvm_swap.uvm_swapisfull(k)
