"""/metrics as Prometheus itself reads it: `promtool check metrics` (Debian's prometheus package)
finds nothing to complain of in a scrape of gunicorn's two workers after traffic."""

import shutil
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .support import AUTHORIZATION, new_user, request

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def scrape(base: str) -> str:
    with urllib.request.urlopen(base + "/metrics", timeout=10) as response:
        return response.read().decode()


def patch_username(base: str, user_id: int, username: str) -> int:
    req = urllib.request.Request(
        f"{base}/api/v1/users/{user_id}",
        data=f'{{"username": "{username}"}}'.encode(),
        method="PATCH",
        headers={"Content-Type": "application/merge-patch+json", "Authorization": AUTHORIZATION},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_metrics_pass_promtool_after_traffic(start_gunicorn, db):
    if not shutil.which(PROMTOOL):
        pytest.fail("promtool is missing: `make test` installs it (apt-get install prometheus)")
    base, _, _ = start_gunicorn(DATABASE_STATEMENT_TIMEOUT_MS="300")  # two workers
    status, user = request(base + "/api/v1/users", new_user(1))
    assert status == 201
    for _ in range(10):  # new connections, so that both workers serve some
        assert request(f"{base}/api/v1/users/{user['id']}")[0] == 200
        assert request(f"{base}/api/v1/users/999999")[0] == 404
        assert request(base + "/ready")[0] == 200
    # A database error, counted by kind: a write that waits out its statement timeout behind a
    # row lock this test holds.
    with db.transaction():
        db.execute("SELECT 1 FROM users WHERE id = %s FOR UPDATE", (user["id"],))
        assert patch_username(base, user["id"], "locked_out") == 503

    # Samples reach the shared files within LOG_FLUSH_SECONDS (0.2 s).
    deadline = time.monotonic() + 5
    while True:
        families = {f.name: f for f in text_string_to_metric_families(scrape(base))}
        counted = sum(s.value for s in families["dataservice_http_requests"].samples)
        if counted >= 32 and "dataservice_db_errors" in families:
            break
        assert time.monotonic() < deadline, "the requests were not all counted"
        time.sleep(0.1)
    text = scrape(base)

    checked = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0 and not checked.stdout + checked.stderr, (
        checked.stdout + checked.stderr
    )
    # What promtool read holds every kind of metric the service exports, with samples.
    kinds = {f.name: f.type for f in text_string_to_metric_families(text) if f.samples}
    assert kinds["dataservice_http_requests"] == "counter"
    assert kinds["dataservice_db_errors"] == "counter"
    assert kinds["dataservice_http_request_duration_seconds"] == "histogram"
    assert kinds["dataservice_db_pool_connections"] == "gauge"
