"""Faults against a PostgreSQL cluster of the test's own: a restart under load, exhaustion, a
connection killed inside a write. Every answer is a 2xx or a 503 problem; nothing acknowledged
is lost; nothing half-written is visible."""

import json
import os
import threading
import time
import urllib.error
import urllib.request
import uuid

import psycopg
import pytest

from dataservice import db as db_module
from dataservice.app import close, create_app
from dataservice.migrate import apply_migrations
from dataservice.store import users as users_store

from .private_cluster import PrivateCluster
from .support import FAST_HASHING, AuthorizedClient, new_user, register_test_client

POOL_TIMEOUT = 2.0
OUTAGE_SECONDS = float(os.environ.get("FAULT_OUTAGE_SECONDS", "2"))


@pytest.fixture(scope="module")
def cluster():
    cluster = PrivateCluster()
    yield cluster
    cluster.destroy()


@pytest.fixture
def fault_url(cluster):
    name = "faults_" + uuid.uuid4().hex[:8]
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = cluster.url_for(name)
    apply_migrations(url)
    with psycopg.connect(url, autocommit=True) as conn:
        register_test_client(conn)
    yield url
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fault_app(fault_url):
    app = create_app(
        {
            "DATABASE_URL": fault_url,
            "DATABASE_POOL_MIN_SIZE": 4,
            "DATABASE_POOL_MAX_SIZE": 4,
            "DATABASE_POOL_TIMEOUT": POOL_TIMEOUT,
            **FAST_HASHING,
        }
    )
    app.test_client_class = AuthorizedClient
    yield app
    close(app)


def call(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, content_type, payload = (
                response.status,
                response.headers["Content-Type"],
                json.load(response),
            )
    except urllib.error.HTTPError as error:
        status, content_type, payload = error.code, error.headers["Content-Type"], json.load(error)
    return status, content_type, payload, started, time.monotonic()


def test_restart_under_load_loses_nothing_acknowledged(cluster, fault_app, fault_url, serve):
    base = serve(fault_app)
    stop = threading.Event()
    answers = []
    acknowledged = []

    def client(worker):
        n = 0
        while not stop.is_set():
            n += 1
            answer = call("POST", base + "/api/v1/users", new_user(10_000 * worker + n))
            answers.append(answer)
            if answer[0] == 201:
                acknowledged.append(answer[2]["id"])
                answers.append(call("GET", f"{base}/api/v1/users/{answer[2]['id']}"))

    threads = [threading.Thread(target=client, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        cluster.stop("fast")
        time.sleep(OUTAGE_SECONDS)
        cluster.start()
        back = time.monotonic()
        time.sleep(6.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join()

    statuses = {status for status, *_ in answers}
    assert statuses <= {200, 201, 503}, statuses
    assert 503 in statuses  # the outage was seen
    for status, content_type, payload, started, ended in answers:
        assert ended - started < POOL_TIMEOUT + 1.5, (status, ended - started)
        if status == 503:
            assert content_type == "application/problem+json"
            # busy: shed after its queue budget while the connections were being replaced
            assert payload["type"] in (
                "urn:dataservice:problem:unavailable",
                "urn:dataservice:problem:busy",
            )
    resumed = min(
        ended
        for status, _, _, started, ended in answers
        if status in (200, 201) and started >= back
    )
    print(f"service resumed {resumed - back:.2f} s after the database was back")
    assert resumed - back < 5.0
    late = [status for status, _, _, started, _ in answers if started > back + 5.0]
    assert late and set(late) <= {200, 201}  # fully normal again
    with psycopg.connect(fault_url) as conn:
        stored = {row[0] for row in conn.execute("SELECT id FROM users").fetchall()}
    assert set(acknowledged) <= stored


def test_service_answers_within_seconds_of_the_end_of_a_long_outage(cluster, fault_app):
    # The pool retries a lost connection with a growing backoff (1 s, 2 s, 4 s ...): without a
    # bound on it, a 20-s outage left the next attempt due about 10 s after the database was back.
    client = fault_app.test_client()
    assert client.get("/api/v1/users?limit=1").status_code == 200
    cluster.stop("fast")
    try:
        outage_ends = time.monotonic() + 20.0
        while time.monotonic() < outage_ends:
            assert client.get("/api/v1/users?limit=1").status_code == 503
            time.sleep(0.2)
    finally:
        cluster.start()
    back = time.monotonic()
    while client.get("/api/v1/users?limit=1").status_code != 200:
        assert time.monotonic() - back < 4.0, "still 503 four seconds after the database was back"
        time.sleep(0.1)


def test_all_connections_busy_gives_503_within_the_pool_timeout(fault_app):
    database = fault_app.extensions["db"]
    release = threading.Event()
    holding = threading.Barrier(5)

    def hold():
        with database.connection():
            holding.wait()
            release.wait(10)

    holders = [threading.Thread(target=hold) for _ in range(4)]
    for holder in holders:
        holder.start()
    try:
        holding.wait(10)
        started = time.monotonic()
        response = fault_app.test_client().get("/api/v1/users/1")
        elapsed = time.monotonic() - started
    finally:
        release.set()
        for holder in holders:
            holder.join()
    assert response.status_code == 503 and response.headers["Retry-After"]
    # Shed once it has waited its budget for a connection, well within the pool timeout.
    assert response.get_json()["type"] == "urn:dataservice:problem:busy"
    budget = fault_app.config["DATABASE_QUEUE_BUDGET_MS"] / 1000
    assert budget < POOL_TIMEOUT and budget - 0.1 < elapsed < budget + 1.0


def test_connection_killed_inside_a_write_leaves_nothing_behind(fault_app, fault_url):
    def two_writes():
        with db_module.write() as conn:
            users_store.create_user(
                conn,
                email="half@example.com",
                username="half",
                password_hash=new_user()["hashed_password"],
                actor=None,
            )
            conn.execute("SELECT pg_sleep(10)")
            users_store.create_user(
                conn,
                email="other@example.com",
                username="other",
                password_hash=new_user()["hashed_password"],
                actor=None,
            )
        return {"ok": True}

    fault_app.add_url_rule("/test-two-writes", "two_writes", two_writes, methods=["POST"])
    result = {}
    writer = threading.Thread(
        target=lambda: result.update(response=fault_app.test_client().post("/test-two-writes"))
    )
    writer.start()
    with psycopg.connect(fault_url, autocommit=True) as admin:
        for _ in range(100):
            sleeping = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%%' "
                "AND datname = current_database()"
            ).fetchall()
            if sleeping:
                break
            time.sleep(0.05)
        assert sleeping, "the write never reached its pause"
        admin.execute("SELECT pg_terminate_backend(%s)", (sleeping[0][0],))
        writer.join(10)
        assert result["response"].status_code == 503
        assert admin.execute("SELECT count(*) FROM users").fetchone()[0] == 0
        assert admin.execute("SELECT count(*) FROM events").fetchone()[0] == 0
    assert fault_app.test_client().get("/api/v1/users/1").status_code == 404  # healthy again
