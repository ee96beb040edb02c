"""The named SQL of sql/*.sql, loaded once at import: a malformed file fails the start, not a
request.

Each file becomes a namespace: `queries.users.get_user_by_id(conn, user_id=1)`. Query functions take
the connection first and never commit: the caller owns the transaction.
"""

from pathlib import Path
from types import SimpleNamespace

import aiosql

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"

queries = SimpleNamespace(
    **{path.stem: aiosql.from_path(path, "psycopg") for path in sorted(SQL_DIR.glob("*.sql"))}
)
