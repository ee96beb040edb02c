"""The change feed: every committed change, in commit-safe order, exactly once per consumer."""

import time

from flask import current_app

from .. import db
from ..auth import requires
from ..schemas.events import EventListArgs, EventPage
from ..store import events as store
from . import cursors
from .parsing import Blueprint

blp = Blueprint(
    "events",
    __name__,
    url_prefix="/api/v1/events",
    description="The change feed (transactional outbox).",
)

_FEED = cursors.fingerprint({"feed": "events"})  # a position is valid whatever the filters
_REPOLL_SECONDS = 0.5  # a held-back event can become visible without a notification
# The feed always reads the primary, even with a read replica: holding back events of
# transactions still running needs the primary's own list of them, which a standby learns only
# from the WAL (a transaction that has an id but has written nothing yet is unknown there).


@blp.route("", methods=["GET"], strict_slashes=False)
@requires("events:read")
@blp.arguments(EventListArgs(), location="query")
@blp.response(200, EventPage)
@blp.alt_response(400, description="The cursor was altered.")
def list_events(args):
    """The next events after a cursor; with `wait`, an empty page waits for new ones."""
    position = tuple(cursors.decode(args["after"], _FEED)) if "after" in args else (0, 0)
    types = args["types"].split(",") if "types" in args else None
    notifier = current_app.extensions["notifier"]
    deadline = time.monotonic() + args["wait"]
    waiting = False
    try:
        while True:
            seen = notifier.generation
            with db.primary() as conn:  # the primary: see the note above
                items = store.after(conn, position, types=types, limit=args["limit"])
            remaining = deadline - time.monotonic()
            if items or remaining <= 0:
                break
            if not waiting:
                waiting = notifier.try_reserve()
                if not waiting:  # every waiting slot is busy: answer now, the client re-polls
                    break
            notifier.wait(seen, min(remaining, _REPOLL_SECONDS))
    finally:
        if waiting:
            notifier.release()
    if items:
        position = (items[-1]["xid"], items[-1]["id"])
    return {"items": items, "next_cursor": cursors.encode(list(position), _FEED)}
