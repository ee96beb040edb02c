"""What replica routing asks the servers."""

import psycopg

from ..queries import queries


def replay_lag_seconds(conn: psycopg.Connection) -> float:
    return float(queries.replica.replay_lag_seconds(conn))


def has_replayed(conn: psycopg.Connection, lsn: str) -> bool:
    return bool(queries.replica.has_replayed(conn, lsn=lsn))


def current_lsn(conn: psycopg.Connection) -> str:
    return queries.replica.current_lsn(conn)
