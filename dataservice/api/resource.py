"""What the endpoints of every resource share, declared once per resource (`Resource`): ETags
from the row's version (Rails' lock_version), conditional reads (304, Rails' `stale?`), the If-Match
versions a conditional write accepts, the Location of a new row, and the change's outbox event.

A resource's SQL keeps a `version` column that each change increments and guards its UPDATEs and
DELETEs with `version_matches(version, :versions)` (migration 0010); store/rows.py tells a
missing row (404) from a stale version (412).
"""

from flask import Response, g, request, url_for
from marshmallow import Schema

from ..store import events

ETAG_HEADER = {
    "ETag": {
        "description": "The version, for If-Match and If-None-Match.",
        "schema": {"type": "string"},
    }
}
CREATED_HEADERS = {
    "Location": {"description": "The new resource's URL.", "schema": {"type": "string"}},
    **ETAG_HEADER,
}


def if_match() -> list[int] | None:
    """The versions If-Match accepts: None without the header (or with *), else the numbers in
    its strong ETags; an empty list (nothing can match) when none is one of ours."""
    header = request.if_match
    if not header or header.star_tag:
        return None
    return [
        int(tag)
        for tag in header.as_set()
        if tag and tag.isascii() and tag.isdigit() and len(tag) < 10
    ]


def etag(row: dict) -> dict:
    return {"ETag": f'"{row["version"]}"'}


class Resource:
    """One resource's shared behaviour: `out` dumps a row as the API shows it (responses and
    event data alike), `endpoint` is its GET view (for Location), `events` its declared types."""

    def __init__(self, out: Schema, *, endpoint: str, events: tuple[str, ...]):
        self.out = out
        self.endpoint = endpoint
        self.events = events

    def read(self, row: dict):
        """A GET's answer: 304 when If-None-Match already names this version."""
        if request.if_none_match.contains_weak(str(row["version"])):
            return Response(status=304, headers=etag(row))
        return row, etag(row)

    def created(self, row: dict, **url_values):
        """A create's answer (the view's status is 201): Location and ETag."""
        return row, {"Location": url_for(self.endpoint, **url_values), **etag(row)}

    def record(self, conn, event_type: str, row: dict) -> None:
        """The change's outbox event, in the change's transaction: the row as the API shows it
        (before the change, for a delete) and the calling client."""
        if event_type not in self.events:
            raise ValueError(f"{event_type} is not one of {self.events}")
        events.append(
            conn,
            type=event_type,
            entity_id=row["id"],
            actor=g.get("client_name"),
            data=self.out.dump(row),
        )
