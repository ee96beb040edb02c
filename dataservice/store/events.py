"""The outbox: events appended in the changing transaction, and the commit-safe feed.

Each resource declares its entity and the actions it records (`declare`); an event's type is
`<entity>.<action>`. TYPES gathers every declared type, for the feed's `types` filter and its
documentation (the database checks only their shape, migration 0012).
"""

import psycopg
from psycopg.types.json import Jsonb

from .. import tracing

# A resource declares its event types here, next to the outbox that records them.
from ..event_types import TYPES, declare  # noqa: F401
from ..queries import queries


def append(
    conn: psycopg.Connection,
    *,
    type: str,
    entity_id: int,
    actor: str | None,
    data: dict,
) -> None:
    """Records one change in the changing transaction; `type` must be declared."""
    if type not in TYPES:
        raise ValueError(f"undeclared event type {type!r}")
    entity = type.split(".", 1)[0]
    queries.events.append_event(
        conn,
        type=type,
        entity=entity,
        entity_id=entity_id,
        actor=actor,
        data=Jsonb(data),
        trace_id=tracing.trace_id(),  # the request's, if it has one (tracing.py)
    )


def announce(conn: psycopg.Connection) -> None:
    """NOTIFY the feed's listeners, in a transaction of its own (conn is in autocommit)."""
    queries.events.announce_events(conn)


def listen(conn: psycopg.Connection) -> None:
    """Subscribes this session to announce's notifications (conn is in autocommit)."""
    queries.events.listen_for_events(conn)


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
