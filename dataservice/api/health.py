"""Probes for load balancers and orchestrators."""

from flask import current_app

from .. import db
from ..errors import Unavailable
from ..openapi import touches_no_database
from ..store import health as store
from .parsing import Blueprint

blp = Blueprint("health", __name__, description="Liveness and readiness probes.")


@blp.route("/health", methods=["GET"])
@touches_no_database
@blp.response(200, description="The process is alive; touches no database.")
def health():
    """Liveness."""
    return {"status": "ok"}


@blp.route("/ready", methods=["GET"])
@blp.response(200, description="The database answers and every migration is applied.")
@blp.alt_response(
    503,
    description="The database is unreachable, migrations are behind, or a catalog query no "
    "longer describes.",
)
def ready():
    """Readiness: the database answers and the schema is at the head migration."""
    try:
        with db.read() as conn:
            applied = store.applied_migrations(conn)
            undescribed = (
                current_app.extensions["catalog"].failures(conn)
                if not (current_app.extensions["migrations"] - applied)
                else []
            )
    except Unavailable:
        reason = db.get().reachability.reason  # a request sees only the pool's timeout
        if reason is None:
            raise
        raise Unavailable(reason) from None
    pending = sorted(current_app.extensions["migrations"] - applied)
    if pending:
        raise Unavailable(f"migrations not applied: {', '.join(pending)}")
    if undescribed:  # the catalog and the schema drifted apart (docs/queries.md)
        raise Unavailable("catalog queries no longer describe: " + "; ".join(undescribed))
    return {"status": "ok"}
