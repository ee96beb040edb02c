"""What one API client may take of an instance (api_clients.rate_per_second, burst,
max_in_flight; NULL is unlimited), as the admission check and the CLI use it."""

import math
from dataclasses import dataclass, field


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
