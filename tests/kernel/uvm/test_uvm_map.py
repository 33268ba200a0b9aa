"""uvm_map / uvm_mmap: the address space of a process.

Pins the process API of emu/api.py (mmap of anon, shared and file memory; MAP_FIXED; munmap)
as uvm_map.c implements it: entries sorted by address, clipping on partial unmap, the map
version (timestamp) bumped on every write lock, which uvm_fault's relock relies on.
"""

from __future__ import annotations

import pytest

from kernel.sys.errno import EINVAL
from kernel.sys.mman import MAP_ANON, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE
from kernel.uvm import uvm_map, uvm_mmap

PAGE = 4096
RW = PROT_READ | PROT_WRITE


def test_addresses_are_first_fit_from_the_mmap_base(run_kernel):
    """PORT uvm_map_findspace: deterministic first fit from VM_MMAP_BASE; a hole left by
    munmap is reused."""

    async def work(p, env):
        a = await p.mmap(2 * PAGE)
        b = await p.mmap(PAGE)
        c = await p.mmap(3 * PAGE)
        assert (a, b, c) == (
            uvm_map.VM_MMAP_BASE,
            uvm_map.VM_MMAP_BASE + 2 * PAGE,
            uvm_map.VM_MMAP_BASE + 3 * PAGE,
        )
        await p.munmap(b, PAGE)
        assert await p.mmap(PAGE) == b
        assert await p.mmap(PAGE + 1) == c + 3 * PAGE  # rounded up to two pages

    async def body(k, env):
        await env.wait(env.spawn(work, env=env))

    run_kernel(body)


def test_map_fixed_replaces_what_was_there(run_kernel):
    """MAP_FIXED maps exactly at addr, unmapping (and freeing) what was there."""

    async def work(p, env):
        k = env.k
        va = await p.mmap(4 * PAGE)
        await p.store(va + PAGE, b"old")
        free = k.uvmexp.free
        assert await p.mmap(PAGE, addr=va + PAGE) == va + PAGE
        assert k.uvmexp.free == free + 1
        assert await p.load(va + PAGE, 3) == bytes(3)
        assert p.proc.p_vmspace.vm_map.nentries == 3

    async def body(k, env):
        await env.wait(env.spawn(work, env=env))

    run_kernel(body)


def test_map_write_lock_bumps_the_timestamp(run_kernel):
    """vm_map_lock bumps map->timestamp: uvmfault_relock detects any change of the map."""

    async def work(p, env):
        map = p.proc.p_vmspace.vm_map
        t0 = map.timestamp
        va = await p.mmap(PAGE)
        assert map.timestamp == t0 + 1
        await p.munmap(va, PAGE)
        assert map.timestamp == t0 + 2

    async def body(k, env):
        await env.wait(env.spawn(work, env=env))

    run_kernel(body)


def test_sys_mmap_and_munmap_refuse_bad_arguments(run_kernel):
    """sys_mmap / sys_munmap: EINVAL for unaligned fixed addresses, zero sizes, shared and
    private at once, an offset inside a page, a handle with MAP_ANON."""

    async def work(p, env):
        k, proc = env.k, p.proc
        bad = [
            (PAGE + 1, PAGE, MAP_ANON | MAP_PRIVATE | MAP_FIXED, 0),
            (0, 0, MAP_ANON | MAP_PRIVATE, 0),
            (0, PAGE, MAP_ANON | MAP_SHARED | MAP_PRIVATE, 0),
            (0, PAGE, MAP_ANON | MAP_PRIVATE, 5),
        ]
        for addr, size, flags, pos in bad:
            err, _ = await uvm_mmap.sys_mmap(k, proc, addr, size, RW, flags, None, pos)
            assert err == EINVAL
        assert await uvm_mmap.sys_munmap(k, proc, 123, PAGE) == EINVAL
        err, va = await uvm_mmap.sys_mmap(k, proc, 0, PAGE, RW, MAP_ANON | MAP_SHARED, None, 0)
        assert err == 0  # an anonymous shared mapping: a fresh aobj
        entry = uvm_map.uvm_map_lookup_entry(proc.p_vmspace.vm_map, va)
        assert entry is not None and entry.uvm_obj is not None and entry.aref.ar_amap is None
        with pytest.raises(OSError):
            await p.munmap(va + 1, PAGE)

    async def body(k, env):
        await env.wait(env.spawn(work, env=env))

    run_kernel(body)


def test_shared_region_outlives_its_mappings(run_kernel):
    """A named shared region (an aobj held by the machine) keeps its data after every
    process that mapped it has exited."""

    async def w(p):
        va = await p.mmap(PAGE, "shared", name="r")
        await p.store(va, b"persist")

    async def r(p):
        va = await p.mmap(PAGE, "shared", name="r")
        assert await p.load(va, 7) == b"persist"

    async def body(k, env):
        await env.wait(env.spawn(w, "w"))
        await env.wait(env.spawn(r, "r"))

    run_kernel(body)
