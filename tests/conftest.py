"""Every test runs against a real PostgreSQL: a database cloned from a template that the migrations
built once per session (pytest-postgresql's noproc factory, against the server TEST_DATABASE_URL
names; `make test` provides one)."""

import hashlib
import threading
from pathlib import Path

import pytest
from pytest_postgresql import factories
from werkzeug.serving import make_server

from dataservice import create_app
from dataservice.cli import apply_migrations

from .support import FAST_ARGON2, SERVER, url_for_database

# One database name per checkout, so two clones can run their suites on one server at once.
_DBNAME = "ds_test_" + hashlib.sha256(str(Path(__file__).resolve()).encode()).hexdigest()[:8]


def migrate_template(host, port, user, dbname, password, **kwargs):
    """pytest-postgresql calls this once per session, against the template database."""
    apply_migrations(url_for_database(dbname))


postgresql_noproc = factories.postgresql_noproc(
    host=SERVER.get("host", "127.0.0.1"),
    port=int(SERVER.get("port", 5432)),
    user=SERVER.get("user"),
    password=SERVER.get("password"),
    dbname=_DBNAME,
    load=[migrate_template],
)
postgresql = factories.postgresql("postgresql_noproc")


@pytest.fixture
def database_url(postgresql) -> str:
    """A fresh, migrated database for this test."""
    return url_for_database(postgresql.info.dbname)


@pytest.fixture
def make_app(database_url):
    """Builds apps on this test's database; closes their pools before the database is dropped."""
    apps = []

    def make(**overrides):
        app = create_app(
            {
                "DATABASE_URL": database_url,
                "DATABASE_POOL_MIN_SIZE": 1,
                "DATABASE_POOL_TIMEOUT": 2.0,
                **FAST_ARGON2,
                **overrides,
            }
        )
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["db"].close()


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
