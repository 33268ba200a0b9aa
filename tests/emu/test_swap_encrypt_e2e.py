"""Swap encryption end to end (issue 15): a workload's secret never reaches the swap image,
every page reads back, no key reaches any file, runs repeat exactly, write errors lose
nothing. The machine boots with ``[kernel] swapencrypt`` at its default (true) unless a test
turns it off, to show the check can fail.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

import kernel.uvm.uvm_swap_encrypt as uvm_swap_encrypt
from emu.machine import Machine, Summary
from emu.reliability import attach_auditor

SECRET = bytes.fromhex("5ec7e75ec7e7c0ffee0ddba11ab1e5ed")  # 16 bytes, one AES block
PAGE = 4096


async def secret_keeper(p: Any, pages: int = 700) -> None:
    """Fill ``pages`` pages with the secret (and the page number), then read each one back."""
    base = await p.mmap(pages * PAGE)
    for i in range(pages):
        await p.store(base + i * PAGE, SECRET * 4 + i.to_bytes(8, "little"))
    for i in range(pages):
        want = SECRET * 4 + i.to_bytes(8, "little")
        p.verify(base + i * PAGE, want, await p.load(base + i * PAGE, len(want)))


def _machine(run_dir: Path, **kw: Any) -> Machine:
    kernel = {"check_every_pass": True, **kw.pop("kernel", {})}
    return Machine(ram="256pages", swap="2048pages", seed=5, device="ssd",
                   loop=kw.pop("loop", "asyncio"), run_dir=run_dir, keep_images=True,
                   kernel=kernel, **kw)  # fmt: skip


def _run_keeper(run_dir: Path, **kw: Any) -> Summary:
    m = _machine(run_dir, **kw)
    m.attach(secret_keeper, name="keeper", pages=700)
    s = m.run()
    assert s["outcome"] == "ok", s["error"]
    assert s["integrity"]["mismatches"] == 0 and s["integrity"]["pages_checked"] == 700
    assert s["uvmexp"]["pdpageouts"] > 0 and s["faults"]["major"] > 0, "nothing was paged"
    return s


def _files(run_dir: Path) -> list[Path]:
    return sorted(f for f in run_dir.rglob("*") if f.is_file())


def test_with_encryption_the_image_holds_no_secret_and_no_file_holds_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15: "with encryption on, the image holds no copy of the secret and every page
    reads back intact"; "keys never reach the event log, the summary or any file"."""
    keys: list[bytes] = []
    create = uvm_swap_encrypt.swap_key_create

    def spy(k: Any, key: Any) -> None:
        create(k, key)
        keys.append(bytes(key.key))

    monkeypatch.setattr(uvm_swap_encrypt, "swap_key_create", spy)
    s = _run_keeper(tmp_path / "on")
    se = s["swapencrypt"]
    assert se["enable"] == 1 and se["keyscreated"] == len(keys) > 0
    assert se["keysdeleted"] == se["keyscreated"], "every key died with its last slot"
    assert se["pages_encrypted"] >= s["io"]["write_pages"] > 0
    assert se["pages_decrypted"] == s["faults"]["major"]
    image = (tmp_path / "on" / "swap0.img").read_bytes()
    assert image.count(bytes(PAGE)) < len(image) // PAGE, "the image was written"
    assert SECRET not in image and SECRET[:8] not in image
    files = _files(tmp_path / "on")
    assert {f.name for f in files} >= {"swap0.img", "events.jsonl", "summary.json"}
    for f in files:
        data = f.read_bytes()
        for key in keys:
            assert key not in data and key.hex().encode() not in data, f"a key is in {f.name}"
            assert str(list(key)).encode() not in data


def test_without_encryption_the_secret_is_in_the_image(tmp_path: Path) -> None:
    """The same run with ``kernel.swapencrypt = false``: the secret is there (so the test
    above can fail), and the summary has no swapencrypt section."""
    s = _run_keeper(tmp_path / "off", kernel={"swapencrypt": False})
    assert "swapencrypt" not in s
    assert (tmp_path / "off" / "swap0.img").read_bytes().count(SECRET * 4) >= 256


def test_same_log_on_asyncio_and_uvloop_with_encryption_on(tmp_path: Path) -> None:
    """Determinism: keys come from the machine's seed, so both loops write the same events
    (wall_* and the loop's name aside) and the same swap image."""
    logs, images = [], []
    for loop in ("asyncio", "uvloop"):
        s = _run_keeper(tmp_path / loop, loop=loop)
        assert s["swapencrypt"]["pages_encrypted"] > 0
        lines = []
        for line in (tmp_path / loop / "events.jsonl").read_bytes().splitlines():
            e = orjson.loads(line)
            lines.append({k: v for k, v in e.items() if not k.startswith("wall") and k != "loop"})
        logs.append(lines)
        images.append((tmp_path / loop / "swap0.img").read_bytes())
    assert logs[0] == logs[1] and images[0] == images[1]


def test_write_errors_with_encryption_on_lose_nothing_and_every_key_dies(tmp_path: Path) -> None:
    """The port's deviation (reference §4 item 11): the originals stay dirty until the write
    has succeeded, so failed encrypted writes lose no page; the failed slots are marked bad
    and let go of their keys, so by the end every key made was destroyed."""
    m = _machine(tmp_path / "err", faults={"fail_write_slots": "0-40", "fail_write_rate": 0.02})
    m.attach(secret_keeper, name="keeper", pages=700)
    m.attach("uniform", name="uni", pages=64, accesses=400)
    audit = attach_auditor(m)
    s = m.run()
    assert s["outcome"] == "ok", s["error"]
    assert s["io"]["errors"] >= 3 and audit.check == "ok" and audit.bad_slots > 0
    assert s["integrity"]["mismatches"] == 0 and s["integrity"]["pages_checked"] > 700
    assert all(w["status"] == "ok" for w in s["workloads"])
    se = s["swapencrypt"]
    assert se["keyscreated"] == se["keysdeleted"] > 0
