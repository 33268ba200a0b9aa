"""devices: block devices that know nothing of the kernel.

* :mod:`devices.request`: ``IoRequest``, one transfer of whole pages (block, page views,
  direction, completion callback; the device reports error and residual).
* :mod:`devices.imagedisk`: ``ImageDisk``, a disk over a sparse image file (swap devices and
  mapped files) doing real gather writes and scatter reads, completing in virtual-time order.
* :mod:`devices.hostpool`: ``HostPool``, a disk's transfers on its image, inline or batched
  through aiofiles' thread pool.
* :mod:`devices.timing`: when a request completes (``none`` / ``ssd`` / ``hdd``).
* :mod:`devices.faults`: injected errors, a slow device, a full host disk.

Devices import ``emu.clock`` and nothing else of the machine, and never ``kernel``.
"""

from __future__ import annotations

from devices.faults import FaultConfig, FaultInjector, parse_slots
from devices.imagedisk import DiskStats, ImageDisk
from devices.request import IoRequest
from devices.timing import HddModel, NoneModel, SsdModel, TimingModel, make_model

__all__ = [
    "DiskStats",
    "FaultConfig",
    "FaultInjector",
    "HddModel",
    "ImageDisk",
    "IoRequest",
    "NoneModel",
    "SsdModel",
    "TimingModel",
    "make_model",
    "parse_slots",
]
