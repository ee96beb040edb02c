"""Data access for users."""

import psycopg
from psycopg.types.json import Jsonb

from .. import tracing
from ..queries import queries
from .rows import found, written

q = queries.users


def _written(conn: psycopg.Connection, row: dict | None, user_id: int, versions) -> dict:
    version = lambda: q.get_user_version(conn, user_id=user_id)  # noqa: E731
    return written(row, versions, version, "no user with this id")


def create_user(
    conn: psycopg.Connection, *, email: str, username: str, password_hash: str, actor: str | None
) -> dict:
    """Inserts the user and its user.created event in one statement (atomic by itself)."""
    return q.create_user(
        conn,
        email=email,
        username=username,
        password_hash=password_hash,
        actor=actor,
        trace_id=tracing.trace_id(),
    )


def create_users(conn: psycopg.Connection, users: list[dict], actor: str | None) -> list[dict]:
    """Inserts every {email, username, password_hash} and its user.created event in one
    statement; returns each user as the API shows it (its event's data), in the order given.
    A clash anywhere (also between two of them) fails the lot."""
    rows = q.create_users(conn, users=Jsonb(users), actor=actor, trace_id=tracing.trace_id())
    by_username = {row["username"]: row["data"] for row in rows}
    return [by_username[u["username"]] for u in users]


def get_user_by_username(conn: psycopg.Connection, username: str) -> dict:
    return found(q.get_user_by_username(conn, username=username), "no user with this username")


def get_user_by_email(conn: psycopg.Connection, email: str) -> dict:
    return found(q.get_user_by_email(conn, email=email), "no user with this email")


def get_credentials(conn: psycopg.Connection, login: str) -> dict | None:
    """The user with this username or email, including `password_hash`; None when absent."""
    return q.get_credentials(conn, login=login)


def set_password_hash(
    conn: psycopg.Connection,
    user_id: int,
    password_hash: str,
    versions: list[int] | None,
    *,
    actor: str | None,
) -> dict:
    """Replaces the hash and records the user.password_changed event, in one statement."""
    row = q.update_password_hash(
        conn,
        user_id=user_id,
        password_hash=password_hash,
        versions=versions,
        actor=actor,
        trace_id=tracing.trace_id(),
    )
    return _written(conn, row, user_id, versions)


def rehash_password(conn: psycopg.Connection, user_id: int, old_hash: str, new_hash: str) -> None:
    q.rehash_password(conn, user_id=user_id, old_hash=old_hash, new_hash=new_hash)
