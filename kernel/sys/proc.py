"""sys/proc.h: struct proc and curproc.

A Proc is a kernel thread (``P_SYSTEM``) or a user process. ``curproc()`` reads a ContextVar
that each thread sets when it starts, like trio's ``current_task()`` (style C13).
"""

from __future__ import annotations

import contextvars
import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final


class PFlags(enum.IntFlag):
    P_SYSTEM = 0x00000200  # system process: no sigs, stats, or swapping
    P_WEXIT = 0x00002000  # working on exiting


P_SYSTEM: Final = PFlags.P_SYSTEM
P_WEXIT: Final = PFlags.P_WEXIT
P_NONE: Final = PFlags(0)


@dataclass(eq=False, slots=True)
class Proc:
    """struct proc (the parts the port needs). Locks: [I] immutable, (K) kernel only."""

    p_pid: int  # [I] process id
    p_comm: str  # [I] command name
    p_flag: PFlags = P_NONE  # (K)
    p_vmspace: Any = None  # (K) struct vmspace, user processes only
    thread: Any = None  # PORT: the emulated thread (emu.clock.Thread) running this proc
    p_md: Any = None  # (K) struct mdproc: machine-dependent state (the emulated CpuContext)
    p_stat: str = "run"  # PORT: "run", "sleep", "zomb"
    p_wmesg: str | None = None  # what it sleeps on
    p_slptime_start: int = 0  # PORT: virtual ns when it last went to sleep (p_slptime)
    error: BaseException | None = None  # PORT: why a user process ended abnormally
    stats: dict[str, int] = field(default_factory=dict)  # PORT: per-process fault counters

    def __repr__(self) -> str:
        return f"<proc {self.p_pid} {self.p_comm}>"


_curproc: contextvars.ContextVar[Proc | None] = contextvars.ContextVar("curproc", default=None)


# curproc(): the proc running now: a thread's own proc (bound at thread start), proc0 during
# boot and outside the threads after it (init_main.main binds it), None before any boot.
# The context variable's own getter: it is called on every lock operation.
curproc: Callable[[], Proc | None] = _curproc.get


def set_curproc(p: Proc | None) -> None:
    """Bind ``p`` as curproc for the running task (called once at thread start)."""
    _curproc.set(p)
