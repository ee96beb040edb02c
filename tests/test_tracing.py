"""OpenTelemetry traces, trace ids in logs and events, and Server-Timing (issue 28).

The gunicorn tests run the production gunicorn.conf.py with each worker class, exporting to a
real OTLP/HTTP receiver (tests/otlp_receiver.py). The export's schedule is set past the test's
length, so every span reaches the receiver only through the graceful restart (SIGHUP) and the
stop: nothing may be lost there.
"""

import json
import os
import re
import signal
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from dataservice import tracing
from tests.otlp_receiver import Receiver
from tests.support import BCRYPT_HASH, TOKEN, find_secrets, new_user, stop
from tests.test_events import feed

SECRET = "a long and secret passphrase"


def call(url, method="GET", body=None, headers=None):
    """(status, headers, JSON body or None) over real HTTP."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=20) as response:
            raw = response.read()
            return response.status, response.headers, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, error.headers, json.loads(raw) if raw else None


def traceparent(n: int) -> tuple[str, str, str]:
    """(header, trace id, parent span id), distinct for each n."""
    trace_id = f"{n + 1:08x}" + os.urandom(12).hex()
    parent = os.urandom(8).hex()
    return f"00-{trace_id}-{parent}-01", trace_id, parent


def by_trace(spans: list[dict]) -> dict[str, list[dict]]:
    traces: dict[str, list[dict]] = {}
    for span in spans:
        traces.setdefault(span["trace_id"], []).append(span)
    return traces


def tree_is_complete(spans: list[dict], parent: str) -> dict:
    """The one server span of a trace, once every span hangs from it (or is it), and it from
    `parent`; fails otherwise."""
    servers = [s for s in spans if s["kind"] == "server"]
    assert len(servers) == 1, [s["name"] for s in spans]
    server = servers[0]
    assert server["parent_id"] == parent
    ids = {s["span_id"] for s in spans}
    assert len(ids) == len(spans)  # no span id twice
    for span in spans:
        if span is not server:
            assert span["parent_id"] in ids, (span["name"], "orphaned")
        assert span["start"] <= span["end"]
    return server


def descendants(spans: list[dict], root: dict) -> list[dict]:
    children: dict[str, list[dict]] = {}
    for span in spans:
        children.setdefault(span["parent_id"], []).append(span)
    found, todo = [], [root["span_id"]]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child["span_id"])
    return found


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.mark.parametrize("worker_class", ["gevent", "gthread"])
def test_traces_under_gunicorn(worker_class, start_gunicorn, receiver, db):
    base, process, log_path = start_gunicorn(
        WEB_WORKER_CLASS=worker_class,
        WEB_THREADS="8",
        DATABASE_POOL_MAX_SIZE="8",
        DATABASE_POOL_MIN_SIZE="2",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_BSP_SCHEDULE_DELAY="600000",  # only the restart and the stop export
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment=test",
        LOG_FLUSH_SECONDS="0",
    )
    api = base + "/api/v1"

    # A create with a password (hashed here), its trace continued from the caller's.
    header, create_trace, create_parent = traceparent(0)
    body = new_user(1, password=SECRET, hashed_password=None)
    del body["hashed_password"]
    status, headers, user = call(f"{api}/users", "POST", body, {"traceparent": header})
    assert status == 201
    assert re.search(r"\bhash;dur=[0-9.]+", headers["Server-Timing"])
    # An idempotent create, twice: the second is a replay.
    idem_header, idem_trace, idem_parent = traceparent(1)
    for _ in range(2):
        status, headers, _ = call(
            f"{api}/users",
            "POST",
            new_user(2),
            {"traceparent": idem_header, "Idempotency-Key": "trace-key-1"},
        )
        assert status == 201
    assert headers["Idempotent-Replayed"] == "true"
    # A batch: two operations one at a time (the second refers to the first), then a run of two
    # creates written in one statement.
    batch_header, batch_trace, batch_parent = traceparent(2)
    operations = [
        {"method": "POST", "path": "/api/v1/users", "body": new_user(3)},
        {"method": "PATCH", "path": "/api/v1/users/${/0/body/id}", "body": {"username": "u3b"}},
        {"method": "POST", "path": "/api/v1/users", "body": new_user(4)},
        {"method": "POST", "path": "/api/v1/users", "body": new_user(5)},
    ]
    status, _, _ = call(
        f"{api}/batch", "POST", {"operations": operations}, {"traceparent": batch_header}
    )
    assert status == 200

    # Fifty concurrent GETs, each its own trace.
    gets = [traceparent(100 + n) for n in range(50)]

    def get(item):
        status, headers, _ = call(f"{api}/users/{user['id']}", headers={"traceparent": item[0]})
        return status, headers["Server-Timing"]

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(get, gets))
    assert all(status == 200 for status, _ in answers)
    assert all(re.search(r"\bdb;dur=[0-9.]+.*total;dur=", timing) for _, timing in answers)

    # The sessions the requests borrowed are named after the last trace each served.
    names = db.execute(
        "SELECT application_name FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    ).fetchall()
    all_traces = {create_trace, idem_trace, batch_trace} | {t for _, t, _ in gets}
    tagged = {name.removeprefix("dataservice ") for (name,) in names if name != "dataservice"}
    assert tagged and tagged <= all_traces

    # The feed's events carry the trace ids of the requests that wrote them.
    # (The feed holds events back while an older transaction runs anywhere on the server.)
    deadline = time.monotonic() + 15
    while True:
        status, _, page = call(f"{api}/events?limit=100")
        assert status == 200
        traced = {(e["data"]["username"], e["type"]): e["trace_id"] for e in page["items"]}
        if len(traced) >= 6 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert traced["user1", "user.created"] == create_trace
    assert traced["user2", "user.created"] == idem_trace
    assert traced["u3b", "user.updated"] == batch_trace
    assert traced["user5", "user.created"] == batch_trace

    assert receiver.spans == []  # nothing before the restart
    # A graceful restart of the workers: what they queued is exported as they exit.
    expected = {create_trace, idem_trace, batch_trace} | {t for _, t, _ in gets}
    process.send_signal(signal.SIGHUP)
    spans = receiver.wait_for(lambda spans: expected <= set(by_trace(spans)))
    assert call(base + "/health")[0] == 200  # the new workers serve
    time.sleep(0.5)  # the second worker's export, if the first was enough for `expected`
    spans = list(receiver.spans)
    traces = by_trace(spans)

    # Resource: the default service name, the operator's attributes.
    assert {s["resource"]["service.name"] for s in spans} == {"dataservice"}
    assert {s["resource"]["deployment.environment"] for s in spans} == {"test"}

    # The create: under the caller's span, named by its route; hashing and SQL beneath it.
    server = tree_is_complete(traces[create_trace], create_parent)
    assert server["name"] == "POST /api/v1/users"
    assert server["attributes"]["http.route"] == "/api/v1/users"
    assert server["attributes"]["http.response.status_code"] == 201
    below = {s["name"]: s for s in descendants(traces[create_trace], server)}
    assert {"password hash wait", "password hash", "users.create_user"} <= set(below)
    sql = below["users.create_user"]
    assert sql["kind"] == "client"
    assert sql["attributes"]["db.system.name"] == "postgresql"
    assert sql["attributes"]["db.operation.name"] == "INSERT"
    assert sql["attributes"]["db.collection.name"] == "users"

    # The replay.
    idem = [s for s in traces[idem_trace] if s["kind"] == "server"]
    assert len(idem) == 2 and all(s["parent_id"] == idem_parent for s in idem)
    assert sum(s["name"] == "idempotent replay" for s in traces[idem_trace]) == 1
    assert "COMMIT" in {s["name"] for s in traces[idem_trace]}

    # The batch: a span per operation run alone, one for the run of two, each under the request.
    server = tree_is_complete(traces[batch_trace], batch_parent)
    below = descendants(traces[batch_trace], server)
    names = {s["name"] for s in below}
    assert "batch operation 0: POST /api/v1/users" in names
    assert "batch operation 1: PATCH /api/v1/users/<bigint:user_id>" in names
    assert "batch operations 2-3: create_user" in names
    operation = next(s for s in below if s["name"].startswith("batch operation 1"))
    assert any(s["name"] == "users.update_user" for s in descendants(below, operation))

    # Fifty disjoint, complete trees; their SQL spans children of their own request's span.
    for _, trace_id, parent in gets:
        spans_of = traces[trace_id]
        server = tree_is_complete(spans_of, parent)
        assert server["name"] == "GET /api/v1/users/<bigint:user_id>"
        sql = [s for s in spans_of if s["name"] == "users.get_user_by_id"]
        assert len(sql) == 1 and sql[0]["parent_id"] == server["span_id"]
        # Its session named after it; once more for the token's lookup on a cache miss.
        tags = [s for s in spans_of if s["name"] == "session.tag_connection"]
        assert tags and all(t in descendants(spans_of, server) for t in tags)

    # Nothing secret or caller-given in any attribute: no password, hash, token, email or id.
    values = json.dumps([[s["attributes"], s["name"]] for s in spans])
    assert not find_secrets(values)
    for given in (SECRET, TOKEN, BCRYPT_HASH, "user1@example.com", "user1", "trace-key-1"):
        assert given not in values
    assert f"/users/{user['id']}" not in values

    # Log lines of a request carry its trace id, and its span id.
    output = stop(process, log_path)
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("message") == "request"]
    create_line = next(line for line in requests if line.get("trace_id") == create_trace)
    assert create_line["span_id"] == server_span_of(traces[create_trace])
    assert sum(line.get("trace_id") in {t for _, t, _ in gets} for line in requests) == 50
    assert not find_secrets(output)


def server_span_of(spans):
    return next(s["span_id"] for s in spans if s["kind"] == "server")


def test_sampled_out_requests_export_nothing_but_keep_their_trace_id(start_gunicorn, receiver):
    base, process, log_path = start_gunicorn(
        WEB_WORKERS="1",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_TRACES_SAMPLER="parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG="0",
        LOG_FLUSH_SECONDS="0",
    )
    header, trace_id, _ = traceparent(7)
    sampled_out = header[:-2] + "00"
    assert call(base + "/api/v1/users/1", headers={"traceparent": sampled_out})[0] == 404
    assert call(base + "/api/v1/users/1", headers={"traceparent": header})[0] == 404  # sampled
    assert call(base + "/api/v1/users/1")[0] == 404  # a new trace, sampled out (ratio 0)
    output = stop(process, log_path)
    traces = by_trace(receiver.spans)
    assert set(traces) == {trace_id}
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("route") == "/api/v1/users/<bigint:user_id>"]
    assert [line["trace_id"] == trace_id for line in requests] == [True, True, False]


def test_without_an_endpoint_nothing_is_made(client, app):
    """No endpoint: no SDK, no exporter thread; Server-Timing still on; the traceparent's trace
    id still reaches the logs and the events."""
    assert not tracing.configured()
    header, trace_id, _ = traceparent(9)
    response = client.post("/api/v1/users", json=new_user(1), headers={"traceparent": header})
    assert response.status_code == 201
    timing = dict(part.split(";dur=") for part in response.headers["Server-Timing"].split(", "))
    assert {"db", "total"} <= set(timing) <= {"auth", "db-wait", "db", "total"}
    assert all(float(value) >= 0 for value in timing.values())
    events = feed(client, expect=1)["items"]
    assert [e["trace_id"] for e in events] == [trace_id]
    assert tracing._TRACER._provider is None
    assert not [t for t in threading.enumerate() if t.name.startswith("OtelBatch")]


def test_server_timing_can_be_turned_off(make_app):
    client = make_app(SERVER_TIMING=False).test_client()
    response = client.get("/api/v1/users/1")
    assert response.status_code == 404
    assert "Server-Timing" not in response.headers


def test_configured_by_the_standard_variables():
    assert not tracing.configured({})
    assert tracing.configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
    assert tracing.configured({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"})
    disabled = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}
    assert not tracing.configured(disabled)


def test_statements_are_described_by_their_named_query():
    from dataservice.queries import queries  # noqa: F401 (loading sql/ describes them)

    name, attributes = tracing._STATEMENTS["create_users"]
    assert name == "users.create_users"
    assert attributes["db.operation.name"] == "INSERT"
    assert attributes["db.collection.name"] == "users"
    name, attributes = tracing._STATEMENTS["list_events"]
    assert (attributes["db.operation.name"], attributes["db.collection.name"]) == (
        "SELECT",
        "events",
    )


def test_lines_logged_during_a_traced_request_carry_its_ids(monkeypatch, make_app, receiver):
    """In one process: a line the code logs inside a statement's span names that span."""
    import logging

    from dataservice import observe
    from dataservice.logs import JsonFormatter

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    app = make_app()
    lines = []

    class Capture(logging.Handler):
        def emit(self, record):
            lines.append(json.loads(self.format(record)))

    capture = Capture()
    capture.setFormatter(JsonFormatter(observe.log_context))
    logger = logging.getLogger("dataservice.test_tracing")
    logger.addHandler(capture)
    header, trace_id, _ = traceparent(11)
    original = tracing.statement

    def logging_statement(name):  # the statement's block, logging a line inside it
        block = original(name)

        class Logged:
            def __enter__(self):
                entered = block.__enter__()
                logger.warning("inside %s", name)
                return entered

            def __exit__(self, *exc):
                return block.__exit__(*exc)

        return Logged()

    monkeypatch.setattr(tracing, "statement", logging_statement)
    try:
        response = app.test_client().get("/api/v1/users/1", headers={"traceparent": header})
    finally:
        logger.removeHandler(capture)
    assert response.status_code == 404
    spans = receiver.wait_for(lambda spans: any(s["trace_id"] == trace_id for s in spans))
    line = next(line for line in lines if line["message"] == "inside get_user_by_id")
    assert line["trace_id"] == trace_id
    sql = next(s for s in spans if s["name"] == "users.get_user_by_id")
    assert line["span_id"] == sql["span_id"]
    assert line["request_id"] == response.headers["X-Request-ID"]
