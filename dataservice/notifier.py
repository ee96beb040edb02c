"""Wakes long-polling change-feed readers when events commit, without holding pool connections.

One listener thread per worker process keeps its own connection (LISTEN needs a session, so it
uses DATABASE_LISTEN_URL, which must not go through a transaction-pooling PgBouncer) and bumps
a generation counter on every notification. Readers wait on a condition, holding no connection.
"""

import logging
import threading
import time

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

CHANNEL = "dataservice_events"
_LISTEN = sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL))  # a fixed identifier, no values


class ChangeNotifier:
    def __init__(self, conninfo: str, max_waiters: int):
        self._conninfo = conninfo
        self._condition = threading.Condition()
        self._generation = 0
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._waiters = threading.BoundedSemaphore(max_waiters)

    @property
    def generation(self) -> int:
        return self._generation

    def try_reserve(self) -> bool:
        """A slot for one waiting reader; False when every slot is taken (the reader should then
        answer at once rather than tie up one more worker thread)."""
        return self._waiters.acquire(blocking=False)

    def release(self) -> None:
        self._waiters.release()

    def wait(self, seen_generation: int, timeout: float) -> None:
        """Returns when a notification newer than `seen_generation` arrived, or after `timeout`."""
        self._start()
        with self._condition:
            self._condition.wait_for(lambda: self._generation != seen_generation, timeout)

    def close(self) -> None:
        self._stopping.set()

    def _start(self) -> None:
        if self._thread is None:
            with self._condition:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._listen, name="event-listener", daemon=True
                    )
                    self._thread.start()

    def _wake(self) -> None:
        with self._condition:
            self._generation += 1
            self._condition.notify_all()

    def _listen(self) -> None:
        while not self._stopping.is_set():
            try:
                with psycopg.connect(
                    self._conninfo, autocommit=True, application_name="dataservice-listener"
                ) as conn:
                    conn.execute(_LISTEN)
                    self._wake()  # events may have committed while we were not listening
                    while not self._stopping.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self._wake()
            except psycopg.Error as exc:
                log.warning(
                    "event listener lost its connection (%s); reconnecting", type(exc).__name__
                )
                time.sleep(1.0)
