"""Prometheus metrics, correct across gunicorn's worker processes, served at /metrics.

Under gunicorn, PROMETHEUS_MULTIPROC_DIR is set (serving/lifecycle.py makes a fresh directory when
it is not) before prometheus_client is imported: every worker then writes its samples to files
there, and whichever worker answers a scrape adds up all of them. Without it (tests, `flask run`)
the metrics live in this process.

Labels are bounded: the route is the URL rule's template (`/api/v1/users/<bigint:user_id>`), not
the path, and a request that matched no rule is counted under the route "unmatched".
"""

import os
from glob import glob

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUESTS = Counter(
    "dataservice_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "dataservice_http_request_duration_seconds",
    "Time from the first request hook to the response, by method and route template.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CATALOG_QUERIES = Counter(
    "dataservice_catalog_queries",
    "Requests answered by the catalog's endpoint queries (docs/queries.md), by query name and "
    "status.",
    ["query", "status"],
)
DB_ERRORS = Counter(
    "dataservice_db_errors",
    "Database failures that became a 503, by kind (pool_timeout, statement_timeout, ...).",
    ["kind"],
)
REFUSED = Counter(
    "dataservice_refused_requests",
    "Requests refused before they ran, by route template, client and reason: rate and "
    "in_flight (429, the client over its limits), hashing and queue (503 busy, the instance "
    "at capacity: shed rather than queued).",
    ["route", "client", "reason"],
)
# livesum: the total over the workers alive now, which is what the database sees.
POOL_SIZE = Gauge(
    "dataservice_db_pool_connections",
    "Connections the pools hold open (idle or in use).",
    multiprocess_mode="livesum",
)
POOL_IDLE = Gauge(
    "dataservice_db_pool_idle_connections",
    "Connections idle in the pools, ready for a request.",
    multiprocess_mode="livesum",
)
POOL_WAITING = Gauge(
    "dataservice_db_pool_waiting_requests",
    "Requests waiting for a connection.",
    multiprocess_mode="livesum",
)
POOL_MAX = Gauge(
    "dataservice_db_pool_max_connections",
    "Most connections the pools may open (DATABASE_POOL_MAX_SIZE times workers).",
    multiprocess_mode="livesum",
)

_last_pool_stats: tuple | None = None


def _label_method(method: str) -> str:
    return method if method in _METHODS else "OTHER"


def record_requests(samples) -> None:
    """Counts a batch of answered requests, (method, route, status, seconds) each. A batch
    touches each request counter once (in multiprocess mode every update takes a lock and writes
    a memory-mapped file) and looks up each latency histogram once (.labels() takes a lock and
    builds a key; with logs.request_line's record, -2.1% instructions per GET by id); each
    latency is observed as it is."""
    counts: dict[tuple[str, str, int], int] = {}
    latencies: dict[tuple[str, str], list[float]] = {}
    for method, route, status, seconds in samples:
        key = (method, route or UNMATCHED, status)
        counts[key] = counts.get(key, 0) + 1
        latencies.setdefault(key[:2], []).append(seconds)
    for (method, route), times in latencies.items():
        histogram = LATENCY.labels(_label_method(method), route)
        for seconds in times:
            histogram.observe(seconds)
    for key, count in counts.items():
        REQUESTS.labels(_label_method(key[0]), key[1], str(key[2])).inc(count)


def record_catalog_queries(samples) -> None:
    """Counts a batch of catalog requests, (query name, status) each."""
    counts: dict[tuple[str, str], int] = {}
    for query, status in samples:
        key = (query, str(status))
        counts[key] = counts.get(key, 0) + 1
    for key, count in counts.items():
        CATALOG_QUERIES.labels(*key).inc(count)


def record_refused(route: str | None, client: str | None, reason: str) -> None:
    """Counts a refusal at once: a flood of them is what it is there to show."""
    REFUSED.labels(route or UNMATCHED, client or "", reason).inc()


def record_database_error(kind: str) -> None:
    DB_ERRORS.labels(kind).inc()


def record_pool(database) -> None:
    """Samples this worker's pool; writes the gauges only when a value changed, which under a
    steady load is rarely."""
    global _last_pool_stats
    stats = database.stats()
    sample = (
        stats["pool_size"],
        stats["pool_available"],
        stats["requests_waiting"],
        stats["pool_max"],
    )
    if sample != _last_pool_stats:
        _last_pool_stats = sample
        POOL_SIZE.set(sample[0])
        POOL_IDLE.set(sample[1])
        POOL_WAITING.set(sample[2])
        POOL_MAX.set(sample[3])


_pool_sampled_at = float("-inf")


def sample_pool(database, now: float) -> None:
    """record_pool at most once a second (`now` from perf_counter): Prometheus reads the gauges
    every few seconds, and a scrape records the answering worker's pool itself."""
    global _pool_sampled_at
    if now - _pool_sampled_at >= 1.0:
        _pool_sampled_at = now
        record_pool(database)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class _SamplesFiles(MultiProcessCollector):
    """prometheus_client's collector over the workers' samples files, less any file a worker
    is creating at that moment: it is empty until the worker sizes it, and reading an empty one
    raises (struct.error), which made the scrape a 500. A file only grows, so one seen with a
    size is whole enough to read."""

    def collect(self):
        files = glob(os.path.join(multiprocess_dir(), "*.db"))
        return self.merge([f for f in files if os.path.getsize(f)], accumulate=True)


def _registry():
    if multiprocess_dir() is None:
        return REGISTRY
    registry = CollectorRegistry()
    _SamplesFiles(registry)
    return registry


def exposition() -> tuple[bytes, str]:
    """Every metric in Prometheus's text format, with its content type: the sum over gunicorn's
    workers in multiprocess mode."""
    return generate_latest(_registry()), CONTENT_TYPE_LATEST
