"""Atomic batches: up to 1,000 writes in one transaction; all commit or none do.

Each operation goes through the same endpoint, validation, If-Match and error handling as when
sent alone: it is dispatched inside this request, on this request's transaction and with its
credentials. The first failure rolls everything back and is answered with its status and
problem body, plus the operation's `index`.
"""

import json

import orjson
from flask import Response, current_app, g, request

from .. import db
from ..errors import PROBLEM_BASE, ServiceError
from ..schemas.batch import BatchRequest, BatchResult
from .idempotency import idempotent
from .parsing import Blueprint

blp = Blueprint(
    "batch", __name__, url_prefix="/api/v1/batch", description="Several writes in one transaction."
)

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
    headers["X-Request-ID"] = g.request_id  # every operation logs under the batch's id
    headers.update(operation.get("headers", {}))
    body = operation.get("body")
    data = None if body is None and operation["method"] == "DELETE" else json.dumps(body)
    with current_app.test_request_context(
        operation["path"],
        method=operation["method"],
        data=data,
        headers=headers,
        content_type="application/json" if data is not None else None,
    ):
        response = current_app.full_dispatch_request()
    payload = orjson.loads(response.get_data()) if response.get_data() else None
    if not 200 <= response.status_code < 300:
        raise OperationFailed(index, response, payload if isinstance(payload, dict) else {})
    return response.status_code, payload


@blp.route("", methods=["POST"], strict_slashes=False)
@idempotent
@blp.arguments(BatchRequest)
@blp.response(200, BatchResult)
@blp.alt_response(409, description="An operation conflicted; nothing was committed.")
def run_batch(data):
    """Run write operations atomically. On failure: the failing operation's status and problem,
    with its `index`, and nothing committed."""
    results = []
    with db.request_transaction():
        for index, operation in enumerate(data["operations"]):
            status, body = _dispatch(index, operation)
            results.append({"status": status, "body": body})
    return {"results": results}
