"""devices.timing: how long a block device takes to serve one request, in virtual ns.

A model answers ``service_ns(write, blkno, npages)`` for the next request the device serves and
keeps whatever state it needs (the HDD's head position). Queueing is not the model's business:
the device serves one request at a time in submission order, like a BSD ``bufq`` in FIFO mode,
and computes ``done = max(now, busy_until) + service_ns(...) + extra_latency_ns``. Models are
deterministic: no wall clock, no randomness.

* ``none``: 0 ns, a request completes at the virtual time it was submitted.
* ``ssd``:  fixed per-request latency (read and write differ) plus bytes / bandwidth.
* ``hdd``:  seek (settle + k * sqrt(distance in blocks), 0 when the head is already there),
  average rotational latency (half a revolution, 0 for a sequential request), then transfer at
  the media bandwidth; the head stays after the last block served.
"""

from __future__ import annotations

import math
from typing import ClassVar, Final, Protocol

from devices.request import PAGE_SIZE

__all__ = ["MODELS", "HddModel", "NoneModel", "SsdModel", "TimingModel", "make_model"]

NS_PER_S: Final = 1_000_000_000


class TimingModel(Protocol):
    """The seam between a device and its timing: one call per request, in service order."""

    name: str

    def service_ns(self, write: bool, blkno: int, npages: int) -> int: ...


def _transfer_ns(npages: int, bandwidth_bps: int) -> int:
    """Time to move npages at bandwidth_bps bytes/s, rounded up to a whole ns."""
    return -(-(npages * PAGE_SIZE * NS_PER_S) // bandwidth_bps)


class NoneModel:
    """Infinitely fast: every request takes 0 ns."""

    name: str = "none"
    PARAMS: ClassVar[dict[str, int]] = {}

    def service_ns(self, write: bool, blkno: int, npages: int) -> int:
        return 0


class SsdModel:
    """Fixed latency plus transfer: ``latency(op) + bytes / bandwidth``."""

    name: str = "ssd"
    # parameter -> smallest accepted value
    PARAMS: ClassVar[dict[str, int]] = {
        "read_latency_ns": 0,
        "write_latency_ns": 0,
        "bandwidth_bps": 1,
    }

    def __init__(
        self,
        read_latency_ns: int = 80_000,
        write_latency_ns: int = 30_000,
        bandwidth_bps: int = 2_000_000_000,
    ) -> None:
        self.read_latency_ns = read_latency_ns
        self.write_latency_ns = write_latency_ns
        self.bandwidth_bps = bandwidth_bps

    def service_ns(self, write: bool, blkno: int, npages: int) -> int:
        lat = self.write_latency_ns if write else self.read_latency_ns
        return lat + _transfer_ns(npages, self.bandwidth_bps)


class HddModel:
    """A spinning disk with one head: seek by distance, rotation, transfer.

    ``head`` is the block under the head: the one after the last block served (0 at start).
    A request that starts at ``head`` streams on (no seek, no rotational wait); any other pays
    ``settle_ns + seek_ns_per_sqrt_block * isqrt(distance)`` and half a revolution.
    """

    name: str = "hdd"
    PARAMS: ClassVar[dict[str, int]] = {
        "rpm": 1,
        "settle_ns": 0,
        "seek_ns_per_sqrt_block": 0,
        "bandwidth_bps": 1,
        "head": 0,
    }

    def __init__(
        self,
        rpm: int = 7200,
        settle_ns: int = 1_000_000,
        seek_ns_per_sqrt_block: int = 5_000,
        bandwidth_bps: int = 150_000_000,
        head: int = 0,
    ) -> None:
        self.rpm = rpm
        self.settle_ns = settle_ns
        self.seek_ns_per_sqrt_block = seek_ns_per_sqrt_block
        self.bandwidth_bps = bandwidth_bps
        self.head = head

    @property
    def rotation_ns(self) -> int:
        """Average rotational latency: half a revolution."""
        return 30 * NS_PER_S // self.rpm

    def seek_ns(self, blkno: int) -> int:
        distance = abs(blkno - self.head)
        if distance == 0:
            return 0
        return self.settle_ns + self.seek_ns_per_sqrt_block * math.isqrt(distance)

    def service_ns(self, write: bool, blkno: int, npages: int) -> int:
        seek = self.seek_ns(blkno)
        rotation = self.rotation_ns if seek else 0
        self.head = blkno + npages
        return seek + rotation + _transfer_ns(npages, self.bandwidth_bps)


MODELS: Final[dict[str, type[NoneModel] | type[SsdModel] | type[HddModel]]] = {
    "none": NoneModel,
    "ssd": SsdModel,
    "hdd": HddModel,
}


def make_model(name: str, **params: object) -> TimingModel:
    """Build the timing model ``name`` with ``params`` (ints, ns / bytes per second / rpm).

    Raises ValueError naming the unknown model or parameter and what is accepted, or the
    parameter whose value is out of range.
    """
    cls = MODELS.get(name)
    if cls is None:
        raise ValueError(
            f"unknown timing model {name!r}: accepted models are {', '.join(MODELS)}"
        )
    checked: dict[str, int] = {}
    for key, value in params.items():
        if key not in cls.PARAMS:
            accepted = ", ".join(cls.PARAMS) or "none"
            raise ValueError(
                f"timing model {name!r} has no parameter {key!r}: accepted parameters are"
                f" {accepted}"
            )
        checked[key] = _as_int(name, key, value, cls.PARAMS[key])
    model: TimingModel = cls(**checked)
    return model


def _as_int(model: str, key: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"timing model {model!r}: {key} must be an integer, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"timing model {model!r}: {key} must be a whole number, got {value!r}")
    if value < minimum:
        raise ValueError(f"timing model {model!r}: {key} must be >= {minimum}, got {value!r}")
    return int(value)
