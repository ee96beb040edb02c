"""Every setting the service reads, in one table, taken from the environment and checked at start.

The README's configuration table lists the same names; a test keeps the two in step.
"""

import multiprocessing
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it and says what is expected."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _optional_positive_int(text: str) -> int | None:
    return _positive_int(text) if text else None


def _hash_concurrency(text: str) -> int:
    # Unset: the cores this process may run on shared among gunicorn's workers (WEB_WORKERS,
    # one per CPU by default: gunicorn.conf.py), so that the whole instance hashes in as many
    # threads as cores. An idle instance hashes on all of them (the workers take the requests
    # in turn); more threads than cores made every hash beside a flood slower, and a single
    # login waited past issue 25's bound (docs/benchmarks.md, ninth round).
    if text:
        return _positive_int(text)
    workers = int(os.environ.get("WEB_WORKERS") or multiprocessing.cpu_count())
    return max(1, len(os.sched_getaffinity(0)) // max(1, workers))


def _nice(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 19:
        raise ValueError("must be 0 (no change) to 19 (lowest priority)")
    return value


def _redis_url(text: str) -> str:
    if text and not text.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must be empty (this instance's memory) or a redis:// URL")
    return text


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("must be greater than 0")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise ValueError("must be 0 or more")
    return value


def _boolean(text: str) -> bool:
    if text.lower() in {"1", "true", "yes", "on"}:
        return True
    if text.lower() in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


def _log_level(text: str) -> str:
    level = text.upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    return level


def _database_url(text: str) -> str:
    if not text:
        raise ValueError("is required, for example postgresql://user:password@host:5432/dbname")
    scheme = text.split("://", 1)[0] if "://" in text else ""
    if scheme and scheme not in {"postgresql", "postgres", "postgresql+psycopg"}:
        raise ValueError("must be a postgresql:// URL or a libpq key=value string")
    return text


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | None
    parse: Callable[[str], Any]
    help: str
    secret: bool = False  # never echo the value in an error (it may hold a password)


SETTINGS = (
    Setting(
        "DATABASE_URL",
        None,
        _database_url,
        "PostgreSQL URL (postgresql:// or postgresql+psycopg://) the service connects with.",
        secret=True,
    ),
    Setting(
        "DATABASE_POOL_MIN_SIZE", "4", _positive_int, "Connections each worker process keeps open."
    ),
    Setting(
        "DATABASE_POOL_MAX_SIZE", "4", _positive_int, "Most connections one worker process opens."
    ),
    Setting(
        "DATABASE_POOL_TIMEOUT",
        "5",
        _positive_float,
        "Seconds a request waits for a free connection before it gets a 503.",
    ),
    Setting(
        "DATABASE_STATEMENT_TIMEOUT_MS",
        "5000",
        _non_negative_int,
        "Longest a single SQL statement may run (0 disables); past it the request gets a 503.",
    ),
    Setting(
        "DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS",
        "10000",
        _non_negative_int,
        "Longest a transaction may sit idle before PostgreSQL ends it (0 disables).",
    ),
    Setting(
        "MAX_BODY_BYTES",
        "1048576",
        _positive_int,
        "Largest request body accepted; larger ones get a 413.",
    ),
    Setting("LOG_LEVEL", "INFO", _log_level, "DEBUG, INFO, WARNING, ERROR or CRITICAL."),
    Setting(
        "LOG_FLUSH_SECONDS",
        "0.2",
        _non_negative_float,
        "Request lines and request metrics are written in batches at most this long after "
        "the request (a killed worker loses at most this much; 0: each request at once).",
    ),
    Setting("ARGON2_TIME_COST", "2", _positive_int, "argon2id iterations for new password hashes."),
    Setting(
        "ARGON2_MEMORY_COST_KIB",
        "19456",
        _positive_int,
        "argon2id memory in KiB for new password hashes (19 MiB: OWASP's recommendation).",
    ),
    Setting("ARGON2_PARALLELISM", "1", _positive_int, "argon2id lanes for new password hashes."),
    Setting(
        "PASSWORD_HASH_CONCURRENCY",
        "",
        _hash_concurrency,
        "Threads hashing passwords (verify, create, change) in each worker process, served "
        "fairly by client; unset: the cores over WEB_WORKERS.",
    ),
    Setting(
        "PASSWORD_HASH_WAIT_MS",
        "1000",
        _non_negative_int,
        "Budget of a hash's expected wait in its worker's queue (hashes ahead of it times the "
        "measured time of one, over the threads); past it, a 503 busy at once.",
    ),
    Setting(
        "PASSWORD_HASH_NICE",
        "6",
        _nice,
        "Nice value of the threads that hash passwords: under load the rest of the API goes "
        "first (0: same priority as requests).",
    ),
    Setting(
        "DATABASE_QUEUE_BUDGET_MS",
        "500",
        _positive_int,
        "Longest a request waits for a database connection when all are busy; then it gets a "
        "503 busy at once (shed) instead of queueing for DATABASE_POOL_TIMEOUT.",
    ),
    Setting(
        "RATELIMIT_HOLD_MS",
        "250",
        _non_negative_int,
        "How long the 429 of a client that retries before its Retry-After is held (and the "
        "hashing 503 busy of a connection that does; gevent workers only), so that a client "
        "ignoring Retry-After cannot spend the cores on its refusals; 0: never held.",
    ),
    Setting(
        "RATELIMIT_STORAGE_URL",
        "",
        _redis_url,
        "Where client request rates are counted: empty for this instance's shared memory, or a "
        "redis:// URL that several instances share.",
        secret=True,
    ),
    Setting(
        "RATELIMIT_KEY_PREFIX",
        "dataservice:rate:",
        str,
        "Prefix of the rate keys in Redis (one per deployment sharing a server).",
    ),
    Setting(
        "INSTANCE_STATE_DIR",
        "",
        str,
        "Directory (tmpfs) where the workers of one instance share rates and permits; "
        "gunicorn makes a fresh one when unset (serving/lifecycle.py).",
    ),
    Setting(
        "DATABASE_REPLICA_URL",
        "",
        str,
        "Optional streaming replica for GET reads (read-your-writes via X-Min-Data-Version).",
        secret=True,
    ),
    Setting(
        "DATABASE_REPLICA_MAX_LAG_SECONDS",
        "5",
        _positive_float,
        "A replica further behind than this serves no reads until it catches up.",
    ),
    Setting(
        "DATABASE_PGBOUNCER",
        "false",
        _boolean,
        "true when DATABASE_URL points at PgBouncer in transaction mode: no server-side "
        "prepared statements and no startup options (set the timeouts on the role); "
        "`dataservice migrate` sets its own in each migration's transaction.",
    ),
    Setting(
        "AUTH_CACHE_SECONDS",
        "2",
        _non_negative_float,
        "How long a worker trusts a token it has checked: a revoked token stops working "
        "within this many seconds (0: check the database on every request).",
    ),
    Setting(
        "SERVER_TIMING",
        "true",
        _boolean,
        "true: every response carries Server-Timing (admission, auth, db-wait, db, hash-wait, "
        "hash, total in milliseconds); false: none.",
    ),
    Setting(
        "METRICS_REQUIRE_TOKEN",
        "false",
        _boolean,
        "true: /metrics needs a valid bearer token (any scope).",
    ),
    Setting(
        "IDEMPOTENCY_TTL_HOURS",
        "24",
        _positive_float,
        "How long a write's Idempotency-Key record is replayed; `dataservice prune` drops it.",
    ),
    Setting(
        "EVENT_RETENTION_DAYS",
        "7",
        _positive_float,
        "How long change-feed events are kept; `dataservice prune` drops older ones.",
    ),
    Setting(
        "EVENTS_MAX_WAITERS",
        "",
        _optional_positive_int,
        "Long-polling feed readers one worker process holds at once; more get an answer at "
        "once. Unset: 64 under gevent (a waiting reader costs a greenlet), 2 under threads (so "
        "waiting readers never take every worker thread).",
    ),
    Setting(
        "DATABASE_LISTEN_URL",
        "",
        str,
        "Direct (not transaction-pooled) PostgreSQL URL for LISTEN; default DATABASE_URL. With "
        "DATABASE_PGBOUNCER=true, `dataservice migrate` also runs a migration that cannot run in "
        "a transaction over it (unless MIGRATION_DATABASE_URL is set).",
        secret=True,
    ),
    Setting(
        "CATALOG_SQL_DIRS",
        "",
        str,
        "More directories of .sql files whose endpoint queries the catalog serves, besides sql/ "
        "(separated by `:`; docs/queries.md).",
    ),
    Setting(
        "MIGRATION_LOCK_TIMEOUT_MS",
        "5000",
        _non_negative_int,
        "Longest `dataservice migrate` waits for a lock before it gives up (0: no limit), so "
        "that a migration stuck behind a long transaction does not queue every request behind it.",
    ),
    Setting(
        "MIGRATION_STATEMENT_TIMEOUT_MS",
        "60000",
        _non_negative_int,
        "Longest one statement of `dataservice migrate` may run (0: no limit); raise it for a "
        "long CREATE INDEX CONCURRENTLY on a big table.",
    ),
)
"""Settings the application reads. gunicorn.conf.py reads HOST, PORT, WEB_WORKERS, WEB_THREADS,
WEB_TIMEOUT and WEB_GRACEFUL_TIMEOUT itself, before any application code runs."""


def load(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Read every setting from `environ` (the process environment by default), then apply
    `overrides` (already typed values, as tests pass them). Raises ConfigError naming every
    bad setting at once."""
    environ = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    values: dict[str, Any] = {}
    problems = []
    for setting in SETTINGS:
        if setting.name in overrides:
            values[setting.name] = overrides.pop(setting.name)
            continue
        raw = environ.get(setting.name, setting.default)
        try:
            values[setting.name] = setting.parse(raw if raw is not None else "")
        except ValueError as exc:
            shown = setting.name if setting.secret else f"{setting.name}={raw!r}"
            problems.append(f"{shown}: {exc}")
    if not problems and values["DATABASE_POOL_MIN_SIZE"] > values["DATABASE_POOL_MAX_SIZE"]:
        problems.append("DATABASE_POOL_MIN_SIZE must not exceed DATABASE_POOL_MAX_SIZE")
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    values.update(overrides)  # extra keys (TESTING, ...) go straight to Flask's config
    return values
