"""Migrations apply, roll back completely and apply again; /ready tells when they are behind."""

from click.testing import CliRunner
from psycopg import sql
from yoyo import get_backend, read_migrations

from dataservice import MIGRATIONS_DIR, migration_ids
from dataservice.cli import main
from dataservice.db import yoyo_url
from dataservice.migrate import apply_migrations

from .support import url_for_database


def tables(db) -> set[str]:
    rows = db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {name for (name,) in rows if not name.startswith(("_yoyo", "yoyo"))}


def rollback_all(url: str) -> None:
    backend = get_backend(yoyo_url(url))
    try:
        migrations = read_migrations(str(MIGRATIONS_DIR))
        with backend.lock():
            backend.rollback_migrations(backend.to_rollback(migrations))
    finally:
        backend.connection.close()


def test_every_migration_has_a_rollback():
    for migration_id in migration_ids():
        assert (MIGRATIONS_DIR / f"{migration_id}.rollback.sql").is_file(), migration_id


def test_apply_rollback_all_apply_again(database_url, db):
    assert "users" in tables(db)
    rollback_all(database_url)
    assert tables(db) == set()
    assert apply_migrations(database_url) == sorted(migration_ids())
    assert "users" in tables(db)
    assert apply_migrations(database_url) == []  # nothing left to do


def test_ready_is_503_while_migrations_are_behind(database_url, client):
    assert client.get("/ready").status_code == 200
    rollback_all(database_url)
    response = client.get("/ready")
    assert response.status_code == 503
    assert "0001.create-users" in response.get_json()["detail"]
    apply_migrations(database_url)
    assert client.get("/ready").get_json() == {"status": "ok"}


def test_ready_is_503_on_a_database_yoyo_never_touched(make_app, db):
    empty = db.info.dbname + "_empty"
    db.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(empty)))
    try:
        app = make_app(DATABASE_URL=url_for_database(empty))
        assert app.test_client().get("/ready").status_code == 503
        app.extensions["db"].close()
    finally:
        db.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(empty)))


def test_migrate_command_applies_pending_migrations(database_url, db):
    rollback_all(database_url)
    result = CliRunner().invoke(main, ["migrate"], env={"DATABASE_URL": database_url})
    assert result.exit_code == 0, result.output
    assert "0001.create-users" in result.output
    assert "users" in tables(db)
