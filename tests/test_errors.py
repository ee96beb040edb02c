"""Every error is an RFC 9457 problem: the right status, the same shape, never a stack trace."""

import json
import logging

import pytest

from dataservice.logs import JsonFormatter

from .support import new_user

PROBLEM_KEYS = {"type", "title", "status", "detail", "request_id"}


def assert_problem(response, status):
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert set(problem) >= PROBLEM_KEYS
    assert problem["status"] == status
    assert (
        problem["type"].startswith("urn:dataservice:problem:") or problem["type"] == "about:blank"
    )
    assert problem["request_id"] == response.headers["X-Request-ID"]
    return problem


def post_raw(client, data, content_type="application/json"):
    return client.post("/api/v1/users", data=data, content_type=content_type)


@pytest.mark.parametrize(
    "data",
    [
        b"{",
        b'{"email": }',
        b"{'email': 'single quotes'}",
        b'{"a": 1} trailing',
        b'{"email": NaN}',
        b'{"email": Infinity}',
        b"\xff\xfe{}",  # not UTF-8
        b'{"email": "\xc3\x28"}',  # invalid UTF-8 inside a string
        b'{"email": "a@b.io", "email": "c@d.io"}',  # duplicate key
        b'{"username": "\\ud800abc"}',  # lone surrogate escape
        b'{"\\udfff": 1}',  # lone surrogate in a key
        b"[" * 100_000 + b"]" * 100_000,  # nesting deeper than any parser should follow
        b"",
        b"   ",
    ],
)
def test_malformed_json_is_400(client, db, data):
    problem = assert_problem(post_raw(client, data), 400)
    assert problem["type"] == "urn:dataservice:problem:bad-request"
    assert db.execute("SELECT count(*) FROM users").fetchone()[0] == 0


def test_surrogate_pair_escape_is_fine(client):
    # A correct pair encodes one character outside the BMP: not valid in a username, but valid JSON.
    response = post_raw(
        client, b'{"email": "a@b.io", "username": "\\ud83d\\ude00", "password": "long enough"}'
    )
    assert_problem(response, 422)


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "",
    ],
)
def test_non_json_content_type_is_415(client, content_type):
    response = client.post(
        "/api/v1/users",
        data=b'{"email": "a@b.io"}',
        headers={"Content-Type": content_type} if content_type else {},
    )
    assert_problem(response, 415)


def test_json_with_charset_parameter_is_accepted(client):
    response = post_raw(client, json.dumps(new_user()), "application/json; charset=utf-8")
    assert response.status_code == 201


def test_body_over_the_limit_is_413(make_app):
    client = make_app(MAX_BODY_BYTES=1000).test_client()
    assert_problem(post_raw(client, b'{"email": "' + b"a" * 2000 + b'"}'), 413)
    # and just under the limit is parsed as usual (then fails validation)
    assert_problem(post_raw(client, b'{"email": "' + b"a" * 900 + b'"}'), 422)


def test_default_body_limit_is_one_mebibyte(client):
    assert_problem(post_raw(client, b'{"email": "' + b"a" * (1024 * 1024) + b'"}'), 413)


def test_validation_problem_lists_fields(client):
    problem = assert_problem(client.post("/api/v1/users", json={"zzz": 1}), 422)
    assert problem["type"] == "urn:dataservice:problem:validation-error"
    assert set(problem["errors"]) == {"zzz", "email", "username"}


def test_unknown_route_and_method_are_problems(client):
    assert_problem(client.get("/api/v1/nothing-here"), 404)
    response = client.delete("/api/v1/users")
    problem = assert_problem(response, 405)
    assert problem["type"] == "urn:dataservice:problem:method-not-allowed"
    assert "POST" in response.headers["Allow"]


def test_request_id_is_echoed_or_generated(client):
    response = client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
    generated = client.get("/health", headers={"X-Request-ID": "bad id\twith junk"})
    assert generated.headers["X-Request-ID"] not in ("", "bad id\twith junk")


def test_unexpected_error_is_500_problem_with_traceback_only_in_log(app, caplog):
    def explode():
        raise RuntimeError("internal detail that must stay private")

    app.add_url_rule("/test-explode", "explode", explode)
    with caplog.at_level(logging.ERROR, logger="dataservice"):
        response = app.test_client().get("/test-explode", headers={"X-Request-ID": "req-500"})
    problem = assert_problem(response, 500)
    assert problem["request_id"] == "req-500"
    assert "internal detail" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)
    assert "internal detail that must stay private" in caplog.text
    [record] = [r for r in caplog.records if r.exc_info]
    line = json.loads(JsonFormatter().format(record))  # as it reaches stdout
    assert line["request_id"] == "req-500"
    assert line["level"] == "ERROR" and line["error"] == "RuntimeError"
    assert "internal detail that must stay private" in line["traceback"]
    assert line["message"] == "unhandled error in GET /test-explode"
