"""The named SQL of sql/*.sql, loaded once at import: a malformed file fails the start, not a
request.

Each file becomes a namespace: `queries.users.get_user_by_id(conn, user_id=1)`. Query functions take
the connection first and never commit: the caller owns the transaction.
"""

from functools import partial
from pathlib import Path
from types import SimpleNamespace

import aiosql
from aiosql.adapters.pyformat import PyFormatAdapter

from . import tracing

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"


class TimedAdapter(PyFormatAdapter):
    """aiosql's psycopg adapter, each statement a measuring point named by its query
    (tracing.statement: a span when the request is traced, the `db` Server-Timing metric)."""

    def __init__(self, namespace: str):
        super().__init__()
        self.namespace = namespace

    def process_sql(self, query_name, op_type, sql):
        sql = super().process_sql(query_name, op_type, sql)
        tracing.describe_statement(self.namespace, query_name, sql)
        return sql

    def select(self, conn, query_name, sql, parameters, record_class=None):
        with tracing.statement(query_name):  # the rows fetched inside the span
            return list(super().select(conn, query_name, sql, parameters, record_class))

    def select_one(self, conn, query_name, sql, parameters, record_class=None):
        with tracing.statement(query_name):
            return super().select_one(conn, query_name, sql, parameters, record_class)

    def select_value(self, conn, query_name, sql, parameters):
        with tracing.statement(query_name):
            return super().select_value(conn, query_name, sql, parameters)

    def insert_update_delete(self, conn, query_name, sql, parameters):
        with tracing.statement(query_name):
            return super().insert_update_delete(conn, query_name, sql, parameters)

    def insert_update_delete_many(self, conn, query_name, sql, parameters):
        with tracing.statement(query_name):
            return super().insert_update_delete_many(conn, query_name, sql, parameters)

    def insert_returning(self, conn, query_name, sql, parameters):
        with tracing.statement(query_name):
            return super().insert_returning(conn, query_name, sql, parameters)


queries = SimpleNamespace(
    **{
        path.stem: aiosql.from_path(path, partial(TimedAdapter, path.stem))
        for path in sorted(SQL_DIR.glob("*.sql"))
    }
)
