"""gunicorn settings for the data service, read from the environment (see docs/operations.md).

Each worker process builds the app and opens its own connection pool after the fork; the pool is
closed when the worker exits, after gunicorn has finished the requests in flight.

Logs: the app writes one JSON line per request to stdout, so gunicorn's access log is off (it
would repeat each line in another format). gunicorn's own lines (boot, worker exit, timeouts),
Python warnings, errors the gevent hub reports and exceptions no code caught go to stderr, as
JSON too: every line either stream carries is one JSON object.

Errors the worker answers itself, before or around the app (a request line or header over the
limits below, a malformed request, an exception escaping the app), are RFC 9457 problems like
the app's, with a request id generated for them and logged with it.
"""

import email.parser
import io
import json
import logging
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import warnings
from datetime import UTC, datetime
from pathlib import Path

from gunicorn import glogging

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
# What both worker classes accept (gunicorn's defaults, stated here because the OpenAPI document's
# maxLength values follow from them): a request line of at most 4094 bytes less its CRLF; at most
# 100 header fields, each line at most 8190 bytes with its CRLF. Past them: 414 and 431.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190

# The errors a worker answers itself, before the app or when an exception escapes it:
# status -> (problem slug, title, detail). The detail never repeats the offending input.
_PROBLEMS = {
    400: ("bad-request", "Bad Request", "the request line or a header is not valid HTTP/1.1"),
    414: (
        "uri-too-long",
        "URI Too Long",
        f"the request line is longer than {limit_request_line} bytes",
    ),
    417: ("expectation-failed", "Expectation Failed", "the only Expect supported is 100-continue"),
    431: (
        "header-too-large",
        "Request Header Fields Too Large",
        f"a header line is longer than {limit_request_field_size} bytes, or there are more "
        f"than {limit_request_fields} headers",
    ),
    500: ("internal-error", "Internal Server Error", "the service failed; quote the request_id"),
    501: (
        "not-implemented",
        "Not Implemented",
        "the request's Transfer-Encoding is not supported (send chunked or Content-Length)",
    ),
}


class _Refused(ValueError):
    """A request over a limit, refused with `status` (the gevent handler raises it)."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


def _new_request_id() -> str:
    return os.urandom(16).hex()  # the shape of the app's own (dataservice/observe.py)


def _problem(status: int, request_id: str) -> tuple[str, list[tuple[str, str]], bytes]:
    """The status line's text, the headers and the body of a worker's own problem answer."""
    slug, title, detail = _PROBLEMS[status]
    body = json.dumps(
        {
            "type": "urn:dataservice:problem:" + slug,
            "title": title,
            "status": status,
            "detail": detail,
            "request_id": request_id,
        },
        separators=(",", ":"),
    ).encode()
    headers = [
        ("Content-Type", "application/problem+json"),
        ("Content-Length", str(len(body))),
        ("X-Request-ID", request_id),
        ("Connection", "close"),
    ]
    return f"{status} {title}", headers, body


def _problem_response(status: int, request_id: str) -> bytes:
    """The whole HTTP response, for a worker that writes to the socket itself."""
    status_text, headers, body = _problem(status, request_id)
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return f"HTTP/1.1 {status_text}\r\n{head}\r\n".encode("latin-1") + body


def _log_answered(log, status: int, request_id: str, address, error=None) -> None:
    """One line for an error a worker answered itself, with the request id it gave the client;
    a 500 with its traceback. Not the request line or a header: they may hold anything."""
    fields = {
        "status": status,
        "request_id": request_id,
        "remote_addr": address[0] if isinstance(address, tuple) else None,
        "error": type(error).__name__ if error is not None else None,
    }
    if status >= 500:
        log.error("error handling request", exc_info=error, extra=fields)
    else:
        log.warning("request refused: %s", _PROBLEMS[status][0], extra=fields)


# gevent: each worker serves many requests in one thread, switching whenever one waits on the
# database (psycopg 3 cooperates with gevent by itself). Here it served ~25% more GETs/s than
# gthread with less than half the p99 (docs/benchmarks.md). Password hashing, the one long CPU
# task, runs in gevent's native thread pool (dataservice/passwords.py). WEB_WORKER_CLASS=gthread
# switches back to threads (WEB_THREADS each); any other value is gunicorn's own worker class.


def _gevent_worker():
    """gunicorn's gevent worker with gevent's HTTP server (pywsgi) in place of gunicorn's
    request parser and response writer, which cost ~10% more CPU per request here
    (docs/benchmarks.md). gunicorn's parser-based worker bounds things pywsgi leaves open, and
    the handler restores them: a keep-alive connection idle for `keepalive` seconds is closed;
    once the worker is stopping each response says Connection: close; the request line and
    the headers are held to gunicorn's limits (above). Without them one client's idle
    connections could hold every greenlet of a worker, a graceful shutdown would wait out its
    whole timeout for connections that send nothing more, and the limits would depend on the
    worker class. The errors pywsgi answers itself (bare status lines, logged as text with the
    offending input, some with a traceback) are problems here, logged as JSON.

    Defined here, not in the package: gunicorn loads the worker class in the master, and
    importing the app there, before gevent patches the worker, would leave the pool's locks
    unpatched (the workers then hang)."""
    import gevent
    import gevent.hub
    from gevent import pywsgi
    from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler

    class Handler(PyWSGIHandler):
        worker = None  # this process's worker, set as it starts
        # (request line, header fields, header line), from the worker's config as it starts
        limits = (limit_request_line, limit_request_fields, limit_request_field_size)
        problem_id = None  # request id of the problem this connection is being answered with

        def read_requestline(self):
            # A byte past the limit and its CRLF at most: read_request tells it is too long.
            with gevent.Timeout(self.worker.cfg.keepalive, False):
                return self.rfile.readline(self.limits[0] + 3).decode("latin-1")
            return None  # idle for `keepalive` seconds: pywsgi closes the connection

        def read_request(self, raw_requestline):
            if len(raw_requestline.rstrip("\r\n")) > self.limits[0]:
                raise _Refused(414)
            return super().read_request(raw_requestline)

        def MessageClass(self, rfile, *args):  # pywsgi's name
            # pywsgi reads headers with http.client: 99 fields of 64 KiB at most, and a
            # traceback printed past them. Read here within the limits, parsed as http.client
            # parses them.
            _, most_fields, longest = self.limits
            lines = []
            while True:
                line = rfile.readline(longest + 1)
                if len(line) > longest:
                    raise _Refused(431)
                if line in (b"\r\n", b"\n", b""):
                    text = b"".join(lines).decode("latin-1")
                    return email.parser.Parser(_class=pywsgi.OldMessage).parsestr(text)
                lines.append(line)
                if len(lines) > most_fields:
                    raise _Refused(431)

        def _handle_client_error(self, ex):
            # pywsgi's hook for a request it cannot take: 400, or _Refused's status.
            status = getattr(ex, "status", 400)
            self.problem_id = _new_request_id()
            _log_answered(self.worker.log, status, self.problem_id, self.client_address, ex)
            return str(status), _problem_response(status, self.problem_id)

        def handle_error(self, t, v, tb):
            # An exception escaped the app: logged here rather than printed by the hub.
            if not issubclass(t, gevent.GreenletExit):
                self.problem_id = _new_request_id()
                _log_answered(self.worker.log, 500, self.problem_id, self.client_address, v)
            del tb
            self._send_error_response_if_possible(500)

        def _send_error_response_if_possible(self, error_code):
            if self.response_length:  # the response has begun: only closing can tell
                self.close_connection = True
                return
            status, headers, body = _problem(error_code, self.problem_id or _new_request_id())
            self.close_connection = True
            try:
                self.start_response(status, headers)
                self.write(body)
            except OSError:
                pass

        def start_response(self, status, headers, exc_info=None):
            if not self.worker.alive:  # stopping: this is the connection's last response
                headers = [*headers, ("Connection", "close")]
            return super().start_response(status, headers, exc_info)

        _head = None  # the response head while it waits for the body's first chunk

        def _write_with_headers(self, data):
            # pywsgi sends the head and the body's first chunk in two writes: two system calls
            # and two TCP segments for every response. Held back here, they go out as one.
            self._head = bytearray()
            try:
                super()._write_with_headers(data)
            finally:
                held, self._head = self._head, None
            super()._sendall(held)

        def _sendall(self, data):
            if self._head is not None:
                self._head += data
            else:
                super()._sendall(data)

        def log_request(self):
            if self.server.log.access_log_enabled:  # off: the app writes the request lines
                super().log_request()

    class DataserviceGeventWorker(GeventPyWSGIWorker):
        wsgi_handler = Handler

        def init_process(self):
            Handler.worker = self
            Handler.limits = _request_limits(self.cfg)
            # Errors the hub reports (a greenlet that died, a failed callback) as JSON lines,
            # from every hub of the process, instead of tracebacks on stderr.
            gevent.hub.Hub.print_exception = _log_hub_error
            super().init_process()

    return DataserviceGeventWorker


def _request_limits(cfg) -> tuple[int, int, int]:
    """gunicorn's limits as its own parser applies them: (request line, header fields, header
    line); a value it reads as "no limit" is its largest here."""
    line = cfg.limit_request_line if 0 < cfg.limit_request_line <= 8190 else 8190
    fields = cfg.limit_request_fields if 0 < cfg.limit_request_fields <= 32768 else 32768
    field_size = cfg.limit_request_field_size if cfg.limit_request_field_size > 0 else 8190
    return line, fields, field_size


def _log_hub_error(hub, context, kind, value, tb):
    """gevent's Hub.print_exception, as one line on the "gevent.hub" logger."""
    # Names only: a context's repr can hold request data (a greenlet's shows its arguments).
    parts = context if isinstance(context, tuple) else (context,)
    where = ", ".join(getattr(p, "__qualname__", type(p).__qualname__) for p in parts)
    name = getattr(kind, "__name__", str(kind))
    error = (kind, value, tb) if value is not None else None
    logging.getLogger("gevent.hub").error("%s failed with %s", where, name, exc_info=error)


def _gthread_worker():
    """gunicorn's gthread worker, answering what it cannot parse, and an exception escaping the
    app, as problems (gunicorn's own answer is an HTML page naming the offending input, which
    its log line repeats). Statuses as gunicorn chooses them."""
    from gunicorn.http import errors
    from gunicorn.util import write_nonblock
    from gunicorn.workers.gthread import ThreadWorker

    statuses = (
        # headers the app sent are its fault (they subclass two client errors: listed first)
        ((errors.InvalidResponseHeader, errors.InvalidResponseHeaderName), 500),
        (errors.LimitRequestLine, 414),
        (errors.LimitRequestHeaders, 431),
        (errors.ExpectationFailed, 417),
        (errors.UnsupportedTransferCoding, 501),
        (errors.ConfigurationProblem, 500),
        (errors.ParseException, 400),
    )

    class DataserviceThreadWorker(ThreadWorker):
        def handle_error(self, req, client, addr, exc):
            status = next((s for kind, s in statuses if isinstance(exc, kind)), 500)
            request_id = _new_request_id()
            _log_answered(self.log, status, request_id, addr, exc)
            try:
                write_nonblock(client, _problem_response(status, request_id))
            except Exception:
                self.log.debug("Failed to send error message.")

    return DataserviceThreadWorker


worker_class = os.environ.get("WEB_WORKER_CLASS", "gevent")
if worker_class == "gevent":
    worker_class = _gevent_worker()
elif worker_class == "gthread":
    worker_class = _gthread_worker()
workers = int(os.environ.get("WEB_WORKERS", multiprocessing.cpu_count()))
threads = int(os.environ.get("WEB_THREADS", "4"))
# gevent: requests one worker takes at once; beyond its pool they wait for a connection (at most
# DATABASE_POOL_TIMEOUT, then 503), so this bounds the queue, not the database's load.
worker_connections = int(os.environ.get("WEB_WORKER_CONNECTIONS", "256"))
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
# SIGTERM: stop accepting, let requests in flight finish for up to this long, then exit.
graceful_timeout = int(os.environ.get("WEB_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Not before the fork: the pool's threads would not survive it. Each worker imports the app.
preload_app = False
# The control socket's default path is shared by every gunicorn on the host; we need none.
control_socket_disable = True


# Attributes every LogRecord has; any other came from `extra=` and is written out.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}


class _JsonFormatter(logging.Formatter):
    """The shape of the app's lines (dataservice/logs.py), without importing the app here."""

    def format(self, record):
        when = datetime.fromtimestamp(record.created, UTC)
        line = {
            "time": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                line[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            line["error"] = record.exc_info[0].__name__
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, separators=(",", ":"), default=str)


class JsonLogger(glogging.Logger):
    """gunicorn's logger, writing its error log as JSON lines."""

    def setup(self, cfg):
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(_JsonFormatter())


logger_class = JsonLogger


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


def _everything_through_logging() -> None:
    """What Python or a library would print to stderr as text goes through logging as JSON
    lines on stderr, in the master and (inherited through the fork) the workers: warnings,
    exceptions no code caught (in any thread, or ignored in a finalizer), the gevent hub's
    reports (see _gevent_worker), records of loggers with no handler (logging's last resort),
    and text written to sys.stderr. (Output written to file descriptor 2 by C code bypasses
    this: Python's fatal errors, a library's fprintf.)"""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter())
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


def on_starting(server):
    _everything_through_logging()
    # Metrics (prometheus_client multiprocess mode): every worker writes its samples to files in
    # this directory and a scrape adds them up. Workers inherit it; it must start empty.
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        for stale in Path(directory).glob("*.db"):
            stale.unlink()
    else:
        server.made_metrics_dir = tempfile.mkdtemp(prefix="dataservice-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = server.made_metrics_dir
    # Rates and permits every worker of this instance shares (dataservice/admission.py), in
    # memory when /dev/shm is there (mkdtemp's directory is private: 0700, a random name).
    if not os.environ.get("INSTANCE_STATE_DIR"):
        shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None  # noqa: S108
        server.made_state_dir = tempfile.mkdtemp(prefix="dataservice-state-", dir=shm)
        os.environ["INSTANCE_STATE_DIR"] = server.made_state_dir


def post_worker_init(worker):
    # Open the pool now rather than on the first request, so the first request is not slower.
    worker.wsgi.extensions["db"].open()


def worker_exit(server, worker):
    app = getattr(worker, "wsgi", None)
    if app is not None and "db" in getattr(app, "extensions", {}):
        from dataservice import close

        close(app)
        server.log.info("database pool closed (pid: %s)", worker.pid)


def child_exit(server, worker):
    # A dead worker's pool gauges must stop counting; its counters stay (they only go up).
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    for name in ("made_metrics_dir", "made_state_dir"):
        made = getattr(server, name, None)
        if made:
            shutil.rmtree(made, ignore_errors=True)
