"""Data access for users."""

from datetime import datetime

import psycopg
from psycopg import errors as pg_errors
from psycopg.types.json import Jsonb

from ..errors import Conflict, NotFound, PreconditionFailed
from ..queries import queries

# The unique index that rejected a write, and the field a client should change.
_UNIQUE_FIELDS = {
    "users_email_lower_key": "email",
    "users_username_lower_key": "username",
}

# A sort and its named query; a created_at sort keeps its position as (created_at, id).
_LIST_QUERIES = {
    "id": queries.users.list_users_by_id,
    "-id": queries.users.list_users_by_id_desc,
    "created_at": queries.users.list_users_by_created_at,
    "-created_at": queries.users.list_users_by_created_at_desc,
}


def _conflict(exc: pg_errors.UniqueViolation) -> Conflict:
    return Conflict(_UNIQUE_FIELDS.get(exc.diag.constraint_name or "", "resource"))


def _found(row: dict | None, what: str) -> dict:
    if row is None:
        raise NotFound(f"no user with this {what}")
    return row


def _missing_or_stale(conn: psycopg.Connection, user_id: int) -> None:
    """A conditional write touched no row: say whether the user is gone or the version stale."""
    if queries.users.get_user_version(conn, user_id=user_id) is None:
        raise NotFound("no user with this id")
    raise PreconditionFailed()


def create_user(
    conn: psycopg.Connection, *, email: str, username: str, password_hash: str, actor: str | None
) -> dict:
    """Inserts the user and its user.created event in one statement (atomic by itself)."""
    try:
        return queries.users.create_user(
            conn, email=email, username=username, password_hash=password_hash, actor=actor
        )
    except pg_errors.UniqueViolation as exc:
        raise _conflict(exc) from None


def create_users(conn: psycopg.Connection, users: list[dict], actor: str | None) -> list[dict]:
    """Inserts every {email, username, password_hash} and its user.created event in one
    statement; returns each user as the API shows it (its event's data), in the order given.
    A clash anywhere (also between two of them) is a Conflict for the lot."""
    try:
        rows = queries.users.create_users(conn, users=Jsonb(users), actor=actor)
        by_username = {row["username"]: row["data"] for row in rows}
    except pg_errors.UniqueViolation as exc:
        raise _conflict(exc) from None
    return [by_username[u["username"]] for u in users]


def get_user(conn: psycopg.Connection, user_id: int) -> dict:
    return _found(queries.users.get_user_by_id(conn, user_id=user_id), "id")


def get_user_by_username(conn: psycopg.Connection, username: str) -> dict:
    return _found(queries.users.get_user_by_username(conn, username=username), "username")


def get_user_by_email(conn: psycopg.Connection, email: str) -> dict:
    return _found(queries.users.get_user_by_email(conn, email=email), "email")


def get_credentials(conn: psycopg.Connection, login: str) -> dict | None:
    """The user with this username or email, including `password_hash`; None when absent."""
    return queries.users.get_credentials(conn, login=login)


def update_user(
    conn: psycopg.Connection,
    user_id: int,
    *,
    email: str | None,
    username: str | None,
    versions: list[int] | None,
) -> dict:
    """`versions`: the If-Match versions (None: no precondition)."""
    try:
        row = queries.users.update_user(
            conn, user_id=user_id, email=email, username=username, versions=versions
        )
    except pg_errors.UniqueViolation as exc:
        raise _conflict(exc) from None
    if row is None:
        _missing_or_stale(conn, user_id)
    return row


def set_password_hash(
    conn: psycopg.Connection, user_id: int, password_hash: str, versions: list[int] | None
) -> dict:
    row = queries.users.update_password_hash(
        conn, user_id=user_id, password_hash=password_hash, versions=versions
    )
    if row is None:
        _missing_or_stale(conn, user_id)
    return row


def rehash_password(conn: psycopg.Connection, user_id: int, old_hash: str, new_hash: str) -> None:
    queries.users.rehash_password(conn, user_id=user_id, old_hash=old_hash, new_hash=new_hash)


def delete_user(conn: psycopg.Connection, user_id: int, versions: list[int] | None) -> dict:
    """Deletes the user; returns it as it was."""
    row = queries.users.delete_user(conn, user_id=user_id, versions=versions)
    if row is None:
        _missing_or_stale(conn, user_id)
    return row


def list_users(
    conn: psycopg.Connection, *, sort: str, after: list | None, filters: dict, limit: int
) -> list[dict]:
    """Up to `limit` users in `sort` order after the keyset position `after` (from the last row
    of the previous page; None for the first page). `filters` holds every filter, None when off.
    """
    params = {**filters, "limit": limit, "after_id": None}
    if after is not None:
        params["after_id"] = after[-1]
    if sort.endswith("created_at"):
        params["after_created_at"] = datetime.fromisoformat(after[0]) if after else None
    query = _LIST_QUERIES[sort]
    # Unprepared on purpose: a prepared (generic) plan could not drop the disabled filters or
    # use the username prefix index, so each call is planned with its real values.
    return conn.execute(query.sql, params, prepare=False).fetchall()


def position(sort: str, row: dict) -> list:
    """The keyset position of `row` under `sort`, as a cursor stores it."""
    if sort.endswith("created_at"):
        return [row["created_at"].isoformat(), row["id"]]
    return [row["id"]]


def count_users(conn: psycopg.Connection, filters: dict) -> int:
    return queries.users.count_users(conn, **filters)
