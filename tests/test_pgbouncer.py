"""Behind PgBouncer in transaction-pooling mode (Debian's pgbouncer, started here on a free
port in front of the test server) the API works: no prepared statement or session setting
leaks from one transaction to another."""

import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from .private_cluster import free_port
from .support import APP_PASSWORD, APP_ROLE, SERVER, new_user

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


@pytest.fixture
def pgbouncer(postgresql):
    if not Path(PGBOUNCER).exists():
        pytest.fail("pgbouncer is missing: `make test` installs it (apt-get install pgbouncer)")
    # A session time zone other than UTC, as PgBouncer gives it (it refuses the `options` that
    # set UTC on a direct connection): timestamps must come out in UTC all the same.
    postgresql.execute(
        sql.SQL("ALTER DATABASE {} SET timezone = 'Asia/Kolkata'").format(
            sql.Identifier(postgresql.info.dbname)
        )
    )
    postgresql.commit()
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="ds-pgbouncer-"))
    host, server_port = SERVER.get("host", "127.0.0.1"), SERVER.get("port", 5432)
    (workdir / "users.txt").write_text(f'"{APP_ROLE}" "{APP_PASSWORD}"\n')
    (workdir / "pgbouncer.ini").write_text(f"""
[databases]
* = host={host} port={server_port} user={APP_ROLE} password={APP_PASSWORD}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = plain
auth_file = {workdir}/users.txt
pool_mode = transaction
default_pool_size = 2
max_client_conn = 200
ignore_startup_parameters = extra_float_digits
logfile = {workdir}/pgbouncer.log
pidfile = {workdir}/pgbouncer.pid
""")
    command = [PGBOUNCER, str(workdir / "pgbouncer.ini")]
    if subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip() == "0":
        shutil.chown(workdir, "postgres")
        for path in workdir.iterdir():
            shutil.chown(path, "postgres")
        command = ["runuser", "-u", "postgres", "--", *command]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"postgresql://{APP_ROLE}:{APP_PASSWORD}@127.0.0.1:{port}/{postgresql.info.dbname}"
    for _ in range(50):
        try:
            psycopg.connect(url, connect_timeout=1).close()
            break
        except psycopg.OperationalError:
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(10)
    shutil.rmtree(workdir, ignore_errors=True)


def test_the_api_through_pgbouncer_transaction_pooling(make_app, pgbouncer, app_database_url):
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
