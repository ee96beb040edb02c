"""Who is calling: bearer tokens of API clients, and the scopes each endpoint requires.

Every endpoint under /api/v1 declares its scopes with `@requires(...)`; one that declares none
is refused to everybody (fail closed). The scopes the endpoints declare are the service's scopes
(`scopes(app)`): the CLI, the development client and the tests take them from there, and the
database keeps the same list in api_scopes (filled by each resource's migration; a test holds
the two equal). A token is 256 random bits; the database keeps only its
SHA-256. Each worker process caches a token's client for AUTH_CACHE_SECONDS, so a revoked
token stops working within that bound without a database round trip on every request.
"""

import hashlib
import hmac
import re
import secrets
import threading
from time import monotonic

from flask import Flask, g
from flask_smorest import Blueprint as SmorestBlueprint

from . import db, tracing
from .admission import UNLIMITED, Limits
from .errors import ServiceError
from .store import clients as store

_SCOPE = re.compile(r"[a-z_]+:[a-z_]+")  # <resource>:<access>, as api_scopes checks it
TOKEN_PREFIX = "dsk_"  # noqa: S105 (a marker for secret scanners, not a secret)
_TOKEN = re.compile(TOKEN_PREFIX + r"[A-Za-z0-9_-]{43}")
SECURITY_SCHEME = "bearerAuth"


class Unauthenticated(ServiceError):
    status, slug, title = 401, "unauthenticated", "Unauthorized"

    def __init__(self, detail: str, error: str = "invalid_token"):
        super().__init__(
            detail, headers={"WWW-Authenticate": f'Bearer realm="dataservice", error="{error}"'}
        )


class Forbidden(ServiceError):
    status, slug, title = 403, "insufficient-scope", "Forbidden"

    def __init__(self, missing: list[str]):
        super().__init__(
            f"this client's token lacks the scope {', '.join(missing)}", missing_scopes=missing
        )


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def requires(*scopes: str):
    """Declares the scopes a view needs (none: any valid token). Place it right under
    @blp.route; it also marks the operation as secured in the OpenAPI document."""
    malformed = [scope for scope in scopes if not _SCOPE.fullmatch(scope)]
    if malformed:
        raise ValueError(f"scopes are <resource>:<access>, not {malformed}")

    def decorator(view):
        documented = SmorestBlueprint.doc(security=[{SECURITY_SCHEME: list(scopes)}])(view)
        documented.required_scopes = scopes
        return documented

    return decorator


class TokenCache:
    """token -> (client name, scopes, limits), for a bounded time, per worker process. Keyed by the
    token itself, which every request brings into this process's memory anyway. Not a speed
    trick: measured 2026-12-06, keying by its hash instead made no difference beyond the
    count's noise (GET by id 1,575,597 instructions hashed, 1,604,741 not); the raw key is
    simply the plain one."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._entries: dict[str, tuple[float, str, frozenset, Limits]] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> tuple[float, str, frozenset, Limits] | None:
        entry = self._entries.get(token)
        if entry is None or entry[0] < monotonic():
            return None
        return entry

    def put(self, token: str, name: str, scopes: frozenset, limits: Limits) -> tuple:
        with self._lock:
            if len(self._entries) > 10_000:  # bounded: drop everything rather than grow
                self._entries.clear()
            entry = self._entries[token] = (monotonic() + self.seconds, name, scopes, limits)
        return entry


def _client_for(token: str, cache: TokenCache) -> tuple[float, str, frozenset, Limits]:
    cached = cache.get(token)  # only a well-formed, valid token is ever put there
    if cached is not None:
        return cached
    if not _TOKEN.fullmatch(token):
        raise Unauthenticated("the bearer token is malformed")
    digest = token_hash(token)
    with (
        tracing.phase(tracing.AUTH, "authenticate"),  # a cache miss: the database is asked
        db.primary() as conn,  # not a replica: a new token must work at once
    ):
        client = store.get_active_by_token_hash(conn, digest)
    # The lookup was by hash already; compare again in constant time, as a second lock.
    if client is None or not hmac.compare_digest(bytes(client["token_hash"]), digest):
        raise Unauthenticated("the bearer token is unknown or revoked")
    scopes = frozenset(client["scopes"])
    return cache.put(token, client["name"], scopes, limits_of(client))


def limits_of(client: dict) -> Limits:
    """A client row's limits."""
    if client["rate_per_second"] is None and client["max_in_flight"] is None:
        return UNLIMITED
    return Limits(client["rate_per_second"], client["burst"], client["max_in_flight"])


def authenticate(environ: dict, cache: TokenCache, required_scopes) -> Limits:
    """Sets g.client_name and g.scopes from the request's WSGI environ and returns the client's
    limits, or raises 401/403."""
    header = environ.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise Unauthenticated("send Authorization: Bearer <token>", error="invalid_request")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "the Authorization header must be: Bearer <token>", error="invalid_request"
        )
    _, name, scopes, limits = _client_for(token.strip(), cache)
    context = g._get_current_object()  # not the proxy: see api/pipeline.py (-11% per GET)
    context.client_name, context.scopes = name, scopes
    missing = [scope for scope in required_scopes if scope not in scopes]
    if missing:
        raise Forbidden(missing)
    return limits


def scopes(app: Flask) -> list[str]:
    """Every scope the app's endpoints declare, sorted."""
    declared = (getattr(view, "required_scopes", ()) for view in app.view_functions.values())
    return sorted({scope for view_scopes in declared for scope in view_scopes})


def has_scope(scope: str) -> bool:
    return scope in g.get("scopes", ())


UNDECLARED = ("(an endpoint without declared scopes)",)  # what no token has: fail closed
