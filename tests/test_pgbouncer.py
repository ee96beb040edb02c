"""Behind PgBouncer in transaction-pooling mode (Debian's pgbouncer, started here on a free
port in front of the test server) the API works: no prepared statement or session setting
leaks from one transaction to another. The README's PgBouncer line, followed as written, takes
`make run` from an empty database to a serving instance. (The fixtures are in conftest.py;
migrate's limits through PgBouncer: test_migration_timeouts.py.)"""

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
from psycopg import sql

from dataservice import migration_ids

from .private_cluster import free_port
from .support import (
    FAST_HASHING,
    SERVER,
    new_user,
    register_test_client,
    request,
    url_for_database,
)

ROOT = Path(__file__).parent.parent


def test_the_api_through_pgbouncer_transaction_pooling(pgbouncer, make_app, app_database_url):
    app = make_app(
        DATABASE_URL=pgbouncer,
        DATABASE_PGBOUNCER=True,
        DATABASE_LISTEN_URL=app_database_url,  # LISTEN needs a direct session
        DATABASE_POOL_MIN_SIZE=4,
        DATABASE_POOL_MAX_SIZE=4,
        DATABASE_POOL_TIMEOUT=10.0,
    )

    def scenario(worker: int):
        client = app.test_client()
        for n in range(10):  # well past psycopg's prepare threshold of 5
            number = 1000 * worker + n
            created = client.post("/api/v1/users", json=new_user(number))
            assert created.status_code == 201, created.get_json()
            user = created.get_json()
            url = f"/api/v1/users/{user['id']}"
            assert client.get(url).get_json() == user
            assert client.get(f"/api/v1/users/by-username/user{number}").status_code == 200
            page = client.get("/api/v1/users?limit=2&sort=-created_at").get_json()
            if page["next_cursor"]:
                cursor = page["next_cursor"]
                more = client.get(f"/api/v1/users?limit=2&sort=-created_at&cursor={cursor}")
                assert more.status_code == 200
            patched = client.patch(
                url, json={"username": f"renamed{number}"}, headers={"If-Match": '"1"'}
            )
            assert patched.status_code == 200
            changed = client.put(url + "/password", json={"password": "long enough"})
            assert changed.status_code == 204
            check = client.post(
                "/api/v1/users/verify-credentials",
                json={"login": f"renamed{number}", "password": "long enough"},
            )
            assert check.status_code == 200
            key = {"Idempotency-Key": f"k{number}"}
            replay = [
                client.post(
                    "/api/v1/batch",
                    headers=key,
                    json={"operations": [{"method": "DELETE", "path": url}]},
                )
                for _ in range(2)
            ]
            assert [r.status_code for r in replay] == [200, 200]
            assert replay[1].headers["Idempotent-Replayed"] == "true"
            assert client.get(url).status_code == 404
            assert client.get("/api/v1/events?limit=5").status_code == 200
        return True

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(scenario, range(4)))
    # timestamps look the same as without PgBouncer: UTC whatever the session's TimeZone
    with psycopg.connect(pgbouncer) as conn:
        assert conn.execute("SHOW timezone").fetchone()[0] == "Asia/Kolkata"
    created = app.test_client().post("/api/v1/users", json=new_user(99)).get_json()
    assert created["created_at"].endswith("+00:00")


def test_the_readmes_pgbouncer_line_takes_make_run_from_an_empty_database_to_serving(
    owner_pgbouncer, tmp_path
):
    # The line, as a newcomer reads it: these two settings and nothing else.
    readme = (ROOT / "README.md").read_text()
    [line] = re.findall(r"^- PgBouncer: .*?(?=^- |^$)", readme, re.MULTILINE | re.DOTALL)
    assert "`DATABASE_PGBOUNCER=true`" in line and "`DATABASE_LISTEN_URL`" in line
    assert "MIGRATION_DATABASE_URL" not in line
    name = "readme_" + uuid.uuid4().hex[:8]
    maintenance = url_for_database(SERVER.get("dbname", "postgres"))
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    port = free_port()
    bin_dir = Path(sys.executable).parent
    output = tmp_path / "make-run.log"
    with output.open("w") as log:
        # make run as the README has it, with DATABASE_URL at PgBouncer; the venv is this one,
        # taken as installed (-o: make must not rebuild it under a test).
        make = subprocess.Popen(
            ["make", "run", f"BIN={bin_dir}", "-o", f"{bin_dir}/.installed"],
            cwd=ROOT,
            env={
                "PATH": os.environ["PATH"],
                "DATABASE_URL": owner_pgbouncer(name),
                "DATABASE_PGBOUNCER": "true",
                "DATABASE_LISTEN_URL": url_for_database(name),
                "PORT": str(port),
                "WEB_WORKERS": "1",
                **{k: str(v) for k, v in FAST_HASHING.items()},
            },
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # make and the gunicorn it runs: one group to stop
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert make.poll() is None, output.read_text()
            assert time.monotonic() < deadline, output.read_text()
            try:
                if request(base + "/ready")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert f"applied {len(migration_ids())} migration(s)" in output.read_text()
        with psycopg.connect(url_for_database(name), autocommit=True) as conn:
            register_test_client(conn)
            valid = conn.execute(
                "SELECT indisvalid FROM pg_index"
                " WHERE indexrelid = 'users_created_at_id_idx'::regclass"
            ).fetchone()
            assert valid == (True,)  # 0002's CREATE INDEX CONCURRENTLY, over the direct URL
        status, created = request(base + "/api/v1/users", new_user(1))
        assert status == 201, created
        status, page = request(base + "/api/v1/events?wait=5")
        assert status == 200 and [e["entity_id"] for e in page["items"]] == [created["id"]]
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGTERM)  # gunicorn drains and exits, then make
            make.wait(timeout=30)
        with psycopg.connect(maintenance, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
