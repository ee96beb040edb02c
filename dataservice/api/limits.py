"""Per-client limits at the HTTP boundary (the decisions are admission.py's): a request of a
limited client is admitted right after it is authenticated, refused with a 429 over its rate or
its requests in flight, and, once it has used half of its burst, answered with the
RateLimit-Policy and RateLimit headers (draft-ietf-httpapi-ratelimit-headers) so it can slow
down before it is refused. Every refusal, 429 or 503 busy, is counted per route and client in
dataservice_refused_requests_total.
"""

from collections.abc import Callable

from flask import Flask, Request, after_this_request, g, request

from .. import metrics, tracing
from ..admission import Limits
from ..errors import Busy, RateLimited
from ..observe import NESTED
from .problems import handle_service_error


def init_app(app: Flask) -> Callable[[Request, Limits], None]:
    """Registers the refusal handler; returns the admission check auth.init_app calls."""
    admission = app.extensions["admission"]

    def admit(req: Request, limits: Limits) -> None:
        if NESTED in req.environ:
            return  # an operation of a batch: the batch request was admitted
        client = g.client_name
        with tracing.phase(tracing.ADMISSION, "admission"):
            status = admission.admit(client, limits)
        if not (status or limits.in_flight):
            return

        # Runs for every response once admitted, error answers included (Flask calls it from
        # the error handlers' responses too); a worker that dies has its count taken off by
        # the next process that takes its column (admission.LocalClients).
        @after_this_request
        def answered(response):
            if limits.in_flight:
                admission.leave(client)
            if status:
                response.headers["RateLimit-Policy"] = limits.policy
                response.headers["RateLimit"] = status
            return response

    @app.errorhandler(RateLimited)
    @app.errorhandler(Busy)
    def _refused(error):
        rule = request.url_rule
        client = g.get("client_name")
        metrics.record_refused(rule.rule if rule is not None else None, client, error.reason)
        return handle_service_error(error)

    return admit
