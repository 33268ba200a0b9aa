"""emu.sweep.ray_engine: cells as Ray tasks, on a local Ray or on a cluster (``--ray``).

``--ray`` joins the local Ray instance if one runs (``ray start --head``) and starts one
otherwise; ``--ray ADDRESS`` joins a cluster (``HOST:PORT`` of its head, or
``ray://HOST:10001`` through Ray Client) and ships this checkout's ``emu``, ``devices`` and
``kernel`` packages with the job (``runtime_env`` ``py_modules``), so the cluster runs the
driver's code; its nodes need the dependencies (``pip install`` this project there). Input
files go into the object store once (``ray.put``) and a worker fetches one only when the file
is not already on its node. Each task returns the packed run directory; nothing is shared but
Ray itself.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

import ray
from ray.exceptions import RayError

import devices
import emu
import kernel
from emu.sweep.cells import Result, Task, run_task
from emu.sweep.spec import SweepError

__all__ = ["RayEngine", "check_address"]


def _cell(task: Task, refs: dict[str, Any]) -> Result:
    return run_task(task, lambda sha: ray.get(refs[sha]))


_remote = ray.remote(num_cpus=1, max_retries=1)(_cell)


def check_address(address: str, timeout: float = 3.0) -> None:
    """Refuse (SweepError) a ``HOST:PORT`` / ``ray://HOST:PORT`` nobody listens on."""
    if address == "auto":
        return
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise SweepError(f"--ray {address!r}: expected HOST:PORT of the cluster's head (e.g. "
                         "10.0.0.5:6379) or ray://HOST:10001")  # fmt: skip
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        raise SweepError(f"--ray {address!r}: cannot reach {host}:{port} ({e.strerror or e}); "
                         "start the head with `ray start --head` there, or check the address "
                         "and that the port is open") from None  # fmt: skip


class RayEngine:
    """Cells as Ray tasks; uses the Ray session already open in this process if there is one."""

    name = "ray"

    def __init__(self, address: str | None = None) -> None:
        self.started = False
        self._pending: dict[Any, str] = {}
        self.where = "Ray (this process's session)"
        if ray.is_initialized():
            return
        quiet: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
        if address is None:
            try:
                ray.init(address="auto", **quiet)
                self.where = "Ray, the local instance already running"
            except ConnectionError:
                ray.init(include_dashboard=False, **quiet)
                self.where = "Ray, a local instance started for this sweep"
            self.started = True
            return
        check_address(address)
        env = {"py_modules": [emu, devices, kernel]}
        try:
            ray.init(address=address, runtime_env=env, **quiet)
        except (ConnectionError, RuntimeError, RayError) as e:
            raise SweepError(
                f"--ray {address!r}: cannot join the cluster: {e}; check the address, and for "
                "a cluster with token authentication set RAY_AUTH_MODE=token and give its "
                "token (RAY_AUTH_TOKEN, or ~/.ray/auth_token)"
            ) from None
        self.started = True
        self.where = f"Ray cluster at {address}"

    def run(self, tasks: Iterable[Task], blobs: dict[str, bytes]) -> Iterator[Result]:
        refs = {sha: ray.put(b) for sha, b in blobs.items()}
        window = 2 * max(1, int(ray.cluster_resources().get("CPU", 1)))  # type: ignore[no-untyped-call]
        todo = iter(tasks)
        pending = self._pending

        def fill() -> None:
            while len(pending) < window and (t := next(todo, None)) is not None:
                need = {sha: refs[sha] for sha in t.inputs.values()}
                pending[_remote.remote(t, need)] = t.cell

        fill()
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                cell = pending.pop(ref)
                try:
                    res = ray.get(ref)
                except RayError as e:  # the worker died, the node went away, ...
                    res = Result(cell=cell, error=f"Ray: {type(e).__name__}: {e}")
                yield res
            fill()

    def close(self, cancel: bool = False) -> None:
        if cancel:
            for ref in list(self._pending):
                ray.cancel(ref, force=True)
        self._pending.clear()
        if self.started:
            ray.shutdown()
            self.started = False
