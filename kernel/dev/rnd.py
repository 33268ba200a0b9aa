"""rnd.c: the kernel's random number generator, as far as the port needs it (arc4random_buf).

OpenBSD's ``sys/dev/rnd.c`` mixes the machine's entropy into a pool, keys a ChaCha20 stream
cipher from it, and hands out that cipher's keystream as arc4random(9) output (the stream is
rekeyed from the pool now and then, and its key is overwritten with fresh keystream after
every request, so an output cannot be recovered from a later state). The only consumer in
the port is swap encryption (``uvm_swap_encrypt.swap_key_create``).

Deviations (PORT):
- No entropy: the stream's key is the SHA-256 of the machine's seed (``k.md.seed``; 0 for a
  kernel booted without the machine glue), so a scenario run twice with the same seed makes
  the same keys and writes the same swap image. A real kernel's keys are unpredictable; here
  anyone who knows the seed can recompute them. What the port keeps is what matters to the
  swap image: the keys exist only in kernel memory and never reach the disk, the event log or
  the summary.
- No rekeying and no backtracking protection: one ChaCha20 keystream per boot, in ``k.rnd``,
  created on first use.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Final

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms

if TYPE_CHECKING:
    from kernel.kernel import Kernel

__all__ = ["arc4random_buf"]

_NONCE: Final = bytes(16)  # one stream per key: the counter starts at 0


def arc4random_buf(k: Kernel, buf: bytearray | memoryview) -> None:
    """arc4random_buf: fill ``buf`` with bytes of the kernel's random stream.

    Port: the keystream is written straight into ``buf`` (no copy of it is left behind).
    """
    rs = k.rnd
    if rs is None:
        rs = k.rnd = _rs_init(k)
    rs.update_into(bytes(len(buf)), buf)


# --- port helpers -----------------------------------------------------------------------------


def _rs_init(k: Kernel) -> CipherContext:
    """PORT: the ChaCha20 keystream of this boot, keyed from the machine's seed."""
    seed = int(getattr(k.md, "seed", 0) or 0)
    key = hashlib.sha256(b"uvm-emu rnd.c seed %d" % seed).digest()
    return Cipher(algorithms.ChaCha20(key, _NONCE), mode=None).encryptor()
