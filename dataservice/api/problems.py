"""The HTTP problem boundary: the one place where any error becomes an application/problem+json
response (RFC 9457: type, title, status, detail, request_id, plus extension members).

Domain errors (errors.py) carry their status and type; Flask, werkzeug and webargs raise
HTTPException; anything else is a bug and becomes a 500 whose traceback goes only to the log.
"""

import logging

from flask import Flask, current_app, g, request
from werkzeug.exceptions import HTTPException, InternalServerError

from ..errors import PROBLEM_CONTENT_TYPE, ServiceError, problem_body

log = logging.getLogger(__name__)


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str | None = None,
    headers: dict[str, str] | None = None,
    **extra,
):
    """An RFC 9457 problem response (errors.problem_body) carrying the request's id. `slug`
    names the problem type."""
    body = problem_body(status, title, detail, slug=slug, request_id=g.get("request_id"), **extra)
    response = current_app.response_class(body, status=status, mimetype=PROBLEM_CONTENT_TYPE)
    response.headers.update(headers or {})
    return response


def _validation_errors(error: HTTPException) -> dict | None:
    """webargs (through flask-smorest's abort) attaches marshmallow's messages keyed by location:
    {"json": {"email": [...]}}. Clients want the field names alone."""
    messages = (getattr(error, "data", None) or {}).get("messages")
    if not messages:
        return None
    flat: dict = {}
    for location_messages in messages.values():
        if isinstance(location_messages, dict):
            flat.update(location_messages)
        else:
            flat.setdefault("_body", []).extend(location_messages)
    return flat


_SLUGS = {
    400: "bad-request",
    404: "not-found",
    405: "method-not-allowed",
    413: "body-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
}
_DETAILS = {
    404: "no resource at this URL",
    405: "this URL does not accept this method; see the Allow header",
    413: "the request body is larger than this service accepts",
    422: "the request body or parameters are invalid; see errors",
}


def handle_service_error(error: ServiceError):
    return problem(
        error.status,
        error.title,
        error.detail,
        slug=error.slug,
        headers=error.headers,
        **error.extra,
    )


def handle_http_exception(error: HTTPException):
    if isinstance(error, InternalServerError):
        return handle_unexpected(error.original_exception or error)
    headers = {}
    if error.code == 405 and getattr(error, "valid_methods", None):
        headers["Allow"] = ", ".join(error.valid_methods)
    extra = {}
    errors = _validation_errors(error)
    if errors is not None:
        extra["errors"] = errors
    detail = _DETAILS.get(error.code) or error.description or error.name
    return problem(
        error.code or 500, error.name, detail, slug=_SLUGS.get(error.code), headers=headers, **extra
    )


def handle_unexpected(error: BaseException):
    # One JSON line (logs.py) with the traceback and the request id the client got.
    log.error(
        "unhandled error in %s %s",
        request.method,
        request.path,
        exc_info=error,
        extra={"request_id": g.get("request_id")},
    )
    return problem(
        500,
        "Internal Server Error",
        "an unexpected error occurred; quote the request_id when reporting it",
        slug="internal-error",
    )


def init_app(app: Flask) -> None:
    """Registered after flask-smorest's Api so these handlers replace its JSON ones."""
    app.register_error_handler(ServiceError, handle_service_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
