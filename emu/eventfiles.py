"""emu.eventfiles: the event log's levels and files: compact folding, zstd, reading back.

Two event levels (docs/log-schema.md, "Event levels"):

- ``full`` (``emu run``'s default): every event, one line each.
- ``compact`` (the sweeps' default): the per-fault and per-cluster events (``uvm_fault.pagein``,
  ``uvmpd_scan_inactive.pageout`` and, at debug level, ``uvm_fault.done``) are folded into
  counts and histograms instead of written: :class:`Compactor` keeps them and the run's
  ``summary.json`` gets them under ``events``. Every other event is kept as is (the daemon's
  passes, aiodone batches, uvmexp samples, workload and run events, warnings), and each
  ``uvmexp.sample`` line (and ``run.end``) gains ``pageins``: the page-ins since the previous
  sample, so the paging rate can still be drawn over time.

Either level can be compressed with zstd (``events.jsonl.zst``): one zstd stream that
``zstd -dc``, DuckDB's ``read_json_auto`` and :mod:`emu.rundir` (``emu analyze``, ``emu
compare``) read.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import MutableMapping
from typing import Any, BinaryIO, Literal

import structlog
import zstandard

__all__ = ["LEVELS", "Compactor", "EventLevel", "zstd_writer"]

EventLevel = Literal["full", "compact"]
LEVELS: tuple[EventLevel, ...] = ("full", "compact")
ZSTD_LEVEL = 3  # zstd's default: fast, and a log compresses about 8x


def _bucket(n: int) -> str:
    """The power-of-2 bucket holding ``n`` (its upper bound), as the summary's histograms."""
    return str(1 << int(n).bit_length())


class Compactor:
    """A structlog processor folding the per-fault and per-cluster events into histograms."""

    FOLDED = ("uvm_fault.pagein", "uvmpd_scan_inactive.pageout", "uvm_fault.done")

    def __init__(self) -> None:
        self.kept = 0
        self.pageins = 0
        self._since_sample = 0
        self.pagein_latency: Counter[str] = Counter()
        self.pageouts = 0
        self.pageout_pages: Counter[str] = Counter()
        self.pageout_result: Counter[str] = Counter()
        self.pageout_swap = 0
        self.fault_done = 0

    def __call__(self, _: Any, __: str, ev: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        name = ev.get("event")
        if name == "uvm_fault.pagein":
            self.pageins += 1
            self._since_sample += 1
            self.pagein_latency[_bucket(ev.get("latency_ns", 0))] += 1
        elif name == "uvmpd_scan_inactive.pageout":
            self.pageouts += 1
            self.pageout_pages[str(ev.get("npages", 0))] += 1
            self.pageout_result[str(ev.get("result"))] += 1
            self.pageout_swap += bool(ev.get("swap"))
        elif name == "uvm_fault.done":
            self.fault_done += 1
        else:
            if name in ("uvmexp.sample", "run.end"):
                ev["pageins"] = self._since_sample
                self._since_sample = 0
            self.kept += 1
            return ev
        raise structlog.DropEvent

    def folded(self) -> dict[str, Any]:
        """What summary.json's ``events`` holds for a compact log."""
        def hist(c: Counter[str]) -> dict[str, int]:
            return {k: c[k] for k in sorted(c, key=int)}

        return {
            "level": "compact",
            "kept": self.kept,
            "folded": {
                "uvm_fault.pagein": {"count": self.pageins,
                                     "latency_ns_hist": hist(self.pagein_latency)},
                "uvmpd_scan_inactive.pageout": {
                    "count": self.pageouts, "swap": self.pageout_swap,
                    "npages_hist": hist(self.pageout_pages),
                    "result": dict(sorted(self.pageout_result.items())),
                },
                "uvm_fault.done": {"count": self.fault_done},
            },
        }  # fmt: skip


class _LockedZstd:
    """A zstd stream writer that a flush from another thread (the log's flusher) cannot
    enter in the middle of a write."""

    __slots__ = ("_lock", "_w")

    def __init__(self, raw: BinaryIO) -> None:
        self._w = zstandard.ZstdCompressor(level=ZSTD_LEVEL).stream_writer(raw, closefd=True)
        self._lock = threading.Lock()

    def write(self, data: bytes) -> int:
        with self._lock:
            return int(self._w.write(data))

    def flush(self) -> None:
        with self._lock:
            self._w.flush()

    def close(self) -> None:
        with self._lock:
            self._w.close()  # type: ignore[no-untyped-call]


def zstd_writer(raw: BinaryIO) -> BinaryIO:
    """A binary file writing one zstd stream into ``raw`` (closed with it); ``flush()`` ends
    the current block, so what was written so far decompresses."""
    return _LockedZstd(raw)  # type: ignore[return-value]

