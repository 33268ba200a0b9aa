"""emu.eventlog: the structured event log of a run (``events.jsonl``).

structlog renders every event with orjson into one JSON object per line (schema in
docs/log-schema.md). Each event carries the virtual time ``t_ns`` of the running machine, the
emulated thread ``proc`` (bound with ``structlog.contextvars`` when the thread starts), the
``event`` name and the ``level``. Wall-clock fields are named ``wall_*``; everything else is a
function of the scenario and the seed.

Logging is configured when a run starts (never at import) and points at the run's log file;
:func:`close` flushes it. Events below the run's level cost a filtered call only. While the
run goes on, a helper thread flushes the file every ``FLUSH_S`` wall-clock seconds, so
``tail -f events.jsonl`` follows a running (or stuck) machine; a flush writes whole lines, so
a run killed at any moment leaves a log that is valid up to its last line.
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import structlog

from emu.eventfiles import Compactor, zstd_writer

SCHEMA = "uvm-emu/events/1"
FLUSH_S = 0.5  # wall-clock seconds between flushes of a running log

_clock: contextvars.ContextVar[Any] = contextvars.ContextVar("emu_log_clock", default=None)


# structlog.contextvars' own registry of the context-local keys (bind_contextvars), when
# this structlog has one: reading its few variables is what merge_contextvars does by
# walking every variable of the context (most of an event's cost)
_BOUND: dict[str, contextvars.ContextVar[Any]] | None = getattr(
    structlog.contextvars, "_CONTEXT_VARS", None
)
_PREFIX = len(structlog.contextvars.STRUCTLOG_KEY_PREFIX)  # its keys are "structlog_<key>"


def _render(_: Any, method: str, ev: MutableMapping[str, Any]) -> bytes:
    """The whole chain in one call: the context-local keys (merge_contextvars), the time
    and level, t_ns/event/proc first (easier to read with `head`, same bytes on every
    run), and the JSON line."""
    if _BOUND is None:
        structlog.contextvars.merge_contextvars(_, method, ev)
    else:
        for key, var in tuple(_BOUND.items()):
            v = var.get(Ellipsis)
            if v is not Ellipsis:
                ev.setdefault(key[_PREFIX:], v)
    clock = _clock.get()
    ev["t_ns"] = clock.now if clock is not None else 0
    ev["level"] = method
    head = {"t_ns": ev.pop("t_ns"), "event": ev.pop("event"), "proc": ev.pop("proc", "kernel")}
    head.update(ev)
    return orjson.dumps(head, option=orjson.OPT_SERIALIZE_NUMPY)


def _drop(_: Any, __: str, ev: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    raise structlog.DropEvent


def _fast(level: int) -> type[Any]:
    """structlog's filtering logger for ``level``, whose enabled methods skip the generic
    processor loop when the chain is exactly ``[_render]`` (a run's); anything else (a
    test capturing logs, a silent log) takes structlog's own path."""
    base = structlog.make_filtering_bound_logger(level)

    def make(alias: str) -> Any:
        slow = getattr(base, alias)
        name = _NAMES[alias]  # what structlog passes on: warn is "warning", msg "info"

        def meth(self: Any, event: str, *args: Any, **kw: Any) -> Any:
            procs = self._processors
            if args or len(procs) != 1 or procs[0] is not _render:
                return slow(self, event, *args, **kw)
            ev = self._context.copy()  # as BoundLoggerBase._process_event builds it
            ev.update(kw)
            ev["event"] = event
            return getattr(self._logger, name)(_render(self._logger, name, ev))

        return meth

    over = {a: make(a) for a, name in _NAMES.items() if level <= _LEVELS[name]}
    return type(base.__name__, (base,), over)


_NAMES = {"debug": "debug", "info": "info", "msg": "info", "warning": "warning",
          "warn": "warning", "error": "error", "critical": "critical", "fatal": "critical"}
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR, "critical": logging.CRITICAL}  # fmt: skip


class _Sink:
    """The events file as structlog's logger, one object for the whole run.

    structlog's ``BytesLoggerFactory`` builds a new ``BytesLogger`` for every event (the
    module loggers are lazy proxies, rebound on each call) and that logger flushes after
    every line: a system call per event. Here the 1 MiB buffer goes out when full, every
    ``FLUSH_S`` (:class:`_Flusher`) and at :meth:`EventLog.close`; a warning or worse is
    flushed at once, so what explains a crash is on disk. The bytes written are the same.
    Events come from the event loop's thread only; each line is one ``write`` on the
    buffered file, whose own lock keeps a flush from another thread out of the middle of it.
    """

    __slots__ = ("_flush", "_write")

    def __init__(self, fh: BinaryIO) -> None:
        self._write = fh.write
        self._flush = fh.flush

    def msg(self, message: bytes) -> None:
        self._write(message + b"\n")

    def msg_flush(self, message: bytes) -> None:
        self._write(message + b"\n")
        self._flush()

    debug = info = log = msg
    warn = warning = err = error = critical = exception = fatal = failure = msg_flush


class _Flusher(threading.Thread):
    """Flush the log file every ``FLUSH_S`` seconds until :meth:`stop`."""

    def __init__(self, fh: BinaryIO) -> None:
        super().__init__(name="uvm-emu log flush", daemon=True)
        self._fh = fh
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(FLUSH_S):
            try:
                self._fh.flush()
            except (OSError, ValueError):  # a full disk shows in the run's own writes
                return

    def stop(self) -> None:
        self._done.set()
        self.join()


def _factory(sink: _Sink) -> Any:
    def factory(*_: Any) -> _Sink:
        return sink

    return factory


class EventLog:
    """One run's log file; :meth:`configure` makes structlog write to it (no file: discard).

    ``compact``: fold per-fault and per-cluster events (:class:`emu.eventfiles.Compactor`);
    ``compress``: write a zstd stream. Both are off for ``emu run`` unless asked.
    """

    def __init__(self, path: Path | None, level: str = "info", *, compact: bool = False,
                 compress: bool = False) -> None:  # fmt: skip
        self.path = path
        self.level = level if path is not None else "silent"
        target = path if path is not None else Path(os.devnull)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._fh: BinaryIO | None = os.fdopen(fd, "wb", buffering=1 << 20)
        if compress and path is not None:
            self._fh = zstd_writer(self._fh)
        self._compactor = Compactor() if compact else None
        self._flusher = _Flusher(self._fh) if path is not None else None
        if self._flusher is not None:
            self._flusher.start()

    def configure(self, clock: Any) -> None:
        fh = self._fh
        assert fh is not None, "EventLog.configure: the log is closed"
        _clock.set(clock)
        silent = self.level == "silent"
        lvl = logging.CRITICAL if silent else getattr(logging, self.level.upper())
        structlog.configure(
            processors=[
                *([_drop] if silent else []),
                *([self._compactor] if self._compactor is not None else []),  # compact level
                _render,
            ],
            wrapper_class=_fast(lvl),
            logger_factory=_factory(_Sink(fh)),
            cache_logger_on_first_use=False,
        )

    def close(self) -> dict[str, Any] | None:
        """Flush and close the file; return what a compact log folded (None: a full log)."""
        if self._flusher is not None:
            self._flusher.stop()
            self._flusher = None
        if self._fh is not None:
            self._fh.flush()
            self._fh.close()
            self._fh = None
        structlog.reset_defaults()
        return self._compactor.folded() if self._compactor is not None else None
