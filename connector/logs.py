"""Log lines a person or a log shipper can follow: which instance, which run, which job, on every line.

The context lives in `contextvars`, set by `log_context` around a sync, a write-back pass, a trigger POST or a
webhook delivery, so a line written deep in an adapter still names them. Threads we start for one piece of
work (read-ahead, two batches in flight) run in a copy of the starter's context (`in_context`); a plain
thread would start with an empty one.

Two formats: `text` (one line, the context as `key=value` before the message) and `json` (one object per
line, the keys of `FIELDS`, for Loki, Datadog, CloudWatch and the like). Both pass through the redacting
filter, so a secret is masked whichever format carries it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Literal, ParamSpec, TypeVar

from connector.redact import RedactingFilter, SecretRegistry

LogFormat = Literal["text", "json"]
FORMATS: tuple[LogFormat, ...] = ("text", "json")
CONTEXT_KEYS = ("instance", "run_id", "job_id")
FIELDS = ("time", "level", "logger", "message", *CONTEXT_KEYS)

_instance: contextvars.ContextVar[str | None] = contextvars.ContextVar("instance", default=None)
_run_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("run_id", default=None)
_job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)
_VARS: dict[str, contextvars.ContextVar[Any]] = {"instance": _instance, "run_id": _run_id, "job_id": _job_id}

# Libraries whose INFO lines say nothing an operator acts on (httpx announces every request, uvicorn every
# connection, Alembic each revision, which the store's own line sums up): kept to WARNING, even at
# --log-level debug, where our own lines are what a person is after.
_NOISY = ("urllib3", "httpx", "httpcore", "uvicorn.error", "alembic")
# APScheduler (one process) and procrastinate (a cluster: every tick, every job's start and end) announce
# each job at INFO: chatter at the default level, but what someone debugging the schedule wants to see, so
# they are heard at --log-level debug only.
_SCHEDULERS = ("apscheduler", "procrastinate")

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def log_context(
    *, instance: str | None = None, run_id: int | None = None, job_id: str | None = None
) -> Iterator[None]:
    """Name `instance`, `run_id` and/or `job_id` on every line logged inside the block (None leaves a key as
    the enclosing block set it)."""
    given = {"instance": instance, "run_id": run_id, "job_id": job_id}
    tokens = [(_VARS[key], _VARS[key].set(value)) for key, value in given.items() if value is not None]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def current_instance() -> str | None:
    """The instance the enclosing `log_context` names, if any: who a shared client (LoneScale's) works for."""
    return _instance.get()


def in_context(work: Callable[P, R]) -> Callable[P, R]:
    """`work`, to be run on another thread in a copy of this thread's log context (one copy per call: a
    context cannot be entered by two threads at once)."""
    context = contextvars.copy_context()

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return context.run(work, *args, **kwargs)

    return run


class _ContextFilter(logging.Filter):
    """Stamps each record with the current context, so both formatters (and any handler a user adds) see it."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, var in _VARS.items():
            setattr(record, key, var.get())
        return True


class _TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(context)s%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        named = [
            f"{key}={getattr(record, key)}" for key in CONTEXT_KEYS if getattr(record, key, None) is not None
        ]
        record.context = f"[{' '.join(named)}] " if named else ""
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `FIELDS` always present (null when unset), `error` with the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({key: getattr(record, key, None) for key in CONTEXT_KEYS})
        if record.exc_info:
            # The redacting filter sees the message, not a traceback formatted later: scrub it here.
            line["error"] = SecretRegistry.scrub(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False, default=str)


def setup_logging(level: str, log_format: LogFormat = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else _TextFormatter())
    handler.addFilter(RedactingFilter())  # secrets never reach a log line, whichever module wrote it
    handler.addFilter(_ContextFilter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.getLogger("connector").setLevel(logging.NOTSET)  # from scratch: a demo run earlier quiets it
    root = logging.getLogger().level
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root))
    for scheduler in _SCHEDULERS:
        logging.getLogger(scheduler).setLevel(
            logging.NOTSET if root <= logging.DEBUG else max(logging.WARNING, root)
        )
