"""Every test runs against a real PostgreSQL: a database cloned from a template that the migrations
built once per session (pytest-postgresql's noproc factory, against the server TEST_DATABASE_URL
names; `make test` provides one)."""

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql
from pytest_postgresql import factories
from werkzeug.serving import make_server

from dataservice.app import close, create_app
from dataservice.logs import JsonFormatter
from dataservice.migrate import apply_migrations

from .private_cluster import free_port
from .support import (
    APP_PASSWORD,
    APP_ROLE,
    AUTHORIZATION,
    FAST_HASHING,
    SERVER,
    AuthorizedClient,
    find_secrets,
    register_test_client,
    request,
    url_for_database,
)

ROOT = Path(__file__).parent.parent
# One database name per checkout, so two clones can run their suites on one server at once, and
# per pytest-xdist worker (gw0, gw1...: `make test` runs the files on two), so its workers can.
_CHECKOUT = hashlib.sha256(str(Path(__file__).resolve()).encode()).hexdigest()[:8]
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
_DBNAME = f"ds_test_{_CHECKOUT}" + (f"_{_WORKER}" if _WORKER else "")


def migrate_template(host, port, user, dbname, password, **kwargs):
    """pytest-postgresql calls this once per session, against the template database: migrate,
    make the application's login role, and register the all-scopes test client."""
    url = url_for_database(dbname)
    # Roles belong to the whole server: the workers' templates are built one at a time, or two
    # would both find dataservice_app missing and the second CREATE ROLE would fail.
    with psycopg.connect(url_for_database(SERVER.get("dbname", "postgres"))) as maintenance:
        maintenance.execute("SELECT pg_advisory_lock(hashtext('dataservice tests: roles'))")
        apply_migrations(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                sql.SQL(
                    "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {role}) "
                    "THEN CREATE ROLE {ident} LOGIN PASSWORD {password} IN ROLE dataservice_app; "
                    "END IF; END $$"
                ).format(
                    role=sql.Literal(APP_ROLE),
                    ident=sql.Identifier(APP_ROLE),
                    password=sql.Literal(APP_PASSWORD),
                )
            )
            register_test_client(conn)


def _drop_leftovers_of_an_interrupted_run() -> None:
    """A run killed midway leaves this checkout's template and test databases behind, and
    pytest-postgresql will not create them over a leftover (every test errors with "already
    exists"). The names are this checkout's own, so dropping them is safe."""
    maintenance = url_for_database(SERVER.get("dbname", "postgres"))
    with psycopg.connect(maintenance, autocommit=True) as conn:
        for name in (_DBNAME + "_tmpl", _DBNAME):
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                database = sql.Identifier(name)
                # pytest-postgresql marks its template as one, and a template cannot be dropped
                conn.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE false").format(database))
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(database))


_drop_leftovers_of_an_interrupted_run()

postgresql_noproc = factories.postgresql_noproc(
    host=SERVER.get("host", "127.0.0.1"),
    port=int(SERVER.get("port", 5432)),
    user=SERVER.get("user"),
    password=SERVER.get("password"),
    dbname=_DBNAME,
    load=[migrate_template],
)
postgresql = factories.postgresql("postgresql_noproc")


def pytest_terminal_summary(terminalreporter):
    """Shows what tests reported with `record_property("summary", text)` (the image's size, its
    build times), also from the xdist workers."""
    reports = [*terminalreporter.stats.get("passed", ()), *terminalreporter.stats.get("failed", ())]
    lines = [text for r in reports for name, text in r.user_properties if name == "summary"]
    if lines:
        terminalreporter.section("reported by tests")
        for line in dict.fromkeys(lines):
            terminalreporter.write_line(line)


@pytest.fixture(scope="session", autouse=True)
def _no_secret_in_any_log():
    """Every log record of the whole run, formatted as production formats it, is searched for
    passwords, hashes and tokens at the end; finding one fails the run."""
    lines = []

    class Capture(logging.Handler):
        def emit(self, record):
            lines.append(self.format(record))

    capture = Capture()
    capture.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(capture)
    yield
    logging.getLogger().removeHandler(capture)
    leaks = sorted({secret for line in lines for secret in find_secrets(line)})
    assert not leaks, f"secrets in the logs: {leaks}"


@pytest.fixture(scope="session", autouse=True)
def _authenticated_urllib():
    """Requests the tests make over real HTTP (urllib) carry the test client's token."""
    opener = urllib.request.build_opener()
    opener.addheaders = [("Authorization", AUTHORIZATION)]
    urllib.request.install_opener(opener)
    yield
    urllib.request.install_opener(None)


@pytest.fixture
def empty_database(postgresql_noproc):
    """An empty database on the test server (this checkout's and worker's own name), for a test
    that migrates it as ops do; the suite's roles exist (the template made them). Its name."""
    name = _DBNAME + "_empty"
    maintenance = url_for_database(SERVER.get("dbname", "postgres"))
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def database_url(postgresql) -> str:
    """A fresh, migrated database for this test."""
    return url_for_database(postgresql.info.dbname)


@pytest.fixture
def app_database_url(postgresql) -> str:
    """This test's database, as the application role sees it."""
    return url_for_database(postgresql.info.dbname, user=APP_ROLE, password=APP_PASSWORD)


@pytest.fixture
def make_app(app_database_url):
    """Builds apps on this test's database, connected as the application role; closes their
    pools before the database is dropped."""
    apps = []

    def make(**overrides):
        app = create_app(
            {
                "DATABASE_URL": app_database_url,
                "DATABASE_POOL_MIN_SIZE": 1,
                "DATABASE_POOL_TIMEOUT": 2.0,
                "LOG_FLUSH_SECONDS": 0,  # lines at once (batches: test_observability)
                **FAST_HASHING,
                **overrides,
            }
        )
        app.config["TESTING"] = True
        app.test_client_class = AuthorizedClient
        apps.append(app)
        return app

    yield make
    for app in apps:
        close(app)


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def db(postgresql):
    """A direct connection to this test's database, for checking what the API really stored."""
    postgresql.autocommit = True
    return postgresql


@pytest.fixture
def serve():
    """Puts an app behind a real threaded HTTP server, for tests that need real concurrency;
    returns its base URL."""
    servers = []

    def start(app) -> str:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


@pytest.fixture
def start_pgbouncer():
    """Starts Debian's PgBouncer in transaction-pooling mode on a free port, in front of the test
    server, logging in there as `user` whoever the client is; returns a function of a database
    name giving a URL of it through PgBouncer, as that user. Stopped at the test's end."""
    if not Path(PGBOUNCER).exists():
        pytest.fail("pgbouncer is missing: `make test` installs it (apt-get install pgbouncer)")
    started = []

    def start(user: str, password: str | None):
        port = free_port()
        workdir = Path(tempfile.mkdtemp(prefix="ds-pgbouncer-"))
        host, server_port = SERVER.get("host", "127.0.0.1"), SERVER.get("port", 5432)
        login = f"user={user}" + (f" password={password}" if password else "")
        (workdir / "users.txt").write_text(f'"{user}" "{password or ""}"\n')
        (workdir / "pgbouncer.ini").write_text(f"""
[databases]
* = host={host} port={server_port} {login}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = {"plain" if password else "trust"}
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
            command = [*command, "-u", "postgres"]  # pgbouncer drops root itself
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append((process, workdir))
        auth = f"{quote(user, safe='')}:{quote(password, safe='')}" if password else user

        def url(dbname: str) -> str:
            return f"postgresql://{auth}@127.0.0.1:{port}/{dbname}"

        for _ in range(50):
            try:
                psycopg.connect(url(SERVER.get("dbname", "postgres")), connect_timeout=1).close()
                break
            except psycopg.OperationalError:
                time.sleep(0.1)
        return url

    yield start
    for process, workdir in started:
        process.terminate()
        process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def pgbouncer(postgresql, start_pgbouncer):
    """PgBouncer in front of this test's database as the application role; returns its URL."""
    # A session time zone other than UTC, as PgBouncer gives it (it refuses the `options` that
    # set UTC on a direct connection): timestamps must come out in UTC all the same.
    postgresql.execute(
        sql.SQL("ALTER DATABASE {} SET timezone = 'Asia/Kolkata'").format(
            sql.Identifier(postgresql.info.dbname)
        )
    )
    postgresql.commit()
    return start_pgbouncer(APP_ROLE, APP_PASSWORD)(postgresql.info.dbname)


@pytest.fixture
def owner_pgbouncer(start_pgbouncer):
    """PgBouncer in front of the test server as the test role, which owns the schema (what
    `dataservice migrate` needs); returns a function of a database name giving its URL."""
    return start_pgbouncer(SERVER.get("user", "postgres"), SERVER.get("password"))


@pytest.fixture
def start_gunicorn(database_url, tmp_path):
    """Starts `gunicorn -c gunicorn.conf.py APP` (APP wsgi:app unless given; two workers) on a
    free port with extra environment; returns (base URL, process, path of its output). Both
    streams go to that file unless `stderr_path` names one for stderr."""
    started = []

    def start(app="wsgi:app", stderr_path=None, **env):
        workers = int(env.get("WEB_WORKERS", 2))
        port = free_port()
        log_path = tmp_path / f"gunicorn-{port}.log"
        # Files, not pipes, so that output never blocks.
        log = log_path.open("w")
        errors = stderr_path.open("w") if stderr_path else subprocess.STDOUT
        process = subprocess.Popen(
            [Path(sys.executable).parent / "gunicorn", "-c", "gunicorn.conf.py", app],
            cwd=ROOT,
            env={
                **os.environ,
                "DATABASE_URL": database_url,
                "PORT": str(port),
                "WEB_WORKERS": str(workers),
                **{k: str(v) for k, v in FAST_HASHING.items()},
                **env,
            },
            stdout=log,
            stderr=errors,
        )
        log.close()
        if stderr_path:
            errors.close()
        started.append(process)
        base = f"http://127.0.0.1:{port}"
        gunicorn_lines = stderr_path or log_path
        deadline = time.monotonic() + 20
        # Every worker booted and one answering.
        while True:
            try:
                booted = gunicorn_lines.read_text().count("Booting worker") >= workers
                if booted and request(base + "/health")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("gunicorn did not start:\n" + gunicorn_lines.read_text())
            time.sleep(0.1)
        return base, process, log_path

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()
