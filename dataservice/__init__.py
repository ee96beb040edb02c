"""The data service: the one HTTP gateway to the PostgreSQL database it owns.

Where things are: `app.py` builds the Flask app (create_app) that `wsgi.py` gives gunicorn;
`serving/` is how gunicorn runs it (worker classes, their own problem answers, JSON logging,
lifecycle hooks: what `gunicorn.conf.py` names besides its settings); `api/` holds the HTTP
endpoints, `schemas/` their marshmallow schemas, `store/` the data access over the named SQL of
`sql/`; `cli.py` is the `dataservice` command.

This module stays light: gunicorn's master imports the package (for serving/) and must not load
Flask, psycopg or the pool (tests/test_serving.py holds it to that).
"""

from pathlib import Path

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def migration_ids(directory: Path = MIGRATIONS_DIR) -> set[str]:
    """The ids yoyo records for the migrations shipped with this code (file name less .sql)."""
    return {
        p.name.removesuffix(".sql")
        for p in directory.glob("*.sql")
        if not p.name.endswith(".rollback.sql")
    }
