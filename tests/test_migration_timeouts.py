"""`dataservice migrate` on a busy database: behind a long transaction a migration gives up after
MIGRATION_LOCK_TIMEOUT_MS with one line saying what to do, requests keep being served while it
waits and after, and yoyo's lock is released. A statement running past
MIGRATION_STATEMENT_TIMEOUT_MS is cancelled. The same through a real PgBouncer in transaction
mode (DATABASE_PGBOUNCER=true), where the limits are set in each migration's transaction and a
migration outside a transaction goes straight to PostgreSQL."""

import subprocess
import time

import psycopg
import pytest
from psycopg import errors as pg_errors

from dataservice.migrate import MigrationFailed, apply_migrations

from .support import DATASERVICE, new_user, one_error_line, roll_back

LOCK_TIMEOUT_MS = 1000


def applied(db) -> set[str]:
    return {row[0] for row in db.execute("SELECT migration_id FROM _yoyo_migration")}


@pytest.fixture
def start_migrate(database_url):
    """Starts `dataservice migrate` with a short lock timeout (on this test's database unless
    `env` says otherwise); stops it if a test fails first."""
    started = []

    def start(**env) -> subprocess.Popen:
        migrate = subprocess.Popen(
            [DATASERVICE, "migrate"],
            env={
                "PATH": "/usr/bin:/bin",
                "DATABASE_URL": database_url,
                "MIGRATION_LOCK_TIMEOUT_MS": str(LOCK_TIMEOUT_MS),
                **env,
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(migrate)
        return migrate

    yield start
    for migrate in started:
        if migrate.poll() is None:
            migrate.kill()
        migrate.communicate()


def wait_until_migrate_waits_for_a_lock(db, migrate: subprocess.Popen) -> None:
    deadline = time.monotonic() + 20
    while not db.execute(
        "SELECT 1 FROM pg_stat_activity WHERE application_name = 'dataservice-migrate'"
        " AND wait_event_type = 'Lock' AND datname = current_database()"
    ).fetchone():
        assert migrate.poll() is None, migrate.communicate()
        assert time.monotonic() < deadline, "migrate never waited for the lock"
        time.sleep(0.02)


def gave_up(migrate: subprocess.Popen, waited_since: float) -> str:
    """migrate's one line, once it gave up (within the lock timeout, plus its own start)."""
    stdout, stderr = migrate.communicate(timeout=LOCK_TIMEOUT_MS / 1000 + 15)
    assert time.monotonic() - waited_since < LOCK_TIMEOUT_MS / 1000 + 10
    return one_error_line(migrate.returncode, stdout, stderr)


@pytest.fixture
def blocker(database_url):
    """A second session, for the long transaction."""
    with psycopg.connect(database_url) as conn:
        yield conn
        conn.rollback()


def test_behind_a_long_read_a_migration_gives_up_and_requests_keep_flowing(
    database_url, db, make_app, blocker, start_migrate
):
    # 0008 drops a trigger on events: that needs an ACCESS EXCLUSIVE lock, which waits for every
    # transaction that has read events, and every query on events queues behind the wait.
    assert roll_back(database_url, lambda mid: mid.startswith("0008.")) == [
        "0008.notify-after-commit"
    ]
    client = make_app().test_client()
    first = client.post("/api/v1/users", json=new_user(1)).get_json()
    blocker.execute("SELECT count(*) FROM events")  # a long report, left open

    migrate = start_migrate()
    wait_until_migrate_waits_for_a_lock(db, migrate)
    waited_since = time.monotonic()
    # While it waits: users are served at once; a write, which appends to events, waits behind
    # the migration's lock at most MIGRATION_LOCK_TIMEOUT_MS, then succeeds.
    assert client.get(f"/api/v1/users/{first['id']}").status_code == 200
    assert client.post("/api/v1/users", json=new_user(2)).status_code == 201

    line = gave_up(migrate, waited_since)
    assert line.startswith(
        f"Error: migration 0008.notify-after-commit gave up after waiting {LOCK_TIMEOUT_MS} ms "
        "for a lock (MIGRATION_LOCK_TIMEOUT_MS)"
    )
    assert line.endswith("nothing of it was applied")
    # After: requests flow with the long transaction still open; nothing was recorded, and
    # yoyo's lock is free for the next run.
    assert client.post("/api/v1/users", json=new_user(3)).status_code == 201
    assert client.get("/api/v1/events?limit=10").status_code == 200
    assert "0008.notify-after-commit" not in applied(db)
    assert db.execute("SELECT count(*) FROM yoyo_lock").fetchone()[0] == 0
    blocker.rollback()
    done = subprocess.run(
        [DATASERVICE, "migrate"],
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "0008.notify-after-commit" in applied(db)


def test_a_concurrent_index_behind_a_long_write_gives_up_and_names_what_it_left(
    database_url, db, make_app, blocker, start_migrate
):
    # 0002 builds its index CONCURRENTLY: writes go on during the build, but the build waits
    # for every transaction that wrote to users before it.
    assert roll_back(database_url, lambda mid: mid.startswith("0002.")) == [
        "0002.users-listing-index"
    ]
    client = make_app().test_client()
    blocker.execute(
        "INSERT INTO users (email, username, password_hash)"
        " VALUES ('slow@example.com', 'slow', '$2b$04$x')"
    )

    migrate = start_migrate()
    wait_until_migrate_waits_for_a_lock(db, migrate)
    waited_since = time.monotonic()
    created = client.post("/api/v1/users", json=new_user(1))  # not held up at all
    assert created.status_code == 201
    assert client.get("/api/v1/users?sort=-created_at").status_code == 200

    line = gave_up(migrate, waited_since)
    assert line.startswith(
        f"Error: migration 0002.users-listing-index gave up after waiting {LOCK_TIMEOUT_MS} ms"
    )
    assert line.endswith(
        "it ran outside a transaction and left the invalid index users_created_at_id_idx: "
        "DROP INDEX CONCURRENTLY it before migrating again"
    )
    assert db.execute("SELECT count(*) FROM yoyo_lock").fetchone()[0] == 0
    # What the line says to do, then migrate again: the index is built, and valid.
    blocker.rollback()
    db.execute("DROP INDEX CONCURRENTLY users_created_at_id_idx")
    assert apply_migrations(database_url) == ["0002.users-listing-index"]
    assert db.execute(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_created_at_id_idx'::regclass"
    ).fetchone() == (True,)


def test_a_statement_past_the_statement_timeout_is_cancelled(database_url, db, tmp_path):
    (tmp_path / "0001.slow.sql").write_text("SELECT pg_sleep(10);\n")
    (tmp_path / "0001.slow.rollback.sql").write_text("SELECT 1;\n")
    started = time.monotonic()
    with pytest.raises(MigrationFailed) as failed:
        apply_migrations(database_url, tmp_path, statement_timeout_ms=200)
    assert time.monotonic() - started < 5
    assert failed.value.migration.id == "0001.slow"
    assert isinstance(failed.value.error, pg_errors.QueryCanceled)
    assert "0001.slow" not in applied(db)
    assert db.execute("SELECT count(*) FROM yoyo_lock").fetchone()[0] == 0


# Through PgBouncer ------------------------------------------------------------------------------


def session_limits(url: str) -> list[tuple]:
    """lock_timeout and statement_timeout as two transactions at once see them through `url`
    (with PgBouncer's two server connections per database, one each)."""
    with psycopg.connect(url) as first, psycopg.connect(url) as second:
        return [
            conn.execute(
                "SELECT pg_backend_pid(), current_setting('lock_timeout'),"
                " current_setting('statement_timeout')"
            ).fetchone()
            for conn in (first, second)
        ]


def test_through_pgbouncer_a_migration_gives_up_on_a_lock_and_leaves_no_setting_behind(
    database_url, postgresql, db, owner_pgbouncer, blocker, start_migrate
):
    # As in the first test: 0008 waits for an ACCESS EXCLUSIVE lock on events behind a read.
    # PgBouncer refuses the startup options that carry the limits on a direct connection; here
    # they are set in the migration's transaction, and the wait ends all the same.
    through_pgbouncer = owner_pgbouncer(postgresql.info.dbname)
    before = session_limits(through_pgbouncer)
    assert len({pid for pid, _, _ in before}) == 2  # both server connections seen
    roll_back(database_url, lambda mid: mid.startswith("0008."))
    blocker.execute("SELECT count(*) FROM events")

    migrate = start_migrate(
        DATABASE_URL=through_pgbouncer,
        DATABASE_PGBOUNCER="true",
        DATABASE_LISTEN_URL=database_url,
    )
    wait_until_migrate_waits_for_a_lock(db, migrate)
    line = gave_up(migrate, time.monotonic())
    assert line.startswith(
        f"Error: migration 0008.notify-after-commit gave up after waiting {LOCK_TIMEOUT_MS} ms "
        "for a lock (MIGRATION_LOCK_TIMEOUT_MS)"
    )
    assert "0008.notify-after-commit" not in applied(db)
    assert db.execute("SELECT count(*) FROM yoyo_lock").fetchone()[0] == 0
    # SET LOCAL: PgBouncer's server connections keep their own limits, not migrate's.
    after = session_limits(through_pgbouncer)
    assert {pid for pid, _, _ in after} == {pid for pid, _, _ in before}
    assert sorted(after) == sorted(before)

    blocker.rollback()
    done = subprocess.run(
        [DATASERVICE, "migrate"],
        env={
            "PATH": "/usr/bin:/bin",
            "DATABASE_URL": through_pgbouncer,
            "DATABASE_PGBOUNCER": "true",
            "DATABASE_LISTEN_URL": database_url,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "applied 1 migration(s): 0008.notify-after-commit"


@pytest.mark.parametrize("transactional", [True, False], ids=["in-a-transaction", "outside"])
def test_through_pgbouncer_a_statement_past_the_statement_timeout_is_cancelled(
    transactional, database_url, postgresql, db, owner_pgbouncer, tmp_path
):
    # In a transaction the limit comes from SET LOCAL through PgBouncer; outside one (as CREATE
    # INDEX CONCURRENTLY runs) from the startup options of the direct connection.
    header = "" if transactional else "-- transactional: false\n"
    (tmp_path / "0001.slow.sql").write_text(header + "SELECT pg_sleep(10);\n")
    (tmp_path / "0001.slow.rollback.sql").write_text(header + "SELECT 1;\n")
    started = time.monotonic()
    with pytest.raises(MigrationFailed) as failed:
        apply_migrations(
            owner_pgbouncer(postgresql.info.dbname),
            tmp_path,
            statement_timeout_ms=200,
            direct_url=database_url,
        )
    assert time.monotonic() - started < 5
    assert isinstance(failed.value.error, pg_errors.QueryCanceled)
    assert "0001.slow" not in applied(db)
    assert db.execute("SELECT count(*) FROM yoyo_lock").fetchone()[0] == 0


def test_through_pgbouncer_a_concurrent_index_goes_straight_to_postgresql(
    database_url, postgresql, db, owner_pgbouncer, blocker, start_migrate
):
    # 0002 builds its index CONCURRENTLY, outside a transaction: behind a long write it gives up
    # after the lock timeout, on the direct connection (DATABASE_LISTEN_URL), as without PgBouncer.
    roll_back(database_url, lambda mid: mid.startswith("0002."))
    blocker.execute(
        "INSERT INTO users (email, username, password_hash)"
        " VALUES ('slow@example.com', 'slow', '$2b$04$x')"
    )
    through_pgbouncer = owner_pgbouncer(postgresql.info.dbname)
    migrate = start_migrate(
        DATABASE_URL=through_pgbouncer,
        DATABASE_PGBOUNCER="true",
        DATABASE_LISTEN_URL=database_url,
    )
    wait_until_migrate_waits_for_a_lock(db, migrate)
    line = gave_up(migrate, time.monotonic())
    assert line.startswith(
        f"Error: migration 0002.users-listing-index gave up after waiting {LOCK_TIMEOUT_MS} ms"
    )
    assert line.endswith(
        "left the invalid index users_created_at_id_idx: "
        "DROP INDEX CONCURRENTLY it before migrating again"
    )
    blocker.rollback()
    db.execute("DROP INDEX CONCURRENTLY users_created_at_id_idx")
    assert apply_migrations(through_pgbouncer, direct_url=database_url) == [
        "0002.users-listing-index"
    ]
    assert db.execute(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_created_at_id_idx'::regclass"
    ).fetchone() == (True,)
