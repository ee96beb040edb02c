"""Admission: how much of this instance one client may take, decided before its request runs.

Each API client may have limits (api_clients.rate_per_second, burst, max_in_flight; NULL means
unlimited): a request rate with a burst, enforced as a GCRA token bucket (the "generic cell rate
algorithm": one timestamp per client, the theoretical arrival time of its next request), and a
number of requests in flight at once. Password hashing, the one expensive thing a request can
ask for, has its own bound for the whole instance (passwords.py).

The state is instance-wide, shared by every gunicorn worker, without a network round trip:
- rates live in one small memory-mapped file per client in the instance's directory (tmpfs),
  read and written under flock();
- permits (in flight, hashing) are byte-range locks on one file (Linux open-file-description
  locks): a worker that dies holding one gives it back with its file descriptors, so a crash
  never leaks a permit.
With several instances, RATELIMIT_STORAGE_URL=redis://... keeps the rates in Redis instead (one
script call per request); in-flight and hashing bounds stay per instance, as they protect the
instance's own workers and cores.
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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from hashlib import sha256
from pathlib import Path

from .errors import RateLimited

log = logging.getLogger(__name__)

_TAT = struct.Struct("d")  # a rate file: the client's theoretical arrival time (monotonic s)
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


class Permits:
    """`size` permits shared by every process of the instance: permit i is a write lock on
    byte i of one file. Open-file-description locks belong to this process's descriptor, so
    the `held` set keeps two threads (or greenlets) of one process from taking the same byte."""

    def __init__(self, path: Callable[[], Path], size: int):
        self.size = size
        self._path = path  # opened on first use, in the process that serves requests
        self._fd: int | None = None
        self._held: set[int] = set()
        self._mutex = threading.Lock()
        self._next = 0

    def try_acquire(self) -> int | None:
        with self._mutex:
            if self._fd is None:
                self._fd = os.open(self._path(), os.O_RDWR | os.O_CREAT, 0o600)
            for step in range(self.size):
                index = (self._next + step) % self.size
                if index not in self._held and _lock_byte(self._fd, index, fcntl.F_WRLCK):
                    self._held.add(index)
                    self._next = index + 1  # spread the processes over the bytes
                    return index
        return None

    def acquire(self, wait: float) -> int | None:
        """A permit, waiting at most `wait` seconds (in short sleeps: gevent-friendly)."""
        deadline = time.monotonic() + wait
        while (index := self.try_acquire()) is None:
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.002)
        return index

    def release(self, index: int) -> None:
        with self._mutex:
            _lock_byte(self._fd, index, fcntl.F_UNLCK)
            self._held.discard(index)


def _lock_byte(fd: int, index: int, kind: int) -> bool:
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _LOCK.pack(kind, os.SEEK_SET, index, 1, 0))
    except BlockingIOError:
        return False
    return True


class LocalRates:
    """GCRA state in memory-mapped files, one per client, under flock()."""

    def __init__(self, directory: Callable[[], Path]):
        self._directory = directory
        self._files: dict[str, tuple[int, mmap.mmap]] = {}
        self._mutex = threading.Lock()

    def take(self, key: str, interval: float, capacity: float) -> float:
        """Takes one request: the seconds until the bucket is full again (>= 0), or, when
        refused, minus the seconds until one more request would be allowed."""
        with self._mutex:
            fd, view = self._files.get(key) or self._open(key)
            fcntl.flock(fd, fcntl.LOCK_EX)  # other workers hold it for a few microseconds
            try:
                now = time.monotonic()  # one clock for the machine (CLOCK_MONOTONIC)
                due = max(_TAT.unpack_from(view)[0], now) + interval
                if due - now > capacity:
                    return capacity - (due - now)
                _TAT.pack_into(view, 0, due)
                return due - now
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _open(self, key: str) -> tuple[int, mmap.mmap]:
        name = sha256(key.encode()).hexdigest()[:32]
        fd = os.open(self._directory() / f"rate-{name}", os.O_RDWR | os.O_CREAT, 0o600)
        os.ftruncate(fd, _TAT.size)  # zeros (a time long past) when new; a no-op otherwise
        entry = self._files[key] = (fd, mmap.mmap(fd, _TAT.size))
        return entry


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
    """The instance's rates and permits, and the check each request of a limited client passes."""

    def __init__(self, config: dict):
        self._configured_directory = config["INSTANCE_STATE_DIR"]
        self._made: str | None = None
        url = config["RATELIMIT_STORAGE_URL"]
        self.rates = (
            RedisRates(url, config["RATELIMIT_KEY_PREFIX"])
            if url
            else LocalRates(lambda: self.directory)
        )
        size = config["PASSWORD_HASH_CONCURRENCY"]
        self.hashing = Permits(lambda: self.directory / "hashing", size)
        self._in_flight: dict[tuple[str, int], Permits] = {}

    @cached_property
    def directory(self) -> Path:
        if self._configured_directory:
            return Path(self._configured_directory)
        # No gunicorn master made one: this process is the instance (tests, the CLI).
        self._made = tempfile.mkdtemp(prefix="dataservice-state-", dir=_tmpfs())
        atexit.register(self.close)
        return Path(self._made)

    def admit(self, client: str, limits: Limits) -> tuple[Permits | None, int, str]:
        """Checks one request of `client`: returns the in-flight permit it holds (to give back
        with `release`) and its RateLimit header, or raises RateLimited."""
        status = ""
        if limits.rate:
            interval = 1.0 / limits.rate
            left = self.rates.take(client, interval, limits.burst * interval)
            if left is not None and left < 0:  # None: the store is unreachable (RedisRates)
                wait = math.ceil(-left)
                raise RateLimited(
                    f"this client may send {limits.rate:g} requests per second (bursts of "
                    f"{limits.burst}); retry in {wait} s",
                    _refusal_headers(limits, f'"rate";r=0;t={wait}', wait),
                    "rate",
                )
            if left is not None:
                remaining = int((limits.burst * interval - left) / interval + 1e-9)
                status = f'"rate";r={remaining};t={math.ceil(left)}'
        if not limits.in_flight:
            return None, 0, status
        permits = self._in_flight.get((client, limits.in_flight))
        if permits is None:
            permits = self._permits_for(client, limits.in_flight)
        index = permits.try_acquire()
        if index is None:
            raise RateLimited(
                f"this client may have {limits.in_flight} requests in flight at once; wait for "
                "one to finish",
                _refusal_headers(limits, '"in-flight";r=0;t=1', 1),
                "in_flight",
            )
        return permits, index, status

    def _permits_for(self, client: str, size: int) -> Permits:
        name = sha256(client.encode()).hexdigest()[:32]
        path = self.directory / f"in-flight-{name}"
        permits = self._in_flight[(client, size)] = Permits(lambda: path, size)
        return permits

    def close(self) -> None:
        if self._made:
            shutil.rmtree(self._made, ignore_errors=True)


def _refusal_headers(limits: Limits, status: str, wait: int) -> dict[str, str]:
    return {"Retry-After": str(wait), "RateLimit-Policy": limits.policy, "RateLimit": status}


def _tmpfs() -> str | None:
    # mkdtemp makes a private (0700) directory with a random name: safe in a shared tmpfs.
    shm = "/dev/shm"  # noqa: S108
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
