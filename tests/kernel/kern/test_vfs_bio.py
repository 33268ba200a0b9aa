"""vfs_bio: the buffer cache model the page daemon sees.

Pins docs/uvm-reference.md §1.12: BUFPAGES_DEFICIT and BUFPAGES_INACT, buflowpages (5 % of
DMA memory, at least BCACHE_MIN), bufbackpages (10 % of that, at most 100), the default size
(bufcachepercent), bufbackoff's shrink-by-max(size, bufbackpages)-not-below-the-floor rule
and its 0 / −1 result; and the port's choices: BCACHE_MIN scaled for tiny machines, a cache
that is off when bufcachepercent is 0.
"""

from __future__ import annotations

import pytest

from kernel.kern import vfs_bio
from kernel.kern.kern_kthread import kthread_create
from kernel.kern.vfs_bio import biodone
from kernel.kernel import KernelConfig
from kernel.sys.buf import B_ASYNC, B_BUSY, B_CALL, B_DONE, B_READ, B_WRITE, BFlags, Buf
from kernel.sys.pool import PR_NOWAIT, PR_WAITOK
from kernel.sys.systm import Panic
from kernel.uvm.uvm import UvmConstraintRange


def test_sizing_on_a_16mib_machine_follows_upstream(kenv):
    """buflowpages = max(5 % of 4096, BCACHE_MIN 128) = 204; bufbackpages = 20; the cache
    fills to 10 % (409 pages), which really leave the free lists (wired off the queues)."""
    env = kenv(npages=4096, swap_pages=0, bufcache=True, start=False)
    k = env.k
    bc = k.bufcache
    assert bc is not None
    assert (bc.buflowpages, bc.bufbackpages, bc.bufhighpages) == (204, 20, 409)
    assert bc.bcstats.numbufpages == bc.bcstats.numcleanpages == 409
    assert k.uvmexp.free == 4096 - 409
    assert k.uvmexp.wired == 0  # vfs_biomem.c wires with wire_count = 1, uncounted
    assert all(pg.wire_count == 1 and not pg.pg_flags & 0x70000 for pg in bc.pages)
    assert vfs_bio.BUFPAGES_DEFICIT(k) == 0
    assert vfs_bio.BUFPAGES_INACT(k) == 409 - 204


def test_bcache_min_is_scaled_down_on_tiny_machines(kenv):
    """PORT: BCACHE_MIN is at most npages/32, so a 256-page machine has a 12-page floor."""
    k = kenv(npages=256, swap_pages=0, bufcache=True, start=False).k
    bc = k.bufcache
    assert bc is not None
    assert (bc.buflowpages, bc.bufhighpages) == (12, 25)


def test_cache_off_means_zero_macros_and_failing_backoff(kenv):
    """§1.12: "For an emulator without a buffer cache: set both macros to 0 and make
    bufbackoff return failure"."""
    k = kenv(swap_pages=0, start=False).k
    assert k.bufcache is None
    assert vfs_bio.BUFPAGES_DEFICIT(k) == vfs_bio.BUFPAGES_INACT(k) == 0
    assert vfs_bio.bufbackoff(k, None, 4) == -1


def test_bufbackoff_shrinks_by_at_least_bufbackpages_down_to_the_floor(kenv):
    """§1.12: "shrink the DMA cache target by max(size, bufbackpages) but not below
    buflowpages; returns 0 if at least size pages were released, −1 otherwise"."""
    k = kenv(npages=4096, swap_pages=0, bufcache=True, start=False).k
    bc = k.bufcache
    assert bc is not None
    free = k.uvmexp.free
    assert vfs_bio.bufbackoff(k, None, 4) == 0  # shrinks by bufbackpages (20)
    assert bc.bcstats.numbufpages == 389 and k.uvmexp.free == free + 20
    assert vfs_bio.bufbackoff(k, None, 150) == 0
    assert bc.bcstats.numbufpages == 239
    assert vfs_bio.bufbackoff(k, None, 100) == -1  # only 35 left above the floor
    assert bc.bcstats.numbufpages == bc.buflowpages == 204
    assert vfs_bio.BUFPAGES_INACT(k) == 0 and vfs_bio.BUFPAGES_DEFICIT(k) == 0
    assert vfs_bio.bufbackoff(k, None, 1) == -1  # at the floor already
    assert k.uvmexp.free == free + 409 - 204


def test_deficit_counts_pages_below_the_floor(kenv):
    """BUFPAGES_DEFICIT = max(0, buflowpages − numbufpages)."""
    config = KernelConfig(bufcachepercent=1)  # 1 % of 4096 = 40 < floor 204
    k = kenv(npages=4096, swap_pages=0, config=config, start=False).k
    bc = k.bufcache
    assert bc is not None and bc.bufhighpages == 204  # raised to the floor
    vfs_bio.bufadjust(k, 100)
    assert vfs_bio.BUFPAGES_DEFICIT(k) == 104
    assert vfs_bio.buf_refill(k, 50) == 50
    assert vfs_bio.BUFPAGES_DEFICIT(k) == 54


def test_bufbackoff_for_memory_above_dma_only_fails(kenv):
    """§1.12: with a range that lies entirely above the DMA limit, return −1 (there is no
    high-memory cache here)."""
    k = kenv(npages=4096, swap_pages=0, bufcache=True, start=False).k
    above = UvmConstraintRange(1 << 32, (1 << 40) - 1)
    assert vfs_bio.bufbackoff(k, above, 4) == -1
    reaching = UvmConstraintRange(0, (1 << 40) - 1)
    assert vfs_bio.bufbackoff(k, reaching, 4) == 0


# --- biodone (vfs_bio.c: "biodone: mark I/O complete on a buffer. If a callback has been
# requested, e.g. the pageout daemon, do so. Otherwise, awaken waiting processes.") -------------


def test_biodone_sets_b_done_clears_b_call_and_calls_b_iodone() -> None:
    seen: list[BFlags] = []
    bp = Buf(b_flags=B_WRITE | B_BUSY | B_ASYNC | B_CALL, b_iodone=lambda b: seen.append(b.b_flags))
    biodone(bp)
    assert seen == [B_BUSY | B_ASYNC | B_DONE]
    assert bp.b_flags & B_BUSY  # the callee releases the buffer, not biodone


def test_biodone_calls_b_iodone_only_for_b_call_bufs() -> None:
    seen: list[Buf] = []
    bp = Buf(b_flags=B_READ | B_BUSY, b_iodone=seen.append)
    biodone(bp)
    assert seen == [] and bp.b_flags == B_READ | B_BUSY | B_DONE


def test_biodone_twice_is_an_error() -> None:
    bp = Buf(b_flags=B_READ)
    biodone(bp)
    with pytest.raises(Panic, match=r"^biodone already"):
        biodone(bp)


# --- the buffer pool (pool_get/pool_put(&bufpool), pool_sethardlimit) --------------------------


def test_bufinit_sets_up_the_buffer_pool_even_without_a_cache(kenv):
    """pool_init(&bufpool) is in bufinit, whatever the cache's size (PORT: only counted)."""
    k = kenv(npages=256, swap_pages=16, bufcache=False, start=False).k
    assert k.bufcache is None
    assert isinstance(k.bufpool, vfs_bio.Bufpool)
    assert (k.bufpool.pr_nout, k.bufpool.pr_hardlimit) == (0, None)


def test_a_nowait_get_at_the_hard_limit_fails_and_a_waitok_get_sleeps_until_a_put(run_kernel):
    """pool_get(PR_NOWAIT) returns NULL at the hard limit; PR_WAITOK sleeps until a pool_put."""
    got = []

    async def waiter(k):
        got.append(await vfs_bio.bufpool_get(k, PR_WAITOK))

    async def body(k, env):
        k.bufpool.pr_hardlimit = 1
        assert await vfs_bio.bufpool_get(k, PR_NOWAIT)
        assert not await vfs_bio.bufpool_get(k, PR_NOWAIT)
        kthread_create(k, waiter, k, name="waiter")
        await env.sleep(1000)
        assert got == [] and k.bufpool.pr_nout == 1
        vfs_bio.bufpool_put(k)
        await env.sleep(1000)
        assert got == [True] and k.bufpool.pr_nout == 1
        vfs_bio.bufpool_put(k)
        k.bufpool.pr_hardlimit = None
        assert k.bufpool.pr_nout == 0

    run_kernel(body, start=False)
