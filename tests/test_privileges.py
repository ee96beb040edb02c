"""Least privilege: the application role reads and writes the service's tables and nothing more."""

import psycopg
import pytest
from psycopg import errors

from dataservice.migrate import apply_migrations

from .private_cluster import PrivateCluster
from .support import find_secrets

YOYO_TABLES = ("_yoyo_migration", "_yoyo_log", "_yoyo_version", "yoyo_lock")
DML = {"SELECT", "INSERT", "UPDATE", "DELETE"}
# Lookup tables the migrations fill: the service only reads them.
READ_ONLY = {"api_scopes"}


@pytest.fixture
def as_app(app_database_url):
    with psycopg.connect(app_database_url, autocommit=True) as conn:
        yield conn


@pytest.mark.parametrize(
    "statement",
    [
        "DROP TABLE users",
        "ALTER TABLE users ADD COLUMN admin boolean",
        "ALTER TABLE users DROP CONSTRAINT users_username_check",
        "TRUNCATE users",
        "TRUNCATE events",
        "CREATE TABLE intruder (id int)",
        "CREATE INDEX intruder_idx ON users (email)",
        "DROP FUNCTION applied_migrations()",
        *[f"SELECT * FROM {table}" for table in YOYO_TABLES],
        "DELETE FROM yoyo_lock",
        "INSERT INTO _yoyo_migration (migration_hash, migration_id) VALUES ('x', 'x')",
    ],
)
def test_the_application_role_cannot(as_app, statement):
    with pytest.raises((errors.InsufficientPrivilege, errors.UndefinedTable)) as raised:
        as_app.execute(statement)
    # UndefinedTable only where yoyo never created that table here; privilege is the point.
    assert isinstance(raised.value, errors.InsufficientPrivilege) or "yoyo" in statement


def test_the_application_role_can_do_its_work(as_app):
    as_app.execute(
        "INSERT INTO users (email, username, password_hash) "
        "VALUES ('a@b.io', 'abc', '$2b$04$' || repeat('a', 53))"
    )
    as_app.execute("UPDATE users SET username = 'abd'")
    assert as_app.execute("SELECT count(*) FROM applied_migrations()").fetchone()[0] > 0
    as_app.execute("DELETE FROM users")


def test_every_service_table_grants_exactly_dml_to_the_application_role(db):
    # ... or exactly SELECT, for a lookup table the migrations fill
    tables = [
        name
        for (name,) in db.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
        if name not in YOYO_TABLES
    ]
    assert {"users", "events", "idempotency_keys", "api_clients", "organizations"} <= set(tables)
    assert set(tables) >= READ_ONLY
    for table in tables:
        granted = {
            privilege
            for (privilege,) in db.execute(
                "SELECT privilege_type FROM information_schema.role_table_grants "
                "WHERE grantee = 'dataservice_app' AND table_name = %s",
                (table,),
            ).fetchall()
        }
        expected = {"SELECT"} if table in READ_ONLY else DML
        assert granted == expected, f"{table}: dataservice_app has {sorted(granted)}"
    for table in YOYO_TABLES:
        assert not db.execute(
            "SELECT has_table_privilege('dataservice_app', %s, 'SELECT')", (table,)
        ).fetchone()[0], table


def test_the_migrations_create_the_role_nologin():
    # Roles belong to the whole cluster (and `make run` gives this one LOGIN on the shared
    # server), so this is checked on a cluster of the test's own, where the role is new.
    cluster = PrivateCluster()
    try:
        apply_migrations(cluster.url)
        with psycopg.connect(cluster.url) as conn:
            row = conn.execute(
                "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'dataservice_app'"
            ).fetchone()
        assert row == (False,)
    finally:
        cluster.destroy()


def test_the_log_check_finds_planted_secrets():
    line = (
        '{"message": "oops", "token": "dsk_' + "x" * 43 + '", "h": "$argon2id$v=19$m=1", '
        '"p": "correct horse battery staple"}'
    )
    assert len(find_secrets(line)) == 3
    assert find_secrets('{"message": "request", "client": "tests"}') == []
