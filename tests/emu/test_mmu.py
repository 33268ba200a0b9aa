"""emu.mmu: sparse page tables, batch translation against a naive model, and the reverse map.

ARCHITECTURE.md, "The paths that matter": touch(vaddrs, write) "translates the whole batch with
numpy, sets referenced (and modified) bits per frame, and stops at the first access that faults".
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emu.mmu import VA_LIMIT, AddressSpace, Fault, Mmu, PageFault
from emu.ram import PAGE_SIZE, Ram

STACK = 0x7FFC_1234_5000
NFRAMES = 64


def make(nframes: int = NFRAMES) -> tuple[Ram, Mmu, AddressSpace]:
    ram = Ram(nframes)
    mmu = Mmu(ram, rows=2)  # tiny, so tests also exercise leaf-array growth
    return ram, mmu, mmu.new_space()


def arr(*vaddrs: int) -> np.ndarray:
    return np.array(vaddrs, dtype=np.uint64)


# --- one page ----------------------------------------------------------------------------------


def test_enter_then_lookup_and_translate_far_apart_regions() -> None:
    ram, mmu, sp = make()
    for i, va in enumerate([0x400000, 0x401000, 0x2000_0000, STACK, VA_LIMIT - PAGE_SIZE]):
        mmu.enter(sp, va, i, writable=bool(i % 2))
    assert mmu.lookup(sp, 0x401FFF) == (1, True)
    assert mmu.lookup(sp, STACK + 5) == (3, True)
    assert mmu.lookup(sp, VA_LIMIT - 1) == (4, False)
    assert mmu.lookup(sp, 0x402000) is None
    assert sp.resident == 5
    assert mmu.translate(sp, 0x2000_0010, False) == 2
    assert ram.ref[2] == 1 and ram.mod[2] == 0
    assert mmu.lookup(sp, 0x400000) == (0, False)
    assert not ram.ref[0]  # lookup is not an access


def test_translate_faults_carry_kind_and_write() -> None:
    ram, mmu, sp = make()
    mmu.enter(sp, 0x5000, 3, writable=False)
    with pytest.raises(PageFault) as ei:
        mmu.translate(sp, 0x5008, True)
    assert ei.value.fault == Fault(0, 0x5008, "protection", True)
    with pytest.raises(PageFault) as ei:
        mmu.translate(sp, 0x6000, False)
    assert ei.value.fault == Fault(0, 0x6000, "not_present", False)
    assert not ram.ref.any() and not ram.mod.any()


def test_enter_replacing_a_mapping_moves_it_in_the_reverse_map() -> None:
    _, mmu, sp = make()
    mmu.enter(sp, 0x1000, 5, True)
    mmu.enter(sp, 0x1000, 6, False)
    assert mmu.nmappings(5) == 0 and mmu.mappings(6) == [(sp, 0x1000)]
    assert mmu.lookup(sp, 0x1000) == (6, False)
    mmu.enter(sp, 0x1000, 6, True)  # same frame: only the permission changes
    assert mmu.nmappings(6) == 1 and sp.resident == 1


def test_remove_returns_the_old_frame_then_none() -> None:
    _, mmu, sp = make()
    mmu.enter(sp, 0x3000, 9, True)
    assert mmu.remove(sp, 0x3000) == 9
    assert mmu.remove(sp, 0x3000) is None
    assert mmu.remove(sp, STACK) is None
    assert mmu.nmappings(9) == 0 and sp.resident == 0


def test_protect_toggles_write_permission_of_mapped_pages_only() -> None:
    _, mmu, sp = make()
    mmu.enter(sp, 0x3000, 1, True)
    mmu.protect(sp, 0x3000, False)
    assert mmu.lookup(sp, 0x3000) == (1, False)
    mmu.protect(sp, 0x3000, True)
    assert mmu.lookup(sp, 0x3000) == (1, True)
    mmu.protect(sp, 0x9000, True)
    assert mmu.lookup(sp, 0x9000) is None


def test_addresses_must_be_below_2_pow_48() -> None:
    _, mmu, sp = make()
    for op in (lambda: mmu.enter(sp, VA_LIMIT, 0, True), lambda: mmu.lookup(sp, -1),
               lambda: mmu.translate(sp, VA_LIMIT, False), lambda: mmu.remove(sp, 1 << 60),
               lambda: mmu.touch_batch(sp, arr(0x1000, VA_LIMIT), False),
               lambda: mmu.touch_batch(sp, np.array([-5], np.int64), False)):
        with pytest.raises(ValueError, match="48-bit"):
            op()


def test_frames_are_checked_and_spaces_must_be_alive() -> None:
    _, mmu, sp = make()
    with pytest.raises(IndexError):
        mmu.enter(sp, 0, NFRAMES, True)
    other = Mmu(Ram(4)).new_space()
    with pytest.raises(ValueError):
        mmu.enter(other, 0, 0, True)
    mmu.destroy_space(sp)
    with pytest.raises(ValueError, match="destroyed"):
        mmu.touch_batch(sp, arr(0), False)


def test_range_remove_and_protect_touch_only_the_range() -> None:
    _, mmu, sp = make()
    for i in range(600):  # spans two leaves
        mmu.enter(sp, 0x200000 - 4 * PAGE_SIZE + i * PAGE_SIZE, i % NFRAMES, True)
    mmu.protect_range(sp, 0x200000, 0x200000 + 2 * PAGE_SIZE, False)
    assert mmu.lookup(sp, 0x1FF000)[1] and not mmu.lookup(sp, 0x201000)[1]  # type: ignore[index]
    assert mmu.lookup(sp, 0x202000)[1]  # type: ignore[index]
    assert mmu.remove_range(sp, 0x1FE000, 0x200001) == 3
    assert mmu.lookup(sp, 0x1FD000) is not None and mmu.lookup(sp, 0x1FF000) is None
    assert mmu.lookup(sp, 0x200000) is None and mmu.lookup(sp, 0x201000) is not None
    assert sp.resident == 597
    assert sum(mmu.nmappings(f) for f in range(NFRAMES)) == 597


# --- the reverse map ---------------------------------------------------------------------------


def test_remove_all_unmaps_a_frame_from_every_space() -> None:
    ram, mmu, a = make()
    b, c = mmu.new_space(), mmu.new_space()
    mmu.enter(a, 0x1000, 7, True)
    mmu.enter(b, STACK, 7, False)
    mmu.enter(c, 0x1000, 7, True)
    mmu.enter(c, 0x2000, 7, True)  # twice in one space
    mmu.enter(b, 0x1000, 8, True)
    assert mmu.nmappings(7) == 4
    assert set(mmu.mappings(7)) == {(a, 0x1000), (b, STACK), (c, 0x1000), (c, 0x2000)}
    ram.ref[7] = ram.mod[7] = 1
    assert mmu.remove_all(7) == 4
    assert mmu.nmappings(7) == 0 and mmu.mappings(7) == []
    assert [mmu.lookup(s, va) for s, va in [(a, 0x1000), (b, STACK), (c, 0x2000)]] == [None] * 3
    assert mmu.lookup(b, 0x1000) == (8, True)
    assert ram.ref[7] == 1 and ram.mod[7] == 1  # the attributes survive the unmap
    assert (a.resident, b.resident, c.resident) == (0, 1, 0)
    assert mmu.remove_all(7) == 0


def test_write_protect_all_leaves_mappings_read_only() -> None:
    _, mmu, a = make()
    b = mmu.new_space()
    mmu.enter(a, 0x1000, 3, True)
    mmu.enter(b, 0x5000, 3, True)
    mmu.enter(b, 0x6000, 4, True)
    mmu.write_protect_all(3)
    assert mmu.lookup(a, 0x1000) == (3, False) and mmu.lookup(b, 0x5000) == (3, False)
    assert mmu.lookup(b, 0x6000) == (4, True)
    fault = mmu.touch_batch(b, arr(0x6000, 0x5000), True)
    assert fault == Fault(1, 0x5000, "protection", True)


def test_destroy_space_removes_its_mappings_and_keeps_others() -> None:
    _, mmu, a = make()
    b = mmu.new_space()
    for i in range(40):
        mmu.enter(a, 0x400000 + i * PAGE_SIZE, i, True)
    mmu.enter(b, STACK, 3, True)
    mmu.enter(a, STACK, 3, True)
    mmu.enter(b, 0x9000, 50, True)
    mmu.destroy_space(a)
    assert mmu.mappings(3) == [(b, STACK)]
    assert all(mmu.nmappings(i) == 0 for i in range(40) if i != 3)
    assert mmu.nmappings(50) == 1 and b.resident == 2


ops = st.lists(
    st.tuples(
        st.sampled_from(["enter", "enter", "remove", "remove_all", "wprot", "protect", "range",
                         "destroy"]),
        st.integers(0, 2),  # space
        st.sampled_from([0x1000, 0x2000, 0x201000, STACK, VA_LIMIT - PAGE_SIZE]),
        st.integers(0, 5),  # frame
        st.booleans(),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_reverse_map_matches_a_dict_model(script: list[tuple[str, int, int, int, bool]]) -> None:
    _, mmu, _ = make(8)
    spaces = [mmu.new_space() for _ in range(3)]
    model: dict[tuple[int, int], tuple[int, bool]] = {}
    for op, si, va, frame, w in script:
        sp = spaces[si]
        if op == "enter":
            mmu.enter(sp, va, frame, w)
            model[si, va] = (frame, w)
        elif op == "remove":
            old = model.pop((si, va), None)
            assert mmu.remove(sp, va) == (old[0] if old else None)
        elif op == "remove_all":
            gone = [k for k, (f, _) in model.items() if f == frame]
            assert mmu.remove_all(frame) == len(gone)
            for k in gone:
                del model[k]
        elif op == "wprot":
            mmu.write_protect_all(frame)
            model = {k: (f, ww and f != frame) for k, (f, ww) in model.items()}
        elif op == "protect":
            mmu.protect(sp, va, w)
            if (si, va) in model:
                model[si, va] = (model[si, va][0], w)
        elif op == "range":  # [va, va + 2 MiB + 4 KiB): crosses a leaf boundary
            gone = [k for k in model if k[0] == si and va <= k[1] < va + 0x201000]
            assert mmu.remove_range(sp, va, min(va + 0x201000, VA_LIMIT)) == len(gone)
            for k in gone:
                del model[k]
        else:
            mmu.destroy_space(sp)
            spaces[si] = mmu.new_space()
            model = {k: v for k, v in model.items() if k[0] != si}
        for f in range(8):
            want = {(spaces[s], va_) for (s, va_), (ff, _) in model.items() if ff == f}
            assert set(mmu.mappings(f)) == want and mmu.nmappings(f) == len(want)
        for (s, va_), fw in model.items():
            assert mmu.lookup(spaces[s], va_) == fw
        assert [s.resident for s in spaces] == [
            sum(1 for k in model if k[0] == i) for i in range(3)
        ]


# --- batches against a naive model -------------------------------------------------------------

# Candidate pages: neighbours in one leaf, leaves in one cluster, far clusters, 48-bit extremes.
PAGES = [0x0, 0x1000, 0x400000, 0x401000, 0x5FF000, 0x600000, 0x2400000, 0x9000_0000,
         STACK, STACK + 0x1000, STACK + 0x200000, VA_LIMIT - 0x1000, VA_LIMIT - 0x200000]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[dict[int, tuple[int, bool]], np.ndarray, bool | np.ndarray]:
    table: dict[int, tuple[int, bool]] = {}
    for page in PAGES:
        state = draw(st.sampled_from(["unmapped", "ro", "rw", "rw"]))
        if state != "unmapped":
            table[page] = (draw(st.integers(0, NFRAMES - 1)), state == "rw")
    # Some batches stay inside a few pages so the fast paths are taken, others roam.
    pool = draw(st.lists(st.sampled_from(PAGES), min_size=1, max_size=len(PAGES), unique=True))
    idx = draw(st.lists(st.tuples(st.sampled_from(pool), st.integers(0, PAGE_SIZE - 1)),
                        max_size=64))
    vaddrs = np.array([p + off for p, off in idx], dtype=np.uint64)
    write: bool | np.ndarray = draw(
        st.one_of(st.booleans(), st.lists(st.booleans(), min_size=len(idx),
                                          max_size=len(idx)).map(lambda w: np.array(w, bool)))
    )
    return table, vaddrs, write


def naive_touch(table: dict[int, tuple[int, bool]], vaddrs: np.ndarray, write: bool | np.ndarray,
                ref: np.ndarray, mod: np.ndarray) -> Fault | None:
    for i, va in enumerate(int(x) for x in vaddrs):
        w = bool(write[i]) if isinstance(write, np.ndarray) else write
        entry = table.get(va & ~(PAGE_SIZE - 1))
        if entry is None:
            return Fault(i, va, "not_present", w)
        frame, writable = entry
        if w and not writable:
            return Fault(i, va, "protection", w)
        ref[frame] = 1
        if w:
            mod[frame] = 1
    return None


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_touch_batch_equals_the_per_access_model(
    scenario: tuple[dict[int, tuple[int, bool]], np.ndarray, bool | np.ndarray],
) -> None:
    table, vaddrs, write = scenario
    ram, mmu, sp = make()
    decoy = mmu.new_space()  # another space's leaves must not leak into this one's lookups
    for page in PAGES:
        mmu.enter(decoy, page, NFRAMES - 1, True)
        if page not in table:  # leave an empty leaf behind for some unmapped pages
            mmu.enter(sp, page, 0, True)
            mmu.remove_all(0)
    for page, (frame, w) in table.items():
        mmu.enter(sp, page, frame, w)
    ram.ref[:] = 0
    ref, mod = np.zeros(NFRAMES, np.uint8), np.zeros(NFRAMES, np.uint8)
    want = naive_touch(table, vaddrs, write, ref, mod)
    assert mmu.touch_batch(sp, vaddrs, write) == want
    np.testing.assert_array_equal(ram.ref, ref)
    np.testing.assert_array_equal(ram.mod, mod)
    # int64 addresses mean the same thing
    ram.ref[:] = ram.mod[:] = 0
    assert mmu.touch_batch(sp, vaddrs.astype(np.int64), write) == want
    np.testing.assert_array_equal(ram.ref, ref)


def test_touch_batch_empty_and_bad_arguments() -> None:
    _, mmu, sp = make()
    assert mmu.touch_batch(sp, arr(), True) is None
    assert mmu.touch_batch(sp, arr(0x1000, STACK), True) == Fault(0, 0x1000, "not_present", True)
    with pytest.raises(TypeError):
        mmu.touch_batch(sp, np.zeros((2, 2), np.uint64), False)
    with pytest.raises(TypeError):
        mmu.touch_batch(sp, np.zeros(3, np.float64), False)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        mmu.touch_batch(sp, arr(1, 2), np.array([True]))


def test_many_regions_grow_the_leaf_array_and_stay_correct() -> None:
    ram, mmu, sp = make(4096)
    vas = [(i * 7919 % 3000) * 0x200000 + (i % 512) * PAGE_SIZE for i in range(3000)]
    for i, va in enumerate(vas):
        mmu.enter(sp, va, i, True)
    assert mmu.touch_batch(sp, np.array(vas, np.uint64), np.arange(3000) % 2 == 0) is None
    assert ram.ref[:3000].all() and ram.ref[3000:].sum() == 0
    assert ram.mod[:3000:2].all() and not ram.mod[1:3000:2].any()
    assert all(mmu.lookup(sp, va) == (i, True) for i, va in enumerate(vas))
