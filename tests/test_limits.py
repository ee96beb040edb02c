"""Fair under overload: per-client rate and in-flight limits (429 + RateLimit headers), the
hashing queue's budget (a fast 503 busy; more in test_hashing.py), shedding a request that
waited its budget for a database connection, and the state shared by every worker of an
instance."""

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from prometheus_client import REGISTRY

from dataservice import auth
from dataservice.admission import LocalClients
from dataservice.cli import main

from .support import BCRYPT_HASH, TOKEN, new_user


def add_client(db, name, rate=None, burst=None, in_flight=None) -> str:
    """A client with every scope and these limits (None: unlimited); returns its token."""
    token = auth.new_token()
    db.execute(
        "INSERT INTO api_clients (name, token_hash, scopes, rate_per_second, burst, max_in_flight)"
        " SELECT %s, %s, array_agg(name ORDER BY name), %s, %s, %s FROM api_scopes",
        (name, auth.token_hash(token), rate, burst, in_flight),
    )
    return token


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def fetch(url, token, body=None, timeout=10):
    """(status, headers, parsed body) of a real HTTP request, errors included."""
    data = None if body is None else json.dumps(body).encode()
    headers = {**bearer(token), "Content-Type": "application/json"}
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.headers, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read() or b"null")


def refused(reason: str, client: str) -> float:
    samples = (
        REGISTRY.get_sample_value(
            "dataservice_refused_requests_total",
            {"route": route, "client": client, "reason": reason},
        )
        for route in ("/api/v1/users/<bigint:user_id>", "/api/v1/users/verify-credentials")
    )
    return sum(value or 0 for value in samples)


def test_a_client_over_its_rate_gets_429_with_the_headers_and_recovers(make_app, db):
    app = make_app()
    token = add_client(db, "limited", rate=1, burst=3)
    client = app.test_client()
    user = client.post("/api/v1/users", json=new_user()).get_json()  # the unlimited client
    url, headers = f"/api/v1/users/{user['id']}", bearer(token)

    answers = [client.get(url, headers=headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    # The headers come once half of the burst is used (before, they would cost for nothing).
    assert "RateLimit" not in answers[0].headers and "RateLimit-Policy" not in answers[0].headers
    assert {a.headers["RateLimit-Policy"] for a in answers[1:]} == {'"rate";q=3;w=3'}
    assert [a.headers["RateLimit"] for a in answers[1:]] == ['"rate";r=1;t=2', '"rate";r=0;t=3']

    before = refused("rate", "limited")
    over = client.get(url, headers=headers)
    assert over.status_code == 429
    assert over.mimetype == "application/problem+json"
    assert over.get_json()["type"] == "urn:dataservice:problem:rate-limited"
    assert over.headers["Retry-After"] == "1"
    assert over.headers["RateLimit"] == '"rate";r=0;t=1'
    assert over.headers["RateLimit-Policy"] == '"rate";q=3;w=3'
    assert refused("rate", "limited") == before + 1

    time.sleep(1.1)  # one request a second comes back
    assert client.get(url, headers=headers).status_code == 200
    assert client.get(url, headers=headers).status_code == 429


def test_an_unlimited_client_is_never_limited_nor_slowed_by_another(make_app, db):
    app = make_app()
    token = add_client(db, "tiny", rate=1, burst=1)
    client = app.test_client()
    user = client.post("/api/v1/users", json=new_user()).get_json()
    url = f"/api/v1/users/{user['id']}"
    assert client.get(url, headers=bearer(token)).status_code == 200
    assert client.get(url, headers=bearer(token)).status_code == 429
    answers = [client.get(url) for _ in range(200)]  # the tests' client: no limits
    assert {a.status_code for a in answers} == {200}
    assert not any("RateLimit" in a.headers or "RateLimit-Policy" in a.headers for a in answers)


def test_requests_in_flight_are_bounded_and_given_back(make_app, db, serve):
    app = make_app()
    token = add_client(db, "one-at-a-time", in_flight=1)
    base = serve(app)
    waiting = threading.Thread(
        target=fetch, args=(f"{base}/api/v1/events?wait=1.5", token), daemon=True
    )
    waiting.start()  # a long poll holds the client's one request in flight
    time.sleep(0.5)
    status, headers, body = fetch(f"{base}/api/v1/events", token)
    assert status == 429
    assert body["type"] == "urn:dataservice:problem:rate-limited"
    assert headers["RateLimit-Policy"] == '"in-flight";q=1;qu="concurrent-requests"'
    assert headers["RateLimit"] == '"in-flight";r=0;t=1'
    assert headers["Retry-After"] == "1"
    waiting.join(10)
    for _ in range(5):  # given back every time, also after an error answer
        assert fetch(f"{base}/api/v1/events", token)[0] == 200
        assert fetch(f"{base}/api/v1/users/999999", token)[0] == 404


def holding_in_another_process(code: str, path: Path) -> subprocess.Popen:
    """A Python process that runs `code` (with `path` and dataservice.admission's names at
    hand), then holds whatever it took until it is killed."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from dataservice.admission import *; "
            f"path = Path(sys.argv[1]); {code}; print('held', flush=True); time.sleep(60)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def kill(holder: subprocess.Popen) -> None:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    holder.stdout.close()


def test_hashing_beyond_the_bound_is_a_fast_503(make_app, db, serve):
    app = make_app(
        ARGON2_TIME_COST=3,
        ARGON2_MEMORY_COST_KIB=65536,  # about a quarter of a second per hash here
        PASSWORD_HASH_CONCURRENCY=1,
        PASSWORD_HASH_WAIT_MS=0,  # a hash waits for nothing: only a free thread takes it
    )
    client = app.test_client()
    client.post("/api/v1/users", json=new_user(password="a long enough password"))
    token = add_client(db, "login-service")
    base = serve(app)
    body = {"login": new_user()["username"], "password": "a wrong password"}
    url = f"{base}/api/v1/users/verify-credentials"

    def verify(_):
        status, headers, answer = fetch(url, token, body)
        return status, headers, answer, time.monotonic()

    before = refused("hashing", "login-service")
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(verify, range(6)))
    busy = [a for a in answers if a[0] == 503]
    answered = [a for a in answers if a[0] == 401]
    assert busy and answered and len(busy) + len(answered) == 6
    for _, headers, answer, _ in busy:
        assert answer["type"] == "urn:dataservice:problem:busy"
        assert headers["Retry-After"] == "1"
    # Refused at once: every 503 came back before the last hash that ran had finished.
    assert max(a[3] for a in busy) < max(a[3] for a in answered)
    assert refused("hashing", "login-service") == before + len(busy)


def test_a_request_past_its_queue_budget_is_shed_at_once(make_app, db, serve):
    app = make_app(
        DATABASE_POOL_MIN_SIZE=1,
        DATABASE_POOL_MAX_SIZE=1,
        DATABASE_POOL_TIMEOUT=30.0,
        DATABASE_QUEUE_BUDGET_MS=200,
    )
    user = app.test_client().post("/api/v1/users", json=new_user()).get_json()
    token = add_client(db, "shed")
    base = serve(app)
    assert fetch(f"{base}/api/v1/users/{user['id']}", token)[0] == 200  # the token is known
    database = app.extensions["db"]
    held = database.checkout()  # the worker's only connection, busy
    try:
        started = time.monotonic()
        status, headers, body = fetch(f"{base}/api/v1/users/{user['id']}", token, timeout=30)
        waited = time.monotonic() - started
    finally:
        with database.lent(held):
            pass
    assert status == 503
    assert body["type"] == "urn:dataservice:problem:busy"
    assert headers["Retry-After"] == "1"
    assert waited < 5  # the budget (0.2 s), far from the pool's 30 s
    assert refused("queue", "shed") == 1
    assert fetch(f"{base}/api/v1/users/{user['id']}", token)[0] == 200


def burst_through(bases, token, path, requests, connections=16) -> list[int]:
    """Statuses of `requests` GETs over `connections` keep-alive connections opened at once,
    spread over the given servers: the workers of each server accept some of them."""
    opened = []
    for n in range(connections):
        conn = http.client.HTTPConnection(urlsplit(bases[n % len(bases)]).netloc, timeout=10)
        conn.connect()
        opened.append(conn)
        time.sleep(0.02)  # one at a time: each wakes every idle worker, and one accepts it
    time.sleep(0.2)

    def send(conn, count):
        statuses = []
        for _ in range(count):
            conn.request("GET", path, headers=bearer(token))
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
        conn.close()
        return statuses

    share = [requests // connections + (n < requests % connections) for n in range(connections)]
    with ThreadPoolExecutor(connections) as pool:
        return [status for part in pool.map(send, opened, share) for status in part]


def user_path(db) -> str:
    row = db.execute(
        "INSERT INTO users (email, username, password_hash) VALUES"
        " ('a@example.com', 'someone', %s) RETURNING id",
        (BCRYPT_HASH,),
    ).fetchone()
    return f"/api/v1/users/{row[0]}"


def test_the_limits_hold_across_the_workers_of_an_instance(start_gunicorn, db, tmp_path):
    token = add_client(db, "shared", rate=0.5, burst=10)
    path = user_path(db)
    metrics_dir = tmp_path / "metrics"
    base, _, _ = start_gunicorn(
        WEB_WORKERS="2",
        WEB_WORKER_CONNECTIONS="8",  # a worker holding 8 keep-alive connections takes no more
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    statuses = burst_through([base], token, path, 40)
    # Counted per worker, each of the two would have let 10 through.
    assert statuses.count(200) in (10, 11), statuses
    assert statuses.count(429) == 40 - statuses.count(200)
    time.sleep(0.5)  # request metrics are written in batches (LOG_FLUSH_SECONDS)
    # Each worker counts its requests in a file of its own, labels in plain text.
    served_by = [
        f
        for f in metrics_dir.glob("counter_*.db")
        if b"/api/v1/users/<bigint:user_id>" in f.read_bytes()
    ]
    assert len(served_by) == 2, "both workers must have served some of the requests"


def test_a_client_ignoring_retry_after_has_its_429s_held(start_gunicorn, db):
    token = add_client(db, "impatient", rate=1, burst=1)
    path = user_path(db)
    base, _, _ = start_gunicorn(WEB_WORKERS="1", RATELIMIT_HOLD_MS="600")
    conn = http.client.HTTPConnection(urlsplit(base).netloc, timeout=10)

    def get(token) -> tuple[int, float]:
        started = time.monotonic()
        conn.request("GET", path, headers=bearer(token))
        response = conn.getresponse()
        response.read()
        return response.status, time.monotonic() - started

    assert get(token)[0] == 200
    status, took = get(token)
    assert (status, took < 0.3) == (429, True), took  # its first 429 comes at once
    # Back before its Retry-After: this 429 is held, and the worker serves others meanwhile.
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(get, token)
        time.sleep(0.1)
        started = time.monotonic()
        assert fetch(base + path, TOKEN)[0] == 200
        assert time.monotonic() - started < 0.4  # not behind the held one (0.5 s more)
        status, took = held.result()
    assert status == 429 and 0.5 <= took < 1.5, took

    time.sleep(1.1)  # as told by Retry-After: 1
    assert get(token)[0] == 200
    status, took = get(token)
    assert (status, took < 0.3) == (429, True), took  # it waited as told: refused at once
    conn.close()


def redis_url() -> str:
    """Redis on 127.0.0.1:6379 (`make test` starts it when it is not running)."""
    try:
        pong = subprocess.run(["redis-cli", "ping"], capture_output=True, text=True, timeout=5)
    except FileNotFoundError:
        pytest.fail("redis-cli is missing: `make test` installs redis-server")
    if pong.stdout.strip() != "PONG":
        pytest.fail("Redis is not running on 127.0.0.1:6379: `make test` starts it")
    return "redis://127.0.0.1:6379/0"


def test_several_instances_share_the_limits_through_redis(start_gunicorn, db):
    token = add_client(db, "everywhere", rate=0.5, burst=8)
    path = user_path(db)
    prefix = f"dataservice-test:{os.getpid()}:{time.monotonic_ns()}:"
    shared = {"RATELIMIT_STORAGE_URL": redis_url(), "RATELIMIT_KEY_PREFIX": prefix}
    bases = [start_gunicorn(WEB_WORKERS="1", **shared)[0] for _ in range(2)]
    statuses = burst_through(bases, token, path, 30)
    assert statuses.count(200) in (8, 9), statuses
    # Without Redis each instance counts for itself: the same client gets twice the burst.
    alone = [start_gunicorn(WEB_WORKERS="1")[0] for _ in range(2)]
    statuses = burst_through(alone, token, path, 30)
    assert statuses.count(200) in (16, 17, 18), statuses


def test_the_redis_script_refuses_like_the_local_store(tmp_path):
    """The two stores run the same algorithm: same answers for the same sequence."""
    from dataservice.admission import RedisRates

    local = LocalClients(lambda: tmp_path)
    remote = RedisRates(redis_url(), f"dataservice-test:{os.getpid()}:{time.monotonic_ns()}:")
    local_left = [local.enter("c", 0.5, 1.5, None) for _ in range(4)]  # 2/s, burst 3
    remote_left = [remote.take("c", 0.5, 1.5) for _ in range(4)]
    assert [(r, round(x, 1)) for r, x in local_left] == [
        (None, 0.5),
        (None, 1.0),
        (None, 1.5),
        ("rate", 0.5),
    ]
    assert [round(x, 1) for x in remote_left] == [0.5, 1.0, 1.5, -0.5]


def test_clients_get_limits_from_the_cli(database_url):
    def run(*args):
        done = CliRunner().invoke(main, ["clients", *args], env={"DATABASE_URL": database_url})
        return done.exit_code, done.output

    code, out = run("create", "billing", "--scopes", "users:read")
    assert code == 0 and "500/s burst 1000, 32 in flight" in out
    code, out = run("create", "batch-jobs", "--scopes", "users:read", "--unlimited")
    assert code == 0 and "unlimited" in out
    assert run("limits", "billing", "--rate", "5")[1].strip() == (
        "billing: 5/s burst 10, 32 in flight"
    )
    assert run("limits", "billing", "--in-flight", "2", "--burst", "7")[1].strip() == (
        "billing: 5/s burst 7, 2 in flight"
    )
    listed = run("list")[1]
    assert "billing\tusers:read\t5/s burst 7, 2 in flight\t" in listed
    assert "batch-jobs\tusers:read\tunlimited\t" in listed
    code, out = run("limits", "billing", "--unlimited", "--rate", "3")
    assert code != 0 and out.strip().splitlines()[-1].startswith("Error: --unlimited takes no")
    code, out = run("limits", "nobody", "--rate", "3")
    assert code != 0 and out.strip() == "Error: no active client named nobody"
    code, out = run("create", "x", "--scopes", "users:read", "--rate", "0")
    assert code == 2 and "Invalid value for '--rate'" in out


def test_the_limits_apply_to_the_token_of_the_tests_client_too(make_app, db):
    """A change of limits reaches the service within AUTH_CACHE_SECONDS (here: at once)."""
    app = make_app(AUTH_CACHE_SECONDS=0)
    client = app.test_client()
    user = client.post("/api/v1/users", json=new_user()).get_json()
    db.execute("UPDATE api_clients SET rate_per_second = 1, burst = 1 WHERE name = 'tests'")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    statuses = [client.get(f"/api/v1/users/{user['id']}", headers=headers).status_code]
    statuses.append(client.get(f"/api/v1/users/{user['id']}", headers=headers).status_code)
    assert statuses == [200, 429]


def test_while_redis_is_unreachable_rates_are_not_enforced(make_app, db):
    """A rate-limit store that is down must not take the API down with it."""
    app = make_app(RATELIMIT_STORAGE_URL="redis://127.0.0.1:1/0")  # nothing listens there
    token = add_client(db, "limited", rate=1, burst=1)
    client = app.test_client()
    user = client.post("/api/v1/users", json=new_user()).get_json()
    answers = [client.get(f"/api/v1/users/{user['id']}", headers=bearer(token)) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert "RateLimit" not in answers[0].headers  # nothing known to tell


def test_hashes_run_in_threads_of_lower_priority(make_app):
    app = make_app(PASSWORD_HASH_NICE=10)
    hasher = app.extensions["hasher"]
    assert os.getpriority(os.PRIO_PROCESS, 0) == 0  # the request's thread keeps its priority
    assert hasher._run(os.getpriority, os.PRIO_PROCESS, 0) == 10
    assert hasher.verify(hasher.hash("a long enough password"), "a long enough password")


def test_the_requests_in_flight_of_a_killed_process_are_wiped(tmp_path):
    """A process that dies holding in-flight places leaves them in its column; the next
    process to take that column wipes them."""
    holder = holding_in_another_process(
        "c = LocalClients(lambda: path); "
        "assert c.enter('k', None, 0.0, 2) == (None, 0.0); "
        "assert c.enter('k', None, 0.0, 2) == (None, 0.0)",
        tmp_path,
    )
    other = LocalClients(lambda: tmp_path)
    assert other.enter("k", None, 0.0, 2) == ("in_flight", 1.0)  # both places are taken
    kill(holder)
    assert other.enter("k", None, 0.0, 2) == ("in_flight", 1.0)  # still counted, column held
    successor = LocalClients(lambda: tmp_path)  # takes the dead process's column
    assert successor.enter("k", None, 0.0, 2) == (None, 0.0)
    assert successor.enter("k", None, 0.0, 2) == (None, 0.0)
    assert other.enter("k", None, 0.0, 2) == ("in_flight", 1.0)
    successor.leave("k")
    assert other.enter("k", None, 0.0, 2) == (None, 0.0)
