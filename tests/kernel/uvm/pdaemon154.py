"""The 1.154 daemon's tests: calling its scans (shared by test_uvm_pdaemon154_*.py).

:func:`_scan_inactive` and :func:`_scan` call uvmpd_scan_inactive and uvmpd_scan of
kernel/uvm/uvm_pdaemon_1_154.py as their callers do (page queues locked), with a constraint
(``no_constraint`` unless given) and the shortages, and return what they returned plus how
much each counter of :data:`COUNTERS` moved; :func:`_markers` counts the PQ_ITER markers on a
queue; :func:`_racing_paging` is the contrived hook that drives the two tests of the inactive
scan that cannot be true (N-I4, N-I10; docs/pdaemon-1.154.md §2.12).

The machines of these tests are under 270 pages: uvmpd_tune gives freemin 9, freetarg 12.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import kernel.uvm.uvm_pdaemon_1_154 as pd154
from kernel.kernel import Kernel
from kernel.sys.proc import curproc
from kernel.uvm import uvm_page
from kernel.uvm.uvm import UvmConstraintRange, no_constraint
from kernel.uvm.uvm_page import PQ_ITER, VmPage

if TYPE_CHECKING:
    from conftest import KernelEnv

COUNTERS = (
    "pdscans", "pdreact", "pdbusy", "pdanscan", "pdobscan", "pdfreed", "pdpageouts",
    "pdpending", "pgswapout", "swpgonly", "swpginuse", "paging", "free", "pdrevs", "pddeact",
    "active", "inactive",
)  # fmt: skip


def _snap(k: Kernel) -> dict[str, int]:
    return {c: getattr(k.uvmexp, c) for c in COUNTERS}


def _delta(k: Kernel, before: dict[str, int]) -> dict[str, int]:
    return {c: getattr(k.uvmexp, c) - v for c, v in before.items()}


async def _scan_inactive(
    k: Kernel, shortage: int, constraint: UvmConstraintRange | None = None
) -> tuple[int, dict[str, int]]:
    """uvmpd_scan's call of uvmpd_scan_inactive (line 869), page queues locked around it:
    (pages freed, counter deltas)."""
    before = _snap(k)
    uvm_page.uvm_lock_pageq(k)
    freed = await pd154.uvmpd_scan_inactive(
        k, constraint if constraint is not None else no_constraint(), shortage
    )
    assert k.uvm.pageqlock.mtx_owner is curproc()  # returns with the page queues locked
    assert _markers(k.uvm.page_inactive) == 0  # its marker is gone (line 828)
    uvm_page.uvm_unlock_pageq(k)
    return freed, _delta(k, before)


async def _scan(
    k: Kernel, shortage: int, inactive_shortage: int, constraint: UvmConstraintRange | None = None
) -> dict[str, int]:
    """uvm_pageout's call of uvmpd_scan (lines 283-285), page queues locked around it."""
    before = _snap(k)
    uvm_page.uvm_lock_pageq(k)
    await pd154.uvmpd_scan(
        k, constraint if constraint is not None else no_constraint(), shortage, inactive_shortage
    )
    assert k.uvm.pageqlock.mtx_owner is curproc()
    assert _markers(k.uvm.page_active) == 0 and _markers(k.uvm.page_inactive) == 0
    uvm_page.uvm_unlock_pageq(k)
    return _delta(k, before)


BIG = 1000  # a shortage the inactive scan never reaches


def _inactive(k: Kernel) -> list[VmPage]:
    return list(k.uvm.page_inactive)


def _slot(pg: VmPage) -> int:
    """The swap slot of an anon page."""
    assert pg.uanon is not None
    return pg.uanon.an_swslot


def _only(pg: VmPage) -> UvmConstraintRange:
    """A constraint whose page-number range holds exactly ``pg`` (uvmpd_match_constraint
    compares page numbers, N-K1)."""
    f = pg.phys_addr >> 12
    return UvmConstraintRange(f, f + 1)


def _markers(q: Any) -> int:
    return sum(1 for pg in q if pg.pg_flags & PQ_ITER)


def _frames(pgs: list[VmPage]) -> list[int]:
    return [pg.phys_addr >> 12 for pg in pgs]


@contextmanager
def _racing_paging(env: KernelEnv, extra: int, when: Callable[[], bool]) -> Iterator[list[int]]:
    """The contrived hook of N-I4 and N-I10 (docs/pdaemon-1.154.md §2.12): while the scan pays
    for the first page it examines that ``when()`` accepts (``k.sched.charge`` right after
    ``pdscans`` +1, line 615), ``uvmexp.paging`` grows by ``extra``, as if another CPU had
    started a pageout between the stop test (607) and the filters (622, 708). Nothing in a
    kernel does that (only the daemon itself raises ``paging``); it is undone on exit. Yields
    the list of the ``pdscans`` values at which it fired."""
    k = env.k
    clock = env.clock
    real = clock.charge
    fired: list[int] = []

    def charge(ns: int) -> None:
        if not fired and ns == k.config.costs.scan_page_ns and when():
            fired.append(k.uvmexp.pdscans)
            k.uvmexp.paging += extra
        real(ns)

    clock.charge = charge  # type: ignore[method-assign]
    try:
        yield fired
    finally:
        clock.charge = real  # type: ignore[method-assign]
        if fired:
            k.uvmexp.paging -= extra
