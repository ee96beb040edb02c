"""What a request leaves for operators: samples in /metrics and one JSON log line. (Across
gunicorn's worker processes: tests/test_deploy.py.)"""

import json
import logging
import os
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.parser import text_string_to_metric_families
from psycopg import errors as pg_errors
from psycopg_pool import PoolTimeout, TooManyRequests

from dataservice import metrics
from dataservice.db import error_kind

from .support import TOKEN, new_user

USER_ROUTE = "/api/v1/users/<bigint:user_id>"


def requests_total(method, route, status):
    labels = {"method": method, "route": route, "status": str(status)}
    return REGISTRY.get_sample_value("dataservice_http_requests_total", labels) or 0.0


def scrape(client) -> dict:
    """/metrics parsed: {(sample name, frozenset of labels): value}."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def test_requests_are_counted_by_route_template_not_by_path(client):
    before = {
        key: requests_total(*key)
        for key in [
            ("GET", USER_ROUTE, 404),
            ("POST", "/api/v1/users", 201),
            ("GET", "unmatched", 404),
            ("DELETE", "unmatched", 405),
        ]
    }
    for user_id in (101, 102, 103):
        assert client.get(f"/api/v1/users/{user_id}").status_code == 404
    assert client.post("/api/v1/users", json=new_user()).status_code == 201
    assert client.get("/api/v1/no-such-thing/7").status_code == 404
    assert client.delete("/api/v1/users").status_code == 405
    after = {key: requests_total(*key) for key in before}
    assert {key: after[key] - before[key] for key in before} == {
        ("GET", USER_ROUTE, 404): 3,
        ("POST", "/api/v1/users", 201): 1,
        ("GET", "unmatched", 404): 1,
        ("DELETE", "unmatched", 405): 1,
    }
    samples = scrape(client)
    routes = {dict(labels).get("route") for _, labels in samples}
    assert USER_ROUTE in routes
    assert not any(route and "101" in route for route in routes)  # no path as a label


def test_latency_histogram_per_route(client):
    def count():
        labels = {"method": "GET", "route": "/health"}
        name = "dataservice_http_request_duration_seconds_count"
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = count()
    for _ in range(3):
        client.get("/health")
    assert count() - before == 3
    samples = scrape(client)
    bucket = (
        "dataservice_http_request_duration_seconds_bucket",
        frozenset({"method": "GET", "route": "/health", "le": "+Inf"}.items()),
    )
    assert samples[bucket] >= 3


def test_a_batch_of_requests_counts_as_observing_each_one():
    # record_requests updates the histogram's sum and buckets itself, once per batch: it must
    # give what Counter.inc() and Histogram.observe() per request would have.
    fresh = CollectorRegistry()
    counter = Counter("x_requests", "", ["method", "route", "status"], registry=fresh)
    histogram = Histogram(
        "x_seconds", "", ["method", "route"], buckets=metrics.LATENCY._upper_bounds, registry=fresh
    )
    route = f"/test/batch-{time.monotonic_ns()}"
    bounds = metrics.LATENCY._upper_bounds[:-1]
    samples = [("GET", route, 200, seconds) for seconds in (0.0001, *bounds, 0.0049, 99.0)]
    samples += [("GET", route, 404, 0.003), ("POST", route, 201, 0.02), ("BREW", route, 200, 1.5)]

    def live() -> dict:
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in REGISTRY.collect()
            if family.name.startswith("dataservice_http_request")
            for sample in family.samples
            if sample.labels.get("route") == route and not sample.name.endswith("_created")
        }

    metrics.record_requests(samples[:5])
    metrics.record_requests(samples[5:])
    for method, _, status, seconds in samples:
        method = method if method != "BREW" else "OTHER"
        counter.labels(method, route, str(status)).inc()
        histogram.labels(method, route).observe(seconds)
    expected = {
        (
            sample.name.replace("x_", "dataservice_http_request_duration_")
            if sample.name.startswith("x_seconds")
            else "dataservice_http_requests_total",
            tuple(sorted(sample.labels.items())),
        ): sample.value
        for family in fresh.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }
    assert live() == pytest.approx(expected)  # sums may differ in the last bit
    assert (
        expected[
            (
                "dataservice_http_requests_total",
                (("method", "GET"), ("route", route), ("status", "200")),
            )
        ]
        == 16
    )


def test_pool_gauges_follow_the_pool(make_app):
    app = make_app(DATABASE_POOL_MIN_SIZE=2, DATABASE_POOL_MAX_SIZE=2)
    client = app.test_client()
    client.get("/api/v1/users/1")
    app.extensions["db"].pool.wait(timeout=5)  # both connections open
    samples = scrape(client)
    assert samples[("dataservice_db_pool_connections", frozenset())] == 2
    assert samples[("dataservice_db_pool_idle_connections", frozenset())] == 2
    assert samples[("dataservice_db_pool_waiting_requests", frozenset())] == 0
    assert samples[("dataservice_db_pool_max_connections", frozenset())] == 2


def test_pool_gauges_show_requests_waiting_for_a_connection(make_app):
    app = make_app(DATABASE_POOL_MIN_SIZE=1, DATABASE_POOL_MAX_SIZE=1, DATABASE_POOL_TIMEOUT=5.0)
    database = app.extensions["db"]
    held, release = threading.Event(), threading.Event()

    def hold():
        with database.connection():
            held.set()
            release.wait(10)

    threads = [threading.Thread(target=hold)]
    threads[0].start()
    try:
        assert held.wait(5)
        waiter = threading.Thread(target=lambda: app.test_client().get("/api/v1/users/1"))
        threads.append(waiter)
        waiter.start()
        deadline = time.monotonic() + 5
        while database.stats()["requests_waiting"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        samples = scrape(app.test_client())  # /metrics needs no connection
        assert samples[("dataservice_db_pool_waiting_requests", frozenset())] == 1
        assert samples[("dataservice_db_pool_idle_connections", frozenset())] == 0
    finally:
        release.set()
        for thread in threads:
            thread.join()


def db_errors(kind):
    return REGISTRY.get_sample_value("dataservice_db_errors_total", {"kind": kind}) or 0.0


def test_statement_timeout_and_pool_timeout_are_counted_by_kind(make_app):
    app = make_app(DATABASE_STATEMENT_TIMEOUT_MS=100, DATABASE_POOL_MAX_SIZE=1)
    database = app.extensions["db"]

    def slow():
        with database.connection() as conn:
            conn.execute("SELECT pg_sleep(5)")

    app.add_url_rule("/test-slow", "slow", slow)
    client = app.test_client()
    before = db_errors("statement_timeout")
    assert client.get("/test-slow").status_code == 503
    assert db_errors("statement_timeout") - before == 1

    app = make_app(DATABASE_POOL_MAX_SIZE=1, DATABASE_POOL_TIMEOUT=0.3)
    held, release = threading.Event(), threading.Event()

    def hold():
        with app.extensions["db"].connection():
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(5)
        before = db_errors("pool_timeout")
        assert app.test_client().get("/api/v1/users/1").status_code == 503
        assert db_errors("pool_timeout") - before == 1
    finally:
        release.set()
        holder.join()


@pytest.mark.parametrize(
    "error, kind",
    [
        (PoolTimeout("no connection"), "pool_timeout"),
        (TooManyRequests("queue full"), "pool_queue_full"),
        (pg_errors.QueryCanceled("canceling statement"), "statement_timeout"),
        (pg_errors.LockNotAvailable("lock"), "lock_timeout"),
        (pg_errors.DeadlockDetected("deadlock"), "transaction_conflict"),
        (pg_errors.SerializationFailure("serialize"), "transaction_conflict"),
        (pg_errors.AdminShutdown("terminating connection"), "server_shutdown"),
        (pg_errors.ConnectionFailure("lost"), "connection_lost"),
        (psycopg.OperationalError("server closed the connection"), "connection_lost"),
        (pg_errors.DiskFull("disk full"), "other"),
    ],
)
def test_error_kinds(error, kind):
    assert error_kind(error) == kind


def access_lines(text: str) -> list[dict]:
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [line for line in lines if line["logger"] == "dataservice.access"]


def test_one_json_line_per_request(client, capsys):
    capsys.readouterr()
    response = client.get("/api/v1/users/42", headers={"X-Request-ID": "trace-42"})
    client.get("/health")
    first, second = access_lines(capsys.readouterr().out)
    assert set(first) == {
        "time",
        "level",
        "logger",
        "message",
        "request_id",
        "method",
        "operation",
        "route",
        "path",
        "status",
        "duration_ms",
        "client",
    }
    assert first["request_id"] == "trace-42" == response.headers["X-Request-ID"]
    assert (first["operation"], second["operation"]) == ("get_user", "health")
    assert (first["method"], first["route"], first["path"], first["status"]) == (
        "GET",
        USER_ROUTE,
        "/api/v1/users/42",
        404,
    )
    assert isinstance(first["duration_ms"], float) and first["duration_ms"] > 0
    assert first["client"] == "tests"  # the client's name, never its token
    assert first["time"].endswith("Z") and first["level"] == "INFO"
    assert second["route"] == "/health" and second["request_id"] != first["request_id"]


def test_a_line_the_code_logs_during_a_request_carries_its_request_id(app, capsys):
    def say_something():
        logging.getLogger("dataservice.test").warning("something worth a line")
        return "", 204

    app.add_url_rule("/test-say", "say_something", say_something)
    capsys.readouterr()
    response = app.test_client().get("/test-say", headers={"X-Request-ID": "said-7"})
    assert response.status_code == 204
    out = capsys.readouterr().out
    [line] = [json.loads(text) for text in out.splitlines() if "something worth a line" in text]
    assert line["request_id"] == "said-7" and line["pid"] == os.getpid()
    assert (line["logger"], line["level"]) == ("dataservice.test", "WARNING")
    # outside a request, the same line has no request id
    logging.getLogger("dataservice.test").warning("something worth a line")
    [line] = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    assert "request_id" not in line and line["pid"] == os.getpid()


def test_request_lines_never_carry_bodies_passwords_or_credentials(client, capsys):
    capsys.readouterr()
    password = "request-line-secret-password"
    response = client.post(
        "/api/v1/users",
        json={k: v for k, v in new_user(password=password).items() if k != "hashed_password"},
    )
    assert response.status_code == 201
    refused = client.get("/api/v1/users/1", headers={"Authorization": "Bearer dsk_not-a-real-one"})
    assert refused.status_code == 401
    out = capsys.readouterr().out
    assert [line["status"] for line in access_lines(out)][-2:] == [201, 401]
    for secret in (password, TOKEN, "dsk_not-a-real-one", "user1@example.com", "$argon2"):
        assert secret not in out


def test_log_level_warning_silences_request_lines(make_app, capsys):
    client = make_app(LOG_LEVEL="WARNING").test_client()
    capsys.readouterr()
    client.get("/health")
    assert access_lines(capsys.readouterr().out) == []


def test_request_lines_and_samples_are_written_in_batches(make_app, capsys):
    app = make_app(LOG_FLUSH_SECONDS=30)  # nothing comes due during the test
    client = app.test_client()
    before = requests_total("GET", "/health", 200)
    capsys.readouterr()
    started = datetime.now(UTC)
    client.get("/health", headers={"X-Request-ID": "batched-1"})
    client.get("/health", headers={"X-Request-ID": "batched-2"})
    ended = datetime.now(UTC)
    assert access_lines(capsys.readouterr().out) == []  # held by the journal
    assert requests_total("GET", "/health", 200) == before
    time.sleep(0.05)
    app.extensions["journal"].close()  # what gunicorn's worker_exit does on a clean stop
    lines = access_lines(capsys.readouterr().out)
    assert [line["request_id"] for line in lines] == ["batched-1", "batched-2"]
    assert requests_total("GET", "/health", 200) == before + 2
    # Each line keeps the time its request ended (to the millisecond), not the time of writing.
    for line in lines:
        when = datetime.strptime(line["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        assert started - timedelta(milliseconds=1) <= when <= ended


def test_a_due_batch_is_written_by_the_next_request_or_by_a_quiet_worker(make_app, capsys):
    app = make_app(LOG_FLUSH_SECONDS=0.2)
    client = app.test_client()
    capsys.readouterr()
    client.get("/health", headers={"X-Request-ID": "first"})
    time.sleep(0.25)
    client.get("/health", headers={"X-Request-ID": "second"})  # finds the first one due
    ids = [line["request_id"] for line in access_lines(capsys.readouterr().out)]
    assert ids[:1] == ["first"]
    if ids == ["first"]:  # else the background flush wrote both in the meantime
        deadline = time.monotonic() + 5
        while "second" not in ids:
            assert time.monotonic() < deadline, "a quiet worker kept its last line"
            time.sleep(0.05)
            ids += [line["request_id"] for line in access_lines(capsys.readouterr().out)]
    assert ids == ["first", "second"]


def test_a_burst_is_written_before_it_grows_large(make_app, capsys):
    app = make_app(LOG_FLUSH_SECONDS=30)
    journal = app.extensions["journal"]
    client = app.test_client()
    capsys.readouterr()
    for _ in range(journal.MAX_PENDING):
        client.get("/health")
    assert len(access_lines(capsys.readouterr().out)) == journal.MAX_PENDING
    assert len(journal._pending) == 0
