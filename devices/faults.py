"""devices.faults: injected I/O errors, a slow device and a full host disk.

A :class:`FaultConfig` says what should go wrong; a :class:`FaultInjector` (one per device,
owning its seeded ``random.Random``) decides for each request, at submit time and in
submission order, which errno it completes with. The decision never depends on when the real
I/O finishes, so two runs with the same seed fail the same requests.

Modes (any combination; EIO modes win over ENOSPC; the random draw is made for every request
of a kind whose rate is non-zero, so adding a slot range does not shift which later requests
fail by rate):

* ``fail_read_rate`` / ``fail_write_rate``: each read / write fails with EIO with this
  probability (0..1), drawn from ``random.Random(seed)``.
* ``fail_nth_io``: the n-th request the device accepts (1-based, reads and writes counted
  together) fails with EIO; 0 = off.
* ``fail_read_slots`` / ``fail_write_slots``: inclusive block ranges; a request touching any
  block in a range fails with EIO. Strings like ``"100-200,300-310"`` or ``"150"`` are parsed.
* ``max_image_bytes``: a write that would make the image file hold more than this many bytes
  of data fails with ENOSPC (a full host disk); None = off.
* ``extra_latency_ns``: added to every request's service time (a slow device).

A failing request is not performed: the image is neither written nor read.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from errno import EIO, ENOSPC

__all__ = ["FaultConfig", "FaultInjector", "SlotRanges", "parse_slots"]

SlotRanges = list[tuple[int, int]]


def parse_slots(text: str) -> SlotRanges:
    """Parse ``"100-200,300-310"`` (inclusive ranges; ``"150"`` is ``150-150``)."""
    ranges: SlotRanges = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise ValueError(
                f"bad block range {part!r} in {text!r}: write 'A-B' or 'A' with whole numbers,"
                " ranges separated by commas, e.g. '100-200,300-310'"
            ) from None
        ranges.append((a, b))
    return ranges


def _coerce_slots(key: str, value: object) -> SlotRanges:
    if isinstance(value, str):
        return parse_slots(value)
    if not isinstance(value, list | tuple):
        raise ValueError(f"FaultConfig.{key}={value!r}: give a list of (a, b) or '100-200,...'")
    ranges: SlotRanges = []
    for r in value:
        if (
            not isinstance(r, list | tuple)
            or len(r) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in r)
        ):
            raise ValueError(
                f"FaultConfig.{key}: range {r!r} is not a pair of block numbers: use (a, b)"
            )
        ranges.append((int(r[0]), int(r[1])))
    return ranges


@dataclass
class FaultConfig:
    """What goes wrong on one device. See the module docstring for each mode."""

    fail_write_rate: float = 0.0
    fail_read_rate: float = 0.0
    fail_write_slots: SlotRanges = field(default_factory=list)
    fail_read_slots: SlotRanges = field(default_factory=list)
    fail_nth_io: int = 0
    max_image_bytes: int | None = None
    extra_latency_ns: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        # accept the string form (and TOML's lists of lists) at construction too
        self.fail_write_slots = _coerce_slots("fail_write_slots", self.fail_write_slots)
        self.fail_read_slots = _coerce_slots("fail_read_slots", self.fail_read_slots)

    @classmethod
    def from_mapping(cls, d: Mapping[str, object]) -> FaultConfig:
        """Build from a scenario table; unknown keys raise ValueError listing the known ones."""
        known = [f.name for f in dataclasses.fields(cls)]
        for key in d:
            if key not in known:
                raise ValueError(
                    f"unknown fault key {key!r}: accepted keys are {', '.join(known)}"
                )
        cfg = cls(**d)  # type: ignore[arg-type]
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise ValueError naming the first bad key and how to fix it."""
        for key in ("fail_write_rate", "fail_read_rate"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 <= v <= 1.0:
                raise ValueError(
                    f"FaultConfig.{key}={v!r}: must be a probability between 0 and 1,"
                    " e.g. 0.01 for one request in a hundred"
                )
        for key in ("fail_write_slots", "fail_read_slots"):
            for a, b in getattr(self, key):
                if a < 0 or b < a:
                    raise ValueError(
                        f"FaultConfig.{key}: range ({a}, {b}) is empty or negative:"
                        " give (a, b) with 0 <= a <= b (inclusive block numbers)"
                    )
        for key in ("fail_nth_io", "extra_latency_ns", "seed"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"FaultConfig.{key}={v!r}: must be an integer")
            if key != "seed" and v < 0:
                raise ValueError(f"FaultConfig.{key}={v!r}: must be >= 0 (0 turns it off)")
        m = self.max_image_bytes
        if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 0):
            raise ValueError(
                f"FaultConfig.max_image_bytes={m!r}: must be a byte count >= 0,"
                " or None (leave it out) for no limit"
            )


def _touches(ranges: SlotRanges, blkno: int, npages: int) -> bool:
    if not ranges:  # the usual case: no generator for any()
        return False
    last = blkno + npages - 1
    return any(a <= last and blkno <= b for a, b in ranges)


class FaultInjector:
    """One device's fault state: the config, its seeded RNG and the I/O count."""

    __slots__ = ("cfg", "nio", "rng")

    def __init__(self, cfg: FaultConfig) -> None:
        cfg.validate()
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.nio = 0  # requests decided so far

    def decide(self, write: bool, blkno: int, npages: int, image_bytes_after: int) -> int:
        """decide: the errno a request completes with (0, EIO or ENOSPC).

        => called once per accepted request, at submit, in submission order
        => image_bytes_after: bytes of data the image holds if this write is done
        """
        cfg = self.cfg
        self.nio += 1
        err = 0
        rate = cfg.fail_write_rate if write else cfg.fail_read_rate
        if rate > 0.0 and self.rng.random() < rate:
            err = EIO
        if self.nio == cfg.fail_nth_io:
            err = EIO
        if _touches(cfg.fail_write_slots if write else cfg.fail_read_slots, blkno, npages):
            err = EIO
        if (
            err == 0
            and write
            and cfg.max_image_bytes is not None
            and image_bytes_after > cfg.max_image_bytes
        ):
            err = ENOSPC
        return err
