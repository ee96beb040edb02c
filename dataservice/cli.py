"""The `dataservice` command: Flask's own commands (routes, shell, run) plus ours.

Every failure ends with one line on stderr (`Error: ...`) and a non-zero exit, never a traceback
or a page of usage: a bad setting, a database that cannot be reached or refuses a startup
parameter, a migration that gave up, a wrong argument. (A bug still shows its traceback.)
"""

import functools
import re
import sys
from contextlib import contextmanager

import click
import psycopg
from flask import current_app
from flask.cli import FlaskGroup, ScriptInfo, with_appcontext
from psycopg import errors as pg_errors
from yoyo.connections import BadConnectionURI
from yoyo.exceptions import LockTimeout

from . import auth, connectivity, db
from . import seed as seeding
from .admission import DEFAULT_LIMITS, UNLIMITED, Limits
from .app import create_app
from .catalog import CatalogError
from .config import ConfigError
from .db import libpq_url
from .errors import Conflict, ServiceError
from .migrate import MigrationFailed, NoDirectConnection, apply_migrations
from .store import clients as clients_store
from .store import events as events_store
from .store import idempotency as idempotency_store

# What to do when the server refuses the `options` that carry migrate's timeouts.
MIGRATE_STARTUP_FIX = (
    "behind PgBouncer in transaction mode, set DATABASE_PGBOUNCER=true (with DATABASE_LISTEN_URL "
    "straight at PostgreSQL), or migrate straight against PostgreSQL (MIGRATION_DATABASE_URL)"
)
# The same, for the direct connection a migration outside a transaction needs behind PgBouncer.
DIRECT_STARTUP_FIX = (
    "point DATABASE_LISTEN_URL (or MIGRATION_DATABASE_URL) straight at PostgreSQL, not at PgBouncer"
)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _error(message: str, exit_code: int = 1) -> click.ClickException:
    error = click.ClickException(" ".join(message.split()))  # one line, whatever it quotes
    error.exit_code = exit_code
    return error


@contextmanager
def _one_line_errors():
    try:
        yield
    except click.UsageError as exc:  # click would print the usage and a hint above it
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        raise _error(exc.format_message().rstrip(".") + hint, exc.exit_code) from None
    except click.ClickException as exc:
        raise _error(exc.format_message(), exc.exit_code) from None
    except (ConfigError, CatalogError) as exc:
        raise _error(str(exc)) from None
    except ServiceError as exc:  # Unavailable from the pool, and the like
        raise _error(exc.detail) from None
    except psycopg.Error as exc:
        raise _error(f"{type(exc).__name__}: {_first_line(exc)}") from None


class Commands(FlaskGroup):
    """Flask's command group, with every failure told in one line (see the module's doc)."""

    def make_context(self, *args, **kwargs):
        with _one_line_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with _one_line_errors():
            return super().invoke(ctx)

    def list_commands(self, ctx):
        # FlaskGroup prints the traceback of an app that fails to load above the help.
        try:
            ctx.ensure_object(ScriptInfo).load_app()
        except ConfigError as exc:
            click.echo(f"Error: {exc} (the commands listed below work once it is fixed)", err=True)
            return sorted(super(FlaskGroup, self).list_commands(ctx))
        return super().list_commands(ctx)


def with_database(command):
    """with_appcontext, then one direct connection attempt with the pool's own settings: a
    database the pool can never reach fails the command at once, saying why, rather than after
    DATABASE_POOL_TIMEOUT with a bare "unavailable" (the pool retries in the background)."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        database = db.get()
        try:
            psycopg.connect(database.pool.conninfo, **database.pool.kwargs).close()
        except psycopg.OperationalError as exc:
            raise click.ClickException(database.reachability.explain(exc)) from None
        return command(*args, **kwargs)

    return with_appcontext(run)


def _app_for_commands():
    # The commands describe the catalog only when they need it (`check`): `migrate` runs
    # against a database that is not migrated yet.
    return create_app({"CATALOG_DESCRIBE_AT_START": False})


@click.group(cls=Commands, create_app=_app_for_commands, add_version_option=False)
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
    """Apply pending migrations (what `yoyo apply` does, with MIGRATION_LOCK_TIMEOUT_MS and
    MIGRATION_STATEMENT_TIMEOUT_MS on its statements). With DATABASE_PGBOUNCER=true they are
    set in each migration's transaction, and a migration that cannot run in one goes straight
    to PostgreSQL: over MIGRATION_DATABASE_URL when it is set, else DATABASE_LISTEN_URL."""
    settings = current_app.config
    url = database_url or settings["DATABASE_URL"]
    direct_url = None
    if settings["DATABASE_PGBOUNCER"]:
        direct_url = database_url or settings["DATABASE_LISTEN_URL"] or settings["DATABASE_URL"]
    lock_ms = settings["MIGRATION_LOCK_TIMEOUT_MS"]
    statement_ms = settings["MIGRATION_STATEMENT_TIMEOUT_MS"]
    try:
        applied = apply_migrations(
            url, lock_timeout_ms=lock_ms, statement_timeout_ms=statement_ms, direct_url=direct_url
        )
    except MigrationFailed as exc:
        raise click.ClickException(_migration_failure(exc, lock_ms, statement_ms)) from None
    except NoDirectConnection as exc:
        reason = connectivity.describe(
            exc.error, libpq_url(exc.url), startup_fix=DIRECT_STARTUP_FIX
        )
        raise click.ClickException(
            f"migration {exc.migration.id} runs outside a transaction, which behind PgBouncer "
            f"needs a connection straight to PostgreSQL: {reason}; nothing of it was applied"
        ) from None
    except LockTimeout as exc:
        raise click.ClickException(
            f"another migration has held yoyo's lock for 10 s: {exc}"
        ) from None
    except BadConnectionURI:
        raise click.ClickException(
            "migrate needs a postgresql:// URL in MIGRATION_DATABASE_URL or DATABASE_URL "
            "(yoyo takes no key=value string)"
        ) from None
    except psycopg.OperationalError as exc:
        if exc.sqlstate is not None:  # the server answered a statement: not a failed connect
            raise
        message = connectivity.describe(exc, libpq_url(url), startup_fix=MIGRATE_STARTUP_FIX)
        raise click.ClickException(message) from None
    click.echo(
        f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else "")
    )


def _migration_failure(exc: MigrationFailed, lock_ms: int, statement_ms: int) -> str:
    error = exc.error
    if isinstance(error, pg_errors.LockNotAvailable):
        what = (
            f"gave up after waiting {lock_ms} ms for a lock (MIGRATION_LOCK_TIMEOUT_MS), rather "
            "than queue every request behind it: a long transaction holds a lock on a table it "
            "changes. Run dataservice migrate again once that transaction has ended "
            "(pg_stat_activity shows it), or at a quieter time"
        )
    elif isinstance(error, pg_errors.QueryCanceled):
        what = (
            f"was cancelled after running {statement_ms} ms (MIGRATION_STATEMENT_TIMEOUT_MS): "
            "run it at a quieter time, or with a higher limit if it is a long CREATE INDEX "
            "CONCURRENTLY"
        )
    else:
        what = f"failed: {type(error).__name__}: {_first_line(error)}"
    if exc.migration.use_transactions:
        after = "nothing of it was applied"
    elif exc.invalid_indexes:
        names = ", ".join(exc.invalid_indexes)
        after = (
            f"it ran outside a transaction and left the invalid index {names}: "
            "DROP INDEX CONCURRENTLY it before migrating again"
        )
    else:
        after = "it ran outside a transaction: check what it left (docs/operations.md)"
    return f"migration {exc.migration.id} {what}; {after}"


@main.command()
@with_database
def prune():
    """Delete expired idempotency records and change-feed events past their retention."""
    retention = current_app.config["EVENT_RETENTION_DAYS"] * 86400
    with db.write() as conn:
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
    unknown = [s for s in scopes if s not in known]
    if unknown or not scopes:
        named = f"unknown scope {', '.join(unknown)}: " if unknown else ""
        raise click.BadParameter(
            f"{named}choose from {', '.join(known)}, or all", param_hint="'--scopes'"
        )
    return scopes


def _limit_options(command):
    """--rate, --burst, --in-flight and --unlimited, shared by `clients create` and `limits`."""
    options = [
        click.option("--rate", type=click.FloatRange(0, min_open=True), help="Requests/s."),
        click.option("--burst", type=click.IntRange(1), help="Requests at once (2 x rate)."),
        click.option("--in-flight", type=click.IntRange(1), help="Requests in flight at once."),
        click.option("--unlimited", is_flag=True, help="No rate and no in-flight limit."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _limits(rate, burst, in_flight, unlimited, base: Limits) -> Limits:
    """The limits the options give, the others taken from `base`."""
    if unlimited:
        if rate or burst or in_flight:
            raise click.UsageError("--unlimited takes no --rate, --burst or --in-flight")
        return UNLIMITED
    if burst and not (rate or base.rate):
        raise click.UsageError("--burst needs a --rate")
    rate = rate or base.rate
    if rate:
        burst = burst or (base.burst if rate == base.rate else max(1, round(2 * rate)))
    return Limits(rate, burst, in_flight or base.in_flight)


def _limit_columns(limits: Limits) -> dict:
    """The client's limits as the api_clients columns hold them."""
    return {
        "rate_per_second": limits.rate,
        "burst": limits.burst,
        "max_in_flight": limits.in_flight,
    }


def _describe(limits: Limits) -> str:
    rate = f"{limits.rate:g}/s burst {limits.burst}" if limits.rate else "no rate limit"
    in_flight = f"{limits.in_flight} in flight" if limits.in_flight else "no in-flight limit"
    return "unlimited" if limits.unlimited else f"{rate}, {in_flight}"


@clients.command("create")
@click.argument("name")
@click.option(
    "--scopes",
    required=True,
    help="Comma-separated scopes, or `all` (`dataservice scopes` lists them).",
)
@_limit_options
@with_database
def create_client(name, scopes, rate, burst, in_flight, unlimited):
    """Create a client; its token is printed once, alone on the last line. Without limit
    options it gets the defaults (see `dataservice clients limits`)."""
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,100}", name):
        raise click.BadParameter("1 to 100 of A-Z a-z 0-9 . _ -", param_hint="NAME")
    scopes = _known_scopes(scopes)
    limits = _limits(rate, burst, in_flight, unlimited, DEFAULT_LIMITS)
    token = auth.new_token()
    try:
        with db.write() as conn:
            clients_store.create(
                conn,
                name=name,
                token_hash=auth.token_hash(token),
                scopes=scopes,
                **_limit_columns(limits),
            )
    except Conflict:
        raise click.ClickException(f"a client named {name} exists already") from None
    click.echo(f"created client {name} with scopes {','.join(scopes)}; {_describe(limits)}")
    click.echo("its token follows; it is shown only now:")
    click.echo(token)


@clients.command("limits")
@click.argument("name")
@_limit_options
@with_database
def client_limits(name, rate, burst, in_flight, unlimited):
    """Change a client's limits (effective within AUTH_CACHE_SECONDS). Over its rate or its
    requests in flight, a client gets 429s; other clients are not affected. Options left out
    keep their value; --unlimited removes both limits."""
    if not (rate or burst or in_flight or unlimited):
        raise click.UsageError("give --rate (and --burst), --in-flight, or --unlimited")
    with db.write() as conn:
        current = next((c for c in clients_store.all_clients(conn) if c["name"] == name), None)
        if current is None or current["revoked_at"] is not None:
            raise click.ClickException(f"no active client named {name}")
        limits = _limits(rate, burst, in_flight, unlimited, auth.limits_of(current))
        clients_store.set_limits(conn, name, **_limit_columns(limits))
    click.echo(f"{name}: {_describe(limits)}")


@main.command("check")
@with_database
def check_catalog():
    """Describe every endpoint query of the catalog with the database (docs/queries.md): fails,
    a line per query, when one no longer describes (a migration dropped a column it reads) or
    declares what the database does not know (a scope). CI runs it through make test."""
    catalog = current_app.extensions["catalog"]
    with psycopg.connect(db.get().pool.conninfo, autocommit=True) as conn:
        lines = catalog.failures(conn)
        if not lines:
            try:
                catalog.describe(conn)
            except CatalogError as exc:
                lines = [str(exc)]
    if lines:
        raise click.ClickException("; ".join(lines))
    click.echo(f"{len(catalog.queries)} endpoint queries describe")


@main.command("scopes")
@with_appcontext
def list_scopes():
    """List the scopes the endpoints require (what `clients create --scopes` takes)."""
    for scope in auth.scopes(current_app):
        click.echo(scope)


@clients.command("list")
@with_database
def list_clients():
    """List clients (never their tokens)."""
    with db.read() as conn:
        rows = clients_store.all_clients(conn)
    for row in rows:
        state = f"revoked {row['revoked_at']:%Y-%m-%d %H:%M}" if row["revoked_at"] else "active"
        click.echo(
            f"{row['name']}\t{','.join(row['scopes'])}\t{_describe(auth.limits_of(row))}\t"
            f"created {row['created_at']:%Y-%m-%d %H:%M}\t{state}"
        )


@clients.command("revoke")
@click.argument("name")
@with_database
def revoke_client(name):
    """Revoke a client's token (effective within AUTH_CACHE_SECONDS everywhere)."""
    with db.write() as conn:
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
@click.option(
    "--organizations",
    type=click.IntRange(min=0),
    default=0,
    help="How many fake organizations to add, five members each among all users.",
)
@with_database
def seed(count, organizations):
    """Load COUNT realistic fake users quickly (COPY), for demos and benchmarks."""
    bar = click.progressbar(length=count, label="seeding users", file=sys.stderr)
    with db.write() as conn, bar:
        seeding.seed(conn, count, organizations, progress=bar.update)
    with db.read() as conn:
        if not seeding.refresh_statistics(conn):
            click.echo("not the table's owner: statistics are left to autovacuum", err=True)
    click.echo(f"seeded {count} users and {organizations} organizations")
