"""sys/queue.h: intrusive tail queues.

Port of the TAILQ macros of OpenBSD sys/sys/queue.h. Each element owns a :class:`TailQEntry`
in a field named like the C one (``pg.pageq``); a :class:`TailQ` head knows that field's name.
Method names are the macro names, lower-cased, without the ``TAILQ_`` prefix.

Port: C keeps ``tqe_prev`` as a pointer to the previous element's next pointer; here it is the
previous element itself (None at the head), which gives the same O(1) removal. The head keeps
a count so ``len()`` is O(1) (the C head has none; uvmexp keeps the counts the kernel uses).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")

__all__ = ["TailQ", "TailQEntry"]


class TailQEntry(Generic[T]):
    """TAILQ_ENTRY(type): the links an element carries for one queue."""

    __slots__ = ("tqe_head", "tqe_next", "tqe_prev")

    def __init__(self) -> None:
        self.tqe_next: T | None = None
        self.tqe_prev: T | None = None
        self.tqe_head: TailQ[T] | None = None  # PORT: which queue we are on (for check())


class TailQ(Generic[T]):
    """TAILQ_HEAD: a doubly linked queue of elements linked through ``field``."""

    __slots__ = ("_count", "_e", "field", "name", "tqh_first", "tqh_last")

    def __init__(self, field: str, name: str = "") -> None:
        self.field = field
        self.name = name
        self.tqh_first: T | None = None
        self.tqh_last: T | None = None
        self._count = 0
        # PORT: the element's entry, ``getattr(elm, field)``, through a C attrgetter: every
        # link operation takes two or three, and a Python method for it cost a frame each.
        self._e: Callable[[T], TailQEntry[T]] = operator.attrgetter(field)

    def init(self) -> None:
        """TAILQ_INIT. The old elements keep stale links, as in C."""
        self.tqh_first = self.tqh_last = None
        self._count = 0

    def empty(self) -> bool:
        return self.tqh_first is None

    def first(self) -> T | None:
        return self.tqh_first

    def last(self) -> T | None:
        return self.tqh_last

    def next(self, elm: T) -> T | None:
        return self._e(elm).tqe_next

    def prev(self, elm: T) -> T | None:
        return self._e(elm).tqe_prev

    def insert_head(self, elm: T) -> None:
        e = self._e(elm)
        assert e.tqe_head is None, f"TAILQ_INSERT_HEAD({self.name}): element already queued"
        e.tqe_prev = None
        e.tqe_next = self.tqh_first
        if self.tqh_first is not None:
            self._e(self.tqh_first).tqe_prev = elm
        else:
            self.tqh_last = elm
        self.tqh_first = elm
        e.tqe_head = self
        self._count += 1

    def insert_tail(self, elm: T) -> None:
        e = self._e(elm)
        assert e.tqe_head is None, f"TAILQ_INSERT_TAIL({self.name}): element already queued"
        e.tqe_next = None
        e.tqe_prev = self.tqh_last
        if self.tqh_last is not None:
            self._e(self.tqh_last).tqe_next = elm
        else:
            self.tqh_first = elm
        self.tqh_last = elm
        e.tqe_head = self
        self._count += 1

    def insert_after(self, listelm: T, elm: T) -> None:
        le = self._e(listelm)
        e = self._e(elm)
        assert e.tqe_head is None, f"TAILQ_INSERT_AFTER({self.name}): element already queued"
        e.tqe_next = le.tqe_next
        e.tqe_prev = listelm
        if le.tqe_next is not None:
            self._e(le.tqe_next).tqe_prev = elm
        else:
            self.tqh_last = elm
        le.tqe_next = elm
        e.tqe_head = self
        self._count += 1

    def insert_before(self, listelm: T, elm: T) -> None:
        le = self._e(listelm)
        if le.tqe_prev is None:
            self.insert_head(elm)
        else:
            self.insert_after(le.tqe_prev, elm)

    def remove(self, elm: T) -> None:
        e = self._e(elm)
        assert e.tqe_head is self, f"TAILQ_REMOVE({self.name}): element not on this queue"
        if e.tqe_next is not None:
            self._e(e.tqe_next).tqe_prev = e.tqe_prev
        else:
            self.tqh_last = e.tqe_prev
        if e.tqe_prev is not None:
            self._e(e.tqe_prev).tqe_next = e.tqe_next
        else:
            self.tqh_first = e.tqe_next
        e.tqe_next = e.tqe_prev = None
        e.tqe_head = None
        self._count -= 1

    def contains(self, elm: T) -> bool:
        return self._e(elm).tqe_head is self

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[T]:
        """TAILQ_FOREACH_SAFE: the next element is read before yielding the current one."""
        elm = self.tqh_first
        while elm is not None:
            nxt = self._e(elm).tqe_next
            yield elm
            elm = nxt

    def check(self) -> None:
        """Verify every link (tests): forward and backward walks agree, count matches."""
        n = 0
        prev: Any = None
        elm = self.tqh_first
        while elm is not None:
            e = self._e(elm)
            assert e.tqe_head is self, f"{self.name}: element {elm!r} claims another queue"
            assert e.tqe_prev is prev, f"{self.name}: bad tqe_prev at {elm!r}"
            prev = elm
            elm = e.tqe_next
            n += 1
            assert n <= self._count, f"{self.name}: cycle or count too low"
        assert prev is self.tqh_last, f"{self.name}: tqh_last is wrong"
        assert n == self._count, f"{self.name}: count {self._count} but {n} linked"
