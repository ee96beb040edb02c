"""Reads from a streaming replica, with read-your-writes.

With DATABASE_REPLICA_URL set, GET requests read from the replica unless it is down or has
fallen behind by more than DATABASE_REPLICA_MAX_LAG_SECONDS (checked at most once a second per
process); writes and request transactions always use the primary.

How far behind: once a second each process notes the primary's WAL position; the replica's lag
is the age of the newest noted position it has replayed. That holds for a replica cut off from
its primary too, which has replayed all it received and would look current by its own clocks.

Every successful write answers `X-Data-Version: <the primary's WAL position after the commit>`;
a GET that sends it back as `X-Min-Data-Version` is served by the replica only once the replica
has replayed that far, else by the primary. Without a replica the headers cost nothing and the
primary serves everything.
"""

import logging
import re
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from time import monotonic

import psycopg

from . import db
from .errors import BadRequest, Unavailable
from .store import replica as store

log = logging.getLogger(__name__)

DATA_VERSION = "X-Data-Version"
MIN_DATA_VERSION = "X-Min-Data-Version"
_MIN_DATA_VERSION_KEY = "HTTP_X_MIN_DATA_VERSION"  # its key in the WSGI environ
_LSN = re.compile(r"[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}")
_CHECK_EVERY = 1.0


def position(lsn: str) -> int:
    """A WAL position (like 0/16B3748) as a number that orders like the WAL."""
    high, low = lsn.split("/")
    return int(high, 16) << 32 | int(low, 16)


class Replica:
    def __init__(self, config: dict, primary: db.Database):
        # A short pool timeout: a dead replica must cost a read a fraction of a second, not the
        # primary's full wait, before it falls back.
        self.database = db.Database(
            config,
            url=config["DATABASE_REPLICA_URL"],
            name="dataservice-replica",
            timeout=min(0.5, config["DATABASE_POOL_TIMEOUT"]),
            on_error=primary.on_error,
        )
        self.primary = primary
        self.max_lag = config["DATABASE_REPLICA_MAX_LAG_SECONDS"]
        self._seen: deque[tuple[float, int]] = deque()  # (when, the primary's WAL position)
        self._lock = threading.Lock()
        self._checked_at = -_CHECK_EVERY
        self._fresh = False

    def fresh(self) -> bool:
        """Up and within the lag bound, as last checked (at most once a second)."""
        if monotonic() - self._checked_at >= _CHECK_EVERY and self._lock.acquire(blocking=False):
            try:
                self._fresh = self._check()
                self._checked_at = monotonic()
            finally:
                self._lock.release()
        return self._fresh

    def _check(self) -> bool:
        now = monotonic()
        try:
            # Briefly: this runs inside a GET, which the replica may serve with the primary down.
            with self.primary.connection(timeout=self.database.timeout) as conn:
                self._seen.append((now, position(store.current_lsn(conn))))
        except Unavailable:
            pass  # writes fail anyway; reads judge the replica by the positions already seen
        while self._seen and self._seen[0][0] < now - self.max_lag:
            self._seen.popleft()
        try:
            with self.database.connection() as conn:
                replayed = store.replayed_position(conn)
        except Unavailable:
            log.warning("replica unreachable: reads go to the primary")
            return False
        if replayed is None:  # not a standby: it has everything
            return True
        if any(seen <= position(replayed) for _, seen in self._seen):
            return True
        log.warning("replica over %.1f s behind: reads go to the primary", self.max_lag)
        return False

    def _borrow(self, min_version: str | None) -> psycopg.Connection | None:
        """A replica connection fit for this read, or None (then the primary serves it)."""
        if not self.fresh():
            return None
        try:
            conn = self.database.checkout()
        except Unavailable:
            self._fresh = False
            return None
        try:
            if min_version is None or store.has_replayed(conn, min_version):
                return conn
        except psycopg.Error:
            self._fresh = False
        self.database.giveback(conn)
        return None

    @contextmanager
    def read_connection(self, min_version: str | None) -> Iterator[psycopg.Connection]:
        """A replica connection when the replica is fresh and has replayed `min_version` (a
        client's X-Min-Data-Version), else a primary one."""
        conn = self._borrow(min_version)
        if conn is None:
            with self.primary.connection() as conn:
                yield conn
            return
        with self.database.lent(conn):
            yield conn

    def close(self) -> None:
        self.database.close()


def min_data_version(environ: dict) -> str | None:
    """The request's X-Min-Data-Version, checked: a 400 unless it is a data version."""
    version = environ.get(_MIN_DATA_VERSION_KEY)  # the header, without EnvironHeaders
    if version is not None and not _LSN.fullmatch(version):
        raise BadRequest(
            f"{MIN_DATA_VERSION} must be a data version this service returned (like 0/16B3748)"
        )
    return version


def data_version(database: db.Database) -> str | None:
    """The primary's WAL position now, for a committed write's X-Data-Version (None when the
    primary does not answer: the write is committed; only the token is missing)."""
    try:
        with database.connection() as conn:
            return store.current_lsn(conn)
    except Unavailable:
        log.warning("no %s for a committed write: the primary did not answer", DATA_VERSION)
        return None
