"""emu.sizes: RAM and swap sizes as a scenario or the API gives them.

A size is a whole number of pages. In a scenario file and in ``--set`` it carries a unit
(``"64MiB"``, ``"512KiB"``, ``"300pages"``; K/M/G/T and any case are accepted too), because a
bare number could mean bytes or pages; only 0 needs none. In the Python API an int is bytes.
"""

from __future__ import annotations

import re

import psutil

from emu.ram import PAGE_SIZE

__all__ = ["Size", "host_memory", "iec", "plural"]

_UNITS = {"kib": 1 << 10, "k": 1 << 10, "mib": 1 << 20, "m": 1 << 20, "gib": 1 << 30,
          "g": 1 << 30, "tib": 1 << 40, "t": 1 << 40, "pages": PAGE_SIZE, "page": PAGE_SIZE}
_SIZE_RE = re.compile(r"\s*(\d+)\s*([a-z]*)\s*", re.IGNORECASE)
_UNIT_HINT = 'give a unit: KiB, MiB, GiB or pages (e.g. "64MiB" or "16384pages")'


def plural(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def iec(nbytes: int) -> str:
    """``nbytes`` in the largest binary unit that keeps it whole: 1536 KiB, 64 MiB."""
    for unit, mult in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= mult and nbytes % mult == 0:
            return f"{nbytes // mult} {unit}"
    return f"{nbytes} bytes"


class Size:
    """A RAM or swap size: a whole number of pages, as written (``"64MiB"``, ``"300pages"``).

    In a scenario file and in ``--set`` a size carries its unit; in the Python API an int is
    a number of bytes, like every other size there.
    """

    __slots__ = ("nbytes", "spec")

    def __init__(self, nbytes: int, spec: str | None = None) -> None:
        self.nbytes = nbytes
        self.spec = spec if spec is not None else iec(nbytes).replace(" ", "") if nbytes else "0"

    @property
    def pages(self) -> int:
        return self.nbytes // PAGE_SIZE

    def __str__(self) -> str:
        return self.spec

    def __repr__(self) -> str:
        return f"Size({self.spec!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Size) and other.nbytes == self.nbytes

    def __hash__(self) -> int:
        return hash(self.nbytes)

    @classmethod
    def parse(cls, value: object, python: bool = False) -> Size:
        """A Size from ``"64MiB"`` / ``"300pages"`` (or, with ``python``, an int of bytes).

        => raises TypeError for a value that is no size (a bare number from TOML: the
           unit is missing), ValueError for one that is negative or not whole pages
        """
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise TypeError(f"expected a size such as \"64MiB\"; {_UNIT_HINT}")
        if isinstance(value, int):
            if not python and value != 0:
                raise TypeError(f"a bare number is not a size; {_UNIT_HINT}")
            if value < 0:
                raise ValueError("a size cannot be negative")
            nbytes, spec = value, None
        else:
            m = _SIZE_RE.fullmatch(value)
            if m is not None and not m.group(2) and int(m.group(1)) == 0:
                return cls(0, value.strip())  # nothing needs no unit: swap = "0" is no swap
            if m is None or not m.group(2) or m.group(2).lower() not in _UNITS:
                why = "a bare number is not a size" if m and not m.group(2) else "not a size"
                raise TypeError(f"{why}; {_UNIT_HINT}")
            nbytes, spec = int(m.group(1)) * _UNITS[m.group(2).lower()], value.strip()
        if nbytes % PAGE_SIZE:
            raise ValueError(
                f"{iec(nbytes)} is not a whole number of 4 KiB pages ({nbytes} bytes = "
                f"{plural(nbytes // PAGE_SIZE, 'page')} + {nbytes % PAGE_SIZE} bytes); use a "
                "multiple of 4 KiB"
            )
        return cls(nbytes, spec)


def host_memory() -> int:
    """Bytes of memory the host can give a run now (psutil's ``available``)."""
    return int(psutil.virtual_memory().available)
