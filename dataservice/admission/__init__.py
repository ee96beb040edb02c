"""Admission: how much of this instance one client may take, decided before its request runs.

Each API client may have limits (limits.py): a request rate with a burst, enforced as a GCRA
token bucket (the "generic cell rate algorithm": one timestamp per client, the theoretical
arrival time of its next request), and a number of requests in flight at once. Password
hashing, the one expensive thing a request can ask for, has its own fair queue in each worker
(hashing.py).

Where the state lives: instance-wide, in a memory-mapped file (local.py); with several
instances, RATELIMIT_STORAGE_URL=redis://... keeps the rates in Redis instead (shared_rates.py);
in-flight bounds stay per instance, as they protect the instance's own workers. This module
decides: admitted or refused, the RateLimit headers, and how long a refusal is held.
"""

import atexit
import math
import os
import shutil
import tempfile
import time
from functools import cached_property
from pathlib import Path

from ..errors import RateLimited
from ..workers import cooperative
from .limits import DEFAULT_LIMITS, UNLIMITED, Limits
from .local import LocalClients
from .shared_rates import RedisRates

__all__ = ["DEFAULT_LIMITS", "UNLIMITED", "Admission", "Limits", "LocalClients", "RedisRates"]


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
            return ""  # far from the limit: no headers (measured 2026-12-06: 4.4% of a GET)
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
