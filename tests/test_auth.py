"""Who may do what: bearer tokens, scopes, revocation, and the CLI that manages clients."""

import time

import pytest
from click.testing import CliRunner

from dataservice import auth
from dataservice.cli import main

from .support import new_user


def make_client(db, name, *scopes) -> str:
    token = auth.new_token()
    db.execute(
        "INSERT INTO api_clients (name, token_hash, scopes) VALUES (%s, %s, %s)",
        (name, auth.token_hash(token), list(scopes)),
    )
    return token


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def assert_401(response):
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.get_json()["type"] == "urn:dataservice:problem:unauthenticated"


@pytest.mark.parametrize(
    "header",
    [
        None,  # missing
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Token dsk_" + "a" * 43,
        "Bearer not-a-token",
        "Bearer dsk_" + "a" * 42,  # one character short
        "Bearer dsk_" + "a" * 43,  # well-formed but unknown
    ],
)
def test_missing_malformed_or_unknown_token_is_401(app, header):
    client = app.test_client()
    del client.environ_base["HTTP_AUTHORIZATION"]
    headers = {} if header is None else {"Authorization": header}
    assert_401(client.get("/api/v1/users/1", headers=headers))
    assert_401(client.post("/api/v1/users", json=new_user(), headers=headers))


def test_revoked_token_is_401_once_the_cache_bound_has_passed(make_app, db):
    app = make_app(AUTH_CACHE_SECONDS=0.5)
    client = app.test_client()
    token = make_client(db, "soon-revoked", "users:read")
    assert client.get("/api/v1/users/1", headers=bearer(token)).status_code == 404  # works at once
    db.execute("UPDATE api_clients SET revoked_at = now() WHERE name = 'soon-revoked'")
    time.sleep(0.6)
    assert_401(client.get("/api/v1/users/1", headers=bearer(token)))


def test_without_cache_revocation_is_immediate(make_app, db):
    client = make_app(AUTH_CACHE_SECONDS=0).test_client()
    token = make_client(db, "revoked-now", "users:read")
    assert client.get("/api/v1/users/1", headers=bearer(token)).status_code == 404
    db.execute("UPDATE api_clients SET revoked_at = now() WHERE name = 'revoked-now'")
    assert_401(client.get("/api/v1/users/1", headers=bearer(token)))


# Each endpoint with the one scope it needs.
ENDPOINTS = [
    ("GET", "/api/v1/users", None, "users:read"),
    ("GET", "/api/v1/users/{id}", None, "users:read"),
    ("GET", "/api/v1/users/by-username/user1", None, "users:read"),
    ("GET", "/api/v1/users/by-email/user1@example.com", None, "users:read"),
    ("POST", "/api/v1/users", new_user(2), "users:write"),
    ("PATCH", "/api/v1/users/{id}", {"username": "renamed"}, "users:write"),
    ("DELETE", "/api/v1/users/{id}", None, "users:write"),
    ("PUT", "/api/v1/users/{id}/password", {"password": "long enough"}, "users:credentials"),
    (
        "POST",
        "/api/v1/users/verify-credentials",
        {"login": "user1", "password": "x" * 8},
        "users:credentials",
    ),
    ("GET", "/api/v1/events", None, "events:read"),
]


@pytest.mark.parametrize("method, path, body, scope", ENDPOINTS)
def test_every_scope_boundary(client, db, method, path, body, scope):
    user = client.post("/api/v1/users", json=new_user(1)).get_json()
    path = path.format(id=user["id"])
    others = [s for s in auth.scopes(client.application) if s != scope]
    without = make_client(db, "without", *others)
    response = client.open(path, method=method, json=body, headers=bearer(without))
    assert response.status_code == 403
    assert response.get_json()["missing_scopes"] == [scope]
    assert response.get_json()["type"] == "urn:dataservice:problem:insufficient-scope"
    only = make_client(db, "only", scope)
    response = client.open(path, method=method, json=body, headers=bearer(only))
    assert response.status_code < 400 or (response.status_code == 401 and "verify" in path)


def test_batch_needs_the_scopes_of_each_operation(client, db):
    reader = make_client(db, "reader", "users:read")
    writer = make_client(db, "writer", "users:write")
    operations = [
        {"method": "POST", "path": "/api/v1/users", "body": new_user(n)} for n in range(3)
    ]
    refused = client.post("/api/v1/batch", json={"operations": operations}, headers=bearer(reader))
    assert refused.status_code == 403 and refused.get_json()["index"] == 0
    assert db.execute("SELECT count(*) FROM users").fetchone()[0] == 0
    password_op = {
        "method": "PUT",
        "path": "/api/v1/users/1/password",
        "body": {"password": "long enough"},
    }
    mixed = client.post(
        "/api/v1/batch", json={"operations": [*operations, password_op]}, headers=bearer(writer)
    )
    assert mixed.status_code == 403 and mixed.get_json()["index"] == 3
    assert db.execute("SELECT count(*) FROM users").fetchone()[0] == 0
    ok = client.post("/api/v1/batch", json={"operations": operations}, headers=bearer(writer))
    assert ok.status_code == 200


def test_public_endpoints_need_no_token(app):
    client = app.test_client()
    del client.environ_base["HTTP_AUTHORIZATION"]
    for path in ("/health", "/ready", "/openapi.json", "/docs", "/metrics"):
        assert client.get(path).status_code == 200, path


def test_metrics_can_require_a_token(make_app):
    client = make_app(METRICS_REQUIRE_TOKEN=True).test_client()
    assert client.get("/metrics").status_code == 200  # the test client sends a token
    del client.environ_base["HTTP_AUTHORIZATION"]
    assert_401(client.get("/metrics"))


def test_events_record_the_client_that_caused_them(client, db):
    writer = make_client(db, "billing-service", "users:write")
    client.post("/api/v1/users", json=new_user(), headers=bearer(writer))
    assert db.execute("SELECT actor FROM events").fetchone()[0] == "billing-service"


def test_idempotency_keys_belong_to_one_client(client, db):
    first = make_client(db, "first", "users:write")
    second = make_client(db, "second", "users:write")
    a = client.post(
        "/api/v1/users", json=new_user(1), headers={**bearer(first), "Idempotency-Key": "k"}
    )
    b = client.post(
        "/api/v1/users", json=new_user(2), headers={**bearer(second), "Idempotency-Key": "k"}
    )
    assert a.status_code == b.status_code == 201  # the same key from another client is its own
    assert db.execute("SELECT count(*) FROM users").fetchone()[0] == 2


def run(database_url, *args):
    return CliRunner().invoke(main, list(args), env={"DATABASE_URL": database_url})


def test_cli_create_list_revoke(app_database_url, client):
    created = run(
        app_database_url, "clients", "create", "crm", "--scopes", "users:read,users:write"
    )
    assert created.exit_code == 0, created.output
    token = created.output.strip().splitlines()[-1]
    assert token.startswith("dsk_") and len(token) == 47 and " " not in token
    assert client.get("/api/v1/users/1", headers=bearer(token)).status_code == 404
    listed = run(app_database_url, "clients", "list")
    assert "crm\tusers:read,users:write" in listed.output and token not in listed.output
    assert run(app_database_url, "clients", "revoke", "crm").exit_code == 0
    assert "revoked" in run(app_database_url, "clients", "list").output
    assert run(app_database_url, "clients", "revoke", "crm").exit_code != 0  # already revoked


@pytest.mark.parametrize(
    "args",
    [
        ["clients", "create", "x", "--scopes", "users:admin"],
        ["clients", "create", "x", "--scopes", ""],
        ["clients", "create", "bad name", "--scopes", "users:read"],
        ["clients", "create", "tests", "--scopes", "users:read"],  # taken
        ["clients", "revoke", "nobody"],
    ],
)
def test_cli_refuses_bad_input(app_database_url, args):
    result = run(app_database_url, *args)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
