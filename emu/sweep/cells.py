"""emu.sweep.cells: a cell's identity, what a worker does with it, its run directory as bytes.

**Cell id.** A run is a pure function of its inputs, so a cell is named by a hash of them: the
SHA-256 of the canonical JSON (msgspec, keys sorted) of ``{"v", "scenario", "params", "seed",
"events", "compress", "log_level"}``, where ``scenario`` is the fully resolved scenario (every
section with its defaults, every workload param) without its source label, and every string in
it that names an input file (a trace, a user daemon) is replaced by ``"sha256:<content hash>"``:
a cell's id changes when a file it reads changes, not when the file moves. The first 16 hex
digits name the cell's directory.

**Input files** travel with the cell: the driver hashes each once and hands the engine its
bytes once (content-addressed); a worker uses the file in place when it finds it there with the
same content (the local pool, a local Ray), else writes it once into
``$TMPDIR/uvm-emu-inputs/<sha256>/`` and points the scenario there.

**The result** of a cell is its ordinary run directory, packed on the worker as a
zstd-compressed tar (:func:`pack`) and unpacked by the driver (:func:`unpack`), whatever the
engine; the files the workloads mapped (``files/``, their data: 8 MiB for ``default``) stay
behind. A cell whose machine raised comes back as an error instead, never as an exception.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import tarfile
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import zstandard
from msgspec import Struct

from emu.machine import Machine
from emu.scenario import Scenario
from emu.sizes import Size
from emu.sweep.spec import Cell, SweepSpec

__all__ = ["Result", "Task", "file_sha", "input_files", "make_task", "pack", "run_task", "unpack"]

CELL_VERSION = 1
INPUT_CACHE = "uvm-emu-inputs"
_sha_cache: dict[tuple[str, int, int], str] = {}


class Task(Struct, frozen=True, kw_only=True):
    """What a worker needs to run one cell (small: input files travel apart, by hash)."""

    cell: str
    scenario: Scenario
    inputs: dict[str, str]  # absolute path -> sha256 of its content
    events: str
    compress: bool
    log_level: str


class Result(Struct, kw_only=True):
    """What comes back from a worker: the packed run directory, or why there is none."""

    cell: str
    blob: bytes | None = None
    error: str | None = None
    wall_s: float = 0.0
    host: str = ""


def file_sha(path: str | Path) -> str:
    """SHA-256 of a file's content (remembered per path, size and mtime)."""
    st = os.stat(path)
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _sha_cache:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        _sha_cache[key] = h.hexdigest()
    return _sha_cache[key]


def _enc(obj: Any) -> Any:
    if isinstance(obj, Size):
        return str(obj)
    raise NotImplementedError(type(obj))


def _dec(t: type, obj: Any) -> Any:
    if t is Size:
        return Size.parse(obj)
    raise NotImplementedError(t)


def _walk(obj: Any, fn: Callable[[str], str]) -> Any:
    """``obj`` (plain JSON values) with every string ``s`` replaced by ``fn(s)``."""
    if isinstance(obj, str):
        return fn(obj)
    if isinstance(obj, list):
        return [_walk(x, fn) for x in obj]
    if isinstance(obj, dict):
        return {k: _walk(v, fn) for k, v in obj.items()}
    return obj


def _plain(sc: Scenario) -> dict[str, Any]:
    d: dict[str, Any] = msgspec.to_builtins(sc, enc_hook=_enc)
    return d


def _with_strings(sc: Scenario, fn: Callable[[str], str]) -> Scenario:
    """The scenario with the strings of its kernel section and workload params mapped by fn."""
    d = _plain(sc)
    d["kernel"] = _walk(d["kernel"], fn)
    for w in d["workloads"]:
        w["params"] = _walk(w["params"], fn)
    new = msgspec.convert(d, Scenario, dec_hook=_dec)
    return new if new != sc else sc


def input_files(sc: Scenario) -> tuple[Scenario, dict[str, str]]:
    """The scenario with input-file paths made absolute, and {absolute path: sha256}: every
    string of [kernel] or of a workload's params that names an existing file."""
    found: dict[str, str] = {}

    def absolute(s: str) -> str:
        if s and Path(s).is_file():
            p = str(Path(s).resolve())
            found[p] = file_sha(p)
            return p
        return s

    return _with_strings(sc, absolute), found


def cell_id(sc: Scenario, inputs: dict[str, str], params: dict[str, Any], seed: int,
            events: str, compress: bool, log_level: str) -> str:  # fmt: skip
    d = _plain(sc)
    d.pop("source", None)
    d = _walk(d, lambda s: f"sha256:{inputs[s]}" if s in inputs else s)
    doc = {"v": CELL_VERSION, "scenario": d, "params": params, "seed": seed, "events": events,
           "compress": compress, "log_level": log_level}  # fmt: skip
    return hashlib.sha256(msgspec.json.encode(doc, order="sorted")).hexdigest()[:16]


def make_task(cell: Cell, spec: SweepSpec) -> Task:
    sec = spec.sweep
    sc, inputs = input_files(cell.scenario)
    cid = cell_id(sc, inputs, cell.params, cell.seed, sec.events, sec.compress, sec.log_level)
    return Task(cell=cid, scenario=sc, inputs=inputs, events=sec.events, compress=sec.compress,
                log_level=sec.log_level)  # fmt: skip


# --- worker side ---------------------------------------------------------------------------


def _localize(task: Task, fetch: Callable[[str], bytes]) -> Scenario:
    """The task's scenario with each input file found here (in place, or written once into
    the input cache from the bytes ``fetch(sha)`` gives)."""
    moved: dict[str, str] = {}
    for path, sha in task.inputs.items():
        if Path(path).is_file() and file_sha(path) == sha:
            continue
        dest = Path(tempfile.gettempdir()) / INPUT_CACHE / sha / Path(path).name
        if not dest.is_file() or file_sha(dest) != sha:
            dest.parent.mkdir(parents=True, exist_ok=True)
            part = dest.with_name(f".{dest.name}.{os.getpid()}")
            part.write_bytes(fetch(sha))
            part.replace(dest)
        moved[path] = str(dest)
    if not moved:
        return task.scenario
    return _with_strings(task.scenario, lambda s: moved.get(s, s))


def run_task(task: Task, fetch: Callable[[str], bytes]) -> Result:
    """Run one cell into a temporary directory and pack it; never raises for the cell's own
    failure (the error comes back in the result)."""
    t0 = time.perf_counter()
    host = socket.gethostname()
    try:
        sc = _localize(task, fetch)
        with tempfile.TemporaryDirectory(prefix="uvm-emu-cell-") as tmp:
            run_dir = Path(tmp) / task.cell
            Machine.from_scenario(sc, run_dir, task.log_level, force=True,
                                  events=task.events,  # type: ignore[arg-type]
                                  compress=task.compress).run()  # fmt: skip
            blob = pack(run_dir)
    except Exception as e:
        tb = traceback.format_exc(limit=-3)
        return Result(cell=task.cell, error=f"{type(e).__name__}: {e}\n{tb}",
                      wall_s=time.perf_counter() - t0, host=host)  # fmt: skip
    return Result(cell=task.cell, blob=blob, wall_s=time.perf_counter() - t0, host=host)


def _scratch(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """Leave out the files the workloads mapped (``files/*``: their data, not results)."""
    return None if info.name.startswith("./files/") else info


def pack(run_dir: Path) -> bytes:
    """A run directory as a zstd-compressed tar (without the workloads' mapped files)."""
    buf = io.BytesIO()
    with zstandard.ZstdCompressor(level=3).stream_writer(buf, closefd=False) as z:
        with tarfile.open(fileobj=z, mode="w|") as tar:
            tar.add(run_dir, arcname=".", filter=_scratch)
    return buf.getvalue()


def unpack(blob: bytes, dest: Path) -> None:
    """Unpack :func:`pack`'s bytes into ``dest`` (only plain files and directories)."""
    dest.mkdir(parents=True, exist_ok=True)
    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob)) as z:
        with tarfile.open(fileobj=z, mode="r|") as tar:
            tar.extractall(dest, filter="data")
