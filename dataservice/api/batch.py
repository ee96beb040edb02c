"""Atomic batches: up to 1,000 writes in one transaction; all commit or none do.

Each operation goes through the same endpoint, validation, If-Match and error handling as when
sent alone: it is dispatched inside this request, on this request's transaction and with its
credentials. The first failure rolls everything back and is answered with its status and
problem body, plus the operation's `index`.

References: an operation may use what an earlier one returned. A reference is a JSON Pointer
(RFC 6901) into the results so far, `/<index>/status` or `/<index>/body/...`: in a body, the
object `{"$ref": "/0/body/id"}` is replaced by that value; in a path, the text `${/0/body/id}`
is (percent-encoded). A reference forward or to itself, to a missing member, or (in a path) to
a value that is not a number or a non-empty string is a 422 naming the operation's index.

The bulk path: an endpoint may take a run of its operations in one call (`@bulk`, matched
through the URL map). A run of consecutive such operations, without headers or references, is
validated with the endpoint's schema and written at once; if anything in it would fail, the run
is undone and replayed one operation at a time, so the answer is the single endpoint's.
"""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import groupby
from urllib.parse import quote

import orjson
from flask import Response, current_app, request
from marshmallow import Schema, ValidationError
from werkzeug.exceptions import HTTPException

from .. import db, tracing
from ..auth import Forbidden, has_scope, requires
from ..errors import PROBLEM_BASE, ServiceError
from ..schemas.batch import PATH_PATTERN, BatchRequest, BatchResult
from .idempotency import idempotent
from .parsing import Blueprint
from .pipeline import NESTED
from .prehash import prehash

blp = Blueprint(
    "batch", __name__, url_prefix="/api/v1/batch", description="Several writes in one transaction."
)

# Headers every operation inherits from the batch request: its credentials.
_INHERITED = ("Authorization",)
_PATH_REFERENCE = re.compile(r"\$\{([^}]*)\}")
_PATH = re.compile(PATH_PATTERN)
_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")  # RFC 6901: no leading zeros


@dataclass(frozen=True)
class Bulk:
    schema: Schema  # loads the run's bodies (many=True), as the endpoint loads one
    write: Callable[..., list]  # (conn, bodies) -> each operation's response body, in order
    status: int  # each operation's status, as the endpoint answers one


def bulk(schema: type[Schema], write: Callable[..., list], status: int = 201):
    """Lets a batch run consecutive operations on the decorated endpoint as one call of
    `write(conn, bodies)`. Place it under @requires: the run needs the endpoint's scopes."""

    def mark(view):
        view.bulk = Bulk(schema(many=True), write, status)
        return view

    return mark


class OperationFailed(ServiceError):
    """The first failing operation's answer, re-issued for the whole batch with its index."""

    def __init__(self, index: int, response: Response, problem: dict):
        retry_after = response.headers.get("Retry-After")
        super().__init__(
            f"operation {index} failed: {problem.get('detail', '')}",
            headers={"Retry-After": retry_after} if retry_after else None,
            index=index,
            **{key: problem[key] for key in ("errors", "organizations") if key in problem},
        )
        self.status = response.status_code
        self.title = problem.get("title", "Batch operation failed")
        problem_type = problem.get("type", "")
        self.slug = (
            problem_type.removeprefix(PROBLEM_BASE)
            if problem_type.startswith(PROBLEM_BASE)
            else "batch-operation-failed"
        )


class InvalidReference(ServiceError):
    status, slug, title = 422, "invalid-reference", "Unprocessable Entity"

    def __init__(self, index: int, detail: str):
        super().__init__(f"operation {index}: {detail}", index=index)


def _dispatch(index: int, operation: dict) -> tuple[int, object]:
    headers = {name: request.headers[name] for name in _INHERITED if name in request.headers}
    headers.update(operation.get("headers", {}))
    body = operation.get("body")
    data = None if body is None and operation["method"] == "DELETE" else json.dumps(body)
    attributes = {"dataservice.batch.index": index, "http.request.method": operation["method"]}
    with (
        tracing.phase(None, f"batch operation {index}", attributes) as timed,
        current_app.test_request_context(
            operation["path"],
            method=operation["method"],
            data=data,
            headers=headers,
            content_type="application/json" if data is not None else None,
            environ_overrides={NESTED: index},
        ),
    ):
        response = current_app.full_dispatch_request()
        rule = request.url_rule  # the operation's, known once it is matched
        if rule is not None:
            timed.describe(
                f"batch operation {index}: {operation['method']} {rule.rule}",
                **{"http.route": rule.rule, "http.response.status_code": response.status_code},
            )
    payload = orjson.loads(response.get_data()) if response.get_data() else None
    if not 200 <= response.status_code < 300:
        raise OperationFailed(index, response, payload if isinstance(payload, dict) else {})
    return response.status_code, payload


# References -------------------------------------------------------------------------------------


def _may_refer(raw_body: bytes) -> bool:
    """Whether the batch's JSON can hold a reference at all ("$" may be written \\u0024)."""
    return b"$ref" in raw_body or b"${" in raw_body or b"\\u0024" in raw_body.lower()


def _refers(value) -> bool:
    if isinstance(value, dict):
        return _is_reference(value) or any(_refers(v) for v in value.values())
    if isinstance(value, list):
        return any(_refers(v) for v in value)
    return isinstance(value, str) and "${" in value


def _is_reference(value: dict) -> bool:
    return len(value) == 1 and isinstance(value.get("$ref"), str)


def _lookup(index: int, pointer: str, results: list[dict]):
    """The value `pointer` (RFC 6901) names in the results of the operations before `index`."""
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]
    if not pointer.startswith("/") or not _ARRAY_INDEX.fullmatch(tokens[0]):
        raise InvalidReference(index, f"{pointer!r} is not a pointer like /0/body/id")
    if int(tokens[0]) >= index:
        raise InvalidReference(index, f"{pointer!r} refers to an operation that runs after it")
    value = results[int(tokens[0])]
    for token in tokens[1:]:
        if isinstance(value, dict) and token in value:
            value = value[token]
        elif isinstance(value, list) and _ARRAY_INDEX.fullmatch(token) and int(token) < len(value):
            value = value[int(token)]
        else:
            raise InvalidReference(index, f"{pointer!r}: the results have no {token!r} there")
    return value


def _replace(value, index: int, results: list[dict]):
    if isinstance(value, dict):
        if _is_reference(value):
            return _lookup(index, value["$ref"], results)
        return {key: _replace(item, index, results) for key, item in value.items()}
    if isinstance(value, list):
        return [_replace(item, index, results) for item in value]
    return value


def _in_path(index: int, pointer: str, results: list[dict]) -> str:
    value = _lookup(index, pointer, results)
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        raise InvalidReference(index, f"{pointer!r} is neither a number nor text: not for a path")
    return quote(str(value), safe="")


def _resolved(index: int, operation: dict, results: list[dict]) -> dict:
    path = _PATH_REFERENCE.sub(lambda m: _in_path(index, m.group(1), results), operation["path"])
    if not _PATH.match(path):
        raise InvalidReference(index, "the path it makes is not one a batch may write to")
    resolved = {**operation, "path": path}
    if "body" in operation:
        resolved["body"] = _replace(operation["body"], index, results)
    return resolved


# The bulk path ----------------------------------------------------------------------------------


def _bulk_view(operation: dict, found: dict):
    """The view of the operation's endpoint when it takes runs (`@bulk`), else None."""
    if operation.get("headers"):
        return None
    key = (operation["method"], operation["path"])
    if key not in found:
        try:
            endpoint, _ = current_app.url_map.bind("").match(key[1], method=key[0])
        except HTTPException:  # no such route: the operation's own dispatch answers it
            found[key] = None
        else:
            view = current_app.view_functions[endpoint]
            found[key] = view if hasattr(view, "bulk") else None
    return found[key]


def _bulk_run(view, run: list[tuple[int, dict]]) -> list[tuple[int, object]]:
    """A run of operations on one `@bulk` endpoint in one call. When any of them would fail, the
    run is undone (a savepoint) and replayed one operation at a time, so the failure is
    reported exactly as the single endpoint reports it, with its index."""
    first, method = run[0][0], run[0][1]["method"]
    attributes = {
        "dataservice.batch.index": first,
        "dataservice.batch.operations": len(run),
        "http.request.method": method,
    }
    # One span for the run (its operations are one statement), named by its first and last
    # and by the endpoint (its path may hold values).
    name = f"batch operations {first}-{run[-1][0]}: {view.__name__}"
    try:
        with tracing.phase(None, name, attributes):
            missing = [scope for scope in view.required_scopes if not has_scope(scope)]
            if missing:
                raise Forbidden(missing)
            bodies = view.bulk.schema.load([operation.get("body") for _, operation in run])
            with db.savepoint() as conn:  # undone alone when the run is replayed
                written = view.bulk.write(conn, bodies)
        return [(view.bulk.status, body) for body in written]
    except (ValidationError, ServiceError):
        return [_dispatch(index, operation) for index, operation in run]


@blp.route("", methods=["POST"], strict_slashes=False)
@requires()  # each operation is checked against its own endpoint's scopes
@idempotent
@blp.arguments(BatchRequest())
@blp.response(200, BatchResult)
@blp.alt_response(409, description="An operation conflicted; nothing was committed.")
def run_batch(data):
    """Run write operations atomically, later ones using earlier results through references. On
    failure: the failing operation's status and problem, with its `index`, and nothing
    committed."""
    operations = data["operations"]
    may_refer = _may_refer(request.get_data(cache=True))
    found: dict = {}

    def takes_runs(item):
        _, operation = item
        if may_refer and _refers(operation):
            return None
        return _bulk_view(operation, found)

    results: list[dict] = []
    prehash()  # its plain passwords hashed before its transaction holds a connection
    with db.request_transaction():
        for view, group in groupby(enumerate(operations), key=takes_runs):
            run = list(group)
            if view is not None and len(run) > 1:
                results += [{"status": s, "body": b} for s, b in _bulk_run(view, run)]
                continue
            for index, operation in run:  # one at a time: each may refer to the ones before
                if may_refer:
                    operation = _resolved(index, operation, results)
                status, body = _dispatch(index, operation)
                results.append({"status": status, "body": body})
    return {"results": results}
