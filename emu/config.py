"""emu.config: the scenario sections as typed structures, and their validation.

One msgspec ``Struct`` per section is the single definition of its keys: the type, the
default, the constraints (``Meta(ge=..)``) and the one-line doc (``Meta(description=..)``).
Validation, the error messages, ``--set`` coercion and the key list of ``emu scenarios
--help`` are all read from it. Adding a key is one line in its section; a [kernel] key named
like a field of :class:`kernel.kernel.KernelConfig` reaches the kernel with no other change
(:func:`emu.probes.kernel_config`).

:func:`check_table` validates one table against a Struct key by key, so that each message
names the input, the ``section.key``, the value and what is accepted; a workload's params go
through the same function with a Struct made from its signature (:func:`signature_struct`).
Sizes (``ram``, ``swap``) are :class:`emu.sizes.Size`.
"""

from __future__ import annotations

import functools
import inspect
import json
import tomllib
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import msgspec
import msgspec.inspect as mi
from msgspec import Meta, Struct

from emu.sizes import Size

__all__ = [
    "SECTIONS", "ConfigError", "ConfigTypeError", "Count", "DeviceSection", "Fraction",
    "KernelSection", "MachineSection", "Ns", "Pages", "check_table", "coerce", "keys_help",
    "signature_struct", "what",
]  # fmt: skip

S = TypeVar("S", bound=Struct)


class ConfigError(ValueError):
    """A scenario (file, key or value) that cannot be run; the message says how to fix it."""


class ConfigTypeError(ConfigError, TypeError):
    """An unknown key, a missing one, or a value of the wrong type (also a TypeError, as a
    Python call with such an argument would raise)."""


MIN_RAM_PAGES = 64  # below this the kernel's reserves and targets leave nothing to run on
_SIZE = mi.CustomType(Size)


# Constrained types for sections and workload params (emu.api re-exports them).
Ns = Annotated[int, Meta(ge=0)]  # a virtual duration in ns
Count = Annotated[int, Meta(ge=0)]  # how many (accesses, passes, ...)
Pages = Annotated[int, Meta(ge=1)]  # a size in pages
Fraction = Annotated[float, Meta(ge=0, le=1)]  # a probability or a share


class MachineSection(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[machine]: the emulated hardware and the run."""

    ram: Annotated[Size, Meta(
        description=f'emulated RAM, at least {MIN_RAM_PAGES} pages: "64MiB", "300pages"')
    ] = Size(64 << 20, "64MiB")
    swap: Annotated[Size, Meta(
        description='swap space: "256MiB", "2048pages"; 0 runs without swap')
    ] = Size(256 << 20, "256MiB")
    seed: Annotated[int, Meta(description="seed of every random choice in the run")] = 1
    loop: Annotated[Literal["uvloop", "asyncio"], Meta(description="the event loop")] = "uvloop"
    access_ns: Annotated[Ns, Meta(description="virtual CPU time per memory access (ns)")] = 5
    fault_ns: Annotated[Ns, Meta(
        description="virtual CPU time per trap into the kernel (ns)")] = 2000
    quantum_ns: Annotated[Ns, Meta(
        description="CPU time a thread may run before its time passes (ns)")] = 100_000
    sample_interval_ns: Annotated[int, Meta(
        gt=0, description="period of uvmexp.sample events (ns)")] = 2_000_000
    max_virtual_ns: Annotated[Ns, Meta(
        description="stop the run after this much virtual time (0 = no limit)")] = 0
    max_wall_s: Annotated[float, Meta(ge=0, description="stop the run after this many "
                                      "wall-clock seconds (0 = no limit; emu run --timeout)")] = 0.0
    swap_devices: Annotated[int, Meta(
        ge=1, description="number of swap devices the swap size is split over")] = 1


class DeviceSection(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[device]: the swap disks' timing model and fault injection."""

    model: Annotated[Literal["none", "ssd", "hdd"], Meta(description="the timing model")] = "ssd"
    fail_write_rate: Annotated[float, Meta(
        ge=0, le=1, description="probability that a swap write fails with EIO")] = 0.0
    fail_read_rate: Annotated[float, Meta(
        ge=0, le=1, description="probability that a swap read fails with EIO")] = 0.0
    fail_write_slots: Annotated[str, Meta(
        description='slot ranges whose writes fail, e.g. "100-200,300-310"')] = ""
    fail_read_slots: Annotated[str, Meta(
        description='slot ranges whose reads fail, e.g. "100-200"')] = ""
    fail_nth_io: Annotated[int, Meta(
        ge=0, description="fail exactly the N-th I/O of the device (1-based, 0 = off)")] = 0
    max_image_bytes: Annotated[int, Meta(
        ge=0, description="refuse writes that grow the image past this (0 = no limit)")] = 0
    extra_latency_ns: Annotated[Ns, Meta(description="latency added to every request (ns)")] = 0
    # the timing model's parameters (None: the model's default; the model checks them)
    read_latency_ns: Annotated[int | None, Meta(description="ssd: latency of a read (ns)")] = None
    write_latency_ns: Annotated[int | None, Meta(
        description="ssd: latency of a write (ns)")] = None
    bandwidth_bps: Annotated[int | None, Meta(
        description="ssd/hdd: transfer rate, bytes per second")] = None
    rpm: Annotated[int | None, Meta(description="hdd: spindle speed")] = None
    settle_ns: Annotated[int | None, Meta(description="hdd: fixed part of a seek (ns)")] = None
    seek_ns_per_sqrt_block: Annotated[int | None, Meta(
        description="hdd: seek time per sqrt(blocks travelled) (ns)")] = None

    FAULT_KEYS: ClassVar[tuple[str, ...]] = (
        "fail_write_rate", "fail_read_rate", "fail_write_slots", "fail_read_slots",
        "fail_nth_io", "max_image_bytes", "extra_latency_ns",
    )  # fmt: skip

    def faults(self) -> dict[str, Any]:
        """The fault-injection keys, for devices.faults.FaultConfig."""
        return {key: getattr(self, key) for key in self.FAULT_KEYS}

    def model_params(self) -> dict[str, Any]:
        """The timing-model parameters that are set, for devices.timing.make_model."""
        skip = {"model", *self.FAULT_KEYS}
        return {key: getattr(self, key) for key in self.__struct_fields__
                if key not in skip and getattr(self, key) is not None}  # fmt: skip


class KernelSection(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """[kernel]: build options and tunables."""

    diagnostic: Annotated[bool, Meta(
        description="DIAGNOSTIC: assertions and uvm_check after daemon passes")] = True
    debug: Annotated[bool, Meta(description="DEBUG: panic when the pagedaemon deadlocks")] = False
    have_pmap_collect: Annotated[bool, Meta(
        description="__HAVE_PMAP_COLLECT: the daemon drops the mappings of processes asleep "
        "20 s or more (uvm_swapout_threads, pmap_collect); amd64: off")] = False
    hibernate: Annotated[bool, Meta(
        description="HIBERNATE: compile in uvmpd_drop / uvmpd_hibernate")] = False
    bufcache: Annotated[bool, Meta(
        description="model the buffer cache (bufbackoff, BUFPAGES_*)")] = True
    bufcachepercent: Annotated[int, Meta(
        ge=5, le=90, description="buffer cache size in percent of RAM, as kern.bufcachepercent")
    ] = 10
    check_every_pass: Annotated[bool, Meta(
        description="run uvm_check after every daemon pass (with diagnostic)")] = True
    swapencrypt: Annotated[bool, Meta(
        description="vm.swapencrypt.enable: encrypt pages written to swap (OpenBSD's default)")] = True
    check_full: Annotated[bool, Meta(
        description="with check_every_pass: the whole uvm_check every time (O(RAM) each), "
        "not amortized over the work done")] = False
    scan_page_ns: Annotated[Ns, Meta(
        description="virtual CPU time per page the daemon examines (ns)")] = 200
    yield_ns: Annotated[int, Meta(ge=1, description=(
        "the scheduling quantum: CPU time a kernel thread runs before sched_pause yields"
        " (ns)"))] = 1_000_000
    pdaemon: Annotated[str, Meta(description=(
        'the page daemon: "1.105", "1.154", a Python file ("./mydaemon.py") or a module'
        " name (docs/pdaemon-interface.md)"))] = "1.105"


SECTIONS: dict[str, type[Struct]] = {
    "machine": MachineSection,
    "device": DeviceSection,
    "kernel": KernelSection,
}


# --- reading the definition ------------------------------------------------------------------


def _info(t: Any) -> tuple[mi.Type, str]:
    """(msgspec's view of the annotation, its description)."""
    info = mi.type_info(t)
    if isinstance(info, mi.Metadata):
        return info.type, str((info.extra_json_schema or {}).get("description", ""))
    return info, ""


def _bounds(t: mi.Type) -> str:
    lo = getattr(t, "ge", None), getattr(t, "gt", None)
    hi = getattr(t, "le", None), getattr(t, "lt", None)
    if lo[0] is not None and hi[0] is not None:
        return f"from {lo[0]} to {hi[0]}"
    parts = [f"{op} {v}" for op, v in ((">=", lo[0]), (">", lo[1]), ("<=", hi[0]), ("<", hi[1]))
             if v is not None]  # fmt: skip
    return " and ".join(parts)


def what(t: Any) -> str:
    """What a value of annotation ``t`` must be, in words: 'an integer >= 0', '"a" or "b"'."""
    info = t if isinstance(t, mi.Type) else _info(t)[0]
    if isinstance(info, mi.Metadata):
        info = info.type
    if isinstance(info, mi.UnionType):
        return " or ".join(what(x) for x in info.types if not isinstance(x, mi.NoneType))
    if isinstance(info, mi.LiteralType):
        return " or ".join(json.dumps(v) for v in info.values)
    names = {mi.IntType: "an integer", mi.FloatType: "a number", mi.BoolType: "true or false",
             mi.StrType: "a string"}  # fmt: skip
    if type(info) in names:
        bounds = _bounds(info)
        return names[type(info)] + (f" {bounds}" if bounds else "")
    if info == _SIZE:
        return "a size: KiB, MiB, GiB or pages"
    if isinstance(info, mi.CustomType):
        return f"a {info.cls.__name__}"
    return "any value"


def _type_ok(info: mi.Type, value: Any) -> bool:
    """Whether ``value`` has the right type for ``info`` (constraints aside)."""
    if isinstance(info, mi.Metadata):
        return _type_ok(info.type, value)
    if isinstance(info, mi.UnionType):
        return any(_type_ok(x, value) for x in info.types)
    if isinstance(info, mi.LiteralType):
        return value in info.values
    if isinstance(value, bool):
        return isinstance(info, mi.BoolType | mi.AnyType)
    kinds = {mi.IntType: int, mi.FloatType: int | float, mi.StrType: str, mi.BoolType: bool,
             mi.NoneType: type(None)}  # fmt: skip
    if type(info) in kinds:
        return isinstance(value, kinds[type(info)])
    return True


def _why(ftype: Any, value: Any, doc: str) -> tuple[str, bool]:
    """Why msgspec refused ``value`` for ``ftype``: what is expected and the key's doc; and
    whether it is the value's type (else its range) that is wrong."""
    info = _info(ftype)[0]
    if isinstance(info, mi.LiteralType):
        return f"use {what(info)}", not any(type(v) is type(value) for v in info.values)
    if not _type_ok(info, value):
        return f"expected {what(info)}" + (f" ({doc})" if doc else ""), True
    if isinstance(info, mi.StrType):
        return f"must be {doc or what(info)}", False
    return f"must be {_bounds(info) or what(info)}" + (f" ({doc})" if doc else ""), False


def check_table(cls: type[S], given: Mapping[str, Any], label: str, prefix: str, title: str,
                *, noun: str = "key", docs: Mapping[str, str] | None = None,
                extra: bool = False, python: bool = False) -> S:  # fmt: skip
    """Validate the table ``given`` against ``cls`` key by key and build it.

    => ``label`` names the input (a file, "<api>"), ``prefix`` goes before each key in
       messages ("machine."), ``title`` names the table in the list of known keys ("[machine]")
    => ``docs``: what each key is, where ``cls`` has no description (a workload's docstring)
    => ``extra``: keys ``cls`` does not declare are let through, not refused (a workload that
       takes ``**params``); the built Struct never holds them
    => ``python``: the values come from Python, not TOML text: an int size is bytes
    => raises ConfigTypeError for an unknown key or a value of the wrong type, ConfigError
       for a value out of range; the message names the key, the value and what is accepted
    """
    fields = {f.name: f for f in msgspec.structs.fields(cls)}
    docs = docs or {}
    out: dict[str, Any] = {}
    for key, value in given.items():
        f = fields.get(key)
        if f is None:
            if extra:
                continue
            known = ", ".join(sorted(fields)) or "none"
            raise ConfigTypeError(
                f"{label}: unknown {noun} {prefix}{key}; known {noun}s of {title}: {known}"
            )
        if _info(f.type)[0] == _SIZE:
            try:
                out[key] = Size.parse(value, python)
            except ValueError as e:
                raise ConfigError(f"{label}: {prefix}{key} = {value!r}: {e}") from None
            except TypeError as e:
                raise ConfigTypeError(f"{label}: {prefix}{key} = {value!r}: {e}") from None
            continue
        try:
            out[key] = msgspec.convert(value, f.type, strict=True)
        except msgspec.ValidationError as e:
            why, wrong_type = _why(f.type, value, docs.get(key) or _info(f.type)[1])
            err = ConfigTypeError if wrong_type else ConfigError
            raise err(f"{label}: {prefix}{key} = {value!r}: {why}") from e
    for f in fields.values():
        if f.required and f.name not in out:
            doc = docs.get(f.name) or _info(f.type)[1] or what(f.type)
            raise ConfigTypeError(f"{label}: {prefix}{f.name} is missing: {doc}")
    return msgspec.convert(out, cls)


@functools.cache
def signature_struct(fn: Callable[..., Any]) -> tuple[type[Struct], bool]:
    """The keyword params of ``fn`` after its first (a workload's ``p``) as a Struct: types
    from the annotations (``Annotated[int, Meta(ge=1)]`` carries a range), defaults from the
    signature; and whether ``fn`` also takes ``**params``. A param without an annotation, or
    with one msgspec cannot check, takes any value."""
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception:  # an annotation naming something out of reach: check no type
        hints = {}
    fields: list[tuple[str, Any, Any] | tuple[str, Any]] = []
    var_kw = False
    for prm in list(inspect.signature(fn).parameters.values())[1:]:
        if prm.kind is prm.VAR_KEYWORD:
            var_kw = True
            continue
        if prm.kind is prm.VAR_POSITIONAL:
            continue
        t = hints.get(prm.name, Any)
        try:
            mi.type_info(t)
        except (TypeError, ValueError):
            t = Any
        fields.append((prm.name, t) if prm.default is prm.empty else (prm.name, t, prm.default))
    name = getattr(fn, "__name__", "params")
    return msgspec.defstruct(name, fields, kw_only=True, frozen=True), var_kw


def coerce(cls: type[Struct], key: str, raw: str) -> Any:
    """The value of ``--set ...key=raw`` for a key of ``cls``: ``raw`` read as a TOML value when
    the key accepts that, else ``raw`` itself when the key takes a string (``1.105`` stays
    ``"1.105"`` for a string key), else the TOML value (refused later with the key's type)."""
    try:
        value: Any = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    ftype = next((f.type for f in msgspec.structs.fields(cls) if f.name == key), None)
    if ftype is None:
        return value
    info = _info(ftype)[0]
    if _type_ok(info, value) or not _type_ok(info, raw):
        return value
    return raw


def keys_help() -> str:
    """Every key of every section with its default, type and doc (``emu scenarios --help``)."""
    lines = []
    for section, cls in SECTIONS.items():
        lines.append(f"[{section}]  {(cls.__doc__ or '').split(':', 1)[-1].strip().rstrip('.')}")
        for f in msgspec.structs.fields(cls):
            info, doc = _info(f.type)
            default = "" if f.required else f" = {_toml(f.default)}"
            lines.append(f"  {f.name}{default}  ({what(info)}) {doc}")
    return "\n".join(lines)


def _toml(v: Any) -> str:
    if v is None:
        return "(model default)"
    if isinstance(v, Size):
        return json.dumps(str(v))
    if isinstance(v, bool):
        return "true" if v else "false"
    return json.dumps(v) if isinstance(v, str) else str(v)
