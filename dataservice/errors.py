"""Domain errors: what went wrong, in terms a client can act on. Nothing here knows HTTP
frameworks; api/problems.py is the one place that turns these into application/problem+json.

Each class fixes a status and a problem type (its slug); `extra` members travel in the problem
body (`errors` for fields, `index` for a batch operation, ...). `problem_body` writes that body,
for the app's answers (api/problems.py) and for those a worker gives itself (serving/problems.py).
"""

import orjson

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_BASE = "urn:dataservice:problem:"
# Validation errors of list items are keyed by their index (an int): written as a string.
_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS


def problem_body(
    status: int, title: str, detail: str, *, slug: str | None, request_id: str | None, **extra
) -> bytes:
    """An RFC 9457 problem as JSON: type, title, status, detail, the extension members, then
    the request id. Without a slug the type is about:blank, which RFC 9457 reserves for
    "nothing more than the HTTP status says"."""
    return orjson.dumps(
        {
            "type": PROBLEM_BASE + slug if slug else "about:blank",
            "title": title,
            "status": status,
            "detail": detail,
            **extra,
            "request_id": request_id,
        },
        option=_JSON_OPTIONS,
    )


class ServiceError(Exception):
    """An error a client can act on. Subclasses fix the status and the problem type."""

    status = 500
    slug = "internal-error"
    title = "Internal Server Error"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extra):
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


class NotFound(ServiceError):
    """No such resource. `field` names the path parameter or field that points nowhere."""

    status, slug, title = 404, "not-found", "Not Found"

    def __init__(self, detail: str, *, field: str | None = None):
        super().__init__(detail, **({"errors": {field: [_capitalised(detail)]}} if field else {}))


class Conflict(ServiceError):
    status, slug, title = 409, "conflict", "Conflict"

    def __init__(self, field: str, message: str = "Already taken."):
        super().__init__(f"a resource with this {field} already exists", errors={field: [message]})


class Invalid(ServiceError):
    """A value the database refused (a reference to a missing row, a broken rule): a 422 naming
    the field, as schema validation would have named it."""

    status, slug, title = 422, "validation-error", "Unprocessable Entity"

    def __init__(self, field: str, message: str):
        super().__init__(
            "the request body or parameters are invalid; see errors", errors={field: [message]}
        )


class LastOwner(ServiceError):
    """The change would leave organizations without an owner."""

    status, slug, title = 409, "last-owner", "Conflict"

    def __init__(self, organization_ids: list[int]):
        super().__init__(
            "an organization must keep at least one owner; make another member an owner first",
            organizations=organization_ids,
        )


class PreconditionFailed(ServiceError):
    status, slug, title = 412, "precondition-failed", "Precondition Failed"

    def __init__(self):
        super().__init__("the resource has changed since the If-Match version; fetch it again")


class InvalidCursor(ServiceError):
    status, slug, title = 400, "invalid-cursor", "Bad Request"

    def __init__(self, detail: str = "the cursor is not one this service issued for this query"):
        super().__init__(detail)


class InvalidCredentials(ServiceError):
    status, slug, title = 401, "invalid-credentials", "Unauthorized"

    def __init__(self):
        super().__init__("the login or the password is wrong")


class BadRequest(ServiceError):
    status, slug, title = 400, "bad-request", "Bad Request"


class IdempotencyKeyReused(ServiceError):
    status, slug, title = 422, "idempotency-key-reused", "Unprocessable Entity"

    def __init__(self):
        super().__init__(
            "this Idempotency-Key was used for a different request (method, path or "
            "body); use a new key for a new request"
        )


class IdempotencyKeyInProgress(ServiceError):
    status, slug, title = 409, "idempotency-key-in-progress", "Conflict"

    def __init__(self):
        super().__init__(
            "a request with this Idempotency-Key is still running; retry shortly",
            headers={"Retry-After": "1"},
        )


class Unavailable(ServiceError):
    """The database cannot serve the request now: unreachable, pool exhausted, statement timeout."""

    status, slug, title = 503, "unavailable", "Service Unavailable"

    def __init__(self, detail: str = "the database is unavailable; retry shortly", retry_after=1):
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class RateLimited(ServiceError):
    """The client is over one of its limits (admission/); other clients are not affected."""

    status, slug, title = 429, "rate-limited", "Too Many Requests"

    def __init__(self, detail: str, headers: dict[str, str], reason: str):
        super().__init__(detail, headers=headers)
        self.reason = reason  # rate or in_flight: a label of dataservice_refused_requests_total


class Busy(Unavailable):
    """The instance is at capacity for this kind of work: answered at once, never queued. A
    kind of Unavailable, so whatever copes with an unreachable database copes with it too."""

    slug = "busy"

    def __init__(self, detail: str, reason: str, retry_after: int = 1):
        super().__init__(detail, retry_after)
        self.reason = reason  # hashing or queue: a label of dataservice_refused_requests_total


def _capitalised(detail: str) -> str:
    return detail[:1].upper() + detail[1:] + "."
