"""What ops run: gunicorn with our config, and the Dockerfile (checked statically: no Docker
engine runs here)."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .support import FAST_ARGON2

ROOT = Path(__file__).parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@pytest.fixture
def gunicorn(database_url):
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PORT": str(port),
        "WEB_WORKERS": "2",
        **{k: str(v) for k, v in FAST_ARGON2.items()},
    }
    process = subprocess.Popen(
        [Path(sys.executable).parent / "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if request(base + "/health")[0] == 200:
                break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("gunicorn did not start:\n" + process.communicate()[0])
            time.sleep(0.2)
    yield base, process
    if process.poll() is None:
        process.kill()
        process.wait()


def test_gunicorn_serves_the_app_and_stops_cleanly_on_sigterm(gunicorn):
    base, process = gunicorn
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
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "Worker exiting" in output or "Shutting down" in output
    assert password not in output
    assert re.search(r'"POST /api/v1/users HTTP/1\.1" 201', output)  # access log on stdout


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
