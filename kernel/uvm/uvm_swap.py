"""uvm_swap.c: configuration of swap space and I/O to it.

Port of the behaviour of OpenBSD sys/uvm/uvm_swap.c,v 1.166 and uvm_swap.h,v 1.19 (nearest
readable to September 2022; reference §1.9 and §1.14). Comments are the port's own wording.

Swap devices are grouped by priority (``struct swappri``, lowest value first); inside a group
they are used round robin. Every device owns one contiguous range of the "drum", a single
slot space that starts at 1, so slot 0 means "no slot" and ``SWSLOT_BAD`` (-1) marks a slot
whose data could not be read back. Slot s lives at page ``s - swd_drumoffset`` of its device.

Swap encryption (UVM_SWAP_ENCRYPT, on by default as upstream; uvm_swap_encrypt.py): a device
gets a "needs decrypt" map of its pages and one key per section of ``1 << SWD_KEY_SHIFT``
pages when it is added with encryption on (or when encryption is switched on). An encrypted
write bounces: ``uvm_swap_io`` allocates as many pages as it writes (``uvm_swap_allocpages``:
DMA-reachable, without sleeping for an async write; the page daemon falls back on a reserve
of SWCLUSTPAGES pages, ``oompps``, and sleeps on "oom" while another write holds it),
encrypts each page into its bounce page (PQ_ENCRYPT, taking a reference on the slot's key),
marks the slots "needs decrypt", and writes the bounce pages; ``uvm_aio_aiodone`` frees them.
A read decrypts in place after a successful transfer if its slot is marked; ``uvm_swap_free``
drops the key references of marked slots and clears the marks.

Deviations:
- ONE DELIBERATE BEHAVIOUR CHANGE (reference §4 item 11): upstream hands the original pages
  back clean (uvm_pager_dropcluster with PGO_PDFREECLUST) as soon as the encrypted copy is
  made, so a write that then fails has lost their data. Here the originals stay busy and
  dirty until the write is done: ``bp.b_origpages`` carries them, and uvm_aio_aiodone
  finishes them like an unencrypted write's (clean only if the write worked; otherwise
  dirty, slot forgotten and marked bad). To the page daemon an encrypted pageout therefore
  looks like a plain one (PEND, pages busy until aiodoned), plus the bounce pages it holds.
- The OOM reserve (``oompps``) is taken at boot only by a kernel that boots with encryption
  on, or when encryption is switched on (``uvm_swap_initcrypt_all``): upstream takes it at
  every boot, but here nothing else bounces (the emulated disk's DMA reaches all of RAM, so
  the dma_constraint test never fires), and a kernel without encryption keeps every page.
- A synchronous write's bounce pages are freed when it is done (upstream never writes to swap
  synchronously and would keep them); reads never bounce here.
- The decrypt map is a byte per page (a bytearray), not a bit per page.
- ``uvm_swap_markbad`` drops the key references of the slots it marks (what uvm_swap_free
  would do): bad slots are never freed here and their contents are never read again.
- ``uvm_swap_finicrypt_all`` (used by hibernate) is not ported.
- A device's free pages are a bitmap searched first-fit from a low-water hint, not a blist
  radix tree. ``/dev/drum`` ranges come from an append-only counter, not an extent: there is
  no swap_off, so a range is never given back.
- Bad slots are never reused: ``uvm_swap_markbad`` records them in a per-device bitmap and
  ``uvm_swap_free`` leaves them allocated (counted in ``swd_npginuse`` and ``swpginuse``).
  Upstream only counts them, and a later free would return them to the blist. So
  ``uvm_swapisfull`` counts bad pages as full: otherwise a device whose every write fails
  makes all slots bad while ``swpgonly < swpages``, and the machine livelocks. It counts
  each unusable slot once: a failed swap-in leaves its page in ``swpgonly`` *and* its slot
  bad, so ``swpgonlybad`` (kept by the owners: ``swpgonlybad_add``) counts those slots, and
  full is ``swpgonly + npgbad - swpgonlybad == swpages``.
- ``swap_on(k, dev, priority)`` is the SWAP_ON case of sys_swapctl and swap_on() in one
  plain function: nothing in it can sleep here (no VOP_OPEN/VOP_GETATTR, malloc never waits).
- Block numbers count pages, not DEV_BSIZE sectors (the emulated disks count pages).
- A swap device is the :class:`BlockDev` protocol the arch glue implements
  (kernel/arch/emu/swapdev.py turns a sys/buf.h ``Buf`` into a request of the emulated
  disk). The buffer pool, ``biowait`` and ``biodone`` are vfs_bio.c's (kern/vfs_bio.py).
- A synchronous transfer sets B_CALL with ``vfs_bio.biowakeup`` as its b_iodone: our
  ``biodone`` calls b_iodone for B_CALL bufs only and does not wake sync waiters itself.
- The pager map of uvm_pager.c (``psegs``) is counted here, since the Kernel record has no
  place for uvm_pager.c's globals.
- C out-parameters are returned: ``slot, nslots = uvm_swap_alloc(k, nslots, lessok)``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

import numpy as np
import numpy.typing as npt

import kernel.kern.vfs_bio as vfs_bio
import kernel.uvm.uvm_page as uvm_page
import kernel.uvm.uvm_pager as uvm_pager
import kernel.uvm.uvm_pmemrange as uvm_pmemrange
import kernel.uvm.uvm_swap_encrypt as uvm_swap_encrypt
from kernel.kern.kern_synch import (
    INFSLP,
    MUTEX_ASSERT_LOCKED,
    PNORELOCK,
    PVM,
    Mutex,
    chan,
    cpu_race,
    msleep_nsec,
    mtx_enter,
    mtx_leave,
    wakeup,
)
from kernel.sys.buf import (
    B_ASYNC,
    B_BUSY,
    B_CALL,
    B_ERROR,
    B_NOCACHE,
    B_PDAEMON,
    B_RAW,
    B_READ,
    B_WRITE,
    Buf,
)
from kernel.sys.errno import EBUSY, EINVAL
from kernel.sys.param import MAXBSIZE, PAGE_SHIFT, PAGE_SIZE, atop, btodb
from kernel.sys.pool import PR_NOWAIT, PR_WAITOK
from kernel.sys.proc import curproc
from kernel.sys.queue import TailQ, TailQEntry
from kernel.sys.systm import KASSERT, KASSERTMSG, Panic
from kernel.uvm.uvm import dma_constraint

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.uvm.uvm_page import VmPage
    from kernel.uvm.uvm_swap_encrypt import SwapKey

__all__ = [
    "SWCLUSTPAGES",
    "SWD_KEY",
    "SWD_KEY_SHIFT",
    "SWD_KEY_SIZE",
    "SWF_BUSY",
    "SWF_ENABLE",
    "SWF_FAKE",
    "SWF_INUSE",
    "SWSLOT_BAD",
    "BlockDev",
    "SwapState",
    "Swapdev",
    "Swappri",
    "SwfFlags",
    "swap_on",
    "swapdrum_add",
    "swapdrum_getsdp",
    "swaplist_find",
    "swaplist_insert",
    "swaplist_trim",
    "swpgonlybad_add",
    "swstrategy",
    "uvm_swap_alloc",
    "uvm_swap_allocpages",
    "uvm_swap_free",
    "uvm_swap_freepages",
    "uvm_swap_get",
    "uvm_swap_init",
    "uvm_swap_initcrypt",
    "uvm_swap_initcrypt_all",
    "uvm_swap_io",
    "uvm_swap_markbad",
    "uvm_swap_markdecrypt",
    "uvm_swap_needdecrypt",
    "uvm_swap_put",
    "uvm_swapisfilled",
    "uvm_swapisfull",
    "uvm_swapisfull_154",
]

SWCLUSTPAGES: Final = MAXBSIZE >> PAGE_SHIFT  # most pages in one swap pageout cluster
SWSLOT_BAD: Final = -1  # an anon or aobj slot whose data failed to read
SWD_KEY_SHIFT: Final = 7  # One key per 0.5 MByte


class SwfFlags(enum.IntFlag):
    """swd_flags (sys/swap.h)."""

    SWF_INUSE = 0x00000001  # in use: we have swapped here
    SWF_ENABLE = 0x00000002  # enabled: we can swap here
    SWF_BUSY = 0x00000004  # busy: I/O happening here
    SWF_FAKE = 0x00000008  # fake: still being built


SWF_INUSE: Final = SwfFlags.SWF_INUSE
SWF_ENABLE: Final = SwfFlags.SWF_ENABLE
SWF_BUSY: Final = SwfFlags.SWF_BUSY
SWF_FAKE: Final = SwfFlags.SWF_FAKE


# PORT: pager map size in MAXBSIZE segments (PAGER_MAP_SIZE / MAXBSIZE on amd64: 16 psegs of
# 16 segments); the first two are kept for the page daemon.
UVM_PSEG_SEGS: Final = 256
UVM_PSEG_RESERVED: Final = 2


class BlockDev(Protocol):
    """PORT: a disk behind kernel/arch/emu/swapdev.py (C: its vnode plus bdevsw entry).

    ``dv_strategy`` starts the transfer of ``bp.b_pages`` at ``bp.b_blkno`` (a page of this
    device; B_READ or a write) and later, from the clock's idle loop (interrupt context),
    sets ``b_error``/B_ERROR/``b_resid`` on ``bp`` and calls sys/buf.h's ``biodone(bp)``.
    """

    @property
    def dv_name(self) -> str: ...

    @property
    def dv_npages(self) -> int: ...

    @property
    def dv_isblk(self) -> bool: ...

    def dv_strategy(self, bp: Buf) -> None: ...


@dataclass(eq=False, slots=True)
class Swapdev:
    """struct swapdev: one swap partition or file. Locks: [S] uvm_swap_data_lock.

    Invariants: swd_npginuse <= swd_npages; swd_npgbad <= swd_npginuse (bad slots are
    never freed); swd_npginuse == number of clear bits of swd_blist in the usable range.
    """

    swd_vp: BlockDev  # backing device
    swd_path: str  # saved pathname of device
    swd_flags: SwfFlags = field(default_factory=lambda: SwfFlags(0))  # [S] flags: inuse/enable/fake
    swd_priority: int = 0  # [S] our priority
    swd_npages: int = 0  # [S] #pages we can use
    swd_npginuse: int = 0  # [S] #pages in use
    swd_npgbad: int = 0  # [S] #pages bad
    swd_drumoffset: int = 0  # page0 offset in drum
    swd_drumsize: int = 0  # #pages in drum
    # PORT: the blist: 1 = free page; swd_bad: 1 = page marked bad; swd_hint: no free page
    # below this index (first-fit search starts here)
    swd_blist: npt.NDArray[np.uint8] = field(default_factory=lambda: np.zeros(0, np.uint8))
    swd_blistb: bytearray = field(default_factory=bytearray)  # PORT: the bytes under swd_blist
    swd_bad: npt.NDArray[np.uint8] = field(default_factory=lambda: np.zeros(0, np.uint8))
    swd_hint: int = 0
    swd_next: TailQEntry[Swapdev] = field(default_factory=TailQEntry)  # [S] priority tailq
    # UVM_SWAP_ENCRYPT (uvm_swap_initcrypt); PORT: the decrypt map has a byte per page
    swd_decrypt: bytearray | None = None  # map for decryption
    swd_keys: list[SwapKey] | None = None  # keys for different parts

    def __repr__(self) -> str:
        return (
            f"<swapdev {self.swd_path} pri={self.swd_priority} drum={self.swd_drumoffset}"
            f"+{self.swd_drumsize} inuse={self.swd_npginuse}/{self.swd_npages}>"
        )


@dataclass(eq=False, slots=True)
class Swappri:
    """struct swappri: the swap devices of one priority."""

    spi_priority: int  # priority
    spi_swapdev: TailQ[Swapdev] = field(
        default_factory=lambda: TailQ("swd_next", "spi_swapdev")
    )  # [S] tailq of swapdevs at this priority
    spi_swappri: TailQEntry[Swappri] = field(default_factory=TailQEntry)  # [S] global list


@dataclass(eq=False, slots=True)
class SwapState:
    """The globals of uvm_swap.c (plus, PORT, the pager map counts of uvm_pager.c).

    Locks: [S] uvm_swap_data_lock, [O] oommtx, [K] boot only.
    """

    swap_priority: TailQ[Swappri] = field(
        default_factory=lambda: TailQ("spi_swappri", "swap_priority")
    )  # [S] list of all active swap devices, by priority
    uvm_swap_data_lock: Mutex = field(default_factory=lambda: Mutex("uvm_swap_data_lock"))
    swapmap_next: int = 1  # [S] PORT: the /dev/drum extent: next free drum page (0 = none)
    # [S] PORT: the swapdev swapdrum_getsdp found last (a device on the list; None after a
    # removal): most lookups hit it, and the walk of the lists is skipped
    getsdp_hint: Swapdev | None = None
    # PORT: bad slots whose page is also counted in uvmexp.swpgonly: a failed swap-in keeps
    # its page counted until its anon or aobj forgets the SWSLOT_BAD slot (swpgonlybad_add)
    swpgonlybad: int = 0  # [S]
    # PORT: uvm_pager.c's pager map (psegs), in MAXBSIZE segments
    uvm_pseg_use: int = 0
    uvm_pseg_max: int = UVM_PSEG_SEGS
    # the page daemon's bounce pages when memory is short (PORT: see the module docstring)
    oommtx: Mutex = field(default_factory=lambda: Mutex("oommtx"))
    oompps: list[VmPage] = field(default_factory=list)  # [K] SWCLUSTPAGES pages, or none
    oom: int = 0  # [O] oompps are in use


def SWD_KEY(sdp: Swapdev, y: int) -> SwapKey:
    """SWD_KEY: the key of the section that holds drum slot ``y``."""
    assert sdp.swd_keys is not None
    return sdp.swd_keys[(y - sdp.swd_drumoffset) >> SWD_KEY_SHIFT]


def SWD_KEY_SIZE(x: int) -> int:
    """SWD_KEY_SIZE: how many keys ``x`` pages need."""
    return (x + (1 << SWD_KEY_SHIFT) - 1) >> SWD_KEY_SHIFT


def _swap(k: Kernel) -> SwapState:
    """k.swap; PORT: set up on first use if boot did not call uvm_swap_init."""
    swap = k.swap
    if swap is None:
        uvm_swap_init(k)
        swap = k.swap
        assert swap is not None
    return swap


def uvm_swap_init(k: Kernel) -> None:
    """uvm_swap_init: set up the swap data structures (empty priority list, drum extent).

    => called at boot, before any swap_on
    """
    k.swap = SwapState()
    k.uvmexp.nswapdev = 0

    # allocate pages for OOM situations.  PORT: only if this kernel encrypts swap
    if uvm_swap_encrypt.swapencrypt(k).uvm_doswapencrypt:
        _swap_oompps(k, True)


def uvm_swap_initcrypt_all(k: Kernel) -> None:
    """uvm_swap_initcrypt_all: give every device that has none its decrypt map and keys.

    => called when swap encryption is switched on (swap_encrypt_ctl)
    => PORT: also takes the OOM reserve if the kernel booted without encryption (if memory
       is short now, the page daemon goes without it: its bounce shortage is then AGAIN)
    """
    for spp in _swap(k).swap_priority:
        for sdp in spp.spi_swapdev:
            if sdp.swd_decrypt is None:
                uvm_swap_initcrypt(sdp, sdp.swd_drumsize)
    _swap_oompps(k, False)


def uvm_swap_initcrypt(sdp: Swapdev, npages: int) -> None:
    """uvm_swap_initcrypt: set up the decrypt map and the keys of a device of ``npages``.

    => done when the device is added (not later: an async put cannot allocate)
    """
    sdp.swd_decrypt = bytearray(npages)
    sdp.swd_keys = [uvm_swap_encrypt.SwapKey() for _ in range(SWD_KEY_SIZE(npages))]


async def uvm_swap_allocpages(k: Kernel, pps: list[VmPage], npages: int, flags: int) -> int:
    """uvm_swap_allocpages: allocate ``npages`` DMA-reachable bounce pages into ``pps``.

    => flags: UVM_PLA_NOWAIT or UVM_PLA_WAITOK; the pages come back PG_BUSY
    => the page daemon never fails: it takes the OOM reserve, or sleeps until it is free
    => returns 0 or an errno
    => may sleep
    """
    assert npages <= SWCLUSTPAGES
    swap = _swap(k)
    p = curproc()
    while True:  # again:
        pgl: list[VmPage] = []
        error = await _uvm_pglistalloc(k, npages, pgl, flags)
        if error and p is not None and p is k.uvm.pagedaemon_proc and swap.oompps:
            mtx_enter(swap.oommtx)
            if swap.oom:
                await msleep_nsec(k, chan(swap, "oom"), swap.oommtx, PVM | PNORELOCK, "oom", INFSLP)
                continue  # goto again
            swap.oom = 1
            for i in range(npages):
                swap.oompps[i].pg_flags |= uvm_page.PG_BUSY
                pps.append(swap.oompps[i])
            mtx_leave(swap.oommtx)
            return 0
        if error:
            return error
        for i in range(npages):
            pgl[i].pg_flags |= uvm_page.PG_BUSY  # *sigh*
            pps.append(pgl[i])
        return 0


def uvm_swap_freepages(k: Kernel, pps: Sequence[VmPage], npages: int) -> None:
    """uvm_swap_freepages: give back bounce pages (to the OOM reserve if they are it)."""
    swap = _swap(k)
    if swap.oompps and pps[0] is swap.oompps[0]:
        for i in range(npages):
            uvm_page.uvm_pageclean(k, pps[i])
        mtx_enter(swap.oommtx)
        assert swap.oom == 1
        swap.oom = 0
        mtx_leave(swap.oommtx)
        wakeup(k, chan(swap, "oom"))
        return
    uvm_page.uvm_lock_pageq(k)
    for i in range(npages):
        uvm_page.uvm_pagefree(k, pps[i])
    uvm_page.uvm_unlock_pageq(k)


def uvm_swap_markdecrypt(sdp: Swapdev | None, startslot: int, npages: int, decrypt: int) -> None:
    """uvm_swap_markdecrypt: mark (or unmark) slots whose contents a read must decrypt."""
    if sdp is None:
        return
    assert sdp.swd_decrypt is not None, "uvm_swap_markdecrypt: device has no decrypt map"
    pagestart = startslot - sdp.swd_drumoffset
    sdp.swd_decrypt[pagestart : pagestart + npages] = (b"\x01" if decrypt else b"\x00") * npages


def uvm_swap_needdecrypt(sdp: Swapdev | None, off: int) -> bool:
    """uvm_swap_needdecrypt: must the page read from drum slot ``off`` be decrypted?"""
    if sdp is None:
        return False
    assert sdp.swd_decrypt is not None, "uvm_swap_needdecrypt: device has no decrypt map"
    return bool(sdp.swd_decrypt[off - sdp.swd_drumoffset])


# --- swap list --------------------------------------------------------------------------------


def swaplist_insert(k: Kernel, sdp: Swapdev, newspp: Swappri, priority: int) -> None:
    """swaplist_insert: put ``sdp`` on the list at ``priority``.

    => caller holds uvm_swap_data_lock
    => ``newspp`` is used if the priority is new, otherwise dropped
    """
    swap = _swap(k)
    MUTEX_ASSERT_LOCKED(swap.uvm_swap_data_lock)
    # find the entry at or after which the new device goes
    pspp: Swappri | None = None
    spp = swap.swap_priority.first()
    while spp is not None:
        if priority <= spp.spi_priority:
            break
        pspp = spp
        spp = swap.swap_priority.next(spp)
    # a priority we have not seen yet?
    if spp is None or spp.spi_priority != priority:
        spp = newspp
        spp.spi_priority = priority
        if pspp is not None:
            swap.swap_priority.insert_after(pspp, spp)
        else:
            swap.swap_priority.insert_head(spp)
    # the priority exists now: queue the device at its tail
    sdp.swd_priority = priority
    spp.spi_swapdev.insert_tail(sdp)
    k.uvmexp.nswapdev += 1


def swaplist_find(k: Kernel, vp: BlockDev, remove: bool) -> Swapdev | None:
    """swaplist_find: the swapdev of device ``vp``, optionally taken off the list.

    => caller holds uvm_swap_data_lock
    """
    swap = _swap(k)
    for spp in swap.swap_priority:
        for sdp in spp.spi_swapdev:
            if sdp.swd_vp is not vp:
                continue
            if remove:
                spp.spi_swapdev.remove(sdp)
                k.uvmexp.nswapdev -= 1
                swap.getsdp_hint = None  # PORT: see SwapState
            return sdp
    return None


def swaplist_trim(k: Kernel) -> None:
    """swaplist_trim: drop priority entries that have no device left.

    => caller holds uvm_swap_data_lock
    """
    swap = _swap(k)
    for spp in swap.swap_priority:
        if spp.spi_swapdev.empty():
            swap.swap_priority.remove(spp)


def swapdrum_add(k: Kernel, sdp: Swapdev, npages: int) -> None:
    """swapdrum_add: give ``sdp`` a range of ``npages`` pages of /dev/drum."""
    swap = _swap(k)
    sdp.swd_drumoffset = swap.swapmap_next
    sdp.swd_drumsize = npages
    swap.swapmap_next += npages


def swapdrum_getsdp(k: Kernel, pgno: int) -> Swapdev | None:
    """swapdrum_getsdp: the swapdev whose drum range holds page ``pgno``.

    => caller holds uvm_swap_data_lock
    """
    swap = _swap(k)
    sdp = swap.getsdp_hint  # PORT: the last device found (SwapState), same answer
    if sdp is not None and sdp.swd_drumoffset <= pgno < sdp.swd_drumoffset + sdp.swd_drumsize:
        return sdp
    for spp in swap.swap_priority:
        for sdp in spp.spi_swapdev:
            if sdp.swd_drumoffset <= pgno < sdp.swd_drumoffset + sdp.swd_drumsize:
                swap.getsdp_hint = sdp
                return sdp
    return None


def swap_on(k: Kernel, dev: BlockDev, priority: int) -> int:
    """swap_on: start swapping on ``dev`` at ``priority`` (sys_swapctl SWAP_ON + swap_on).

    => a block device keeps its first page (the disklabel); a file uses all of its pages
    => returns 0, EBUSY if ``dev`` already swaps, EINVAL if it is too small
    """
    swap = _swap(k)
    # check for duplicates; if none, put a FAKE placeholder on the list so nobody else
    # enables the same device while we work on it
    sdp = Swapdev(swd_vp=dev, swd_path=dev.dv_name, swd_flags=SWF_FAKE)
    spp = Swappri(spi_priority=priority)
    mtx_enter(swap.uvm_swap_data_lock)
    if swaplist_find(k, dev, False) is not None:
        mtx_leave(swap.uvm_swap_data_lock)
        return int(EBUSY)
    swaplist_insert(k, sdp, spp, priority)
    mtx_leave(swap.uvm_swap_data_lock)

    # the size of the swap area, in pages
    npages = dev.dv_npages
    if dev.dv_isblk:
        # leave the disklabel alone: use pages 1 .. npages-1
        size = npages - 1
        addr = 1
    else:
        # a file: use pages 0 .. npages-1
        size = npages
        addr = 0
    if size < 1:
        mtx_enter(swap.uvm_swap_data_lock)
        swaplist_find(k, dev, True)  # kill the fake entry
        swaplist_trim(k)
        mtx_leave(swap.uvm_swap_data_lock)
        return int(EINVAL)

    # the "blist": every page free except the saved region
    sdp.swd_blistb = bytearray(npages)
    sdp.swd_blist = np.frombuffer(sdp.swd_blistb, np.uint8)  # the same bytes
    sdp.swd_blist[addr : addr + size] = 1
    sdp.swd_bad = np.zeros(npages, np.uint8)
    sdp.swd_hint = addr

    if uvm_swap_encrypt.swapencrypt(k).uvm_doswapencrypt:
        uvm_swap_initcrypt(sdp, npages)
    # add the new swapdev to the drum and enable it
    swapdrum_add(k, sdp, npages)
    sdp.swd_npages = size
    mtx_enter(swap.uvm_swap_data_lock)
    sdp.swd_flags &= ~SWF_FAKE  # going live
    sdp.swd_flags |= SWF_INUSE | SWF_ENABLE
    k.uvmexp.swpages += size
    mtx_leave(swap.uvm_swap_data_lock)
    return 0


# --- /dev/drum I/O ----------------------------------------------------------------------------


def swstrategy(k: Kernel, bp: Buf) -> None:
    """swstrategy: start I/O on the drum: find the device that holds the slots.

    => bp.b_blkno is a drum page on entry and a page of the device when it is started
    """
    swap = _swap(k)
    pageno = bp.b_blkno
    mtx_enter(swap.uvm_swap_data_lock)
    sdp = swapdrum_getsdp(k, pageno)
    mtx_leave(swap.uvm_swap_data_lock)
    if sdp is None:
        bp.b_error = int(EINVAL)
        bp.b_flags |= B_ERROR
        vfs_bio.biodone(bp)
        return
    # convert the drum page to a page on this swapdev
    bp.b_blkno = pageno - sdp.swd_drumoffset
    bp.b_dev = sdp.swd_vp
    sdp.swd_vp.dv_strategy(bp)


# --- allocation -------------------------------------------------------------------------------


def uvm_swap_alloc(k: Kernel, nslots: int, lessok: bool) -> tuple[int, int]:
    """uvm_swap_alloc: allocate ``nslots`` contiguous slots of swap.

    => round robin inside a priority: a device that gave slots moves to its group's tail
    => with ``lessok``, if nothing fits, retry the whole search for a single slot
    => returns (first drum slot, nslots obtained); slot 0 means failure
    => takes uvm_swap_data_lock
    """
    # no swap devices configured yet?  definite failure.
    if k.uvmexp.nswapdev < 1:
        return 0, nslots
    swap = _swap(k)
    mtx_enter(swap.uvm_swap_data_lock)
    while True:  # ReTry:
        for spp in swap.swap_priority:
            for sdp in spp.spi_swapdev:
                # if it's not enabled, then we can't swap from it
                if not (sdp.swd_flags & SWF_ENABLE):
                    continue
                if sdp.swd_npginuse + nslots > sdp.swd_npages:
                    continue
                result = _blist_alloc(sdp, nslots)
                if result < 0:
                    continue
                KASSERT(k, result < sdp.swd_drumsize)
                # got it: rotate the tailq
                spp.spi_swapdev.remove(sdp)
                spp.spi_swapdev.insert_tail(sdp)
                sdp.swd_npginuse += nslots
                k.uvmexp.swpginuse += nslots
                mtx_leave(swap.uvm_swap_data_lock)
                return result + sdp.swd_drumoffset, nslots
        # nothing fits: with lessok, settle for one slot
        if nslots > 1 and lessok:
            nslots = 1
            continue
        break
    mtx_leave(swap.uvm_swap_data_lock)
    return 0, nslots  # failed


def uvm_swapisfull(k: Kernel) -> bool:
    """uvm_swapisfull: is every usable swap page holding data that exists only in swap?

    => 2022 semantics: swpgonly == swpages (later revisions use a 99 % threshold)
    => PORT: pages marked bad count as full, each once (see the module docstring)
    """
    swap = _swap(k)
    mtx_enter(swap.uvm_swap_data_lock)
    # PORT: swpgonly becomes the count of unusable slots (_swap_unusable)
    swpgonly = _swap_unusable(k, swap)
    KASSERT(k, swpgonly <= k.uvmexp.swpages)
    result = swpgonly == k.uvmexp.swpages
    mtx_leave(swap.uvm_swap_data_lock)
    return result


def uvm_swapisfilled(k: Kernel) -> bool:
    """uvm_swapisfilled: is there less free swap than one cluster? (uvm_swap.c 1.179)

    => swpginuse + SWCLUSTPAGES >= swpages: slots held by pages still in memory can be
       taken back, so "filled" is not "full"
    => takes uvm_swap_data_lock
    => PORT: used by the 1.154 page daemon only (1.105 tests swpginuse == swpages inline)
    """
    swap = _swap(k)
    mtx_enter(swap.uvm_swap_data_lock)
    assert k.uvmexp.swpginuse <= k.uvmexp.swpages
    result = k.uvmexp.swpginuse + SWCLUSTPAGES >= k.uvmexp.swpages
    mtx_leave(swap.uvm_swap_data_lock)
    return result


def uvm_swapisfull_154(k: Kernel) -> bool:
    """uvm_swapisfull as uvm_swap.c 1.179 has it: do pages that live only in swap hold 99 %
    of it or more?

    => swpgonly >= swpages * 99 / 100 (integer division, as the C's long arithmetic)
    => PORT: pages marked bad count as full, each once, as in :func:`uvm_swapisfull`
    => takes uvm_swap_data_lock
    => PORT: used by the 1.154 page daemon only; the 2022 form above stays 1.105's
    """
    swap = _swap(k)
    mtx_enter(swap.uvm_swap_data_lock)
    # PORT: swpgonly becomes the count of unusable slots (_swap_unusable)
    swpgonly = _swap_unusable(k, swap)
    KASSERT(k, swpgonly <= k.uvmexp.swpages)
    result = swpgonly >= k.uvmexp.swpages * 99 // 100
    mtx_leave(swap.uvm_swap_data_lock)
    return result


def uvm_swap_markbad(k: Kernel, startslot: int, nslots: int) -> None:
    """uvm_swap_markbad: remember that I/O on these slots failed.

    => the range must lie on one device; its slots stay allocated forever
    => PORT: and give up their key references (uvm_swap_free's part)
    => takes uvm_swap_data_lock
    """
    swap = _swap(k)
    mtx_enter(swap.uvm_swap_data_lock)
    sdp = swapdrum_getsdp(k, startslot)
    if sdp is not None:
        # PORT: count each page once and keep it out of uvm_swap_free's reach
        lo = startslot - sdp.swd_drumoffset
        seg = sdp.swd_bad[lo : lo + nslots]
        KASSERTMSG(k, not sdp.swd_blist[lo : lo + nslots].any(), "uvm_swap_markbad: free slot")
        sdp.swd_npgbad += nslots - int(seg.sum())
        seg[:] = 1
    mtx_leave(swap.uvm_swap_data_lock)
    if sdp is not None and uvm_swap_encrypt.swapencrypt(k).swap_encrypt_initialized:
        # PORT: a bad slot is never freed or read again: it lets go of its key now
        _swap_dropkeys(k, sdp, startslot, nslots)


def uvm_swap_free(k: Kernel, startslot: int, nslots: int) -> None:
    """uvm_swap_free: give back slots (all or part of one uvm_swap_alloc).

    => SWSLOT_BAD is ignored; slots marked bad stay allocated (PORT)
    => once swap encryption has run, each slot marked "needs decrypt" drops its reference
       on its section's key (the last one destroys it) and the marks are cleared
    => takes uvm_swap_data_lock
    """
    # ignore attempts to free the "bad" slot
    if startslot == SWSLOT_BAD:
        return
    swap = _swap(k)
    mtx_enter(swap.uvm_swap_data_lock)
    sdp = swapdrum_getsdp(k, startslot)
    KASSERT(k, k.uvmexp.nswapdev >= 1)
    if sdp is None:
        raise Panic(f"uvm_swap_free: slot {startslot} is on no swap device")
    KASSERTMSG(k, sdp.swd_npginuse >= nslots, "uvm_swap_free: more slots than in use")
    nfreed = _blist_free(sdp, startslot - sdp.swd_drumoffset, nslots)
    sdp.swd_npginuse -= nfreed
    k.uvmexp.swpginuse -= nfreed
    mtx_leave(swap.uvm_swap_data_lock)

    if uvm_swap_encrypt.swapencrypt(k).swap_encrypt_initialized:
        if nslots == 1:  # PORT: one anon's slot (the common case), in fewer steps
            _swap_dropkey1(k, sdp, startslot)
            return
        # PORT: the C's two steps, "Dereference keys" and "Mark range as not decrypt", are
        # _swap_dropkeys, which uvm_swap_markbad shares
        _swap_dropkeys(k, sdp, startslot, nslots)


# --- I/O --------------------------------------------------------------------------------------


async def uvm_swap_put(
    k: Kernel, swslot: int, ppsp: Sequence[VmPage | None], npages: int, flags: int
) -> int:
    """uvm_swap_put: write ``npages`` pages to contiguous slots from ``swslot``.

    => async (VM_PAGER_PEND, completion through uvm_aio_biodone) unless PGO_SYNCIO
    => may sleep (only with PGO_SYNCIO)
    """
    result = await uvm_swap_io(
        k, ppsp, swslot, npages, B_WRITE | (0 if flags & uvm_pager.PGO_SYNCIO else B_ASYNC)
    )
    return result


async def uvm_swap_get(k: Kernel, page: VmPage, swslot: int, flags: int) -> int:
    """uvm_swap_get: read one page from swap, synchronously.

    => a SWSLOT_BAD slot fails at once with VM_PAGER_ERROR
    => on success the page is no longer only in swap: swpgonly -1 (after the read, as
       uvm_swap.c does; a failed read leaves the count alone)
    => may sleep
    """
    k.uvmexp.nswget += 1
    KASSERTMSG(k, flags & uvm_pager.PGO_SYNCIO, "uvm_swap_get: async get")
    if swslot == SWSLOT_BAD:
        return uvm_pager.VM_PAGER_ERROR
    result = await uvm_swap_io(k, [page], swslot, 1, B_READ)
    if result == uvm_pager.VM_PAGER_OK or result == uvm_pager.VM_PAGER_PEND:
        # this page is no longer only in swap.
        k.uvmexp.swpgonly -= 1
    return result


async def uvm_swap_io(
    k: Kernel, pps: Sequence[VmPage | None], startslot: int, npages: int, flags: int
) -> int:
    """uvm_swap_io: do an I/O operation to swap.

    => flags: B_READ or B_WRITE, and B_ASYNC for an asynchronous write
    => an async write returns VM_PAGER_PEND (or VM_PAGER_AGAIN when no buf, pager map space
       or bounce pages can be had without sleeping); uvm_aio_biodone takes over at completion
    => a write with swap encryption on goes out of bounce pages holding the encrypted copy;
       a read of a slot marked "needs decrypt" is decrypted in place once it has arrived
    => a sync transfer waits and returns VM_PAGER_OK or VM_PAGER_ERROR
    => may sleep
    """
    write = (flags & B_READ) == 0
    async_ = (flags & B_ASYNC) != 0
    p = curproc()
    pdaemon = p is not None and p is k.uvm.pagedaemon_proc
    bounce = 0
    tpps: list[VmPage] = []
    swpenc = uvm_swap_encrypt.swapencrypt(k)
    sdp: Swapdev | None = None
    encrypt = 0

    # convert starting drum slot to block number
    startblk = startslot  # PORT: blocks are pages (the IVs count DEV_BSIZE blocks: below)

    pflag = PR_NOWAIT if (async_ or pdaemon) else PR_WAITOK
    if not await vfs_bio.bufpool_get(k, pflag):
        return uvm_pager.VM_PAGER_AGAIN

    # map the pages into the kernel (the buffer system wants a mapping)
    mapinflags = uvm_pager.UVMPAGER_MAPIN_READ if not write else uvm_pager.UVMPAGER_MAPIN_WRITE
    if not async_:
        mapinflags |= uvm_pager.UVMPAGER_MAPIN_WAITOK
    kva = await uvm_pager.uvm_pagermapin(k, pps, npages, mapinflags)
    if not kva:
        vfs_bio.bufpool_put(k)
        return uvm_pager.VM_PAGER_AGAIN

    if write:
        # every write is encrypted while encryption is on (upstream muses about encrypting
        # only the pages of processes that already had some encrypted, to copy less)
        if swpenc.uvm_doswapencrypt:
            encrypt = 1

    if swpenc.swap_encrypt_initialized or encrypt:
        # the device tells whether the pages must be marked for decryption (write) or be
        # decrypted (read)
        swap = _swap(k)
        mtx_enter(swap.uvm_swap_data_lock)
        sdp = swapdrum_getsdp(k, startslot)
        mtx_leave(swap.uvm_swap_data_lock)

    # an encrypted write always bounces; otherwise only pages the disk's DMA cannot reach
    if write and encrypt:
        bounce = 1  # bounce through swapencrypt always
    else:
        dma = dma_constraint()
        for i in range(npages):
            pg = pps[i]
            assert pg is not None
            pa = uvm_page.VM_PAGE_TO_PHYS(pg)
            if pa < dma.ucr_low or pa > dma.ucr_high:
                bounce = 1
                break

    if bounce:
        # We always need write access.
        swmapflags = uvm_pager.UVMPAGER_MAPIN_READ
        plaflags = uvm_pmemrange.UVM_PLA_NOWAIT
        if not async_:
            swmapflags |= uvm_pager.UVMPAGER_MAPIN_WAITOK
            plaflags = uvm_pmemrange.UVM_PLA_WAITOK
        if await uvm_swap_allocpages(k, tpps, npages, plaflags):
            vfs_bio.bufpool_put(k)
            uvm_pager.uvm_pagermapout(k, npages)
            return uvm_pager.VM_PAGER_AGAIN
        if not await uvm_pager.uvm_pagermapin(k, tpps, npages, swmapflags):
            vfs_bio.bufpool_put(k)
            uvm_pager.uvm_pagermapout(k, npages)
            uvm_swap_freepages(k, tpps, npages)
            return uvm_pager.VM_PAGER_AGAIN

    # encrypt to swap
    if write and bounce:
        block = btodb(startslot << PAGE_SHIFT)  # PORT: upstream's startblk, DEV_BSIZE blocks
        map_direct, unmap_direct = k.pmap.pmap_map_direct, k.pmap.pmap_unmap_direct
        for i in range(npages):
            pg = pps[i]
            assert pg is not None
            src = map_direct(pg)
            dst = map_direct(tpps[i])
            if encrypt:
                assert sdp is not None
                key = SWD_KEY(sdp, startslot + i)
                uvm_swap_encrypt.swap_key_get(k, key)  # add reference
                uvm_swap_encrypt.swap_encrypt(k, key, src, dst, block, PAGE_SIZE)
                block += btodb(PAGE_SIZE)
            else:
                dst[:] = src
            unmap_direct(dst)
            unmap_direct(src)
            # this just tells async callbacks to free
            tpps[i].pg_flags |= uvm_page.PQ_ENCRYPT
        uvm_pager.uvm_pagermapout(k, npages)
        # PORT: upstream now disposes of the originals (uvm_pager_dropcluster with
        # PGO_PDFREECLUST: unbusied and clean before the write has happened; reference §4
        # item 11). They stay busy and dirty until the write is done (module docstring).

    # reads are always synchronous (uvm_swap_get assumes it)
    if not write:
        flags &= ~B_ASYNC
        async_ = False

    # fill in the buf; our I/O goes through /dev/drum (swstrategy)
    bp = Buf()
    bp.b_flags = B_BUSY | B_NOCACHE | B_RAW | (flags & (B_READ | B_ASYNC))
    if bounce:
        bp.b_pages = list(tpps)  # PORT: what the bounce kva maps
        bp.b_origpages = [pg for pg in pps[:npages]]
    else:
        bp.b_pages = [pg for pg in pps[:npages]]  # PORT: what the kva maps
    bp.b_blkno = startblk
    bp.b_bufsize = bp.b_bcount = npages << PAGE_SHIFT
    bp.b_kernel = k

    if write:
        # mark the pages in the drum for decryption
        if swpenc.swap_encrypt_initialized:
            uvm_swap_markdecrypt(sdp, startslot, npages, encrypt)
        if encrypt:
            # PORT: the CPU time of the encryption passes now, where upstream spends it, not
            # at the caller's next yield: a page daemon that paid milliseconds of it after
            # its pass would sit out the wakeups of processes that meanwhile ran out of
            # memory and slept in uvm_wait (docs/time.md, reference §4 item 14). Upstream
            # does not sleep between taking the keys' references and marking the slots, so
            # the time passes only once both are done: other threads, and uvm_swap_free of
            # one of these slots, never see a key counting a slot that is not marked.
            await k.sched.pay("swap_encrypt", k.config.costs.yield_ns)

    # async ops get the iodone handler
    if async_:
        bp.b_flags |= B_CALL | (B_PDAEMON if pdaemon else 0)
        bp.b_iodone = uvm_pager.uvm_aio_biodone
    else:
        bp.b_flags |= B_CALL  # PORT: see the module docstring
        bp.b_iodone = vfs_bio.biowakeup

    # start the I/O; if async, we are done
    swstrategy(k, bp)
    if async_:
        # PORT: on a multiprocessor the write may complete, and aiodoned finish it, on
        # another CPU before our caller relocks the page queues (the daemon's "very remote
        # chance"); tests play that race here (kern_synch.cpu_race)
        await cpu_race(k, "uvm_swap_io.async")
        return uvm_pager.VM_PAGER_PEND

    # must be sync i/o: wait for it to finish
    await vfs_bio.biowait(k, bp)
    result = uvm_pager.VM_PAGER_ERROR if bp.b_flags & B_ERROR else uvm_pager.VM_PAGER_OK

    # decrypt swap
    if not write and not (bp.b_flags & B_ERROR):
        block = btodb(startslot << PAGE_SHIFT)
        for i in range(npages):
            pg = pps[i]
            assert pg is not None
            dst = k.pmap.pmap_map_direct(pg)
            data = k.pmap.pmap_map_direct(tpps[i]) if bounce else dst
            # Check if we need to decrypt
            if swpenc.swap_encrypt_initialized and uvm_swap_needdecrypt(sdp, startslot + i):
                assert sdp is not None
                key = SWD_KEY(sdp, startslot + i)
                if key.refcount == 0:
                    result = uvm_pager.VM_PAGER_ERROR
                    _unmap_direct(k, data, dst)
                    break
                uvm_swap_encrypt.swap_decrypt(k, key, data, dst, block, PAGE_SIZE)
            elif bounce:
                dst[:] = data
            _unmap_direct(k, data, dst)
            block += btodb(PAGE_SIZE)
        if bounce:
            uvm_pager.uvm_pagermapout(k, npages)
    # kill the pager mapping
    uvm_pager.uvm_pagermapout(k, npages)

    # Not anymore needed, free after encryption/bouncing
    if not write and bounce:
        uvm_swap_freepages(k, tpps, npages)
    # PORT: nor after a synchronous write (upstream never writes to swap synchronously)
    if write and bounce:
        uvm_swap_freepages(k, tpps, npages)

    # now dispose of the buf
    vfs_bio.bufpool_put(k)
    return result


# --- port helpers -----------------------------------------------------------------------------


def _swap_unusable(k: Kernel, swap: SwapState) -> int:
    """PORT: the slots no page can be written to: those whose data is only in swap
    (``swpgonly``) and those marked bad, each counted once.

    Bad slots are never freed here, so they can never hold data again. Without them, a
    device whose writes all fail (a full host disk) turns every slot bad while swpgonly stays
    below swpages: the daemon finds no slot, never reactivates, and the faulting process
    waits in uvm_wait forever instead of being killed "out of swap". A failed swap-in makes
    its slot bad and leaves its page in swpgonly: ``swpgonlybad`` counts those slots, which
    would otherwise count twice (swap would read full while usable slots remain).
    => called with uvm_swap_data_lock held
    """
    npgbad = sum(sdp.swd_npgbad for spp in swap.swap_priority for sdp in spp.spi_swapdev)
    return k.uvmexp.swpgonly + npgbad - swap.swpgonlybad


def swpgonlybad_add(k: Kernel, npages: int) -> None:
    """PORT: ``npages`` more (negative: fewer) bad slots whose page is counted in swpgonly.

    => +1 where a failed swap-in gives an anon or aobj page SWSLOT_BAD in place of a real
       slot (the slot is marked bad; uvm_swap_get left the page counted in swpgonly)
    => -1 where such a page is counted out of swpgonly (uvm_anfree, uao_dropswap_range)
    => takes uvm_swap_data_lock
    """
    swap = _swap(k)
    mtx_enter(swap.uvm_swap_data_lock)
    swap.swpgonlybad += npages
    assert 0 <= swap.swpgonlybad <= k.uvmexp.swpgonly, "swpgonlybad_add: out of range"
    mtx_leave(swap.uvm_swap_data_lock)


def _blist_alloc(sdp: Swapdev, n: int) -> int:
    """PORT: blist_alloc: first run of ``n`` free pages at or after the hint; -1 if none.

    The blist's bytes are searched for ``n`` ones from the hint with ``bytearray.find``
    (C speed, no array built per call).
    """
    free = sdp.swd_blistb
    lo = sdp.swd_hint
    start = free.find(b"\x01" * n, lo)
    if start < 0:
        return -1
    free[start : start + n] = bytes(n)
    if n == 1 or start == lo:  # nothing free below start: move the hint past the run
        sdp.swd_hint = start + n
    return start


def _blist_free(sdp: Swapdev, blkno: int, n: int) -> int:
    """PORT: blist_free, except for pages marked bad; returns how many were freed."""
    if n == 1:  # the common case (one anon's slot), without building arrays
        blist = sdp.swd_blistb
        if blist[blkno]:
            raise Panic(f"uvm_swap_free: freeing free slots on {sdp.swd_path} at page {blkno}")
        freed = 0
        if not sdp.swd_bad[blkno]:
            blist[blkno] = 1
            freed = 1
        if blkno < sdp.swd_hint:
            sdp.swd_hint = blkno
        return freed
    used = sdp.swd_blist[blkno : blkno + n]
    if used.any():
        raise Panic(f"uvm_swap_free: freeing free slots on {sdp.swd_path} at page {blkno}")
    good = sdp.swd_bad[blkno : blkno + n] == 0
    used[good] = 1
    if blkno < sdp.swd_hint:
        sdp.swd_hint = blkno
    return int(good.sum())


def _unmap_direct(k: Kernel, data: memoryview, dst: memoryview) -> None:
    """PORT: give back the direct-map views of a page read (one, or the bounce page's too)."""
    if data is not dst:
        k.pmap.pmap_unmap_direct(data)
    k.pmap.pmap_unmap_direct(dst)


def _swap_dropkeys(k: Kernel, sdp: Swapdev, startslot: int, nslots: int) -> None:
    """PORT: uvm_swap_free's key steps for ``nslots`` slots from ``startslot`` (once swap
    encryption has run); uvm_swap_markbad does the same for slots it marks bad."""
    # Dereference keys
    for i in range(nslots):
        if uvm_swap_needdecrypt(sdp, startslot + i):
            key = SWD_KEY(sdp, startslot + i)
            if key.refcount != 0:
                uvm_swap_encrypt.swap_key_put(k, key)
    # Mark range as not decrypt
    uvm_swap_markdecrypt(sdp, startslot, nslots, 0)


def _swap_dropkey1(k: Kernel, sdp: Swapdev, slot: int) -> None:
    """PORT: uvm_swap_free's key dereference and unmarking for a single slot."""
    dec = sdp.swd_decrypt
    assert dec is not None and sdp.swd_keys is not None
    off = slot - sdp.swd_drumoffset
    if dec[off]:
        key = sdp.swd_keys[off >> SWD_KEY_SHIFT]
        if key.refcount != 0:
            uvm_swap_encrypt.swap_key_put(k, key)
        dec[off] = 0


def _swap_oompps(k: Kernel, boot: bool) -> None:
    """PORT: uvm_swap_init's allocation of the OOM reserve (once; never sleeps; after boot,
    a failure leaves the reserve empty)."""
    swap = _swap(k)
    if swap.oompps:
        return
    pgl: list[VmPage] = []
    error = _uvm_pglistalloc_nowait(k, SWCLUSTPAGES, pgl, uvm_pmemrange.UVM_PLA_NOWAIT)
    if error and not boot:
        return
    assert error == 0, "uvm_swap_init: no pages for the OOM reserve"
    for pg in pgl:
        pg.pg_flags |= uvm_page.PG_BUSY
    swap.oompps = pgl


def _uvm_pglistalloc_nowait(k: Kernel, npages: int, pgl: list[VmPage], flags: int) -> int:
    """PORT: uvm_pglistalloc(ptoa(npages), dma_constraint, 0, 0, pgl, npages, flags) without
    sleeping (uvm_pglist.c is not ported: it hands the range to uvm_pmr_getpages)."""
    start, end = _dma_pages(k)
    return uvm_pmemrange.uvm_pmr_getpages_nowait(k, npages, start, end, 0, 0, npages, flags, pgl)


async def _uvm_pglistalloc(k: Kernel, npages: int, pgl: list[VmPage], flags: int) -> int:
    """PORT: uvm_pglistalloc over the DMA range (may sleep with UVM_PLA_WAITOK)."""
    if not flags & uvm_pmemrange.UVM_PLA_WAITOK:
        return _uvm_pglistalloc_nowait(k, npages, pgl, flags)
    start, end = _dma_pages(k)
    return await uvm_pmemrange.uvm_pmr_getpages(k, npages, start, end, 0, 0, npages, flags, pgl)


def _dma_pages(k: Kernel) -> tuple[int, int]:
    """PORT: dma_constraint in pages, for uvm_pmr_getpages; (0, 0), no constraint, when it
    holds every frame of the machine (as on every emulated machine below 4 GiB): the same
    pages are eligible, found without scanning the free map."""
    dma = dma_constraint()
    start, end = atop(dma.ucr_low), atop(dma.ucr_high) + 1
    if start == 0 and end >= k.uvmexp.npages:
        return 0, 0
    return start, end
