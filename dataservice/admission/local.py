"""The instance's admission state without a network round trip: each client's GCRA timestamp
and requests in flight in one small memory-mapped file in the instance's directory (tmpfs),
read and written under flock(), shared by every gunicorn worker of the instance."""

import fcntl
import mmap
import os
import struct
import time
from collections.abc import Callable
from hashlib import sha256
from pathlib import Path

from ..workers import section_lock

# A client's file: its GCRA timestamp (the theoretical arrival time of its next request, in
# monotonic seconds) and its requests in flight, then the latter for each of _COLUMNS processes.
_HEAD = struct.Struct("di4x")
_COLUMNS = 128  # processes of one instance: workers, and the CLI or tests
_COUNT = struct.Struct("i")
_FILE_SIZE = _HEAD.size + _COLUMNS * _COUNT.size
_LOCK = struct.Struct("hhqqi4x")  # struct flock on Linux x86-64 and arm64: 32 bytes


def _lock_byte(fd: int, index: int, kind: int) -> bool:
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _LOCK.pack(kind, os.SEEK_SET, index, 1, 0))
    except BlockingIOError:
        return False
    return True


class LocalClients:
    """Each client's state in one memory-mapped file, read and written under flock(): its GCRA
    timestamp, its requests in flight, and the same counted per process (a column each), so
    that what a process that died held can be taken off by the next process taking its column.
    One lock for both checks: a request of a limited client costs two flock() pairs in all."""

    def __init__(self, directory: Callable[[], Path]):
        self._directory = directory
        self._files: dict[str, tuple[int, mmap.mmap]] = {}
        self._mutex = section_lock()  # threads of one process share the descriptors
        self._column: int | None = None

    def enter(
        self, key: str, interval: float | None, capacity: float, in_flight: int | None
    ) -> tuple[str | None, float]:
        """Takes one request of `key`, by its rate (when `interval`) and one of its `in_flight`
        places (when given): (None, seconds until its bucket is full again) when admitted,
        ("rate", seconds to wait) or ("in_flight", 1.0) when refused."""
        with self._mutex:
            fd, view = self._files.get(key) or self._open(key)
            fcntl.flock(fd, fcntl.LOCK_EX)  # other workers hold it for a few microseconds
            try:
                now = time.monotonic()  # one clock for the machine (CLOCK_MONOTONIC)
                due, total = _HEAD.unpack_from(view)
                left = 0.0
                if interval:
                    due = max(due, now) + interval
                    left = due - now
                    if left > capacity:
                        return "rate", left - capacity
                if in_flight:
                    if total >= in_flight:
                        return "in_flight", 1.0
                    total += 1
                    _add(view, self._offset, 1)
                _HEAD.pack_into(view, 0, due, total)
                return None, left
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def leave(self, key: str) -> None:
        """Gives back the in-flight place an admitted request of `key` took."""
        with self._mutex:
            fd, view = self._files[key]
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if _add(view, self._offset, -1):
                    due, total = _HEAD.unpack_from(view)
                    _HEAD.pack_into(view, 0, due, total - 1)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _open(self, key: str) -> tuple[int, mmap.mmap]:
        if self._column is None:
            self._claim_column()
        name = sha256(key.encode()).hexdigest()[:32]
        fd = os.open(self._directory() / f"client-{name}", os.O_RDWR | os.O_CREAT, 0o600)
        os.ftruncate(fd, _FILE_SIZE)  # zeros (a time long past, nothing in flight) when new
        entry = self._files[key] = (fd, mmap.mmap(fd, _FILE_SIZE))
        return entry

    def _claim_column(self) -> None:
        """Takes the first column no live process holds (a lock on its byte of `columns`,
        held for this process's life) and takes off what a dead holder left in it."""
        fd = os.open(self._directory() / "columns", os.O_RDWR | os.O_CREAT, 0o600)
        column = next((c for c in range(_COLUMNS) if _lock_byte(fd, c, fcntl.F_WRLCK)), None)
        if column is None:
            raise RuntimeError(f"more than {_COLUMNS} processes share {self._directory()}")
        self._column, self._offset = column, _HEAD.size + column * _COUNT.size
        for path in self._directory().glob("client-*"):
            with path.open("r+b") as file, mmap.mmap(file.fileno(), _FILE_SIZE) as view:
                fcntl.flock(file, fcntl.LOCK_EX)
                (left_behind,) = _COUNT.unpack_from(view, self._offset)
                _add(view, self._offset, -left_behind)
                due, total = _HEAD.unpack_from(view)
                _HEAD.pack_into(view, 0, due, total - left_behind)


def _add(view: mmap.mmap, offset: int, amount: int) -> bool:
    """Adds `amount` to the count at `offset`, never below 0; False when it was 0 already."""
    (count,) = _COUNT.unpack_from(view, offset)
    if count + amount < 0:
        return False
    _COUNT.pack_into(view, offset, count + amount)
    return True
