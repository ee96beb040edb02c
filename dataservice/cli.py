"""The `dataservice` command: Flask's own commands (routes, shell, run) plus ours."""

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext
from yoyo import get_backend, read_migrations

from . import MIGRATIONS_DIR, create_app, db
from .db import yoyo_url
from .store import events as events_store
from .store import idempotency as idempotency_store


def apply_migrations(database_url: str, directory=MIGRATIONS_DIR) -> list[str]:
    """Apply every pending migration under yoyo's lock; returns the ids applied."""
    backend = get_backend(yoyo_url(database_url))
    try:
        migrations = read_migrations(str(directory))
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
        return [m.id for m in pending]
    finally:
        backend.connection.close()


@click.group(cls=FlaskGroup, create_app=create_app, add_version_option=False)
def main():
    """Run and manage the data service."""


@main.command()
@click.option(
    "--database-url",
    envvar="MIGRATION_DATABASE_URL",
    default=None,
    help="Database to migrate, as the owner role (default: MIGRATION_DATABASE_URL, "
    "then DATABASE_URL).",
)
@with_appcontext
def migrate(database_url):
    """Apply pending migrations (the same as `yoyo apply`)."""
    applied = apply_migrations(database_url or current_app.config["DATABASE_URL"])
    click.echo(
        f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else "")
    )


@main.command()
@with_appcontext
def prune():
    """Delete expired idempotency records and change-feed events past their retention."""
    retention = current_app.config["EVENT_RETENTION_DAYS"] * 86400
    with db.transaction() as conn:
        keys = idempotency_store.prune(conn)
        old_events = events_store.prune(conn, retention)
    click.echo(f"pruned {keys} idempotency record(s) and {old_events} event(s)")
