"""/metrics: the Prometheus scrape (the metrics are defined in dataservice/metrics.py)."""

from flask import Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST

from ..metrics import exposition, record_pool
from ..openapi import touches_no_database
from .parsing import Blueprint

blp = Blueprint("metrics", __name__, description="Prometheus metrics.")


@blp.route("/metrics", methods=["GET"])
@touches_no_database
@blp.doc(
    responses={
        "200": {
            "description": "Prometheus text exposition format, summed over the worker processes.",
            "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
        }
    }
)
def metrics():
    """Metrics for Prometheus to scrape."""
    # Other workers' samples arrive within LOG_FLUSH_SECONDS; this worker's pending ones now.
    current_app.extensions["journal"].flush()
    record_pool(current_app.extensions["db"])
    body, content_type = exposition()
    return Response(body, content_type=content_type)
