"""Every line that gunicorn's master and workers write, on stdout and on stderr, under both worker
classes, is one JSON object: through failed logins, errors in and around the app, a warning,
exceptions nothing caught, requests refused before the app, a database restart, a worker killed,
a worker timed out, and a worker that fails to boot. The app runs with test-only faults
(tests/wsgi_with_faults.py) on a PostgreSQL cluster of the test's own, which it restarts."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psycopg
import pytest

from dataservice.migrate import apply_migrations

from .private_cluster import PrivateCluster, free_port
from .support import FAST_HASHING, find_secrets, raw_request, register_test_client, request

ROOT = Path(__file__).parent.parent
WORKER_CLASSES = ["gevent", "gthread"]
FAULTS_APP = "tests.wsgi_with_faults:app"
PASSWORD = "correct horse battery staple"
STDERR_LOGGERS = {"gunicorn.error", "py.warnings", "uncaught", "gevent.hub", "stderr"}


@pytest.fixture(scope="module")
def cluster():
    cluster = PrivateCluster()
    yield cluster
    cluster.destroy()


@pytest.fixture
def cluster_database(cluster):
    name = "logs_" + uuid.uuid4().hex[:8]
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = cluster.url_for(name)
    apply_migrations(url)
    with psycopg.connect(url, autocommit=True) as conn:
        register_test_client(conn)
    return url


def records(path: Path) -> list[dict]:
    """Every line of the file as JSON; fails on the first that is not one JSON object."""
    parsed = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"{path.name} line {number} is not JSON: {line!r}")
        assert isinstance(record, dict), line
        assert {"time", "level", "logger", "message"} <= record.keys(), line
        parsed.append(record)
    return parsed


def wait_for(condition, what: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.1)


def refuse_three(port: int) -> None:
    """An over-long request line, an over-large header, a malformed request line."""
    for data in (
        b"GET /health?x=" + b"a" * 5000 + b" HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
        b"NOT HTTP\r\n\r\n",
    ):
        assert raw_request(port, data)[1]["content-type"] == "application/problem+json"


def fetch(url: str) -> tuple[int, str | None]:
    """(status, Content-Type) of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers.get("Content-Type")
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type")


def all_serve(base: str, pids: set[int], seconds: float = 15) -> None:
    """Returns once each of these workers has answered a request (one booting answers none)."""
    seen, deadline = set(), time.monotonic() + seconds
    while not seen >= pids:
        assert time.monotonic() < deadline, f"only {seen} of the workers {pids} served"
        # A new connection each: the kernel spreads them over the workers.
        with urllib.request.urlopen(base + "/_faults/pid", timeout=10) as response:
            seen.add(int(response.read()))
        time.sleep(0.01)


def messages(lines: list[dict], start: str) -> list[dict]:
    return [line for line in lines if line["message"].startswith(start)]


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_every_line_is_json_through_faults(
    worker_class, start_gunicorn, cluster, cluster_database, tmp_path
):
    stderr_path = tmp_path / "stderr"
    base, master, stdout_path = start_gunicorn(
        app=FAULTS_APP,
        stderr_path=stderr_path,
        WEB_WORKER_CLASS=worker_class,
        DATABASE_URL=cluster_database,
        DATABASE_POOL_TIMEOUT="0.5",
        WEB_TIMEOUT="3",  # a stopped worker is timed out within seconds
        LOG_FLUSH_SECONDS="0",  # request lines at once: a killed worker loses none
    )
    first, second = [line["pid"] for line in messages(records(stderr_path), "Booting worker")]
    # One worker stopped, so that it stops reporting to the master, which times it out while the
    # rest goes on (a worker is timed out only once it has reported: both serve by now).
    all_serve(base, {first, second})
    os.kill(second, signal.SIGSTOP)
    try:
        status, user = request(
            base + "/api/v1/users",
            {"email": "logs@example.com", "username": "logs", "password": PASSWORD},
        )
        assert status == 201
        login = base + "/api/v1/users/verify-credentials"
        for n in range(20):
            assert request(login, {"login": "logs", "password": f"wrong password {n}"})[0] == 401
        assert request(login, {"login": "nobody", "password": "wrong but long"})[0] == 401
        assert request(login, {"login": "logs", "password": PASSWORD})[0] == 200

        problem = (500, "application/problem+json")
        assert fetch(base + "/_faults/view") == problem  # the app's own 500
        assert fetch(base + "/_faults/escape") == problem  # the worker's
        faults = ["warn", "thread"] + (["greenlet"] if worker_class == "gevent" else [])
        for fault in faults:
            assert fetch(f"{base}/_faults/{fault}")[0] == 204
        refuse_three(int(base.rsplit(":", 1)[1]))

        cluster.stop("fast")
        try:
            assert request(f"{base}/api/v1/users/{user['id']}")[0] == 503
            assert request(base + "/ready")[0] == 503
        finally:
            cluster.start()
        wait_for(
            lambda: request(f"{base}/api/v1/users/{user['id']}")[0] == 200,
            "the database's return",
        )

        os.kill(first, signal.SIGKILL)  # the master sees it die and replaces it
        wait_for(
            lambda: (
                len(messages(records(stderr_path), "Booting worker")) >= 4
                and len(messages(records(stderr_path), "Worker (pid:")) >= 2
            ),
            "both workers replaced",
        )
    finally:  # if the master did not kill it, it must go on, to exit with the master
        with contextlib.suppress(ProcessLookupError):
            os.kill(second, signal.SIGCONT)
    # Both replacements serving (a worker still booting would miss the SIGTERM).
    all_serve(base, {line["pid"] for line in messages(records(stderr_path), "Booting worker")[2:]})
    master.send_signal(signal.SIGTERM)
    assert master.wait(timeout=30) == 0

    stdout, stderr = records(stdout_path), records(stderr_path)
    text = stdout_path.read_text() + stderr_path.read_text()
    assert "VerifyMismatchError" not in text  # a wrong password is an answer, not an error
    assert not find_secrets(text)
    assert {line["logger"] for line in stderr} <= STDERR_LOGGERS
    assert not {line["logger"] for line in stdout} & STDERR_LOGGERS

    logins = [line for line in stdout if line.get("route") == "/api/v1/users/verify-credentials"]
    assert sorted(line["status"] for line in logins) == [200] + [401] * 21
    [in_view] = [line for line in stdout if line.get("error") == "InjectedFault"]
    assert in_view["logger"] == "dataservice.api.problems"
    assert "InjectedFault" in in_view["traceback"]
    [escaped] = messages(stderr, "error handling request")
    assert escaped["status"] == 500 and "InjectedFault" in escaped["traceback"]
    [warned] = [line for line in stderr if line["logger"] == "py.warnings"]
    assert "a warning a test asked for" in warned["message"]
    if worker_class == "gevent":  # the hub's report of a greenlet that died
        [in_greenlet] = [line for line in stderr if line["logger"] == "gevent.hub"]
        assert in_greenlet["message"] == "Greenlet failed with InjectedFault"
        assert "InjectedFault" in in_greenlet["traceback"]
    [in_thread] = [line for line in stderr if line["logger"] == "uncaught"]
    assert "fault-thread" in in_thread["message"] and "InjectedFault" in in_thread["traceback"]
    refused = messages(stderr, "request refused")
    assert sorted(line["status"] for line in refused) == [400, 414, 431]
    [timed_out] = messages(stderr, "WORKER TIMEOUT")
    assert timed_out["message"] == f"WORKER TIMEOUT (pid:{second})"
    killed = messages(stderr, "Worker (pid:")
    assert {
        f"Worker (pid:{pid}) was sent SIGKILL! Perhaps out of memory?" for pid in (first, second)
    } <= {line["message"] for line in killed}


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_a_worker_that_fails_to_boot_is_logged_as_json(worker_class, tmp_path):
    # Past logging it, gunicorn prints the exception as text on stderr.
    stdout_path, stderr_path = tmp_path / "stdout", tmp_path / "stderr"
    with stdout_path.open("w") as stdout, stderr_path.open("w") as stderr:
        finished = subprocess.run(
            [Path(sys.executable).parent / "gunicorn", "-c", "gunicorn.conf.py", FAULTS_APP],
            cwd=ROOT,
            env={
                **os.environ,
                "DATABASE_URL": "postgresql://unused@127.0.0.1/unused",  # never connected
                "PORT": str(free_port()),
                "WEB_WORKERS": "1",
                "WEB_WORKER_CLASS": worker_class,
                "FAULT_AT_BOOT": "1",
                **{k: str(v) for k, v in FAST_HASHING.items()},
            },
            stdout=stdout,
            stderr=stderr,
            timeout=30,
        )
    assert finished.returncode == 3  # gunicorn's "worker failed to boot"
    assert records(stdout_path) == []
    stderr = records(stderr_path)
    [failed] = messages(stderr, "Exception in worker process")
    assert failed["error"] == "InjectedFault" and "Traceback" in failed["traceback"]
    assert [line["message"] for line in stderr if line["logger"] == "stderr"] == [
        "a fault a test asked for"
    ]
    assert messages(stderr, "Reason: Worker failed to boot.")
