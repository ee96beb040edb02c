"""The default worker: gunicorn's gevent worker with gevent's HTTP server (pywsgi) in place of
gunicorn's request parser and response writer, which cost ~10% more CPU per request here
(docs/benchmarks.md).

Each worker serves many requests in one thread, switching whenever one waits on the database
(psycopg 3 cooperates with gevent by itself): ~25% more GETs/s than gthread with less than half
the p99 (docs/benchmarks.md). Password hashing, the one long CPU task, runs in gevent's native
thread pool, through a queue fair between clients (dataservice/hashing.py).

gunicorn's parser-based workers bound things pywsgi leaves open, and the handler restores them:
a keep-alive connection idle for `keepalive` seconds is closed; once the worker is stopping each
response says Connection: close; the request line and the headers are held to gunicorn's limits.
Without them one client's idle connections could hold every greenlet of a worker, a graceful
shutdown would wait out its whole timeout for connections that send nothing more, and the limits
would depend on the worker class. The errors pywsgi answers itself (bare status lines, logged as
text with the offending input, some with a traceback) are problems here (problems.py), logged as
JSON.
"""

import email.parser
import logging
import re

import gevent
import gevent.hub
from gevent import pywsgi
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler

from . import problems


class Handler(PyWSGIHandler):
    """pywsgi's handler for one connection, within gunicorn's limits."""

    worker = None  # this process's worker, set as it starts
    limits = problems.Limits()  # the worker's, set as it starts
    problem_id = None  # request id of the problem this connection is being answered with

    def read_requestline(self):
        # A byte past the limit and its CRLF at most: read_request tells it is too long.
        with gevent.Timeout(self.worker.cfg.keepalive, False):
            return self.rfile.readline(self.limits.line + 3).decode("latin-1")
        return None  # idle for `keepalive` seconds: pywsgi closes the connection

    def read_request(self, raw_requestline):
        if len(raw_requestline.rstrip("\r\n")) > self.limits.line:
            raise problems.Refused(414)
        return super().read_request(raw_requestline)

    def MessageClass(self, rfile, *args):  # pywsgi's name
        # pywsgi reads headers with http.client: 99 fields of 64 KiB at most, and a traceback
        # printed past them. Read here within the limits, parsed as http.client parses them.
        _, most_fields, longest = self.limits
        lines = []
        while True:
            line = rfile.readline(longest + 1)
            if len(line) > longest:
                raise problems.Refused(431)
            if line in (b"\r\n", b"\n", b""):
                return parse_header_lines(lines)
            lines.append(line)
            if len(lines) > most_fields:
                raise problems.Refused(431)

    def _handle_client_error(self, ex):
        # pywsgi's hook for a request it cannot take: 400, or Refused's status.
        status = getattr(ex, "status", 400)
        self.problem_id = problems.new_request_id()
        problems.log_answered(self.worker.log, status, self.problem_id, self.client_address, ex)
        return str(status), problems.response(status, self.problem_id, self.limits)

    def handle_error(self, t, v, tb):
        # An exception escaped the app: logged here rather than printed by the hub.
        if not issubclass(t, gevent.GreenletExit):
            self.problem_id = problems.new_request_id()
            problems.log_answered(self.worker.log, 500, self.problem_id, self.client_address, v)
        del tb
        self._send_error_response_if_possible(500)

    def _send_error_response_if_possible(self, error_code):
        if self.response_length:  # the response has begun: only closing can tell
            self.close_connection = True
            return
        request_id = self.problem_id or problems.new_request_id()
        status, headers, body = problems.answer(error_code, request_id, self.limits)
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

    # pywsgi sends the head and the body's first chunk in two writes: two system calls and two
    # TCP segments for every response. Held back here, they go out as one. Measured again for
    # issue 27 (docs/benchmarks.md, eighth round: 14 interleaved rounds, GET by id at c=64):
    # +4% req/s and 3.5% less service CPU per request (medians of the rounds' ratios); creates
    # about even. To turn it off, delete _write_with_headers and _sendall.
    _head = None  # the response head while it waits for the body's first chunk

    def _write_with_headers(self, data):
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


# A header line as plain as nearly every client sends: a name (the characters email.feedparser
# takes for one), a colon, the value, one line ending.
_PLAIN_FIELD = re.compile(rb"([\x21-\x39\x3b-\x7e]+):[ \t]*([^\r\n]*)\r?\n")


def parse_header_lines(lines: list[bytes]) -> pywsgi.OldMessage:
    """The request's header lines as http.client parses them (its email parser, compat32).
    When every line is plain, the fields are stored as that parser would store them, without
    running it. Any other line (a continuation, a bare CR, no name, a "From " line) goes to
    the parser itself, so what it makes of them stays its own. Measured (docs/benchmarks.md,
    eighteenth round): 6% fewer instructions per GET by id and per create; over 12 alternating
    rounds, GETs 1.00-1.02x and creates 1.02-1.06x the throughput (medians of the cells and of
    the rounds' ratios)."""
    message = pywsgi.OldMessage()
    for line in lines:
        field = _PLAIN_FIELD.fullmatch(line)
        if field is None:
            text = b"".join(lines).decode("latin-1")
            return email.parser.Parser(_class=pywsgi.OldMessage).parsestr(text)
        message.set_raw(field[1].decode("latin-1"), field[2].decode("latin-1"))
    return message


class DataserviceGeventWorker(GeventPyWSGIWorker):
    wsgi_handler = Handler

    def init_process(self):
        Handler.worker = self
        Handler.limits = problems.Limits.of(self.cfg)
        # Errors the hub reports (a greenlet that died, a failed callback) as JSON lines, from
        # every hub of the process, instead of tracebacks on stderr.
        gevent.hub.Hub.print_exception = _log_hub_error
        super().init_process()


def _log_hub_error(hub, context, kind, value, tb):
    """gevent's Hub.print_exception, as one line on the "gevent.hub" logger."""
    # Names only: a context's repr can hold request data (a greenlet's shows its arguments).
    parts = context if isinstance(context, tuple) else (context,)
    where = ", ".join(getattr(p, "__qualname__", type(p).__qualname__) for p in parts)
    name = getattr(kind, "__name__", str(kind))
    error = (kind, value, tb) if value is not None else None
    logging.getLogger("gevent.hub").error("%s failed with %s", where, name, exc_info=error)
