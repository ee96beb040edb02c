"""Atomic batches: up to 1,000 writes in one transaction; all commit or none do.

Each operation goes through the same endpoint, validation, If-Match and error handling as when
sent alone: it is dispatched inside this request, on this request's transaction and with its
credentials. The first failure rolls everything back and is answered with its status and
problem body, plus the operation's `index`.

One shortcut keeps big batches fast: a run of consecutive creates is validated with the same
schema and inserted with one statement; if anything in the run would fail, the run is replayed
operation by operation so the answer is the single endpoint's.
"""

import json
from itertools import groupby

import orjson
from flask import Response, current_app, g, request
from marshmallow import ValidationError

from .. import db
from ..auth import Forbidden, has_scope, requires
from ..errors import PROBLEM_BASE, Conflict, ServiceError
from ..observe import NESTED
from ..schemas.batch import BatchRequest, BatchResult
from ..schemas.users import UserCreate
from . import users
from .idempotency import idempotent
from .parsing import Blueprint

blp = Blueprint(
    "batch", __name__, url_prefix="/api/v1/batch", description="Several writes in one transaction."
)

_CREATE = UserCreate(many=True)

# Headers every operation inherits from the batch request: its credentials.
_INHERITED = ("Authorization",)


class OperationFailed(ServiceError):
    """The first failing operation's answer, re-issued for the whole batch with its index."""

    def __init__(self, index: int, response: Response, problem: dict):
        retry_after = response.headers.get("Retry-After")
        super().__init__(
            f"operation {index} failed: {problem.get('detail', '')}",
            headers={"Retry-After": retry_after} if retry_after else None,
            index=index,
            **({"errors": problem["errors"]} if "errors" in problem else {}),
        )
        self.status = response.status_code
        self.title = problem.get("title", "Batch operation failed")
        problem_type = problem.get("type", "")
        self.slug = (
            problem_type.removeprefix(PROBLEM_BASE)
            if problem_type.startswith(PROBLEM_BASE)
            else "batch-operation-failed"
        )


def _dispatch(index: int, operation: dict) -> tuple[int, object]:
    headers = {name: request.headers[name] for name in _INHERITED if name in request.headers}
    headers.update(operation.get("headers", {}))
    body = operation.get("body")
    data = None if body is None and operation["method"] == "DELETE" else json.dumps(body)
    with current_app.test_request_context(
        operation["path"],
        method=operation["method"],
        data=data,
        headers=headers,
        content_type="application/json" if data is not None else None,
        environ_overrides={NESTED: index},
    ):
        response = current_app.full_dispatch_request()
    payload = orjson.loads(response.get_data()) if response.get_data() else None
    if not 200 <= response.status_code < 300:
        raise OperationFailed(index, response, payload if isinstance(payload, dict) else {})
    return response.status_code, payload


def _is_plain_create(operation: dict) -> bool:
    return (
        operation["method"] == "POST"
        and operation["path"].rstrip("/") == "/api/v1/users"
        and not operation.get("headers")
    )


def _create_run(run: list[tuple[int, dict]]) -> list[tuple[int, object]]:
    """A run of consecutive creates in one INSERT. When any of them would fail, the run is
    undone (a savepoint) and replayed one operation at a time, so the failure is reported
    exactly as the single endpoint reports it, with its index."""
    try:
        if not has_scope("users:write"):
            raise Forbidden(["users:write"])
        bodies = _CREATE.load([operation.get("body") for _, operation in run])
        with g.request_conn.transaction():  # a savepoint inside the batch's transaction
            created = users.create_many(g.request_conn, bodies)
        return [(201, user) for user in created]
    except (ValidationError, Conflict, Forbidden):
        return [_dispatch(index, operation) for index, operation in run]


@blp.route("", methods=["POST"], strict_slashes=False)
@requires()  # each operation is checked against its own endpoint's scopes
@idempotent
@blp.arguments(BatchRequest())
@blp.response(200, BatchResult)
@blp.alt_response(409, description="An operation conflicted; nothing was committed.")
def run_batch(data):
    """Run write operations atomically. On failure: the failing operation's status and problem,
    with its `index`, and nothing committed."""
    results = []
    with db.request_transaction():
        numbered = enumerate(data["operations"])
        for plain_creates, group in groupby(numbered, key=lambda item: _is_plain_create(item[1])):
            run = list(group)
            if plain_creates and len(run) > 1:
                outcomes = _create_run(run)
            else:
                outcomes = [_dispatch(index, operation) for index, operation in run]
            results += [{"status": status, "body": body} for status, body in outcomes]
    return {"results": results}
