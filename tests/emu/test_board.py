"""emu.board: the one machine builder (hardware, swap disks, boot) and the body runner."""

from __future__ import annotations

from pathlib import Path

import pytest

from emu import process
from emu.board import Board, run_loop
from kernel.arch.emu import machdep
from kernel.kernel import KernelConfig
from kernel.sys.proc import P_SYSTEM, Proc, curproc

PAGE = 4096


def _proc(name: str = "body") -> Proc:
    return Proc(p_pid=-1, p_comm=name, p_flag=P_SYSTEM)


async def _answer() -> int:
    return 42


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_run_loop_runs_a_coroutine_on_either_loop(loop: str) -> None:
    assert run_loop(_answer(), loop) == 42


def test_run_loop_refuses_an_unknown_loop() -> None:
    with pytest.raises(ValueError, match="unknown event loop 'trio'"):
        run_loop(_answer(), "trio")


def test_a_board_boots_once_and_takes_disks_only_before(tmp_path: Path) -> None:
    b = Board(64)
    with pytest.raises(RuntimeError, match="not booted yet"):
        _ = b.k
    b.add_swap(tmp_path / "swap0.img", 16, name="sd0")
    k = b.boot(KernelConfig(bufcachepercent=0), filedir=str(tmp_path))
    assert b.k is k and k.md.swapdevs == b.disks
    assert k.uvmexp.swpages == 16
    with pytest.raises(RuntimeError, match="already booted"):
        b.boot(KernelConfig())
    with pytest.raises(RuntimeError, match="already booted"):
        b.add_swap(tmp_path / "swap1.img", 16, name="sd1")
    b.close()


def test_an_existing_swap_image_is_refused_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "swap0.img").write_bytes(b"")
    b = Board(64)
    with pytest.raises(FileExistsError):
        b.add_swap(tmp_path / "swap0.img", 16, name="sd0")
    b.add_swap(tmp_path / "swap0.img", 16, name="sd0", force=True)
    b.close()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_run_body_runs_in_kernel_context_and_processes_run_with_it(
    tmp_path: Path, loop: str
) -> None:
    b = Board(64)
    b.add_swap(tmp_path / "swap0.img", 16, name="sd0")
    k = b.boot(KernelConfig(bufcachepercent=0))
    me = _proc("mybody")
    seen: dict[str, object] = {}

    async def work(p: process.UserProcess) -> None:
        va = await p.mmap(PAGE)
        await p.store(va, b"hi")
        seen["data"] = await p.load(va, 2)

    async def body() -> None:
        seen["curproc"] = curproc()
        p = process.spawn(k, "w", work)
        await machdep.wait(k, p.proc)

    b.run_body(body, me, loop=loop)
    b.close()
    assert seen == {"curproc": me, "data": b"hi"}


def test_run_body_shows_the_real_failure_not_the_task_group(tmp_path: Path) -> None:
    b = Board(64)
    b.boot(KernelConfig(bufcachepercent=0))

    async def body() -> None:
        raise KeyError("the real one")

    with pytest.raises(KeyError, match="the real one"):
        b.run_body(body, _proc(), start=False)
    b.close()
