"""Every `dataservice` command ends a failure with one line on stderr and a non-zero exit, never
a traceback or a page of usage: a database it cannot reach (naming host and port, never the
password), a startup parameter PgBouncer refuses (naming DATABASE_PGBOUNCER), an unknown scope,
a bad setting. The service tells the same database reasons once in its log and in /ready."""

import logging
import subprocess
import time

import pytest
from click.testing import CliRunner

from dataservice.cli import main
from dataservice.config import SETTINGS

from .private_cluster import free_port
from .support import APP_PASSWORD, DATASERVICE, one_error_line, roll_back, url_for_database

SECRET = "s3cret-db-pw"
# Commands that use the database through the pool, and migrate, which uses yoyo's connection.
DATABASE_COMMANDS = [
    ["migrate"],
    ["prune"],
    ["clients", "create", "ops-tool", "--scopes", "users:read"],
    ["clients", "list"],
    ["clients", "revoke", "ops-tool"],
    ["seed", "--users", "1"],
]
# A pool timeout no test waits out: a command that fails must not wait for a connection.
NEVER_WAITED = "30"


def environment(**settings) -> dict[str, str | None]:
    """The process environment for a command: no setting leaks in from the caller's."""
    unset = {s.name: None for s in SETTINGS} | {"MIGRATION_DATABASE_URL": None}
    return unset | {"DATABASE_POOL_TIMEOUT": NEVER_WAITED, **settings}


def run(args: list[str], env: dict) -> str:
    started = time.monotonic()
    result = CliRunner().invoke(main, args, env=env, prog_name="dataservice")
    assert time.monotonic() - started < float(NEVER_WAITED) / 3
    # Anything but SystemExit escaping the command is what prints a traceback outside the runner.
    assert isinstance(result.exception, SystemExit), result.exception
    return one_error_line(result.exit_code, result.stdout, result.stderr, SECRET)


def unreachable_url() -> tuple[str, str]:
    port = free_port()  # nothing listens there
    return url_for_database("nowhere", port=port, password=SECRET), f"127.0.0.1:{port}"


@pytest.mark.parametrize("args", DATABASE_COMMANDS, ids=" ".join)
def test_a_database_it_cannot_reach_is_one_line_naming_host_and_port(args):
    url, server = unreachable_url()
    line = run(args, environment(DATABASE_URL=url))
    assert line == f"Error: cannot connect to the database at {server}: Connection refused"


@pytest.mark.parametrize(
    "args", [*DATABASE_COMMANDS, ["routes"], ["shell"], ["openapi", "print"]], ids=" ".join
)
def test_a_bad_setting_is_one_line_naming_it(args):
    url, _ = unreachable_url()
    line = run(args, environment(DATABASE_URL=url, DATABASE_POOL_MAX_SIZE="zero"))
    assert line.startswith("Error: invalid configuration: DATABASE_POOL_MAX_SIZE='zero'")


def test_a_missing_database_url_is_one_line():
    line = run(["clients", "list"], environment())
    assert line.startswith("Error: invalid configuration: DATABASE_URL: is required")


def test_help_with_a_bad_setting_still_helps_under_one_line():
    result = CliRunner().invoke(main, ["--help"], env=environment())
    assert result.exit_code == 0
    assert "Traceback" not in result.output
    assert result.stderr.splitlines() == [
        "Error: invalid configuration: DATABASE_URL: is required, for example "
        "postgresql://user:password@host:5432/dbname (the commands listed below work once it "
        "is fixed)"
    ]
    assert "migrate" in result.stdout and "clients" in result.stdout


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["clients", "create", "x", "--scopes", "users:read,users:admin"],
            "Error: Invalid value for '--scopes': unknown scope users:admin: choose from "
            "events:read, organizations:read, organizations:write, users:credentials, "
            "users:read, users:write, or all (see 'dataservice clients create --help')",
        ),
        (
            ["clients", "create", "x"],
            "Error: Missing option '--scopes' (see 'dataservice clients create --help')",
        ),
        (
            ["clients", "frobnicate"],
            "Error: No such command 'frobnicate' (see 'dataservice clients --help')",
        ),
        (["--bogus"], "Error: No such option '--bogus' (see 'dataservice --help')"),
    ],
)
def test_usage_errors_are_one_line_without_the_usage(args, expected, database_url):
    assert run(args, environment(DATABASE_URL=database_url)) == expected


def test_a_revoke_of_nobody_is_one_line(app_database_url):
    line = run(["clients", "revoke", "nobody"], environment(DATABASE_URL=app_database_url))
    assert line == "Error: no active client named nobody"


def test_behind_pgbouncer_without_the_setting_the_cli_says_what_to_set(pgbouncer):
    """The issue's case, through the installed command: `clients list` at PgBouncer in
    transaction mode without DATABASE_PGBOUNCER=true."""
    started = time.monotonic()
    done = subprocess.run(
        [DATASERVICE, "clients", "list"],
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": pgbouncer, "DATABASE_POOL_TIMEOUT": "30"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.monotonic() - started < 10  # it did not wait out the pool
    line = one_error_line(done.returncode, done.stdout, done.stderr, SECRET, APP_PASSWORD)
    port = pgbouncer.rsplit(":", 1)[1].split("/")[0]
    assert line == (
        f"Error: the database at 127.0.0.1:{port} refused the startup parameter 'options' "
        "(unsupported startup parameter: options): behind PgBouncer in transaction mode, set "
        "DATABASE_PGBOUNCER=true"
    )
    # with the setting, the same command works
    done = subprocess.run(
        [DATASERVICE, "clients", "list"],
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": pgbouncer, "DATABASE_PGBOUNCER": "true"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("tests\t")


@pytest.mark.parametrize("args", DATABASE_COMMANDS, ids=" ".join)
def test_every_database_command_behind_pgbouncer_names_the_fix(args, pgbouncer):
    line = run(args, environment(DATABASE_URL=pgbouncer))
    assert "refused the startup parameter 'options'" in line
    if args == ["migrate"]:  # the setting, or a direct URL of migrate's own
        assert "DATABASE_PGBOUNCER=true" in line and "MIGRATION_DATABASE_URL" in line
    else:
        assert "DATABASE_PGBOUNCER=true" in line


def test_behind_pgbouncer_a_migration_outside_a_transaction_needs_a_direct_connection(
    owner_pgbouncer, postgresql, database_url
):
    """DATABASE_PGBOUNCER=true without DATABASE_LISTEN_URL: migrate has no connection straight to
    PostgreSQL for 0002's CREATE INDEX CONCURRENTLY, and says which setting gives it one."""
    roll_back(database_url, lambda mid: mid.startswith("0002."))
    through_pgbouncer = owner_pgbouncer(postgresql.info.dbname)
    line = run(["migrate"], environment(DATABASE_URL=through_pgbouncer, DATABASE_PGBOUNCER="true"))
    port = through_pgbouncer.rsplit(":", 1)[1].split("/")[0]
    assert line == (
        "Error: migration 0002.users-listing-index runs outside a transaction, which behind "
        "PgBouncer needs a connection straight to PostgreSQL: the database at "
        f"127.0.0.1:{port} refused the startup parameter 'options' (unsupported startup "
        "parameter: options): point DATABASE_LISTEN_URL (or MIGRATION_DATABASE_URL) straight at "
        "PostgreSQL, not at PgBouncer; nothing of it was applied"
    )


# The service: /ready's detail, and one log line however many requests fail -----------------


def ready_reason(app, caplog) -> str:
    client = app.test_client()
    details = []
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            response = client.get("/ready")
            assert response.status_code == 503
            details.append(response.get_json()["detail"])
    assert len(set(details)) == 1
    [detail] = set(details)
    logged = [r for r in caplog.records if r.getMessage() == detail]
    assert len(logged) == 1, [r.getMessage() for r in caplog.records]
    assert logged[0].levelname == "ERROR"
    assert SECRET not in caplog.text
    return detail


def test_ready_and_the_log_name_an_unreachable_database(make_app, caplog):
    url, server = unreachable_url()
    app = make_app(DATABASE_URL=url, DATABASE_POOL_TIMEOUT=0.5)
    detail = ready_reason(app, caplog)
    assert detail == f"cannot connect to the database at {server}: Connection refused"


def test_ready_and_the_log_name_the_pgbouncer_setting(pgbouncer, make_app, caplog):
    app = make_app(DATABASE_URL=pgbouncer, DATABASE_POOL_TIMEOUT=0.5)
    detail = ready_reason(app, caplog)
    assert detail.endswith("behind PgBouncer in transaction mode, set DATABASE_PGBOUNCER=true")
    # the CLI says the very same
    assert run(["clients", "list"], environment(DATABASE_URL=pgbouncer)) == f"Error: {detail}"
