"""emu.scenario: TOML scenarios, their validation, and ``--set`` overrides.

A scenario has four sections, each a typed structure defined once in :mod:`emu.config`
(``emu scenarios --help`` lists every key)::

    [machine]    MachineSection: sizes, seed, event loop, CPU costs, limits
    [device]     DeviceSection: the timing model, its parameters, fault injection
    [kernel]     KernelSection: daemon and UVM options (diagnostic, bufcache, ...)
    [[workload]] WorkloadSpec: kind, name, count, and the workload's own params

Every unknown key and every bad value, workload params included (checked against the
workload's signature, :func:`emu.workloads.check_params`), is refused with
:class:`ScenarioError`, whose message names the input, the key and the fix; the CLI turns it
into exit status 2. ``--set section.key=value`` overrides a key, ``--set
workload.NAME.PARAM=value`` a param of the workload called NAME.
"""

from __future__ import annotations

import copy
import importlib.resources
import os
import re
import tomllib
import traceback
from pathlib import Path
from typing import Annotated, Any

from msgspec import Meta, Struct, field

from emu.config import (
    MIN_RAM_PAGES,
    SECTIONS,
    ConfigError,
    DeviceSection,
    KernelSection,
    MachineSection,
    check_table,
    coerce,
    signature_struct,
)
from emu.ram import PAGE_SIZE
from emu.sizes import host_memory, plural
from emu.workloads import WORKLOADS, check_params
from kernel.arch.emu import machdep

__all__ = [
    "SECTIONS", "Scenario", "ScenarioError", "WorkloadSpec", "builtin_names", "load_scenario",
    "prepare_run_dir",
]  # fmt: skip

ScenarioError = ConfigError


class WorkloadSpec(Struct, frozen=True, kw_only=True):
    """[[workload]]: one stock workload; its other keys (or a ``params`` table) are params."""

    kind: Annotated[str, Meta(
        description='kind = "..." names a stock workload (see `emu scenarios --workloads`)')]
    name: Annotated[str, Meta(
        min_length=1, pattern="^[^/]*$", description="a non-empty name without '/'")]
    count: Annotated[int, Meta(
        ge=1, description="number of processes; copies are named NAME.0, NAME.1, ...")] = 1
    params: dict[str, Any] = field(default_factory=dict)


class Scenario(Struct, frozen=True, kw_only=True):
    """A validated scenario: every section filled with defaults."""

    name: str
    machine: MachineSection = field(default_factory=MachineSection)
    device: DeviceSection = field(default_factory=DeviceSection)
    kernel: KernelSection = field(default_factory=KernelSection)
    workloads: list[WorkloadSpec] = field(default_factory=list)
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
    """``section.key=value`` -> (section, key, value); the value has the key's declared type
    when it reads as one (:func:`emu.config.coerce`), else it is the text itself."""
    if "=" not in item or "." not in item.split("=", 1)[0]:
        raise ScenarioError(
            f"--set '{item}': expected section.key=value, e.g. --set machine.ram=128MiB"
        )
    lhs, raw = item.split("=", 1)
    section, key = lhs.strip().split(".", 1)
    cls = SECTIONS.get(section)
    return section, key, coerce(cls, key, raw) if cls is not None else raw


def _set_param(data: dict[str, Any], item: str, key: str, raw: str) -> None:
    """``--set workload.NAME.PARAM=VALUE``: set a param of the [[workload]] named NAME, with
    the param's declared type."""
    name, sep, param = key.partition(".")
    tables = data.get("workload", [])
    if not sep or not param or not isinstance(tables, list):
        raise ScenarioError(f"--set '{item}': expected workload.NAME.PARAM=VALUE, "
                            "e.g. --set workload.hog.max_pages=256")  # fmt: skip
    names = [t.get("name", f"{t.get('kind')}{i}") if isinstance(t, dict) else None
             for i, t in enumerate(tables)]  # fmt: skip
    if name not in names:
        known = ", ".join(str(n) for n in names) or "none"
        raise ScenarioError(f"--set '{item}': no workload named {name!r}; workloads: {known}")
    table = tables[names.index(name)]
    fn = WORKLOADS.get(table.get("kind"))
    value = coerce(signature_struct(fn)[0], param, raw) if fn is not None else raw
    if param in WorkloadSpec.__struct_fields__:
        table.setdefault("params", {})[param] = value
    else:
        table[param] = value  # an inline param wins over the params table


def load_scenario(
    spec: str | dict[str, Any], overrides: list[str] | None = None, name: str | None = None,
    *, label: str | None = None, python: bool | None = None,
) -> Scenario:
    """Load and validate a scenario from a built-in name, a TOML path or a dict (parsed TOML
    with ``python=False``: then ``label`` names it in messages)."""
    if python is None:
        python = isinstance(spec, dict)  # a dict is Python values: an int size is bytes
    if isinstance(spec, dict):
        label, data, sname = label or "<api>", copy.deepcopy(spec), name or "api"
    else:
        sname, label, text = _read_text(spec)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ScenarioError(f"{label}: not valid TOML: {e}") from e
    for item in overrides or []:
        section, key, value = parse_set(item)
        if section == "workload":
            _set_param(data, item, key, value)
        else:
            data.setdefault(section, {})[key] = value
    return validate(data, label, sname, python)


def validate(data: dict[str, Any], label: str = "<api>", name: str = "api",
             python: bool = False) -> Scenario:  # fmt: skip
    """The typed Scenario of ``data`` (parsed TOML; with ``python``, values given in Python,
    where an int size is bytes), or ScenarioError naming the first thing wrong."""
    for section in data:
        if section not in SECTIONS and section != "workload":
            raise ScenarioError(
                f"{label}: unknown section [{section}]; sections are "
                "[machine], [device], [kernel] and [[workload]]"
            )
    out: dict[str, Any] = {}
    for section, cls in SECTIONS.items():
        given = data.get(section, {})
        if not isinstance(given, dict):
            raise ScenarioError(f"{label}: [{section}] must be a table")
        out[section] = check_table(cls, given, label, f"{section}.", f"[{section}]",
                                   python=python)  # fmt: skip
    _check_machine(out["machine"], label)
    _check_pdaemon(out["kernel"], label)
    wl = data.get("workload", [])
    if not isinstance(wl, list):
        raise ScenarioError(f"{label}: workloads are [[workload]] tables (an array of tables)")
    workloads = [_workload(w, i, label) for i, w in enumerate(wl)]
    names = [w.name for w in workloads]
    for n in names:
        if names.count(n) > 1:
            raise ScenarioError(f"{label}: two workloads are named '{n}'; give each its own name")
    return Scenario(name=name, **out, workloads=workloads, source=label)


def _check_machine(mc: MachineSection, label: str) -> None:
    """What no key can say alone: the RAM the kernel needs and the host can back, and swap
    spread over its devices."""
    ram, swap = mc.ram, mc.swap
    if ram.pages < MIN_RAM_PAGES:
        raise ScenarioError(
            f"{label}: machine.ram = {str(ram)!r} is {ram.pages} pages; the kernel needs at "
            f"least {MIN_RAM_PAGES} pages ({MIN_RAM_PAGES * PAGE_SIZE >> 10} KiB)"
        )
    avail = host_memory()
    if ram.nbytes > avail:
        raise ScenarioError(
            f"{label}: machine.ram = {str(ram)!r} is more than this host can back: "
            f"{ram.nbytes >> 20} MiB asked, {avail >> 20} MiB of memory available; use at "
            f'most "{avail >> 20}MiB"'
        )
    if 0 < swap.pages < mc.swap_devices:
        raise ScenarioError(
            f"{label}: machine.swap = {str(swap)!r} is {plural(swap.pages, 'page')}, less than "
            f"one page per swap device (machine.swap_devices = {mc.swap_devices})"
        )


def _check_pdaemon(kc: KernelSection, label: str) -> None:
    """``kernel.pdaemon`` names a daemon that loads and has every entry point: loaded here,
    as boot will load it, so a bad one is refused before any run directory exists."""
    name = kc.pdaemon
    try:
        machdep.pdaemon_identity(name)
        return
    except FileNotFoundError as e:
        why = f"no such file {e.filename or name!r}"
    except ModuleNotFoundError as e:
        if e.name is None or not (name == e.name or name.startswith(e.name + ".")):
            why = _failed_import(e)  # the daemon itself imports something missing
        elif re.fullmatch(r"\d+(\.\d+)+", name):
            why = "no built-in page daemon of that revision"
        else:
            why = ("no module of that name (a path to a file ends in .py or contains a "
                   "'/')")  # fmt: skip
    except ImportError as e:
        missing = getattr(e, "missing", None)
        if missing is None:
            why = _failed_import(e)
        else:
            want = ", ".join(machdep.PDAEMON_ENTRY_POINTS)
            why = (f"it lacks {', '.join(missing)} (a page daemon module provides {want}: "
                   "docs/pdaemon-interface.md)")  # fmt: skip
    except Exception as e:
        why = _failed_import(e)
    variants = ", ".join(machdep.pdaemon_variants())
    raise ScenarioError(
        f"{label}: kernel.pdaemon = {name!r}: {why}; built-in variants: {variants} (or a path "
        "to a Python file, or a module name)"
    )


def _failed_import(e: BaseException) -> str:
    """What went wrong while the daemon module was imported, and where."""
    where = ""
    if isinstance(e, SyntaxError) and e.filename:
        where = f" at {e.filename}:{e.lineno}"
    elif e.__traceback__ is not None:
        last = traceback.extract_tb(e.__traceback__)[-1]
        where = f" at {last.filename}:{last.lineno}"
    what = " ".join(str(e).split())  # one line, whatever the module raised
    return f"it fails to import: {type(e).__name__}: {what}{where}"


def _workload(w: Any, i: int, label: str) -> WorkloadSpec:
    where = f"{label}: [[workload]] #{i + 1}"
    if not isinstance(w, dict):
        raise ScenarioError(f"{where}: must be a table")
    table = {key: w[key] for key in ("kind", "name", "count") if key in w}
    params = dict(w.get("params", {}))
    fixed = WorkloadSpec.__struct_fields__
    params.update((key, value) for key, value in w.items() if key not in fixed)
    if isinstance(table.get("kind"), str):
        table.setdefault("name", f"{table['kind']}{i}")
    spec = check_table(WorkloadSpec, table, where, "", "[[workload]]")
    fn = WORKLOADS.get(spec.kind)
    if fn is None:
        raise ScenarioError(
            f"{label}: workload '{spec.name}': unknown kind {spec.kind!r}; "
            f"stock kinds: {', '.join(sorted(WORKLOADS))} (see `emu scenarios --workloads`)"
        )
    params = check_params(fn, params, f"{label}: workload '{spec.name}' ({spec.kind})")
    return WorkloadSpec(kind=spec.kind, name=spec.name, count=spec.count, params=params)


def prepare_run_dir(sc: Scenario, out: Path, exact: Path | None, force: bool) -> Path:
    """The run directory: ``exact`` if given, else ``out/<scenario>-s<seed>-<n>``; sets
    ``out/latest`` to point at it."""
    path, flag = (out, "--out") if exact is None else (exact, "--run-dir")
    if path.is_file():
        raise ScenarioError(f"{flag} {path} is a file, not a directory; choose a directory")
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
            while (out / f"{sc.name}-s{sc.machine.seed}-{n}").exists():
                n += 1
            run_dir = out / f"{sc.name}-s{sc.machine.seed}-{n}"
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
