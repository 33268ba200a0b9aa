"""uvm_vnode.py: vnode objects, their synchronous I/O, and the put cluster rules.

Each test quotes the rule of docs/uvm-reference.md it pins (§1.8: the object cluster builder
uvm_mk_pcluster and "Vnode put (`uvn_put` → `uvn_io`)"). Files are sparse images made by the
arch glue (kernel/arch/emu/swapdev.py ``vnode_create``).
"""

from __future__ import annotations

from typing import Any

import pytest

import kernel.uvm.uvm_page as uvm_page
import kernel.uvm.uvm_pager as uvm_pager
import kernel.uvm.uvm_vnode as uvm_vnode
from kernel.arch.emu import swapdev
from kernel.kern.kern_synch import RW_WRITE, rw_enter, rw_exit
from kernel.kernel import Kernel, KernelConfig
from kernel.sys.mman import PROT_NONE, PROT_READ, PROT_WRITE
from kernel.sys.systm import Panic
from kernel.uvm.uvm_object import UvmObject, UvmPagerOps
from kernel.uvm.uvm_page import PG_BUSY, PG_CLEAN, PG_RELEASED, PQ_ACTIVE, PQ_FREE
from kernel.uvm.uvm_pager import (
    PGO_ALLPAGES,
    PGO_DOACTCLUST,
    PGO_FREE,
    PGO_SYNCIO,
    VM_PAGER_BAD,
    VM_PAGER_OK,
    VM_PAGER_UNLOCK,
)

PAGE = 4096


def _quiet() -> KernelConfig:
    return KernelConfig(bufcachepercent=0, check_every_pass=False)


def _data(i: int) -> bytes:
    return (f"file page {i} ".encode() * 400)[:PAGE]


async def _open(k: Kernel, env: Any, name: str, size: int) -> tuple[Any, UvmObject]:
    vp = swapdev.vnode_create(k, env.tmp_path / name, size, ram=env.ram)
    uobj = await uvm_vnode.uvn_attach(k, vp, PROT_READ | PROT_WRITE)
    assert uobj is not None
    return vp, uobj


def _page(k: Kernel, env: Any, uobj: UvmObject, idx: int, *, dirty: bool, active: bool) -> Any:
    """Page ``idx`` of ``uobj`` holding _data(idx), idle, on a paging queue."""
    pg = uvm_page.uvm_pagealloc(k, uobj, idx * PAGE, None, 0)
    assert pg is not None
    env.ram.write(pg.phys_addr >> 12, _data(idx))
    pg.pg_flags &= ~(PG_BUSY | uvm_page.PG_FAKE)
    if dirty:
        pg.pg_flags &= ~PG_CLEAN
    uvm_page.uvm_lock_pageq(k)
    if active:
        uvm_page.uvm_pageactivate(k, pg)
    else:
        uvm_page.uvm_pagedeactivate(k, pg)
    uvm_page.uvm_unlock_pageq(k)
    return pg


async def _close(k: Kernel, vp: Any, uobj: UvmObject) -> None:
    assert uobj.pgops.pgo_detach is not None
    await uobj.pgops.pgo_detach(k, uobj)
    vp.v_dev.close()


def test_vnode_page_written_by_uvn_put_is_read_back_by_uvn_get(kenv: Any) -> None:
    """§1.8: "Vnode put (`uvn_put` → `uvn_io`): ... writes **synchronously** ..., and returns
    OK, AGAIN, BAD or ERROR — never PEND"; the vnode pager get reads a missing page back."""
    env = kenv(config=_quiet())

    async def body(k: Kernel, env: Any) -> None:
        vp, uobj = await _open(k, env, "f.dat", 3 * PAGE)
        await rw_enter(k, uobj.vmobjlock, RW_WRITE)
        pg = _page(k, env, uobj, 2, dirty=True, active=False)
        pg.pg_flags |= PG_BUSY
        r = await uvm_vnode.uvn_put(k, uobj, [pg], 1, 0)  # no PGO_SYNCIO: still synchronous
        assert r == VM_PAGER_OK
        assert uobj.vmobjlock.rwl_owner is not None  # locked again on return
        # a clean page is freed without I/O
        pg.pg_flags = (pg.pg_flags | PG_CLEAN) & ~PG_BUSY
        k.pmap.pmap_page_protect(pg, PROT_NONE)
        uvm_page.uvm_lock_pageq(k)
        uvm_page.uvm_pagefree(k, pg)
        uvm_page.uvm_unlock_pageq(k)
        assert uobj.uo_npages == 0

        pps: list[Any] = [None]
        r, _ = await uvm_vnode.uvn_get(k, uobj, 2 * PAGE, pps, 1, 0, PROT_READ, 0, 0)
        assert r == VM_PAGER_OK
        npg = pps[0]
        assert npg.offset == 2 * PAGE and npg.pg_flags & PG_BUSY and npg.pg_flags & PG_CLEAN
        assert not npg.pg_flags & uvm_page.PG_FAKE
        assert env.ram.read(npg.phys_addr >> 12) == _data(2)
        assert uobj.vmobjlock.rwl_owner is None  # unlocked on return
        npg.pg_flags &= ~PG_BUSY
        uvm_page.uvm_lock_pageq(k)
        uvm_page.uvm_pageactivate(k, npg)
        uvm_page.uvm_unlock_pageq(k)
        await _close(k, vp, uobj)

    env.run(body)


def test_uvn_cluster_window_is_maxbsize_capped_at_the_file_size(kenv: Any) -> None:
    """§1.8: the cluster window of a vnode runs "from the page's offset up to offset +
    MAXBSIZE, capped at the rounded file size"."""
    env = kenv(config=_quiet())

    async def body(k: Kernel, env: Any) -> None:
        vp, uobj = await _open(k, env, "w.dat", 40 * PAGE + 100)
        await rw_enter(k, uobj.vmobjlock, RW_WRITE)
        assert uvm_vnode.uvn_cluster(k, uobj, 4 * PAGE) == (4 * PAGE, 20 * PAGE)
        assert uvm_vnode.uvn_cluster(k, uobj, 35 * PAGE) == (35 * PAGE, 41 * PAGE)
        with pytest.raises(Panic, match="uvn_cluster"):
            uvm_vnode.uvn_cluster(k, uobj, 41 * PAGE)
        rw_exit(uobj.vmobjlock)
        await _close(k, vp, uobj)

    env.run(body)


def test_mk_pcluster_takes_dirty_inactive_pages_and_stops_at_the_first_misfit(
    kenv: Any,
) -> None:
    """§1.8 uvm_mk_pcluster: "walks backwards then forwards from the centre page, stopping at
    the first missing page, at an active page unless DOACTCLUST, or at a page that is clean or
    busy; each accepted page is made busy and write-protected (and marked RELEASED when FREE is
    requested without SYNCIO)"; without PGO_ALLPAGES the window is clipped to [mlo, mhi). A
    pager window of [c-3, c+4) pages shows both directions."""
    env = kenv(config=_quiet())

    async def body(k: Kernel, env: Any) -> None:
        vp, uobj = await _open(k, env, "c.dat", 16 * PAGE)
        # a window around the center, both ways (the vnode pager's starts at the center)
        uobj.pgops = UvmPagerOps(
            pgo_name="vnode",
            pgo_cluster=lambda _k, _uobj, off: (off - 3 * PAGE, off + 4 * PAGE),
        )
        await rw_enter(k, uobj.vmobjlock, RW_WRITE)
        # offsets: 2 clean | 3 dirty | 4 dirty | [5 center] | 6 dirty | 7 active dirty | 8
        _page(k, env, uobj, 2, dirty=False, active=False)
        p3 = _page(k, env, uobj, 3, dirty=True, active=False)
        p4 = _page(k, env, uobj, 4, dirty=True, active=False)
        c = _page(k, env, uobj, 5, dirty=True, active=False)
        p6 = _page(k, env, uobj, 6, dirty=True, active=False)
        p7 = _page(k, env, uobj, 7, dirty=True, active=True)
        c.pg_flags |= PG_BUSY
        uvm_page.uvm_lock_pageq(k)
        pps: list[Any] = [None] * 16
        cl, n = uvm_pager.uvm_mk_pcluster(k, uobj, pps, 16, c, PGO_FREE, 0, 16 * PAGE)
        assert (cl, n) == ([p3, p4, c, p6], 4)  # stops at clean 2 and at active 7
        for p in (p3, p4, p6):
            assert p.pg_flags & PG_BUSY and p.pg_flags & PG_RELEASED  # async free asked
        assert not p7.pg_flags & PG_BUSY

        # with DOACTCLUST (and SYNCIO: no RELEASED) the active page joins after its clean
        # bit is synced with the pmap
        for p in (p3, p4, p6):
            p.pg_flags &= ~(PG_BUSY | PG_RELEASED)
        cl, n = uvm_pager.uvm_mk_pcluster(
            k, uobj, [None] * 16, 16, c, PGO_ALLPAGES | PGO_FREE | PGO_SYNCIO | PGO_DOACTCLUST, 0, 0
        )
        assert n == 5 and cl[-1] is p7 and p7.pg_flags & uvm_page.PG_CLEANCHK
        assert not p7.pg_flags & PG_RELEASED

        # a window bigger than the array: the cluster is the center page alone
        for p in (p3, p4, p6, p7):
            p.pg_flags &= ~PG_BUSY
        cl, n = uvm_pager.uvm_mk_pcluster(k, uobj, [None] * 4, 4, c, PGO_ALLPAGES, 0, 0)
        assert (cl, n) == ([c], 1)
        uvm_page.uvm_unlock_pageq(k)
        c.pg_flags &= ~PG_BUSY
        for p in list(uobj.memt.values()):
            p.pg_flags |= PG_CLEAN  # nothing to write back at detach
        rw_exit(uobj.vmobjlock)
        uobj.pgops = uvm_vnode.uvm_vnodeops
        await _close(k, vp, uobj)

    env.run(body)


def test_uvn_io_past_the_end_of_file_is_bad(kenv: Any) -> None:
    """uvn_io "check size": an offset at or past the end of file gives VM_PAGER_BAD (one of
    the vnode put results of §1.8: "OK, AGAIN, BAD or ERROR")."""
    env = kenv(config=_quiet())

    async def body(k: Kernel, env: Any) -> None:
        vp, uobj = await _open(k, env, "s.dat", 2 * PAGE)
        await rw_enter(k, uobj.vmobjlock, RW_WRITE)
        pg = _page(k, env, uobj, 1, dirty=True, active=False)
        uvn = uobj
        assert isinstance(uvn, uvm_vnode.UvmVnode)
        uvn.u_size = PAGE  # the file shrank under the page
        pg.pg_flags |= PG_BUSY
        assert await uvm_vnode.uvn_put(k, uobj, [pg], 1, PGO_SYNCIO) == VM_PAGER_BAD
        pg.pg_flags = (pg.pg_flags | PG_CLEAN) & ~PG_BUSY
        uvn.u_size = 2 * PAGE
        rw_exit(uobj.vmobjlock)
        await _close(k, vp, uobj)

    env.run(body)


def test_uvn_get_locked_takes_only_resident_idle_pages(kenv: Any) -> None:
    """The vnode pager get with PGO_LOCKED: "to be useful must get a non-busy ... pg"; if the
    center page needs I/O or waiting it returns VM_PAGER_UNLOCK (and never sleeps)."""
    env = kenv(config=_quiet())

    async def body(k: Kernel, env: Any) -> None:
        vp, uobj = await _open(k, env, "l.dat", 4 * PAGE)
        await rw_enter(k, uobj.vmobjlock, RW_WRITE)
        p0 = _page(k, env, uobj, 0, dirty=False, active=True)
        pps: list[Any] = [None, None]
        r, got = await uvm_vnode.uvn_get(k, uobj, 0, pps, 2, 0, PROT_READ, 0, uvm_pager.PGO_LOCKED)
        assert (r, got) == (VM_PAGER_OK, 1) and pps == [p0, None]
        p0.pg_flags &= ~PG_BUSY
        pps = [None, None]
        r, got = await uvm_vnode.uvn_get(k, uobj, 0, pps, 2, 1, PROT_READ, 0, uvm_pager.PGO_LOCKED)
        assert (r, got) == (VM_PAGER_UNLOCK, 1)  # the center (page 1) is not resident
        p0.pg_flags &= ~PG_BUSY
        rw_exit(uobj.vmobjlock)
        await _close(k, vp, uobj)

    env.run(body)


def test_attach_shares_the_object_and_the_last_detach_lets_it_persist(kenv: Any) -> None:
    """uvn_attach: "if the vnode is already attached, then just bump the reference count";
    uvn_detach: the last reference lets a CANPERSIST object "stick around" with its pages
    deactivated."""
    env = kenv(config=_quiet())

    async def body(k: Kernel, env: Any) -> None:
        vp, uobj = await _open(k, env, "p.dat", 2 * PAGE)
        again = await uvm_vnode.uvn_attach(k, vp, PROT_READ)
        assert again is uobj and uobj.uo_refs == 2 and vp.v_usecount == 2
        await rw_enter(k, uobj.vmobjlock, RW_WRITE)
        pg = _page(k, env, uobj, 0, dirty=False, active=True)
        rw_exit(uobj.vmobjlock)
        assert uobj.pgops.pgo_detach is not None
        await uobj.pgops.pgo_detach(k, uobj)
        await uobj.pgops.pgo_detach(k, uobj)
        assert uobj.uo_refs == 0 and vp.v_usecount == 1
        assert uobj.memt.get(0) is pg and not pg.pg_flags & PQ_ACTIVE  # persisting
        back = await uvm_vnode.uvn_attach(k, vp, PROT_READ | PROT_WRITE)
        assert back is uobj and uobj.uo_refs == 1
        await _close(k, vp, uobj)

    env.run(body)


def test_setsize_shrink_writes_nothing_and_frees_the_pages_past_the_end(kenv: Any) -> None:
    """uvm_vnp_setsize: "shrink => toss un-needed pages" (uvn_flush with PGO_FREE)."""
    env = kenv(config=_quiet())

    async def body(k: Kernel, env: Any) -> None:
        vp, uobj = await _open(k, env, "t.dat", 4 * PAGE)
        await rw_enter(k, uobj.vmobjlock, RW_WRITE)
        pgs = [_page(k, env, uobj, i, dirty=False, active=False) for i in range(4)]
        rw_exit(uobj.vmobjlock)
        await uvm_vnode.uvm_vnp_setsize(k, vp, 2 * PAGE)
        assert [bool(p.pg_flags & PQ_FREE) for p in pgs] == [False, False, True, True]
        assert vp.v_dev.disk.stats.writes == 0
        await _close(k, vp, uobj)

    env.run(body)


def test_flush_cleanit_writes_the_dirty_pages_back(kenv: Any) -> None:
    """uvn_flush with PGO_CLEANIT|PGO_SYNCIO: dirty pages are written through uvm_pager_put
    (clusters, PGO_DOACTCLUST) and come back clean; the file then holds their data."""
    env = kenv(config=_quiet())

    async def body(k: Kernel, env: Any) -> None:
        vp, uobj = await _open(k, env, "d.dat", 3 * PAGE)
        await rw_enter(k, uobj.vmobjlock, RW_WRITE)
        pgs = [_page(k, env, uobj, i, dirty=True, active=True) for i in range(3)]
        ok = await uvm_vnode.uvn_flush(
            k, uobj, 0, 0, uvm_pager.PGO_CLEANIT | PGO_SYNCIO | PGO_ALLPAGES
        )
        assert ok and all(p.pg_flags & PG_CLEAN and not p.pg_flags & PG_BUSY for p in pgs)
        assert vp.v_dev.disk.stats.writes == 1  # one cluster of three pages
        rw_exit(uobj.vmobjlock)
        for i in range(3):
            with open(vp.v_dev.disk.path, "rb") as f:
                f.seek(i * PAGE)
                assert f.read(PAGE) == _data(i)
        await _close(k, vp, uobj)

    env.run(body)
