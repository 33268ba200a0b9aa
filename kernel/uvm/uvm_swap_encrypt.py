"""uvm_swap_encrypt.c: encryption of the pages the UVM writes to swap.

Port of the behaviour of OpenBSD sys/uvm/uvm_swap_encrypt.c,v 1.24 2021/03/12 and
uvm_swap_encrypt.h,v 1.14 2024/11/07 (reference §1.9 steps 5, 6 and 8). Comments are the
port's own wording. uvm_swap.py calls it from ``uvm_swap_io`` and ``uvm_swap_free``.

Every swap device is cut into sections of ``1 << SWD_KEY_SHIFT`` slots (uvm_swap.py), and
each section has a :class:`SwapKey`: 128 bits of key and the number of its slots that were
written encrypted and are still allocated. The key is drawn at random when that number goes
from 0 to 1 (``swap_key_get``) and destroyed when it drops back to 0 (``swap_key_put``: the
bytes are zeroed and ``uvm_swpkeysdeleted`` counts it), so a slot's old contents can be read
by nobody once the last slot of its section is given back. A page is encrypted with AES-128
in CBC mode; its IV is the AES encryption, under the same key, of its first disk block
number (high 32 bits, low 32 bits, then the complements of both).

State (the C globals) lives in ``k.swapencrypt``, a :class:`SwapEncrypt` made on first use:
``uvm_doswapencrypt`` (sysctl vm.swapencrypt.enable, initially ``KernelConfig.swapencrypt``),
the counters, ``swap_encrypt_initialized`` (some page was encrypted: from then on every read
checks whether its slot needs decrypting) and the key schedule of the last key used.

Deviations (PORT):
- The cipher is AES from the ``cryptography`` package (OpenSSL), not the kernel's own
  sys/crypto/rijndael.c. The mode and the IV are upstream's, so a page's ciphertext is the
  one an amd64 kernel would write with the same key: the four IV words are laid out
  little-endian, as amd64 stores them (upstream notes it only has to decrypt on the same
  machine). Rijndael's key schedule becomes a set of cipher contexts for the current key
  ``kcur``: an ECB encryptor for the IVs, and a CBC encryptor and decryptor that run on
  from page to page (see :func:`_cbc_in` and :func:`_cbc_out`); upstream's "encryption-only
  schedule" is a set without the decryptor. Upstream expands a key again whenever another
  key becomes the current one; the port keeps each live key's contexts with the key
  (``SwapKey.sched``) and makes them once, because making them costs more host time than
  the cipher itself and the reads of a miss-heavy run hop from section to section. What
  ``kcur`` and ``swap_ctxt`` hold is upstream's; the contexts go when the key is destroyed.
  They take about 2.9 KB of host memory per live key, i.e. per 512 KiB section of swap that
  holds encrypted pages. The ECB call that makes an encrypted page's IV
  also makes those of the pages after it up to a cluster (:func:`_ivs_ahead`): the same
  IVs, one call into the library per cluster.
- Key material comes from ``dev/rnd.py``'s ``arc4random_buf``, keyed from the machine's seed,
  so a run repeats exactly; a real kernel's arc4random is seeded with entropy. The keys stay
  in kernel memory: no event, summary field or file ever holds one.
- ``swap_key_cleanup`` cannot overwrite OpenSSL's key schedule: it drops the contexts
  (OpenSSL cleanses a context's memory when it frees it); the key bytes themselves are zeroed
  in place, as explicit_bzero does.
- ``swap_encrypt_ctl`` (sysctl vm.swapencrypt.*) takes the name and an optional new value and
  returns (errno, value); the "not a leaf" check of the C has no Python counterpart.
- Virtual CPU time: each page encrypted or decrypted charges
  ``KernelCosts.swapencrypt_page_ns`` / ``swapdecrypt_page_ns``, and is counted
  (``swpencrypted``, ``swpdecrypted``) for the run's summary.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

import kernel.uvm.uvm_swap as uvm_swap
from kernel.dev.rnd import arc4random_buf
from kernel.sys.errno import EINVAL, EOPNOTSUPP, EPERM
from kernel.sys.param import PAGE_SHIFT, PAGE_SIZE, btodb
from kernel.sys.systm import Panic

if TYPE_CHECKING:
    from kernel.kernel import Kernel

__all__ = [
    "SWAP_KEY_SIZE",
    "SWPENC_CREATED",
    "SWPENC_DELETED",
    "SWPENC_ENABLE",
    "SwapEncrypt",
    "SwapKey",
    "swap_decrypt",
    "swap_encrypt",
    "swap_encrypt_ctl",
    "swap_key_cleanup",
    "swap_key_create",
    "swap_key_delete",
    "swap_key_get",
    "swap_key_prepare",
    "swap_key_put",
    "swapencrypt",
]

# sysctl vm.swapencrypt names
SWPENC_ENABLE: Final = 0
SWPENC_CREATED: Final = 1
SWPENC_DELETED: Final = 2
SWPENC_MAXID: Final = 3

SWAP_KEY_SIZE: Final = 4  # 128-bit keys (in 32-bit words)

_M32: Final = 0xFFFFFFFF
_BLK: Final = 16  # the AES block
SWCLUSTPAGES_IV: Final = 16  # PORT: IVs _ivs_ahead makes at once (SWCLUSTPAGES, uvm_swap.h)
_PAGE_BLOCKS: Final = btodb(PAGE_SIZE)  # a page's disk blocks


@dataclass(eq=False, slots=True, repr=False)
class SwapKey:
    """struct swap_key: the key of one section of a swap device.

    Invariant: ``refcount`` is the number of the section's slots marked "needs decrypt"
    (uvm_swap.py); the key bytes are all zero, and ``sched`` is None, whenever ``refcount``
    is 0.
    """

    key: bytearray = field(default_factory=lambda: bytearray(4 * SWAP_KEY_SIZE))  # secret key for swap range
    refcount: int = 0  # pages that still need it
    sched: _RijndaelCtx | None = None  # PORT: this key's schedule, once made (docstring)

    def __repr__(self) -> str:  # PORT: never the key itself
        return f"<swap_key refcount={self.refcount}>"


@dataclass(eq=False, slots=True)
class _RijndaelCtx:
    """PORT: rijndael_ctx, the schedule(s) of one key, as cipher contexts.

    ``enc_iv`` / ``dec_iv``: the block the CBC encryptor / decryptor chains into the next
    block it is given (its last ciphertext block; 0 before the first).
    """

    ecb: CipherContext
    enc: CipherContext
    enc_iv: int = 0
    dec: CipherContext | None = None
    dec_iv: int = 0
    iv_block: int = -1  # the first block of the IVs in iv_run (see _ivs_ahead)
    iv_run: bytes = b""

    @property
    def enc_only(self) -> bool:
        """Upstream's "encryption-only schedule": no decryptor made yet."""
        return self.dec is None


@dataclass(eq=False, slots=True, repr=False)
class SwapEncrypt:
    """The globals of uvm_swap_encrypt.c (``k.swapencrypt``), and the port's page counters."""

    uvm_doswapencrypt: int = 1  # swapencrypt enabled/disabled
    uvm_swpkeyscreated: int = 0
    uvm_swpkeysdeleted: int = 0
    swap_encrypt_initialized: int = 0
    kcur: SwapKey | None = None  # the key swap_ctxt was prepared for
    swap_ctxt: _RijndaelCtx | None = None
    swpencrypted: int = 0  # PORT: pages encrypted
    swpdecrypted: int = 0  # PORT: pages decrypted

    def __repr__(self) -> str:  # PORT: no key schedule
        return (
            f"<swapencrypt enable={self.uvm_doswapencrypt} created={self.uvm_swpkeyscreated}"
            f" deleted={self.uvm_swpkeysdeleted} initialized={self.swap_encrypt_initialized}>"
        )


def swapencrypt(k: Kernel) -> SwapEncrypt:
    """PORT: ``k.swapencrypt``, set up on first use (the C's static initialisers), with
    ``uvm_doswapencrypt`` from the kernel configuration."""
    se = k.swapencrypt
    if se is None:
        se = k.swapencrypt = SwapEncrypt(uvm_doswapencrypt=int(k.config.swapencrypt))
    return se


def swap_encrypt_ctl(k: Kernel, name: int, newval: int | None = None) -> tuple[int, int]:
    """swap_encrypt_ctl: sysctl vm.swapencrypt.{enable,keyscreated,keysdeleted}.

    => ``newval`` None reads; enable takes 0 or 1 (EINVAL otherwise), the counters are
       read-only (EPERM)
    => returns (errno, the value before any change)
    """
    se = swapencrypt(k)
    if name == SWPENC_ENABLE:
        doencrypt = old = se.uvm_doswapencrypt
        if newval is not None:
            if not 0 <= newval <= 1:  # sysctl_int_bounded(..., 0, 1)
                return int(EINVAL), old
            doencrypt = newval
        # encryption switched on: the swap devices added meanwhile need their decrypt map
        # and keys before the first encrypted write
        if doencrypt:
            uvm_swap.uvm_swap_initcrypt_all(k)
        se.uvm_doswapencrypt = doencrypt
        return 0, old
    if name == SWPENC_CREATED:
        return (int(EPERM) if newval is not None else 0), se.uvm_swpkeyscreated
    if name == SWPENC_DELETED:
        return (int(EPERM) if newval is not None else 0), se.uvm_swpkeysdeleted
    return int(EOPNOTSUPP), 0


def swap_key_create(k: Kernel, key: SwapKey) -> None:
    """swap_key_create: fill ``key`` with fresh random bytes."""
    arc4random_buf(k, key.key)
    swapencrypt(k).uvm_swpkeyscreated += 1


def swap_key_delete(k: Kernel, key: SwapKey) -> None:
    """swap_key_delete: destroy ``key`` and its schedule."""
    # forget the schedule if this key was the last one used
    swap_key_cleanup(k, key)
    key.sched = None  # PORT: and the one kept with the key (module docstring)
    key.key[:] = bytes(len(key.key))  # explicit_bzero(key, sizeof(*key))
    key.refcount = 0
    swapencrypt(k).uvm_swpkeysdeleted += 1


def swap_encrypt(
    k: Kernel, key: SwapKey, src: memoryview, dst: memoryview, block: int, count: int
) -> None:
    """swap_encrypt: encrypt ``count`` bytes of ``src`` into ``dst`` before they go to swap.

    => ``block``: the disk block (DEV_BSIZE units) the data starts at; ``count`` a multiple
       of the AES block
    """
    se = k.swapencrypt or swapencrypt(k)
    if not se.swap_encrypt_initialized:
        se.swap_encrypt_initialized = 1
    swap_key_prepare(k, key, 1)
    ctx = se.swap_ctxt
    assert ctx is not None
    _cbc_in(ctx, _ivs_ahead(ctx, block), src, dst, count)
    npages = count >> PAGE_SHIFT
    se.swpencrypted += npages
    k.sched.charge(npages * k.config.costs.swapencrypt_page_ns)  # PORT: CPU time


def swap_decrypt(
    k: Kernel, key: SwapKey, src: memoryview, dst: memoryview, block: int, count: int
) -> None:
    """swap_decrypt: decrypt ``count`` bytes read from swap at ``block`` into ``dst``
    (``src`` and ``dst`` may be the same page)."""
    se = swapencrypt(k)
    if not se.swap_encrypt_initialized:
        raise Panic("swap_decrypt: key not initialized")
    swap_key_prepare(k, key, 0)
    ctx = se.swap_ctxt
    assert ctx is not None
    _cbc_out(ctx, _iv(ctx, block), src, dst, count)
    npages = count >> PAGE_SHIFT
    se.swpdecrypted += npages
    k.sched.charge(npages * k.config.costs.swapdecrypt_page_ns)  # PORT: CPU time


def swap_key_prepare(k: Kernel, key: SwapKey, encrypt: int) -> None:
    """swap_key_prepare: make ``key``'s schedule the current one.

    => nothing to do if it already is, unless we decrypt and only the encryption schedule
       was made: then both are made
    """
    se = k.swapencrypt or swapencrypt(k)
    ctx = se.swap_ctxt
    if se.kcur is key and ctx is not None and (encrypt or not ctx.enc_only):
        return
    ctx = key.sched  # PORT: made once per key (module docstring)
    if ctx is None:
        aes = algorithms.AES(key.key)
        zero = bytes(_BLK)
        ctx = key.sched = _RijndaelCtx(
            ecb=Cipher(aes, modes.ECB()).encryptor(),
            enc=Cipher(aes, modes.CBC(zero)).encryptor(),
            dec=None if encrypt else Cipher(aes, modes.CBC(zero)).decryptor(),
        )
    elif not encrypt and ctx.enc_only:
        ctx.dec = Cipher(algorithms.AES(key.key), modes.CBC(bytes(_BLK))).decryptor()
    se.swap_ctxt = ctx
    se.kcur = key


def swap_key_cleanup(k: Kernel, key: SwapKey) -> None:
    """swap_key_cleanup: make sure the schedule of ``key`` is gone (if it is the current one)."""
    se = swapencrypt(k)
    if se.kcur is None or se.kcur is not key:
        return
    se.swap_ctxt = None  # PORT: OpenSSL cleanses the contexts' memory when it frees them
    se.kcur = None


def swap_key_get(k: Kernel, key: SwapKey) -> None:
    """swap_key_get (uvm_swap_encrypt.h): one more slot uses ``key``; the first makes it."""
    if key.refcount == 0:
        swap_key_create(k, key)
    key.refcount += 1


def swap_key_put(k: Kernel, key: SwapKey) -> None:
    """swap_key_put (uvm_swap_encrypt.h): one slot less uses ``key``; the last destroys it."""
    key.refcount -= 1
    if key.refcount == 0:
        swap_key_delete(k, key)


# --- port helpers -----------------------------------------------------------------------------


def _iv(ctx: _RijndaelCtx, block: int) -> int:
    """PORT: the IV of the data at disk block ``block``: E_K(hi, lo, ~hi, ~lo), 32-bit words
    in amd64's (little-endian) memory order; returned as an int for XORing."""
    hi, lo = (block >> 32) & _M32, block & _M32
    iv = ctx.ecb.update(struct.pack("<4I", hi, lo, hi ^ _M32, lo ^ _M32))
    return int.from_bytes(iv, "little")


def _ivs_ahead(ctx: _RijndaelCtx, block: int) -> int:
    """PORT: the IV of ``block``, made with those of the pages after it up to a swap cluster
    in one ECB call (uvm_swap_io encrypts a cluster's pages in block order): one call into
    the cipher per cluster instead of one per page."""
    i, r = divmod(block - ctx.iv_block, _PAGE_BLOCKS)
    if ctx.iv_block < 0 or r or not 0 <= i < SWCLUSTPAGES_IV:
        words: list[int] = []
        for b in range(block, block + SWCLUSTPAGES_IV * _PAGE_BLOCKS, _PAGE_BLOCKS):
            hi, lo = (b >> 32) & _M32, b & _M32
            words += (hi, lo, hi ^ _M32, lo ^ _M32)
        ctx.iv_run = ctx.ecb.update(struct.pack(f"<{len(words)}I", *words))
        ctx.iv_block, i = block, 0
    return int.from_bytes(ctx.iv_run[i * _BLK : (i + 1) * _BLK], "little")


def _cbc_in(ctx: _RijndaelCtx, iv: int, src: memoryview, dst: memoryview, count: int) -> None:
    """PORT: CBC-encrypt ``src[:count]`` with ``iv`` into ``dst``, on the running encryptor.

    The encryptor XORs its previous ciphertext block (``enc_iv``) into the next block it is
    given; giving it ``P0 ^ iv ^ enc_iv`` as the first block makes that ``P0 ^ iv``, so the
    output is exactly CBC with ``iv`` started afresh, without a new context per page.
    """
    first = int.from_bytes(src[:_BLK], "little") ^ iv ^ ctx.enc_iv
    out = ctx.enc.update(first.to_bytes(_BLK, "little") + src[_BLK:count])
    dst[:count] = out
    ctx.enc_iv = int.from_bytes(out[-_BLK:], "little")


def _cbc_out(ctx: _RijndaelCtx, iv: int, src: memoryview, dst: memoryview, count: int) -> None:
    """PORT: CBC-decrypt ``src[:count]`` with ``iv`` into ``dst`` (may be ``src``), on the
    running decryptor, which XORs its previous ciphertext block (``dec_iv``) into the first
    plaintext block: that is swapped for ``iv``."""
    assert ctx.dec is not None
    last = int.from_bytes(src[count - _BLK : count], "little")  # before dst overwrites it
    out = ctx.dec.update(src[:count])
    first = int.from_bytes(out[:_BLK], "little") ^ ctx.dec_iv ^ iv
    dst[:_BLK] = first.to_bytes(_BLK, "little")
    dst[_BLK:count] = memoryview(out)[_BLK:]
    ctx.dec_iv = last
