"""What the endpoints of every resource share, declared once per resource (`Resource`): ETags
from the row's version (Rails' lock_version), conditional reads (304, Rails' `stale?`), the If-Match
versions a conditional write accepts, the Location of a new row, and what the change's outbox
event records besides the row (`outbox()`).

A resource's SQL keeps a `version` column that each change increments and guards its UPDATEs and
DELETEs with `version_matches(version, :versions)` (migration 0010); store/rows.py tells a
missing row (404) from a stale version (412).
"""

from flask import Response, g, request, url_for
from marshmallow import Schema

from .. import event_types, tracing
from ..schemas.pages import page_of
from .parsing import Blueprint

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


def outbox() -> dict:
    """What every write query takes besides its values: it records its own outbox event in the
    same statement (the row's JSON by `api_<thing>`, migration 0019), with the calling client
    and the request's trace. One path for every resource; see docs/dba.md, "The outbox"."""
    return {"actor": g.get("client_name"), "trace_id": tracing.trace_id()}


RESOURCES: dict[str, "Resource"] = {}  # every declared resource by name, in declaration order


class Resource:
    """One resource, declared once: its table (`name`, also its SQL file, blueprint and URL),
    its schemas, its scopes (`<name>:read`, `<name>:write` unless given), its events and its key.
    api/verbs.py builds its standard views from the named queries found by convention; `out`
    dumps a row as the API shows it; its write queries build the same JSON for their events with
    `api_<thing>` (tests/test_events.py holds the two together)."""

    def __init__(
        self,
        name: str,
        *,
        out: type[Schema],
        thing: str | None = None,
        key: tuple[str, ...] | None = None,
        create: type[Schema] | None = None,
        patch: type[Schema] | None = None,
        list_args: type[Schema] | None = None,
        page: type[Schema] | None = None,
        scopes: tuple[str, str] | None = None,
        events: tuple[str, ...] = ("created", "updated", "deleted"),
        url_prefix: str | None = None,
        item: str | None = None,
        description: str = "",
        queries: dict[str, str] | None = None,  # verb -> its query, where not the convention's
        views: dict[str, str] | None = None,  # verb -> its view (operationId), likewise
        docs: dict[str, str] | None = None,  # verb -> its summary, likewise
        absent: str | None = None,  # a 404's detail
        missing: str | None = None,  # the documented 404 of get, patch and delete, if any
        taken: str | None = None,  # the documented 409 of create and patch, if any
        delete_conflict: str | None = None,  # the documented 409 of delete, if any
        cascade: "Resource | None" = None,  # deleted with it by the database (documented)
        links: dict[str, dict] | None = None,  # more links from a create's 201
    ):
        self.name = name
        self.thing = thing or name.removesuffix("s")
        self.key = key or (f"{self.thing}_id",)
        self.out_schema, self.create, self.patch = out, create, patch
        self.list_args = list_args
        self.page = page or (list_args and page_of(out, out.__name__.removesuffix("Out") + "Page"))
        self.read_scope, self.write_scope = scopes or (f"{name}:read", f"{name}:write")
        self.events = event_types.declare(self.thing, *events)
        self.url_prefix = url_prefix or f"/api/v1/{name}"
        self.item = item or "".join(f"/<bigint:{k}>" for k in self.key)
        self.query_names = queries or {}
        self.view_names = views or {}
        self.docs = docs or {}
        self.absent = absent or f"no {self.thing} with this id"
        self.missing, self.taken, self.delete_conflict = missing, taken, delete_conflict
        self.cascade = cascade
        self.links = links or {}
        self.blp = Blueprint(
            name, f"dataservice.api.{name}", url_prefix=self.url_prefix, description=description
        )
        self.endpoint = f"{name}.{self.view('get')}"
        self.used: set[tuple[str, str]] = set()  # (sql file, query) its standard verbs run
        RESOURCES[name] = self

    def view(self, verb: str) -> str:
        """The view's name, its operationId: get_organization, list_organizations..."""
        default = f"{verb}_{self.name}" if verb == "list" else f"{verb}_{self.thing}"
        return self.view_names.get(verb, default.replace("patch_", "update_"))

    def keys(self, row: dict) -> dict:
        """The URL's key values of a row (a key named after the resource is its id)."""
        return {k: row[k] if k in row else row["id"] for k in self.key}

    def read(self, row: dict):
        """A GET's answer: 304 when If-None-Match already names this version."""
        if request.if_none_match.contains_weak(str(row["version"])):
            return Response(status=304, headers=etag(row))
        return row, etag(row)

    def created(self, row: dict):
        """A create's answer (the view's status is 201): Location and ETag."""
        return row, {"Location": url_for(self.endpoint, **self.keys(row)), **etag(row)}
