"""The page daemon's tests: calling the inactive scan (shared by test_uvm_pdaemon_inactive_*.py).

:func:`_scan` calls uvmpd_scan_inactive as uvmpd_scan does (S2), with the page queues locked,
and returns how much each counter of :data:`COUNTERS` moved; :func:`_settle` waits until
aiodoned has finished every pageout in flight; :func:`_pageouts` reads the pageouts back from
the log; and a few jobs and look-ups the rows share.

The helpers keep the names the test bodies call them by (a leading underscore, as when they
were local to one test file).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import kernel.uvm.uvm_pdaemon as uvm_pdaemon
from emu.process import UserProcess
from kernel.kernel import Kernel
from kernel.sys.proc import curproc
from kernel.uvm import uvm_aobj, uvm_page
from kernel.uvm.uvm_page import VmPage
from kernel.uvm.uvm_pmemrange import UvmPmalloc

import pdaemon_world as pw
from pdaemon_world import PAGE, Holder, Job

if TYPE_CHECKING:
    from conftest import KernelEnv

COUNTERS = (
    "pdscans", "pdreact", "pdbusy", "pdanscan", "pdobscan", "pdfreed", "pdpageouts",
    "pdpending", "pgswapout", "swpgonly", "swpginuse", "paging", "free",
)  # fmt: skip


# --- the scan -------------------------------------------------------------------------------------


async def _scan(k: Kernel, pma: UvmPmalloc | None = None) -> dict[str, int]:
    """uvmpd_scan's call of uvmpd_scan_inactive (S2): page queues locked around it.
    Returns how much each counter of COUNTERS moved."""
    before = _snap(k)
    uvm_page.uvm_lock_pageq(k)
    await uvm_pdaemon.uvmpd_scan_inactive(k, pma, k.uvm.page_inactive)
    assert k.uvm.pageqlock.mtx_owner is curproc()  # returns with the page queues locked
    uvm_page.uvm_unlock_pageq(k)
    return _delta(k, before)


def _snap(k: Kernel) -> dict[str, int]:
    return {c: getattr(k.uvmexp, c) for c in COUNTERS}


def _delta(k: Kernel, before: dict[str, int]) -> dict[str, int]:
    return {c: getattr(k.uvmexp, c) - v for c, v in before.items()}


async def _settle(env: KernelEnv) -> None:
    """Until aiodoned finished every pageout in flight."""
    await env.settle(step_ns=100_000)


# --- jobs, swap slots, files, the log -------------------------------------------------------------


def _load(va: int, n: int = 8) -> Job:
    async def job(p: UserProcess) -> bytes:
        return await p.load(va, n)

    return job


def _store(va: int, data: bytes) -> Job:
    async def job(p: UserProcess) -> None:
        await p.store(va, data)

    return job


def _aobj_slot(k: Kernel, h: Holder, r: int, i: int) -> int:
    entry = pw.entry(h, r)
    assert entry.uvm_obj is not None
    return uvm_aobj.uao_find_swslot(k, entry.uvm_obj, (entry.offset >> 12) + i)


async def _big_aobj(
    env: KernelEnv, name: str, idxs: tuple[int, ...]
) -> tuple[Holder, list[VmPage]]:
    """A holder ``name`` (30 pages left free) of an 80-page shared region, whose aobj keeps its
    slots in a hash of 16-slot elements; pages ``idxs`` written and deactivated, the rest never
    touched. Returns the holder and those pages."""
    h = await pw.hold(env, name, pw.region("shared", 80, "big", touch=""), free=30)
    for i in idxs:
        await pw.run_on(env, h, _store(h.vas[0] + i * PAGE, b"x"))
    pgs = [pw.pg(env, h, 0, i) for i in idxs]
    pw.deactivate(env.k, pgs)
    return h, pgs


def _file_bytes(env: KernelEnv, name: str, i: int) -> bytes:
    vp = env.k.md.files[name]
    with open(vp.v_dev.disk.path, "rb") as f:
        f.seek(i * PAGE)
        return f.read(PAGE)


def _pageouts(logs: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [(e["npages"], e["result"]) for e in logs if e["event"] == "uvmpd_scan_inactive.pageout"]


async def _fill_swap_with_swap_only_pages(env: KernelEnv, h: Holder, r: int) -> None:
    """Page region ``r`` of ``h`` out and free it: its pages then live only in swap."""
    k = env.k
    pgs = pw.pgs(env, h, r)
    pw.deactivate(k, pgs)
    await _scan(k)
    await _settle(env)
    d = await _scan(k)
    assert d["pdfreed"] == len(pgs)
