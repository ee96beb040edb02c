"""Keyset pages, for every resource: a named list query per sort, each reading the rows after a
position, and a count query taking the same filters.

A resource declares its listing once (`Listing`); its list queries take, besides the filters,
`after_<key>` for each key of the sort's keyset (all NULL for the first page) and `limit`. A
position is the keys' values in the last row of a page, as a cursor stores them: JSON values,
timestamps (keys named `*_at`) in ISO 8601.
"""

from dataclasses import dataclass
from datetime import datetime

import psycopg
from aiosql.types import QueryFn

from .. import tracing
from ..errors import InvalidCursor


class Sort:
    """A sort: its named query and the columns of its keyset, the last one unique (the id)."""

    def __init__(self, query: QueryFn, *keys: str):
        self.query = query
        self.keys = keys


@dataclass(frozen=True)
class Listing:
    sorts: dict[str, Sort]
    count: QueryFn

    @property
    def filters(self) -> tuple[str, ...]:
        """The filter parameters every list query and the count take (the count's parameters)."""
        return tuple(self.count.parameters or ())

    def rows(
        self, conn: psycopg.Connection, sort: str, after: list | None, filters: dict, limit: int
    ) -> list[dict]:
        """Up to `limit` rows in `sort` order after the position `after` (None: the first
        page). `filters` holds every filter, None when off."""
        chosen = self.sorts[sort]
        after = after or [None] * len(chosen.keys)
        if len(after) != len(chosen.keys):
            raise InvalidCursor()
        params = {**filters, "limit": limit}
        for key, value in zip(chosen.keys, after, strict=True):
            params[f"after_{key}"] = _read(key, value)
        # Unprepared on purpose: a prepared (generic) plan could not drop the filters that are
        # off or use a prefix index, so each call is planned with its real values.
        with tracing.statement(chosen.query.__name__):
            return conn.execute(chosen.query.sql, params, prepare=False).fetchall()

    def position(self, sort: str, row: dict) -> list:
        """The keyset position of `row` under `sort`, as a cursor stores it."""
        return [_written(row[key]) for key in self.sorts[sort].keys]

    def total(self, conn: psycopg.Connection, filters: dict) -> int:
        return self.count(conn, **filters)


def _written(value):
    return value.isoformat() if isinstance(value, datetime) else value


def _read(key: str, value):
    if value is not None and key.endswith("_at"):
        return datetime.fromisoformat(value)
    return value
