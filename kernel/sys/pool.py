"""sys/pool.h: the flags of pool_get(9), as far as the kernel uses them.

Port: no memory pools are modelled; the one pool the UVM asks for, the buffer pool, is
counted in kern/vfs_bio.py (``bufpool_get``/``bufpool_put``).
"""

from __future__ import annotations

from typing import Final

__all__ = ["PR_NOWAIT", "PR_WAITOK"]

PR_WAITOK: Final = 0x0001
PR_NOWAIT: Final = 0x0002
