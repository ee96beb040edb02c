"""Idempotency records: a key claimed by the first request, its response kept for retries."""

import psycopg
from psycopg.types.json import Jsonb

from ..queries import queries


def claim(
    conn: psycopg.Connection, *, client: str, key: str, request_hash: bytes, ttl_seconds: float
) -> bool:
    """True when this transaction now holds the key; waits while another transaction holds it
    uncommitted. False when a live record from an earlier request holds it."""
    return (
        queries.idempotency.claim_key(
            conn, client=client, key=key, request_hash=request_hash, ttl_seconds=ttl_seconds
        )
        is not None
    )


def get(conn: psycopg.Connection, *, client: str, key: str) -> dict | None:
    return queries.idempotency.get_key(conn, client=client, key=key)


def record(
    conn: psycopg.Connection, *, client: str, key: str, status: int, headers: dict, body: bytes
) -> None:
    queries.idempotency.record_response(
        conn, client=client, key=key, status=status, headers=Jsonb(headers), body=body
    )


def prune(conn: psycopg.Connection) -> int:
    return queries.idempotency.prune_keys(conn)
