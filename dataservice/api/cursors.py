"""Opaque page cursors: base64url of a small JSON document plus a checksum.

A cursor carries the keyset position of the last row of a page and a fingerprint of the sort and
filters it was made for. Any change to its bytes, or its use with another sort or other filters,
is a 400. The checksum is for integrity, not secrecy: a cursor reveals only the position.
"""

import base64
import hashlib
import json

from ..errors import InvalidCursor

_VERSION = 1
_CHECKSUM_BYTES = 12


def _checksum(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, digest_size=_CHECKSUM_BYTES, person=b"ds-cursor").digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def fingerprint(query: dict) -> str:
    """Identifies the sort and filters a cursor belongs to (not the limit, which may change)."""
    canonical = json.dumps(query, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.blake2b(canonical.encode(), digest_size=8).hexdigest()


def encode(position: list, query_fingerprint: str) -> str:
    payload = json.dumps(
        {"v": _VERSION, "q": query_fingerprint, "k": position}, separators=(",", ":")
    ).encode()
    return _b64(payload + _checksum(payload))


def decode(cursor: str, query_fingerprint: str) -> list:
    """The position stored in `cursor`; InvalidCursor when it was altered or made for another
    query."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except ValueError:
        raise InvalidCursor() from None
    # The decoder skips stray characters and ignores unused trailing bits: only the one
    # canonical spelling of the bytes is accepted, so every altered cursor is refused.
    if _b64(raw) != cursor:
        raise InvalidCursor()
    payload, checksum = raw[:-_CHECKSUM_BYTES], raw[-_CHECKSUM_BYTES:]
    if len(raw) <= _CHECKSUM_BYTES or _checksum(payload) != checksum:
        raise InvalidCursor()
    document = json.loads(payload)
    if document.get("v") != _VERSION or not isinstance(document.get("k"), list):
        raise InvalidCursor()
    if document.get("q") != query_fingerprint:
        raise InvalidCursor("this cursor belongs to a different sort or different filters")
    return document["k"]
