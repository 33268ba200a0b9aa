"""emu.rundir: what a run directory holds, read from disk only.

A run directory (``emu run``, ``Machine(run_dir=...)``, a sweep's cell) holds ``summary.json``
(docs/summary-schema.md), written once the run has stopped, and the event log
(docs/log-schema.md) as ``events.jsonl`` or, compressed with zstd, ``events.jsonl.zst``.
``emu analyze`` and ``emu compare`` read runs through this module, so a run from last week or
from another machine reads like one made a second ago.

A run still going, or one whose Python process died, has a log and no summary (or a log whose
last line is cut short): :func:`read_events` yields ``None`` for a line that does not parse and
stops at the end of what was written, compressed or not.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import zstandard

__all__ = ["EVENT_LOGS", "RunDirError", "check_run_dir", "event_log", "read_events",
           "read_summary"]  # fmt: skip

SUMMARY = "summary.json"
EVENT_LOGS = ("events.jsonl", "events.jsonl.zst")  # the first one present is read


class RunDirError(ValueError):
    """A path that is not a readable run directory (the message names it and why)."""


def event_log(run_dir: Path) -> Path | None:
    """The run's event log, plain or zstd-compressed; None when it has neither."""
    for name in EVENT_LOGS:
        if (run_dir / name).is_file():
            return run_dir / name
    return None


def check_run_dir(path: Path) -> Path:
    """``path`` if it holds a summary or an event log, else :class:`RunDirError`."""
    if not path.exists():
        raise RunDirError(f"{str(path)!r} does not exist")
    if not path.is_dir():
        raise RunDirError(f"{str(path)!r} is a file, not a run directory")
    if not (path / SUMMARY).is_file() and event_log(path) is None:
        raise RunDirError(f"{str(path)!r} is not a run directory (no {SUMMARY}, "
                          f"{' or '.join(EVENT_LOGS)} in it)")  # fmt: skip
    return path


def read_summary(run_dir: Path) -> dict[str, Any]:
    """``summary.json`` as a dict; ``{}`` when the run has none (not finished)."""
    path = run_dir / SUMMARY
    if not path.is_file():
        return {}
    try:
        summary = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as e:
        raise RunDirError(f"{str(path)!r} is not valid JSON ({e})") from e
    if not isinstance(summary, dict):
        raise RunDirError(f"{str(path)!r} is not a JSON object")
    return summary


def _lines(f: BinaryIO, compressed: bool) -> Iterator[bytes]:
    if not compressed:
        yield from f
        return
    reader = zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True)
    tail = b""
    while True:
        try:
            chunk = reader.read(1 << 20)
        except zstandard.ZstdError:  # a stream cut short: keep what was decoded
            chunk = b""
        if not chunk:
            break
        *whole, tail = (tail + chunk).split(b"\n")
        for line in whole:
            yield line + b"\n"
    if tail:
        yield tail


def read_events(path: Path, skip: tuple[bytes, ...] = ()) -> Iterator[Any]:
    """Stream the events of a log file one line at a time: each parsed event, or ``None``
    for a line that does not parse (e.g. the last line of a run that crashed). Lines
    containing one of ``skip`` are passed over unparsed."""
    with open(path, "rb") as f:
        for line in _lines(f, path.suffix == ".zst"):
            if any(s in line for s in skip):
                continue
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError:
                yield None
