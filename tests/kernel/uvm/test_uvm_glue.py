"""uvm_glue.py: uvm_swapout_threads, what the page daemon calls with __HAVE_PMAP_COLLECT.

Pins docs/uvm-reference.md §1.13 (a process whose thread has slept at least maxslp seconds
gets its pmap collected) with §1.7's pmap_collect, which the emulated pmap implements as
alpha does: every mapping of the process goes, so the daemon can reclaim its pages.
"""

from __future__ import annotations

from typing import Any

import kernel.uvm.uvm_glue as uvm_glue
from kernel.kern.kern_synch import PVM, tsleep_nsec
from kernel.kernel import KernelConfig

PAGE = 4096
NPG = 32


def _data(i: int) -> bytes:
    return (f"sleeper page {i} ".encode() * 300)[:PAGE]


async def _sleeper(p: Any, out: dict[str, Any]) -> None:
    """Writes NPG pages, sleeps 30 s (nobody wakes it), then reads them all back."""
    va = await p.mmap(NPG * PAGE)
    for i in range(NPG):
        await p.store(va + i * PAGE, _data(i))
    out["va"] = va
    await tsleep_nsec(p.k, ("sleeper", p.pid), PVM, "sleeper", 30_000_000_000)
    for i in range(NPG):
        p.verify(va + i * PAGE, _data(i), await p.load(va + i * PAGE, PAGE))
    out["done"] = True


async def _hog(p: Any, n: int) -> None:
    va = await p.mmap(n * PAGE)
    for i in range(n):
        await p.store(va + i * PAGE, b"hog %d" % i)


def test_swapout_threads_collects_a_long_sleeper_and_the_daemon_reclaims_its_pages(
    run_kernel: Any,
) -> None:
    """§1.13: "if that [sleep time] is ≥ `maxslp` it calls `pmap_collect` on the process's
    pmap": the sleeper loses every mapping (issue 12 item 8: no pmap implemented it, so the
    call did nothing); under pressure the daemon (which calls uvm_swapout_threads itself
    when free < freetarg) pages all its pages out; woken, the sleeper faults them back in
    from swap, intact."""
    out: dict[str, Any] = {}

    async def body(k: Any, env: Any) -> None:
        s = env.spawn(_sleeper, "sleeper", out=out)
        await env.sleep(21_000_000_000)  # more than maxslp (20 s)
        pm = s.proc.p_vmspace.vm_map.pmap
        assert k.pmap.pmap_resident_count(pm) == NPG
        uvm_glue.uvm_swapout_threads(k)
        assert k.pmap.pmap_resident_count(pm) == 0
        anons = [env.anon_at(s, out["va"] + i * PAGE) for i in range(NPG)]
        assert all(a.an_page is not None for a in anons)  # still resident, no longer mapped
        major = k.uvmexp.flt_major
        h = env.spawn(_hog, "hog", n=k.uvmexp.npages)
        await env.wait(h)
        await env.settle()
        assert k.uvmexp.pdswout > 0
        assert all(a.an_page is None and a.an_swslot > 0 for a in anons)  # reclaimed
        await env.wait(s)
        assert out.get("done") and k.uvmexp.flt_major - major >= NPG

    run_kernel(body, config=KernelConfig(have_pmap_collect=True, bufcachepercent=0))
