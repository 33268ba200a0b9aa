"""uvm_fault: the fault kinds of the emulated machine, pinned to the reference.

Each test names the rule it pins: ARCHITECTURE.md "The paths that matter" (zero-fill, soft,
major, busy wait) and docs/uvm-reference.md §1.5 (allocation failure), §1.7 (write through a
read-only mapping), §1.14 (swap-in round trip).
"""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

import kernel.uvm.uvm_swap as uvm_swap
from devices.faults import FaultConfig
from emu.cpu import BusError, MemoryFault, SegmentationFault
from kernel.arch.emu import machdep
from kernel.kern.kern_synch import wakeup
from kernel.sys.mman import PROT_NONE, PROT_READ
from kernel.uvm.uvm_page import (
    PG_BUSY,
    PG_CLEAN,
    PG_FAKE,
    PG_RELEASED,
    PG_WANTED,
    PQ_ACTIVE,
    PQ_INACTIVE,
    uvm_lock_pageq,
    uvm_pagealloc,
    uvm_pagedeactivate,
    uvm_pagefree,
    uvm_unlock_pageq,
)
from kernel.uvm.uvm_swap import SWSLOT_BAD

PAGE = 4096


def _kinds(k):
    u = k.uvmexp
    return u.flt_zero, u.flt_soft, u.flt_major, u.flt_busywait


def test_first_touch_zero_fills_and_activates(run_kernel):
    """ARCHITECTURE "zero-fill on first touch" (uvm_pagealloc with UVM_PGA_ZERO, activate):
    the page reads as zeros, is dirty ("zeroed pages are dirty", §1.5) and active."""

    async def work(p, env):
        va = await p.mmap(4 * PAGE)
        assert await p.load(va + 100, 8) == bytes(8)
        await p.store(va + PAGE, b"x")
        pg = env.anon_at(p, va).an_page
        assert pg.pg_flags & PQ_ACTIVE
        assert not pg.pg_flags & (PG_CLEAN | PG_BUSY | PG_FAKE)
        assert env.anon_at(p, va + 2 * PAGE) is None  # untouched: no anon yet

    async def body(k, env):
        p = env.spawn(work, "w", env=env)
        await env.wait(p)
        assert p.proc.stats["flt_zero"] == 2
        assert p.proc.stats["faults"] == 2

    env = run_kernel(body)
    u = env.k.uvmexp
    assert _kinds(env.k) == (2, 0, 0, 0)
    assert u.flt_przero == 2 and u.faults == 2
    assert u.free == u.npages  # the exit gave everything back


def test_soft_fault_reenters_and_reactivates(run_kernel):
    """ARCHITECTURE "soft fault (page resident but unmapped, e.g. after deactivation)
    re-enters the mapping and reactivates" (the daemon's A5: PROT_NONE, deactivate)."""

    async def work(p, env):
        va = await p.mmap(PAGE)
        await p.store(va, b"keep")
        pg = env.anon_at(p, va).an_page
        k = env.k
        uvm_lock_pageq(k)
        k.pmap.pmap_page_protect(pg, PROT_NONE)
        uvm_pagedeactivate(k, pg)
        uvm_unlock_pageq(k)
        assert pg.pg_flags & PQ_INACTIVE and not k.pmap.pmap_page_mapped(pg)
        assert await p.load(va, 4) == b"keep"
        assert env.anon_at(p, va).an_page is pg  # the same page, mapped again
        assert pg.pg_flags & PQ_ACTIVE and k.pmap.pmap_page_mapped(pg) == 1

    async def body(k, env):
        p = env.spawn(work, env=env)
        await env.wait(p)
        assert p.proc.stats["flt_soft"] == 1

    env = run_kernel(body)
    assert _kinds(env.k) == (1, 1, 0, 0)
    assert env.k.uvmexp.flt_anon == 1


def test_write_through_read_only_mapping_reenters_writable(run_kernel):
    """§1.7: "A write through a read-only mapping faults; uvm_fault then re-enters a
    writable mapping (the anon/object page stays in place) and activates the page"."""

    async def work(p, env):
        va = await p.mmap(PAGE)
        await p.store(va, b"a")
        pg = env.anon_at(p, va).an_page
        env.k.pmap.pmap_page_protect(pg, PROT_READ)
        assert await p.load(va, 1) == b"a"  # reads still go through
        await p.store(va, b"b")
        assert env.anon_at(p, va).an_page is pg
        assert env.k.pmap.pmap_is_writable(p.proc.p_vmspace.vm_map.pmap, va)

    async def body(k, env):
        await env.wait(env.spawn(work, env=env))

    env = run_kernel(body)
    assert _kinds(env.k) == (1, 1, 0, 0)


def test_major_fault_reads_the_page_back_clean_with_its_slot(run_kernel):
    """§1.14 steps 3-5: a major fault allocates a page, reads the slot synchronously
    (nswget +1, swpgonly -1), clears the pmap modify bit and activates the page, which
    "is still PG_CLEAN and still owns its slot"."""
    data = bytes(range(256)) * 16

    async def work(p, env):
        va = await p.mmap(2 * PAGE)
        await p.store(va, data)
        await p.store(va + PAGE, b"other")
        anon = env.anon_at(p, va)
        slot = await env.page_out(anon)
        k = env.k
        assert k.uvmexp.swpgonly == 1 and anon.an_page is None
        nswget = k.uvmexp.nswget
        assert await p.load(va, PAGE) == data
        pg = anon.an_page
        assert pg is not None and anon.an_swslot == slot
        assert pg.pg_flags & PG_CLEAN and pg.pg_flags & PQ_ACTIVE
        assert not pg.pg_flags & (PG_BUSY | PG_FAKE)
        assert not k.pmap.pmap_is_modified(pg)
        assert k.uvmexp.swpgonly == 0 and k.uvmexp.nswget == nswget + 1
        # a write sets the modify bit; PG_CLEAN stays until deactivation re-syncs it
        await p.store(va, b"Z")
        assert k.pmap.pmap_is_modified(pg) and pg.pg_flags & PG_CLEAN
        uvm_lock_pageq(k)
        uvm_pagedeactivate(k, pg)
        uvm_unlock_pageq(k)
        assert not pg.pg_flags & PG_CLEAN

    async def body(k, env):
        p = env.spawn(work, env=env)
        await env.wait(p)
        assert p.proc.stats["flt_major"] == 1 and p.proc.stats["majflt"] == 1

    env = run_kernel(body)
    u = env.k.uvmexp
    assert _kinds(env.k) == (2, 0, 1, 0)
    assert u.pageins == 1 and u.swpginuse == 0  # exit freed the slot


def test_write_to_busy_page_waits_for_it(run_kernel):
    """ARCHITECTURE "write to a page under pageout (write-protected, busy) waits for it
    (PG_WANTED)": uvmfault_anonget sets PG_WANTED and sleeps on the page until the I/O
    owner wakes it, then retries."""
    shared = {}

    async def work(p, env):
        va = await p.mmap(PAGE)
        await p.store(va, b"1")
        pg = env.anon_at(p, va).an_page
        pg.pg_flags |= PG_BUSY  # as the daemon does for a pageout (I11)
        env.k.pmap.pmap_page_protect(pg, PROT_READ)
        shared["pg"] = pg
        await p.store(va, b"2")  # sleeps until the "I/O" is done
        shared["done_at"] = env.clock.now
        assert await p.load(va, 1) == b"2"

    async def body(k, env):
        p = env.spawn(work, env=env)
        await env.sleep(5_000_000)
        pg = shared["pg"]
        assert pg.pg_flags & PG_WANTED and p.proc.p_wmesg == "anonget2"
        assert "done_at" not in shared
        pg.pg_flags &= ~(PG_BUSY | PG_WANTED)  # the I/O completes (uvm_page_unbusy)
        wakeup(k, pg)
        await env.wait(p)
        assert shared["done_at"] >= 5_000_000
        assert p.proc.stats["flt_busywait"] == 1

    env = run_kernel(body)
    assert _kinds(env.k) == (1, 1, 0, 1)
    assert env.k.uvmexp.fltpgwait == 1


def test_swap_read_error_is_a_bus_error_and_marks_the_slot_bad(run_kernel):
    """§1.14 step 4: "On I/O error it detaches the page from the anon, marks the slot bad
    (an_swslot = SWSLOT_BAD, slot not freed), frees the page and returns ERROR"; the
    process gets SIGBUS."""

    async def work(p, env):
        va = await p.mmap(PAGE)
        await p.store(va, b"lost")
        anon = env.anon_at(p, va)
        await env.page_out(anon)
        free = env.k.uvmexp.free
        with pytest.raises(BusError):
            await p.load(va, 4)
        assert anon.an_swslot == SWSLOT_BAD and anon.an_page is None
        assert env.k.uvmexp.free == free  # the page read into was freed again
        assert env.k.uvmexp.swpginuse == 1  # the bad slot stays allocated
        with pytest.raises(BusError):  # and it stays unreadable
            await p.load(va, 4)

    async def body(k, env):
        p = env.spawn(work, env=env)
        await env.wait(p)
        assert isinstance(p.proc.error, BusError)

    env = run_kernel(body, faults=FaultConfig(fail_read_rate=1.0))
    assert env.k.uvmexp.flt_major == 0  # failed faults are not counted as done


def test_a_swap_in_counts_nswget_and_never_pgswapin(run_kernel):
    """§1.14 step 3: uvm_swap_get counts "`nswget` +1"; `uvmexp.pgswapin` is never counted
    by OpenBSD (uvm_swap.c has no pgswapin++, 2022 to 2026; only vmstat and friends read it),
    so it stays 0 here too (docs/summary-schema.md)."""

    async def work(p, env):
        va = await p.mmap(PAGE)
        await p.store(va, b"back")
        await env.page_out(env.anon_at(p, va))
        assert await p.load(va, 4) == b"back"

    async def body(k, env):
        p = env.spawn(work, env=env)
        await env.wait(p)

    env = run_kernel(body)
    assert env.k.uvmexp.nswget == 1 and env.k.uvmexp.flt_major == 1
    assert env.k.uvmexp.pgswapin == 0


def test_a_lost_anon_page_counts_once_toward_swap_full(run_kernel):
    """Issue 12 item 1: after a failed swap-in the anon's page stays counted in swpgonly and
    its slot is bad (§1.14 steps 3-4), but that is one unusable slot: on a 2-slot swap,
    uvm_swapisfull stays false and a fault-time slot is still to be had."""

    async def work(p, env):
        va = await p.mmap(PAGE)
        await p.store(va, b"lost")
        await env.page_out(env.anon_at(p, va))
        with pytest.raises(BusError):
            await p.load(va, 4)
        k = env.k
        assert (k.uvmexp.swpgonly, k.uvmexp.swpginuse) == (1, 1)
        assert not uvm_swap.uvm_swapisfull(k)
        slot, _ = uvm_swap.uvm_swap_alloc(k, 1, False)
        assert slot == 2
        uvm_swap.uvm_swap_free(k, slot, 1)

    async def body(k, env):
        p = env.spawn(work, env=env)
        await env.wait(p)
        assert isinstance(p.proc.error, BusError)
        assert k.uvmexp.swpgonly == 0 and k.swap.swpgonlybad == 0  # counted out at exit

    run_kernel(body, swap_pages=2, faults=FaultConfig(fail_read_rate=1.0))


def test_a_lost_anon_page_counts_once_toward_1_154s_swap_full(run_kernel):
    """Issue 12 item 1 for the 1.154 daemon's uvm_swapisfull (uvm_swap.c 1.179: swpgonly at
    99 % of swpages): the slot of a failed swap-in is one unusable slot, not two. 98 pages
    only in swap on a 100-slot swap (the threshold is 99), then one of them fails to read
    back: 98 unusable slots, so swap is not full; counting the bad slot on top of its page
    in swpgonly read 99, full."""

    async def work(p, env):
        n = 98
        va = await p.mmap(n * PAGE)
        for i in range(n):
            await p.store(va + i * PAGE, b"lost")
        for i in range(n):
            await env.page_out(env.anon_at(p, va + i * PAGE))
        k = env.k
        assert (k.uvmexp.swpgonly, k.uvmexp.swpginuse, k.uvmexp.swpages) == (98, 98, 100)
        assert not uvm_swap.uvm_swapisfull_154(k)
        with pytest.raises(BusError):
            await p.load(va, 4)
        assert (k.uvmexp.swpgonly, k.swap.swpgonlybad) == (98, 1)
        assert not uvm_swap.uvm_swapisfull_154(k)
        k.uvmexp.swpgonly += 1  # one more page only in swap reaches the threshold
        assert uvm_swap.uvm_swapisfull_154(k)
        k.uvmexp.swpgonly -= 1

    async def body(k, env):
        p = env.spawn(work, env=env)
        await env.wait(p)
        assert isinstance(p.proc.error, BusError)

    run_kernel(body, swap_pages=100, faults=FaultConfig(fail_read_rate=1.0))


def test_an_anon_freed_while_its_swap_in_fails_is_counted_out_of_swpgonly(run_kernel):
    """§1.14 steps 3-4 with the anon freed during the read: "uvm_swap_get ... OK → `swpgonly`
    −1" (a failed read leaves it counted), "If the page was released meanwhile, it frees the
    anon and returns REFAULT". Another thread unmaps the page while the fault sleeps on a
    read that fails: uvm_anfree finds the page busy and only marks it PG_RELEASED (§1.11),
    so the fault's uvm_anon_release frees page, anon and slot. The data, only in swap until
    then, is gone: swpgonly must drop back to 0 (PORT, docs/port.md known bugs: upstream
    since uvm_anon_release stopped calling uvm_anfree leaves it counted forever)."""
    seen = {}

    async def work(p, env):
        va = await p.mmap(PAGE)
        await p.store(va, b"gone")
        anon = env.anon_at(p, va)
        await env.page_out(anon)
        seen["va"], seen["anon"] = va, anon
        with pytest.raises(SegmentationFault):  # refault: the address is unmapped by now
            await p.load(va, 4)

    async def body(k, env):
        p = env.spawn(work, env=env)
        while "anon" not in seen or seen["anon"].an_page is None:  # the read is in flight
            await env.sleep(100_000)
        anon, pg = seen["anon"], seen["anon"].an_page
        assert pg.pg_flags & PG_BUSY and k.uvmexp.swpgonly == 1
        await machdep.munmap(k, p.proc, seen["va"], PAGE)  # another thread of the process
        assert pg.pg_flags & PG_RELEASED and anon.an_ref == 0
        assert k.uvmexp.swpgonly == 1  # uvm_anfree left the busy page to the I/O owner
        await env.wait(p)
        u = k.uvmexp
        assert (u.nswget, u.fltpgrele, anon.an_page, anon.an_swslot) == (1, 1, None, 0)
        assert (u.swpgonly, k.swap.swpgonlybad, u.swpginuse) == (0, 0, 0)
        assert u.free == u.npages

    run_kernel(body, faults=FaultConfig(fail_read_rate=1.0, extra_latency_ns=5_000_000))


def test_an_anon_with_a_bad_slot_freed_during_a_refault_is_counted_out_of_swpgonly(run_kernel):
    """The same with an anon whose slot is already SWSLOT_BAD (an earlier swap-in failed,
    §1.14 step 4; its page stays counted in swpgonly, its slot in swpgonlybad): "a bad slot →
    ERROR" at once, and another CPU unmaps the page before the fault relocks (the
    ``uvmfault_anonget.io`` window of kern_synch.cpu_race). uvm_anon_release forgets the bad
    slot; the lost page must leave swpgonly and swpgonlybad with it."""
    seen = {}

    async def race(where):
        if where == "uvmfault_anonget.io" and "va" in seen:
            p = seen.pop("p")
            await machdep.munmap(p.k, p.proc, seen["va"], PAGE)
            seen["released"] = p.k.uvmexp.swpgonly, seen["anon"].an_page.pg_flags & PG_RELEASED

    async def work(p, env):
        va = await p.mmap(PAGE)
        await p.store(va, b"gone")
        anon = env.anon_at(p, va)
        await env.page_out(anon)
        with pytest.raises(BusError):
            await p.load(va, 4)
        k = env.k
        assert anon.an_swslot == SWSLOT_BAD and (k.uvmexp.swpgonly, k.swap.swpgonlybad) == (1, 1)
        seen.update(p=p, va=va, anon=anon)
        with pytest.raises(SegmentationFault):  # refault: the address is unmapped by now
            await p.load(va, 4)

    async def body(k, env):
        k.hooks["cpu.race"] = race
        p = env.spawn(work, env=env)
        await env.wait(p)
        assert seen["released"] == (1, PG_RELEASED)  # uvm_anfree left it to the fault
        u, anon = k.uvmexp, seen["anon"]
        assert (u.nswget, u.fltpgrele, anon.an_page, anon.an_swslot) == (2, 1, None, 0)
        assert (u.swpgonly, k.swap.swpgonlybad) == (0, 0)
        assert u.swpginuse == 1  # the bad slot stays allocated, never to be used again
        assert u.free == u.npages

    run_kernel(body, faults=FaultConfig(fail_read_rate=1.0))


@pytest.mark.parametrize("fail", [False, True])
def test_a_major_fault_that_succeeds_logs_one_pagein_event(run_kernel, fail):
    """docs/log-schema.md `uvm_fault.pagein`: one line per major fault that succeeded, with
    the process, the faulting address and the fault's virtual latency; a page-in that fails
    (SIGBUS) logs none."""
    seen = {}

    async def work(p, env):
        va = await p.mmap(PAGE)
        await p.store(va, b"back")
        await env.page_out(env.anon_at(p, va))
        seen["va"] = va + 5
        with capture_logs() as logs:
            try:
                await p.load(va + 5, 1)
            except BusError:
                assert fail
        seen["logs"] = [e for e in logs if e["event"] == "uvm_fault.pagein"]

    async def body(k, env):
        p = env.spawn(work, env=env)
        await env.wait(p)
        seen["pid"] = p.pid

    kw = {"faults": FaultConfig(fail_read_rate=1.0)} if fail else {}
    env = run_kernel(body, **kw)
    if fail:
        assert seen["logs"] == []
        return
    costs = env.k.config.costs
    (ev,) = seen["logs"]
    assert (ev["pid"], ev["vaddr"], ev["ok"]) == (seen["pid"], seen["va"], True)
    assert ev["latency_ns"] >= costs.fault_ns + costs.pagein_ns


def test_unmapped_address_is_a_segmentation_fault(run_kernel):
    """uvm_fault returns EFAULT when no map entry covers the address (SIGSEGV)."""

    async def work(p, env):
        with pytest.raises(SegmentationFault):
            await p.load(0x5000_0000_0000, 1)

    async def body(k, env):
        await env.wait(env.spawn(work, env=env))

    env = run_kernel(body)
    assert env.k.uvmexp.faults == 1


def test_write_to_read_only_mapping_is_a_segmentation_fault(run_kernel):
    """uvm_fault_check: "(entry->protection & access_type) != access_type" → EACCES."""

    async def work(p, env):
        va = await p.mmap(PAGE, writable=False)
        assert await p.load(va, 2) == b"\0\0"
        with pytest.raises(SegmentationFault, match="invalid permissions"):
            await p.store(va, b"x")

    async def body(k, env):
        await env.wait(env.spawn(work, env=env))

    run_kernel(body)


def test_uncaught_fault_kills_only_that_process(run_kernel):
    """An uncaught signal ends the process through exit1 (its memory is freed); the
    machine and the other processes go on."""

    async def bad(p):
        va = await p.mmap(4 * PAGE)
        await p.store(va, b"x")
        await p.load(0x10, 1)

    async def good(p):
        va = await p.mmap(PAGE)
        await p.store(va, b"y")

    async def body(k, env):
        b, g = env.spawn(bad, "bad"), env.spawn(good, "good")
        await env.wait(b, g)
        assert isinstance(b.proc.error, SegmentationFault)
        assert g.proc.error is None
        assert b.proc.p_pid not in k.procs

    env = run_kernel(body)
    assert env.k.uvmexp.free == env.k.uvmexp.npages


def test_out_of_memory_fault_waits_then_retries(run_kernel):
    """§1.5/§1.14: allocation failure in the fault → unlock everything, uvm_wait(), retry:
    the process sleeps until pages are freed, then completes (fltnoram counts it)."""
    held = []

    async def work(p, env):
        va = await p.mmap(PAGE)
        await p.store(va, b"late")

    async def body(k, env):
        # take memory down to the kernel reserve, the way a kernel allocator would
        while k.uvmexp.free > k.uvmexp.reserve_kernel + 1:
            pg = uvm_pagealloc(k, None, 0, None, 0)
            assert pg is not None
            held.append(pg)
        p = env.spawn(work, env=env)
        await env.sleep(1_000_000)
        assert p.proc.p_stat == "sleep" and k.uvmexp.fltnoram >= 1
        uvm_lock_pageq(k)
        for pg in held:
            uvm_pagefree(k, pg)  # every free wakes &uvmexp.free
        uvm_unlock_pageq(k)
        await env.wait(p)

    env = run_kernel(body, npages=64)
    assert env.k.uvmexp.flt_zero == 1


def test_out_of_memory_without_swap_kills_the_process(run_kernel):
    """uvmfault_promote: out of RAM and uvm_swapisfull() (no swap: swpgonly == swpages == 0)
    → ENOMEM: "killed: out of swap"."""

    async def hog(p):
        va = await p.mmap(64 * PAGE)
        for i in range(64):
            await p.store(va + i * PAGE, b"x")

    async def body(k, env):
        p = env.spawn(hog, "hog")
        await env.wait(p)
        assert type(p.proc.error) is MemoryFault
        assert "out of swap" in str(p.proc.error)

    env = run_kernel(body, npages=48, swap_pages=0)
    assert env.k.uvmexp.free == 48


def test_shared_region_is_zero_filled_once_then_soft(run_kernel):
    """Shared anonymous memory is an aobj (uao_get): the first process's touch zero-fills
    the page, the second maps the same resident page (a soft fault) and sees the data."""

    async def writer(p):
        va = await p.mmap(2 * PAGE, "shared", name="shm")
        await p.store(va, b"hello")

    async def reader(p):
        va = await p.mmap(2 * PAGE, "shared", name="shm")
        assert await p.load(va, 5) == b"hello"

    async def body(k, env):
        w = env.spawn(writer, "writer")
        await env.wait(w)
        r = env.spawn(reader, "reader")
        await env.wait(r)
        assert w.proc.stats["flt_zero"] == 1 and r.proc.stats["flt_soft"] == 1

    env = run_kernel(body)
    assert env.k.uvmexp.flt_obj == 2
    assert env.k.uvmexp.free == env.k.uvmexp.npages - 1  # the region keeps its page


def test_file_mapping_reads_the_file(run_kernel):
    """A file mapping faults its pages in through the vnode pager (a major fault), and
    what a process wrote is what the next one reads."""

    async def writer(p):
        va = await p.mmap(PAGE, "file", name="data.bin")
        await p.store(va, b"on disk")

    async def reader(p):
        va = await p.mmap(PAGE, "file", name="data.bin")
        assert await p.load(va, 7) == b"on disk"

    async def body(k, env):
        await env.wait(env.spawn(writer, "w"))
        await env.wait(env.spawn(reader, "r"))

    env = run_kernel(body)
    assert env.k.uvmexp.flt_major >= 1


def test_lone_process_under_memory_pressure_makes_progress(run_kernel):
    """ARCHITECTURE "The paths that matter": with the real page daemon, a process that
    touches more memory than the machine has gets its pages paged out and back, intact."""
    n = 160

    async def work(p):
        va = await p.mmap(n * PAGE)
        for i in range(n):
            await p.store(va + i * PAGE, i.to_bytes(4, "little") * 8)
        for _ in range(2):
            for i in range(n):
                assert await p.load(va + i * PAGE, 32) == i.to_bytes(4, "little") * 8

    async def body(k, env):
        p = env.spawn(work, "big")
        await env.wait(p)
        assert p.proc.error is None
        assert p.proc.stats["flt_major"] == k.uvmexp.flt_major > 0
        await env.settle()

    env = run_kernel(body, npages=128, swap_pages=512)
    u = env.k.uvmexp
    assert u.flt_zero == n and u.pdpageouts > 0 and u.nswget == u.flt_major
    assert (u.free, u.swpginuse, u.swpgonly) == (u.npages, 0, 0)
