"""Keyset pages over HTTP, for every list endpoint: the opaque cursor carries the last row's
position and is bound to the sort, the filters and the URL's own parameters (`scope`), so it
cannot be replayed against another query; `count=exact` adds the total."""

from .. import db
from ..store.pages import Listing
from . import cursors


def page(listing: Listing, args: dict, **scope) -> dict:
    """The page that `args` (PageArgs with the resource's sort and filters) asks for. `scope`:
    parameters taken from the URL (the organization of /organizations/{id}/members)."""
    filters = {name: args.get(name) for name in listing.filters if name not in scope}
    filters.update(scope)
    sort, limit = args["sort"], args["limit"]
    fingerprint = cursors.fingerprint({"sort": sort, **filters})
    after = cursors.decode(args["cursor"], fingerprint) if "cursor" in args else None
    with db.read() as conn:
        rows = listing.rows(conn, sort, after, filters, limit + 1)
        total = listing.total(conn, filters) if args.get("count") == "exact" else None
    result = {"items": rows[:limit], "next_cursor": None}
    if len(rows) > limit:
        result["next_cursor"] = cursors.encode(listing.position(sort, rows[limit - 1]), fingerprint)
    if total is not None:
        result["total"] = total
    return result
