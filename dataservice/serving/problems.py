"""What a worker answers itself, before the app sees a request (a request line or headers over
gunicorn's limits, a request that is not HTTP) or when an exception escapes the app: an RFC 9457
problem with the body the app's problems have (errors.problem_body), a request id of its own in
the body and in X-Request-ID, and one log line with that id. Neither repeats the offending input.
"""

import os
from typing import NamedTuple

from ..errors import PROBLEM_CONTENT_TYPE, problem_body


class Limits(NamedTuple):
    """gunicorn's limits on a request's head, as its parser applies them. The defaults are
    gunicorn's; the workers take theirs from the configuration as they start."""

    line: int = 4094  # the request line, less its CRLF
    fields: int = 100  # header fields
    field_size: int = 8190  # one header line, with its CRLF

    @classmethod
    def of(cls, cfg) -> "Limits":
        """The limits in gunicorn's configuration; a value it reads as "no limit" is its
        largest here."""
        line = cfg.limit_request_line if 0 < cfg.limit_request_line <= 8190 else 8190
        fields = cfg.limit_request_fields if 0 < cfg.limit_request_fields <= 32768 else 32768
        field_size = cfg.limit_request_field_size if cfg.limit_request_field_size > 0 else 8190
        return cls(line, fields, field_size)


# status -> (problem slug, title, detail); the detail names the limit, never the input.
_PROBLEMS = {
    400: ("bad-request", "Bad Request", "the request line or a header is not valid HTTP/1.1"),
    414: ("uri-too-long", "URI Too Long", "the request line is longer than {line} bytes"),
    417: ("expectation-failed", "Expectation Failed", "the only Expect supported is 100-continue"),
    431: (
        "header-too-large",
        "Request Header Fields Too Large",
        "a header line is longer than {field_size} bytes, or there are more than {fields} headers",
    ),
    500: ("internal-error", "Internal Server Error", "the service failed; quote the request_id"),
    501: (
        "not-implemented",
        "Not Implemented",
        "the request's Transfer-Encoding is not supported (send chunked or Content-Length)",
    ),
}


class Refused(ValueError):
    """A request over a limit, refused with `status` (the gevent worker's handler raises it)."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


def new_request_id() -> str:
    return os.urandom(16).hex()  # the shape of the app's own (observe.py)


def answer(
    status: int, request_id: str, limits: Limits
) -> tuple[str, list[tuple[str, str]], bytes]:
    """The status line's text, the headers and the body of a worker's own problem answer."""
    slug, title, detail = _PROBLEMS[status]
    body = problem_body(
        status, title, detail.format_map(limits._asdict()), slug=slug, request_id=request_id
    )
    headers = [
        ("Content-Type", PROBLEM_CONTENT_TYPE),
        ("Content-Length", str(len(body))),
        ("X-Request-ID", request_id),
        ("Connection", "close"),
    ]
    return f"{status} {title}", headers, body


def response(status: int, request_id: str, limits: Limits) -> bytes:
    """The whole HTTP response, for a worker that writes to the socket itself."""
    status_text, headers, body = answer(status, request_id, limits)
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return f"HTTP/1.1 {status_text}\r\n{head}\r\n".encode("latin-1") + body


def log_answered(log, status: int, request_id: str, address, error=None) -> None:
    """One line on gunicorn's log for an error a worker answered itself, with the request id
    it gave the client; a 500 with its traceback. Not the request line or a header: they may
    hold anything."""
    fields = {
        "status": status,
        "request_id": request_id,
        "remote_addr": address[0] if isinstance(address, tuple) else None,
        "error": type(error).__name__ if error is not None else None,
    }
    if status >= 500:
        log.error("error handling request", exc_info=error, extra=fields)
    else:
        log.warning("request refused: %s", _PROBLEMS[status][0], extra=fields)
