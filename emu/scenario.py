"""emu.scenario: TOML scenarios, their validation, and ``--set`` overrides.

A scenario has four sections::

    [machine]   ram, swap, seed, loop, access_ns, fault_ns, quantum_ns, sample_interval_ns,
                max_virtual_ns
    [device]    model ("none" | "ssd" | "hdd"), the model's parameters, and the fault-injection
                keys fail_write_rate, fail_read_rate, fail_write_slots, fail_read_slots,
                fail_nth_io, max_image_bytes, extra_latency_ns
    [kernel]    daemon and UVM options (diagnostic, have_pmap_collect, bufcache, ...)
    [[workload]] kind, name, count, and the workload's own params

Every unknown key and every bad value is refused with :class:`ScenarioError`, whose message
names the input, the key and the fix; the CLI turns it into exit status 2.
"""

from __future__ import annotations

import copy
import importlib.resources
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "SECTIONS", "Scenario", "ScenarioError", "builtin_names", "load_scenario", "prepare_run_dir",
]  # fmt: skip


class ScenarioError(ValueError):
    """A scenario (file, key or value) that cannot be run; the message says how to fix it."""


# key -> (type or tuple of types, default, help)
_MACHINE: dict[str, tuple[Any, Any, str]] = {
    "ram": ((str, int), "64MiB", 'emulated RAM: "64MiB", "1GiB" or a page count'),
    "swap": ((str, int), "256MiB", 'swap image size: "256MiB" or a page count'),
    "seed": (int, 1, "seed of every random choice in the run"),
    "loop": (str, "uvloop", '"uvloop" or "asyncio"'),
    "access_ns": (int, 5, "virtual CPU time per memory access (ns)"),
    "fault_ns": (int, 2000, "virtual CPU time per trap into the kernel (ns)"),
    "quantum_ns": (int, 100_000, "CPU time a thread may run before its time passes (ns)"),
    "sample_interval_ns": (int, 2_000_000, "period of uvmexp.sample events (ns)"),
    "max_virtual_ns": (int, 0, "stop the run after this much virtual time (0 = no limit)"),
    "swap_devices": (int, 1, "number of swap devices the swap size is split over"),
}
_DEVICE: dict[str, tuple[Any, Any, str]] = {
    "model": (str, "ssd", '"none", "ssd" or "hdd"'),
    "fail_write_rate": ((float, int), 0.0, "probability (0..1) that a swap write fails with EIO"),
    "fail_read_rate": ((float, int), 0.0, "probability (0..1) that a swap read fails with EIO"),
    "fail_write_slots": (str, "", 'slot ranges whose writes fail, e.g. "100-200,300-310"'),
    "fail_read_slots": (str, "", 'slot ranges whose reads fail, e.g. "100-200"'),
    "fail_nth_io": (int, 0, "fail exactly the N-th I/O of the device (1-based, 0 = off)"),
    "max_image_bytes": (int, 0, "refuse writes that grow the image past this (0 = no limit)"),
    "extra_latency_ns": (int, 0, "latency added to every request (ns)"),
    # timing-model parameters (checked again by the model itself)
    "read_latency_ns": (int, None, "ssd: latency of a read (ns)"),
    "write_latency_ns": (int, None, "ssd: latency of a write (ns)"),
    "bandwidth_bps": (int, None, "ssd/hdd: transfer rate, bytes per second"),
    "rpm": (int, None, "hdd: spindle speed"),
    "settle_ns": (int, None, "hdd: fixed part of a seek (ns)"),
    "seek_ns_per_sqrt_block": (int, None, "hdd: seek time per sqrt(blocks travelled) (ns)"),
}
_KERNEL: dict[str, tuple[Any, Any, str]] = {
    "diagnostic": (bool, True, "DIAGNOSTIC: assertions and uvm_check after daemon passes"),
    "debug": (bool, False, "DEBUG: panic when the pagedaemon deadlocks"),
    "have_pmap_collect": (bool, False, "__HAVE_PMAP_COLLECT: swap out sleeping processes"),
    "hibernate": (bool, False, "HIBERNATE: compile in uvmpd_drop / uvmpd_hibernate"),
    "bufcache": (bool, True, "model the buffer cache (bufbackoff, BUFPAGES_*)"),
    "bufcachepercent": (int, 10, "buffer cache size, percent of RAM"),
    "check_every_pass": (bool, True, "run uvm_check after every daemon pass (with diagnostic)"),
    "scan_page_ns": (int, 200, "virtual CPU time per page the daemon examines (ns)"),
}
_WORKLOAD_KEYS = {"kind", "name", "count", "params"}

SECTIONS: dict[str, dict[str, tuple[Any, Any, str]]] = {
    "machine": _MACHINE,
    "device": _DEVICE,
    "kernel": _KERNEL,
}


@dataclass
class WorkloadSpec:
    kind: str
    name: str
    count: int = 1
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Scenario:
    """A validated scenario: every section filled with defaults."""

    name: str
    machine: dict[str, Any]
    device: dict[str, Any]
    kernel: dict[str, Any]
    workloads: list[WorkloadSpec]
    source: str = "<api>"


def builtin_names() -> list[str]:
    files = importlib.resources.files("emu.scenarios")
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".toml"))


def _read_text(spec: str) -> tuple[str, str, str]:
    """(name, source label, text) for a built-in name or a path."""
    if spec in builtin_names():
        text = importlib.resources.files("emu.scenarios").joinpath(spec + ".toml").read_text()
        return spec, f"built-in scenario '{spec}'", text
    path = Path(spec)
    if not path.exists():
        raise ScenarioError(
            f"scenario '{spec}': no such file and no built-in of that name "
            f"(built-ins: {', '.join(builtin_names())}; see `emu scenarios`)"
        )
    try:
        return path.stem, str(path), path.read_text()
    except OSError as e:
        raise ScenarioError(f"scenario '{spec}': cannot read it: {e.strerror}") from e


def parse_set(item: str) -> tuple[str, str, Any]:
    """``section.key=value`` -> (section, key, value); value parsed as TOML, else a string."""
    if "=" not in item or "." not in item.split("=", 1)[0]:
        raise ScenarioError(
            f"--set '{item}': expected section.key=value, e.g. --set machine.ram=128MiB"
        )
    lhs, raw = item.split("=", 1)
    section, key = lhs.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return section, key, value


def load_scenario(
    spec: str | dict[str, Any], overrides: list[str] | None = None, name: str | None = None
) -> Scenario:
    """Load and validate a scenario from a built-in name, a TOML path or a dict."""
    if isinstance(spec, dict):
        label, data, sname = "<api>", copy.deepcopy(spec), name or "api"
    else:
        sname, label, text = _read_text(spec)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ScenarioError(f"{label}: not valid TOML: {e}") from e
    for item in overrides or []:
        section, key, value = parse_set(item)
        if section == "workload":
            raise ScenarioError(f"--set '{item}': workloads are set in the scenario file")
        data.setdefault(section, {})[key] = value
    return validate(data, label, sname)


def validate(data: dict[str, Any], label: str = "<api>", name: str = "api") -> Scenario:
    for section in data:
        if section not in SECTIONS and section != "workload":
            raise ScenarioError(
                f"{label}: unknown section [{section}]; sections are "
                "[machine], [device], [kernel] and [[workload]]"
            )
    out: dict[str, dict[str, Any]] = {}
    for section, schema in SECTIONS.items():
        given = data.get(section, {})
        if not isinstance(given, dict):
            raise ScenarioError(f"{label}: [{section}] must be a table")
        sec: dict[str, Any] = {}
        for key, value in given.items():
            if key not in schema:
                known = ", ".join(sorted(schema))
                raise ScenarioError(
                    f"{label}: unknown key {section}.{key}; known keys of [{section}]: {known}"
                )
            types, _, help_ = schema[key]
            if isinstance(value, bool) and types is not bool and bool not in _tuple(types):
                raise ScenarioError(f"{label}: {section}.{key} = {value!r}: expected {help_}")
            if not isinstance(value, types):
                raise ScenarioError(f"{label}: {section}.{key} = {value!r}: expected {help_}")
            sec[key] = value
        for key, (_, default, _) in schema.items():
            if key not in sec and default is not None:
                sec[key] = default
        out[section] = sec
    _check_values(out, label)
    wl = data.get("workload", [])
    if not isinstance(wl, list):
        raise ScenarioError(f"{label}: workloads are [[workload]] tables (an array of tables)")
    workloads = [_workload(w, i, label) for i, w in enumerate(wl)]
    names = [w.name for w in workloads]
    for n in names:
        if names.count(n) > 1:
            raise ScenarioError(f"{label}: two workloads are named '{n}'; give each its own name")
    return Scenario(name, out["machine"], out["device"], out["kernel"], workloads, label)


def _tuple(t: Any) -> tuple[Any, ...]:
    return t if isinstance(t, tuple) else (t,)


def _check_values(s: dict[str, dict[str, Any]], label: str) -> None:
    m, d = s["machine"], s["device"]
    if m["loop"] not in ("uvloop", "asyncio"):
        raise ScenarioError(f'{label}: machine.loop = {m["loop"]!r}: use "uvloop" or "asyncio"')
    for key in ("access_ns", "fault_ns", "quantum_ns", "max_virtual_ns"):
        if m[key] < 0:
            raise ScenarioError(f"{label}: machine.{key} = {m[key]}: must be >= 0")
    if m["sample_interval_ns"] <= 0 or m["swap_devices"] < 1:
        raise ScenarioError(
            f"{label}: machine.sample_interval_ns and machine.swap_devices must be positive"
        )
    if d["model"] not in ("none", "ssd", "hdd"):
        raise ScenarioError(f'{label}: device.model = {d["model"]!r}: use "none", "ssd" or "hdd"')
    for key in ("fail_write_rate", "fail_read_rate"):
        if not 0.0 <= float(d[key]) <= 1.0:
            raise ScenarioError(f"{label}: device.{key} = {d[key]}: a probability from 0 to 1")
    for key in ("fail_nth_io", "max_image_bytes", "extra_latency_ns"):
        if d[key] < 0:
            raise ScenarioError(f"{label}: device.{key} = {d[key]}: must be >= 0")


def _workload(w: Any, i: int, label: str) -> WorkloadSpec:
    where = f"{label}: [[workload]] #{i + 1}"
    if not isinstance(w, dict):
        raise ScenarioError(f"{where}: must be a table")
    params = dict(w.get("params", {}))
    for key, value in w.items():
        if key not in _WORKLOAD_KEYS:
            params[key] = value  # workload params may also be given inline
    kind = w.get("kind")
    if not isinstance(kind, str):
        raise ScenarioError(f'{where}: needs kind = "..." (see `emu scenarios --workloads`)')
    count = w.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ScenarioError(f"{where}: count = {count!r}: a whole number >= 1")
    name = w.get("name", f"{kind}{i}")
    if not isinstance(name, str) or not name or "/" in name:
        raise ScenarioError(f"{where}: name = {name!r}: a non-empty name without '/'")
    return WorkloadSpec(kind, name, count, params)


def prepare_run_dir(sc: Scenario, out: Path, exact: Path | None, force: bool) -> Path:
    """The run directory: ``exact`` if given, else ``out/<scenario>-s<seed>-<n>``; sets
    ``out/latest`` to point at it."""
    try:
        if exact is not None:
            if exact.exists() and not force:
                raise ScenarioError(
                    f"run directory {exact} already exists; use --force to reuse it"
                )
            exact.mkdir(parents=True, exist_ok=True)
            run_dir = exact
        else:
            out.mkdir(parents=True, exist_ok=True)
            n = 1
            while (out / f"{sc.name}-s{sc.machine['seed']}-{n}").exists():
                n += 1
            run_dir = out / f"{sc.name}-s{sc.machine['seed']}-{n}"
            run_dir.mkdir()
            latest = out / "latest"
            if latest.is_symlink() or latest.exists():
                latest.unlink()
            latest.symlink_to(run_dir.name)
        os.chmod(run_dir, 0o700)
        probe = run_dir / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except PermissionError as e:
        raise ScenarioError(f"cannot write the run directory: {e.filename}: permission denied; "
                            "choose another --out") from e  # fmt: skip
    except OSError as e:
        raise ScenarioError(f"cannot create the run directory: {e}") from e
    return run_dir
