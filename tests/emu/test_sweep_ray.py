"""emu sweep on Ray: one local Ray session (2 CPUs) for the module; the same cells give the same
runs on Ray as on the process pool, input files included."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from emu import rundir
from emu.sweep import PoolEngine, sweep
from emu.sweep.spec import make_spec
from emu.workloads.trace import DATA_DIR

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="warning")  # fmt: skip
    yield
    ray.shutdown()


def _cell(d: Path) -> tuple[dict[str, object], list[dict[str, object]]]:
    s = {k: v for k, v in json.loads((d / "summary.json").read_text()).items()
         if not k.startswith("wall")}  # fmt: skip
    ev = [{k: v for k, v in e.items() if not k.startswith("wall")}
          for e in rundir.read_events(d / "events.jsonl.zst")]  # fmt: skip
    return s, ev


def test_ray_cells_are_the_pool_cells(ray_session: None, tmp_path: Path) -> None:
    from emu.sweep.ray_engine import RayEngine

    spec = make_spec({"trace": f"lackey:{DATA_DIR / 'ls.lackey.gz'}", "seeds": [1, 2],
                      "set": ["workload.trace.limit=40000"]},
                     {"machine.ram": ["256KiB", "384KiB"]})  # fmt: skip
    a = sweep(spec, tmp_path / "pool", PoolEngine(2), progress=False)
    engine = RayEngine()
    b = sweep(spec, tmp_path / "ray", engine, progress=False)
    assert (a.ran, a.failed, b.ran, b.failed) == (4, 0, 4, 0)
    assert ray.is_initialized(), "a session it did not start is left open"
    names = sorted(p.name for p in (tmp_path / "pool" / "cells").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "ray" / "cells").iterdir())
    for n in names:
        assert _cell(tmp_path / "pool" / "cells" / n) == _cell(tmp_path / "ray" / "cells" / n)
    ta, tb = (pq.read_table(tmp_path / d / "results.parquet").to_pylist() for d in ("pool", "ray"))
    strip = lambda rows: [{k: v for k, v in r.items() if "wall" not in k} for r in rows]  # noqa: E731
    assert strip(ta) == strip(tb)
    assert all(r["workloads.trace.faults.zero_fill"] > 0 for r in ta), "the figures are there"
