"""sys/systm.h: panic(), the kernel's printf, and KASSERT.

``panic("fn: reason")`` becomes ``raise Panic("fn: reason")`` (style C10). ``Panic`` is caught
only by the machine's run loop, which stops every thread and dumps state.

``KASSERT(e)`` becomes ``KASSERT(k, e)`` and ``KASSERTMSG(e, msg)`` ``KASSERTMSG(k, e, msg)``
(lib/libkern/libkern.h): in a kernel built with DIAGNOSTIC (``k.config.diagnostic``) a false
``e`` panics with C's message, naming the expression, file and line; without DIAGNOSTIC
nothing is checked. Port: ``e`` is still evaluated (C does not compile it at all), so it must
have no side effects; a NULL-pointer KASSERT that mypy needs for narrowing stays
``assert x is not None`` (docs/kernel-interfaces.md).
"""

from __future__ import annotations

import ast
import linecache
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import FrameType

    from kernel.kernel import Kernel

__all__ = ["KASSERT", "KASSERTMSG", "Panic", "panic"]


class Panic(Exception):
    """The kernel panicked. ``args[0]`` starts with the function name, like upstream."""

    def __init__(self, msg: str, **detail: object) -> None:
        super().__init__(msg)
        self.detail = detail


def panic(msg: str, **detail: object) -> Panic:
    """Build a Panic to raise: ``raise panic("uvm_pagefree: freeing free page", pg=pg)``."""
    return Panic(msg, **detail)


def KASSERT(k: Kernel, e: object) -> None:
    """KASSERT(e): with DIAGNOSTIC, panic unless ``e`` holds; without it, nothing."""
    if not e and k.config.diagnostic:
        raise _kassert_failed(sys._getframe(1), "")


def KASSERTMSG(k: Kernel, e: object, msg: str) -> None:
    """KASSERTMSG(e, msg): KASSERT whose panic message ends with ``msg``."""
    if not e and k.config.diagnostic:
        raise _kassert_failed(sys._getframe(1), msg)


# --- port helpers -----------------------------------------------------------------------------


def _kassert_failed(frame: FrameType, msg: str) -> Panic:
    """The panic of a failed KASSERT at ``frame``: 'kernel diagnostic assertion "e" failed:
    file "f", line n' (and `` msg``), with the expression's source text."""
    path, line = frame.f_code.co_filename, frame.f_lineno
    expr = _kassert_expr(path, line)
    at = path.rfind("/kernel/")
    fname = path[at + 1 :] if at >= 0 else path
    text = f'kernel diagnostic assertion "{expr}" failed: file "{fname}", line {line}'
    return Panic(f"{text} {msg}" if msg else text, file=fname, line=line)


def _kassert_expr(path: str, line: int) -> str:
    """The source of the asserted expression of the KASSERT call on ``line`` of ``path``."""
    src = "".join(linecache.getlines(path))
    try:
        tree = ast.parse(src)
    except SyntaxError:
        return "?"
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("KASSERT", "KASSERTMSG")
            and len(node.args) >= 2
            and node.lineno <= line <= (node.end_lineno or node.lineno)
        ):
            return ast.get_source_segment(src, node.args[1]) or "?"
    return "?"
