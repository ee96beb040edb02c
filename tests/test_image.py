"""The Docker image, built from the Dockerfile and run as the README tells ops to, with podman
(there is no Docker engine on these machines): `dataservice migrate` in a container against an
empty database, then the service container, checked for what an operator relies on.

The base image under test is a stand-in. These machines reach no container registry, so
`.ci/image-base.sh` builds `python:3.11-slim-bookworm` from Debian bookworm's own packages
(Debian's Python 3.11 in /usr/bin, not upstream's in /usr/local) once per machine, and podman
keeps it for every later run and clone. The Dockerfile is built as it is on top. podman's
settings for this machine are in `.ci/containers.conf`; `make test` installs podman, runc and
debootstrap. Every run has its own image tag, container names and ports; the last build is also
tagged `dataservice-test:cache`, so that the next one reuses its layers (only the layers whose
inputs changed are rebuilt: the code's, in a second or two).
"""

import http.client
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import psycopg
import pytest

from .private_cluster import free_port
from .support import (
    APP_PASSWORD,
    APP_ROLE,
    find_secrets,
    new_user,
    register_test_client,
    request,
    url_for_database,
)

ROOT = Path(__file__).parent.parent
PODMAN_ENV = {**os.environ, "CONTAINERS_CONF": str(ROOT / ".ci" / "containers.conf")}
RUN = uuid.uuid4().hex[:12]
IMAGE = f"localhost/dataservice-test:{RUN}"
CACHE = "localhost/dataservice-test:cache"
BASE = "python:3.11-slim-bookworm"
# pip inside the build reaches PyPI through this machine's TLS proxy: its CA bundle is mounted
# for the build only, never copied into the image.
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# The size bounds: what the Dockerfile adds to its base (the dependencies and the code: about
# 36 MB today), and the whole image (234 MB on the 199-MB stand-in; the official base is smaller).
ADDED_MB_MAX = 60
TOTAL_MB_MAX = 300
# What /app holds: the code and what it reads at run time, and the dependency layer's metadata.
APP_ENTRIES = {
    "dataservice",
    "dataservice.egg-info",
    "gunicorn.conf.py",
    "migrations",
    "pyproject.toml",
    "setup.cfg",
    "sql",
    "wsgi.py",
    "yoyo.ini",
}
GRACEFUL_TIMEOUT = 30  # gunicorn's default WEB_GRACEFUL_TIMEOUT, which the image keeps


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["podman", *args], env=PODMAN_ENV, capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        # The arguments may hold a database URL: name the command only.
        pytest.fail(f"podman {args[0]} failed ({result.returncode}):\n{result.stderr}")
    return result


def inspect(name: str) -> dict | None:
    result = podman("image", "inspect", name, check=False)
    return json.loads(result.stdout)[0] if result.returncode == 0 else None


@pytest.fixture(scope="module")
def image():
    """The image built from this checkout: its name, and the seconds its base and its build
    took (the base: nothing once podman has it)."""
    if shutil.which("podman") is None:
        pytest.fail("podman is missing: `make test` installs it (apt-get install podman runc)")
    started = time.monotonic()
    base = subprocess.run(
        ["bash", ".ci/image-base.sh"],
        cwd=ROOT, env=PODMAN_ENV, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert base.returncode == 0, base.stderr
    base_ready = time.monotonic()
    mount = ["--volume", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"] if CA_BUNDLE.exists() else []
    podman(
        "build", "--layers", "--format", "docker", "--network", "host", *mount,
        "--tag", IMAGE, str(ROOT), timeout=900,
    )  # fmt: skip
    built = time.monotonic()
    # Keep this build's layers as the next one's cache; drop the build it replaces, unless
    # another run (another clone's) still uses it.
    previous = inspect(CACHE)
    podman("tag", IMAGE, CACHE)
    if previous and previous["Id"] != inspect(IMAGE)["Id"]:
        replaced = inspect(previous["Id"])
        if replaced and not replaced.get("RepoTags"):
            podman("rmi", previous["Id"], check=False)
    yield {"name": IMAGE, "base_seconds": base_ready - started, "build_seconds": built - base_ready}
    podman("rmi", IMAGE, check=False)  # only the tag, while the cache tag holds the image


def files_in(image_name: str) -> dict[str, str]:
    """Every path in the image's own filesystem (no /proc, /sys, /dev), with its type (f, d, l)."""
    listing = podman(
        "run", "--rm", "--no-healthcheck", "--network", "none", "--user", "root",
        image_name, "find", "/", "-xdev", "-printf", "%p %y\\n",
    )  # fmt: skip
    return dict(line.rsplit(" ", 1) for line in listing.stdout.splitlines())


def repository_files(folder: str) -> set[str]:
    return {
        str(path.relative_to(ROOT))
        for path in (ROOT / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_the_image_holds_the_service_and_nothing_else(image, record_property):
    config = inspect(image["name"])
    base = inspect(BASE)
    size_mb, added_mb = config["Size"] / 1e6, (config["Size"] - base["Size"]) / 1e6
    record_property(
        "summary",
        f"image: {size_mb:.0f} MB, of which {added_mb:.0f} MB over its base (bounds: "
        f"{TOTAL_MB_MAX} and {ADDED_MB_MAX} MB); base ready in {image['base_seconds']:.1f} s, "
        f"built in {image['build_seconds']:.1f} s",
    )
    assert added_mb < ADDED_MB_MAX and size_mb < TOTAL_MB_MAX
    assert config["Config"]["User"].split(":")[0] not in ("", "0", "root")
    assert config["Healthcheck"]["Test"][0] == "CMD"  # kept: built in Docker format
    environment = " ".join(config["Config"]["Env"]).upper()
    assert not any(word in environment for word in ("PASSWORD", "SECRET", "TOKEN", "DATABASE_URL"))

    paths = files_in(image["name"])
    app = {
        path.removeprefix("/app/"): kind for path, kind in paths.items() if path.startswith("/app/")
    }
    assert {entry for entry in app if "/" not in entry} == APP_ENTRIES
    for folder in ("dataservice", "sql", "migrations"):  # all of it, and nothing else
        copied = {entry for entry, kind in app.items() if entry.startswith(folder + "/")}
        assert {entry for entry in copied if app[entry] == "f"} == repository_files(folder)
    names = {name for path in paths for name in path.split("/")}
    assert not names & {".git", ".env", ".venv", "conftest.py", "id_rsa", "id_ed25519"}
    # No private key anywhere; packages' own test suites are left out (gevent's tests ship
    # throwaway keys of their own; a tests folder of ours in /app fails above).
    keys = podman(
        "run", "--rm", "--no-healthcheck", "--network", "none", "--user", "root", image["name"],
        "grep", "-rlI", "--exclude-dir=proc", "--exclude-dir=sys", "--exclude-dir=dev",
        "--exclude-dir=tests", "-e", "-----BEGIN [A-Z ]*PRIVATE KEY-----", "/", check=False,
    )  # fmt: skip
    assert keys.stdout == "", "private keys in the image"


def service_lines(name: str) -> list[str]:
    logs = podman("logs", name)
    return logs.stdout.splitlines() + logs.stderr.splitlines()


def test_the_image_migrates_serves_and_drains_on_sigterm(image, empty_database, record_property):
    # 1. Migrate, as its own step (the owner's URL: here the test server's role).
    migrate = podman(
        "run", "--rm", "--no-healthcheck", "--network", "host",
        "--env", f"DATABASE_URL={url_for_database(empty_database)}",
        image["name"], "dataservice", "migrate",
    )  # fmt: skip
    migrations = [p for p in (ROOT / "migrations").glob("*.sql") if ".rollback." not in p.name]
    assert f"applied {len(migrations)} migration(s)" in migrate.stdout
    with psycopg.connect(url_for_database(empty_database), autocommit=True) as conn:
        register_test_client(conn)

    # 2. The service, connected as the application role, as in production. The host's network
    # (the test PostgreSQL listens on 127.0.0.1), on a port of this run's own.
    name = f"dataservice-test-{RUN}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app_url = url_for_database(empty_database, user=APP_ROLE, password=APP_PASSWORD)
    started = time.monotonic()
    podman(
        "run", "--detach", "--name", name, "--network", "host",
        "--env", "HOST=127.0.0.1", "--env", f"PORT={port}", "--env", f"DATABASE_URL={app_url}",
        image["name"],
    )  # fmt: skip
    try:
        while True:
            try:
                if request(base + "/health")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() - started < 10, "no /health:\n" + "\n".join(service_lines(name))
            time.sleep(0.1)
        healthy = time.monotonic() - started
        assert request(base + "/ready") == (200, {"status": "ok"})

        # Every process runs as the image's user, gunicorn as PID 1 (it gets SIGTERM itself).
        status = podman("exec", name, "sh", "-c", "grep ^Uid /proc/[0-9]*/status").stdout
        assert {line.split()[1] for line in status.splitlines()} == {"10001"}
        pid_1 = podman("exec", name, "cat", "/proc/1/cmdline").stdout.split("\0")
        assert pid_1[1].endswith("/gunicorn"), pid_1

        # A client's token works; none is a 401.
        status, user = request(base + "/api/v1/users", new_user(1))
        assert status == 201
        assert request(f"{base}/api/v1/users/{user['id']}") == (200, user)
        anonymous = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        anonymous.request("GET", "/api/v1/users")
        assert anonymous.getresponse().status == 401
        anonymous.close()

        # The image's HEALTHCHECK, run as the engine would.
        assert podman("healthcheck", "run", name, check=False).returncode == 0

        # SIGTERM (podman stop) with a long poll of the change feed in flight: it is answered,
        # then gunicorn exits 0, within its graceful timeout.
        cursor = request(base + "/api/v1/events")[1]["next_cursor"]
        poll = {}

        def long_poll():
            url = f"{base}/api/v1/events?wait=3&after={cursor}"
            with urllib.request.urlopen(url, timeout=30) as response:
                poll["status"], poll["body"] = response.status, json.load(response)
            poll["answered"] = time.monotonic()

        poller = threading.Thread(target=long_poll)
        poller.start()
        time.sleep(1.0)  # the poll is waiting for events now
        assert not poll
        stopping = time.monotonic()
        podman("stop", "--time", str(GRACEFUL_TIMEOUT + 10), name, timeout=60)
        stopped = time.monotonic() - stopping
        poller.join(30)
        assert poll["status"] == 200 and poll["body"]["items"] == []
        assert poll["answered"] > stopping
        state = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        assert state == "0"
        assert stopped < GRACEFUL_TIMEOUT

        # Every line the container wrote is one JSON object, and none holds a secret.
        lines = service_lines(name)
        records = [json.loads(line) for line in lines]
        assert all(isinstance(record, dict) for record in records)
        assert not find_secrets("\n".join(lines))
        [term] = [r for r in records if r["message"] == "Handling signal: term"]
        answered = [r for r in records if r.get("route") == "/api/v1/events"][-1]
        assert answered["time"] > term["time"], "the long poll was answered before SIGTERM"
        workers = sum(r["message"].startswith("Booting worker") for r in records)
        assert sum(r["message"].startswith("database pool closed") for r in records) == workers
    finally:
        podman("rm", "--force", name, check=False)
    record_property(
        "summary",
        f"image: /health {healthy:.1f} s after `podman run`; stopped with a poll in flight in "
        f"{stopped:.1f} s",
    )
