"""Data access for API clients."""

import psycopg

from .. import integrity
from ..queries import queries

integrity.declare(api_clients_name_key=integrity.unique("name"))


def create(
    conn: psycopg.Connection,
    *,
    name: str,
    token_hash: bytes,
    scopes: list[str],
    rate_per_second: float | None,
    burst: int | None,
    max_in_flight: int | None,
) -> dict:
    """A new client; its limits are None where unlimited. A taken name is a Conflict."""
    return queries.clients.create_client(
        conn,
        name=name,
        token_hash=token_hash,
        scopes=scopes,
        rate_per_second=rate_per_second,
        burst=burst,
        max_in_flight=max_in_flight,
    )


def set_limits(
    conn: psycopg.Connection,
    name: str,
    *,
    rate_per_second: float | None,
    burst: int | None,
    max_in_flight: int | None,
) -> dict | None:
    return queries.clients.set_client_limits(
        conn, name=name, rate_per_second=rate_per_second, burst=burst, max_in_flight=max_in_flight
    )


def get_active_by_token_hash(conn: psycopg.Connection, token_hash: bytes) -> dict | None:
    return queries.clients.get_active_by_token_hash(conn, token_hash=token_hash)


def all_clients(conn: psycopg.Connection) -> list[dict]:
    return list(queries.clients.list_clients(conn))


def revoke(conn: psycopg.Connection, name: str) -> dict | None:
    return queries.clients.revoke_client(conn, name=name)
