"""uvm_object.h / uvm_object.c: the generic VM object and its pager operations.

Port of OpenBSD sys/uvm/uvm_object.h and the init/destroy part of uvm_object.c (2022), as
the reference §1.2 and §1.8 describe them. Comments are the port's own wording (no upstream
text is vendored for this file).

Deviations:
- The object's page tree (an RB tree keyed by offset) is a dict keyed by byte offset
  (style C9); callers that walk it in order use ``sorted()``.
- ``struct uvm_pagerops`` is the frozen record :class:`UvmPagerOps`. Its operations that can
  sleep in C (get, put, flush, reference, detach) are coroutines. It carries a ``pgo_name``
  the C struct lacks, so ``UVM_OBJ_IS_AOBJ`` / ``UVM_OBJ_IS_VNODE`` compare names instead of
  the addresses of ``aobj_pager`` / ``uvm_vnodeops``: this module stays a leaf that
  uvm_aobj.py and uvm_vnode.py can import by name without an import cycle.
- C out-parameters are returned (docs/kernel-interfaces.md): ``pgo_get`` returns
  ``(result, npages)``, ``pgo_cluster`` returns ``(lo, hi)``, ``pgo_mk_pcluster`` returns
  ``(cluster, npages)`` where C returns a pointer into the caller's array.

This module is a leaf: it imports nothing from kernel.uvm at run time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from kernel.kern.kern_synch import RWLock
from kernel.sys.systm import KASSERT, KASSERTMSG

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.uvm.uvm_page import VmPage

__all__ = [
    "UVM_OBJ_IS_AOBJ",
    "UVM_OBJ_IS_KERN_OBJECT",
    "UVM_OBJ_IS_VNODE",
    "UVM_OBJ_KERN",
    "UvmObject",
    "UvmPagerOps",
    "uvm_obj_destroy",
    "uvm_obj_init",
]

# uo_refs value of the kernel object: it is never detached.
UVM_OBJ_KERN: Final = -2

# --- pager operation types (uvm_pager.h: struct uvm_pagerops) --------------------------------

# pgo_get(k, uobj, offset, pps, npages, centeridx, access_type, advice, flags)
#   -> (VM_PAGER_* result, npages)
PgoGet = Callable[
    ["Kernel", "UvmObject", int, "list[VmPage | None]", int, int, int, int, int],
    Awaitable["tuple[int, int]"],
]
# pgo_put(k, uobj, pps, npages, flags) -> VM_PAGER_* result
PgoPut = Callable[["Kernel", "UvmObject", "list[VmPage | None]", int, int], Awaitable[int]]
# pgo_flush(k, uobj, start, stop, flags) -> TRUE unless an I/O error happened
PgoFlush = Callable[["Kernel", "UvmObject", int, int, int], Awaitable[bool]]
# pgo_reference / pgo_detach(k, uobj)
PgoRef = Callable[["Kernel", "UvmObject"], Awaitable[None]]
# pgo_cluster(k, uobj, offset) -> (lo, hi), byte offsets of the window around offset
PgoCluster = Callable[["Kernel", "UvmObject", int], "tuple[int, int]"]
# pgo_mk_pcluster(k, uobj, pps, npages, center, flags, mlo, mhi) -> (cluster, npages)
PgoMkPcluster = Callable[
    ["Kernel", "UvmObject", "list[VmPage | None]", int, "VmPage", int, int, int],
    "tuple[list[VmPage | None], int]",
]


@dataclass(frozen=True, slots=True)
class UvmPagerOps:
    """struct uvm_pagerops: what a pager does for the objects it backs.

    Any operation may be None, as in C (the aobj pager has no put: its pages go out through
    the swap path). ``pgo_name`` is the port's: see the module docstring.
    """

    pgo_name: str  # PORT: "aobj", "vnode", ...
    pgo_init: Callable[[], None] | None = None  # init pager
    pgo_reference: PgoRef | None = None  # add reference to obj
    pgo_detach: PgoRef | None = None  # drop reference to obj
    pgo_flush: PgoFlush | None = None  # flush pages out of obj
    pgo_get: PgoGet | None = None  # get/read pages
    pgo_put: PgoPut | None = None  # put/write pages
    pgo_cluster: PgoCluster | None = None  # return range of cluster
    pgo_mk_pcluster: PgoMkPcluster | None = None  # make "put" cluster


@dataclass(eq=False, slots=True)
class UvmObject:
    """struct uvm_object. Locks: (o) vmobjlock, [I] immutable after init.

    The object's pages live in ``memt`` by byte offset; ``uo_npages == len(memt)`` always.
    """

    pgops: UvmPagerOps  # [I] pager ops
    vmobjlock: RWLock = field(default_factory=lambda: RWLock("uobjlk"))  # lock on object
    memt: dict[int, VmPage] = field(default_factory=dict)  # (o) pages in object, by offset
    uo_npages: int = 0  # (o) # of pages in memt
    uo_refs: int = 0  # (o) reference count

    def __repr__(self) -> str:
        return f"<uvm_object {self.pgops.pgo_name} npages={self.uo_npages} refs={self.uo_refs}>"


def UVM_OBJ_IS_AOBJ(uobj: UvmObject) -> bool:
    """UVM_OBJ_IS_AOBJ: is ``uobj`` an anonymous (swap-backed) object?"""
    return uobj.pgops.pgo_name == "aobj"


def UVM_OBJ_IS_VNODE(uobj: UvmObject) -> bool:
    """UVM_OBJ_IS_VNODE: is ``uobj`` backed by a vnode?"""
    return uobj.pgops.pgo_name == "vnode"


def UVM_OBJ_IS_KERN_OBJECT(uobj: UvmObject) -> bool:
    """UVM_OBJ_IS_KERN_OBJECT: the kernel object, which is never freed."""
    return uobj.uo_refs == UVM_OBJ_KERN


def uvm_obj_init(uobj: UvmObject, pgops: UvmPagerOps, refs: int) -> None:
    """uvm_obj_init: initialise a uvm_object.

    => gives the object its own lock, an empty page tree and ``refs`` references
    """
    uobj.pgops = pgops
    uobj.vmobjlock = RWLock("uobjlk")
    uobj.memt = {}
    uobj.uo_npages = 0
    uobj.uo_refs = refs


def uvm_obj_destroy(k: Kernel, uobj: UvmObject) -> None:
    """uvm_obj_destroy: the object is going away.

    => its page tree must be empty
    """
    KASSERTMSG(k, not uobj.memt, "uvm_obj_destroy: object still has pages")
    KASSERT(k, uobj.uo_npages == 0)
