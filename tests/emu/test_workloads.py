"""emu.workloads: the stock workloads and trace_replay, driven against a dict-backed fake
ProcessHandle (only the workload logic: the machine runs them end to end).

docs/workloads.md: "every checked read goes through p.verify against the stamp it last wrote,
or against zeros for a page never written".
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emu.api import Integrity, MapKind
from emu.workloads import WORKLOADS, describe, info
from emu.workloads.stamps import PAGE_SIZE, ZERO_PAGE, make_page
from emu.workloads.stock import _peer_expected

Pages = dict[int, bytearray]


class World:
    """What several fake processes share: named shared regions and files."""

    def __init__(self) -> None:
        self.shared: dict[str, Pages] = {}
        self.files: dict[str, Pages] = {}


class FakeProcess:
    """A ProcessHandle over dicts of pages: mappings, loads, stores, touches, verify, log.

    ``corrupt_at=n``: just before the n-th load (1-based), flip a byte of the page it reads.
    Loads and stores yield to the event loop, so two fakes run interleaved.
    """

    def __init__(self, world: World | None = None, pid: int = 1, name: str = "w",
                 seed: int = 0, corrupt_at: int | None = None) -> None:
        self.world = world or World()
        self.name, self.pid = name, pid
        self.rng = np.random.default_rng(seed)
        self.integrity = Integrity()
        self.maps: list[tuple[int, int, Pages]] = []  # (start, npages, object pages)
        self.next_addr = 0x10_0000_0000
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.loads = self.stores = self.touches = self.compute_ns = 0
        self.corrupt_at = corrupt_at

    async def mmap(self, size: int, kind: MapKind = "anon", *, name: str | None = None,
                   addr: int | None = None, writable: bool = True) -> int:
        npages = -(-size // PAGE_SIZE)
        if addr is None:
            addr, self.next_addr = self.next_addr, self.next_addr + (npages + 16) * PAGE_SIZE
        assert addr % PAGE_SIZE == 0 and addr + size <= 1 << 48
        for s, n, _ in self.maps:
            assert addr + npages * PAGE_SIZE <= s or addr >= s + n * PAGE_SIZE, "overlap"
        obj: Pages = {}
        if kind == "shared":
            obj = self.world.shared.setdefault(str(name), {})
        elif kind == "file":
            obj = self.world.files.setdefault(str(name), {})
        self.maps.append((addr, npages, obj))
        return addr

    async def munmap(self, addr: int, size: int) -> None:
        self.maps = [m for m in self.maps if m[0] != addr]

    def _find(self, vaddr: int) -> tuple[Pages, int]:
        for s, n, obj in self.maps:
            if s <= vaddr < s + n * PAGE_SIZE:
                return obj, (vaddr - s) // PAGE_SIZE
        raise AssertionError(f"segfault at {vaddr:#x}")

    async def load(self, vaddr: int, n: int) -> bytes:
        assert vaddr % PAGE_SIZE == 0 and n == PAGE_SIZE
        await asyncio.sleep(0)
        obj, i = self._find(vaddr)
        self.loads += 1
        if self.loads == self.corrupt_at:
            page = obj.setdefault(i, bytearray(PAGE_SIZE))
            page[100] ^= 0x40
        return bytes(obj.get(i, ZERO_PAGE))

    async def store(self, vaddr: int, data: bytes) -> None:
        assert vaddr % PAGE_SIZE == 0 and len(data) == PAGE_SIZE
        await asyncio.sleep(0)
        obj, i = self._find(vaddr)
        obj[i] = bytearray(data)
        self.stores += 1

    async def touch(self, vaddrs: np.ndarray, write: bool | np.ndarray = False) -> None:
        assert vaddrs.dtype == np.uint64
        for v in vaddrs.tolist():
            self._find(v)
        self.touches += len(vaddrs)

    async def compute(self, ns: int) -> None:
        self.compute_ns += ns

    def verify(self, vaddr: int, expected: bytes, found: bytes) -> bool:
        self.integrity.pages_checked += 1
        if expected == found:
            return True
        self.integrity.mismatches += 1
        return False

    def log(self, event: str, **kw: Any) -> None:
        self.events.append((event, kw))

    def stats(self) -> dict[str, Any]:
        return next(kw for ev, kw in self.events if ev == "stats")


def run(fn: Callable[..., Awaitable[None]], p: FakeProcess, **params: Any) -> FakeProcess:
    asyncio.run(fn(p, **params))  # type: ignore[arg-type]
    return p


SMALL: dict[str, dict[str, Any]] = {
    "seq_scan": {"pages": 24, "passes": 3, "write_fraction": 0.5},
    "uniform": {"pages": 32, "accesses": 300},
    "zipf": {"pages": 64, "accesses": 400, "alpha": 1.2},
    "phase_shift": {"pages": 64, "working_set": 16, "phases": 4, "accesses_per_phase": 60},
    "hog": {"step_pages": 8, "max_pages": 40, "sample": 4},
    "shared_pair": {"pages": 32, "accesses": 300, "rank": 0, "nprocs": 1},
    "file_rmw": {"pages": 16, "passes": 3, "order": "random"},
}


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_stock_workload_verifies_every_read_of_its_own_data(kind: str) -> None:
    p = run(WORKLOADS[kind], FakeProcess(), **SMALL[kind], think_ns=10)
    st = p.stats()
    assert p.integrity.mismatches == 0
    assert p.integrity.pages_checked == st["reads"] + st.get("peer_reads", 0) == p.loads > 0
    assert st["writes"] == p.stores > 0
    assert p.compute_ns == 10 * (p.loads + p.stores)


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_stock_workload_detects_an_injected_corruption(kind: str) -> None:
    p = run(WORKLOADS[kind], FakeProcess(corrupt_at=5), **SMALL[kind])
    assert p.integrity.mismatches >= 1
    detail = next(kw for ev, kw in p.events if ev == "mismatch_detail")
    assert "offset 100" in detail["detail"] or "non-zero bytes from offset 100" in detail["detail"]


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_stock_workload_is_deterministic_for_a_seed(kind: str) -> None:
    a = run(WORKLOADS[kind], FakeProcess(seed=3), **SMALL[kind])
    b = run(WORKLOADS[kind], FakeProcess(seed=3), **SMALL[kind])
    assert a.events == b.events and (a.loads, a.stores) == (b.loads, b.stores)


def test_never_written_pages_must_read_as_zeros() -> None:
    p = run(WORKLOADS["uniform"], FakeProcess(), pages=8, accesses=50, write_fraction=0.0)
    assert p.integrity.pages_checked == 50 and p.integrity.mismatches == 0
    p = run(WORKLOADS["uniform"], FakeProcess(corrupt_at=1), pages=8, accesses=50,
            write_fraction=0.0)
    assert p.integrity.mismatches >= 1
    assert "expected a zero page" in p.events[0][1]["detail"]


def test_hog_grows_by_steps_and_touches_the_whole_footprint() -> None:
    p = run(WORKLOADS["hog"], FakeProcess(), step_pages=10, max_pages=35, sample=0,
            final_check=True)
    assert len(p.maps) == 4 and sum(n for _, n, _ in p.maps) == 35
    assert p.touches == 10 + 20 + 30 + 35 and p.stores == 35 and p.loads == 35


def test_file_rmw_reads_back_its_stamps_through_a_new_mapping() -> None:
    world = World()
    p = run(WORKLOADS["file_rmw"], FakeProcess(world), file="f.dat", pages=8, passes=3)
    assert p.integrity.mismatches == 0 and p.loads == 24
    assert world.files["f.dat"][3] == make_page(1, 3, 3)  # three read-modify-writes
    assert len(p.maps) == 1  # the first two mappings were unmapped


def test_shared_pair_ranks_verify_each_other_interleaved() -> None:
    world = World()
    a = FakeProcess(world, pid=11, name="a", seed=1)
    b = FakeProcess(world, pid=12, name="b", seed=2)

    async def both() -> None:
        kw: dict[str, Any] = {"region": "r", "pages": 16, "accesses": 400, "nprocs": 2}
        await asyncio.gather(WORKLOADS["shared_pair"](a, rank=0, **kw),
                             WORKLOADS["shared_pair"](b, rank=1, **kw))

    asyncio.run(both())
    for p in (a, b):
        assert p.integrity.mismatches == 0 and p.stats()["peer_reads"] > 50
    hdr_pids = {bytes(pg[4:8]) for pg in world.shared["r"].values()}
    assert hdr_pids == {(11).to_bytes(4, "little"), (12).to_bytes(4, "little")}


def test_shared_pair_peer_check_rejects_stale_foreign_and_lost_pages() -> None:
    peer_pid: dict[int, int] = {}
    seen = np.zeros(4, np.int64)
    # "a page of another rank must be zeros, or a complete, valid stamp ... whose version
    # never goes backwards between two reads"
    assert _peer_expected(ZERO_PAGE, 1, 1, peer_pid, seen) == ZERO_PAGE
    v2 = make_page(7, 1, 2)
    assert _peer_expected(v2, 1, 1, peer_pid, seen) == v2 and peer_pid == {1: 7}
    assert _peer_expected(make_page(7, 1, 1), 1, 1, peer_pid, seen) == v2  # stale
    assert _peer_expected(ZERO_PAGE, 1, 1, peer_pid, seen) == v2  # lost
    assert _peer_expected(make_page(8, 1, 3), 1, 1, peer_pid, seen) == make_page(7, 1, 3)
    assert _peer_expected(make_page(7, 3, 3), 1, 1, peer_pid, seen) == make_page(7, 1, 3)
    assert _peer_expected(b"\1" * PAGE_SIZE, 3, 1, peer_pid, seen) == ZERO_PAGE


def test_every_param_of_every_kind_is_documented() -> None:
    text = describe()
    for kind in WORKLOADS:
        assert text.count(f"{kind}: ") >= 1
        for prm in info(kind).params:
            assert prm.doc, f"{kind}.{prm.name} has no line under Params:"


def test_docs_workloads_md_names_every_param_of_every_kind() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "workloads.md").read_text()
    for kind in WORKLOADS:
        assert f"**`{kind}`**" in doc or f"`{kind}(" in doc
        for prm in info(kind).params:
            assert f"`{prm.name}`" in doc or f"{prm.name}=" in doc, f"{kind}.{prm.name}"


def _lackey(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "t.lackey.gz"
    with gzip.open(path, "wt") as f:
        f.write("==1== Lackey\n" + "\n".join(lines) + "\n")
    return path


def test_trace_replay_maps_2mib_regions_lazily_and_touches_every_access(tmp_path: Path) -> None:
    path = _lackey(tmp_path, ["I  0401ab70,3", " S 7ffffffff000,8", " L 0401b000,8",
                              " M 0401ab70,4", " L 7fffffffeff8,16"])
    p = run(WORKLOADS["trace_replay"], FakeProcess(), path=str(path), chunk=2, check_zero=1)
    bases = sorted(s for s, _, _ in p.maps)
    assert bases == [0x4000000, 0x7FFFFFE00000] and all(n == 512 for _, n, _ in p.maps)
    st = p.stats()
    assert (st["accesses"], st["writes"], st["distinct_pages"]) == (6, 2, 4)
    assert p.touches == 6 and p.integrity.pages_checked == 3 and p.integrity.mismatches == 0


def test_trace_replay_offsets_block_traces_and_honours_limit_and_collapse(
        tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    path.write_text("0\n0\n0\n1\n5\n5\n9\n")
    p = run(WORKLOADS["trace_replay"], FakeProcess(), path=f"txt:{path}", collapse=True,
            limit=6, region_shift=30)
    assert [s for s, _, _ in p.maps] == [1 << 32]  # 4 GiB: block page 0 is not at NULL
    assert p.stats()["accesses"] == 3 and p.touches == 3  # 0 1 5 (limit 6 before collapse)


def test_trace_replay_finds_a_shipped_trace_by_name() -> None:
    p = run(WORKLOADS["trace_replay"], FakeProcess(), path="synthetic.msr.csv", chunk=8192)
    assert p.stats()["fmt"] == "msr" and p.stats()["accesses"] > 2000
