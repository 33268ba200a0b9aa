"""sys/systm.h: panic() and the kernel's printf.

``panic("fn: reason")`` becomes ``raise Panic("fn: reason")`` (style C10). ``Panic`` is caught
only by the machine's run loop, which stops every thread and dumps state.
"""

from __future__ import annotations

__all__ = ["Panic", "panic"]


class Panic(Exception):
    """The kernel panicked. ``args[0]`` starts with the function name, like upstream."""

    def __init__(self, msg: str, **detail: object) -> None:
        super().__init__(msg)
        self.detail = detail


def panic(msg: str, **detail: object) -> Panic:
    """Build a Panic to raise: ``raise panic("uvm_pagefree: freeing free page", pg=pg)``."""
    return Panic(msg, **detail)
