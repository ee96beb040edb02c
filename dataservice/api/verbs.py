"""The standard verbs of a resource, built from its declaration (api/resource.py `Resource`) over
its named queries, found by convention in sql/<name>.sql (a resource may rename one, `queries=`):

| verb | route | queries |
|---|---|---|
| create | POST "" | create_<thing> |
| list | GET "" | list_<name>_by_<column>[_desc] per sort, count_<name> |
| get | GET item | get_<thing> |
| by_<field> | GET /by-<field>/<field> | get_<thing>_by_<field> |
| patch | PATCH item | update_<thing>, get_<thing>_version |
| delete | DELETE item | lock_<thing> and delete_<thing>, or a delete_<thing> taking `versions` |

The SQL follows api/resource.py's rules (a `version` column, `version_matches` in conditional
writes; each write records its own outbox event and so takes `actor` and `trace_id`). A query
missing, or a write taking no `actor`, refuses the start with one line naming the file and the
query. What differs (a user's password, an organization created with its owner) is a view
written by hand on the resource's blueprint, next to its declaration.
"""

from collections.abc import Callable

from .. import db
from ..auth import requires
from ..catalog import CatalogError
from ..openapi import links
from ..queries import queries
from ..store.pages import Listing, Sort
from ..store.rows import current, found, written
from .idempotency import idempotent
from .pages import page
from .resource import CREATED_HEADERS, ETAG_HEADER, Resource, etag, if_match, outbox

CURSOR_ALTERED = "The cursor was altered or belongs to another query."


def query(resource: Resource, verb: str, default: str, *, writes: bool = False):
    """The named query `default` (or the one the resource names for `verb` instead) of the
    resource's sql/<name>.sql; CatalogError, one line, when there is none or when it `writes`
    but takes no `actor` and `trace_id` (it would record no outbox event)."""
    name, file = resource.query_names.get(verb, default), resource.name
    found_query = getattr(getattr(queries, file, None), name, None)
    if found_query is None:
        raise CatalogError(
            f"sql/{file}.sql", f"the resource {resource.name} has no query {name} (its {verb})"
        )
    if writes and not {"actor", "trace_id"} <= set(found_query.parameters or ()):
        raise CatalogError(
            f"sql/{file}.sql",
            f"{name} (the {verb} of {resource.name}) takes no actor and trace_id: "
            "a write records its own event",
        )
    resource.used.add((file, name))
    return found_query


def listing(resource: Resource) -> Listing:
    """The sorts of the resource's list arguments (`sorting(...)`), each a list query
    list_<name>_by_<column> (`_desc` for `-column`) keyed on its column then the id."""
    choices = resource.list_args._declared_fields["sort"].validators[0].choices
    sorts = {}
    for sort in choices:
        column = sort.lstrip("-")
        name = f"list_{resource.name}_by_{column}" + ("_desc" if sort.startswith("-") else "")
        keys = (column,) if column == "id" else (column, "id")
        sorts[sort] = Sort(query(resource, f"sort {sort}", name), *keys)
    return Listing(sorts, count=query(resource, "count", f"count_{resource.name}"))


def _view(resource: Resource, verb: str, function: Callable, *decorators) -> Callable:
    """Names the function as its operationId, documents it, decorates it (innermost last)."""
    function.__name__ = function.__qualname__ = resource.view(verb)
    function.__doc__ = resource.docs[verb]
    return _decorated(function, decorators)


def _decorated(function: Callable, decorators) -> Callable:
    """`function` under `decorators`, the first one outermost (as they would be written)."""
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def _alt(resource: Resource, **descriptions: str | None) -> list:
    """alt_response decorators for the statuses whose description is declared."""
    return [
        resource.blp.alt_response(int(code.removeprefix("s")), description=text)
        for code, text in descriptions.items()
        if text
    ]


def serve(resource: Resource, *verbs: str) -> None:
    """Adds the resource's standard `verbs` to its blueprint, in this order."""
    a_thing = _a(resource.thing)
    for verb, doc in {
        "create": f"Create {a_thing}.",
        "list": f"List {resource.name} a page at a time.",
        "get": f"Get {a_thing} by id.",
        "delete": f"Delete {a_thing}"
        + (f" and its {resource.cascade.name}." if resource.cascade else "."),
    }.items():
        resource.docs.setdefault(verb, doc)
    for verb in verbs:
        if verb.startswith("by_"):
            _by(resource, verb.removeprefix("by_"))
        else:
            BUILDERS[verb](resource)


def creates(resource: Resource, *wrappers: Callable) -> Callable:
    """The decorators of a create, for one written by hand too: POST "" taking the declared
    `create` schema (`wrappers` right under the scope), 201 with Location and ETag, 409 when
    `taken`, and links to the new item's get, patch, delete and the declared `links`."""
    blp = resource.blp
    the_item = {k: f"$response.body#/{'id' if k == resource.key[0] else k}" for k in resource.key}
    targets = {resource.view(v): the_item for v in ("get", "patch", "delete")}
    decorators = [
        blp.route("", methods=["POST"], strict_slashes=False),
        requires(resource.write_scope),
        *wrappers,
        idempotent,
        blp.arguments(resource.create()),
        blp.response(201, resource.out_schema, headers=CREATED_HEADERS),
        *_alt(resource, s409=resource.taken),
        links(201, **targets, **resource.links),
    ]

    return lambda function: _decorated(function, decorators)


def _create(resource: Resource) -> None:
    create = query(resource, "create", f"create_{resource.thing}", writes=True)
    fields = [p for p in create.parameters or () if p in resource.create._declared_fields]

    def view(data):
        with db.single_statement() as conn:  # the row and its event
            row = create(conn, **{f: data.get(f) for f in fields}, **outbox())
        return resource.created(row)

    _view(resource, "create", view, creates(resource))


def _list(resource: Resource) -> None:
    blp, rows = resource.blp, listing(resource)
    _view(
        resource,
        "list",
        lambda args: page(rows, args),
        blp.route("", methods=["GET"], strict_slashes=False),
        requires(resource.read_scope),
        blp.arguments(resource.list_args(), location="query"),
        blp.response(200, resource.page),
        blp.alt_response(400, description=CURSOR_ALTERED),
    )


def _absent(resource: Resource, row: dict | None) -> dict:
    """The row, or the 404 naming the key (for a resource with a key of its own)."""
    return found(row, resource.absent, resource.key[0] if len(resource.key) == 1 else None)


def one(resource: Resource, conn, **key) -> dict:
    """The row with this key, or the 404 its GET answers."""
    return _absent(resource, query(resource, "get", f"get_{resource.thing}")(conn, **key))


def _get(resource: Resource) -> None:
    blp, get = resource.blp, query(resource, "get", f"get_{resource.thing}")

    def view(**key):
        with db.read() as conn:
            return resource.read(_absent(resource, get(conn, **key)))

    _view(
        resource,
        "get",
        view,
        blp.route(resource.item, methods=["GET"]),
        requires(resource.read_scope),
        blp.response(200, resource.out_schema, headers=ETAG_HEADER),
        *_alt(resource, s404=resource.missing),
    )


def _by(resource: Resource, field: str) -> None:
    """GET /by-<field>/<field>: one row by another unique column (its converter named alike)."""
    blp, get = resource.blp, query(resource, f"by_{field}", f"get_{resource.thing}_by_{field}")

    def view(**value):
        with db.read() as conn:
            return resource.read(
                found(get(conn, **value), f"no {resource.thing} with this {field}")
            )

    resource.docs.setdefault(f"by_{field}", f"Get {_a(resource.thing)} by {field}.")
    resource.view_names.setdefault(f"by_{field}", f"get_{resource.thing}_by_{field}")
    _view(
        resource,
        f"by_{field}",
        view,
        blp.route(f"/by-{field}/<{field}:{field}>", methods=["GET"]),
        requires(resource.read_scope),
        blp.response(200, resource.out_schema, headers=ETAG_HEADER),
    )


def _a(noun: str) -> str:
    return ("an " if noun[0] in "aeio" else "a ") + noun


def _version_query(resource: Resource) -> Callable:
    """The row's current version, for telling a missing row (404) from a stale one (412)."""
    return query(resource, "version", f"get_{resource.thing}_version")


def _patch(resource: Resource) -> None:
    blp = resource.blp
    update = query(resource, "patch", f"update_{resource.thing}", writes=True)
    version = _version_query(resource)
    fields = [p for p in update.parameters or () if p in resource.patch._declared_fields]

    def view(data, **key):
        versions = if_match()
        with db.single_statement() as conn:  # the change and its event; on no row, why not
            changes = {f: data.get(f) for f in fields}
            row = update(conn, **key, **changes, versions=versions, **outbox())
            row = written(row, versions, lambda: version(conn, **key), resource.absent)
        return row, etag(row)

    resource.docs.setdefault(
        "patch",
        "Change the " + " and/or the ".join(fields) + " (JSON merge patch).",
    )
    _view(
        resource,
        "patch",
        view,
        blp.route(resource.item, methods=["PATCH"]),
        requires(resource.write_scope),
        idempotent,
        blp.arguments(resource.patch(), content_type="application/merge-patch+json"),
        blp.response(200, resource.out_schema, headers=ETAG_HEADER),
        *_alt(resource, s404=resource.missing, s409=resource.taken),
    )


def _delete(resource: Resource) -> None:
    blp = resource.blp
    delete = query(resource, "delete", f"delete_{resource.thing}", writes=True)
    conditional = "versions" in (delete.parameters or ())
    if conditional:  # DELETE ... AND version_matches(...) RETURNING: the row as it was
        version = _version_query(resource)
    else:  # locked first (If-Match checked, the rows deleted with it complete), then deleted
        lock = query(resource, "lock", f"lock_{resource.thing}")

    def view(**key):
        versions = if_match()
        if conditional:
            with db.single_statement() as conn:  # the delete and its event; on no row, why not
                row = delete(conn, **key, versions=versions, **outbox())
                written(row, versions, lambda: version(conn, **key), resource.absent)
        else:
            with db.write() as conn:
                current(lock(conn, **key), versions, resource.absent)
                delete(conn, **key, **outbox())
        return None, 204

    _view(
        resource,
        "delete",
        view,
        blp.route(resource.item, methods=["DELETE"]),
        requires(resource.write_scope),
        idempotent,
        blp.response(204),
        *_alt(resource, s404=resource.missing, s409=resource.delete_conflict),
    )


BUILDERS = {
    "create": _create,
    "list": _list,
    "get": _get,
    "patch": _patch,
    "delete": _delete,
}
