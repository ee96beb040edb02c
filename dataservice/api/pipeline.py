"""What happens around every view, in this order, and nowhere else (a contract test holds every
request hook to this module):

    before the view                            (before())
      1. request id and clock, the trace       observe.request_id, tracing.Timing.begin
      2. authentication: token -> client       auth.authenticate (API paths, and /metrics if asked)
      3. admission: the client's limits        admission.Admission.admit (429 when over)
      4. where its reads go                    replica.min_data_version; g.replica
    around the view
      5. idempotency                           @idempotent on write views (api/idempotency.py):
                                               it runs the view inside the request's transaction
    after the view                             (after(), also for error answers)
      6. admission's release                   the in-flight place back, RateLimit headers
      7. the write's data version              X-Data-Version (with a replica configured)
      8. the change feed's notification        notifier.announce after a 2xx write
      9. the journal                           X-Request-ID, Server-Timing, metrics, the log line:
                                               last, so it sees the status every step above set

A batch's operations (api/batch.py) are dispatched inside the batch request with NESTED in
their WSGI environ and take one path here: step 2 only (each operation needs its endpoint's
scopes); the batch request itself is the one admitted, routed, announced and journaled.

Each step reads request attributes through the real objects rather than Flask's context
proxies (request._get_current_object(), g._get_current_object(); auth.authenticate and db.read
do the same): measured 2026-12-06, -11% instructions per GET by id (bench/instructions.py:
1,796,214 through the proxies, 1,604,741 without).
"""

from time import perf_counter, time

from flask import Flask, g, request

from .. import auth, metrics, observe, replica, tracing
from ..admission import UNLIMITED
from ..errors import Busy, RateLimited
from .problems import handle_service_error

# Set in the WSGI environ of a batch's operations, which run inside the batch request.
NESTED = "dataservice.batch_operation"
_READ_ONLY_METHODS = ("GET", "HEAD", "OPTIONS")


def reads_primary(view):
    """Marks a view whose reads must come from the primary even with a replica configured (the
    change feed; a catalog query that does not allow a replica)."""
    view.reads_primary = True
    return view


def init_app(app: Flask) -> None:
    """Registers the two request hooks (and admission's refusal answer). Call after every
    extension the steps use exists (db, notifier, admission, replica)."""
    extensions = app.extensions
    journal = extensions["journal"] = observe.Journal(
        extensions["db"], app.config["LOG_FLUSH_SECONDS"]
    )
    timing = tracing.init_app(app)  # None when tracing and Server-Timing are both off
    tokens = extensions["token_cache"] = auth.TokenCache(app.config["AUTH_CACHE_SECONDS"])
    admission = extensions["admission"]
    notifier = extensions["notifier"]
    reads_replica = extensions.get("replica")  # None without DATABASE_REPLICA_URL
    views = app.view_functions
    metrics_need_token = app.config["METRICS_REQUIRE_TOKEN"]

    def authenticate(req, environ) -> tuple | None:
        """Step 2: (the view the request reaches, its client's limits), once authorised; None
        when no route matched (a 404 or 405 needs no credentials)."""
        view = views.get(req.endpoint or "")
        if view is None:
            return None
        if req.path.startswith("/api/"):
            # An endpoint that forgot to declare its scopes is closed to everybody.
            scopes = getattr(view, "required_scopes", auth.UNDECLARED)
            return view, auth.authenticate(environ, tokens, scopes)
        if metrics_need_token and req.endpoint == "metrics.metrics":
            auth.authenticate(environ, tokens, ())
        return view, UNLIMITED

    @app.before_request
    def before():
        req = request._get_current_object()
        environ = req.environ
        if NESTED in environ:
            authenticate(req, environ)
            return
        context = g._get_current_object()
        # What the steps leave in g, set first: a test that holds an app context shares g
        # between its requests, and a step may be cut short by an error answer.
        context.admitted = context.replica = None
        # 1. request id and clock
        context.started = perf_counter()
        context.request_id = observe.request_id(environ)
        if timing is not None:
            rule = req.url_rule
            route = rule.rule if rule is not None else metrics.UNMATCHED
            timing.begin(environ, req.method, route, context.request_id)
        # 2. authentication
        found = authenticate(req, environ)
        view, limits = found if found is not None else (None, UNLIMITED)
        # 3. admission, for a client with limits (most have none: nothing to do)
        if limits is not UNLIMITED:
            with tracing.phase(tracing.ADMISSION, "admission"):
                status = admission.admit(context.client_name, limits)
            if status or limits.in_flight:
                context.admitted = (limits, status)  # for step 6
        # 4. where its reads go: a replica may answer a GET (read-your-writes by the token)
        context.min_data_version = replica.min_data_version(environ)
        if (
            reads_replica is not None
            and req.method in ("GET", "HEAD")
            and not getattr(view, "reads_primary", False)
        ):
            context.replica = reads_replica

    @app.after_request
    def after(response):
        req = request._get_current_object()
        environ = req.environ
        if NESTED in environ:
            return response
        context = g._get_current_object()
        status = response.status_code
        written = 200 <= status < 300 and req.method not in _READ_ONLY_METHODS
        # 6. admission's release (any answer, error answers included, once admitted)
        admitted = getattr(context, "admitted", None)
        if admitted is not None:
            limits, rate_status = admitted
            if limits.in_flight:
                admission.leave(context.client_name)
            if rate_status:
                response.headers["RateLimit-Policy"] = limits.policy
                response.headers["RateLimit"] = rate_status
        if written:
            # 7. the data version a client may send back to read its own write from a replica
            if reads_replica is not None:
                version = replica.data_version(extensions["db"])
                if version is not None:
                    response.headers[replica.DATA_VERSION] = version
            # 8. a 2xx write has committed, and with it its events: wake the feed's readers
            notifier.announce()
        # 9. the journal
        now = perf_counter()
        request_id = getattr(context, "request_id", "")
        response.headers["X-Request-ID"] = request_id
        client = getattr(context, "client_name", None)
        trace = None
        if timing is not None:
            trace = tracing.log_fields()
            timing.finish(response, client)
        rule = req.url_rule
        sample = (
            time(),
            request_id,
            req.method,
            rule.rule if rule is not None else metrics.UNMATCHED,
            req.path,
            status,
            now - getattr(context, "started", now),
            client,
            req.endpoint,
            trace,
        )
        journal.add(sample, now)
        return response

    def refused(error):
        """A 429 or 503 busy, counted per route and client."""
        rule = request.url_rule
        metrics.record_refused(
            rule.rule if rule is not None else None, g.get("client_name"), error.reason
        )
        return handle_service_error(error)

    app.register_error_handler(RateLimited, refused)
    app.register_error_handler(Busy, refused)
