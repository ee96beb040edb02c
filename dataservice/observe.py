"""What every request leaves behind: a request id (the client's X-Request-ID when it is sane, else
a new one), echoed in the response; a sample in the metrics; one JSON log line (the request
pipeline, api/pipeline.py, calls this at steps 1 and 9).

The metric update and the log line are not made by the request itself: it leaves a tuple in the
worker's Journal, which turns many of them into metrics and lines in one pass (see Journal).
"""

import os
import re
import threading
from collections import deque
from time import perf_counter, sleep

from flask import g, has_request_context

from . import logs, metrics, tracing

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class Journal:
    """This worker's finished requests, written out as metric samples and log lines in batches.

    One request at a time, the metric update and the JSON line cost about 90 us of a GET's
    1,000 (cold caches: every request runs the logging and prometheus_client code afresh); in
    a loop over many requests they cost a fraction of that (docs/benchmarks.md). So a request
    only appends a tuple, and whichever request finds the oldest one `interval` seconds old
    writes them all; a background thread does the same for a worker gone quiet. Lines keep the
    time their request ended. `close()` writes what is left (gunicorn's worker_exit calls it on
    a clean stop); a worker killed outright loses at most `interval` seconds of lines and samples.
    With interval 0 every request writes its own at once (tests, the development server).
    Measured 2026-12-06 against interval 0: 1.13x GET by id and 1.14x creates per second (wrk,
    6 alternating rounds, docs/benchmarks.md, seventeenth round), though only 1.2% fewer
    user-mode instructions: what it saves is mostly system calls and lock hand-offs.
    """

    MAX_PENDING = 512  # written out sooner under a burst, so memory stays small

    def __init__(self, database, interval: float):
        self.database = database
        self.interval = interval
        # deque: append and popleft are atomic, so gthread workers' threads need no lock
        self._pending: deque[tuple] = deque()
        self._due = float("inf")
        self._flusher: threading.Thread | None = None
        self._closed = threading.Event()

    def add(self, sample: tuple, now: float) -> None:
        """`sample`: (created, request_id, method, route, path, status, seconds, client,
        endpoint, trace), `trace` the trace_id and span_id fields of the line (or None)."""
        self._pending.append(sample)
        if self.interval <= 0:
            self.flush(now)
            return
        if self._due == float("inf"):
            self._due = now + self.interval
            if self._flusher is None:
                self._start_flusher()
        if now >= self._due or len(self._pending) >= self.MAX_PENDING:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        self._due = float("inf")
        pending, written, catalog = self._pending, [], []
        while pending:
            try:
                sample = pending.popleft()
            except IndexError:  # another thread wrote the last one
                break
            created, request_id, method, route, path, status, seconds, client, endpoint, trace = (
                sample
            )
            written.append((method, route, status, seconds))
            # The operationId: a catalog endpoint's is its query's name (counted on its own too).
            operation = endpoint.rpartition(".")[2] if endpoint else None
            if endpoint is not None and endpoint.startswith("catalog."):
                catalog.append((operation, status))
            fields = {
                "request_id": request_id,
                "method": method,
                "route": route,
                "operation": operation,
                "path": path,
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
                "client": client,
            }
            if trace:
                fields.update(trace)
            logs.request_line(created, fields)
        metrics.record_requests(written)
        if catalog:
            metrics.record_catalog_queries(catalog)
        metrics.sample_pool(self.database, perf_counter() if now is None else now)

    def close(self) -> None:
        self._closed.set()
        self.flush()

    def _start_flusher(self) -> None:
        # Under gevent's monkey patching this is a greenlet and the wait is cooperative.
        self._flusher = threading.Thread(target=self._flush_when_quiet, daemon=True)
        self._flusher.start()

    def _flush_when_quiet(self) -> None:
        while not self._closed.is_set():
            sleep(self.interval)
            if perf_counter() >= self._due:
                self.flush()


def log_context() -> dict:
    """What a line logged during a request carries besides its own fields (logs.JsonFormatter):
    the request's id, as the client got it, and its trace_id and span_id (tracing.py)."""
    if not has_request_context():
        return {}
    return {"request_id": g.get("request_id"), **tracing.log_fields()}


def request_id(environ: dict) -> str:
    """The client's X-Request-ID when it is sane, else a new one."""
    given = environ.get("HTTP_X_REQUEST_ID", "")
    return given if _REQUEST_ID.fullmatch(given) else os.urandom(16).hex()
