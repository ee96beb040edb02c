"""The `dataservice` command: Flask's own commands (routes, shell, run) plus ours."""

import re
import sys

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext
from yoyo import get_backend, read_migrations

from . import MIGRATIONS_DIR, auth, create_app, db
from .db import yoyo_url
from .errors import Conflict
from .seed import seed_users
from .store import clients as clients_store
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


@main.group()
def clients():
    """Manage API clients and their bearer tokens."""


def _known_scopes(given: str) -> list[str]:
    """The scopes named (comma-separated, or `all`), each one an endpoint declares."""
    known = auth.scopes(current_app)
    if given.strip() == "all":
        return known
    scopes = [s.strip() for s in given.split(",") if s.strip()]
    if not scopes or set(scopes) - set(known):
        raise click.BadParameter(f"choose from {', '.join(known)}, or all", param_hint="--scopes")
    return scopes


@clients.command("create")
@click.argument("name")
@click.option(
    "--scopes",
    required=True,
    help="Comma-separated scopes, or `all` (`dataservice scopes` lists them).",
)
@with_appcontext
def create_client(name, scopes):
    """Create a client; its token is printed once, alone on the last line."""
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,100}", name):
        raise click.BadParameter("1 to 100 of A-Z a-z 0-9 . _ -", param_hint="NAME")
    scopes = _known_scopes(scopes)
    token = auth.new_token()
    try:
        with db.transaction() as conn:
            clients_store.create(conn, name=name, token_hash=auth.token_hash(token), scopes=scopes)
    except Conflict:
        raise click.ClickException(f"a client named {name} exists already") from None
    click.echo(f"created client {name} with scopes {','.join(scopes)}")
    click.echo("its token follows; it is shown only now:")
    click.echo(token)


@main.command("scopes")
@with_appcontext
def list_scopes():
    """List the scopes the endpoints require (what `clients create --scopes` takes)."""
    for scope in auth.scopes(current_app):
        click.echo(scope)


@clients.command("list")
@with_appcontext
def list_clients():
    """List clients (never their tokens)."""
    with db.connection() as conn:
        rows = clients_store.all_clients(conn)
    for row in rows:
        state = f"revoked {row['revoked_at']:%Y-%m-%d %H:%M}" if row["revoked_at"] else "active"
        click.echo(
            f"{row['name']}\t{','.join(row['scopes'])}\t"
            f"created {row['created_at']:%Y-%m-%d %H:%M}\t{state}"
        )


@clients.command("revoke")
@click.argument("name")
@with_appcontext
def revoke_client(name):
    """Revoke a client's token (effective within AUTH_CACHE_SECONDS everywhere)."""
    with db.transaction() as conn:
        revoked = clients_store.revoke(conn, name)
    if revoked is None:
        raise click.ClickException(f"no active client named {name}")
    click.echo(f"revoked {name}")


@main.command()
@click.option(
    "--users",
    "count",
    type=click.IntRange(min=1),
    required=True,
    help="How many fake users to add.",
)
@with_appcontext
def seed(count):
    """Load COUNT realistic fake users quickly (COPY), for demos and benchmarks."""
    with db.transaction() as conn:
        conn.execute("SET LOCAL statement_timeout = 0")  # one long COPY, not API traffic
        start = conn.execute("SELECT coalesce(max(id), 0) AS n FROM users").fetchone()["n"]
        with click.progressbar(length=count, label="seeding users", file=sys.stderr) as bar:
            seed_users(conn, count, start=start, progress=bar.update)
    with db.connection() as conn:
        # Fresh statistics so the planner sees the new rows now; only the owner may ANALYZE
        # (PostgreSQL merely warns otherwise), and autovacuum gets there soon after.
        owner = conn.execute(
            "SELECT pg_has_role(relowner, 'USAGE') AS ok"
            "  FROM pg_class WHERE oid = 'users'::regclass"
        ).fetchone()["ok"]
        if owner:
            conn.execute("ANALYZE users")
        else:
            click.echo("not the table's owner: statistics are left to autovacuum", err=True)
    click.echo(f"seeded {count} users")
