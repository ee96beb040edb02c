"""gunicorn's own lines (boot, worker exit, timeouts) and whatever Python or a library would
print to stderr as text, as JSON lines on stderr, formatted by the app's own formatter
(logs.JsonFormatter): every line the master and the workers write is one JSON object.

Set up in the master as gunicorn starts (lifecycle.on_starting); the workers inherit it through
the fork. The gevent worker adds the hub's reports (gevent_worker.py).
"""

import io
import logging
import sys
import threading
import warnings

from gunicorn import glogging

from ..logs import JsonFormatter


class JsonLogger(glogging.Logger):
    """gunicorn's logger (gunicorn.conf.py's logger_class), writing its error log as JSON."""

    def setup(self, cfg):
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())


def everything_through_logging() -> None:
    """What Python or a library would print to stderr as text goes through logging as JSON
    lines on stderr, in the master and (inherited through the fork) the workers: warnings,
    exceptions no code caught (in any thread, or ignored in a finalizer), records of loggers
    with no handler (logging's last resort), and text written to sys.stderr. (Output written to
    file descriptor 2 by C code bypasses this: Python's fatal errors, a library's fprintf.)"""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("py.warnings", "uncaught", "gevent.hub", "stderr"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.propagate = False  # not also to the app's handler on stdout
    logging.lastResort = handler
    warnings.showwarning = _log_warning
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread
    sys.unraisablehook = _log_unraisable
    sys.stderr = _StrayText(sys.stderr)


def _log_warning(message, category, filename, lineno, file=None, line=None):
    logging.getLogger("py.warnings").warning(
        "%s: %s (%s:%s)", category.__name__, message, filename, lineno
    )


def _log_uncaught(kind, value, tb):
    logging.getLogger("uncaught").critical("uncaught %s", kind.__name__, exc_info=(kind, value, tb))


def _log_uncaught_in_thread(args):
    if args.exc_type is not SystemExit:  # as threading's own hook: a thread may exit so
        logging.getLogger("uncaught").critical(
            "uncaught %s in thread %s",
            args.exc_type.__name__,
            getattr(args.thread, "name", None),
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
        )


def _log_unraisable(unraisable):
    logging.getLogger("uncaught").error(
        "%s %s",
        unraisable.err_msg or "Exception ignored in",
        type(unraisable.object).__qualname__,  # the type only: its repr may hold data
        exc_info=(unraisable.exc_type, unraisable.exc_value, unraisable.exc_traceback),
    )


class _StrayText(io.TextIOBase):
    """sys.stderr for code that writes text there rather than log (gunicorn prints a failed
    worker's exception after logging it): each line becomes a record of the "stderr" logger.
    A line that is a JSON object already passes as it is."""

    def __init__(self, stream):
        self._stream = stream  # the real stderr
        self._partial = ""
        self._writing = False

    def writable(self):
        return True

    def write(self, text):
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._line(line)
        return len(text)

    def flush(self):
        if self._partial:
            self._line(self._partial)
            self._partial = ""
        self._stream.flush()

    def _line(self, line):
        if line.startswith("{") and line.endswith("}"):
            self._stream.write(line + "\n")
        elif line.strip() and not self._writing:  # a failing handler reports to stderr too
            self._writing = True
            try:
                logging.getLogger("stderr").error("%s", line)
            finally:
                self._writing = False

    def fileno(self):
        return self._stream.fileno()
