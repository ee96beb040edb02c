"""Applying the migrations with yoyo: under its lock, with migrate's limits on every statement,
straight at PostgreSQL or through PgBouncer in transaction mode (DATABASE_PGBOUNCER=true).
`dataservice migrate` (cli.py) reports what goes wrong; the tests and the benchmark call
apply_migrations directly.
"""

from urllib.parse import parse_qsl, urlencode, urlsplit

import psycopg
from yoyo import default_migration_table, get_backend, read_migrations
from yoyo.backends.core.postgresql import PostgresqlPsycopgBackend
from yoyo.connections import parse_uri

from . import MIGRATIONS_DIR
from .db import yoyo_url
from .queries import queries


class MigrationFailed(Exception):
    """A migration failed and was not recorded; those before it in the same run stay applied."""

    def __init__(self, migration, error: psycopg.Error, invalid_indexes: list[str]):
        super().__init__(f"{migration.id}: {error}")
        self.migration = migration
        self.error = error
        self.invalid_indexes = invalid_indexes


class NoDirectConnection(Exception):
    """Behind PgBouncer, a migration outside a transaction could not open its connection
    straight to PostgreSQL (`url`); nothing of it ran."""

    def __init__(self, migration, url: str, error: psycopg.OperationalError):
        super().__init__(f"{migration.id}: {error}")
        self.migration = migration
        self.url = url
        self.error = error


def _migration_limits(
    lock_timeout_ms: int | None, statement_timeout_ms: int | None
) -> dict[str, int]:
    """migrate's limits on its statements, by PostgreSQL setting; None is no limit of its own."""
    given = {"lock_timeout": lock_timeout_ms, "statement_timeout": statement_timeout_ms}
    return {name: value for name, value in given.items() if value is not None}


def migration_url(
    database_url: str,
    *,
    lock_timeout_ms: int | None = None,
    statement_timeout_ms: int | None = None,
    options: bool = True,
) -> str:
    """yoyo's URL for `database_url`, with the session limits given. yoyo opens a connection of
    its own for each migration, so the limits travel in the URL, as libpq's `options`; without
    `options` (PgBouncer refuses them) only the application name does."""
    parts = urlsplit(yoyo_url(database_url))
    query = dict(parse_qsl(parts.query))
    limits = _migration_limits(lock_timeout_ms, statement_timeout_ms)
    if limits:
        if options:
            settings = [f"-c {name}={value}" for name, value in limits.items()]
            query["options"] = " ".join([query.get("options", ""), *settings]).strip()
        query.setdefault("application_name", "dataservice-migrate")  # for pg_stat_activity
    return parts._replace(query=urlencode(query)).geturl()


class TransactionPooledBackend(PostgresqlPsycopgBackend):
    """yoyo's psycopg backend for a connection through PgBouncer in transaction mode, which
    hands each transaction to any of its server connections: a session setting would stay on
    whichever one ran it (and leak to other clients), and a prepared statement would be looked
    for on another. So no prepared statements, and migrate's limits are set with SET LOCAL
    (set_config(..., true)) at the start of every transaction yoyo opens: each migration's, and
    its own bookkeeping's."""

    limits: tuple[tuple[str, int], ...] = ()  # (setting, value)

    @classmethod
    def open(cls, url: str, limits: dict[str, int]) -> "TransactionPooledBackend":
        """The backend for `url` (yoyo's get_backend, with this class)."""
        backend = cls(parse_uri(url), default_migration_table)
        backend.limits = tuple(limits.items())
        backend.init_database()
        return backend

    def connect(self, dburi):
        connection = super().connect(dburi)
        connection.prepare_threshold = None
        return connection

    def begin(self):
        super().begin()
        for name, value in self.limits:
            queries.migrate.set_local(self.connection, name=name, value=str(value))

    def copy(self):  # yoyo runs each migration on a copy, with a connection of its own
        twin = super().copy()
        twin.limits = self.limits
        return twin


def _invalid_indexes(backend) -> list[str]:
    """Invalid indexes in the database: what a failed CREATE INDEX CONCURRENTLY leaves behind."""
    try:
        rows = queries.migrate.invalid_indexes(backend.connection)
    except psycopg.Error:
        return []  # the migration's own error is the one to report
    return [name for (name,) in rows]


def apply_migrations(
    database_url: str,
    directory=MIGRATIONS_DIR,
    *,
    lock_timeout_ms: int | None = None,
    statement_timeout_ms: int | None = None,
    direct_url: str | None = None,
) -> list[str]:
    """Apply every pending migration under yoyo's lock; returns the ids applied. A migration
    that fails raises MigrationFailed naming it; yoyo's lock is released either way.

    With `direct_url`, `database_url` is taken to go through PgBouncer in transaction mode
    (DATABASE_PGBOUNCER=true): the limits are set in each migration's transaction
    (TransactionPooledBackend), and a migration that cannot run in a transaction (CREATE INDEX
    CONCURRENTLY), which needs one session for its limits and its statement, runs over
    `direct_url`, a connection straight to PostgreSQL, with the limits as startup options."""
    limits = {"lock_timeout_ms": lock_timeout_ms, "statement_timeout_ms": statement_timeout_ms}
    if direct_url is None:
        backend = get_backend(migration_url(database_url, **limits))
    else:
        backend = TransactionPooledBackend.open(
            migration_url(database_url, **limits, options=False),
            _migration_limits(lock_timeout_ms, statement_timeout_ms),
        )
    direct = None  # opened for the first migration outside a transaction, behind PgBouncer
    try:
        migrations = read_migrations(str(directory))
        with backend.lock():
            pending = backend.to_apply(migrations)
            for migration in pending:
                runner = backend
                if direct_url is not None and not migration.use_transactions:
                    if direct is None:
                        try:
                            direct = get_backend(migration_url(direct_url, **limits))
                        except psycopg.OperationalError as exc:
                            raise NoDirectConnection(migration, direct_url, exc) from exc
                    runner = direct
                try:
                    runner.apply_one(migration)
                except psycopg.Error as exc:
                    invalid = [] if migration.use_transactions else _invalid_indexes(runner)
                    raise MigrationFailed(migration, exc, invalid) from exc
            backend.run_post_apply(pending)
        return [m.id for m in pending]
    finally:
        backend.connection.close()
        if direct is not None:
            direct.connection.close()
