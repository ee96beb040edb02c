"""Data access for users."""

import psycopg
from psycopg import errors as pg_errors

from ..errors import Conflict, NotFound
from ..queries import queries

# The unique index that rejected a write, and the field a client should change.
_UNIQUE_FIELDS = {
    "users_email_lower_key": "email",
    "users_username_lower_key": "username",
}


def _conflict(exc: pg_errors.UniqueViolation) -> Conflict:
    return Conflict(_UNIQUE_FIELDS.get(exc.diag.constraint_name or "", "resource"))


def _found(row: dict | None, what: str) -> dict:
    if row is None:
        raise NotFound(f"no user with this {what}")
    return row


def create_user(conn: psycopg.Connection, *, email: str, username: str, password_hash: str) -> dict:
    try:
        return queries.users.create_user(
            conn, email=email, username=username, password_hash=password_hash
        )
    except pg_errors.UniqueViolation as exc:
        raise _conflict(exc) from None


def get_user(conn: psycopg.Connection, user_id: int) -> dict:
    return _found(queries.users.get_user_by_id(conn, user_id=user_id), "id")


def get_user_by_username(conn: psycopg.Connection, username: str) -> dict:
    return _found(queries.users.get_user_by_username(conn, username=username), "username")
