"""Settings of the session a request borrows (db.py calls it at checkout)."""

import psycopg

from ..queries import queries


def tag(conn: psycopg.Connection, name: str) -> None:
    """Sets application_name, as pg_stat_activity shows it (at most 63 bytes)."""
    queries.session.tag_connection(conn, name=name)
