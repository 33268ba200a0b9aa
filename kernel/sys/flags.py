"""PORT: cheaper operators for the kernel's ``enum.IntFlag`` classes (C has plain ints).

``enum.Flag``'s ``&``, ``|`` and ``^`` turn their result back into a member through several
Python calls in enum.py (``EnumType.__call__``, ``Enum.__new__``): about 1 µs each, and a page
fault does dozens. :func:`fast_ops` replaces them with one C-level ``int`` operation and a
look-up in the class's own cache of members, falling back to the class call for a value not
seen yet (which caches it), the whole memoized by ``functools.lru_cache`` on the operands and
their types, so a repeated operation runs no Python code at all. The results are the very
objects enum.Flag returns (same class, same value, same repr); only the cost changes. ``~``
is left alone: enum.Flag caches it per member already. An operand must be hashable (ints and
flags are; a numpy array on the right of a flag is refused with TypeError).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["fast_ops"]

F = TypeVar("F", bound=type[enum.IntFlag])


def fast_ops(cls: F) -> F:
    """Class decorator: C-speed ``&``, ``|``, ``^`` (and their reflections) for an IntFlag."""
    members: dict[Any, Any] = cls._value2member_map_

    def op(intop: Callable[[int, Any], Any]) -> Callable[[Any, Any], Any]:
        def f(self: Any, other: Any) -> Any:
            v = intop(self, other)
            if v is NotImplemented:
                return v
            m = members.get(v)
            return m if m is not None else cls(v)

        return f

    for names, intop in ((("__and__", "__rand__"), int.__and__),
                         (("__or__", "__ror__"), int.__or__),
                         (("__xor__", "__rxor__"), int.__xor__)):  # fmt: skip
        # memoized by operands and their types: an operation seen before (all of them, after
        # the first few faults) costs a C-level cache hit, no Python frame
        f = functools.lru_cache(maxsize=None, typed=True)(op(intop))
        for name in names:
            setattr(cls, name, f)
    return cls
