"""Logs as JSON lines: one formatter for every line the service writes, in gunicorn's master
(its own lines and anything Python would print, on stderr: serving/stderr.py) and in the
workers (one line per request, plus whatever the code logs, on stdout), each line written during
a request carrying that request's id.

What is never logged: request or response bodies, passwords, hashes, the Authorization header.
The request line carries the route template as well as the path, so lines group by endpoint.

Nothing here imports Flask: gunicorn's master uses this module and must not load the app.
"""

import logging
import sys
import time
from collections.abc import Callable

import orjson

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "line_fields",
}

access_log = logging.getLogger("dataservice.access")


def _no_context() -> dict:
    return {}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, pid, the fields of `context()`
    (the request id of the request the line belongs to), the record's `extra` fields, and for
    an error its exception type and traceback. A request line has its own fields instead."""

    def __init__(self, context: Callable[[], dict] = _no_context):
        super().__init__()
        self.context = context

    @staticmethod
    def _time(created: float) -> str:
        """ISO 8601 in UTC with milliseconds."""
        second = int(created)
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{text}.{int((created - second) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": self._time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "line_fields", None)
        if fields is not None:  # a request line: its fields are known, no need to look
            line.update(fields)
        else:
            line["pid"] = record.process
            line.update(self.context())
            for key, value in record.__dict__.items():  # `extra` fields win over the context
                if key not in _STANDARD:
                    line[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            line["error"] = record.exc_info[0].__name__
            line["traceback"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class StdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is when the record is emitted (gunicorn and pytest both
    replace it after the handler is made)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass  # always sys.stdout


def configure(level: str, context: Callable[[], dict] = _no_context) -> None:
    """Idempotent: the first app in a process installs the JSON handler on the root logger,
    whose lines carry `context()` (the factory passes the request's id); every app sets the
    level. Other libraries log through the same handler, at WARNING and up."""
    root = logging.getLogger()
    if not any(isinstance(h, StdoutHandler) for h in root.handlers):
        handler = StdoutHandler()
        handler.setFormatter(JsonFormatter(context))
        root.addHandler(handler)
    root.setLevel(max(logging.WARNING, logging.getLevelName(level)))
    logging.getLogger("dataservice").setLevel(level)


def request_line(created: float, fields: dict) -> None:
    """The one line each request leaves, at INFO, with the time (time.time()) the request
    ended: request_id, method, route, operation (its operationId), path, status, duration_ms,
    client."""
    if access_log.isEnabledFor(logging.INFO):
        record = access_log.makeRecord(
            access_log.name, logging.INFO, __file__, 0, "request", None, None
        )
        # The fields as `extra=` would set them, without its check of each name against the
        # record's own: they are fixed names, none of them a LogRecord attribute. With the
        # histogram looked up once per batch (metrics.record_requests): -2.1% instructions per
        # GET by id (docs/benchmarks.md, seventeenth round).
        record.__dict__.update(fields, line_fields=fields)
        record.created = created
        record.msecs = (created - int(created)) * 1000
        access_log.handle(record)
