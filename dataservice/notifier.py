"""Wakes long-polling change-feed readers when events commit, without holding pool connections.

Announcing: after a write that appended events has committed, the worker NOTIFYs, in a
transaction of its own and from a sender thread, so the request does not wait for it and
writes never commit holding NOTIFY's database-wide lock (migration 0008). Announcements made
while one is being sent, or within ANNOUNCE_INTERVAL of it, become one NOTIFY.

Listening: one listener thread per worker process keeps its own connection (LISTEN needs a
session, so it uses DATABASE_LISTEN_URL, which must not go through a transaction-pooling
PgBouncer) and bumps a generation counter on every notification. Readers wait on a condition,
holding no connection.
"""

import logging
import threading
import time

import psycopg
from flask import Flask

from .db import libpq_url
from .errors import Unavailable
from .store import events
from .workers import cooperative

log = logging.getLogger(__name__)

# Under a steady stream of writes, readers wake at most this often per writing worker: events
# then reach them in pages rather than one wake-up (and one feed query) per write.
ANNOUNCE_INTERVAL = 0.05


class ChangeNotifier:
    def __init__(self, conninfo: str, max_waiters: int, database):
        self._conninfo = conninfo
        self._database = database  # db.Database: announcements borrow a pool connection
        self._condition = threading.Condition()
        self._generation = 0
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._waiters = threading.BoundedSemaphore(max_waiters)
        self._pending = False  # an announcement not yet sent
        self._wake_sender = threading.Event()
        self._sender: threading.Thread | None = None

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

    def announce(self) -> None:
        """Events have committed: wake the feed's readers everywhere, soon (never blocks)."""
        self._pending = True
        self._wake_sender.set()
        if self._sender is None:
            with self._condition:
                if self._sender is None:
                    self._sender = threading.Thread(
                        target=self._send, name="event-announcer", daemon=True
                    )
                    self._sender.start()

    def close(self) -> None:
        self._stopping.set()
        if self._sender is not None:
            self._wake_sender.set()  # it sends what is pending, then stops
            self._sender.join(timeout=2)

    def _send(self) -> None:
        while True:
            self._wake_sender.wait()
            self._wake_sender.clear()
            if self._pending:
                self._pending = False
                try:
                    with self._database.connection() as conn:
                        events.announce(conn)
                except (Unavailable, psycopg.Error) as exc:
                    # Readers find the events at their next re-poll (at most 0.5 s) anyway.
                    log.warning("could not announce new events (%s)", type(exc).__name__)
            if self._stopping.is_set():
                return
            time.sleep(ANNOUNCE_INTERVAL)

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
                    events.listen(conn)
                    self._wake()  # events may have committed while we were not listening
                    while not self._stopping.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self._wake()
            except psycopg.Error as exc:
                log.warning(
                    "event listener lost its connection (%s); reconnecting", type(exc).__name__
                )
                time.sleep(1.0)


def init_app(app: Flask) -> None:
    app.extensions["notifier"] = ChangeNotifier(
        libpq_url(app.config["DATABASE_LISTEN_URL"] or app.config["DATABASE_URL"]),
        max_waiters=app.config["EVENTS_MAX_WAITERS"] or (64 if cooperative() else 2),
        database=app.extensions["db"],
    )
