"""What the readiness probe asks the database."""

import psycopg
from psycopg import errors as pg_errors

from ..queries import queries


def applied_migrations(conn: psycopg.Connection) -> set[str]:
    """Ids of the migrations applied to this database; empty when yoyo never ran here."""
    try:
        return {row["migration_id"] for row in queries.health.applied_migrations(conn)}
    except (pg_errors.UndefinedTable, pg_errors.UndefinedFunction):  # never migrated here
        return set()
