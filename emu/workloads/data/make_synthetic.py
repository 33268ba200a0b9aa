"""Generate the two SYNTHETIC sample traces shipped next to this script.

    .venv/bin/python emu/workloads/data/make_synthetic.py

- ``synthetic.oracleGeneral.bin``: 20,000 libCacheSim oracleGeneral records (24 bytes,
  ``<IQIq``) over 2,000 page-sized objects with Zipf(1.0) popularity, clock_time one request per
  millisecond (in seconds), obj_size 4096, next_access_vtime the index of the next request to the
  same object or -1.
- ``synthetic.msr.csv``: 2,000 MSR Cambridge lines ``Timestamp,Hostname,DiskNumber,Type,Offset,
  Size,ResponseTime`` (FILETIME timestamps, 30% writes, offsets in a 64 MiB disk area, sizes
  512 B to 64 KiB, some unaligned).

Neither is a recording of a real system: they exist to test the readers and to demo replay.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def oracle(n: int = 20_000, nobj: int = 2_000, seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    w = np.arange(1, nobj + 1, dtype=np.float64) ** -1.0
    ids = rng.choice(nobj, size=n, p=w / w.sum()).astype(np.uint64) + np.uint64(1000)
    nxt = np.full(n, -1, np.int64)
    last: dict[int, int] = {}
    for i in range(n - 1, -1, -1):
        nxt[i] = last.get(int(ids[i]), -1)
        last[int(ids[i])] = i
    rec = np.zeros(n, [("t", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")])
    rec["t"] = np.arange(n) // 1000
    rec["id"], rec["size"], rec["next"] = ids, 4096, nxt
    return rec.tobytes()


def msr(n: int = 2_000, seed: int = 2) -> str:
    rng = np.random.default_rng(seed)
    t0 = 128166372000000000  # FILETIME (100 ns ticks since 1601), 2007-02-22
    lines = []
    for i in range(n):
        size = int(rng.choice([512, 4096, 8192, 16384, 65536]))
        off = int(rng.integers(0, 64 << 20) // 512 * 512)
        kind = "Write" if rng.random() < 0.3 else "Read"
        lines.append(f"{t0 + i * 10_000},synth,0,{kind},{off},{size},{int(rng.integers(500, 90_000))}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    (HERE / "synthetic.oracleGeneral.bin").write_bytes(oracle())
    (HERE / "synthetic.msr.csv").write_text(msr())
