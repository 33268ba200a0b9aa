"""sys/queue.h TAILQ: the intrusive tail queue the paging queues are made of.

Pins style C9: method names are the macro names (insert_tail, insert_after, remove, first,
next), O(1) removal through the element's own entry, and check() verifying every link.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from kernel.sys.queue import TailQ, TailQEntry


@dataclass(eq=False)
class Elm:
    name: str
    link: TailQEntry[Elm] = field(default_factory=TailQEntry)


def names(q: TailQ[Elm]) -> list[str]:
    return [e.name for e in q]


def test_insert_tail_keeps_fifo_order():
    """TAILQ_INSERT_TAIL appends; TAILQ_FIRST / TAILQ_NEXT walk from the head."""
    q: TailQ[Elm] = TailQ("link", "q")
    a, b, c = Elm("a"), Elm("b"), Elm("c")
    for e in (a, b, c):
        q.insert_tail(e)
    assert names(q) == ["a", "b", "c"] and len(q) == 3
    assert q.first() is a and q.next(a) is b and q.next(c) is None and q.last() is c
    q.check()


def test_insert_head_after_and_before():
    """TAILQ_INSERT_HEAD / _AFTER / _BEFORE link at the right place (the marker idiom)."""
    q: TailQ[Elm] = TailQ("link", "q")
    a, b, m, z = Elm("a"), Elm("b"), Elm("marker"), Elm("z")
    q.insert_tail(b)
    q.insert_head(a)
    q.insert_after(a, m)
    q.insert_before(a, z)
    assert names(q) == ["z", "a", "marker", "b"]
    q.check()


def test_remove_from_anywhere_in_constant_links():
    """TAILQ_REMOVE unlinks head, middle and tail; the element can be queued again."""
    q: TailQ[Elm] = TailQ("link", "q")
    es = [Elm(str(i)) for i in range(5)]
    for e in es:
        q.insert_tail(e)
    q.remove(es[0])
    q.remove(es[2])
    q.remove(es[4])
    assert names(q) == ["1", "3"] and not q.contains(es[2])
    q.check()
    q.insert_tail(es[2])
    assert names(q) == ["1", "3", "2"]
    q.check()


def test_iteration_survives_removing_the_current_element():
    """TAILQ_FOREACH_SAFE: the next element is read before the current one is yielded."""
    q: TailQ[Elm] = TailQ("link", "q")
    for i in range(4):
        q.insert_tail(Elm(str(i)))
    for e in q:
        q.remove(e)
    assert q.empty() and len(q) == 0
    q.check()


def test_double_insert_and_foreign_remove_are_caught():
    """An element on a queue cannot be inserted again or removed from another queue."""
    q1: TailQ[Elm] = TailQ("link", "q1")
    q2: TailQ[Elm] = TailQ("link", "q2")
    e = Elm("e")
    q1.insert_tail(e)
    with pytest.raises(AssertionError):
        q2.insert_tail(e)
    with pytest.raises(AssertionError):
        q2.remove(e)


def test_check_finds_broken_links():
    """check() verifies forward/backward agreement and the count."""
    q: TailQ[Elm] = TailQ("link", "q")
    a, b = Elm("a"), Elm("b")
    q.insert_tail(a)
    q.insert_tail(b)
    b.link.tqe_prev = None  # corrupt the back link
    with pytest.raises(AssertionError, match="bad tqe_prev"):
        q.check()
