"""gunicorn settings for the data service, read from the environment (see docs/operations.md).

Each worker process builds the app and opens its own connection pool after the fork; the pool is
closed when the worker exits, after gunicorn has finished the requests in flight.

Logs: the app writes one JSON line per request to stdout, so gunicorn's access log is off (it
would repeat each line in another format). gunicorn's own lines (boot, worker exit, timeouts)
go to stderr, as JSON too.
"""

import json
import logging
import multiprocessing
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from gunicorn import glogging

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
# gevent: each worker serves many requests in one thread, switching whenever one waits on the
# database (psycopg 3 cooperates with gevent by itself). Here it served ~25% more GETs/s than
# gthread with less than half the p99 (docs/benchmarks.md). Password hashing, the one long CPU
# task, runs in gevent's native thread pool (dataservice/passwords.py). WEB_WORKER_CLASS=gthread
# switches back to threads (WEB_THREADS each); any other value is gunicorn's own worker class.


def _gevent_worker():
    """gunicorn's gevent worker with gevent's HTTP server (pywsgi) in place of gunicorn's
    request parser and response writer, which cost ~10% more CPU per request here
    (docs/benchmarks.md). gunicorn's parser-based worker bounds two things pywsgi leaves open,
    and the handler restores them: a keep-alive connection idle for `keepalive` seconds is
    closed, and once the worker is stopping each response says Connection: close. Without them
    one client's idle connections could hold every greenlet of a worker, and a graceful
    shutdown would wait out its whole timeout for connections that send nothing more.

    Defined here, not in the package: gunicorn loads the worker class in the master, and
    importing the app there, before gevent patches the worker, would leave the pool's locks
    unpatched (the workers then hang)."""
    import gevent
    from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler

    class Handler(PyWSGIHandler):
        worker = None  # this process's worker, set as it starts

        def read_requestline(self):
            with gevent.Timeout(self.worker.cfg.keepalive, False):
                return super().read_requestline()
            return None  # idle for `keepalive` seconds: pywsgi closes the connection

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
            super().init_process()

    return DataserviceGeventWorker


worker_class = os.environ.get("WEB_WORKER_CLASS", "gevent")
if worker_class == "gevent":
    worker_class = _gevent_worker()
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
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, separators=(",", ":"))


class JsonLogger(glogging.Logger):
    """gunicorn's logger, writing its error log as JSON lines."""

    def setup(self, cfg):
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(_JsonFormatter())


logger_class = JsonLogger


def on_starting(server):
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
    made = getattr(server, "made_metrics_dir", None)
    if made:
        shutil.rmtree(made, ignore_errors=True)
