"""uvm_vnode.c: the vnode pager.

Port of the behaviour of OpenBSD sys/uvm/uvm_vnode.c (1.130-1.132, 2022-2023) and uvm_vnode.h, as
far as the page daemon and the fault path use it (reference §1.8). Comments are the port's
own wording.

A vnode's pages form a uvm_object (``struct uvm_vnode``, the vnode's ``v_uvm``). Its pages
are not swap-backed: a dirty one is written back to the file by ``uvn_put``, synchronously,
so a pageout of object pages returns OK, AGAIN, BAD or ERROR, never PEND; a clean one is
simply freed by the page daemon. The put cluster is built by the generic
``uvm_mk_pcluster`` inside the window ``uvn_cluster`` allows: from the page's offset up to
offset + MAXBSIZE, capped at the file size rounded up to a page.

Deviations:
- A file is a contiguous run of pages on a block device handed in by the arch glue
  (kernel/arch/emu/swapdev.py): :class:`Vnode` keeps the device, the first page of the file
  on it and the file size. VOP_READ/VOP_WRITE (through the buffer cache upstream) become one
  synchronous transfer of the pages on that device (``_vop_rdwr``): the thread submits a
  buf and sleeps until its completion wakes it. Pages are transferred whole; for a file
  whose size is not a multiple of PAGE_SIZE, the bytes of the last page past the end of
  file are those on the disk (zeros for a file never written there), where VOP_READ would
  zero them.
- vnodes are never recycled and there is no vnode lock: ``vget`` cannot fail, vn_lock is not
  taken, ``uvm_vnp_terminate``/``uvm_vnp_uncache``/``uvm_vnp_sync`` and the writeable list
  are not ported.
- ``uvn_get`` without PGO_LOCKED is entered with the object locked and returns with it
  unlocked (as uao_get); it unlocks the object while it waits for memory.
- Waiting for a busy page is ``uvm_pagewait`` of uvm_page.py, the helper later revisions of
  uvm_page.c have; the 2022 code writes those steps out at each call.
- C out-parameters are returned: ``uvn_get`` returns ``(result, npages)``, ``uvn_cluster``
  returns ``(lo, hi)``.
- ``uvm_wait`` is called as ``await k.pdaemon.uvm_wait(k, wmsg)``: the page daemon is a
  module chosen at boot (uvm_extern.py), which this module does not import.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import structlog

import kernel.kern.vfs_bio as vfs_bio
import kernel.uvm.uvm_page as uvm_page
import kernel.uvm.uvm_pager as uvm_pager
import kernel.uvm.uvm_pmemrange as uvm_pmemrange
from kernel.kern.kern_synch import (
    INFSLP,
    PVM,
    RW_WRITE,
    chan,
    rw_enter,
    rw_exit,
    rw_lock_held,
    rw_write_held,
    rwsleep_nsec,
    wakeup,
)
from kernel.sys.buf import B_BUSY, B_CALL, B_READ, B_WRITE, Buf
from kernel.sys.errno import EBUSY, EIO
from kernel.sys.mman import PROT_NONE, PROT_READ, PROT_WRITE
from kernel.sys.param import MAXBSIZE, PAGE_SHIFT, PAGE_SIZE, round_page, trunc_page
from kernel.sys.systm import KASSERT, Panic
from kernel.uvm.uvm_object import UvmObject, UvmPagerOps, uvm_obj_init

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.uvm.uvm_page import VmPage
    from kernel.uvm.uvm_swap import BlockDev

__all__ = [
    "UIO_READ",
    "UIO_WRITE",
    "UVM_VNODE_BLOCKED",
    "UVM_VNODE_CANPERSIST",
    "UVM_VNODE_DYING",
    "UVM_VNODE_VALID",
    "UVM_VNODE_WRITEABLE",
    "UvmVnode",
    "UvnFlags",
    "Vnode",
    "uvm_vnodeops",
    "uvm_vnp_obj_alloc",
    "uvm_vnp_setsize",
    "uvn_attach",
    "uvn_cluster",
    "uvn_detach",
    "uvn_flush",
    "uvn_get",
    "uvn_io",
    "uvn_put",
    "uvn_reference",
]

log = structlog.get_logger("uvm.vnode")

# sys/uio.h: enum uio_rw
UIO_READ: Final = 0
UIO_WRITE: Final = 1


class UvnFlags(enum.IntFlag):
    """u_flags (uvm_vnode.h)."""

    UVM_VNODE_VALID = 0x001  # we are attached to the vnode
    UVM_VNODE_CANPERSIST = 0x002  # we can persist after ref == 0
    UVM_VNODE_ALOCK = 0x004  # uvn_attach is locked out
    UVM_VNODE_DYING = 0x008  # final detach/terminate in progress
    UVM_VNODE_RELKILL = 0x010  # uvn should be killed by releaser
    UVM_VNODE_WANTED = 0x020  # someone waits for alock, dying or relkill to clear
    UVM_VNODE_VNISLOCKED = 0x040  # underlying vnode struct is locked
    UVM_VNODE_IOSYNC = 0x080  # I/O sync in progress
    UVM_VNODE_IOSYNCWANTED = 0x100  # someone waits for the I/O sync to clear
    UVM_VNODE_WRITEABLE = 0x200  # uvn has pages that are writeable
    UVM_VNODE_BLOCKED = UVM_VNODE_ALOCK | UVM_VNODE_DYING | UVM_VNODE_RELKILL


UVM_VNODE_VALID: Final = UvnFlags.UVM_VNODE_VALID
UVM_VNODE_CANPERSIST: Final = UvnFlags.UVM_VNODE_CANPERSIST
UVM_VNODE_ALOCK: Final = UvnFlags.UVM_VNODE_ALOCK
UVM_VNODE_DYING: Final = UvnFlags.UVM_VNODE_DYING
UVM_VNODE_RELKILL: Final = UvnFlags.UVM_VNODE_RELKILL
UVM_VNODE_WANTED: Final = UvnFlags.UVM_VNODE_WANTED
UVM_VNODE_VNISLOCKED: Final = UvnFlags.UVM_VNODE_VNISLOCKED
UVM_VNODE_IOSYNC: Final = UvnFlags.UVM_VNODE_IOSYNC
UVM_VNODE_IOSYNCWANTED: Final = UvnFlags.UVM_VNODE_IOSYNCWANTED
UVM_VNODE_WRITEABLE: Final = UvnFlags.UVM_VNODE_WRITEABLE
UVM_VNODE_BLOCKED: Final = UvnFlags.UVM_VNODE_BLOCKED


@dataclass(eq=False, slots=True)
class Vnode:
    """struct vnode, the part the vnode pager uses (PORT: see the module docstring)."""

    v_name: str  # PORT: the file's name
    v_dev: BlockDev  # PORT: the disk the file lives on
    v_blkoff: int  # PORT: the file's first page on v_dev
    v_size: int  # va_size: the file size in bytes
    v_uvm: UvmVnode | None = None  # the VM object of this vnode
    v_usecount: int = 1  # reference count of users


@dataclass(eq=False, slots=True)
class UvmVnode(UvmObject):
    """struct uvm_vnode: a vnode's VM object. Locks: (o) vmobjlock."""

    u_flags: UvnFlags = field(default_factory=lambda: UvnFlags(0))  # (o) flags
    u_nio: int = 0  # (o) number of running I/O requests
    u_size: int = 0  # (o) size of the object, bytes
    u_vnode: Vnode | None = None  # [I] pointer back to the vnode

    def __repr__(self) -> str:
        name = self.u_vnode.v_name if self.u_vnode is not None else "?"
        return f"<uvm_vnode {name} size={self.u_size} npages={self.uo_npages} refs={self.uo_refs}>"


def _uvn(uobj: UvmObject) -> UvmVnode:
    """(struct uvm_vnode *)uobj"""
    assert isinstance(uobj, UvmVnode), f"not a vnode object: {uobj!r}"
    return uobj


def _vp(uvn: UvmVnode) -> Vnode:
    vp = uvn.u_vnode
    assert vp is not None
    return vp


def uvm_vnp_obj_alloc(vp: Vnode) -> UvmVnode:
    """uvm_vnp_obj_alloc: give a new vnode its (not yet attached) VM object."""
    uvn = UvmVnode(pgops=uvm_vnodeops)
    uvm_obj_init(uvn, uvm_vnodeops, 0)
    uvn.u_vnode = vp
    vp.v_uvm = uvn
    return uvn


async def uvn_attach(k: Kernel, vp: Vnode, accessprot: int) -> UvmObject | None:
    """uvn_attach: attach the VM object of a vnode (making it valid if needed).

    => an attached object just gains a reference; otherwise it is set up with one
    => ``accessprot``: the most access the attaching thread wants (PROT_WRITE marks it
       writeable)
    => nothing is locked on entry; may sleep
    """
    uvn = vp.v_uvm
    if uvn is None:
        uvn = uvm_vnp_obj_alloc(vp)

    # get a lock on the uvn, waiting out anyone who blocks attaches
    await rw_enter(k, uvn.vmobjlock, RW_WRITE)
    while uvn.u_flags & UVM_VNODE_BLOCKED:
        uvn.u_flags |= UVM_VNODE_WANTED
        await rwsleep_nsec(k, uvn, uvn.vmobjlock, PVM, "uvn_attach", INFSLP)

    # already active: bump the reference count (regain the vnode ref if persisting)
    if uvn.u_flags & UVM_VNODE_VALID:
        if uvn.uo_refs == 0:
            _vref(vp)
        uvn.uo_refs += 1
        # check for new writeable uvn
        if (accessprot & PROT_WRITE) and not (uvn.u_flags & UVM_VNODE_WRITEABLE):
            uvn.u_flags |= UVM_VNODE_WRITEABLE
        rw_exit(uvn.vmobjlock)
        return uvn

    # VOP_GETATTR could sleep: keep others out with ALOCK while the object is unlocked
    uvn.u_flags = UVM_VNODE_ALOCK
    rw_exit(uvn.vmobjlock)
    used_vnode_size = vp.v_size  # VOP_GETATTR: va_size

    # now set up the uvn
    KASSERT(k, uvn.uo_refs == 0)
    uvn.uo_refs += 1
    oldflags = uvn.u_flags
    uvn.u_flags = UVM_VNODE_VALID | UVM_VNODE_CANPERSIST
    uvn.u_nio = 0
    uvn.u_size = used_vnode_size

    # the vnode reference held as long as the object is attached
    _vref(vp)

    # write access: the uvn is writeable
    if accessprot & PROT_WRITE:
        uvn.u_flags |= UVM_VNODE_WRITEABLE

    if oldflags & UVM_VNODE_WANTED:
        wakeup(k, uvn)
    return uvn


async def uvn_reference(k: Kernel, uobj: UvmObject) -> None:
    """uvn_reference: add a reference to a vnode object that already has one.

    => may sleep (takes the object lock)
    """
    uvn = _uvn(uobj)
    await rw_enter(k, uobj.vmobjlock, RW_WRITE)
    if not (uvn.u_flags & UVM_VNODE_VALID):
        raise Panic(f"uvn_reference: invalid state {uvn!r} flags={uvn.u_flags!r}")
    uobj.uo_refs += 1
    rw_exit(uobj.vmobjlock)


async def uvn_detach(k: Kernel, uobj: UvmObject) -> None:
    """uvn_detach: drop a reference to a vnode object.

    => the last reference either lets the object persist (its pages deactivated), or
       flushes it: dirty pages are written, every page is freed, the object dies
    => may sleep
    """
    uvn = _uvn(uobj)
    await rw_enter(k, uobj.vmobjlock, RW_WRITE)
    uobj.uo_refs -= 1  # drop ref!
    if uobj.uo_refs:  # still more refs
        rw_exit(uobj.vmobjlock)
        return

    vp = _vp(uvn)

    # the last reference: can the object stay around?
    if uvn.u_flags & UVM_VNODE_CANPERSIST:
        await uvn_flush(k, uobj, 0, 0, uvm_pager.PGO_DEACTIVATE | uvm_pager.PGO_ALLPAGES)
    else:
        # it is a goner: DYING keeps attaches out while the flush runs
        uvn.u_flags |= UVM_VNODE_DYING
        await uvn_flush(
            k, uobj, 0, 0, uvm_pager.PGO_CLEANIT | uvm_pager.PGO_FREE | uvm_pager.PGO_ALLPAGES
        )
        # pages left are busy in async I/O (none here: vnode I/O is synchronous); wait
        uvn.u_flags |= UVM_VNODE_RELKILL
        while uobj.uo_npages and uvn.u_flags & UVM_VNODE_RELKILL:
            uvn.u_flags |= UVM_VNODE_IOSYNC
            await rwsleep_nsec(k, chan(uvn, "u_nio"), uobj.vmobjlock, PVM, "uvn_term", INFSLP)
        if not (uvn.u_flags & UVM_VNODE_RELKILL):
            rw_exit(uobj.vmobjlock)
            return
        # kill the object now
        KASSERT(k, not uobj.memt)
        oldflags = uvn.u_flags
        uvn.u_flags = UvnFlags(0)
        # wake up any sleepers
        if oldflags & UVM_VNODE_WANTED:
            wakeup(k, uvn)
    # out:
    rw_exit(uobj.vmobjlock)
    # drop our reference to the vnode
    _vrele(vp)


async def uvn_flush(k: Kernel, uobj: UvmObject, start: int, stop: int, flags: int) -> bool:
    """uvn_flush: clean, deactivate or free the pages of [start, stop) of a vnode object.

    => the object is write-locked (and locked again on return); the page queues are not
    => PGO_CLEANIT: write dirty pages (may sleep); PGO_SYNCIO: also wait for I/O already
       running; PGO_DEACTIVATE / PGO_FREE: what to do with the pages afterwards;
       PGO_ALLPAGES: the whole object
    => returns False if a write failed (the page's changes may be lost), else True
    => may sleep
    """
    uvn = _uvn(uobj)
    KASSERT(k, rw_write_held(uobj.vmobjlock))
    dead: list[VmPage] = []

    # the range, and how to walk it
    need_iosync = False
    retval = True
    if flags & uvm_pager.PGO_ALLPAGES:
        start = 0
        stop = round_page(uvn.u_size)
    else:
        start = trunc_page(start)
        stop = min(round_page(stop), round_page(uvn.u_size))

    # PG_CLEANCHK is a hint for uvm_mk_pcluster on how fresh PG_CLEAN is; we clear it
    # and the cluster builder sets it as it syncs PG_CLEAN with the pmap
    if flags & uvm_pager.PGO_CLEANIT:
        assert uobj.pgops.pgo_mk_pcluster is not None
        for curoff in range(start, stop, PAGE_SIZE):
            pp = uvm_page.uvm_pagelookup(uobj, curoff)
            if pp is not None:
                pp.pg_flags &= ~uvm_page.PG_CLEANCHK

    uvm_page.uvm_lock_pageq(k)
    # locked: both page queues
    curoff = start
    while curoff < stop:
        pp = uvm_page.uvm_pagelookup(uobj, curoff)
        if pp is None:
            curoff += PAGE_SIZE
            continue

        # does the page need cleaning?  not if we do not clean, or if it is busy (then
        # someone else is doing I/O on it), or if it is not dirty.  a busy page on the
        # inactive queue must stay put until it is un-busied (for the daemon's sake).
        if not (flags & uvm_pager.PGO_CLEANIT) or pp.pg_flags & uvm_page.PG_BUSY:
            needs_clean = False
            if pp.pg_flags & uvm_page.PG_BUSY and (
                flags & (uvm_pager.PGO_CLEANIT | uvm_pager.PGO_SYNCIO)
            ) == (uvm_pager.PGO_CLEANIT | uvm_pager.PGO_SYNCIO):
                need_iosync = True
        else:
            # freeing: remove all mappings so PG_CLEAN can be synced with no race
            if (
                pp.pg_flags & uvm_page.PG_CLEAN
                and flags & uvm_pager.PGO_FREE
                and pp.pg_flags & uvm_page.PQ_ACTIVE
            ):
                k.pmap.pmap_page_protect(pp, PROT_NONE)
            if pp.pg_flags & uvm_page.PG_CLEAN and k.pmap.pmap_is_modified(pp):
                pp.pg_flags &= ~uvm_page.PG_CLEAN
            pp.pg_flags |= uvm_page.PG_CLEANCHK
            needs_clean = not (pp.pg_flags & uvm_page.PG_CLEAN)

        # no cleaning needed: deactivate or free, then on to the next page
        if not needs_clean:
            if flags & uvm_pager.PGO_DEACTIVATE:
                if pp.wire_count == 0:
                    k.pmap.pmap_page_protect(pp, PROT_NONE)
                    uvm_page.uvm_pagedeactivate(k, pp)
            elif flags & uvm_pager.PGO_FREE:
                if pp.pg_flags & uvm_page.PG_BUSY:
                    uvm_page.uvm_unlock_pageq(k)
                    await uvm_page.uvm_pagewait(k, pp, uobj.vmobjlock, "uvn_flsh")
                    await rw_enter(k, uobj.vmobjlock, RW_WRITE)
                    uvm_page.uvm_lock_pageq(k)
                    continue  # this offset again
                k.pmap.pmap_page_protect(pp, PROT_NONE)
                # removed page from object
                uvm_page.uvm_pageclean(k, pp)
                dead.insert(0, pp)
            curoff += PAGE_SIZE
            continue

        # the page is dirty, idle, and we clean: let uvm_pager_put try a cluster
        pp.pg_flags |= uvm_page.PG_BUSY
        k.pmap.pmap_page_protect(pp, PROT_READ)
        # async and freeing: the I/O done path frees the page
        if (flags & (uvm_pager.PGO_FREE | uvm_pager.PGO_SYNCIO)) == uvm_pager.PGO_FREE:
            pp.pg_flags |= uvm_page.PG_RELEASED
        while True:  # ReTry:
            pps: list[VmPage | None] = [None] * (MAXBSIZE >> PAGE_SHIFT)
            result, ppsp, npages = await uvm_pager.uvm_pager_put(
                k, uobj, pp, pps, len(pps), flags | uvm_pager.PGO_DOACTCLUST, start, stop
            )
            # an async I/O may have finished and freed pp already: touch it only if it
            # cannot have been freed (RELEASED took care of the rest)
            uvm_page.uvm_lock_pageq(k)

            # AGAIN: the async I/O could not map the pages. fall back to sync I/O.
            if result == uvm_pager.VM_PAGER_AGAIN:
                if flags & uvm_pager.PGO_SYNCIO:
                    raise Panic("uvn_flush: PGO_SYNCIO return 'try again' error (impossible)")
                flags |= uvm_pager.PGO_SYNCIO
                if flags & uvm_pager.PGO_FREE:
                    pp.pg_flags &= ~uvm_page.PG_RELEASED
                continue  # goto ReTry
            break

        # done cleaning.  on error (not OK, not PEND) uvm_pager_put dropped the cluster;
        # on success it gave it back to us in ppsp/npages.
        # pending async I/O, not deactivating: the I/O done path frees what it must
        if result == uvm_pager.VM_PAGER_PEND and not (flags & uvm_pager.PGO_DEACTIVATE):
            curoff += PAGE_SIZE
            continue

        # go over each page of the I/O
        for lcv in range(npages):
            ptmp = ppsp[lcv]
            assert ptmp is not None
            # the page may have moved (pending I/O)
            if result == uvm_pager.VM_PAGER_PEND and ptmp.uobject is not uobj:
                continue
            # un-busy the page if the I/O is done (it is unless pending)
            if result != uvm_pager.VM_PAGER_PEND:
                if ptmp.pg_flags & uvm_page.PG_WANTED:
                    wakeup(k, ptmp)
                ptmp.pg_flags &= ~(uvm_page.PG_WANTED | uvm_page.PG_BUSY)
                ptmp.pg_flags |= uvm_page.PG_CLEAN | uvm_page.PG_CLEANCHK
                if not (flags & uvm_pager.PGO_FREE):
                    k.pmap.pmap_clear_modify(ptmp)

            # dispose of the page
            if flags & uvm_pager.PGO_DEACTIVATE:
                if ptmp.wire_count == 0:
                    k.pmap.pmap_page_protect(ptmp, PROT_NONE)
                    uvm_page.uvm_pagedeactivate(k, ptmp)
            elif flags & uvm_pager.PGO_FREE and result != uvm_pager.VM_PAGER_PEND:
                if result != uvm_pager.VM_PAGER_OK:
                    # printf("%s: obj=%p, offset=0x%llx.  error during pageout.\n") and
                    # printf("%s: WARNING: changes to page may be lost!\n") (rate limited)
                    log.warning("uvn_flush.pageout_error", vnode=_vp(uvn).v_name, offset=pp.offset)
                    retval = False
                k.pmap.pmap_page_protect(ptmp, PROT_NONE)
                uvm_page.uvm_pageclean(k, ptmp)
                dead.append(ptmp)
        curoff += PAGE_SIZE

    # done with the page queues
    uvm_page.uvm_unlock_pageq(k)

    # wait for all I/O if asked to
    if need_iosync:
        while uvn.u_nio != 0:
            uvn.u_flags |= UVM_VNODE_IOSYNC
            await rwsleep_nsec(k, chan(uvn, "u_nio"), uobj.vmobjlock, PVM, "uvn_flush", INFSLP)
        if uvn.u_flags & UVM_VNODE_IOSYNCWANTED:
            wakeup(k, chan(uvn, "u_flags"))
        uvn.u_flags &= ~(UVM_VNODE_IOSYNC | UVM_VNODE_IOSYNCWANTED)

    uvm_pmemrange.uvm_pmr_freepageq(k, dead)  # uvm_pglistfree(&dead)
    return retval


def uvn_cluster(k: Kernel, uobj: UvmObject, offset: int) -> tuple[int, int]:
    """uvn_cluster: the range of offsets around ``offset`` an I/O may cluster over.

    => from ``offset`` up to offset + MAXBSIZE, capped at the file size rounded up to a
       page; returns (lo, hi)
    """
    uvn = _uvn(uobj)
    loffset = offset
    KASSERT(k, rw_write_held(uobj.vmobjlock))
    if loffset >= uvn.u_size:
        raise Panic(f"uvn_cluster: offset {offset:#x} out of range ({uvn!r})")
    # XXX: the old pager could ask VOP_BMAP for a maxcontig value
    hoffset = loffset + MAXBSIZE
    if hoffset > round_page(uvn.u_size):  # past end?
        hoffset = round_page(uvn.u_size)
    return loffset, hoffset


async def uvn_put(
    k: Kernel, uobj: UvmObject, pps: list[VmPage | None], npages: int, flags: int
) -> int:
    """uvn_put: write pages back to the file.

    => the object is write-locked (uvn_io drops the lock during the transfer)
    => always synchronous: returns VM_PAGER_OK, AGAIN, BAD or ERROR, never PEND
    => the caller sets PG_CLEAN and clears the pmap modify bit (if it wants)
    => may sleep
    """
    uvn = _uvn(uobj)
    KASSERT(k, rw_write_held(uobj.vmobjlock))

    # hold the vnode so it is not recycled under us, unless we are the ones recycling it.
    # (a vnode being recycled by someone else would make vget fail: AGAIN, and that
    # someone writes the pages out)
    dying = uvn.u_flags & UVM_VNODE_DYING
    vp = _vp(uvn)
    if not dying:
        _vref(vp)  # vget(vp, LK_NOWAIT): PORT: never fails
    retval = await uvn_io(k, uvn, pps, npages, flags, UIO_WRITE)
    if not dying:
        _vrele(vp)
    return retval


async def uvn_get(
    k: Kernel,
    uobj: UvmObject,
    offset: int,
    pps: list[VmPage | None],
    npages: int,
    centeridx: int,
    access_type: int,
    advice: int,
    flags: int,
) -> tuple[int, int]:
    """uvn_get: get pages of a vnode object (synchronously) from the file.

    => with PGO_LOCKED: the object is locked and stays so; only resident, idle pages are
       taken; never sleeps; VM_PAGER_UNLOCK if the center page (or, with PGO_ALLPAGES,
       any page) needs I/O or waiting
    => without: the object is write-locked on entry and unlocked on return (PORT); missing
       pages are read from the file, busy ones waited for
    => ``offset`` is the offset of pps[0], not of pps[centeridx]
    => returned pages are PG_BUSY; the caller checks PG_RELEASED, un-busies, activates
    => returns (VM_PAGER_* result, npages)
    => may sleep (without PGO_LOCKED)
    """
    KASSERT(k, (flags & uvm_pager.PGO_LOCKED and rw_lock_held(uobj.vmobjlock))
            or not (flags & uvm_pager.PGO_LOCKED))

    # step 1: the fault's data structures are locked
    if flags & uvm_pager.PGO_LOCKED:
        # step 1a: the pages already resident
        gotpages = 0
        done = True  # be optimistic
        current_offset = offset
        for lcv in range(npages):
            # do we care about this page?  if not, skip it
            if pps[lcv] is uvm_page._PGO_DONTCARE:
                current_offset += PAGE_SIZE
                continue
            ptmp = uvm_page.uvm_pagelookup(uobj, current_offset)
            # to be useful a page must not be busy
            if ptmp is None or ptmp.pg_flags & uvm_page.PG_BUSY:
                if lcv == centeridx or flags & uvm_pager.PGO_ALLPAGES:
                    done = False  # need to do a wait or I/O!
                current_offset += PAGE_SIZE
                continue
            # useful page: busy it and plug it in
            ptmp.pg_flags |= uvm_page.PG_BUSY
            pps[lcv] = ptmp
            gotpages += 1
            current_offset += PAGE_SIZE

        # XXX: read-ahead is left to the buffer cache; no async I/O here.
        # step 1c: done, or the caller must unlock and let us do the waiting or I/O
        if done:
            return uvm_pager.VM_PAGER_OK, gotpages  # bingo!
        return uvm_pager.VM_PAGER_UNLOCK, gotpages

    # step 2: get non-resident or busy pages, one at a time (no async I/O at this level)
    KASSERT(k, rw_write_held(uobj.vmobjlock))
    current_offset = offset
    for lcv in range(npages):
        # skip pages we have or do not want, and pages we do not _have_ to get
        if pps[lcv] is not None or (lcv != centeridx and not (flags & uvm_pager.PGO_ALLPAGES)):
            current_offset += PAGE_SIZE
            continue

        # find the page at this offset: a busy one is waited for; an idle one is busied and
        # is ours; a missing one is allocated (busy/fake/clean) and leaves the loop with
        # pps[lcv] still None, to be read in below
        ptmp = None
        while pps[lcv] is None:  # top of "pps" while loop
            ptmp = uvm_page.uvm_pagelookup(uobj, current_offset)
            # nope?   allocate one now (if we can)
            if ptmp is None:
                ptmp = uvm_page.uvm_pagealloc(k, uobj, current_offset, None, 0)
                # out of RAM?
                if ptmp is None:
                    rw_exit(uobj.vmobjlock)  # PORT: not held while waiting for memory
                    await k.pdaemon.uvm_wait(k, "uvn_getpage")
                    await rw_enter(k, uobj.vmobjlock, RW_WRITE)
                    continue  # goto top of pps while loop
                break  # a new page ready for I/O; pps[lcv] is still None

            # page is there, see if we need to wait on it
            if ptmp.pg_flags & uvm_page.PG_BUSY:
                await uvm_page.uvm_pagewait(k, ptmp, uobj.vmobjlock, "uvn_get")
                await rw_enter(k, uobj.vmobjlock, RW_WRITE)
                continue  # goto top of pps while loop

            # resident and idle since step 1: busy it, it is ours
            ptmp.pg_flags |= uvm_page.PG_BUSY
            pps[lcv] = ptmp

        # a page we own already: next one
        if pps[lcv] is not None:
            current_offset += PAGE_SIZE
            continue
        assert ptmp is not None

        # a new fake/busy/clean page: read it from the file
        result = await uvn_io(
            k, _uvn(uobj), [ptmp], 1, uvm_pager.PGO_SYNCIO | uvm_pager.PGO_NOWAIT, UIO_READ
        )

        # I/O done: sync, so neither PEND nor AGAIN
        if result != uvm_pager.VM_PAGER_OK:
            if ptmp.pg_flags & uvm_page.PG_WANTED:
                wakeup(k, ptmp)
            ptmp.pg_flags &= ~(uvm_page.PG_WANTED | uvm_page.PG_BUSY)
            uvm_page.uvm_lock_pageq(k)
            uvm_page.uvm_pagefree(k, ptmp)
            uvm_page.uvm_unlock_pageq(k)
            rw_exit(uobj.vmobjlock)
            return result, npages

        # we have the page: valid data (not fake), clean, still busy.  the caller checks
        # PG_RELEASED, un-busies and activates it.
        ptmp.pg_flags &= ~uvm_page.PG_FAKE  # data is valid ...
        k.pmap.pmap_clear_modify(ptmp)  # ... and clean
        pps[lcv] = ptmp
        current_offset += PAGE_SIZE

    rw_exit(uobj.vmobjlock)
    return uvm_pager.VM_PAGER_OK, npages


async def uvn_io(
    k: Kernel, uvn: UvmVnode, pps: list[VmPage | None], npages: int, flags: int, rw: int
) -> int:
    """uvn_io: do I/O between pages and a vnode.

    => the object is write-locked on entry and on return; it is unlocked during the I/O
    => flags: PGO_SYNCIO: we may wait (for an I/O sync or for pager map space); without it
       those return VM_PAGER_AGAIN. The transfer itself is always synchronous.
    => returns VM_PAGER_OK, AGAIN, BAD (offset past the end of file) or ERROR
    => may sleep
    """
    uobj: UvmObject = uvn
    KASSERT(k, rw_write_held(uobj.vmobjlock))

    # init values
    waitok = bool(flags & uvm_pager.PGO_SYNCIO)
    vn = _vp(uvn)
    pg0 = pps[0]
    assert pg0 is not None
    file_offset = pg0.offset

    # wait out a sync in progress
    while uvn.u_flags & UVM_VNODE_IOSYNC:
        if not waitok:
            return uvm_pager.VM_PAGER_AGAIN
        uvn.u_flags |= UVM_VNODE_IOSYNCWANTED
        await rwsleep_nsec(k, chan(uvn, "u_flags"), uobj.vmobjlock, PVM, "uvn_iosync", INFSLP)

    # check size
    if file_offset >= uvn.u_size:
        return uvm_pager.VM_PAGER_BAD

    # map the pages in, first without waiting
    mapinflags = uvm_pager.UVMPAGER_MAPIN_READ if rw == UIO_READ else uvm_pager.UVMPAGER_MAPIN_WRITE
    kva = await uvm_pager.uvm_pagermapin(k, pps, npages, mapinflags)
    if not kva and not waitok:
        return uvm_pager.VM_PAGER_AGAIN

    # an I/O is in progress: count it, then we are done with the uvn and unlock it. if we
    # have no mapping yet, try again, sleeping this time.
    uvn.u_nio += 1
    uvnsize = uvn.u_size
    rw_exit(uobj.vmobjlock)
    if not kva:
        kva = await uvm_pager.uvm_pagermapin(
            k, pps, npages, mapinflags | uvm_pager.UVMPAGER_MAPIN_WAITOK
        )

    # the pages are busy, so nobody touches them (nor their offsets) while unlocked
    wanted = npages << PAGE_SHIFT
    if file_offset + wanted > uvnsize:
        wanted = uvnsize - file_offset  # XXX: needed?

    # do the I/O (VOP_READ / VOP_WRITE)
    result, got = await _vop_rdwr(k, vn, pps, npages, file_offset, rw)
    if result == 0:
        got = min(got, wanted)
        if wanted and got == 0:
            result = int(EIO)  # XXX: error?
        # PORT: no zeroing of the tail past end of file (see the module docstring)

    # remove the pager mapping
    uvm_pager.uvm_pagermapout(k, npages)

    # clean up the object: the I/O is done
    await rw_enter(k, uobj.vmobjlock, RW_WRITE)
    uvn.u_nio -= 1  # I/O DONE!
    if uvn.u_flags & UVM_VNODE_IOSYNC and uvn.u_nio == 0:
        wakeup(k, chan(uvn, "u_nio"))

    if result == 0:
        return uvm_pager.VM_PAGER_OK
    if result == EBUSY:
        KASSERT(k, flags & uvm_pager.PGO_NOWAIT)
        return uvm_pager.VM_PAGER_AGAIN
    return uvm_pager.VM_PAGER_ERROR


async def uvm_vnp_setsize(k: Kernel, vp: Vnode, newsize: int) -> None:
    """uvm_vnp_setsize: the file grew or shrank: a shrink frees the pages past the end.

    => may sleep
    """
    uvn = vp.v_uvm
    vp.v_size = newsize
    if uvn is None:
        return
    await rw_enter(k, uvn.vmobjlock, RW_WRITE)
    # a valid object: toss the pages past the new end
    if uvn.u_flags & UVM_VNODE_VALID:
        if uvn.u_size > newsize:
            await uvn_flush(k, uvn, newsize, uvn.u_size, uvm_pager.PGO_FREE)
        uvn.u_size = newsize
    rw_exit(uvn.vmobjlock)


# the vnode pager's operations; the put cluster is built by the generic uvm_mk_pcluster
uvm_vnodeops: Final = UvmPagerOps(
    pgo_name="vnode",
    pgo_reference=uvn_reference,
    pgo_detach=uvn_detach,
    pgo_flush=uvn_flush,
    pgo_get=uvn_get,
    pgo_put=uvn_put,
    pgo_cluster=uvn_cluster,
    pgo_mk_pcluster=uvm_pager.uvm_mk_pcluster,
)


# --- port helpers -----------------------------------------------------------------------------


def _vref(vp: Vnode) -> None:
    """PORT: vref / vget(LK_NOWAIT): take a vnode reference (vnodes are never recycled)."""
    vp.v_usecount += 1


def _vrele(vp: Vnode) -> None:
    """PORT: vrele: drop a vnode reference."""
    assert vp.v_usecount > 0, "vrele: negative ref cnt"
    vp.v_usecount -= 1


async def _vop_rdwr(
    k: Kernel, vn: Vnode, pps: list[VmPage | None], npages: int, file_offset: int, rw: int
) -> tuple[int, int]:
    """PORT: VOP_READ / VOP_WRITE of whole pages: one synchronous transfer on the vnode's
    disk. Returns (errno, bytes transferred).

    => may sleep
    """
    bp = Buf()
    bp.b_flags = B_BUSY | B_CALL | (B_READ if rw == UIO_READ else B_WRITE)
    bp.b_pages = [pg for pg in pps[:npages]]
    bp.b_blkno = vn.v_blkoff + (file_offset >> PAGE_SHIFT)
    bp.b_bufsize = bp.b_bcount = npages << PAGE_SHIFT
    bp.b_kernel = k
    bp.b_iodone = vfs_bio.biowakeup
    bp.b_dev = vn.v_dev
    vn.v_dev.dv_strategy(bp)
    error = await vfs_bio.biowait(k, bp)
    return error, bp.b_bcount - bp.b_resid
