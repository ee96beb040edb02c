"""Why the database cannot be reached, in one line an operator can act on: which server (host and
port, never the user or password) and what it answered. The CLI prints that line, the service
logs it once and `/ready` answers with it.

The pool connects in background threads and retries with backoff; a request only ever sees a
PoolTimeout. So each pool connects through a `Reachability`'s connection class, which remembers
the latest failure until a connection succeeds.
"""

import logging
import re
import threading

import psycopg
from psycopg.conninfo import conninfo_to_dict

log = logging.getLogger(__name__)

# libpq's "connection to server at ..., port ... failed: " prefix, dropped: the line names the
# server itself, from the connection string, the same way for every kind of failure.
_LIBPQ_PREFIX = re.compile(
    r'^(?:connection failed: )?connection to server (?:at "[^"]*"(?: \([^)]*\))?, port \d+'
    r'|on socket "[^"]*") failed: (?:FATAL:\s+)?'
)
_REFUSED = re.compile(r"unsupported startup parameter:?\s*(\S*)")
PGBOUNCER_FIX = "behind PgBouncer in transaction mode, set DATABASE_PGBOUNCER=true"


def server(conninfo: str) -> str:
    """host:port of a URL or key=value string (libpq's defaults where absent)."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "(a connection string libpq cannot parse)"
    return f"{params.get('host') or 'localhost'}:{params.get('port') or 5432}"


def describe(exc: psycopg.Error, conninfo: str, *, startup_fix: str = PGBOUNCER_FIX) -> str:
    """One line for a failed connection attempt; `startup_fix` is what to do when the server
    refuses a startup parameter (PgBouncer in transaction mode refuses `options`)."""
    lines = str(exc).strip().splitlines()
    reason = _LIBPQ_PREFIX.sub("", lines[0]) if lines else type(exc).__name__
    where = f"the database at {server(conninfo)}"
    refused = _REFUSED.search(reason)
    if refused:
        return f"{where} refused the startup parameter {refused[1]!r} ({reason}): {startup_fix}"
    return f"cannot connect to {where}: {reason}"


class Reachability:
    """The latest reason a pool could not connect, None once a connection succeeds. Each new
    reason is logged once, as an error: not once per retry, nor per request that times out."""

    def __init__(self, conninfo: str, *, pool: str, pgbouncer: bool):
        self.conninfo = conninfo
        self.pool = pool
        # With DATABASE_PGBOUNCER=true no options are sent: another parameter was refused.
        self.startup_fix = (
            "add it to ignore_startup_parameters in pgbouncer.ini" if pgbouncer else PGBOUNCER_FIX
        )
        self.reason: str | None = None
        self._lock = threading.Lock()  # the pool connects from several threads at once
        self.connection_class = self._connection_class()

    def explain(self, exc: psycopg.Error) -> str:
        return describe(exc, self.conninfo, startup_fix=self.startup_fix)

    def failed(self, exc: psycopg.Error) -> None:
        reason = self.explain(exc)
        with self._lock:
            new, self.reason = reason != self.reason, reason
        if new:
            log.error(reason, extra={"pool": self.pool})

    def succeeded(self) -> None:
        with self._lock:
            was, self.reason = self.reason, None
        if was is not None:
            log.info("connected to the database at %s again", server(self.conninfo))

    def _connection_class(self) -> type[psycopg.Connection]:
        reachability = self

        class Connection(psycopg.Connection):
            """psycopg's Connection, telling `reachability` how each attempt went."""

            @classmethod
            def connect(cls, *args, **kwargs):
                try:
                    conn = super().connect(*args, **kwargs)
                except psycopg.OperationalError as exc:
                    reachability.failed(exc)
                    raise
                reachability.succeeded()
                return conn

        return Connection
