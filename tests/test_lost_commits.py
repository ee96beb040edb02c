"""Failures at the edge of a write, on the test server: a COMMIT whose answer is lost (cut by a
proxy that watches for it, tests/commit_cutter.py), a server that refuses writes because it is
read-only (what a demoted primary does), and a database failure inside a batch operation. Each is
a 503 with Retry-After; a retry with the same Idempotency-Key gets the first answer if the first
attempt committed and does the write once if it did not.

The same cut, with the primary killed at that moment, is tested on a Patroni cluster in
tests/test_ha.py."""

import uuid

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from .commit_cutter import AFTER, BEFORE, CommitCutter
from .support import new_user


@pytest.fixture
def cutter(app_database_url):
    port = int(conninfo_to_dict(app_database_url)["port"])
    cutter = CommitCutter(lambda: port)
    yield cutter
    cutter.close()


@pytest.fixture
def cut_app(cutter, make_app, app_database_url):
    """Apps connected through the cutter (and closed before it is)."""
    return lambda **overrides: make_app(DATABASE_URL=cutter.url(app_database_url), **overrides)


def write(client, endpoint: str, key: str, n: int = 1):
    """A create, or a batch of two creates, sent with an Idempotency-Key."""
    headers = {"Idempotency-Key": key}
    if endpoint == "create":
        return client.post("/api/v1/users", json=new_user(n), headers=headers)
    create = {"method": "POST", "path": "/api/v1/users"}
    operations = [{**create, "body": new_user(n + i)} for i in (0, 1)]
    return client.post("/api/v1/batch", json={"operations": operations}, headers=headers)


def stored(db) -> tuple[int, int]:
    users = db.execute("SELECT count(*) FROM users").fetchone()[0]
    events = db.execute("SELECT count(*) FROM events WHERE type = 'user.created'").fetchone()[0]
    return users, events


def assert_unavailable(response):
    assert response.status_code == 503, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["type"] == "urn:dataservice:problem:unavailable"
    assert response.headers["Retry-After"]


@pytest.mark.parametrize("endpoint", ["create", "batch"])
@pytest.mark.parametrize("mode", [BEFORE, AFTER])
def test_a_lost_commit_is_503_and_a_retry_with_its_key_is_safe(cut_app, cutter, db, endpoint, mode):
    client = cut_app().test_client()
    rows = 1 if endpoint == "create" else 2
    key = uuid.uuid4().hex
    cutter.arm(mode)
    first = write(client, endpoint, key)
    assert cutter.cut.is_set(), "the request never sent COMMIT"
    assert_unavailable(first)  # the client cannot know which it was
    committed = mode == AFTER
    assert stored(db) == ((rows, rows) if committed else (0, 0))

    retry = write(client, endpoint, key)
    assert retry.status_code == (201 if endpoint == "create" else 200), retry.get_json()
    # Committed: the first answer, replayed. Not committed: this retry did the write.
    assert (retry.headers.get("Idempotent-Replayed") == "true") is committed
    assert stored(db) == (rows, rows)  # once, with its events
    again = write(client, endpoint, key)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == retry.get_json()


def test_a_retry_outlasts_an_attempt_the_server_has_not_seen_die(cut_app, cutter, db):
    # Only the client's side is cut, as across a network partition: the server keeps the first
    # attempt's transaction open, and with it the key's lock, until its
    # idle_in_transaction_session_timeout ends it. Meanwhile a retry waits for the key (at most
    # a statement timeout) and hears 409 "in progress" with Retry-After; then it writes, once.
    client = cut_app(
        DATABASE_STATEMENT_TIMEOUT_MS=500,
        DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS=1500,
    ).test_client()
    key = uuid.uuid4().hex
    cutter.arm(BEFORE, half_open=True)
    assert_unavailable(write(client, "create", key))
    answers = []
    for _ in range(10):
        answers.append(write(client, "create", key))
        if answers[-1].status_code != 409:
            break
    *waiting, final = answers
    assert final.status_code == 201 and "Idempotent-Replayed" not in final.headers
    for answer in waiting:
        assert answer.get_json()["type"] == "urn:dataservice:problem:idempotency-key-in-progress"
        assert answer.headers["Retry-After"] == "1"
    assert len(waiting) <= 4  # the server ended the abandoned transaction after 1.5 s idle
    assert stored(db) == (1, 1)


def db_errors(client, kind: str) -> float:
    for line in client.get("/metrics").get_data(as_text=True).splitlines():
        if line.startswith(f'dataservice_db_errors_total{{kind="{kind}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def make_read_only(app) -> None:
    """Makes the app's pooled connections refuse writes as a standby does (SQLSTATE 25006): what
    a pooled connection meets when, behind HAProxy or PgBouncer, it reaches a demoted primary."""
    pool = app.extensions["db"].open()
    held = [pool.getconn() for _ in range(pool.max_size)]
    for conn in held:
        conn.execute("SET default_transaction_read_only = on")
        pool.putconn(conn)


@pytest.mark.parametrize("endpoint", ["create", "batch"])
def test_a_read_only_server_is_503_and_its_connection_is_replaced(make_app, db, endpoint):
    # 25006 is an InternalError in psycopg, not an OperationalError. With one pooled connection,
    # the next write succeeds only if the read-only one was thrown away and replaced.
    app = make_app(DATABASE_POOL_MIN_SIZE=1, DATABASE_POOL_MAX_SIZE=1)
    client = app.test_client()
    make_read_only(app)
    before = db_errors(client, "read_only")
    assert_unavailable(write(client, endpoint, uuid.uuid4().hex))
    assert db_errors(client, "read_only") == before + 1
    assert write(client, endpoint, uuid.uuid4().hex).status_code in (200, 201)
    assert stored(db) == ((1, 1) if endpoint == "create" else (2, 2))


def test_a_database_failure_inside_a_batch_operation_is_503(make_app, db):
    # An operation other than a run of creates is dispatched to its own endpoint inside the
    # batch's transaction; a statement timeout there was a 500.
    client = make_app(DATABASE_STATEMENT_TIMEOUT_MS=300).test_client()
    user = client.post("/api/v1/users", json=new_user(1)).get_json()
    patch = {"method": "PATCH", "path": f"/api/v1/users/{user['id']}", "body": {"username": "new"}}
    with psycopg.connect(db.info.dsn) as locker:
        locker.execute("SELECT 1 FROM users WHERE id = %s FOR UPDATE", (user["id"],))
        response = client.post("/api/v1/batch", json={"operations": [patch]})
    assert_unavailable(response)
    assert response.get_json()["index"] == 0
