"""Where a request's time goes, told two ways from one set of measuring points: OpenTelemetry
spans exported over OTLP/HTTP (when a collector is configured) and the `Server-Timing` header
(on by default, SERVER_TIMING=false turns it off).

The measuring points are `with` blocks where the time is spent: `phase()` for admission,
authentication on a token-cache miss, waiting for a database connection, each named SQL
statement and the COMMIT (`statement()`, `commit()`), waiting for and running a password hash,
an idempotent replay and each operation of a batch. A request's state lives in a context
variable (per greenlet under gevent, per thread under gthread), set by `Timing.begin` in
observe.py's first hook and cleared by `Timing.finish` in its last. Outside a request, or with
both tracing and Server-Timing off, a measuring point is one context-variable read and a shared
no-op block: nothing measurable (docs/benchmarks.md).

Tracing is on when OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set
and OTEL_SDK_DISABLED is not true; the rest of the standard variables (OTEL_SERVICE_NAME,
OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER and _ARG, OTEL_EXPORTER_OTLP_*, OTEL_BSP_*) are
read by the SDK. Off, the SDK is never imported and no exporter thread starts. On, the provider
is made in each worker after the fork and after gevent's patches (gunicorn's post_worker_init,
or the first request), so its export thread is a greenlet under gevent (STACK-NOTES section
15), and shut down (its queue flushed) when the worker exits.

What is never exported: parameter values, paths (they hold ids, emails, usernames), query
strings, bodies, headers, exception messages (psycopg's name the conflicting value). Spans carry
route templates, named queries, operations, tables, statuses and exception class names.
"""

import atexit
import os
import re
import threading
from contextvars import ContextVar
from time import perf_counter, time_ns

# Server-Timing metric names. `auth` includes its own database lookup; `db` is statements and
# COMMIT, `db-wait` the wait for a pooled connection.
ADMISSION, AUTH, DB_WAIT, DB = "admission", "auth", "db-wait", "db"
HASH_WAIT, HASH = "hash-wait", "hash"

_current: ContextVar = ContextVar("dataservice_request_timing", default=None)
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")


class _Idle:
    """The measuring point outside a measured request: does nothing, shared."""

    __slots__ = ()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def describe(self, name: str | None = None, **attributes) -> None:
        pass


_IDLE = _Idle()


class _Request:
    """One request's totals per metric, and its open spans (None when it is not recorded)."""

    __slots__ = ("spans", "started", "timers", "totals", "trace_id", "tracer")

    def __init__(self, tracer, span, trace_id: str | None):
        self.totals: dict[str, float] = {}
        self.timers: dict[str, _Timer] = {}
        self.tracer = tracer
        self.spans = [span] if span is not None and span.is_recording() else None
        self.trace_id = trace_id
        self.started = perf_counter()

    def timer(self, metric: str) -> "_Timer":
        """The metric's timer, one per request: an unrecorded request's measuring points make
        no object each (phases of one metric never nest)."""
        timer = self.timers.get(metric)
        if timer is None:
            timer = self.timers[metric] = _Timer(self.totals, metric)
        return timer


class _Timer:
    """A measuring point of a request that is not recorded: its metric's time only."""

    __slots__ = ("metric", "started", "totals")

    def __init__(self, totals: dict, metric: str):
        self.totals, self.metric, self.started = totals, metric, 0.0

    def __enter__(self):
        self.started = perf_counter()
        return self

    def __exit__(self, *exc):
        totals, metric = self.totals, self.metric
        totals[metric] = totals.get(metric, 0.0) + perf_counter() - self.started
        return False

    def describe(self, name: str | None = None, **attributes) -> None:
        pass


class _Phase:
    __slots__ = ("attributes", "kind", "metric", "name", "request", "span", "started")

    def __init__(self, request: _Request, metric, name, attributes, kind):
        self.request, self.metric, self.name = request, metric, name
        self.attributes, self.kind, self.span = attributes, kind, None

    def __enter__(self):
        spans = self.request.spans
        if spans is not None:
            from opentelemetry.trace import SpanKind, set_span_in_context

            self.span = self.request.tracer.start_span(
                self.name,
                context=set_span_in_context(spans[-1]),
                kind=SpanKind.CLIENT if self.kind == "client" else SpanKind.INTERNAL,
                attributes=self.attributes,
            )
            spans.append(self.span)
        self.started = perf_counter()
        return self

    def __exit__(self, kind, error, traceback):
        if self.metric is not None:
            totals = self.request.totals
            totals[self.metric] = totals.get(self.metric, 0.0) + perf_counter() - self.started
        span = self.span
        if span is not None:
            if kind is not None:
                _failed(span, kind)
            spans = self.request.spans
            if spans and spans[-1] is span:
                spans.pop()
            span.end()
        return False

    def describe(self, name: str | None = None, **attributes) -> None:
        """Renames the span or adds attributes, once they are known (a batch operation's route)."""
        if self.span is not None:
            if name:
                self.span.update_name(name)
            self.span.set_attributes(attributes)


def _failed(span, kind: type) -> None:
    from opentelemetry.trace import Status, StatusCode

    # The class name only: an exception's message may hold a parameter value.
    span.set_status(Status(StatusCode.ERROR, kind.__name__))
    span.set_attribute("error.type", kind.__name__)


def phase(metric: str | None, name: str, attributes: dict | None = None):
    """A `with` block timed under `metric` (None: a span only) and, when the request is traced,
    a span `name` with `attributes` (never a parameter value)."""
    request = _current.get()
    if request is None:
        return _IDLE
    if request.spans is None:
        return _IDLE if metric is None else request.timer(metric)
    return _Phase(request, metric, name, attributes, "internal")


def interval(metric: str, name: str, began: float, ended: float, attributes=None) -> None:
    """A phase of the request that ran elsewhere (a hash in a hashing thread), timed there:
    `began` and `ended` from perf_counter. Counted under `metric`; a span when traced."""
    request = _current.get()
    if request is None:
        return
    totals = request.totals
    totals[metric] = totals.get(metric, 0.0) + ended - began
    spans = request.spans
    if spans is not None:
        from opentelemetry.trace import set_span_in_context

        wall = time_ns() - perf_counter() * 1e9  # a perf_counter reading, as wall-clock ns
        span = request.tracer.start_span(
            name,
            context=set_span_in_context(spans[-1]),
            attributes=attributes,
            start_time=int(wall + began * 1e9),
        )
        span.end(end_time=int(wall + ended * 1e9))


# SQL statements ---------------------------------------------------------------------------------

# Named query -> (span name, attributes), filled as sql/*.sql is loaded (queries.py).
_STATEMENTS: dict[str, tuple[str, dict]] = {}
_COMMENT = re.compile(r"--[^\n]*")
_WRITE = re.compile(r"\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+(\w+)", re.IGNORECASE)
_FROM = re.compile(r"\bFROM\s+(\w+)", re.IGNORECASE)


def describe_statement(namespace: str, name: str, sql: str) -> None:
    """Records a named query's span name and attributes: the operation and the table its
    text names first (a data-modifying statement wins over the SELECTs around it)."""
    text = _COMMENT.sub("", sql)
    written = _WRITE.search(text)
    if written:
        operation = written.group(0).split()[0].upper()
        table = written.group(1)
    else:
        first = text.split(None, 1)
        operation = first[0].upper() if first else ""
        read = _FROM.search(text)
        table = read.group(1) if read else None
    attributes = {"db.system.name": "postgresql", "db.operation.name": operation}
    if table:
        attributes["db.collection.name"] = table
    attributes["db.query.summary"] = f"{operation} {table}" if table else operation
    _STATEMENTS[name] = (f"{namespace}.{name}", attributes)


_COMMIT = ("COMMIT", {"db.system.name": "postgresql", "db.operation.name": "COMMIT"})


def statement(name: str):
    """A `with` block around one named query's execution (its rows fetched)."""
    request = _current.get()
    if request is None:
        return _IDLE
    if request.spans is None:
        return request.timer(DB)
    span_name, attributes = _STATEMENTS.get(name, (name, {"db.system.name": "postgresql"}))
    return _Phase(request, DB, span_name, attributes, "client")


def commit():
    """A `with` block around a transaction's COMMIT."""
    request = _current.get()
    if request is None:
        return _IDLE
    if request.spans is None:
        return request.timer(DB)
    return _Phase(request, DB, _COMMIT[0], _COMMIT[1], "client")


# Ids for logs, events and the database ----------------------------------------------------------


def trace_id() -> str | None:
    """The trace id (32 hex digits) of the request being served: its trace when tracing is on,
    else the one its `traceparent` header names; None outside a request or without one."""
    request = _current.get()
    return request.trace_id if request is not None else None


def recorded_trace_id() -> str | None:
    """The trace id of the request being served when it is traced and sampled, for the
    connection's application_name (db.py); else None: naming the session costs a round trip."""
    request = _current.get()
    return request.trace_id if request is not None and request.spans is not None else None


def log_fields() -> dict:
    """trace_id and span_id (of the innermost open span) for a log line written now."""
    request = _current.get()
    if request is None or request.trace_id is None:
        return {}
    spans = request.spans
    if spans:
        span_id = format(spans[-1].get_span_context().span_id, "016x")
        return {"trace_id": request.trace_id, "span_id": span_id}
    return {"trace_id": request.trace_id}


# The tracer: made once per worker process -------------------------------------------------------


def configured(environ=os.environ) -> bool:
    """Whether tracing is on: a collector's endpoint set, the SDK not disabled."""
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    disabled = environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    return bool(endpoint) and not disabled


class Tracer:
    """This process's tracer provider, made on first use (after the fork, after gevent's
    patches) and shut down, its queue exported, by `shutdown()` or at exit."""

    def __init__(self):
        self._lock = threading.Lock()
        self._provider = None
        self._tracer = None

    def get(self):
        if self._tracer is None:
            with self._lock:
                if self._tracer is None:
                    self._make()
        return self._tracer

    def _make(self) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        resource = Resource.create()
        if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
            resource = resource.merge(Resource({"service.name": "dataservice"}))
        # The sampler comes from OTEL_TRACES_SAMPLER (default: parent-based, always on).
        provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self._provider = provider
        self._tracer = provider.get_tracer("dataservice")
        atexit.register(self.shutdown)

    def shutdown(self) -> None:
        """Exports what is queued and stops the export thread; idempotent."""
        with self._lock:
            provider, self._provider, self._tracer = self._provider, None, None
        if provider is not None:
            provider.shutdown()


_TRACER = Tracer()


class _EnvironGetter:
    """Reads propagation headers from a WSGI environ (HTTP_TRACEPARENT ...)."""

    def get(self, carrier, key):
        value = carrier.get("HTTP_" + key.upper().replace("-", "_"))
        return [value] if value is not None else None

    def keys(self, carrier):
        return [k[5:].lower().replace("_", "-") for k in carrier if k.startswith("HTTP_")]


_GETTER = _EnvironGetter()


# A request --------------------------------------------------------------------------------------


class Timing:
    """What observe.py calls at a request's start and end, made by `init_app` only when
    tracing or Server-Timing is on."""

    def __init__(self, tracing: bool, server_timing: bool):
        self.tracing, self.server_timing = tracing, server_timing

    def begin(self, environ: dict, method: str, route: str, request_id: str) -> None:
        if not self.tracing:  # the caller's trace id, if it sent one, for logs and events
            header = environ.get("HTTP_TRACEPARENT")
            parent = _TRACEPARENT.fullmatch(header) if header else None
            trace = parent.group(1) if parent and parent.group(1) != "0" * 32 else None
            _current.set(_Request(None, None, trace))
            return
        from opentelemetry import propagate
        from opentelemetry.trace import SpanKind

        tracer = _TRACER.get()
        span = tracer.start_span(
            f"{method} {route}",
            context=propagate.extract(environ, getter=_GETTER),
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "http.route": route,
                "dataservice.request_id": request_id,
            },
            start_time=time_ns(),
        )
        trace = format(span.get_span_context().trace_id, "032x")
        _current.set(_Request(tracer, span, trace))

    def finish(self, response, client: str | None) -> None:
        """Ends the request's span, sets Server-Timing; the request's state is cleared."""
        request = _current.get()
        if request is None:
            return
        _current.set(None)
        if self.server_timing:
            totals = request.totals
            totals["total"] = perf_counter() - request.started
            # Milliseconds with three decimals, formatted as integers (float formatting costs
            # several times more).
            parts = []
            for name, seconds in totals.items():
                us = int(seconds * 1e6)
                parts.append(f"{name};dur={us // 1000}.{us % 1000:03d}")
            response.headers["Server-Timing"] = ", ".join(parts)
        spans = request.spans
        if spans:
            span = spans[0]
            status = response.status_code
            span.set_attribute("http.response.status_code", status)
            if client:
                span.set_attribute("dataservice.client", client)
            if status >= 500:
                from opentelemetry.trace import Status, StatusCode

                span.set_status(Status(StatusCode.ERROR))
                span.set_attribute("error.type", str(status))
            for open_span in reversed(spans):  # ended in order, innermost first
                open_span.end()


def init_app(app) -> Timing | None:
    """The request hooks' Timing, or None when tracing and Server-Timing are both off."""
    tracing, server_timing = configured(), app.config["SERVER_TIMING"]
    if not (tracing or server_timing):
        return None
    return Timing(tracing, server_timing)


def start() -> None:
    """Makes this worker's tracer now, not at its first request (gunicorn's post_worker_init)."""
    if configured():
        _TRACER.get()


def shutdown() -> None:
    """Exports what is queued and stops the export thread (gunicorn's worker_exit)."""
    _TRACER.shutdown()
