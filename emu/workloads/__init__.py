"""emu.workloads: the stock workloads, by kind name, and the trace readers.

``WORKLOADS[kind]`` is ``async def fn(p: ProcessHandle, **params) -> None``; a scenario's
``[[workload]]`` table names it with ``kind = "..."`` and passes the other keys as params.
:func:`describe` lists every kind with its params and defaults (``emu scenarios --workloads``):
the params' types and defaults come from each function's signature and annotations
(:func:`emu.config.signature_struct`), their docs from its ``Params:`` docstring section.
docs/workloads.md is the guide.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from emu.config import check_table, signature_struct, what
from emu.workloads.stock import file_rmw, hog, phase_shift, seq_scan, shared_pair, uniform, zipf
from emu.workloads.trace import trace_replay

__all__ = ["WORKLOADS", "Param", "WorkloadInfo", "check_params", "describe", "info"]

Workload = Callable[..., Awaitable[None]]

WORKLOADS: dict[str, Workload] = {
    "seq_scan": seq_scan,
    "uniform": uniform,
    "zipf": zipf,
    "phase_shift": phase_shift,
    "hog": hog,
    "shared_pair": shared_pair,
    "file_rmw": file_rmw,
    "trace_replay": trace_replay,
}


@dataclass(frozen=True)
class Param:
    name: str
    default: Any  # inspect.Parameter.empty when the param is required
    doc: str
    what: str = "any value"  # the declared type in words (emu.config.what)

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


@dataclass(frozen=True)
class WorkloadInfo:
    kind: str
    summary: str
    params: tuple[Param, ...]


def _param_docs(doc: str) -> dict[str, str]:
    """The ``name: text`` lines of a docstring's ``Params:`` section."""
    out: dict[str, str] = {}
    lines = doc.splitlines()
    try:
        start = next(i for i, ln in enumerate(lines) if ln.strip() == "Params:")
    except StopIteration:
        return out
    last = ""
    for ln in lines[start + 1:]:
        s = ln.strip()
        if not s:
            break
        name, sep, text = s.partition(": ")
        if sep and name.isidentifier():
            out[name] = text
            last = name
        elif last:
            out[last] += " " + s
    return out


def info(kind: str) -> WorkloadInfo:
    """Summary and params (name, default, doc, type) of the stock workload ``kind``; the
    types and defaults are those every run checks (:func:`emu.config.signature_struct`)."""
    fn = WORKLOADS[kind]
    doc = inspect.getdoc(fn) or ""
    docs = _param_docs(doc)
    st, _ = signature_struct(fn)
    params = tuple(
        Param(f.name, inspect.Parameter.empty if f.required else f.default, docs.get(f.name, ""),
              what(f.type))
        for f in msgspec.structs.fields(st)
    )  # fmt: skip
    return WorkloadInfo(kind, doc.split("\n", 1)[0], params)


def check_params(fn: Workload, params: dict[str, Any], where: str) -> dict[str, Any]:
    """The params of one process of workload ``fn``, checked against its signature before
    the run: names, types and ranges from the annotations (``emu.api.Pages`` ...).

    => ``where`` starts each message: the input and the workload ("small.toml: workload
       'hog' (hog)")
    => returns the params converted to their declared types (an int given for a float is a
       float); a workload that takes ``**params`` gets its other params as given
    => raises ConfigTypeError (a TypeError) for an unknown name, a missing or mistyped
       value; ConfigError (a ValueError) for a value out of range
    """
    st, var_kw = signature_struct(fn)
    title = getattr(fn, "__name__", "the workload")
    docs = {k: v.rstrip(".") for k, v in _param_docs(inspect.getdoc(fn) or "").items()}
    checked = check_table(st, params, where, "", title, noun="param", docs=docs, extra=var_kw)
    fields = st.__struct_fields__
    return {k: getattr(checked, k) if k in fields else v for k, v in params.items()}


def describe() -> str:
    """A plain-text listing of every stock workload kind, its params and their defaults."""
    out = []
    for kind in WORKLOADS:
        wi = info(kind)
        out.append(f"{kind}: {wi.summary}")
        for prm in wi.params:
            default = "(required)" if prm.required else f"= {prm.default!r}"
            out.append(f"    {prm.name} {default}  {prm.doc}")
    return "\n".join(out)
