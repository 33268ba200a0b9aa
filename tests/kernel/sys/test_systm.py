"""kernel/sys/systm.py: panic and KASSERT.

KASSERT follows the kernel's DIAGNOSTIC build option (``[kernel] diagnostic``): a kernel built
with it panics on a false assertion, with C's message ('kernel diagnostic assertion "e"
failed: file "f", line n'); a kernel built without it does not check at all (issue 12 item 7).
"""

from __future__ import annotations

from typing import Any

import pytest

import kernel.uvm.uvm_anon as uvm_anon
import kernel.uvm.uvm_swap as uvm_swap
from kernel.kernel import KernelConfig
from kernel.sys.systm import KASSERT, KASSERTMSG, Panic


def _referenced_unlocked_anon_with_a_slot(k: Any) -> Any:
    """An anon with a reference and no lock: uvm_anon_dropswap's KASSERT ("anon must be
    locked or have a reference count of 0") does not hold."""
    anon = uvm_anon.uvm_analloc(k)
    assert anon.an_ref == 1 and anon.an_lock is None
    anon.an_swslot, _ = uvm_swap.uvm_swap_alloc(k, 1, False)
    return anon


def test_a_diagnostic_kernel_panics_on_a_false_kassert_naming_it(kenv: Any) -> None:
    k = kenv(start=False, config=KernelConfig(diagnostic=True, bufcachepercent=0)).k
    anon = _referenced_unlocked_anon_with_a_slot(k)
    with pytest.raises(Panic) as ei:
        uvm_anon.uvm_anon_dropswap(k, anon)
    msg = str(ei.value)
    assert msg.startswith(
        'kernel diagnostic assertion "anon.an_ref == 0 or (anon.an_lock is not None and '
        'rw_lock_held(anon.an_lock))" failed: file "kernel/uvm/uvm_anon.py", line '
    )
    assert ei.value.detail["file"] == "kernel/uvm/uvm_anon.py"
    assert anon.an_swslot != 0  # stopped before it touched anything
    anon.an_ref = 0
    uvm_anon.uvm_anon_dropswap(k, anon)


def test_a_kernel_without_diagnostic_does_not_check(kenv: Any) -> None:
    """The same state with `[kernel] diagnostic = false`: no panic, the slot is dropped."""
    k = kenv(start=False, config=KernelConfig(diagnostic=False, bufcachepercent=0)).k
    anon = _referenced_unlocked_anon_with_a_slot(k)
    uvm_anon.uvm_anon_dropswap(k, anon)
    assert anon.an_swslot == 0 and k.uvmexp.swpginuse == 0


def test_kassertmsg_appends_its_message(kenv: Any) -> None:
    k = kenv(start=False).k
    KASSERT(k, True)
    with pytest.raises(Panic, match=r'^kernel diagnostic assertion "1 > 2" failed: file ".*'
                       r'test_systm.py", line \d+ uvm_x: why$'):  # fmt: skip
        KASSERTMSG(k, 1 > 2, "uvm_x: why")
