"""sys/mman.h: memory protections and mmap flags."""

from __future__ import annotations

import enum
from typing import Final

from kernel.sys.flags import fast_ops


@fast_ops
class Prot(enum.IntFlag):
    PROT_NONE = 0x00  # no permissions
    PROT_READ = 0x01  # pages can be read
    PROT_WRITE = 0x02  # pages can be written
    PROT_EXEC = 0x04  # pages can be executed


PROT_NONE: Final = Prot.PROT_NONE
PROT_READ: Final = Prot.PROT_READ
PROT_WRITE: Final = Prot.PROT_WRITE
PROT_EXEC: Final = Prot.PROT_EXEC


@fast_ops
class MapFlags(enum.IntFlag):
    MAP_SHARED = 0x0001  # share changes
    MAP_PRIVATE = 0x0002  # changes are private
    MAP_FIXED = 0x0010  # map addr must be exactly as requested
    MAP_ANON = 0x1000  # allocated from memory, swap space


MAP_SHARED: Final = MapFlags.MAP_SHARED
MAP_PRIVATE: Final = MapFlags.MAP_PRIVATE
MAP_FIXED: Final = MapFlags.MAP_FIXED
MAP_ANON: Final = MapFlags.MAP_ANON
