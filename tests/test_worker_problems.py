"""What the worker answers itself, before the app sees a request (a request line or headers over
gunicorn's limits, a request that is not HTTP), is an RFC 9457 problem under both worker
classes, the limits the same for both, and neither the answer nor the log repeats the input."""

import json

import pytest

from .support import json_lines, raw_request, stop

WORKER_CLASSES = ["gevent", "gthread"]
# gunicorn.conf.py: limit_request_line, limit_request_fields, limit_request_field_size
LONGEST_LINE, MOST_FIELDS, LONGEST_FIELD = 4094, 100, 8190
MARK = "zq"  # fills what is too long, so that an echo of it would show


def get(target: str, fields: list[str] = ()) -> bytes:
    """A GET whose request line is exactly `GET {target} HTTP/1.1`; Host and Connection are
    two of its header fields."""
    lines = [f"GET {target} HTTP/1.1", "Host: test", "Connection: close", *fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def target_of_line_length(length: int) -> str:
    """A /health target making a request line of exactly `length` bytes."""
    fill = length - len("GET /health?x= HTTP/1.1")
    return "/health?x=" + (MARK * fill)[:fill]


def header_of_length(length: int) -> str:
    """A header field line of exactly `length` bytes with its CRLF."""
    fill = length - len("X-Long: \r\n")
    return "X-Long: " + (MARK * fill)[:fill]


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_the_worker_answers_what_it_refuses_with_a_problem(start_gunicorn, worker_class):
    base, process, log_path = start_gunicorn(WEB_WORKERS="1", WEB_WORKER_CLASS=worker_class)
    port = int(base.rsplit(":", 1)[1])
    problems = []

    def refused(data: bytes, status: int, slug: str) -> None:
        answered, headers, body = raw_request(port, data)
        assert answered == status, body
        assert headers["content-type"] == "application/problem+json"
        assert headers["connection"] == "close"
        problem = json.loads(body)
        assert problem == {
            "type": f"urn:dataservice:problem:{slug}",
            "title": problem["title"],
            "status": status,
            "detail": problem["detail"],
            "request_id": headers["x-request-id"],
        }
        assert len(problem["request_id"]) == 32 and MARK not in body.decode()
        problems.append(problem)

    # The request line: up to the limit it reaches the app (a long cursor is the usual case).
    assert raw_request(port, get(target_of_line_length(LONGEST_LINE)))[0] == 200
    refused(get(target_of_line_length(LONGEST_LINE + 1)), 414, "uri-too-long")
    refused(get("/api/v1/users?cursor=" + MARK * 2500), 414, "uri-too-long")
    # Header fields: each line up to the limit with its CRLF, and so many of them.
    assert raw_request(port, get("/health", [header_of_length(LONGEST_FIELD)]))[0] == 200
    refused(get("/health", [header_of_length(LONGEST_FIELD + 1)]), 431, "header-too-large")
    many = [f"X-{n}: {MARK}" for n in range(MOST_FIELDS - 2)]  # with Host and Connection
    assert raw_request(port, get("/health", many))[0] == 200
    refused(get("/health", [*many, f"X-Last: {MARK}"]), 431, "header-too-large")
    # Not HTTP at all, or not quite.
    refused(f"{MARK} {MARK}\r\n\r\n".encode(), 400, "bad-request")
    refused(f"GET /health HTTP/{MARK}\r\nHost: test\r\n\r\n".encode(), 400, "bad-request")

    output = stop(process, log_path)
    lines = json_lines(output)
    assert len(lines) == len(output.splitlines())
    # One line each, with the request id the client got; the input in neither.
    logged = {
        line.get("request_id"): line
        for line in lines
        if line["message"].startswith("request refused")
    }
    for problem in problems:
        line = logged[problem["request_id"]]
        assert line["status"] == problem["status"] and line["level"] == "WARNING"
    assert len(logged) == len(problems)
    assert MARK not in output
