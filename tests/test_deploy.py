"""What ops run: gunicorn with our config, and the Dockerfile's text (tests/test_image.py builds
and runs the image itself, with podman)."""

import http.client
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from .support import AUTHORIZATION, json_lines, new_user, request, stop

ROOT = Path(__file__).parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_gunicorn_serves_the_app_and_stops_cleanly_on_sigterm(start_gunicorn):
    base, process, log_path = start_gunicorn()
    password = "gunicorn-test-password"
    status, user = request(
        base + "/api/v1/users",
        {"email": "g@example.com", "username": "gunny", "password": password},
    )
    assert status == 201
    # Several requests so that both workers (each with its own pool) are likely to serve one.
    for _ in range(10):
        assert request(f"{base}/api/v1/users/{user['id']}") == (200, user)
    assert request(base + "/ready") == (200, {"status": "ok"})
    output = stop(process, log_path)
    assert "Worker exiting" in output and "Shutting down" in output
    assert output.count("database pool closed") == 2
    assert password not in output
    lines = json_lines(output)
    assert len(lines) == len(output.splitlines())  # every line is JSON, gunicorn's too
    # One line per request from the app; gunicorn's own access log is off (it would repeat it).
    posts = [line for line in lines if line.get("method") == "POST"]
    assert [(p["route"], p["status"]) for p in posts] == [("/api/v1/users", 201)]
    assert '"POST /api/v1/users HTTP/1.1"' not in output


def per_worker_counts(metrics_dir: Path, route: str) -> dict[str, float]:
    """Requests each worker process counted for `route`, read from its own samples file."""
    counts = {}
    for samples in metrics_dir.glob("counter_*.db"):
        if not samples.stat().st_size:  # its worker is creating it: nothing counted yet
            continue
        alone = metrics_dir.parent / f"alone-{samples.stem}"
        alone.mkdir()
        shutil.copy(samples, alone)
        counts[samples.stem] = sum(
            sample.value
            for family in MultiProcessCollector(None, str(alone)).collect()
            for sample in family.samples
            if sample.name == "dataservice_http_requests_total" and sample.labels["route"] == route
        )
        shutil.rmtree(alone)
    return counts


def test_metrics_add_up_across_the_workers(start_gunicorn, tmp_path):
    metrics_dir = tmp_path / "metrics"
    base, process, log_path = start_gunicorn(PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    sent = 0
    # A new connection per request, until both workers have served some (the kernel spreads
    # new connections between the two processes).
    while sent < 10 or len([n for n in per_worker_counts(metrics_dir, "/ready").values() if n]) < 2:
        assert request(base + "/ready")[0] == 200
        sent += 1
        assert sent < 500, "one worker served every request"
    # Samples are written in batches (LOG_FLUSH_SECONDS, 0.2 s): once the workers are quiet,
    # their background flush writes the rest without another request.
    deadline = time.monotonic() + 5
    while sum(per_worker_counts(metrics_dir, "/ready").values()) < sent:
        assert time.monotonic() < deadline, "a quiet worker kept request samples unwritten"
        time.sleep(0.1)
    assert sum(per_worker_counts(metrics_dir, "/ready").values()) == sent
    # Whichever worker answers the scrape, it reports the sum over both.
    for _ in range(6):
        with urllib.request.urlopen(base + "/metrics", timeout=10) as response:
            families = {
                family.name: family
                for family in text_string_to_metric_families(response.read().decode())
            }
        [ready] = [
            sample.value
            for sample in families["dataservice_http_requests"].samples
            if sample.name.endswith("_total") and sample.labels["route"] == "/ready"
        ]
        assert ready == sent
        [pool_max] = families["dataservice_db_pool_max_connections"].samples
        assert pool_max.value == 2 * 4  # both workers' pools (DATABASE_POOL_MAX_SIZE 4)
        # A worker creating its samples file leaves it empty for a moment (a new worker, or
        # its first sample of a kind): a scrape then still answers, from the other files.
        (metrics_dir / "counter_999999.db").touch()
    stop(process, log_path)


def test_sigterm_lets_requests_in_flight_finish(start_gunicorn, db):
    # A slow argon2 makes each POST with a plain password last over a second.
    base, process, log_path = start_gunicorn(
        ARGON2_TIME_COST="150",
        ARGON2_MEMORY_COST_KIB="16384",
        ARGON2_PARALLELISM="1",
        PASSWORD_HASH_CONCURRENCY="4",  # all four hash at once, none is refused as busy
    )
    port = int(base.rsplit(":", 1)[1])
    in_flight = []
    for n in range(4):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        body = {"email": f"slow{n}@example.com", "username": f"slow{n}", "password": "long enough"}
        connection.request(
            "POST",
            "/api/v1/users",
            json.dumps(body),
            {"Content-Type": "application/json", "Authorization": AUTHORIZATION},
        )
        in_flight.append(connection)
    time.sleep(0.2)  # the workers have read the requests and are hashing
    process.send_signal(signal.SIGTERM)
    time.sleep(1.5)  # a gevent worker notices within a second, then stops accepting
    late = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        # While the workers drain: refused, or left unanswered in the listen queue.
        try:
            late.request("GET", "/health")
            refused = False
        except OSError:
            refused = True
        statuses = []
        for connection in in_flight:
            with connection.getresponse() as response:
                statuses.append(response.status)
            connection.close()
        assert statuses == [201] * 4
        if not refused:
            with pytest.raises((OSError, http.client.HTTPException)):
                late.getresponse()  # reset when the last worker closes the socket
    finally:
        late.close()
    process.wait(timeout=30)
    output = log_path.read_text()
    assert process.returncode == 0, output
    assert db.execute("SELECT count(*) FROM users").fetchone()[0] == 4
    lines = json_lines(output)
    [term] = [line for line in lines if line["message"] == "Handling signal: term"]
    posts = [line for line in lines if line.get("method") == "POST"]
    assert len(posts) == 4
    assert all(post["time"] > term["time"] for post in posts), "answered before SIGTERM"
    assert output.count("database pool closed") == 2


def test_keep_alive_connections_are_bounded_and_end_on_sigterm(start_gunicorn):
    # The default worker serves HTTP with gevent's pywsgi (serving/gevent_worker.py), which alone
    # would keep an idle keep-alive connection open for ever: one client could then hold every
    # greenlet, and SIGTERM would wait out the whole graceful timeout (30 s) for idle clients.
    base, process, log_path = start_gunicorn(WEB_WORKERS="1")
    port = int(base.rsplit(":", 1)[1])

    def kept_alive() -> http.client.HTTPConnection:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        connection.request("GET", "/health")
        with connection.getresponse() as response:
            response.read()
            assert response.status == 200 and response.getheader("Connection") != "close"
        return connection

    idle = kept_alive()
    answered = time.monotonic()
    assert idle.sock.recv(1) == b""  # closed by the server ...
    assert 4 < time.monotonic() - answered < 8  # ... after keepalive (5 s)
    idle.close()

    busy, idle = kept_alive(), kept_alive()
    process.send_signal(signal.SIGTERM)
    stopping = time.monotonic()
    time.sleep(1.5)  # the worker notices within a second
    busy.request("GET", "/health")
    with busy.getresponse() as response:
        response.read()
        assert response.status == 200 and response.getheader("Connection") == "close"
    process.wait(timeout=20)
    assert time.monotonic() - stopping < 10, "shutdown waited for an idle connection"
    assert process.returncode == 0, log_path.read_text()
    busy.close()
    idle.close()


def serve_one_request(app, request: bytes) -> list[bytes]:
    """Runs the default worker's HTTP handler (dataservice/serving/gevent_worker.py) on one
    request over a SOCK_SEQPACKET socket pair, which keeps each write the handler makes apart:
    returns the writes, in order."""
    from types import SimpleNamespace

    from gevent import pywsgi
    from gevent import socket as gsocket

    from dataservice.serving.gevent_worker import Handler

    class handler_class(Handler):  # with a worker of this test's own
        worker = SimpleNamespace(cfg=SimpleNamespace(keepalive=5), alive=True)

    server = pywsgi.WSGIServer(("127.0.0.1", 0), app, log=None)
    server.log = SimpleNamespace(access_log_enabled=False, write=lambda *_: None)
    ours, theirs = gsocket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours, theirs:
        theirs.sendall(request)
        handler_class(ours, ("127.0.0.1", 1), server).handle()
        ours.close()
        writes = []
        while chunk := theirs.recv(1 << 16):
            writes.append(chunk)
    return writes


def test_the_worker_sends_a_response_head_and_body_in_one_write():
    # pywsgi alone writes the head and the body apart: two system calls and two TCP segments.
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return [b"hello"]

    writes = serve_one_request(app, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert len(writes) == 1
    head, body = writes[0].split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: 5" in head
    assert body == b"hello"


def test_the_worker_still_streams_a_response_of_unknown_length_in_chunks():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"one", b"three"])

    writes = serve_one_request(app, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, first = writes[0].split(b"\r\n\r\n", 1)
    assert b"Transfer-Encoding: chunked" in head
    assert first == b"3\r\none\r\n"  # the head carries the first chunk ...
    assert writes[1:] == [b"5\r\nthree\r\n", b"0\r\n\r\n"]  # ... the rest follow as made


def test_a_password_hash_does_not_stall_the_workers_other_requests(start_gunicorn):
    # One gevent worker serves every request in one thread: argon2id must run beside it (in a
    # native thread), or each hash would hold up every other request of the worker.
    base, _, log_path = start_gunicorn(
        WEB_WORKERS="1",
        ARGON2_TIME_COST="80",  # about 0.5 s here: long enough to tell
        ARGON2_MEMORY_COST_KIB="16384",
        ARGON2_PARALLELISM="1",
    )
    assert "Using worker: DataserviceGeventWorker" in log_path.read_text()  # gevent + pywsgi
    port = int(base.rsplit(":", 1)[1])
    slow = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = {"email": "hash@example.com", "username": "hashing", "password": "long enough"}
    started = time.monotonic()
    slow.request(
        "POST",
        "/api/v1/users",
        json.dumps(body),
        {"Content-Type": "application/json", "Authorization": AUTHORIZATION},
    )
    time.sleep(0.05)  # the worker has read it and is hashing
    quick = []
    for _ in range(5):
        asked = time.monotonic()
        assert request(base + "/health")[0] == 200
        quick.append(time.monotonic() - asked)
    with slow.getresponse() as response:
        assert response.status == 201
    hashing = time.monotonic() - started
    slow.close()
    assert hashing > 0.3, "the hash was too fast to tell"
    assert max(quick) < hashing / 3, (quick, hashing)


def test_long_poll_wakes_under_the_production_worker(start_gunicorn):
    # The feed's listener runs beside the requests in the worker's one thread under gevent: a
    # waiting poll must hold up nothing, and a commit must wake it at once.
    base, _, _ = start_gunicorn(WEB_WORKERS="1")
    status, page = request(base + "/api/v1/events")
    assert status == 200
    result = {}

    def poll():
        with urllib.request.urlopen(
            f"{base}/api/v1/events?wait=10&after={page['next_cursor']}", timeout=20
        ) as response:
            result["body"] = json.load(response)
        result["answered"] = time.monotonic()

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(1.0)  # the poll is waiting now
    asked = time.monotonic()
    assert request(base + "/health")[0] == 200
    assert time.monotonic() - asked < 0.5
    assert "body" not in result
    assert request(base + "/api/v1/users", new_user(1))[0] == 201
    committed = time.monotonic()
    poller.join(15)
    assert [e["type"] for e in result["body"]["items"]] == ["user.created"]
    assert result["answered"] - committed < 1.0


def test_many_long_polls_wait_under_the_production_worker(start_gunicorn):
    # Under gevent a waiting reader costs a greenlet: eight of them all wait on one worker (with
    # threads, only EVENTS_MAX_WAITERS=2 would, and the rest be answered at once).
    base, _, _ = start_gunicorn(WEB_WORKERS="1")
    cursor = request(base + "/api/v1/events")[1]["next_cursor"]

    def poll(_):
        started = time.monotonic()
        url = f"{base}/api/v1/events?wait=2&after={cursor}"
        with urllib.request.urlopen(url, timeout=20) as response:
            assert json.load(response)["items"] == []
        return time.monotonic() - started

    with ThreadPoolExecutor(8) as pool:
        waited = list(pool.map(poll, range(8)))
    assert min(waited) > 1.5, waited


def test_dockerfile_passes_hadolint():
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([hadolint, "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_essentials():
    assert re.search(r"^FROM python:3\.11-slim", DOCKERFILE, re.MULTILINE)
    user = re.findall(r"^USER (\S+)", DOCKERFILE, re.MULTILINE)
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*/health", DOCKERFILE, re.MULTILINE)
    cmd = re.search(r"^CMD (.*)$", DOCKERFILE, re.MULTILINE).group(1)
    assert json.loads(cmd)[:3] == ["gunicorn", "-c", "gunicorn.conf.py"]
    assert "migrate" not in cmd and "yoyo" not in cmd  # the image never migrates on start
    for sources in re.findall(r"^COPY (.*) \S+$", DOCKERFILE, re.MULTILINE):
        for source in sources.split():
            assert (ROOT / source).exists(), f"COPY of missing {source}"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests"} <= set(ignored)


def test_two_instances_share_one_database(start_gunicorn):
    """Two gunicorn masters (as behind a load balancer) on one database: writes through either,
    one change feed seen exactly once however a consumer alternates, one effect per key."""
    first, _, _ = start_gunicorn()
    second, _, _ = start_gunicorn()
    bases = [first, second]
    created = []
    for n in range(10):
        status, user = request(f"{bases[n % 2]}/api/v1/users", new_user(n))
        assert status == 201
        created.append(user["id"])
    seen, cursor = [], None
    for n in range(100):  # alternate instances, passing the cursor along
        query = "limit=3" + (f"&after={cursor}" if cursor else "")
        status, page = request(f"{bases[n % 2]}/api/v1/events?{query}")
        assert status == 200
        seen += [event["entity_id"] for event in page["items"]]
        cursor = page["next_cursor"]
        if len(seen) >= len(created) and not page["items"]:
            break
        if not page["items"]:
            time.sleep(0.1)  # held back while another transaction in the cluster runs
    assert seen == created  # every event once, in order
    answers = []
    for base in bases:  # a retry that lands on the other instance replays the first answer
        body = json.dumps(new_user(99)).encode()
        req = urllib.request.Request(
            f"{base}/api/v1/users",
            data=body,
            headers={"Content-Type": "application/json", "Idempotency-Key": "across-instances"},
        )
        with urllib.request.urlopen(req, timeout=10) as response:
            answers.append(
                (response.status, response.read(), response.headers.get("Idempotent-Replayed"))
            )
    assert answers[0][:2] == answers[1][:2] and answers[0][0] == 201
    assert [replayed for _, _, replayed in answers] == [None, "true"]
