"""Integrity errors from PostgreSQL as domain errors naming the field: a unique violation is a
409, a reference to a missing row a 422 (or a 404 where the reference is the URL's), any other
broken rule a 422. Never a 500.

A resource declares what its constraints mean to a client in its store module (`declare`);
db.py translates every IntegrityError through these declarations wherever it is raised: a
statement, a trigger, a commit. A constraint nobody declared still becomes a 409 or 422, naming
the column PostgreSQL reports or the one its name carries (`<table>_<column>_key`, PostgreSQL's
own naming). Where one endpoint means something else by a constraint (a missing user is the
path's 404 here and a body field's 422 there), its store function says so for that call
(`meaning`).
"""

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from psycopg import errors as pg_errors

from .errors import Conflict, Invalid, LastOwner, NotFound, ServiceError

Meaning = Callable[[psycopg.IntegrityError], ServiceError]

_DECLARED: dict[str, Meaning] = {}
_SUFFIXES = ("_key", "_fkey", "_check", "_excl")


def declare(**meanings: Meaning) -> None:
    """What each constraint (or unique index) means to a client, by its name."""
    _DECLARED.update(meanings)


def unique(field: str, message: str = "Already taken.") -> Meaning:
    return lambda exc: Conflict(field, message)


def reference(field: str, what: str, *, in_path: bool = False) -> Meaning:
    """A foreign key: the row `field` points at does not exist. In the URL that is a 404 (the
    resource addressed is not there); in the body a 422 naming the field."""
    if in_path:
        return lambda exc: NotFound(f"no {what} with this id", field=field)
    return lambda exc: Invalid(field, f"No {what} has this id.")


def rule(field: str, message: str) -> Meaning:
    """A check (or trigger) the value breaks: a 422 naming the field."""
    return lambda exc: Invalid(field, message)


def keeps_an_owner(exc: psycopg.IntegrityError) -> ServiceError:
    """The owner rule of migration 0016: its DETAIL names the organizations (a JSON array)."""
    return LastOwner(json.loads(exc.diag.message_detail or "[]"))


@contextmanager
def meaning(**overrides: Meaning) -> Iterator[None]:
    """Within the block, these constraints mean what `overrides` says (for one call)."""
    try:
        yield
    except psycopg.IntegrityError as exc:
        override = overrides.get(exc.diag.constraint_name or "")
        if override is None:
            raise
        raise override(exc) from None


def translate(exc: psycopg.IntegrityError) -> ServiceError:
    """The domain error for an integrity error, as declared or by its kind."""
    name = exc.diag.constraint_name or ""
    declared = _DECLARED.get(name)
    if declared is not None:
        return declared(exc)
    field = _field(exc, name)
    if isinstance(exc, pg_errors.UniqueViolation):
        return Conflict(field)
    if isinstance(exc, pg_errors.ForeignKeyViolation):
        return Invalid(field, "Refers to something that does not exist.")
    return Invalid(field, "Breaks a rule of the database.")  # check, not-null, exclusion


def _field(exc: psycopg.IntegrityError, name: str) -> str:
    if exc.diag.column_name:
        return exc.diag.column_name
    table = exc.diag.table_name or ""
    if name == f"{table}_pkey":
        return "id"
    for suffix in _SUFFIXES:
        if table and name.startswith(table + "_") and name.endswith(suffix):
            return name[len(table) + 1 : -len(suffix)] or "_schema"
    return "_schema"
