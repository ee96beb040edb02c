"""The pool under failure: dead connections, an unreachable server, exhaustion, slow queries.
Each answer is a 2xx or a 503 problem with Retry-After, within the pool timeout."""

import socket
import threading
import time

import pytest

from .support import new_user, url_for_database


def assert_503(response):
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.headers["Retry-After"] == "1"
    assert response.get_json()["type"] == "urn:dataservice:problem:unavailable"


def test_next_request_succeeds_after_every_pool_connection_is_terminated(make_app, db):
    app = make_app(DATABASE_POOL_MIN_SIZE=3, DATABASE_POOL_MAX_SIZE=3)
    client = app.test_client()
    user = client.post("/api/v1/users", json=new_user()).get_json()
    app.extensions["db"].pool.wait(timeout=5)  # all three connections open
    killed = db.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = 'dataservice' AND datname = current_database()"
    ).fetchone()[0]
    assert killed == 3
    time.sleep(0.2)  # let the goodbyes reach the client sockets
    for _ in range(5):  # every dead connection would be handed out once without the check
        response = client.get(f"/api/v1/users/{user['id']}")
        assert response.status_code == 200


def test_unreachable_database_is_503_within_the_pool_timeout(make_app):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = make_app(DATABASE_URL=url_for_database("nowhere", port=port), DATABASE_POOL_TIMEOUT=1.0)
    client = app.test_client()
    started = time.monotonic()
    assert_503(client.get("/api/v1/users/1"))
    assert_503(client.post("/api/v1/users", json=new_user()))
    assert_503(client.get("/ready"))
    assert time.monotonic() - started < 3 * 1.0 + 1.5
    assert client.get("/health").status_code == 200  # liveness touches no database


def test_exhausted_pool_is_503_within_the_pool_timeout(make_app):
    app = make_app(DATABASE_POOL_MAX_SIZE=1, DATABASE_POOL_TIMEOUT=0.5)
    database = app.extensions["db"]
    held = threading.Event()
    release = threading.Event()

    def hold_the_only_connection():
        with database.connection():
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_only_connection)
    holder.start()
    try:
        assert held.wait(5)
        started = time.monotonic()
        assert_503(app.test_client().get("/api/v1/users/1"))
        assert 0.4 < time.monotonic() - started < 2.0
    finally:
        release.set()
        holder.join()
    assert app.test_client().get("/api/v1/users/1").status_code == 404  # back to normal


def test_statement_timeout_is_503_and_the_connection_stays_usable(make_app):
    app = make_app(DATABASE_STATEMENT_TIMEOUT_MS=200, DATABASE_POOL_MAX_SIZE=1)
    database = app.extensions["db"]

    def slow():
        with database.connection() as conn:
            conn.execute("SELECT pg_sleep(5)")

    app.add_url_rule("/test-slow", "slow", slow)
    client = app.test_client()
    started = time.monotonic()
    assert_503(client.get("/test-slow"))
    assert time.monotonic() - started < 2.0
    assert client.get("/api/v1/users/1").status_code == 404


@pytest.mark.parametrize("path", ["/api/v1/users/1", "/ready"])
def test_database_errors_are_logged_without_the_password(make_app, caplog, path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = make_app(
        DATABASE_URL=url_for_database("nowhere", port=port, password="s3cret-db-pw"),
        DATABASE_POOL_TIMEOUT=0.5,
    )
    assert_503(app.test_client().get(path))
    assert "s3cret-db-pw" not in caplog.text
