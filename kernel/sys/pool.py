"""sys/pool.h: the flags of pool_get(9), as far as the kernel uses them.

Port: no memory pools are modelled; the pools whose exhaustion the UVM handles are counted,
each a :class:`Pool`: the buffer pool of kern/vfs_bio.py (``k.bufpool``, through
``bufpool_get``/``bufpool_put``), and uvm_aobj.c's swap hash element pool
(``k.uao_swhash_elt_pool``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["PR_NOWAIT", "PR_WAITOK", "Pool"]

PR_WAITOK: Final = 0x0001
PR_NOWAIT: Final = 0x0002


@dataclass(eq=False, slots=True)
class Pool:
    """struct pool, as far as it is counted: items handed out, and pool_sethardlimit()'s
    limit (None: none). PORT: the items are Python objects; only the count is kept."""

    pr_nout: int = 0  # items handed out and not yet returned
    pr_hardlimit: int | None = None  # pool_get fails (PR_NOWAIT) once pr_nout reaches it
