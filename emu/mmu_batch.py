"""emu.mmu_batch: the batch translation cache of one address space (used by emu.mmu).

The scalar paths of :class:`emu.mmu.Mmu` find a leaf through the space's dict ``region key ->
row``. A numpy batch needs that lookup for thousands of addresses at once, so each space keeps a
:class:`BatchCache`, rebuilt lazily when its leaves change (the Mmu marks it ``stale``): the
sorted key array and its rows (for ``np.searchsorted``) and *clusters*: runs of keys with gaps of
at most 64, each with a dense table ``delta`` such that ``slot = vpn + delta[key - base]``.
:meth:`BatchCache.gather` translates a batch that lies in one region with a constant offset,
one that lies in one cluster with shifts, a subtraction, an add and two gathers, and anything
else with a search of the key array. Untouched regions cost nothing: an absent key maps to row 0,
the shared empty leaf.
"""

from __future__ import annotations

import bisect
import itertools

import numpy as np
import numpy.typing as npt

from emu.ram import PAGE_SHIFT

__all__ = ["LEAF_MASK", "LEAF_SHIFT", "REGION_SHIFT", "BatchCache"]

LEAF_SHIFT = 9  # 512 PTEs per leaf
LEAF_MASK = (1 << LEAF_SHIFT) - 1
REGION_SHIFT = PAGE_SHIFT + LEAF_SHIFT  # vaddr >> 21 is the region key
_CLUSTER_GAP = 64  # regions; a larger gap between keys starts a new cluster


class BatchCache:
    """Sorted keys, their rows and the clusters of one space's ``regions`` (key -> row)."""

    __slots__ = ("cbases", "clusters", "keys", "rows", "stale")

    def __init__(self) -> None:
        self.stale = True  # the arrays below need a rebuild from the regions
        self.keys = self.rows = np.zeros(0, np.int64)  # sorted keys, their rows
        self.cbases: list[int] = []  # first key of each cluster, for bisect
        self.clusters: list[tuple[int, int, npt.NDArray[np.int64]]] = []  # (base, end, delta)

    def gather(
        self,
        pte: npt.NDArray[np.int64],
        regions: dict[int, int],
        v: npt.NDArray[np.int64],
        kmin: int,
        kmax: int,
    ) -> npt.NDArray[np.int64]:
        """The PTE (from the flat ``pte`` array) of every address in ``v``, 0 where nothing is
        mapped; ``kmin``/``kmax`` are the smallest and largest region key of ``v``. Indices are
        in range by construction; mode="wrap" skips numpy's bounds check (half the cost of
        "raise")."""
        if kmin == kmax:  # one region: a constant offset from vpn to slot
            row = regions.get(kmin, 0)
            idx = v >> PAGE_SHIFT
            idx += (row - kmin) << LEAF_SHIFT
            return pte.take(idx, mode="wrap")
        if self.stale:
            self.rebuild(regions)
        i = bisect.bisect_right(self.cbases, kmin) - 1
        base, end, delta = self.clusters[i] if i >= 0 else (0, 0, self.keys)
        if kmax < end:  # one cluster: the dense delta table
            k = v >> REGION_SHIFT
            k -= base
            idx = v >> PAGE_SHIFT
            idx += delta.take(k, mode="wrap")
            return pte.take(idx, mode="wrap")
        keys = self.keys
        if len(keys) == 0:
            return np.zeros(len(v), np.int64)
        k = v >> REGION_SHIFT
        pos = np.searchsorted(keys, k)
        np.minimum(pos, len(keys) - 1, out=pos)
        rows = np.where(keys.take(pos, mode="wrap") == k, self.rows.take(pos, mode="wrap"), 0)
        rows <<= LEAF_SHIFT
        idx = v >> PAGE_SHIFT
        idx &= LEAF_MASK
        idx |= rows
        return pte.take(idx, mode="wrap")

    def rebuild(self, regions: dict[int, int]) -> None:
        """Rebuild the sorted key array and the clusters from ``regions``."""
        keys = np.array(sorted(regions), dtype=np.int64)
        self.keys, self.rows = keys, np.array([regions[k] for k in keys.tolist()], np.int64)
        cuts = (np.flatnonzero(np.diff(keys) > _CLUSTER_GAP) + 1).tolist()
        self.cbases, self.clusters = [], []
        for a, b in itertools.pairwise([0, *cuts, len(keys)] if len(keys) else []):
            base, end = int(keys[a]), int(keys[b - 1]) + 1
            # slot = row*512 + (vpn & 511) = vpn + (row - key)*512; row 0 for absent keys
            delta = -(np.arange(base, end, dtype=np.int64) << LEAF_SHIFT)
            delta[keys[a:b] - base] += self.rows[a:b] << LEAF_SHIFT
            self.cbases.append(base)
            self.clusters.append((base, end, delta))
        self.stale = False
