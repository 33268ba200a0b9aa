"""sys/errno.h: the BSD error numbers the kernel returns (OpenBSD values)."""

from __future__ import annotations

import enum
from typing import Final


class Errno(enum.IntEnum):
    EPERM = 1
    EIO = 5
    ENOMEM = 12
    EACCES = 13
    EFAULT = 14
    EBUSY = 16
    EINVAL = 22
    ENOSPC = 28
    EAGAIN = 35
    EWOULDBLOCK = 35
    EOPNOTSUPP = 45


EPERM: Final = Errno.EPERM
EIO: Final = Errno.EIO
ENOMEM: Final = Errno.ENOMEM
EACCES: Final = Errno.EACCES
EFAULT: Final = Errno.EFAULT
EBUSY: Final = Errno.EBUSY
EINVAL: Final = Errno.EINVAL
ENOSPC: Final = Errno.ENOSPC
EAGAIN: Final = Errno.EAGAIN
EOPNOTSUPP: Final = Errno.EOPNOTSUPP
EWOULDBLOCK: Final = Errno.EWOULDBLOCK
