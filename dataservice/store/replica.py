"""What replica routing asks the servers."""

import psycopg

from ..queries import queries


def replayed_position(conn: psycopg.Connection) -> str | None:
    """None on a server that is not a standby (then nothing is missing)."""
    return queries.replica.replayed_position(conn)


def has_replayed(conn: psycopg.Connection, lsn: str) -> bool:
    return bool(queries.replica.has_replayed(conn, lsn=lsn))


def current_lsn(conn: psycopg.Connection) -> str:
    return queries.replica.current_lsn(conn)
