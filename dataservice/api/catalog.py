"""HTTP for the catalog (dataservice/catalog/): each endpoint query becomes a view built from
its declaration and PostgreSQL's description of it, wrapped in the decorators a hand-written
endpoint uses (scopes, Idempotency-Key, flask-smorest's arguments and response), so it is
served, limited, logged, measured, batched and documented like one.

No `blp` at module level: create_app registers `blueprint(catalog)` after the others,
whose routes a catalog route may not take.
"""

import re
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

import psycopg
from flask import g
from marshmallow import Schema, fields, validate
from werkzeug.routing import BaseConverter

from .. import db
from ..auth import requires
from ..catalog import Catalog, Query, Undescribed
from ..catalog.describe import Description
from ..catalog.types import INTEGERS, column_field, parameter_field
from ..errors import Conflict, Invalid, InvalidCursor, NotFound, Unavailable
from ..queries import queries as named_sql
from ..schemas.fields import text
from ..schemas.pages import CURSOR, page_of
from ..store import events
from . import cursors
from .idempotency import idempotent
from .parsing import Blueprint
from .pipeline import reads_primary

LIST_MAX = 1000  # a list without a page answers at most this many rows
_PATH_TEXT_MAX = 1000


class TextConverter(BaseConverter):
    """A path parameter that is not an integer: one segment without NUL (else no route: 404)."""

    regex = rf"[^/\x00]{{1,{_PATH_TEXT_MAX}}}"


def text_schema(converter: TextConverter) -> dict:
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": _PATH_TEXT_MAX,
        "pattern": r"^[^/\u0000]+$",
    }


def _camel(name: str) -> str:
    return name.title().replace("_", "")


def _rule(query: Query, description: Description) -> str:
    def converter(match: re.Match) -> str:
        name = match.group(1)
        kind = "bigint" if description.parameters[name].name in INTEGERS else "catalog_text"
        return f"<{kind}:{name}>"

    return re.sub(r"\{(\w+)\}", converter, query.route)


def _arguments(query: Query, description: Description, in_json: bool) -> type[Schema] | None:
    declared = {}
    for name in query.client_parameters:
        if name in query.route_parameters:
            continue
        declared[name] = parameter_field(
            description.parameters[name],
            in_json=in_json,
            required=name not in query.optional,
            example=query.example.get(name),
        )
    if query.page:
        declared["limit"] = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
        declared["cursor"] = text(
            **CURSOR,
            description="The next_cursor of the previous page, as is (one this service issued "
            "for this query, unaltered: else a 400).",
        )
    if not declared:
        return None
    return Schema.from_dict(declared, name=_camel(query.name) + ("Body" if in_json else "Args"))


def _row_schema(query: Query, description: Description) -> type[Schema]:
    hidden = {check.column for check in query.checks}
    return Schema.from_dict(
        {
            column.name: column_field(column.type, not_null=column.not_null)
            for column in description.columns
            if column.name not in hidden
        },
        name=_camel(query.name),
    )


def _response_schema(query: Query, row: type[Schema]) -> type[Schema] | None:
    if query.shape == "one":
        return row
    if query.shape == "write":
        return None
    if query.page:
        return page_of(row, _camel(query.name) + "Page")
    return Schema.from_dict(
        {
            "items": fields.List(fields.Nested(row), required=True),
            "truncated": fields.Boolean(
                required=True,
                metadata={"description": f"More than {LIST_MAX} rows matched: only these came."},
            ),
        },
        name=_camel(query.name) + "List",
    )


# Running a query -------------------------------------------------------------------------------


def _execute(conn: psycopg.Connection, query: Query, params: dict) -> psycopg.Cursor:
    if query.timeout_ms is None:
        return conn.execute(query.sql, params)
    # The declared timeout for this statement only (a savepoint within a batch's transaction).
    with conn.transaction():
        previous = named_sql.catalog_support.set_statement_timeout(
            conn, timeout=str(query.timeout_ms)
        )
        cursor = conn.execute(query.sql, params)
        rows = cursor.fetchall()
        named_sql.catalog_support.restore_statement_timeout(conn, previous=previous)
    return _Rows(rows)


class _Rows:
    def __init__(self, rows: list):
        self.rows = rows

    def fetchall(self):
        return self.rows

    def fetchone(self):
        return self.rows[0] if self.rows else None

    def fetchmany(self, size: int):
        return self.rows[:size]


def _json_ready(value):
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_ready(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    return getattr(value, "obj", value)  # Jsonb


def _checked(query: Query, row: dict | None) -> dict:
    if row is None:
        raise NotFound(f"{query.name}: no such row", field=None)
    for check in query.checks:
        if not row[check.column]:
            if check.status == 409:
                raise Conflict(check.field, check.message)
            if check.status == 404:
                raise NotFound(check.message.rstrip("."), field=check.field)
            raise Invalid(check.field, check.message)
    return row


def _record(conn, query: Query, row: dict | None, params: dict, dump) -> None:
    event_type, key = query.event
    data = dump(row) if row is not None else _json_ready(params)
    entity_id = row[key] if row is not None and key in row else params[key]
    events.append(conn, type=event_type, entity_id=entity_id, actor=g.get("client_name"), data=data)


def _position(row: dict, keys: tuple[str, ...]) -> list:
    return [_json_ready(row[key]) for key in keys]


def _after(query: Query, description: Description, position: list) -> dict:
    if len(position) != len(query.page):
        raise InvalidCursor()
    after = {}
    for key, value in zip(query.page, position, strict=True):
        kind = description.parameters[f"after_{key}"].name
        try:
            if value is not None and kind in ("timestamptz", "timestamp"):
                value = datetime.fromisoformat(value)
            elif value is not None and kind == "date":
                value = date.fromisoformat(value)
        except (TypeError, ValueError):
            raise InvalidCursor() from None
        after[f"after_{key}"] = value
    return after


def _view(query: Query, description: Description, row_schema: type[Schema]):
    dump = row_schema().dump
    narrow = {
        name: INTEGERS[description.parameters[name].name][:2]
        for name in query.route_parameters
        if description.parameters[name].name in ("int2", "int4")
    }

    def page(params: dict) -> dict:
        limit, cursor = params.pop("limit"), params.pop("cursor", None)
        fingerprint = cursors.fingerprint({"query": query.name, **_json_ready(params)})
        position = cursors.decode(cursor, fingerprint) if cursor else [None] * len(query.page)
        params.update(_after(query, description, position), limit=limit + 1)
        with db.read() as conn:
            rows = _execute(conn, query, params).fetchall()
        result = {"items": rows[:limit], "next_cursor": None}
        if len(rows) > limit:
            result["next_cursor"] = cursors.encode(
                _position(rows[limit - 1], query.page), fingerprint
            )
        return result

    def read(params: dict):
        with db.read() as conn:
            cursor = _execute(conn, query, params)
            if query.shape == "one":
                return _checked(query, cursor.fetchone())
            rows = cursor.fetchmany(LIST_MAX + 1)
        return {"items": rows[:LIST_MAX], "truncated": len(rows) > LIST_MAX}

    def write(params: dict):
        with db.write() as conn:
            cursor = _execute(conn, query, params)
            row = _checked(query, cursor.fetchone()) if query.shape == "one" else None
            if query.shape == "list":
                rows = cursor.fetchmany(LIST_MAX + 1)
            if query.event:
                _record(conn, query, row, params, dump)
        if query.shape == "one":
            return row
        if query.shape == "list":
            return {"items": rows[:LIST_MAX], "truncated": len(rows) > LIST_MAX}
        return None, 204

    def view(*args, **path):
        for name, (low, high) in narrow.items():
            if not low <= path[name] <= high:
                raise NotFound(f"{query.name}: no such row", field=name)
        params = {**(args[0] if args else {}), **path}
        try:
            if query.page:
                return page(params)
            return read(params) if query.method == "GET" else write(params)
        except psycopg.errors.DataError as exc:  # a value the type's own parser refuses
            raise Invalid(
                "_schema", f"PostgreSQL refused a value: {exc.diag.message_primary}"
            ) from None

    view.__name__ = query.name
    view.__doc__ = (
        query.summary
        + "."
        + ("\n\n" + query.description if query.description != query.summary + "." else "")
    )
    return view


def decorated(blp: Blueprint, query: Query, description: Description):
    """One endpoint query's view, decorated as a hand-written one is (but for its scopes)."""
    row = _row_schema(query, description)
    view = _view(query, description, row)
    if query.shape == "write":
        view = blp.response(204)(view)
    else:
        view = blp.response(200, _response_schema(query, row))(view)
    statuses: dict[int, list[str]] = {}
    for check in query.checks:
        statuses.setdefault(check.status, []).append(f"`{check.field}`: {check.message}")
    if query.shape == "one":
        statuses.setdefault(404, []).insert(0, "No row.")
    for status, reasons in sorted(statuses.items()):
        view = blp.alt_response(status, description=" ".join(reasons))(view)
    in_json = query.method != "GET"
    arguments = _arguments(query, description, in_json)
    if arguments is not None:
        kwargs = {}
        body_example = {k: v for k, v in query.example.items() if k not in query.route_parameters}
        if in_json and body_example:
            kwargs["example"] = body_example
        view = blp.arguments(arguments(), location="json" if in_json else "query", **kwargs)(view)
    return idempotent(view) if in_json else view


def _undescribed(blp: Blueprint, catalog: Catalog, query: Query):
    """The view of a query the database could not describe at start (it was unreachable, or
    not migrated yet): each call tries again, and once it answers serves the query, with its
    types (the OpenAPI document lists them from the next start)."""
    built = []

    def view(**path):
        if not built:
            try:
                with db.primary() as conn:
                    description = catalog.described(query, conn)
            except (psycopg.Error, Undescribed) as exc:
                raise Unavailable(f"{query.name} is not described yet: {exc}") from None
            built.append(decorated(blp, query, description))
            built.append(
                {n for n in query.route_parameters if description.parameters[n].name in INTEGERS}
            )
        for name in built[1]:
            if not path[name].isascii() or not path[name].isdigit() or len(path[name]) > 19:
                raise NotFound(f"{query.name}: no such row", field=name)
            path[name] = int(path[name])
        return built[0](**path)

    view.__name__ = query.name
    view.__doc__ = query.summary + "."
    return view


def blueprint(catalog: Catalog) -> Blueprint:
    """Every endpoint query of the catalog, as routes of one blueprint."""
    blp = Blueprint(
        "catalog",
        __name__,
        description="Named SQL that a DBA reviewed, served as typed endpoints (docs/queries.md).",
    )
    for query in catalog.queries:
        description = catalog.descriptions.get(query.name)
        if description is not None:
            view, rule = decorated(blp, query, description), _rule(query, description)
        else:
            view, rule = (
                _undescribed(blp, catalog, query),
                re.sub(r"\{(\w+)\}", r"<catalog_text:\1>", query.route),
            )
        view = requires(*query.scopes)(view)
        if not query.replica:  # its header does not allow one
            view = reads_primary(view)
        blp.route(rule, methods=[query.method], endpoint=query.name)(view)
        if query.event:
            entity, action = query.event[0].split(".")
            events.declare(entity, action)
    return blp
