"""uvm_swap_encrypt.py and its hooks in uvm_swap.py / uvm_pager.py: swap encryption.

Each test quotes the rule it pins: docs/uvm-reference.md §1.9 (steps 3-8 of uvm_swap_io,
uvm_swap_free) and §1.10 step 3 (PQ_ENCRYPT bounce pages freed at completion), and the
upstream files read for the port (uvm_swap_encrypt.c 1.24, uvm_swap_encrypt.h 1.14,
uvm_swap.c 1.166-1.176). The one deliberate deviation (§4 item 11: the originals stay dirty
until the write has succeeded) has its own tests. Kernels boot with encryption on
(``swapencrypt=True``) unless a test says otherwise.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

import kernel.uvm.uvm_anon as uvm_anon
import kernel.uvm.uvm_check as uvm_check_mod
import kernel.uvm.uvm_page as uvm_page
import kernel.uvm.uvm_pager as uvm_pager
import kernel.uvm.uvm_swap as uvm_swap
import kernel.uvm.uvm_swap_encrypt as uvm_swap_encrypt
from devices.faults import FaultConfig
from kernel.dev.rnd import arc4random_buf
from kernel.kern.kern_synch import RW_WRITE, RWLock, rw_enter, rw_exit
from kernel.kernel import Kernel, KernelConfig
from kernel.sys.errno import EINVAL, EOPNOTSUPP, EPERM
from kernel.sys.mman import PROT_READ
from kernel.sys.systm import Panic
from kernel.uvm.uvm import UvmConstraintRange
from kernel.uvm.uvm_check import uvm_check
from kernel.uvm.uvm_page import PG_BUSY, PG_CLEAN, PQ_ENCRYPT
from kernel.uvm.uvm_pager import (
    PGO_ALLPAGES,
    PGO_PDFREECLUST,
    PGO_SYNCIO,
    VM_PAGER_AGAIN,
    VM_PAGER_ERROR,
    VM_PAGER_OK,
    VM_PAGER_PEND,
)
from kernel.uvm.uvm_swap_encrypt import SWPENC_CREATED, SWPENC_DELETED, SWPENC_ENABLE

import pdaemon_world as pw
from pdaemon_world import read_back as _read_back
from pdaemon_world import until_idle as _until_idle

PAGE = 4096
SECRET = b"\x8f--the-secret--\x13"  # 16 bytes: one AES block
DAEMON_FLAGS = PGO_ALLPAGES | PGO_PDFREECLUST


def _config(swapencrypt: bool = True) -> KernelConfig:
    """Tests hold anons outside any amap: uvm_check at teardown only."""
    return KernelConfig(bufcachepercent=0, check_every_pass=False, swapencrypt=swapencrypt)


def _data(i: int) -> bytes:
    return ((SECRET + b"page %5d " % i) * (PAGE // 27 + 1))[:PAGE]


def _dirty_anons(k: Kernel, env: Any, n: int, first: int = 0) -> tuple[RWLock, list[Any], list[Any]]:
    """n dirty anon pages (page i holds _data(first + i)) on the inactive queue."""
    return pw.dirty_anons(k, env, n, lambda i: _data(first + i))


def _slots(k: Kernel, pgs: list[Any], want: int = 0) -> int:
    """Busy and write-protect ``pgs`` and give them one run of slots (at ``want`` if set)."""
    if want:
        held, _ = uvm_swap.uvm_swap_alloc(k, want - 1, False)  # push the run to ``want``
        assert held == 1
    slot, n = uvm_swap.uvm_swap_alloc(k, len(pgs), False)
    assert slot and n == len(pgs)
    if want:
        uvm_swap.uvm_swap_free(k, 1, want - 1)
        assert slot == want
    for i, pg in enumerate(pgs):
        pg.pg_flags |= PG_BUSY
        k.pmap.pmap_page_protect(pg, PROT_READ)
        pg.uanon.an_swslot = slot + i
    return slot


def _unbusy(k: Kernel, pgs: list[Any]) -> None:
    for pg in pgs:
        pg.pg_flags &= ~PG_BUSY


async def _three_written(k: Kernel, env: Any) -> tuple[RWLock, list[Any], list[Any], int]:
    """Three dirty anon pages written to one run of slots by a synchronous uvm_swap_put (it
    succeeds), then unbusied: (their lock, the anons, the pages, the run's first slot)."""
    lock, anons, pgs = _dirty_anons(k, env, 3)
    slot = _slots(k, pgs)
    assert await uvm_swap.uvm_swap_put(k, slot, pgs, 3, PGO_SYNCIO) == VM_PAGER_OK
    _unbusy(k, pgs)
    return lock, anons, pgs, slot


def _image(env: Any, slot: int, n: int = 1) -> bytes:
    """The bytes of drum slots [slot, slot + n) in the swap image (a file: slot 1 is page 0)."""
    with open(Path(env.disks[0].path), "rb") as f:
        f.seek((slot - 1) * PAGE)
        return f.read(n * PAGE)


def _sdp(k: Kernel) -> Any:
    return k.swap.swap_priority.first().spi_swapdev.first()


def _drop_pages(k: Kernel, pgs: list[Any]) -> None:
    """Free resident pages whose data is in swap (the inactive scan's clean path)."""
    for pg in pgs:
        k.uvmexp.swpgonly += 1
        k.pmap.pmap_page_protect(pg, 0)
        uvm_page.uvm_lock_pageq(k)
        uvm_page.uvm_pagefree(k, pg)
        uvm_page.uvm_unlock_pageq(k)


async def _free_anons(k: Kernel, lock: RWLock, anons: list[Any]) -> None:
    await rw_enter(k, lock, RW_WRITE)
    for anon in anons:
        uvm_anon.uvm_anfree(k, anon)
    rw_exit(lock)


def _encrypted_pages(k: Kernel) -> list[Any]:
    return [pg for pg in k.pages if pg is not None and pg.pg_flags & PQ_ENCRYPT]


# --- the cipher -----------------------------------------------------------------------------


def test_swap_encrypt_is_aes128_cbc_whose_iv_encrypts_the_block_number(kenv: Any) -> None:
    """uvm_swap_encrypt.c swap_encrypt: "iv[0] = block >> 32; iv[1] = block; iv[2] = ~iv[0];
    iv[3] = ~iv[1]", encrypted with the key, then CBC over the page; §1.9 step 5: "AES-128 in
    CBC mode whose IV is the AES encryption of (block high 32 bits, block low 32 bits, and
    their complements)". Checked against the library's own CBC, block above 2^32."""
    k = kenv(start=False, swapencrypt=True).k
    key = uvm_swap_encrypt.SwapKey()
    uvm_swap_encrypt.swap_key_get(k, key)
    raw = bytes(key.key)
    for block in (8, (3 << 32) + 40, 0xFFFFFFFF):
        page = _data(block & 0xFF)
        out = memoryview(bytearray(PAGE))
        uvm_swap_encrypt.swap_encrypt(k, key, memoryview(page), out, block, PAGE)
        hi, lo = block >> 32, block & 0xFFFFFFFF
        iv = Cipher(algorithms.AES(raw), modes.ECB()).encryptor().update(
            struct.pack("<4I", hi, lo, hi ^ 0xFFFFFFFF, lo ^ 0xFFFFFFFF))  # fmt: skip
        assert bytes(out) == Cipher(algorithms.AES(raw), modes.CBC(iv)).encryptor().update(page)
        uvm_swap_encrypt.swap_decrypt(k, key, out, out, block, PAGE)  # in place
        assert bytes(out) == page
    se = k.swapencrypt
    assert (se.swpencrypted, se.swpdecrypted, se.swap_encrypt_initialized) == (3, 3, 1)
    uvm_swap_encrypt.swap_key_put(k, key)
    assert bytes(key.key) == bytes(16) and se.kcur is None and se.swap_ctxt is None


def test_each_live_key_keeps_its_schedule_and_a_destroyed_key_loses_it(kenv: Any) -> None:
    """PORT (module docstring): a key's cipher contexts are made once and kept with the key
    while it lives, so switching keys (``kcur``) does not make them again; decrypting with a
    key first used only to encrypt adds the decryptor. Destroying a key drops its contexts even
    when another key is the current one, and the output is CBC's whichever order keys come."""
    k = kenv(start=False, swapencrypt=True).k
    a, b = uvm_swap_encrypt.SwapKey(), uvm_swap_encrypt.SwapKey()
    for key in (a, b):
        uvm_swap_encrypt.swap_key_get(k, key)
    se = k.swapencrypt
    page = _data(7)
    outs = {}
    for key, block in ((a, 8), (b, 16), (a, 24), (b, 8)):
        out = memoryview(bytearray(PAGE))
        uvm_swap_encrypt.swap_encrypt(k, key, memoryview(page), out, block, PAGE)
        outs[id(key), block] = bytes(out)
        assert se.kcur is key and se.swap_ctxt is key.sched
        assert key.sched is not None and key.sched.enc_only and key.sched.dec is None
    enc_a = a.sched
    for key, block in ((a, 8), (b, 16), (a, 24), (b, 8)):
        hi, lo = block >> 32, block & 0xFFFFFFFF
        raw = bytes(key.key)
        iv = Cipher(algorithms.AES(raw), modes.ECB()).encryptor().update(
            struct.pack("<4I", hi, lo, hi ^ 0xFFFFFFFF, lo ^ 0xFFFFFFFF))  # fmt: skip
        expect = Cipher(algorithms.AES(raw), modes.CBC(iv)).encryptor().update(page)
        assert outs[id(key), block] == expect
        buf = memoryview(bytearray(expect))
        uvm_swap_encrypt.swap_decrypt(k, key, buf, buf, block, PAGE)
        assert bytes(buf) == page
    assert a.sched is enc_a and not enc_a.enc_only and enc_a.dec is not None  # same contexts
    assert se.kcur is b
    uvm_swap_encrypt.swap_key_put(k, a)  # not the current key: its contexts go all the same
    assert a.sched is None and bytes(a.key) == bytes(16) and se.kcur is b
    uvm_swap_encrypt.swap_key_put(k, b)
    assert b.sched is None and se.kcur is None and se.swap_ctxt is None


def test_keys_come_from_the_machines_seeded_stream() -> None:
    """PORT (dev/rnd.py): arc4random_buf is a ChaCha20 keystream keyed from the machine's
    seed: the same seed gives the same keys, another seed others (a real kernel: entropy)."""

    def kernel(seed: int) -> Any:
        k = Kernel(config=KernelConfig(), sched=None, pmap=None)  # type: ignore[arg-type]
        k.md = type("Md", (), {"seed": seed})()
        return k

    def keys(k: Any) -> list[bytes]:
        out = []
        for _ in range(3):
            b = bytearray(16)
            arc4random_buf(k, b)
            out.append(bytes(b))
        return out

    a, b, c = keys(kernel(7)), keys(kernel(7)), keys(kernel(8))
    assert a == b and a != c and len(set(a)) == 3


def test_sysctl_enable_is_0_or_1_and_the_key_counters_are_read_only(kenv: Any) -> None:
    """swap_encrypt_ctl: SWPENC_ENABLE is sysctl_int_bounded(..., 0, 1); SWPENC_CREATED and
    SWPENC_DELETED are sysctl_rdint; anything else is EOPNOTSUPP."""
    k = kenv(start=False, swapencrypt=True).k
    assert uvm_swap_encrypt.swap_encrypt_ctl(k, SWPENC_ENABLE) == (0, 1)
    assert uvm_swap_encrypt.swap_encrypt_ctl(k, SWPENC_ENABLE, 2) == (EINVAL, 1)
    assert uvm_swap_encrypt.swap_encrypt_ctl(k, SWPENC_CREATED, 5) == (EPERM, 0)
    assert uvm_swap_encrypt.swap_encrypt_ctl(k, SWPENC_DELETED) == (0, 0)
    assert uvm_swap_encrypt.swap_encrypt_ctl(k, 3)[0] == EOPNOTSUPP
    assert uvm_swap_encrypt.swap_encrypt_ctl(k, SWPENC_ENABLE, 0) == (0, 1)
    assert k.swapencrypt.uvm_doswapencrypt == 0


# --- writes, keys and reads -------------------------------------------------------------------


def test_write_bounces_encrypts_and_takes_one_key_reference_per_slot(kenv: Any) -> None:
    """§1.9 steps 3-6: "with swap encryption on, every write bounces"; for each page "take a
    reference on the key covering that slot (one key per 128 slots; a key is created randomly
    when its refcount goes from 0)", encrypt it into its bounce page, and "mark the slot range
    'needs decrypt'". The image holds ciphertext only; the bounce pages of a synchronous write
    are gone when it returns (PORT)."""
    env = kenv(config=_config())

    async def body(k: Kernel, env: Any) -> None:
        lock, anons, pgs = _dirty_anons(k, env, 3)
        slot = _slots(k, pgs)
        free = k.uvmexp.free
        assert await uvm_swap.uvm_swap_put(k, slot, pgs, 3, PGO_SYNCIO) == VM_PAGER_OK
        assert k.uvmexp.free == free and not _encrypted_pages(k)
        img = _image(env, slot, 3)
        assert SECRET not in img and len(img) == 3 * PAGE
        sdp = _sdp(k)
        key = uvm_swap.SWD_KEY(sdp, slot)
        assert key.refcount == 3 and any(key.key)
        assert list(sdp.swd_decrypt[slot - 1 : slot + 2]) == [1, 1, 1]
        assert (k.swapencrypt.uvm_swpkeyscreated, k.swapencrypt.swpencrypted) == (1, 3)
        for i, pg in enumerate(pgs):  # the originals are untouched, still the caller's
            assert pg.pg_flags & PG_BUSY and env.ram.read(pg.phys_addr >> 12) == _data(i)
        _unbusy(k, pgs)
        _drop_pages(k, pgs)
        for i, anon in enumerate(anons):
            assert await _read_back(k, env, anon) == (VM_PAGER_OK, _data(i))
        assert k.swapencrypt.swpdecrypted == 3
        await _free_anons(k, lock, anons)

    env.run(body)


def test_a_run_across_a_section_boundary_uses_two_keys(kenv: Any) -> None:
    """uvm_swap.c: SWD_KEY_SHIFT 7 ("One key per 0.5 MByte"), SWD_KEY(sdp, slot) =
    swd_keys[(slot - drumoffset) >> 7]: slots 1..128 of the first swap file share key 0."""
    env = kenv(config=_config())

    async def body(k: Kernel, env: Any) -> None:
        lock, anons, pgs = _dirty_anons(k, env, 16)
        slot = _slots(k, pgs, want=121)
        assert await uvm_swap.uvm_swap_put(k, slot, pgs, 16, PGO_SYNCIO) == VM_PAGER_OK
        keys = _sdp(k).swd_keys
        assert (keys[0].refcount, keys[1].refcount, keys[2].refcount) == (8, 8, 0)
        assert keys[0].key != keys[1].key and not any(keys[2].key)
        assert k.swapencrypt.uvm_swpkeyscreated == 2
        _unbusy(k, pgs)
        await _free_anons(k, lock, anons)
        assert k.swapencrypt.uvm_swpkeysdeleted == 2

    env.run(body)


def test_key_whose_slots_are_all_freed_is_zeroed_and_counted_as_deleted(kenv: Any) -> None:
    """uvm_swap_free: "Dereference keys" of the slots marked for decryption, then "Mark range
    as not decrypt"; swap_key_put: the last reference calls swap_key_delete, which cleans up
    the schedule, explicit_bzero's the key and counts uvm_swpkeysdeleted."""
    env = kenv(config=_config())

    async def body(k: Kernel, env: Any) -> None:
        lock, anons, _, slot = await _three_written(k, env)
        sdp = _sdp(k)
        key = uvm_swap.SWD_KEY(sdp, slot)
        se = k.swapencrypt
        assert se.kcur is key  # its schedule is the current one
        await rw_enter(k, lock, RW_WRITE)
        for anon in anons[:2]:
            uvm_anon.uvm_anfree(k, anon)
        rw_exit(lock)
        assert key.refcount == 1 and any(key.key) and se.uvm_swpkeysdeleted == 0
        assert list(sdp.swd_decrypt[slot - 1 : slot + 2]) == [0, 0, 1]
        await _free_anons(k, lock, anons[2:])
        assert key.refcount == 0 and key.key == bytearray(16)
        assert se.uvm_swpkeysdeleted == 1 and se.kcur is None and se.swap_ctxt is None
        assert not any(sdp.swd_decrypt)
        assert "key" not in repr(key).replace("swap_key", "")  # no key bytes in a repr

    env.run(body)


def test_turning_encryption_off_leaves_encrypted_slots_readable(kenv: Any) -> None:
    """uvm_swap_io: once swap_encrypt_initialized, every write marks its slots for decryption
    or not ("uvm_swap_markdecrypt(sdp, startslot, npages, encrypt)") and every read decrypts
    the marked ones, whatever uvm_doswapencrypt says now: switching encryption off does not
    make old slots unreadable. A plain write writes the plain page."""
    env = kenv(config=_config())

    async def body(k: Kernel, env: Any) -> None:
        lock, anons, pgs = _dirty_anons(k, env, 4)
        s1 = _slots(k, pgs[:2])
        assert await uvm_swap.uvm_swap_put(k, s1, pgs[:2], 2, PGO_SYNCIO) == VM_PAGER_OK
        assert uvm_swap_encrypt.swap_encrypt_ctl(k, SWPENC_ENABLE, 0) == (0, 1)
        s2 = _slots(k, pgs[2:])
        assert await uvm_swap.uvm_swap_put(k, s2, pgs[2:], 2, PGO_SYNCIO) == VM_PAGER_OK
        assert _image(env, s2, 2) == _data(2) + _data(3)  # in the clear
        assert SECRET not in _image(env, s1, 2)
        sdp = _sdp(k)
        assert list(sdp.swd_decrypt[s1 - 1 : s2 + 1]) == [1, 1, 0, 0]
        assert uvm_swap.SWD_KEY(sdp, s1).refcount == 2 and k.swapencrypt.uvm_swpkeyscreated == 1
        _unbusy(k, pgs)
        _drop_pages(k, pgs)
        for i, anon in enumerate(anons):
            assert await _read_back(k, env, anon) == (VM_PAGER_OK, _data(i))
        await _free_anons(k, lock, anons)
        assert k.swapencrypt.uvm_swpkeysdeleted == 1

    env.run(body)


def test_turning_encryption_on_sets_up_the_devices_added_meanwhile(kenv: Any) -> None:
    """swap_encrypt_ctl: "Swap Encryption has been turned on, we need to initialize state for
    swap devices that have been added" (uvm_swap_initcrypt_all). PORT: the OOM reserve of
    SWCLUSTPAGES pages is taken then, by a kernel that booted without encryption."""
    env = kenv(config=_config(swapencrypt=False))
    k = env.k
    sdp = _sdp(k)
    assert sdp.swd_decrypt is None and sdp.swd_keys is None and k.swap.oompps == []
    free = k.uvmexp.free
    assert uvm_swap_encrypt.swap_encrypt_ctl(k, SWPENC_ENABLE, 1) == (0, 0)
    assert len(sdp.swd_decrypt) == sdp.swd_drumsize and len(sdp.swd_keys) == 1024 // 128
    assert len(k.swap.oompps) == 16 and k.uvmexp.free == free - 16
    assert all(pg.pg_flags & PG_BUSY for pg in k.swap.oompps)

    async def body(k: Kernel, env: Any) -> None:
        lock, anons, pgs = _dirty_anons(k, env, 2)
        slot = _slots(k, pgs)
        assert await uvm_swap.uvm_swap_put(k, slot, pgs, 2, PGO_SYNCIO) == VM_PAGER_OK
        assert SECRET not in _image(env, slot, 2) and k.swapencrypt.swpencrypted == 2
        _unbusy(k, pgs)
        await _free_anons(k, lock, anons)

    env.run(body)


def test_switched_on_while_memory_is_short_the_daemon_goes_without_the_reserve(
    kenv: Any,
) -> None:
    """PORT: the OOM reserve a kernel booted without encryption takes when it is switched on
    cannot always be had then; the page daemon's bounce shortage is then VM_PAGER_AGAIN, as
    any other async writer's (uvm_swap_io's allocation failure path)."""
    env = kenv(config=_config(swapencrypt=False))

    async def body(k: Kernel, env: Any) -> None:
        lock, anons, pgs = _dirty_anons(k, env, 2)
        slot = _slots(k, pgs)
        eaten = []
        while k.uvmexp.free > k.uvmexp.reserve_kernel + 1:
            pg = uvm_page.uvm_pagealloc(k, None, 0, None, 0)
            assert pg is not None
            eaten.append(pg)
        assert uvm_swap_encrypt.swap_encrypt_ctl(k, SWPENC_ENABLE, 1) == (0, 0)
        assert k.swap.oompps == [] and _sdp(k).swd_keys is not None
        real = k.uvm.pagedaemon_proc
        k.uvm.pagedaemon_proc = env.testproc
        try:
            assert await uvm_swap.uvm_swap_put(k, slot, pgs, 2, 0) == VM_PAGER_AGAIN
        finally:
            k.uvm.pagedaemon_proc = real
        for pg in eaten:
            uvm_page.uvm_pagefree(k, pg)
        _unbusy(k, pgs)
        await _free_anons(k, lock, anons)

    env.run(body)


def test_read_of_a_slot_marked_for_decryption_whose_key_is_gone_fails(kenv: Any) -> None:
    """uvm_swap_io, decrypt: "if (key->refcount == 0) { result = VM_PAGER_ERROR; break; }"."""
    env = kenv(config=_config())

    async def body(k: Kernel, env: Any) -> None:
        lock, anons, pgs = _dirty_anons(k, env, 2)
        slot = _slots(k, pgs[:1], want=200)  # section 1, written: key 1 exists
        assert await uvm_swap.uvm_swap_put(k, slot, pgs[:1], 1, PGO_SYNCIO) == VM_PAGER_OK
        other = _slots(k, pgs[1:])  # slot 1: section 0, never written, no key
        sdp = _sdp(k)
        uvm_swap.uvm_swap_markdecrypt(sdp, other, 1, 1)
        pg = uvm_page.uvm_pagealloc(k, None, 0, None, 0)
        assert pg is not None
        assert await uvm_swap.uvm_swap_io(k, [pg], other, 1, 0x8000) == VM_PAGER_ERROR  # B_READ
        uvm_page.uvm_pagefree(k, pg)
        uvm_swap.uvm_swap_markdecrypt(sdp, other, 1, 0)
        _unbusy(k, pgs)
        await _free_anons(k, lock, anons)

    env.run(body)


def test_freeing_a_run_of_encrypted_slots_puts_each_slots_key_reference(kenv: Any) -> None:
    """uvm_swap_free over several slots: "for (i = 0; i < nslots; i++) if
    (uvm_swap_needdecrypt(sdp, startslot + i)) ... swap_key_put(key)", then "Mark range as not
    decrypt"."""
    env = kenv(config=_config())

    async def body(k: Kernel, env: Any) -> None:
        lock, anons, _, slot = await _three_written(k, env)
        for anon in anons:
            anon.an_swslot = 0
        uvm_swap.uvm_swap_free(k, slot, 3)
        key = uvm_swap.SWD_KEY(_sdp(k), slot)
        assert key.refcount == 0 and k.swapencrypt.uvm_swpkeysdeleted == 1
        assert not any(_sdp(k).swd_decrypt)
        await _free_anons(k, lock, anons)

    env.run(body)


def test_while_encryption_time_passes_the_keys_count_exactly_the_marked_slots(kenv: Any) -> None:
    """§1.9 steps 4-6 run without a sleep upstream: the key references are taken and the slots
    marked "needs decrypt" before anything else runs. The port lets the encryption's CPU time
    pass as virtual time (a yield, PORT) only once both are done, so a thread that runs
    meanwhile sees consistent keys, and a slot of the run freed meanwhile puts its
    reference (before the fix it was left counted forever, and uvm_check's key count
    failed under pressure)."""
    env = kenv(config=_config())
    seen: list[tuple[int, list[int]]] = []

    async def body(k: Kernel, env: Any) -> None:
        lock, anons, pgs = _dirty_anons(k, env, 3)
        slot = _slots(k, pgs)
        sdp = _sdp(k)
        pay = k.sched.pay

        async def pay_and_free(what: str = "cpu", min_ns: int = 1) -> None:
            if what == "swap_encrypt":
                key = uvm_swap.SWD_KEY(sdp, slot)
                seen.append((key.refcount, list(sdp.swd_decrypt[slot - 1 : slot + 2])))
                uvm_check_mod._check_keys(sdp)  # what uvm_check asserts, mid-write
                uvm_swap.uvm_swap_free(k, slot + 2, 1)  # the third slot's owner lets go
                anons[2].an_swslot = 0
            await pay(what, min_ns)

        k.sched.pay = pay_and_free  # type: ignore[method-assign]
        try:
            assert await uvm_swap.uvm_swap_put(k, slot, pgs, 3, PGO_SYNCIO) == VM_PAGER_OK
        finally:
            k.sched.pay = pay  # type: ignore[method-assign]
        assert seen == [(3, [1, 1, 1])]
        key = uvm_swap.SWD_KEY(sdp, slot)
        assert key.refcount == 2 and list(sdp.swd_decrypt[slot - 1 : slot + 2]) == [1, 1, 0]
        _unbusy(k, pgs)
        for anon in anons[:2]:
            anon.an_swslot = 0
        uvm_swap.uvm_swap_free(k, slot, 2)
        assert key.refcount == 0 and k.swapencrypt.uvm_swpkeysdeleted == 1
        await _free_anons(k, lock, anons)

    env.run(body)


def test_decrypting_before_anything_was_encrypted_panics(kenv: Any) -> None:
    """swap_decrypt: "if (!swap_encrypt_initialized) panic("swap_decrypt: key not
    initialized")"; the state's repr shows counters, never keys."""
    k = kenv(start=False, swapencrypt=True).k
    page = memoryview(bytearray(PAGE))
    with pytest.raises(Panic, match="swap_decrypt: key not initialized"):
        uvm_swap_encrypt.swap_decrypt(k, uvm_swap_encrypt.SwapKey(), page, page, 8, PAGE)
    assert repr(k.swapencrypt) == "<swapencrypt enable=1 created=0 deleted=0 initialized=0>"


def test_pages_the_disk_cannot_reach_bounce_in_the_clear_without_encryption(
    kenv: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvm_swap_io without encryption: "if (VM_PAGE_TO_PHYS(pps[i]) < dma_constraint.ucr_low
    || ... > dma_constraint.ucr_high) { bounce = 1; ... }": a write copies such pages into
    DMA-reachable bounce pages ("memcpy(dst, src, PAGE_SIZE)"), a read lands in one and is
    copied back, and the bounce pages are freed. (No emulated disk has such a limit: the
    test makes the DMA range frames 128-255, above the pages it writes.)"""
    env = kenv(config=_config(swapencrypt=False))
    dma = UvmConstraintRange(128 * PAGE, 256 * PAGE - 1)
    monkeypatch.setattr(uvm_swap, "dma_constraint", lambda: dma)

    async def body(k: Kernel, env: Any) -> None:
        lock, anons, pgs = _dirty_anons(k, env, 2)
        assert all(pg.phys_addr < 128 * PAGE for pg in pgs)
        slot = _slots(k, pgs)
        free = k.uvmexp.free
        assert await uvm_swap.uvm_swap_put(k, slot, pgs, 2, PGO_SYNCIO) == VM_PAGER_OK
        assert k.uvmexp.free == free and not _encrypted_pages(k)
        assert _image(env, slot, 2) == _data(0) + _data(1)
        _unbusy(k, pgs)
        _drop_pages(k, pgs)
        for i, anon in enumerate(anons):
            assert await _read_back(k, env, anon) == (VM_PAGER_OK, _data(i))
        assert k.uvmexp.free == free and not _encrypted_pages(k)  # bounce pages gone
        await _free_anons(k, lock, anons)

    env.run(body)


# --- asynchronous writes: bounce pages, the deviation, allocation failures --------------------


def test_async_write_holds_bounce_pages_until_aiodone_and_cleans_the_originals_only_then(
    kenv: Any,
) -> None:
    """§1.9 step 5 marks each bounce page PQ_ENCRYPT, §1.10 step 3: at completion "If the
    first page is PQ_ENCRYPT (bounce pages): frees the bounce pages". PORT (§4 item 11):
    upstream cleans the originals when it encrypts them; here they stay busy and dirty until
    the write is done, then are cleaned as an unencrypted write's."""
    env = kenv(config=_config())

    async def body(k: Kernel, env: Any) -> None:
        lock, anons, pgs = _dirty_anons(k, env, 3)
        slot = _slots(k, pgs)
        swpps: list[Any] = pgs + [None] * 13
        free = k.uvmexp.free
        uvm_page.uvm_lock_pageq(k)
        r, _, n = await uvm_pager.uvm_pager_put(k, None, pgs[-1], swpps, 3, DAEMON_FLAGS, slot, 0)
        assert (r, n) == (VM_PAGER_PEND, 3)
        bounce = _encrypted_pages(k)
        assert len(bounce) == 3 and all(pg.pg_flags & PG_BUSY for pg in bounce)
        assert k.uvmexp.free == free - 3
        for pg in pgs:  # not clean while the write is in flight
            assert pg.pg_flags & PG_BUSY and not pg.pg_flags & PG_CLEAN
        await _until_idle(env, pgs)
        assert not _encrypted_pages(k) and k.uvmexp.free == free
        for i, pg in enumerate(pgs):
            assert pg.pg_flags & PG_CLEAN and not pg.pg_flags & PG_BUSY
            assert anons[i].an_swslot == slot + i
        assert SECRET not in _image(env, slot, 3)
        _drop_pages(k, pgs)
        for i, anon in enumerate(anons):
            assert await _read_back(k, env, anon) == (VM_PAGER_OK, _data(i))
        await _free_anons(k, lock, anons)

    env.run(body)


def test_failed_encrypted_write_keeps_the_originals_dirty_and_lets_go_of_the_keys(
    kenv: Any,
) -> None:
    """PORT, the deliberate deviation (§4 item 11: "originals are marked clean as soon as the
    encrypted copy is made; if the later write fails, the data is gone"): the failed write's
    pages stay dirty, lose their slot, the slots are marked bad (uvm_pager.c 1.94 as for a
    plain write), and the bad slots drop their key references (PORT: never freed)."""
    env = kenv(config=_config(), faults=FaultConfig(fail_write_slots=[(0, 2)]))

    async def body(k: Kernel, env: Any) -> None:
        lock, anons, pgs = _dirty_anons(k, env, 3)
        slot = _slots(k, pgs)
        swpps: list[Any] = pgs + [None] * 13
        uvm_page.uvm_lock_pageq(k)
        r, _, _n = await uvm_pager.uvm_pager_put(k, None, pgs[-1], swpps, 3, DAEMON_FLAGS, slot, 0)
        assert r == VM_PAGER_PEND
        await _until_idle(env, pgs)
        sdp = _sdp(k)
        for i, pg in enumerate(pgs):
            assert not pg.pg_flags & (PG_CLEAN | PG_BUSY)
            assert anons[i].an_swslot == 0
            assert env.ram.read(pg.phys_addr >> 12) == _data(i)  # nothing lost
        assert sdp.swd_bad[slot - 1 : slot + 2].tolist() == [1, 1, 1]
        assert not _encrypted_pages(k) and not any(sdp.swd_decrypt)
        se = k.swapencrypt
        assert uvm_swap.SWD_KEY(sdp, slot).refcount == 0
        assert (se.uvm_swpkeyscreated, se.uvm_swpkeysdeleted) == (1, 1)
        await _free_anons(k, lock, anons)

    env.run(body)


def test_bounce_allocation_failure_is_again_for_an_async_writer(kenv: Any) -> None:
    """uvm_swap_io: "if (uvm_swap_allocpages(tpps, npages, plaflags)) { pool_put(&bufpool,
    bp); uvm_pagermapout(kva, npages); return (VM_PAGER_AGAIN); }": NOWAIT for an async
    write, and only the page daemon may fall back on the OOM reserve. Nothing is left held."""
    env = kenv(config=_config())

    async def body(k: Kernel, env: Any) -> None:
        lock, anons, pgs = _dirty_anons(k, env, 4)
        slot = _slots(k, pgs)
        eaten = []
        while k.uvmexp.free > k.uvmexp.reserve_kernel + 3:  # bounce pages for 4 fail now
            pg = uvm_page.uvm_pagealloc(k, None, 0, None, 0)
            assert pg is not None
            eaten.append(pg)
        pseg, bufs = k.swap.uvm_pseg_use, k.bufpool.pr_nout
        assert await uvm_swap.uvm_swap_put(k, slot, pgs, 4, 0) == VM_PAGER_AGAIN
        assert (k.swap.uvm_pseg_use, k.bufpool.pr_nout) == (pseg, bufs)
        assert not _encrypted_pages(k) and k.swap.oom == 0
        assert k.swapencrypt.uvm_swpkeyscreated == 0 and not any(_sdp(k).swd_decrypt)
        for pg in eaten:
            uvm_page.uvm_pagefree(k, pg)
        assert await uvm_swap.uvm_swap_put(k, slot, pgs, 4, 0) == VM_PAGER_PEND
        await _until_idle(env, pgs)
        await _free_anons(k, lock, anons)

    env.run(body)


def test_page_daemon_takes_the_oom_reserve_and_waits_for_it_while_it_is_in_use(kenv: Any) -> None:
    """uvm_swap_allocpages (1.166): when the page daemon cannot get bounce pages it takes
    oompps ("oom = 1"); while they are in use it sleeps on &oom ("oom") and retries once
    uvm_swap_freepages gave them back at the first write's completion."""
    env = kenv(config=_config())

    async def body(k: Kernel, env: Any) -> None:
        lock, anons, pgs = _dirty_anons(k, env, 4)
        s1 = _slots(k, pgs[:2])
        s2 = _slots(k, pgs[2:])
        eaten = []
        while k.uvmexp.free > k.uvmexp.reserve_kernel + 1:
            pg = uvm_page.uvm_pagealloc(k, None, 0, None, 0)
            assert pg is not None
            eaten.append(pg)
        real = k.uvm.pagedaemon_proc
        k.uvm.pagedaemon_proc = env.testproc  # we are the page daemon for these writes
        try:
            assert await uvm_swap.uvm_swap_put(k, s1, pgs[:2], 2, 0) == VM_PAGER_PEND
            assert k.swap.oom == 1 and _encrypted_pages(k) == k.swap.oompps[:2]
            assert all(pg.pg_flags & PG_BUSY for pg in pgs[:2])
            assert await uvm_swap.uvm_swap_put(k, s2, pgs[2:], 2, 0) == VM_PAGER_PEND
            # we slept until the first write had completed and given the reserve back
            assert not any(pg.pg_flags & PG_BUSY for pg in pgs[:2])
            assert k.swap.oom == 1 and _encrypted_pages(k) == k.swap.oompps[:2]
        finally:
            k.uvm.pagedaemon_proc = real
        await _until_idle(env, pgs)
        assert k.swap.oom == 0 and not _encrypted_pages(k)
        assert all(pg.pg_flags & PG_CLEAN for pg in pgs)
        for pg in eaten:
            uvm_page.uvm_pagefree(k, pg)
        await _free_anons(k, lock, anons)

    env.run(body)


def test_page_daemon_sees_again_when_the_bounce_pages_cannot_be_mapped(kenv: Any) -> None:
    """§1.8: AGAIN = "swap: buf/kva/bounce-page shortage"; uvm_swap_io: "bouncekva =
    uvm_pagermapin(tpps, npages, swmapflags); if (bouncekva == 0) { ... return
    (VM_PAGER_AGAIN); }". The daemon's uvm_pager_put drops the cluster and retries pg alone,
    whose single bounce page needs no pager map (the direct map)."""
    env = kenv(config=_config())

    async def body(k: Kernel, env: Any) -> None:
        lock, anons, pgs = _dirty_anons(k, env, 3)
        slot = _slots(k, pgs)
        swpps: list[Any] = pgs + [None] * 13
        k.swap.uvm_pseg_max = k.swap.uvm_pseg_use + 1  # one segment: the originals' mapping
        real = k.uvm.pagedaemon_proc
        k.uvm.pagedaemon_proc = env.testproc
        try:
            uvm_page.uvm_lock_pageq(k)
            r, ppsp, n = await uvm_pager.uvm_pager_put(
                k, None, pgs[-1], swpps, 3, DAEMON_FLAGS, slot, 0
            )
        finally:
            k.uvm.pagedaemon_proc = real
            k.swap.uvm_pseg_max = uvm_swap.UVM_PSEG_SEGS
        assert (r, n) == (VM_PAGER_PEND, 1) and ppsp[0] is pgs[-1]  # pg went alone
        assert anons[0].an_swslot == anons[1].an_swslot == 0  # the dropped cluster's pages
        assert not pgs[0].pg_flags & PG_BUSY and anons[2].an_swslot == slot
        k.uvmexp.paging += 1  # uvmpd_scan_inactive I16
        await _until_idle(env, pgs)
        assert k.swapencrypt.swpencrypted == 1
        await _free_anons(k, lock, anons)

    env.run(body)


# --- the page daemon, and the invariants ------------------------------------------------------


async def _writer(p: Any, pages: int = 600) -> None:
    base = await p.mmap(pages * PAGE)
    for i in range(pages):
        await p.store(base + i * PAGE, _data(i)[:64])
    for i in range(pages):
        got = await p.load(base + i * PAGE, 64)
        p.verify(base + i * PAGE, _data(i)[:64], got)


def test_page_daemon_pages_out_encrypted_under_pressure_and_everything_reads_back(
    kenv: Any,
) -> None:
    """The 1.105 daemon with encryption on, 2.3x overcommitted: pageouts go through bounce
    pages (and the OOM reserve), the image never holds a plaintext page, every page reads
    back, and by the end every key made was destroyed (uvm_check checks the key counts after
    every pass)."""
    env = kenv(npages=256, swap_pages=1024, config=KernelConfig(bufcachepercent=0))

    async def body(k: Kernel, env: Any) -> None:
        p = env.spawn(_writer, "w", pages=600)
        await env.wait(p)
        assert p.proc.error is None and p.integrity.mismatches == 0
        assert p.integrity.pages_checked == 600
        await env.settle()

    env.run(body)
    k = env.k
    se = k.swapencrypt
    assert k.uvmexp.pdpageouts > 0 and se.swpencrypted >= 256 and se.swpdecrypted > 0
    assert se.uvm_swpkeyscreated > 0 and se.uvm_swpkeyscreated == se.uvm_swpkeysdeleted
    assert SECRET not in Path(env.disks[0].path).read_bytes()


def test_uvm_check_catches_a_key_that_miscounts_its_slots(kenv: Any) -> None:
    """uvm_check: "each swap encryption key counts the slots of its section marked 'needs
    decrypt', and a key nobody uses is zeroed"."""
    env = kenv(start=False, swapencrypt=True)
    k = env.k
    key = _sdp(k).swd_keys[0]
    key.refcount = 1
    with pytest.raises(Panic, match="swap key does not count its marked slots"):
        uvm_check(k)
    key.refcount = 0
    key.key[0] = 1
    with pytest.raises(Panic, match="swap key"):
        uvm_check(k)
    key.key[0] = 0
    uvm_check(k)
