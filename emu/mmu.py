"""emu.mmu: sparse page tables for 48-bit address spaces, translation and the reverse map.

Layout. vpn = vaddr >> 12 splits into a region key (vpn >> 9: one per 2 MiB) and an index into
the region's *leaf*, a row of 512 PTEs. The leaves of all spaces are rows of one growable flat
int64 array ``_pte``, so a slot number (row*512 + index) names one PTE for the life of its row.
Row 0 is the shared empty leaf, never allocated and all zero: a lookup that finds no leaf reads
it and gets "not present" without a branch. A space maps key -> row in ``_regions`` (scalar
paths) and keeps a :class:`emu.mmu_batch.BatchCache` for numpy batches (sorted keys and dense
per-cluster tables, rebuilt lazily when its leaves change; see that module).

PTE: ``frame << 2 | PTE_W | PTE_V``; 0 is "not present"; PTE_W is never set without PTE_V.

Reverse map (pv lists): ``_pvhead[frame]`` is the first slot mapping the frame (-1: none) and
``_pvnext[slot]`` chains the rest, so per-frame work is O(mappings of the frame), for 8 bytes per
frame plus 8 per slot. A slot's space and vpn come from its row. Leaves live until ``remove``,
``remove_range`` or ``destroy_space`` empties them; ``remove_all`` (the page daemon's unmap,
usually followed by a refault) leaves empty leaves in place.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, SupportsIndex

import numpy as np
import numpy.typing as npt

from emu.mmu_batch import LEAF_MASK, LEAF_SHIFT, REGION_SHIFT, BatchCache
from emu.ram import PAGE_SHIFT, Ram

__all__ = ["VA_BITS", "VA_LIMIT", "AddressSpace", "Fault", "FaultKind", "Mmu", "PageFault"]

VA_BITS = 48
VA_LIMIT = 1 << VA_BITS
PTE_V = 1  # valid
PTE_W = 2  # writable (implies PTE_V)
PTE_FRAME_SHIFT = 2

FaultKind = Literal["not_present", "protection"]


@dataclass(frozen=True, slots=True)
class Fault:
    """The first access of a batch that could not complete: at ``index`` (in the batch given),
    address ``vaddr``; ``kind`` is "not_present" or "protection" (a write to a read-only page)."""

    index: int
    vaddr: int
    kind: FaultKind
    write: bool


class PageFault(Exception):
    """Raised by :meth:`Mmu.translate`; the CPU turns it into a trap."""

    def __init__(self, fault: Fault) -> None:
        super().__init__(f"page fault: {fault.kind}, write={fault.write}, at {fault.vaddr:#x}")
        self.fault = fault


class AddressSpace:
    """One process's page tables (a pmap). Created by :meth:`Mmu.new_space`; dead after
    :meth:`Mmu.destroy_space`. ``resident`` counts its valid PTEs."""

    __slots__ = ("_batch", "_mmu", "_regions", "asid", "resident")

    def __init__(self, mmu: Mmu, asid: int) -> None:
        self.asid = asid
        self.resident = 0
        self._mmu: Mmu | None = mmu
        self._regions: dict[int, int] = {}  # region key -> leaf row
        self._batch = BatchCache()  # the same map for numpy batches, rebuilt when stale

    def __repr__(self) -> str:
        return f"<AddressSpace asid={self.asid} resident={self.resident}>"


class Mmu:
    """Page tables of every address space over one :class:`Ram`, with its ref/mod bits."""

    def __init__(self, ram: Ram, rows: int = 64) -> None:
        self.ram = ram
        self._asids = itertools.count(1)
        nrows = max(2, rows)
        self._pte: npt.NDArray[np.int64] = np.zeros(nrows << LEAF_SHIFT, np.int64)
        self._pvnext: npt.NDArray[np.int64] = np.zeros(nrows << LEAF_SHIFT, np.int64)
        self._pvhead: npt.NDArray[np.int64] = np.full(ram.nframes, -1, np.int64)
        self._row_space: list[AddressSpace | None] = [None] * nrows
        self._row_key = [0] * nrows
        self._row_used = [0] * nrows  # valid PTEs in the row
        self._free_rows = list(range(nrows - 1, 0, -1))  # pop() hands out low rows first
        # memoryviews for the scalar paths: item access costs a third of numpy's
        self._ptemv, self._nextmv, self._headmv = self._pte.data, self._pvnext.data, self._pvhead.data
        self._refmv, self._modmv = ram.ref.data, ram.mod.data

    # --- address spaces ------------------------------------------------------------------------

    def new_space(self) -> AddressSpace:
        return AddressSpace(self, next(self._asids))

    def destroy_space(self, space: AddressSpace) -> None:
        """Remove every mapping of ``space`` and free its leaves; the space is dead afterwards."""
        self.remove_range(space, 0, VA_LIMIT)
        assert not space._regions and space.resident == 0
        space._mmu = None

    # --- one page ------------------------------------------------------------------------------

    def enter(self, space: AddressSpace, vaddr: int, frame: SupportsIndex, writable: bool) -> None:
        """Map the page holding ``vaddr`` to ``frame``, replacing any mapping it had."""
        vpn = self._vpn(space, vaddr)
        frame = self._frame(frame)
        key = vpn >> LEAF_SHIFT
        row = space._regions.get(key)
        if row is None:
            row = self._alloc_row(space, key)
        slot = (row << LEAF_SHIFT) | (vpn & LEAF_MASK)
        old = self._ptemv[slot]
        if old & PTE_V:
            if old >> PTE_FRAME_SHIFT != frame:
                self._pv_unlink(old >> PTE_FRAME_SHIFT, slot)
                self._pv_link(frame, slot)
        else:
            self._row_used[row] += 1
            space.resident += 1
            self._pv_link(frame, slot)
        self._ptemv[slot] = (frame << PTE_FRAME_SHIFT) | PTE_V | (PTE_W if writable else 0)

    def remove(self, space: AddressSpace, vaddr: int) -> int | None:
        """Unmap the page holding ``vaddr``; the frame it mapped, or None if it was unmapped."""
        slot = self._slot(space, vaddr)
        if slot < 0 or not (pte := self._ptemv[slot]) & PTE_V:
            return None
        frame = pte >> PTE_FRAME_SHIFT
        self._pv_unlink(frame, slot)
        self._zap(slot)
        if self._row_used[slot >> LEAF_SHIFT] == 0:
            self._free_row(slot >> LEAF_SHIFT)
        return frame

    def protect(self, space: AddressSpace, vaddr: int, writable: bool) -> None:
        """Set or clear write permission of the page holding ``vaddr`` (no-op if unmapped)."""
        slot = self._slot(space, vaddr)
        if slot >= 0 and (pte := self._ptemv[slot]) & PTE_V:
            self._ptemv[slot] = pte | PTE_W if writable else pte & ~PTE_W

    def lookup(self, space: AddressSpace, vaddr: int) -> tuple[int, bool] | None:
        """(frame, writable) of the page holding ``vaddr``, or None; no ref/mod side effect."""
        slot = self._slot(space, vaddr)
        if slot < 0 or not (pte := self._ptemv[slot]) & PTE_V:
            return None
        return pte >> PTE_FRAME_SHIFT, bool(pte & PTE_W)

    def translate(self, space: AddressSpace, vaddr: int, write: bool) -> int:
        """One access: the frame, with its ref (and, for a write, mod) bit set; raises
        :class:`PageFault` (index 0) if the page is not present or not writable."""
        frame = self.access(space, vaddr, write)
        if frame >= 0:
            return frame
        row = space._regions.get(vaddr >> REGION_SHIFT)
        pte = 0 if row is None else self._ptemv[(row << LEAF_SHIFT) | ((vaddr >> PAGE_SHIFT) & LEAF_MASK)]
        raise PageFault(Fault(0, vaddr, "protection" if pte & PTE_V else "not_present", write))

    def access(self, space: AddressSpace, vaddr: int, write: bool) -> int:
        """:meth:`translate` without the exception, for the CPU's single-access path: the
        frame (ref/mod bits set), or -1 (no side effect) if the access would fault."""
        if space._mmu is not self:
            self._check_space(space)
        if not 0 <= vaddr < VA_LIMIT:
            raise ValueError(f"Mmu: address {vaddr:#x} is outside the 48-bit space")
        row = space._regions.get(vaddr >> REGION_SHIFT)
        pte = 0 if row is None else self._ptemv[(row << LEAF_SHIFT) | ((vaddr >> PAGE_SHIFT) & LEAF_MASK)]
        if pte & (PTE_W if write else PTE_V):
            frame: int = pte >> PTE_FRAME_SHIFT
            self._refmv[frame] = 1
            if write:
                self._modmv[frame] = 1
            return frame
        return -1

    # --- ranges --------------------------------------------------------------------------------

    def remove_range(self, space: AddressSpace, start: int, end: int) -> int:
        """Unmap every page in [start, end) and free leaves left empty; returns the count."""
        n = 0
        for row, lo, hi in self._rows_in(space, start, end):
            base = row << LEAF_SHIFT
            seg = self._pte[base + lo : base + hi]
            where = np.flatnonzero(seg)
            if len(where):
                slots = where + (base + lo)
                frames = seg[where] >> PTE_FRAME_SHIFT
                # The common case, a frame mapped only here, unlinks without a walk.
                single = (self._pvhead[frames] == slots) & (self._pvnext[slots] == -1)
                self._pvhead[frames[single]] = -1
                for f, s in zip(frames[~single].tolist(), slots[~single].tolist(), strict=True):
                    self._pv_unlink(f, s)
                seg[:] = 0
                self._row_used[row] -= len(where)
                space.resident -= len(where)
                n += len(where)
            if self._row_used[row] == 0:
                self._free_row(row)
        return n

    def protect_range(self, space: AddressSpace, start: int, end: int, writable: bool) -> None:
        """Set or clear write permission of every mapped page in [start, end)."""
        for row, lo, hi in self._rows_in(space, start, end):
            base = row << LEAF_SHIFT
            seg = self._pte[base + lo : base + hi]
            if writable:
                seg |= (seg & PTE_V) << 1  # PTE_W where valid
            else:
                seg &= ~PTE_W

    # --- the reverse map -----------------------------------------------------------------------

    def mappings(self, frame: SupportsIndex) -> list[tuple[AddressSpace, int]]:
        """(space, page address) of every mapping of ``frame``, most recently entered first."""
        out = []
        for slot in self._pv(frame):
            row = slot >> LEAF_SHIFT
            space = self._row_space[row]
            assert space is not None
            out.append((space, ((self._row_key[row] << LEAF_SHIFT) | (slot & LEAF_MASK)) << PAGE_SHIFT))
        return out

    def nmappings(self, frame: SupportsIndex) -> int:
        n = 0
        nextmv = self._nextmv
        slot = self._headmv[self._frame(frame)]
        while slot >= 0:  # the pv walk of _pv, without a generator (a page free asks)
            n += 1
            slot = nextmv[slot]
        return n

    def remove_all(self, frame: SupportsIndex) -> int:
        """Remove every mapping of ``frame`` (pmap_page_protect(PROT_NONE)); returns the count.
        The frame's ref/mod bits are kept, as amd64 keeps them in the pv head."""
        f = self._frame(frame)
        nextmv = self._nextmv
        n = 0
        slot = self._headmv[f]
        while slot >= 0:  # _zap leaves _pvnext alone, so the walk survives it
            self._zap(slot)
            n += 1
            slot = nextmv[slot]
        self._headmv[f] = -1
        return n

    def write_protect_all(self, frame: SupportsIndex) -> None:
        """Make every mapping of ``frame`` read-only (pmap_page_protect(PROT_READ))."""
        ptemv, nextmv = self._ptemv, self._nextmv
        slot = self._headmv[self._frame(frame)]
        while slot >= 0:
            ptemv[slot] &= ~PTE_W
            slot = nextmv[slot]

    # --- batches -------------------------------------------------------------------------------

    def touch_batch(
        self,
        space: AddressSpace,
        vaddrs: npt.NDArray[np.uint64] | npt.NDArray[np.int64],
        write: bool | npt.NDArray[np.bool_],
    ) -> Fault | None:
        """Access every address of ``vaddrs`` in order, up to the first one that faults.

        => sets ram.ref for each access and ram.mod for each write, excluding the faulting
           access and everything after it
        => returns None if all succeeded, else the Fault (index into ``vaddrs``)
        => raises ValueError (before any access) if an address is outside [0, 2**48)
        """
        if space._mmu is not self:
            self._check_space(space)
        if vaddrs.ndim != 1 or vaddrs.dtype.kind not in "iu":
            raise TypeError(f"Mmu.touch_batch: want 1-D integers, got {vaddrs.dtype}{vaddrs.shape}")
        n = vaddrs.shape[0]
        wv: npt.NDArray[np.bool_] | None = None
        if isinstance(write, np.ndarray):
            if write.shape != (n,) or write.dtype != np.bool_:
                raise TypeError(f"Mmu.touch_batch: write must be bool of shape ({n},)")
            wv = write
        if n == 0:
            return None
        vmin, vmax = int(vaddrs.min()), int(vaddrs.max())
        if vmin < 0 or vmax >= VA_LIMIT:
            raise ValueError(f"Mmu: address {vmin if vmin < 0 else vmax:#x} is outside the 48-bit space")
        # numpy trap: uint64 mixed with int64 promotes to float64; below 2**48 the bits agree.
        v = vaddrs.view(np.int64) if vaddrs.dtype == np.uint64 else vaddrs.astype(np.int64)
        kmin, kmax = vmin >> REGION_SHIFT, vmax >> REGION_SHIFT
        pte = space._batch.gather(self._pte, space._regions, v, kmin, kmax)

        # ok where nonzero: with a write mask, (pte & 3) > w passes 3 > 1, 3 > 0 and 1 > 0 only
        okv: npt.NDArray[np.generic] = (
            (pte & (PTE_W | PTE_V)) > wv if wv is not None else pte & PTE_W if write else pte
        )
        fault = None
        if not okv.all():
            m = int(okv.argmin())  # the first zero / False
            w = bool(wv[m]) if wv is not None else bool(write)
            kind: FaultKind = "protection" if pte[m] & PTE_V else "not_present"
            fault = Fault(m, int(vaddrs[m]), kind, w)
            if m == 0:
                return fault
            pte = pte[:m]
            if wv is not None:
                wv = wv[:m]
        frames = pte >> PTE_FRAME_SHIFT
        self.ram.ref[frames] = 1
        if wv is not None:
            self.ram.mod[frames.compress(wv)] = 1  # compress: half the cost of frames[wv]
        elif write:
            self.ram.mod[frames] = 1
        return fault

    # --- internals -----------------------------------------------------------------------------

    def _check_space(self, space: AddressSpace) -> None:
        if space._mmu is not self:
            raise ValueError(f"Mmu: address space {space.asid} is destroyed or not this Mmu's")

    def _vpn(self, space: AddressSpace, vaddr: int) -> int:
        self._check_space(space)
        vaddr = operator.index(vaddr)
        if not 0 <= vaddr < VA_LIMIT:
            raise ValueError(f"Mmu: address {vaddr:#x} is outside the 48-bit space")
        return vaddr >> PAGE_SHIFT

    def _slot(self, space: AddressSpace, vaddr: int) -> int:
        """The PTE slot of ``vaddr``'s page, or -1 if its region has no leaf."""
        vpn = self._vpn(space, vaddr)
        row = space._regions.get(vpn >> LEAF_SHIFT)
        return -1 if row is None else (row << LEAF_SHIFT) | (vpn & LEAF_MASK)

    def _frame(self, frame: SupportsIndex) -> int:
        if not 0 <= (f := operator.index(frame)) < self.ram.nframes:
            raise IndexError(f"Mmu: frame {f} out of range [0, {self.ram.nframes})")
        return f

    def _rows_in(self, space: AddressSpace, start: int, end: int) -> list[tuple[int, int, int]]:
        """(row, lo, hi): each leaf of ``space`` meeting [start, end), with its slot bounds."""
        self._check_space(space)
        if not 0 <= start <= end <= VA_LIMIT:
            raise ValueError(f"Mmu: range [{start:#x}, {end:#x}) is not inside the 48-bit space")
        v0, v1 = start >> PAGE_SHIFT, (end + (1 << PAGE_SHIFT) - 1) >> PAGE_SHIFT
        k0, k1 = v0 >> LEAF_SHIFT, (v1 - 1) >> LEAF_SHIFT
        regions = space._regions
        keys = range(k0, k1 + 1) if k1 - k0 < len(regions) else sorted(regions)
        return [(regions[k], max(v0 - (k << LEAF_SHIFT), 0), min(v1 - (k << LEAF_SHIFT), 1 << LEAF_SHIFT))
                for k in keys if k in regions and k0 <= k <= k1]

    def _pv(self, frame: SupportsIndex) -> Iterator[int]:
        """The slots on ``frame``'s pv list."""
        slot = self._headmv[self._frame(frame)]
        while slot >= 0:
            yield slot
            slot = self._nextmv[slot]

    def _pv_link(self, frame: int, slot: int) -> None:
        self._nextmv[slot] = self._headmv[frame]
        self._headmv[frame] = slot

    def _pv_unlink(self, frame: int, slot: int) -> None:
        prev, cur = -1, self._headmv[frame]
        while cur != slot:
            assert cur >= 0, f"_pv_unlink: slot {slot} not on frame {frame}'s pv list"
            prev, cur = cur, self._nextmv[cur]
        if prev < 0:
            self._headmv[frame] = self._nextmv[slot]
        else:
            self._nextmv[prev] = self._nextmv[slot]

    def _zap(self, slot: int) -> None:
        """Clear a valid PTE (already off its pv list or about to be)."""
        self._ptemv[slot] = 0
        row = slot >> LEAF_SHIFT
        self._row_used[row] -= 1
        space = self._row_space[row]
        assert space is not None
        space.resident -= 1

    def _alloc_row(self, space: AddressSpace, key: int) -> int:
        if not self._free_rows:
            self._grow()
        row = space._regions[key] = self._free_rows.pop()
        self._row_space[row], self._row_key[row], self._row_used[row] = space, key, 0
        space._batch.stale = True
        return row

    def _free_row(self, row: int) -> None:
        space, self._row_space[row] = self._row_space[row], None
        assert space is not None and self._row_used[row] == 0
        del space._regions[self._row_key[row]]
        space._batch.stale = True
        self._free_rows.append(row)

    def _grow(self) -> None:
        old = len(self._row_space)
        new = 2 * old
        self._ptemv.release()
        self._nextmv.release()
        self._pte = np.concatenate([self._pte, np.zeros((new - old) << LEAF_SHIFT, np.int64)])
        self._pvnext = np.concatenate([self._pvnext, np.zeros((new - old) << LEAF_SHIFT, np.int64)])
        self._ptemv, self._nextmv = self._pte.data, self._pvnext.data
        self._row_space += [None] * (new - old)
        self._row_key, self._row_used = self._row_key + [0] * (new - old), self._row_used + [0] * (new - old)
        self._free_rows += range(new - 1, old - 1, -1)
