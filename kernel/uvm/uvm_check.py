"""uvm_check: consistency checks of the whole VM state (PORT-only module, no C counterpart).

``uvm_check(k)`` walks the pages, the paging queues, the page tables, the map entries and the
swap devices and raises :class:`Panic` naming the first invariant that does not hold and the
page or slot concerned. The kernel test fixture runs it after every test.

DIAGNOSTIC builds call :func:`uvm_check_pass` after every page daemon pass and aiodone batch
(``k.config.check_every_pass``). With ``k.config.check_full`` (the test suite) that is the
whole check every time. Otherwise the check is amortized: the whole check costs time in
proportion to its size (frames plus swap slots in use), so it runs once the work done since
its last run (faults plus pages the daemon examined) reaches ``CHECK_WORK`` times its size.
Its share of a run's time stays a few per cent however large the machine, where a check
after every pass grows with RAM times passes (99 % of a 256 MiB run); a broken invariant is
still caught, a bounded amount of work later. It decides nothing and logs nothing, so a
run's events are the same either way.

Invariants checked:
- queues: ``TailQ.check()`` on both paging queues; their lengths, iterator markers
  (PQ_ITER) not counted, equal ``uvmexp.active`` / ``uvmexp.inactive``; a page is on the active (inactive) queue iff it has PQ_ACTIVE
  (PQ_INACTIVE), never both.
- pages: PQ_FREE iff the allocator's free map has the frame; ``uvmexp.free`` equals the free
  frames; a free page is not busy, owned, wired, queued or mapped; an allocated page is on a
  queue (and then has an owner and no wiring), or wired, or busy (in transit), or a buffer
  cache page, or a page of the swap OOM reserve (``oompps``); PQ_ANON iff it has an anon whose ``an_page`` is this page; an object page is in
  its object's tree (PG_TABLED); PQ_AOBJ pages belong to aobjs; a resident, idle PG_CLEAN anon
  page has a swap slot; ``uvmexp.wired`` equals the wired pages (buffer cache pages are wired
  the vfs_biomem.c way and not counted).
- page tables: every mapping in the reverse map is a live PTE for that page; each address
  space's resident count equals its reverse-map entries; the PTE lies inside a map entry of
  its process and maps the page that entry's amap or object has at that address; a writable
  PTE is allowed by the entry (and not for a copy-on-write object page) and never maps a busy
  page (the page daemon write-protects pages it busies for pageout).
- swap: every allocated slot that is not marked bad belongs to exactly one anon or aobj
  page index, or to the swap cluster the page daemon is building (an unused run of at most
  SWCLUSTPAGES slots, only while a pass is under way); every slot an owner names is allocated; ``swpginuse`` equals the slots in use;
  ``swpgonly`` counts the owners whose data is only in swap (a page being read back, still
  PG_FAKE, may be counted either way); ``swpgonlybad`` counts the owners holding SWSLOT_BAD;
  each swap encryption key counts the slots of its section marked "needs decrypt", and a key
  nobody uses is zeroed.

Roots: anons are found through the amaps of every process's map entries and through the
pages; aobjs through map entries, pages, the kernel object, the machine's named objects
(``k.md.shared``) and the ``objs`` argument (for tests that hold an aobj of their own).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

import numpy as np

import kernel.kern.vfs_bio as vfs_bio
import kernel.uvm.uvm_map as uvm_map
import kernel.uvm.uvm_page as uvm_page
from kernel.sys.mman import PROT_WRITE
from kernel.sys.param import PAGE_SHIFT
from kernel.sys.systm import Panic
from kernel.uvm.uvm_object import UVM_OBJ_IS_AOBJ
from kernel.uvm.uvm_swap import SWCLUSTPAGES, SWD_KEY_SHIFT

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.uvm.uvm_anon import VmAnon
    from kernel.uvm.uvm_map import VmMap
    from kernel.uvm.uvm_object import UvmObject
    from kernel.uvm.uvm_page import VmPage

__all__ = ["CHECK_WORK", "uvm_check", "uvm_check_pass"]


CHECK_WORK: Final = 2  # amortized check: work units between whole checks, per unit of size
_PROT_WRITE: Final = int(PROT_WRITE)


def uvm_check_pass(k: Kernel) -> None:
    """uvm_check after a daemon pass or an aiodone batch: whole with ``check_full``, else
    amortized over the work done (module docstring)."""
    if k.config.check_full:
        uvm_check(k)
        return
    u = k.uvmexp
    work = u.faults + u.pdscans
    if work - k.check_work >= CHECK_WORK * (len(k.pages) + u.swpginuse):
        k.check_work = work
        uvm_check(k)


def uvm_check(k: Kernel, objs: Iterable[UvmObject] = ()) -> None:
    """uvm_check: verify every invariant of the module docstring; raise Panic on the first
    that fails. ``objs``: extra aobjs that are alive but reachable from nothing the kernel
    knows (held by a test)."""
    _check_queues(k)
    bufpages = _check_bufcache(k)
    if k.swap is not None:  # the page daemon's bounce reserve: allocated, owned by nobody
        bufpages |= {pg.phys_addr >> PAGE_SHIFT for pg in k.swap.oompps}
    _check_pages(k, bufpages)
    maps = _process_maps(k)
    _check_mappings(k, maps)
    _check_swap(k, maps, objs)


# --- helpers --------------------------------------------------------------------------------


def _fail(invariant: str, **detail: object) -> Panic:
    what = ", ".join(f"{key}={val!r}" for key, val in detail.items())
    return Panic(f"uvm_check: {invariant}" + (f": {what}" if what else ""), **detail)


def _check_queues(k: Kernel) -> None:
    uvm = k.uvm
    for q in (uvm.page_active, uvm.page_inactive):
        try:
            q.check()
        except AssertionError as e:
            raise _fail("paging queue links are broken", queue=q.name, error=str(e)) from e
    # a scan's iterator marker (PQ_ITER, the 1.154 daemon) is on a queue but is no page
    nactive = len(uvm.page_active) - _markers(uvm.page_active)
    ninactive = len(uvm.page_inactive) - _markers(uvm.page_inactive)
    if nactive != k.uvmexp.active:
        raise _fail(
            "uvmexp.active != length of page_active",
            active=k.uvmexp.active,
            queued=nactive,
        )
    if ninactive != k.uvmexp.inactive:
        raise _fail(
            "uvmexp.inactive != length of page_inactive",
            inactive=k.uvmexp.inactive,
            queued=ninactive,
        )


def _markers(q: Iterable[VmPage]) -> int:
    pq_iter = uvm_page.PQ_ITER
    return sum(1 for pg in q if pg.pg_flags & pq_iter)


def _check_bufcache(k: Kernel) -> set[int]:
    """The frames of the buffer cache's pages (checked along the way)."""
    bc = k.bufcache
    if bc is None:
        return set()
    if len(bc.pages) != bc.bcstats.numbufpages:
        raise _fail(
            "bcstats.numbufpages != pages in the buffer cache",
            numbufpages=bc.bcstats.numbufpages,
            pages=len(bc.pages),
        )
    frames: set[int] = set()
    for pg in bc.pages:
        if pg.wire_count != 1 or pg.pg_flags & (
            uvm_page.PQ_FREE | uvm_page.PQ_ACTIVE | uvm_page.PQ_INACTIVE
        ):
            raise _fail("buffer cache page is not wired off the queues", pg=pg)
        frames.add(pg.phys_addr >> PAGE_SHIFT)
    if vfs_bio.BUFPAGES_DEFICIT(k) < 0 or vfs_bio.BUFPAGES_INACT(k) < 0:
        raise _fail("negative BUFPAGES_* value")
    return frames


def _check_pages(k: Kernel, bufpages: set[int]) -> None:
    pmr = k.uvm.pmr_control
    assert pmr is not None
    free_bits = pmr.free_bits.tolist()  # plain ints: indexing numpy per page is slow
    nfree = sum(free_bits)
    if nfree != k.uvmexp.free:
        raise _fail("uvmexp.free != free frames", free=k.uvmexp.free, frames=nfree)
    # plain ints: IntFlag arithmetic per page would dominate the check's cost
    pq_active, pq_inactive = int(uvm_page.PQ_ACTIVE), int(uvm_page.PQ_INACTIVE)
    pq_free, pq_anon, pq_aobj = int(uvm_page.PQ_FREE), int(uvm_page.PQ_ANON), int(uvm_page.PQ_AOBJ)
    pg_busy, pg_clean, pg_tabled = (
        int(uvm_page.PG_BUSY),
        int(uvm_page.PG_CLEAN),
        int(uvm_page.PG_TABLED),
    )
    active, inactive = k.uvm.page_active, k.uvm.page_inactive
    wired = 0
    for f, pg in enumerate(k.pages):
        if pg is None:
            if not free_bits[f]:
                raise _fail("allocated frame has no vm_page", frame=f)
            continue
        flags = int(pg.pg_flags)
        head = pg.pageq.tqe_head
        on_act = head is active
        on_inact = head is inactive
        if bool(flags & pq_active) != on_act:
            raise _fail("PQ_ACTIVE does not match the active queue", pg=pg, queued=on_act)
        if bool(flags & pq_inactive) != on_inact:
            raise _fail("PQ_INACTIVE does not match the inactive queue", pg=pg, queued=on_inact)
        is_free = bool(flags & pq_free)
        if is_free != bool(free_bits[f]):
            raise _fail("PQ_FREE does not match the free map", pg=pg, free=bool(free_bits[f]))
        if is_free:
            if (
                flags & pg_busy
                or pg.uanon is not None
                or pg.uobject is not None
                or pg.wire_count
                or on_act
                or on_inact
            ):
                raise _fail("free page is busy, owned, wired or queued", pg=pg)
            continue
        if f in bufpages:
            continue
        if pg.wire_count:
            wired += 1
        if on_act or on_inact:
            if pg.wire_count:
                raise _fail("wired page on a paging queue", pg=pg)
            if pg.uanon is None and pg.uobject is None:
                raise _fail("queued page has no owner", pg=pg)
        elif not pg.wire_count and not (flags & pg_busy):
            raise _fail("allocated page is on no queue, not wired and not busy", pg=pg)
        anon = pg.uanon
        if bool(flags & pq_anon) != (anon is not None):
            raise _fail("PQ_ANON does not match uanon", pg=pg, uanon=anon)
        if anon is not None:
            if anon.an_page is not pg:
                raise _fail("anon page's anon points elsewhere", pg=pg, anon=anon)
            if flags & pg_clean and not (flags & pg_busy) and anon.an_swslot == 0:
                raise _fail("clean anon page without a swap slot", pg=pg, anon=anon)
        uobj = pg.uobject
        if uobj is not None:
            if not (flags & pg_tabled) or uobj.memt.get(pg.offset) is not pg:
                raise _fail("object page is not in its object", pg=pg, uobj=uobj)
        if flags & pq_aobj and (uobj is None or not UVM_OBJ_IS_AOBJ(uobj)):
            raise _fail("PQ_AOBJ page not in an aobj", pg=pg, uobj=uobj)
    if wired != k.uvmexp.wired:
        raise _fail("uvmexp.wired != wired pages", wired=k.uvmexp.wired, pages=wired)


def _process_maps(k: Kernel) -> dict[int, VmMap]:
    """id(pmap) -> vm_map of every process that has an address space."""
    maps: dict[int, VmMap] = {}
    for p in k.procs.values():
        vm = p.p_vmspace
        if vm is not None:
            maps[id(vm.vm_map.pmap)] = vm.vm_map
    return maps


def _check_mappings(k: Kernel, maps: dict[int, VmMap]) -> None:
    pmap: Any = k.pmap
    mappings_of = getattr(pmap, "pmap_page_mappings", None)
    if mappings_of is None:  # a fake pmap: nothing to ask
        return
    busy_rdonly = int(uvm_page.PG_BUSY | uvm_page.PG_RDONLY)
    pq_free = int(uvm_page.PQ_FREE)
    resident: dict[int, int] = {}
    for pg in k.pages:
        if pg is None:
            continue
        mappings = mappings_of(pg)
        if not mappings:
            continue
        flags = int(pg.pg_flags)
        if flags & pq_free:
            raise _fail("free page is mapped", pg=pg, va=mappings[0][1])
        for pm, va in mappings:
            resident[id(pm)] = resident.get(id(pm), 0) + 1
            pte = pmap.pmap_pte(pm, va)
            if pte is None or pte[0] != pg.phys_addr:
                raise _fail("reverse map names a PTE that does not map the page", pg=pg, va=va)
            writable = pte[1]
            if writable and flags & busy_rdonly:
                raise _fail("busy or read-only page mapped writable", pg=pg, va=va)
            map = maps.get(id(pm))
            if map is None:
                raise _fail("page mapped in a pmap of no process", pg=pg, va=va)
            _check_mapping(map, pm, va, pg, writable)
    for pmid, map in maps.items():
        n = pmap.pmap_resident_count(map.pmap)
        if n != resident.get(pmid, 0):
            raise _fail(
                "pmap resident count != reverse-map entries",
                resident=n,
                pv=resident.get(pmid, 0),
            )


def _check_mapping(map: VmMap, pm: Any, va: int, pg: VmPage, writable: bool) -> None:
    entry = uvm_map.uvm_map_lookup_entry(map, va)
    if entry is None:
        raise _fail("PTE outside every map entry", pg=pg, va=va)
    off = va - entry.start
    want: VmPage | None = None
    anon: VmAnon | None = None
    amap = entry.aref.ar_amap
    if amap is not None:
        anon = amap.am_anon.get((off >> PAGE_SHIFT) + entry.aref.ar_pageoff)
    if anon is not None:
        want = anon.an_page
    elif entry.uvm_obj is not None:
        want = entry.uvm_obj.memt.get(entry.offset + off)
    if want is not pg:
        raise _fail("PTE maps another page than its map entry holds", pg=pg, va=va, want=want)
    if writable:
        if not (int(entry.protection) & _PROT_WRITE):
            raise _fail("writable PTE in a read-only entry", pg=pg, va=va)
        if anon is None and entry.etype & uvm_map.UVM_ET_COPYONWRITE:
            raise _fail("writable PTE of a copy-on-write object page", pg=pg, va=va)


def _check_swap(k: Kernel, maps: dict[int, VmMap], objs: Iterable[UvmObject]) -> None:
    swap = k.swap
    if swap is None:
        return
    # the owners: anons (amaps of every map entry, then the pages) and aobjs
    anons: dict[int, VmAnon] = {}
    aobjs: dict[int, UvmObject] = {}
    for map in maps.values():
        for entry in map.entries:
            amap = entry.aref.ar_amap
            if amap is not None:
                for anon in amap.am_anon.values():
                    anons[id(anon)] = anon
            if entry.uvm_obj is not None and UVM_OBJ_IS_AOBJ(entry.uvm_obj):
                aobjs[id(entry.uvm_obj)] = entry.uvm_obj
    for pg in k.pages:
        if pg is None:
            continue
        if pg.uanon is not None:
            anons[id(pg.uanon)] = pg.uanon
        if pg.uobject is not None and UVM_OBJ_IS_AOBJ(pg.uobject):
            aobjs[id(pg.uobject)] = pg.uobject
    roots: list[Any] = list(objs)
    roots.extend(getattr(k.md, "shared", {}).values())
    if k.uvm.kernel_object is not None:
        roots.append(k.uvm.kernel_object)
    for uobj in roots:
        if UVM_OBJ_IS_AOBJ(uobj):
            aobjs[id(uobj)] = uobj

    owner: dict[int, object] = {}  # slot -> owner
    swponly_lo = swponly_hi = 0
    nbad = 0  # owners holding SWSLOT_BAD
    for anon in anons.values():
        slot = anon.an_swslot
        if slot == 0:
            continue
        if slot > 0:
            _own(owner, slot, anon)
        else:
            nbad += 1
        pg = anon.an_page
        if pg is None:
            swponly_lo += 1
            swponly_hi += 1
        elif pg.pg_flags & uvm_page.PG_FAKE:
            swponly_hi += 1
    for uobj in aobjs.values():
        for pageidx, slot in _aobj_slots(uobj):
            if slot > 0:
                _own(owner, slot, (uobj, pageidx))
            else:
                nbad += 1
            pg = uobj.memt.get(pageidx << PAGE_SHIFT)
            if pg is None:
                swponly_lo += 1
                swponly_hi += 1
            elif pg.pg_flags & uvm_page.PG_FAKE:
                swponly_hi += 1

    inuse = 0
    unowned: list[int] = []
    for spp in swap.swap_priority:
        for sdp in spp.spi_swapdev:
            inuse += sdp.swd_npginuse
            lo = 1 if sdp.swd_vp.dv_isblk else 0
            used = sdp.swd_blist[lo : lo + sdp.swd_npages] == 0
            if int(np.count_nonzero(used)) != sdp.swd_npginuse:
                raise _fail(
                    "swd_npginuse != allocated slots of the device",
                    dev=sdp.swd_path,
                    npginuse=sdp.swd_npginuse,
                    allocated=int(np.count_nonzero(used)),
                )
            bad = sdp.swd_bad[lo : lo + sdp.swd_npages] != 0
            for idx in np.flatnonzero(used & ~bad).tolist():
                slot = sdp.swd_drumoffset + lo + idx
                if owner.pop(slot, None) is None:
                    unowned.append(slot)
            for idx in np.flatnonzero(bad).tolist():
                owner.pop(sdp.swd_drumoffset + lo + idx, None)
            if sdp.swd_keys is not None and sdp.swd_decrypt is not None:
                _check_keys(sdp)
    _check_unowned(k, unowned)
    if owner:
        slot = min(owner)
        raise _fail("owner's swap slot is not allocated", slot=slot, owner=owner[slot])
    if inuse != k.uvmexp.swpginuse:
        raise _fail("uvmexp.swpginuse != slots in use", swpginuse=k.uvmexp.swpginuse, inuse=inuse)
    if not swponly_lo <= k.uvmexp.swpgonly <= swponly_hi:
        raise _fail(
            "uvmexp.swpgonly does not match the owners whose data is only in swap",
            swpgonly=k.uvmexp.swpgonly,
            low=swponly_lo,
            high=swponly_hi,
        )
    if swap.swpgonlybad != nbad:
        raise _fail("swpgonlybad != owners holding SWSLOT_BAD", swpgonlybad=swap.swpgonlybad, owners=nbad)


def _check_unowned(k: Kernel, unowned: list[int]) -> None:
    """Allocated slots nobody owns are leaked, except the unused tail of the swap cluster the
    page daemon is building: while a pass is under way (``k.pdpass``) it may hold one
    contiguous run of at most SWCLUSTPAGES slots it has not handed out yet (the scan sleeps
    in the middle of building one when it pages out a vnode page synchronously, I13)."""
    if not unowned:
        return
    in_pass = getattr(k, "pdpass", None) is not None
    contiguous = unowned[-1] - unowned[0] == len(unowned) - 1
    if in_pass and contiguous and len(unowned) <= SWCLUSTPAGES:
        return
    raise _fail("allocated swap slot has no owner (leaked)", slot=unowned[0], count=len(unowned))


def _check_keys(sdp: Any) -> None:
    marked = np.add.reduceat(np.frombuffer(sdp.swd_decrypt, np.uint8).astype(np.int64),
                             np.arange(0, len(sdp.swd_decrypt), 1 << SWD_KEY_SHIFT)).tolist()  # fmt: skip
    for i, key in enumerate(sdp.swd_keys):
        if key.refcount != marked[i] or (key.refcount == 0 and any(key.key)):
            raise _fail("swap key does not count its marked slots", dev=sdp.swd_path,
                        section=i, refcount=key.refcount, marked=marked[i])  # fmt: skip


def _own(owner: dict[int, object], slot: int, who: object) -> None:
    prev = owner.get(slot)
    if prev is not None:
        raise _fail("swap slot has two owners", slot=slot, owner=who, other=prev)
    owner[slot] = who


def _aobj_slots(uobj: Any) -> list[tuple[int, int]]:
    """(page index, slot) of every slot an aobj holds (0 excluded, SWSLOT_BAD included)."""
    out: list[tuple[int, int]] = []
    swslots = getattr(uobj, "u_swslots", None)
    if swslots is not None:
        out.extend((i, s) for i, s in enumerate(swslots) if s != 0)
    swhash = getattr(uobj, "u_swhash", None)
    if swhash is not None:
        for bucket in swhash:
            for elt in bucket:
                base = elt.tag << 4  # UAO_SWHASH_ELT_PAGEIDX_BASE
                out.extend((base + i, s) for i, s in enumerate(elt.slots) if s != 0)
    return out
