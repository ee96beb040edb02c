"""The catalog: named queries that a DBA reviewed, served as typed endpoints with no Python.

A named query in sql/*.sql (or in a directory of CATALOG_SQL_DIRS) whose header has an
`endpoint:` line is an endpoint (declare.py reads the header; docs/queries.md has the syntax).
PostgreSQL describes each one at start (describe.py); its parameters' and columns' types become
the marshmallow fields that validate a request and dump a row, and the OpenAPI schemas
(types.py). api/catalog.py serves them through the kit like any endpoint written by hand.
"""

import logging

import psycopg
import psycopg.rows

from ..queries import queries as named_sql
from .declare import CatalogError, Query, collisions_with, load, sql_dirs
from .describe import Description, Undescribed, describe, failures

log = logging.getLogger(__name__)

__all__ = [
    "Catalog",
    "CatalogError",
    "Description",
    "Query",
    "Undescribed",
    "collisions_with",
    "failures",
]


class Catalog:
    """The endpoint queries of one app and, once the database has answered, their types."""

    def __init__(self, extra_dirs: str = ""):
        self.queries = load(sql_dirs(extra_dirs))
        self.descriptions: dict[str, Description] = {}

    def describe(self, conn: psycopg.Connection) -> None:
        """Describes every query and checks their scopes against the database's; raises
        CatalogError (a declaration is wrong) or Undescribed (a query does not prepare)."""
        with conn.cursor(row_factory=psycopg.rows.tuple_row) as cursor:
            known = {name for (name,) in cursor.execute(named_sql.catalog_support.known_scopes.sql)}
        for query in self.queries:
            unknown = [scope for scope in query.scopes if scope not in known]
            if unknown:
                raise CatalogError(query.where, f"the database knows no scope {', '.join(unknown)}")
        self.descriptions = describe(conn, self.queries)
        for query in self.queries:
            _fits(query, self.descriptions[query.name])

    def start(self, conninfo: str, timeout: float) -> None:
        """Describes every query through a connection of its own, as the app starts. When the
        database cannot answer yet (down, not migrated, a query that does not prepare), the
        catalog stays undescribed: its views describe their query when called, and /ready says
        what is wrong. A declaration the database refuses (an unknown scope) stops the start."""
        try:
            with psycopg.connect(
                conninfo, connect_timeout=max(1, round(timeout)), autocommit=True
            ) as conn:
                self.describe(conn)
        except (psycopg.Error, Undescribed) as exc:
            self.descriptions = {}
            # Not a warning: /ready says why (and a worker that fails to boot says nothing more).
            log.debug("the catalog's queries are not described yet: %s", str(exc).strip())

    def described(self, query: Query, conn: psycopg.Connection) -> Description:
        """One query's description, asked now (for a catalog undescribed at start)."""
        description = self.descriptions.get(query.name)
        if description is None:
            description = describe(conn, [query])[query.name]
            _fits(query, description)
            self.descriptions[query.name] = description
        return description

    def failures(self, conn: psycopg.Connection) -> list[str]:
        """A line per query that no longer describes, naming it and the database's message."""
        return failures(conn, self.queries)


def _fits(query: Query, description: Description) -> None:
    """What only the description can tell: the page's and the checks' columns exist, the event's
    entity id is a column or parameter."""
    columns = {column.name for column in description.columns}
    for column in query.page:
        if column not in columns:
            raise CatalogError(query.where, f"the page's column {column} is not in the result")
    for check in query.checks:
        if check.column not in columns:
            raise CatalogError(
                query.where, f"the check's column {check.column} is not in the result"
            )
    if query.event and query.event[1] not in columns | set(query.parameters):
        raise CatalogError(
            query.where,
            f"the event's entity id {query.event[1]} is neither a column nor a parameter",
        )
    if query.shape != "write" and not columns:
        raise CatalogError(query.where, "returns no columns: a write without rows is `!`")
