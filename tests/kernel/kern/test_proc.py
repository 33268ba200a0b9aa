"""Processes: fork1, exit1, kthread_create, and the memory a process gives back.

Pins: style C13 (kernel threads via kthread_create; curproc bound at thread start; an
exception in a kernel thread is a panic), reference §1.11 (uvm_anfree: a busy page is only
marked PG_RELEASED; its I/O owner frees it), and the machine's promise that each process has
an address space of its own.
"""

from __future__ import annotations

import numpy as np
import pytest
import structlog

from emu.cpu import SegmentationFault
from kernel.kern.kern_kthread import kthread_create
from kernel.kern.kern_synch import RW_WRITE, rw_enter
from kernel.sys.proc import P_SYSTEM, curproc
from kernel.sys.systm import Panic
from kernel.uvm import uvm_anon
from kernel.uvm.uvm_page import PG_BUSY, PG_RELEASED

PAGE = 4096


def test_exit_frees_every_page_anon_and_slot(run_kernel):
    """exit1 → uvm_exit → uvmspace_free: every page, anon and swap slot of the process is
    released; free and swap counts return to their boot values."""

    async def work(p, env):
        va = await p.mmap(32 * PAGE)
        await p.touch(np.arange(va, va + 32 * PAGE, PAGE, dtype=np.uint64), True)
        for i in range(0, 32, 4):
            await env.page_out(env.anon_at(p, va + i * PAGE))
        assert env.k.uvmexp.swpgonly == 8 and env.k.uvmexp.swpginuse == 8

    async def body(k, env):
        free0 = k.uvmexp.free
        p = env.spawn(work, env=env)
        await env.wait(p)
        assert k.uvmexp.free == free0
        assert p.proc.p_vmspace is None and p.proc.p_stat == "zomb"

    env = run_kernel(body)
    u = env.k.uvmexp
    assert (u.swpginuse, u.swpgonly, u.active, u.inactive) == (0, 0, 0, 0)


def test_munmap_frees_only_the_unmapped_range(run_kernel):
    """munmap of the middle of a mapping clips the entry in three; only the pages of the
    middle go back (amap_splitref / amap_unref of the range)."""

    async def work(p, env):
        k = env.k
        va = await p.mmap(8 * PAGE)
        await p.touch(np.arange(va, va + 8 * PAGE, PAGE, dtype=np.uint64), True)
        await p.store(va + 7 * PAGE, b"tail")
        free = k.uvmexp.free
        await p.munmap(va + 2 * PAGE, 3 * PAGE)
        assert k.uvmexp.free == free + 3
        assert p.proc.p_vmspace.vm_map.nentries == 2
        with pytest.raises(SegmentationFault):
            await p.load(va + 3 * PAGE, 1)
        assert await p.load(va + 7 * PAGE, 4) == b"tail"
        await p.munmap(va, 8 * PAGE)  # the rest, holes included
        assert k.uvmexp.free == free + 8
        assert p.proc.p_vmspace.vm_map.nentries == 0

    async def body(k, env):
        await env.wait(env.spawn(work, env=env))

    run_kernel(body)


def test_processes_have_separate_address_spaces(run_kernel):
    """Each process has its own vmspace and pmap: the same virtual address maps different
    pages, and an address mapped only in another process faults."""
    addr = {}

    async def first(p):
        va = await p.mmap(PAGE)
        addr["va"] = va
        await p.store(va, b"secret")
        await p.compute(50_000_000)  # stay alive while the other one looks

    async def second(p):
        while "va" not in addr:
            await p.compute(1_000_000)
        with pytest.raises(SegmentationFault):
            await p.load(addr["va"], 6)
        va = await p.mmap(PAGE, addr=addr["va"])  # same address, own memory
        assert va == addr["va"]
        assert await p.load(va, 6) == bytes(6)

    async def body(k, env):
        a, b = env.spawn(first, "a"), env.spawn(second, "b")
        await env.wait(a, b)
        assert b.proc.error is not None  # it did see the SIGSEGV (caught)

    run_kernel(body)


def test_exit_with_a_page_under_io_releases_it_to_the_io_owner(run_kernel):
    """§1.11 uvm_anfree: "If the page is resident and busy: set PG_RELEASED, take an extra
    reference on the lock, return (the I/O owner finishes it)"; uvm_anon_release then frees
    page and anon."""
    held = {}

    async def work(p, env):
        va = await p.mmap(PAGE)
        await p.store(va, b"x")
        anon = env.anon_at(p, va)
        anon.an_page.pg_flags |= PG_BUSY  # an I/O is in flight
        held["anon"] = anon

    async def body(k, env):
        free0 = k.uvmexp.free
        await env.wait(env.spawn(work, env=env))
        anon = held["anon"]
        pg = anon.an_page
        assert pg is not None and pg.pg_flags & PG_RELEASED
        assert k.uvmexp.free == free0 - 1  # not freed yet
        # the I/O completes: its owner releases page and anon
        await rw_enter(k, anon.an_lock, RW_WRITE)
        uvm_anon.uvm_anon_release(k, anon)
        assert k.uvmexp.free == free0

    run_kernel(body)


def test_kthread_runs_with_its_own_curproc_and_log_binding(run_kernel):
    """Style C13/C18: kthread_create is the only way to start a kernel thread; curproc is
    the new P_SYSTEM proc and the thread's structlog context carries proc=name."""
    seen = {}

    async def thread(k):
        seen["p"] = curproc()
        seen["ctx"] = structlog.contextvars.get_contextvars()

    async def body(k, env):
        p = kthread_create(k, thread, k, name="kt0")
        await env.sleep(1000)
        assert seen["p"] is p and p.p_flag & P_SYSTEM and p in k.kthreads
        assert seen["ctx"]["proc"] == "kt0"
        assert curproc() is env.testproc  # the creator's binding is untouched
        assert "proc" not in structlog.contextvars.get_contextvars()

    run_kernel(body, start=False)


def test_exception_in_a_kernel_thread_is_a_panic(run_kernel):
    """Style C13: "An exception in any kernel thread cancels the rest and becomes a panic"."""

    async def broken(k):
        raise ValueError("boom")

    async def body(k, env):
        kthread_create(k, broken, k, name="broken")
        await env.sleep(1_000_000)

    with pytest.raises(Panic, match="kthread broken: ValueError: boom"):
        run_kernel(body, start=False)


def test_boot_starts_the_page_daemons(run_kernel):
    """init_main: the pagedaemon and aiodoned kernel threads run after boot."""

    async def body(k, env):
        await env.sleep(1000)
        names = [p.p_comm for p in k.kthreads]
        assert names == ["pagedaemon", "aiodoned"]
        assert k.uvm.pagedaemon_proc is k.kthreads[0]

    run_kernel(body)
