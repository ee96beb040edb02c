"""The outbox: events appended in the changing transaction, and the commit-safe feed."""

import psycopg
from psycopg.types.json import Jsonb

from ..queries import queries

TYPES = ("user.created", "user.updated", "user.password_changed", "user.deleted")


def append(
    conn: psycopg.Connection,
    *,
    type: str,
    entity: str,
    entity_id: int,
    actor: str | None,
    data: dict,
) -> None:
    queries.events.append_event(
        conn, type=type, entity=entity, entity_id=entity_id, actor=actor, data=Jsonb(data)
    )


def announce(conn: psycopg.Connection) -> None:
    """NOTIFY the feed's listeners, in a transaction of its own (conn is in autocommit)."""
    queries.events.announce_events(conn)


def after(
    conn: psycopg.Connection, position: tuple[int, int], *, types: list[str] | None, limit: int
) -> list[dict]:
    """Up to `limit` events after `position` (xid, id), oldest first, none that could still be
    overtaken by a transaction that has not finished."""
    xid, event_id = position
    return list(
        queries.events.list_events(conn, after_xid=xid, after_id=event_id, types=types, limit=limit)
    )


def prune(conn: psycopg.Connection, retention_seconds: float) -> int:
    return queries.events.prune_events(conn, retention_seconds=retention_seconds)
