"""Idempotency-Key for writes: the first request's response is stored in the same transaction
as its effect, and a retry of the same request gets that response back without a second effect.

A retry that arrives while the first request is still running waits for it (PostgreSQL makes
the second claim of a key wait for the first transaction), then replays its response; past the
statement timeout it gets a 409 saying the key is in progress. Failed requests record nothing:
they changed nothing, so running them again is safe.
"""

import hashlib
import re
from functools import wraps

import psycopg
from flask import Response, current_app, g, request

from .. import db, tracing
from ..errors import BadRequest, IdempotencyKeyInProgress, IdempotencyKeyReused
from ..store import idempotency as store
from .prehash import prehash

HEADER = "Idempotency-Key"
_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # printable ASCII, no spaces
_REPLAYED_HEADERS = ("Content-Type", "Location", "ETag")


def _request_hash() -> bytes:
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.path.encode(), request.get_data(cache=True)):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.digest()


def _replay(record: dict) -> Response:
    response = Response(bytes(record["body"]), status=record["status"], headers=record["headers"])
    response.headers["Idempotent-Replayed"] = "true"
    return response


def idempotent(view):
    """Makes a write endpoint honour Idempotency-Key. Place it right under @blp.route."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return view(*args, **kwargs)
        if not _KEY.fullmatch(key):
            raise BadRequest(f"{HEADER} must be 1 to 255 printable ASCII characters")
        client = g.get("client_name") or ""
        ttl = current_app.config["IDEMPOTENCY_TTL_HOURS"] * 3600
        request_hash = _request_hash()
        prehash()  # its hashes before its transaction: waiting for them holds no connection
        with db.request_transaction() as conn:
            try:
                claimed = store.claim(
                    conn, client=client, key=key, request_hash=request_hash, ttl_seconds=ttl
                )
            except psycopg.errors.QueryCanceled:  # waited a statement timeout for the first one
                raise IdempotencyKeyInProgress() from None
            if not claimed:
                with tracing.phase(None, "idempotent replay"):
                    record = store.get(conn, client=client, key=key)
                    if bytes(record["request_hash"]) != request_hash:
                        raise IdempotencyKeyReused()
                    return _replay(record)
            response = current_app.make_response(view(*args, **kwargs))
            if not 200 <= response.status_code < 300:
                raise _Failed(response)  # roll back: a failed request records nothing
            headers = {h: response.headers[h] for h in _REPLAYED_HEADERS if h in response.headers}
            store.record(
                conn,
                client=client,
                key=key,
                status=response.status_code,
                headers=headers,
                body=response.get_data(),
            )
        return response

    return wrapper


class _Failed(Exception):
    def __init__(self, response: Response):
        self.response = response


def init_app(app) -> None:
    app.register_error_handler(_Failed, lambda failed: failed.response)
