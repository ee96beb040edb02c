"""Data access for API clients."""

import psycopg
from psycopg import errors as pg_errors

from ..admission import Limits
from ..errors import Conflict
from ..queries import queries


def create(
    conn: psycopg.Connection, *, name: str, token_hash: bytes, scopes: list[str], limits: Limits
) -> dict:
    try:
        return queries.clients.create_client(
            conn, name=name, token_hash=token_hash, scopes=scopes, **_columns(limits)
        )
    except pg_errors.UniqueViolation:
        raise Conflict("name") from None


def set_limits(conn: psycopg.Connection, name: str, limits: Limits) -> dict | None:
    return queries.clients.set_client_limits(conn, name=name, **_columns(limits))


def _columns(limits: Limits) -> dict:
    return {
        "rate_per_second": limits.rate,
        "burst": limits.burst,
        "max_in_flight": limits.in_flight,
    }


def get_active_by_token_hash(conn: psycopg.Connection, token_hash: bytes) -> dict | None:
    return queries.clients.get_active_by_token_hash(conn, token_hash=token_hash)


def all_clients(conn: psycopg.Connection) -> list[dict]:
    return list(queries.clients.list_clients(conn))


def revoke(conn: psycopg.Connection, name: str) -> dict | None:
    return queries.clients.revoke_client(conn, name=name)
