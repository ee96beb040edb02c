"""Passwords hashed before a request borrows a database connection.

A batch (and any write sent with an Idempotency-Key) runs in one transaction opened before its
operations run; hashing inside it would hold a connection for the whole wait. So the plain
passwords such a request will store are hashed first, in parallel through the hashing queue
(hashing.py), and the writes take them from here. One the request then does not use costs a
hash for nothing, never a wrong answer: a write that finds none ready hashes its own.
"""

import re

from flask import current_app, g, request

from ..auth import has_scope

_CREATE = re.compile(r"/api/v1/users/?")
_CHANGE = re.compile(r"/api/v1/users/[^/]+/password")
_BATCH = re.compile(r"/api/v1/batch/?")


def prehash() -> None:
    """Hashes the plain passwords of this request's creates and password changes (of a batch,
    all of them) that its client has the scope to write; at most once per request."""
    if "prehashed" in g:  # done already, or a batch's operation (its batch did it)
        return
    g.prehashed = {}
    body = request.get_json(silent=True)
    if _BATCH.fullmatch(request.path):
        operations = body.get("operations") if isinstance(body, dict) else None
    else:
        operations = [{"method": request.method, "path": request.path, "body": body}]
    passwords = [p for p in map(_plain_password, operations or ()) if p is not None]
    if passwords:
        hashes = current_app.extensions["hasher"].hash_many(passwords)
        for password, password_hash in zip(passwords, hashes, strict=True):
            g.prehashed.setdefault(password, []).append(password_hash)


def take(password: str) -> str | None:
    """A hash of `password` made by prehash(), each used once (salts differ), or None."""
    ready = g.get("prehashed", {}).get(password)
    return ready.pop() if ready else None


def _plain_password(operation) -> str | None:
    if not isinstance(operation, dict) or not isinstance(operation.get("path"), str):
        return None
    body = operation.get("body")
    if not isinstance(body, dict) or "hashed_password" in body:
        return None
    password = body.get("password")
    if not isinstance(password, str) or not 8 <= len(password) <= 1024:  # what the schema takes
        return None
    method, path = operation.get("method"), operation["path"]
    if method == "POST" and _CREATE.fullmatch(path):
        return password if has_scope("users:write") else None
    if method == "PUT" and _CHANGE.fullmatch(path):
        return password if has_scope("users:credentials") else None
    return None
