"""kern_kthread.c: kernel threads.

Port of OpenBSD sys/kern/kern_kthread.c (``kthread_create``): a kernel thread is a process
forked from proc0 with FORK_SYSTEM that shares the kernel's address space.

Deviations (PORT): ``kthread_create`` is the only way to start a kernel thread (style C13). It
takes the Kernel first and the thread function's arguments directly (C passes one ``void *``)
and returns the new proc (C returns an errno and the proc through a pointer; it cannot fail
here). The thread runs under the machine's scheduler as a *daemon* thread: the run ends when
the last user process has exited, and the daemons are then cancelled. An exception escaping
the thread is a panic that ends the run (kern_fork.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import kernel.kern.kern_fork as kern_fork

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.sys.proc import Proc

__all__ = ["kthread_create"]


def kthread_create(k: Kernel, func: kern_fork.ThreadFn, *args: Any, name: str) -> Proc:
    """kthread_create: fork a kernel thread running ``func(*args)``, named ``name``.

    => must be called while the machine runs (inside Clock.run's setup or a thread)
    => curproc is the new proc inside ``func``; structlog events carry ``proc=name``
    """
    p = kern_fork.fork1(
        k,
        name,
        kern_fork.FORK_SHAREVM
        | kern_fork.FORK_SHAREFILES
        | kern_fork.FORK_NOZOMBIE
        | kern_fork.FORK_SYSTEM,
        func,
        *args,
    )
    k.kthreads.append(p)
    return p
