"""PostgreSQL's own description of each endpoint query (psycopg's libpq prepare/describe): the
parameters' types and the result columns' names and types, with what the system catalogs add
(NOT NULL table columns, enum labels, domains' base types, varchar lengths, numeric precision).

Each statement is prepared unnamed inside a transaction that is rolled back, so nothing stays
behind on the connection (and, behind PgBouncer, parse and describe reach the same server).
"""

import re
from dataclasses import dataclass

import psycopg
import psycopg.rows
from psycopg import generators
from psycopg.pq import ExecStatus

from ..queries import queries as named_sql
from .declare import Query

_PLACEHOLDER = re.compile(r"%%|%\((\w+)\)s")


@dataclass(frozen=True)
class PgType:
    """A type as the catalog serves it: `name` is the base type's for a domain (`domain` keeps
    the domain's name), `element` the element type of an array, `labels` an enum's values."""

    name: str
    typmod: int = -1
    element: "PgType | None" = None
    labels: tuple[str, ...] = ()
    domain: str | None = None

    @property
    def length(self) -> int | None:
        """varchar(n) / char(n): n."""
        if self.name in ("varchar", "bpchar") and self.typmod > 4:
            return self.typmod - 4
        return None

    @property
    def precision(self) -> tuple[int, int] | None:
        """numeric(p, s): (p, s)."""
        if self.name == "numeric" and self.typmod > 4:
            return ((self.typmod - 4) >> 16) & 0xFFFF, (self.typmod - 4) & 0xFFFF
        return None


@dataclass(frozen=True)
class Column:
    name: str
    type: PgType
    not_null: bool


@dataclass(frozen=True)
class Description:
    parameters: dict[str, PgType]
    columns: tuple[Column, ...]


class Undescribed(Exception):
    """The database cannot prepare a query: its message, for /ready and `dataservice check`."""

    def __init__(self, query: Query, message: str):
        super().__init__(f"{query.where}: {message}")
        self.query = query
        self.message = message


def numbered(sql: str) -> tuple[str, list[str]]:
    """aiosql's psycopg form (%(name)s) as PostgreSQL's ($1), and the names in $-order."""
    names: list[str] = []

    def number(match: re.Match) -> str:
        if match.group(1) is None:
            return "%"
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return _PLACEHOLDER.sub(number, sql), names


def _prepared(conn: psycopg.Connection, query: Query):
    """(the parameter type oids by name, [(column name, type oid, table oid, column number,
    typmod)]), or Undescribed."""
    text, names = numbered(query.sql)
    pgconn = conn.pgconn
    with conn.transaction(force_rollback=True):
        # Sent and awaited through psycopg's own wait, not libpq's blocking calls: those hold
        # the GIL (and gevent's loop) for the whole round trip.
        pgconn.send_prepare(b"", text.encode())
        result = conn.wait(generators.execute(pgconn))[-1]
        if result.status != ExecStatus.COMMAND_OK:
            raise Undescribed(query, (result.error_message or b"").decode().strip())
        pgconn.send_describe_prepared(b"")
        result = conn.wait(generators.execute(pgconn))[-1]
        if result.status != ExecStatus.COMMAND_OK:
            raise Undescribed(query, (result.error_message or b"").decode().strip())
        parameters = {name: result.param_type(i) for i, name in enumerate(names)}
        columns = [
            (
                (result.fname(i) or b"").decode(),
                result.ftype(i),
                result.ftable(i),
                result.ftablecol(i),
                result.fmod(i),
            )
            for i in range(result.nfields)
        ]
    return parameters, columns


def _types(conn: psycopg.Connection, oids: set[int]) -> dict[int, dict]:
    """pg_type rows for `oids` and every element and base type they lead to."""
    known: dict[int, dict] = {}
    wanted = set(oids)
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cursor:
        while wanted:
            rows = cursor.execute(
                named_sql.catalog_support.types_of.sql, {"oids": sorted(wanted)}
            ).fetchall()
            known.update({row["oid"]: row for row in rows})
            wanted = {
                oid
                for row in rows
                for oid in (row["element"], row["base"])
                if oid and oid not in known
            }
    return known


def _pg_type(oid: int, typmod: int, rows: dict[int, dict]) -> PgType:
    row = rows.get(oid)
    if row is None:
        return PgType("unknown")
    if row["kind"] == "d":  # a domain: its base type, its own typmod (varchar(n) domain)
        base = _pg_type(row["base"], row["typmod"], rows)
        return PgType(base.name, base.typmod, base.element, base.labels, domain=row["name"])
    if row["category"] == "A" and row["element"]:
        return PgType("array", element=_pg_type(row["element"], typmod, rows))
    labels = tuple(row["labels"]) if row["kind"] == "e" else ()
    return PgType("enum" if labels else row["name"], typmod, labels=labels, domain=None)


def describe(conn: psycopg.Connection, queries: list[Query]) -> dict[str, Description]:
    """Every query's description, by name; Undescribed for the first that fails."""
    prepared = {query.name: _prepared(conn, query) for query in queries}
    oids = {oid for params, cols in prepared.values() for oid in params.values()}
    oids |= {col[1] for _, cols in prepared.values() for col in cols}
    rows = _types(conn, oids)
    tables = sorted({col[2] for _, cols in prepared.values() for col in cols if col[2]})
    not_null = set()
    if tables:
        with conn.cursor(row_factory=psycopg.rows.tuple_row) as cursor:
            not_null = set(
                cursor.execute(
                    named_sql.catalog_support.not_null_columns.sql,
                    {"relations": tables},
                    prepare=False,
                ).fetchall()
            )
    described = {}
    for name, (params, cols) in prepared.items():
        described[name] = Description(
            parameters={p: _pg_type(oid, -1, rows) for p, oid in params.items()},
            columns=tuple(
                Column(col_name, _pg_type(oid, typmod, rows), (table, number) in not_null)
                for col_name, oid, table, number, typmod in cols
            ),
        )
    return described


def failures(conn: psycopg.Connection, queries: list[Query]) -> list[str]:
    """A line per query that no longer describes (/ready, `dataservice check`)."""
    lines = []
    for query in queries:
        try:
            _prepared(conn, query)
        except Undescribed as exc:
            lines.append(str(exc))
    return lines
