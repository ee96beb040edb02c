"""Admission: how much of this instance one client may take, decided before its request runs.

Each API client may have limits (api_clients.rate_per_second, burst, max_in_flight; NULL means
unlimited): a request rate with a burst, enforced as a GCRA token bucket (the "generic cell rate
algorithm": one timestamp per client, the theoretical arrival time of its next request), and a
number of requests in flight at once. Password hashing, the one expensive thing a request can
ask for, has its own fair queue in each worker (hashing.py).

The state is instance-wide, shared by every gunicorn worker, without a network round trip:
a client's timestamp and its requests in flight live in one small memory-mapped file in the
instance's directory (tmpfs), read and written under flock() (LocalClients). With several
instances, RATELIMIT_STORAGE_URL=redis://... keeps the rates in Redis instead (one script call
per request); in-flight bounds stay per instance, as they protect the instance's own workers.
"""

import atexit
import fcntl
import logging
import math
import mmap
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from hashlib import sha256
from pathlib import Path

from .errors import RateLimited
from .workers import cooperative, section_lock

log = logging.getLogger(__name__)

# A client's file: its GCRA timestamp (the theoretical arrival time of its next request, in
# monotonic seconds) and its requests in flight, then the latter for each of _COLUMNS processes.
_HEAD = struct.Struct("di4x")
_COLUMNS = 128  # processes of one instance: workers, and the CLI or tests
_COUNT = struct.Struct("i")
_FILE_SIZE = _HEAD.size + _COLUMNS * _COUNT.size
_LOCK = struct.Struct("hhqqi4x")  # struct flock on Linux x86-64 and arm64: 32 bytes


@dataclass(frozen=True)
class Limits:
    """One client's limits; None is unlimited. The RateLimit-Policy header (IETF
    draft-ietf-httpapi-ratelimit-headers) is built once per client, not per request."""

    rate: float | None = None  # requests per second, sustained
    burst: int | None = None  # requests at once after a quiet spell
    in_flight: int | None = None
    policy: str = field(init=False, compare=False)

    def __post_init__(self):
        items = []
        if self.rate:
            items.append(f'"rate";q={self.burst};w={max(1, math.ceil(self.burst / self.rate))}')
        if self.in_flight:
            items.append(f'"in-flight";q={self.in_flight};qu="concurrent-requests"')
        object.__setattr__(self, "policy", ", ".join(items))

    @property
    def unlimited(self) -> bool:
        return not self.rate and not self.in_flight


UNLIMITED = Limits()
# What `dataservice clients create` gives a new client unless told otherwise: far above what one
# business service sends on a normal day (the benchmark's 2,700 GET/s come from one client),
# low enough that one runaway client cannot take a whole instance.
DEFAULT_LIMITS = Limits(rate=500, burst=1000, in_flight=32)


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


# KEYS[1]: the client's key; ARGV: interval, capacity (seconds). Redis's clock serves every
# instance. Numbers go back as strings: Redis would truncate a Lua number to an integer.
_GCRA_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local interval, capacity = tonumber(ARGV[1]), tonumber(ARGV[2])
local due = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now) + interval
if due - now > capacity then
  return tostring(capacity - (due - now))
end
redis.call('SET', KEYS[1], string.format('%.6f', due), 'PX', math.ceil((due - now) * 1000))
return tostring(due - now)
"""


class RedisRates:
    """GCRA state in Redis, shared by every instance that names the same server and prefix.
    While Redis cannot be reached, rates are not enforced (logged, at most every 10 s): the
    limits protect the service, and Redis down must not take the whole API down with it."""

    def __init__(self, url: str, prefix: str):
        import redis  # only deployments with several instances need it

        self._client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._script = self._client.register_script(_GCRA_SCRIPT)
        self._prefix = prefix
        self._warned = -math.inf

    def take(self, key: str, interval: float, capacity: float) -> float | None:
        import redis

        try:
            return float(self._script(keys=[self._prefix + key], args=[interval, capacity]))
        except redis.RedisError as exc:
            if time.monotonic() - self._warned > 10:
                self._warned = time.monotonic()
                log.warning("rate limits not enforced: Redis is unreachable: %s", exc)
            return None


class Admission:
    """The instance's rates, and the check each request of a limited client passes."""

    def __init__(self, config: dict):
        self._configured_directory = config["INSTANCE_STATE_DIR"]
        self._made: str | None = None
        self.clients = LocalClients(lambda: self.directory)
        url = config["RATELIMIT_STORAGE_URL"]
        self.shared_rates = RedisRates(url, config["RATELIMIT_KEY_PREFIX"]) if url else None
        # A held answer costs a greenlet under gevent, but a whole thread with threads.
        self._hold = config["RATELIMIT_HOLD_MS"] / 1000 if cooperative() else 0.0
        self._told: dict[str, float] = {}  # client -> when its last 429 told it to come back

    @cached_property
    def directory(self) -> Path:
        if self._configured_directory:
            return Path(self._configured_directory)
        # No gunicorn master made one: this process is the instance (tests, the CLI).
        self._made = tempfile.mkdtemp(prefix="dataservice-state-", dir=_tmpfs())
        atexit.register(self.close)
        return Path(self._made)

    def admit(self, client: str, limits: Limits) -> str:
        """Checks one request of `client`: returns its RateLimit header once it has used half
        of its burst ("" before that, or with no rate), or raises RateLimited. An admitted
        request with an in-flight limit must be given back with `leave(client)`."""
        interval = 1.0 / limits.rate if limits.rate else None
        capacity = limits.burst * interval if interval else 0.0
        if interval and self.shared_rates is not None:
            left = self.shared_rates.take(client, interval, capacity)
            if left is not None and left < 0:
                raise self._over_rate(client, limits, -left)
            refused = (
                limits.in_flight and self.clients.enter(client, None, 0.0, limits.in_flight)[0]
            )
        else:
            refused, left = self.clients.enter(client, interval, capacity, limits.in_flight)
            if refused == "rate":
                raise self._over_rate(client, limits, left)
        if refused == "in_flight":
            raise RateLimited(
                f"this client may have {limits.in_flight} requests in flight at once; wait for "
                "one to finish",
                _refusal_headers(limits, '"in-flight";r=0;t=1', 1),
                "in_flight",
            )
        if not interval or left is None:  # no rate, or its store unreachable (RedisRates)
            return ""
        remaining = int((capacity - left) / interval + 1e-9)
        if 2 * remaining >= limits.burst:
            return ""  # far from the limit: headers cost ~15k instructions each (1% of a GET)
        return f'"rate";r={remaining};t={math.ceil(left)}'

    def leave(self, client: str) -> None:
        self.clients.leave(client)

    def _over_rate(self, client: str, limits: Limits, seconds: float) -> RateLimited:
        """The 429 of a request over its client's rate. A client that comes back before the
        Retry-After of its last 429 (in this worker) has its answer held for up to
        RATELIMIT_HOLD_MS first: cheap as refusals are, a closed loop that ignores Retry-After
        would otherwise spend the cores on them (docs/benchmarks.md, seventh round: another
        client's GETs kept 17% of their rate without the hold, 76% with it). A client that waits
        as told is refused at once."""
        wait = math.ceil(seconds)
        if self._hold:
            now = time.monotonic()
            told, self._told[client] = self._told.get(client, 0.0), now + wait
            if told > now:
                time.sleep(min(told - now, self._hold))  # patched: other requests run meanwhile
        return RateLimited(
            f"this client may send {limits.rate:g} requests per second (bursts of "
            f"{limits.burst}); retry in {wait} s",
            _refusal_headers(limits, f'"rate";r=0;t={wait}', wait),
            "rate",
        )

    def close(self) -> None:
        if self._made:
            shutil.rmtree(self._made, ignore_errors=True)


def _refusal_headers(limits: Limits, status: str, wait: int) -> dict[str, str]:
    return {"Retry-After": str(wait), "RateLimit-Policy": limits.policy, "RateLimit": status}


def _tmpfs() -> str | None:
    # mkdtemp makes a private (0700) directory with a random name: safe in a shared tmpfs.
    shm = "/dev/shm"  # noqa: S108
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
