"""uvm_swap.py: slot allocation, bad slots, accounting and swap I/O.

Each test quotes the rule of docs/uvm-reference.md it pins (§1.9 swap space and I/O, §1.14 the
swap-in round trip). Kernels are real (tests/kernel/conftest.py); extra swap devices are
sparse images next to the fixture's.
"""

from __future__ import annotations

from typing import Any

import pytest

import kernel.uvm.uvm_anon as uvm_anon
import kernel.uvm.uvm_page as uvm_page
import kernel.uvm.uvm_pager as uvm_pager
import kernel.uvm.uvm_swap as uvm_swap
from devices.faults import FaultConfig
from devices.imagedisk import ImageDisk
from devices.timing import NoneModel
from kernel.arch.emu import swapdev
from kernel.kern.kern_synch import RW_WRITE, RWLock, rw_enter, rw_exit
from kernel.kernel import Kernel, KernelConfig
from kernel.sys.errno import EBUSY
from kernel.sys.systm import Panic
from kernel.uvm.uvm_swap import SWSLOT_BAD

PAGE = 4096


def _add_disk(env: Any, name: str, npages: int, priority: int, **kw: Any) -> swapdev.EmuDisk:
    """A second (third...) swap device on the fixture's machine, enabled at ``priority``."""
    disk = ImageDisk(env.tmp_path / f"{name}.img", npages, env.clock, NoneModel(), name=name, **kw)
    disk.create()
    env.disks.append(disk)  # closed by the fixture
    dev = swapdev.EmuDisk(disk, env.ram)
    assert uvm_swap.swap_on(env.k, dev, priority) == 0
    return dev


def _quiet(**kw: Any) -> KernelConfig:
    """Kernel config for tests that hold anons of their own (uvm_check only at teardown)."""
    return KernelConfig(bufcachepercent=0, check_every_pass=False, **kw)


def _anon_page(k: Kernel, env: Any, data: bytes) -> tuple[uvm_anon.VmAnon, uvm_page.VmPage]:
    """A dirty anon page holding ``data`` (padded), idle on the active queue."""
    anon = uvm_anon.uvm_analloc(k)
    anon.an_lock = RWLock("test-amap")
    pg = uvm_page.uvm_pagealloc(k, None, 0, anon, 0)
    assert pg is not None
    env.ram.write(pg.phys_addr >> 12, data.ljust(PAGE, b"\0"))
    pg.pg_flags &= ~(uvm_page.PG_BUSY | uvm_page.PG_FAKE | uvm_page.PG_CLEAN)
    uvm_page.uvm_lock_pageq(k)
    uvm_page.uvm_pageactivate(k, pg)
    uvm_page.uvm_unlock_pageq(k)
    anon.an_ref = 0  # held by the test only: uvm_anfree may free it
    return anon, pg


async def _free_anon(k: Kernel, anon: uvm_anon.VmAnon) -> None:
    """uvm_anfree under the anon's (amap's) lock, as amap_wipeout calls it."""
    lock = anon.an_lock
    assert lock is not None
    await rw_enter(k, lock, RW_WRITE)
    uvm_anon.uvm_anfree(k, anon)
    rw_exit(lock)


# --- allocation ---------------------------------------------------------------------------


def test_swap_alloc_starts_at_slot_one_and_is_contiguous(kenv: Any) -> None:
    """§1.9: "All swap devices are concatenated into one "drum" address space managed by an
    extent that starts at **1**; slot 0 therefore means "no slot / failure"" and
    uvm_swap_alloc "asks the blist for n contiguous pages"; "with one swap file added first
    the usable slots are 1 … npages"."""
    env = kenv(swap_pages=64, start=False)
    k = env.k
    assert k.uvmexp.swpages == 64
    slot, n = uvm_swap.uvm_swap_alloc(k, 16, False)
    assert (slot, n) == (1, 16)
    slot2, n2 = uvm_swap.uvm_swap_alloc(k, 16, False)
    assert (slot2, n2) == (17, 16)  # the next contiguous run
    assert k.uvmexp.swpginuse == 32
    uvm_swap.uvm_swap_free(k, 1, 16)
    uvm_swap.uvm_swap_free(k, 17, 16)
    assert k.uvmexp.swpginuse == 0


def test_swap_alloc_with_lessok_falls_back_to_one_slot(kenv: Any) -> None:
    """§1.9: "If nothing fits and n > 1 and lessok, n is set to 1 and the whole search
    repeats. Otherwise 0." (and 0 also when no device is configured)."""
    env = kenv(swap_pages=20, start=False)
    k = env.k
    a, _ = uvm_swap.uvm_swap_alloc(k, 16, False)  # slots 1-16
    uvm_swap.uvm_swap_free(k, a + 1, 1)  # free slot 2 only: holes 2 and 17-20
    b, nb = uvm_swap.uvm_swap_alloc(k, 8, False)
    assert (b, nb) == (0, 8)  # nothing fits, no lessok: failure
    c, nc = uvm_swap.uvm_swap_alloc(k, 8, True)
    assert (c, nc) == (2, 1)  # lessok: one slot, the first free
    uvm_swap.uvm_swap_free(k, a, 16)
    assert k.uvmexp.swpginuse == 0

    none = kenv(swap_pages=0, start=False)
    assert uvm_swap.uvm_swap_alloc(none.k, 1, True)[0] == 0


def _two_disks_of_one_priority(kenv: Any) -> tuple[Kernel, Any, Any, Any]:
    """A kernel with swap disks a and b (32 pages each, priority 0): (k, a, a's and b's swapdev)."""
    env = kenv(swap_pages=0, start=False)
    k = env.k
    a = _add_disk(env, "a", 32, 0)
    b = _add_disk(env, "b", 32, 0)
    sdp_a = uvm_swap.swaplist_find(k, a, False)
    sdp_b = uvm_swap.swaplist_find(k, b, False)
    return k, a, sdp_a, sdp_b


def test_swap_alloc_round_robins_within_a_priority(kenv: Any) -> None:
    """§1.9: uvm_swap_alloc walks "inside a group, the device list in order" and "on success
    the device moves to the **tail** of its group (round-robin)"."""
    k, _, sdp_a, sdp_b = _two_disks_of_one_priority(kenv)
    assert sdp_a is not None and sdp_b is not None
    got = [uvm_swap.uvm_swap_alloc(k, 4, False)[0] for _ in range(4)]
    on = [uvm_swap.swapdrum_getsdp(k, s) for s in got]
    assert on == [sdp_a, sdp_b, sdp_a, sdp_b]
    assert got == [1, 33, 5, 37]  # b's drum range follows a's
    for s in got:
        uvm_swap.uvm_swap_free(k, s, 4)


def test_swapdrum_getsdp_never_answers_with_a_device_taken_off_the_list(kenv: Any) -> None:
    """PORT (SwapState.getsdp_hint): the lookup tries the device it found last first; the hint
    is dropped when swaplist_find removes a device, so its drum range then maps to nothing."""
    k, a, sdp_a, sdp_b = _two_disks_of_one_priority(kenv)
    swap = k.swap
    assert swap is not None
    assert uvm_swap.swapdrum_getsdp(k, 40) is sdp_b and swap.getsdp_hint is sdp_b
    assert uvm_swap.swapdrum_getsdp(k, 2) is sdp_a and swap.getsdp_hint is sdp_a
    assert uvm_swap.swapdrum_getsdp(k, 2) is sdp_a  # from the hint
    assert uvm_swap.swaplist_find(k, a, True) is sdp_a
    assert swap.getsdp_hint is None
    assert uvm_swap.swapdrum_getsdp(k, 2) is None
    assert uvm_swap.swapdrum_getsdp(k, 40) is sdp_b


def test_swap_alloc_uses_priorities_in_ascending_order(kenv: Any) -> None:
    """§1.9: "walks priority groups in ascending priority value" and "skips ... devices where
    in-use + n exceeds their usable pages"."""
    env = kenv(swap_pages=0, start=False)
    k = env.k
    slow = _add_disk(env, "slow", 32, 5)
    fast = _add_disk(env, "fast", 8, 1)
    s1, _ = uvm_swap.uvm_swap_alloc(k, 8, False)
    assert uvm_swap.swapdrum_getsdp(k, s1) is uvm_swap.swaplist_find(k, fast, False)
    s2, _ = uvm_swap.uvm_swap_alloc(k, 1, False)  # fast is full now
    assert uvm_swap.swapdrum_getsdp(k, s2) is uvm_swap.swaplist_find(k, slow, False)
    assert k.uvmexp.nswapdev == 2 and k.uvmexp.swpages == 40
    uvm_swap.uvm_swap_free(k, s1, 8)
    uvm_swap.uvm_swap_free(k, s2, 1)


def test_swap_on_twice_is_ebusy_and_a_block_device_keeps_its_label(kenv: Any) -> None:
    """§1.9: "A block device reserves its own page 0 (disklabel), so its first usable slot is
    drumoffset+1; a regular file uses page 0"; a device already swapping is refused."""
    env = kenv(swap_pages=0, start=False)
    k = env.k
    disk = ImageDisk(env.tmp_path / "blk.img", 16, env.clock, NoneModel(), name="wd0")
    disk.create()
    env.disks.append(disk)
    dev = swapdev.EmuDisk(disk, env.ram, isblk=True)
    assert uvm_swap.swap_on(k, dev, 0) == 0
    assert uvm_swap.swap_on(k, dev, 0) == EBUSY
    assert k.uvmexp.swpages == 15
    slot, _ = uvm_swap.uvm_swap_alloc(k, 1, False)
    assert slot == 2  # drum offset 1, page 0 skipped
    uvm_swap.uvm_swap_free(k, slot, 1)


# --- bad slots and accounting ------------------------------------------------------------


def test_markbad_slots_are_never_reused(kenv: Any) -> None:
    """§1.9 / §1.8: "mark the whole slot range bad (bad slots stay allocated forever)";
    uvm_swap_free "ignores SWSLOT_BAD" (PORT: and never returns a bad slot to the map)."""
    env = kenv(swap_pages=8, start=False)
    k = env.k
    slot, n = uvm_swap.uvm_swap_alloc(k, 4, False)
    uvm_swap.uvm_swap_markbad(k, slot, n)
    sdp = uvm_swap.swapdrum_getsdp(k, slot)
    assert sdp is not None and sdp.swd_npgbad == 4
    uvm_swap.uvm_swap_free(k, slot, n)  # an owner letting go of bad slots: they stay
    uvm_swap.uvm_swap_free(k, SWSLOT_BAD, 1)  # ignored
    assert k.uvmexp.swpginuse == 4 and sdp.swd_npginuse == 4
    got = [uvm_swap.uvm_swap_alloc(k, 1, False)[0] for _ in range(5)]
    assert got == [5, 6, 7, 8, 0]  # slots 1-4 never come back
    for s in got[:4]:
        uvm_swap.uvm_swap_free(k, s, 1)
    assert k.uvmexp.swpginuse == 4


def test_swap_free_of_a_free_slot_panics(kenv: Any) -> None:
    """§1.9: uvm_swap_free "returns the n pages to its blist": they must be in use."""
    env = kenv(swap_pages=8, start=False)
    slot, _ = uvm_swap.uvm_swap_alloc(env.k, 1, False)
    with pytest.raises(Panic, match="uvm_swap_free: freeing free slots"):
        uvm_swap.uvm_swap_free(env.k, slot + 1, 1)
    env.check_at_teardown = False  # the panic left the swap data lock held


def test_swapisfull_is_swpgonly_equal_to_swpages(kenv: Any) -> None:
    """§1.9: "`uvm_swapisfull()` (2022): true iff `swpgonly == swpages`" (every usable page
    holds data that exists only in swap) -- not swpginuse."""
    env = kenv(swap_pages=4, start=False)
    k = env.k
    slot, _ = uvm_swap.uvm_swap_alloc(k, 4, False)
    assert k.uvmexp.swpginuse == k.uvmexp.swpages
    assert not uvm_swap.uvm_swapisfull(k)
    k.uvmexp.swpgonly = 3
    assert not uvm_swap.uvm_swapisfull(k)
    k.uvmexp.swpgonly = 4
    assert uvm_swap.uvm_swapisfull(k)
    k.uvmexp.swpgonly = 0
    uvm_swap.uvm_swap_free(k, slot, 4)


# --- swap I/O -----------------------------------------------------------------------------


def test_swap_get_reads_back_what_swap_put_wrote(kenv: Any) -> None:
    """§1.14 step 3: uvm_swap_get: "`nswget` +1; a bad slot → ERROR; otherwise a synchronous
    read ...; OK → `swpgonly` −1"; §1.9: uvm_swap_put with SYNCIO is a synchronous write."""
    env = kenv(swap_pages=16, config=_quiet())

    async def body(k: Kernel, env: Any) -> None:
        anon, pg = _anon_page(k, env, b"swap me" * 100)
        slot, _ = uvm_swap.uvm_swap_alloc(k, 1, False)
        anon.an_swslot = slot
        pg.pg_flags |= uvm_page.PG_BUSY
        r = await uvm_swap.uvm_swap_put(k, slot, [pg], 1, uvm_pager.PGO_SYNCIO)
        assert r == uvm_pager.VM_PAGER_OK
        pg.pg_flags &= ~uvm_page.PG_BUSY

        # the page now lives only in swap (what the daemon's clean-page free does)
        k.uvmexp.swpgonly += 1
        uvm_page.uvm_lock_pageq(k)
        uvm_page.uvm_pagefree(k, pg)
        uvm_page.uvm_unlock_pageq(k)
        assert anon.an_page is None

        npg = uvm_page.uvm_pagealloc(k, None, 0, anon, 0)
        assert npg is not None
        nswget = k.uvmexp.nswget
        r = await uvm_swap.uvm_swap_get(k, npg, slot, uvm_pager.PGO_SYNCIO)
        assert r == uvm_pager.VM_PAGER_OK
        assert k.uvmexp.nswget == nswget + 1 and k.uvmexp.swpgonly == 0
        assert env.ram.read(npg.phys_addr >> 12) == (b"swap me" * 100).ljust(PAGE, b"\0")

        r = await uvm_swap.uvm_swap_get(k, npg, SWSLOT_BAD, uvm_pager.PGO_SYNCIO)
        assert r == uvm_pager.VM_PAGER_ERROR and k.uvmexp.nswget == nswget + 2
        npg.pg_flags &= ~(uvm_page.PG_BUSY | uvm_page.PG_FAKE)
        await _free_anon(k, anon)
        assert k.uvmexp.swpginuse == 0

    env.run(body)


def test_failed_swap_get_leaves_swpgonly_counted(kenv: Any) -> None:
    """§1.14 step 3: swpgonly −1 only on OK: a read that fails leaves the page counted as
    living only in swap (uvm_swap.c decrements after the read, on success)."""
    env = kenv(swap_pages=16, config=_quiet(), faults=FaultConfig(fail_read_slots=[(0, 15)]))

    async def body(k: Kernel, env: Any) -> None:
        anon, pg = _anon_page(k, env, b"x")
        slot, _ = uvm_swap.uvm_swap_alloc(k, 1, False)
        anon.an_swslot = slot
        k.uvmexp.swpgonly += 1  # pretend the daemon freed the clean page
        uvm_page.uvm_lock_pageq(k)
        uvm_page.uvm_pagefree(k, pg)
        uvm_page.uvm_unlock_pageq(k)
        npg = uvm_page.uvm_pagealloc(k, None, 0, anon, 0)
        assert npg is not None
        r = await uvm_swap.uvm_swap_get(k, npg, slot, uvm_pager.PGO_SYNCIO)
        assert r == uvm_pager.VM_PAGER_ERROR
        assert k.uvmexp.swpgonly == 1
        # what uvmfault_anonget does next: drop the page, mark the slot bad
        uvm_page.uvm_lock_pageq(k)
        uvm_page.uvm_pagefree(k, npg)
        uvm_page.uvm_unlock_pageq(k)
        anon.an_swslot = SWSLOT_BAD
        uvm_swap.uvm_swap_markbad(k, slot, 1)
        uvm_swap.swpgonlybad_add(k, 1)  # PORT: a bad slot counted in swpgonly
        await _free_anon(k, anon)  # counts the lost page out of swpgonly
        assert k.uvmexp.swpgonly == 0
        assert k.uvmexp.swpginuse == 1  # the bad slot stays allocated

    env.run(body)


def test_bufpool_exhaustion_makes_async_put_again(kenv: Any) -> None:
    """§1.9 uvm_swap_io step 1: "Get a `struct buf` (no sleeping for async or daemon callers);
    none → AGAIN" (PORT: the pool's hard limit makes pool_get(PR_NOWAIT) fail for real)."""
    env = kenv(swap_pages=16, config=_quiet())

    async def body(k: Kernel, env: Any) -> None:
        anon, pg = _anon_page(k, env, b"y")
        slot, _ = uvm_swap.uvm_swap_alloc(k, 1, False)
        anon.an_swslot = slot
        assert k.bufpool is not None
        k.bufpool.pr_hardlimit = 0
        pg.pg_flags |= uvm_page.PG_BUSY
        r = await uvm_swap.uvm_swap_put(k, slot, [pg], 1, 0)
        assert r == uvm_pager.VM_PAGER_AGAIN
        pg.pg_flags &= ~uvm_page.PG_BUSY
        k.bufpool.pr_hardlimit = None
        await _free_anon(k, anon)

    env.run(body)
