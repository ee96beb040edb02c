"""The pool under failure: dead connections, an unreachable server, exhaustion, slow queries.
Each answer is a 2xx or a 503 problem with Retry-After, within the pool timeout."""

import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from dataservice.db import Gate

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


# The gate in front of the pool ------------------------------------------------------------------


def wait_until(condition):
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_the_gate_serves_waiters_first_come_first_served():
    gate = Gate(1)
    assert gate.acquire(timeout=0)
    served = []

    def wait(n):
        assert gate.acquire(timeout=5)
        served.append(n)
        gate.release()

    threads = []
    for n in range(4):
        threads.append(threading.Thread(target=wait, args=(n,)))
        threads[-1].start()
        wait_until(lambda n=n: gate.waiting == n + 1)  # in line, in this order
    gate.release()
    for thread in threads:
        thread.join()
    assert served == [0, 1, 2, 3]
    assert gate.waiting == 0


def test_a_released_permit_goes_to_the_waiter_not_to_a_newcomer():
    gate = Gate(1)
    assert gate.acquire(timeout=0)
    waiter = threading.Thread(target=lambda: gate.acquire(timeout=5))
    waiter.start()
    wait_until(lambda: gate.waiting == 1)
    gate.release()
    assert not gate.acquire(timeout=0)  # handed over, even if the waiter has not run yet
    waiter.join()
    gate.release()  # the waiter's
    assert gate.acquire(timeout=0)


def test_a_wait_that_times_out_leaves_the_line_and_loses_no_permit():
    gate = Gate(2)
    assert gate.acquire(timeout=0) and gate.acquire(timeout=0)
    started = time.monotonic()
    assert not gate.acquire(timeout=0.2)
    assert 0.15 < time.monotonic() - started < 2
    assert gate.waiting == 0
    gate.release()
    gate.release()
    assert gate.acquire(timeout=0) and gate.acquire(timeout=0)
    assert not gate.acquire(timeout=0)  # and no more than two


def test_a_waiter_interrupted_under_gevent_loses_no_permit():
    # A gevent.Timeout (or a kill) ends a greenlet's wait by raising inside it: it must leave
    # the line, or a later release would hand the permit to nobody.
    script = textwrap.dedent(
        """
        from gevent import monkey; monkey.patch_all()
        import gevent
        from dataservice.db import Gate

        gate = Gate(1)
        assert gate.acquire(timeout=0)

        def interrupted():
            with gevent.Timeout(0.05):
                gate.acquire(timeout=5)

        waiter = gevent.spawn(interrupted)
        waiter.join()
        assert isinstance(waiter.exception, gevent.Timeout), waiter.exception
        assert gate.waiting == 0  # out of the line: a release will not go to it

        patient = gevent.spawn(gate.acquire, timeout=5)
        gevent.sleep(0.01)
        gate.release()
        assert patient.get(timeout=1) is True
        gate.release()
        assert gate.acquire(timeout=0)
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
    )
    assert result.stdout.strip() == "ok", result.stderr
