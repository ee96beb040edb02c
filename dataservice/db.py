"""The connection pool (one per worker process) and the two ways a request borrows from it.

Pool connections run in autocommit mode: a single-statement read costs one round trip and no
BEGIN/COMMIT. Anything that writes goes through `transaction()`, which wraps the block in one
explicit transaction committed before the response is built. Any operational failure (server
gone, pool exhausted, statement timeout) leaves here as `Unavailable`, that is a 503; an
integrity error (a constraint or trigger, in a statement or at commit) leaves as the domain
error integrity.py gives it, never as a 500.
"""

import logging
import select
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from time import monotonic

import orjson
import psycopg
from flask import Flask, current_app, g
from psycopg import errors as pg_errors
from psycopg.rows import dict_row
from psycopg.types.json import set_json_dumps, set_json_loads
from psycopg_pool import ConnectionPool, PoolTimeout, TooManyRequests

from . import connectivity, integrity, tracing
from .errors import Busy, Unavailable
from .store import session

# json/jsonb columns (event data, stored idempotent responses) go through orjson, as HTTP bodies
# do: several times faster than the json module for a batch's thousand event documents.
set_json_dumps(orjson.dumps)
set_json_loads(orjson.loads)

RECONNECT_TIMEOUT = 0.5

log = logging.getLogger(__name__)


def libpq_url(url: str) -> str:
    """psycopg wants postgresql://; yoyo wants postgresql+psycopg:// for the same database.
    Accept either from the user and give each library its own form."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def yoyo_url(url: str) -> str:
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url


def connection_is_usable(conn: psycopg.Connection) -> bool:
    """Checks a pooled connection without a round trip in the common case.

    An idle connection has nothing to read. When PostgreSQL restarts or an operator runs
    pg_terminate_backend, the server sends a goodbye and closes the socket, so the socket turns
    readable: only then do we pay for a round trip to tell a goodbye from a harmless notice.
    """
    if conn.closed:
        return False
    try:
        readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
        if readable:
            conn.execute("")
    except (OSError, psycopg.Error):
        return False
    return not conn.closed


def error_kind(exc: psycopg.Error) -> str:
    """A short, bounded name for a failure that becomes a 503: a label of the
    dataservice_db_errors_total metric."""
    if isinstance(exc, pg_errors.ReadOnlySqlTransaction):
        return "read_only"  # a primary demoted to a standby, still reached through a proxy
    if isinstance(exc, PoolTimeout):
        return "pool_timeout"
    if isinstance(exc, TooManyRequests):
        return "pool_queue_full"
    if isinstance(exc, pg_errors.QueryCanceled):
        return "statement_timeout"
    if isinstance(exc, pg_errors.LockNotAvailable):
        return "lock_timeout"
    if exc.sqlstate and exc.sqlstate.startswith("40"):
        return "transaction_conflict"  # deadlock or serialization failure
    if isinstance(
        exc, pg_errors.AdminShutdown | pg_errors.CrashShutdown | pg_errors.CannotConnectNow
    ):
        return "server_shutdown"
    if exc.sqlstate is None or exc.sqlstate.startswith("08"):
        return "connection_lost"
    return "other"


def _unavailable(exc: psycopg.Error, on_error: Callable[[str], None]) -> Unavailable:
    on_error(error_kind(exc))
    return Unavailable()


@contextmanager
def _failures_mapped(
    conn: psycopg.Connection, on_error: Callable[[str], None]
) -> Iterator[psycopg.Connection]:
    """Maps a failure while `conn` is used: an operational one to a 503, an integrity error to
    the domain error integrity.py gives it. Behind HAProxy or PgBouncer a connection can reach a
    primary that was demoted to a standby: its writes fail with SQLSTATE 25006 (an
    InternalError, not an OperationalError) for as long as it lives, so it is closed, and the
    pool replaces it with one to wherever the URL leads now."""
    try:
        yield conn
    except pg_errors.ReadOnlySqlTransaction as exc:
        log.warning("the database server is read-only (no longer the primary?): %s", exc)
        conn.close()
        raise _unavailable(exc, on_error) from exc
    except psycopg.OperationalError as exc:
        log.warning("database operation failed: %s: %s", type(exc).__name__, exc)
        raise _unavailable(exc, on_error) from exc
    except psycopg.IntegrityError as exc:
        raise integrity.translate(exc) from None


def _reconnect_soon(pool: ConnectionPool) -> None:
    if not pool.closed:
        pool.check()  # starts one new connection when the pool is short of them


class Gate:
    """A first-come, first-served semaphore: a released permit goes to the longest waiter.
    (gevent's Semaphore lets a newcomer take it first, which starved some waiters: p99 x4.)"""

    def __init__(self, permits: int):
        self._free = permits
        self._waiters: deque[threading.Lock] = deque()  # each held until its permit arrives
        self._mutex = threading.Lock()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def acquire(self, timeout: float) -> bool:
        with self._mutex:
            if self._free and not self._waiters:
                self._free -= 1
                return True
            waiter = threading.Lock()
            waiter.acquire()
            self._waiters.append(waiter)
        try:
            if waiter.acquire(timeout=timeout):
                return True
        except BaseException:  # interrupted (a gevent.Timeout, say): never lose the permit
            if not self._withdraw(waiter):
                self.release()
            raise
        return not self._withdraw(waiter)  # the permit may have come as the wait timed out

    def _withdraw(self, waiter: threading.Lock) -> bool:
        """Takes a waiter out of the line; False when its permit was already handed to it."""
        with self._mutex:
            try:
                self._waiters.remove(waiter)
            except ValueError:
                return False
            return True

    def release(self) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().release()
            else:
                self._free += 1


_WAIT_ATTRIBUTES = {"db.system.name": "postgresql"}


class _TimedCommit:
    """A psycopg transaction block whose COMMIT (its clean exit) is a measuring point."""

    def __init__(self, transaction):
        self.transaction = transaction

    def __enter__(self):
        return self.transaction.__enter__()

    def __exit__(self, kind, error, traceback):
        if kind is not None:  # a rollback
            return self.transaction.__exit__(kind, error, traceback)
        with tracing.commit():
            return self.transaction.__exit__(None, None, None)


class Database:
    def __init__(
        self,
        config: dict,
        *,
        url: str | None = None,
        name: str = "dataservice",
        timeout: float | None = None,
        on_error: Callable[[str], None] = lambda kind: None,
    ):
        """`on_error(kind)` hears of every failure that becomes a 503 (the factory wires it to
        the metrics; see error_kind)."""
        self.on_error = on_error
        self.name = name
        # Not behind PgBouncer's transaction pooling: a session setting would outlive the
        # transaction on a server connection other clients then get.
        self.tag_sessions = not config["DATABASE_PGBOUNCER"]
        options = (
            "-c TimeZone=UTC"
            f" -c statement_timeout={config['DATABASE_STATEMENT_TIMEOUT_MS']}"
            f" -c idle_in_transaction_session_timeout="
            f"{config['DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS']}"
        )
        self.timeout = timeout or config["DATABASE_POOL_TIMEOUT"]
        self.queue_budget = config["DATABASE_QUEUE_BUDGET_MS"] / 1000
        session = {"options": options}
        if config["DATABASE_PGBOUNCER"]:
            # Transaction pooling hands each transaction to any server connection: a prepared
            # statement or a session setting would land on the wrong one, and PgBouncer refuses
            # the options startup parameter. Timeouts then come from ALTER ROLE ... SET.
            session = {"prepare_threshold": None}
        conninfo = libpq_url(url or config["DATABASE_URL"])
        # Why connecting fails, if it does: logged once, and told by /ready and the CLI.
        self.reachability = connectivity.Reachability(
            conninfo, pool=name, pgbouncer=config["DATABASE_PGBOUNCER"]
        )
        self.pool = ConnectionPool(
            conninfo,
            connection_class=self.reachability.connection_class,
            min_size=config["DATABASE_POOL_MIN_SIZE"],
            max_size=config["DATABASE_POOL_MAX_SIZE"],
            timeout=self.timeout,
            # A lost connection is retried once after RECONNECT_TIMEOUT, then its slot is given
            # up and _reconnect_soon has the pool grow again, one connection at a time: an
            # attempt every half second, however long the outage. psycopg-pool's own backoff
            # (1 s, 2 s, 4 s ... for up to 300 s) grows with the outage: 503s went on for 26 s
            # after a 90-s outage had ended, and for up to 2 s after a Patroni switchover.
            reconnect_timeout=RECONNECT_TIMEOUT,
            reconnect_failed=_reconnect_soon,
            open=False,  # opened in the worker process, never before gunicorn forks
            name=name,
            kwargs={
                "autocommit": True,
                "row_factory": dict_row,
                "application_name": name,
                "connect_timeout": max(1, round(self.timeout)),
                **session,
            },
        )
        self._open_lock = threading.Lock()
        self._opened = False
        self._gate: Gate | None = None

    def open(self) -> ConnectionPool:
        """Idempotent; called lazily by the first request or eagerly by gunicorn's worker hook."""
        if not self._opened:
            with self._open_lock:
                if not self._opened:
                    # Requests wait for a connection at this gate, not in the pool: the pool's
                    # waiting-client bookkeeping (a Condition and a Timeout per waiter) cost
                    # GETs 1.02x and creates 1.02x their req/s at 64 clients per 4 connections
                    # (wrk, 6 alternating rounds; once ~8%: docs/benchmarks.md, seventeenth
                    # round); past the gate, getconn rarely waits. Made here, in the worker,
                    # after gevent has patched it.
                    self._gate = Gate(self.pool.max_size)
                    self.pool.open()
                    self._opened = True
        return self.pool

    def close(self) -> None:
        with self._open_lock:
            if self._opened:
                self.pool.close()

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection]:
        """A pooled connection in autocommit mode, for reads that need no transaction; waits
        for one at most `timeout` seconds (default: the pool's timeout)."""
        pool = self.open()
        conn = self._checkout(pool, timeout or self.timeout)
        with self.lent(conn):
            trace_id = tracing.recorded_trace_id() if self.tag_sessions else None
            if trace_id is not None:  # a sampled trace: pg_stat_activity names it
                session.tag(conn, f"{self.name} {trace_id}")
            yield conn

    @contextmanager
    def lent(self, conn: psycopg.Connection) -> Iterator[None]:
        """Maps a failure while `conn` is used to a 503 and gives it back to the pool."""
        try:
            with _failures_mapped(conn, self.on_error):
                yield
        finally:
            self.giveback(conn)

    def giveback(self, conn: psycopg.Connection) -> None:
        """Returns a connection from `checkout()` (a broken one is replaced by the pool)."""
        try:
            self.pool.putconn(conn)
        finally:
            self._gate.release()

    def stats(self) -> dict[str, int]:
        """The pool's statistics, with the requests waiting at the gate among those waiting."""
        stats = self.pool.get_stats()
        gate_waiting = self._gate.waiting if self._gate else 0
        stats["requests_waiting"] = stats.get("requests_waiting", 0) + gate_waiting
        return stats

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        """One transaction: committed when the block ends cleanly, rolled back on any error."""
        with self.connection() as conn, _TimedCommit(conn.transaction()):
            yield conn

    def checkout(self) -> psycopg.Connection:
        """A connection to give back with `lent()` (for callers that may not keep it)."""
        return self._checkout(self.open(), self.timeout)

    def _checkout(self, pool: ConnectionPool, timeout: float) -> psycopg.Connection:
        with tracing.phase(tracing.DB_WAIT, "connection wait", _WAIT_ATTRIBUTES):
            return self._wait_for_connection(pool, timeout)

    def _wait_for_connection(self, pool: ConnectionPool, timeout: float) -> psycopg.Connection:
        deadline = monotonic() + timeout
        try:
            # Past its budget a request is shed: under overload the ones served stay fast.
            if not self._gate.acquire(min(timeout, self.queue_budget)):
                if self.queue_budget < timeout:
                    raise Busy(
                        "every database connection of this worker is in use and the request "
                        "waited its budget (DATABASE_QUEUE_BUDGET_MS); retry shortly",
                        "queue",
                    )
                raise PoolTimeout(f"no connection came free in {timeout:.2f} s")
            try:
                return self._usable_connection(pool, deadline)
            except BaseException:
                self._gate.release()
                raise
        except psycopg.OperationalError as exc:  # PoolTimeout, TooManyRequests
            log.warning("no database connection available: %s", exc)
            raise _unavailable(exc, self.on_error) from exc

    def _usable_connection(self, pool: ConnectionPool, deadline: float) -> psycopg.Connection:
        # Skips connections the server has closed without the pool's own check loop, which
        # sleeps with backoff between attempts; dead ones are dropped and replaced.
        while True:
            conn = pool.getconn(timeout=max(deadline - monotonic(), 0.0))
            if connection_is_usable(conn):
                return conn
            log.info("discarding a pooled connection the server has closed")
            pool.putconn(conn)


def init_app(app: Flask, on_error: Callable[[str], None]) -> None:
    app.extensions["db"] = Database(app.config, on_error=on_error)


def get() -> Database:
    return current_app.extensions["db"]


# The verbs a view uses, one meaning each. Where a request reads from is decided before its view
# runs, by the request pipeline (api/pipeline.py): `g.replica` is the replica that may answer its
# reads, or None for the primary. Outside a request (the CLI) everything goes to the primary.


def read():
    """A connection for this request's reads: its transaction when one is open (so a batch's
    operation sees the writes before it), else the replica the pipeline chose (it falls back to
    the primary when the replica is behind), else the primary in autocommit."""
    context = g._get_current_object()  # not the proxy: see api/pipeline.py (-11% per GET)
    shared = getattr(context, "request_conn", None)
    if shared is not None:
        return _failures_mapped(shared, get().on_error)
    replica = getattr(context, "replica", None)
    if replica is not None:
        return replica.read_connection(context.min_data_version)
    return get().connection()


def write():
    """A transaction for this request's writes: its transaction when one is open (a batch, an
    idempotent request: everything commits together), else a new one, committed when the
    block ends cleanly and rolled back on any error."""
    shared = g.get("request_conn")
    return _failures_mapped(shared, get().on_error) if shared is not None else get().transaction()


def single_statement():
    """A connection for a write of one statement, atomic by itself: this request's transaction
    when one is open, else the primary in autocommit, with no BEGIN and COMMIT round trips (a
    user's create writes the user and its event in one statement: 1.2x the creates per second
    of a transaction around it, docs/benchmarks.md, thirteenth round)."""
    shared = g.get("request_conn")
    return _failures_mapped(shared, get().on_error) if shared is not None else get().connection()


@contextmanager
def savepoint() -> Iterator[psycopg.Connection]:
    """A savepoint in this request's transaction, which must be open: the block's writes are
    undone on an error while the transaction goes on (a batch's bulk run)."""
    conn = g.request_conn
    with _failures_mapped(conn, get().on_error), conn.transaction():
        yield conn


def primary():
    """A primary connection in autocommit, never the request's transaction: for what must see
    the latest committed state whatever the request does (a new token, a write's data version)."""
    return get().connection()


@contextmanager
def request_transaction() -> Iterator[psycopg.Connection]:
    """Opens the request's transaction: `read()` and `write()` hand out its connection until the
    block ends, so several operations and their bookkeeping commit together (idempotency
    records, batches)."""
    if g.get("request_conn") is not None:  # already inside one (a batch sent with a key)
        yield g.request_conn
        return
    with get().transaction() as conn:
        g.request_conn = conn
        try:
            yield conn
        finally:
            g.request_conn = None
