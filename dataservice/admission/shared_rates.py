"""Rates shared by several instances: each client's GCRA timestamp in Redis
(RATELIMIT_STORAGE_URL), one script call per request."""

import logging
import math
import time

log = logging.getLogger(__name__)

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
