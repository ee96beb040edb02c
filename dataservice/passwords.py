"""Password hashing: argon2id for the passwords we hash; argon2id or bcrypt PHC strings accepted
from calling services that hash on their side. Nothing here ever logs a password or a hash."""

import re
import time

import bcrypt
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import RFC_9106_LOW_MEMORY
from flask import g, has_app_context, has_request_context, request

from .hashing import HashQueue
from .workers import cooperative

# $2a$/$2b$/$2y$, a two-digit cost, then 22 characters of salt and 31 of hash in bcrypt's base64.
_BCRYPT = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
# $argon2id$v=19$m=..,t=..,p=..$salt$hash, salt and hash in unpadded standard base64.
_ARGON2ID = re.compile(
    r"\$argon2id\$v=19\$m=[0-9]{1,7},t=[0-9]{1,4},p=[0-9]{1,3}\$[A-Za-z0-9+/]{11,64}\$[A-Za-z0-9+/]{16,128}"
)


def is_accepted_hash(value: str) -> bool:
    """True for a PHC-format argon2id hash or a bcrypt hash; anything else is refused."""
    return bool(_ARGON2ID.fullmatch(value) or _BCRYPT.fullmatch(value))


# The same rule as one pattern, for the request schemas and so the OpenAPI document.
ACCEPTED_HASH_PATTERN = f"^(?:{_ARGON2ID.pattern}|{_BCRYPT.pattern})$"


class Hasher:
    """argon2id with the configured cost (docs/security.md explains the defaults), run through
    the process's fair HashQueue in the turn of the request's API client."""

    def __init__(self, config: dict):
        self._hasher = PasswordHasher(
            time_cost=config["ARGON2_TIME_COST"],
            memory_cost=config["ARGON2_MEMORY_COST_KIB"],
            parallelism=config["ARGON2_PARALLELISM"],
            hash_len=RFC_9106_LOW_MEMORY.hash_len,
            salt_len=RFC_9106_LOW_MEMORY.salt_len,
            type=Type.ID,
        )
        # Verified against when a login names no user, so that answer takes as long as a
        # wrong password does; timed, the queue's first estimate of one hash.
        started = time.perf_counter()
        self._dummy_hash = self._hasher.hash("no such user: a password nobody has")
        self.queue = HashQueue(
            config["PASSWORD_HASH_CONCURRENCY"],
            config["PASSWORD_HASH_WAIT_MS"] / 1000,
            config["PASSWORD_HASH_NICE"],
            time.perf_counter() - started,
            # A held answer costs a greenlet under gevent, but a whole thread with threads.
            config["RATELIMIT_HOLD_MS"] / 1000 if cooperative() else 0.0,
        )

    def _run(self, function, *args):
        return self.queue.run(_client(), function, *args, connection=_connection())

    def hash(self, password: str) -> str:
        return self._run(self._hasher.hash, password)

    def hash_many(self, passwords: list[str]) -> list[str]:
        """Hashes in parallel, in the client's turns (a batch): all of them, or Busy."""
        calls = [(self._hasher.hash, (password,)) for password in passwords]
        return self.queue.run_many(_client(), calls, _connection())

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True when `password` matches; None as the hash still costs one verification."""
        if password_hash is None:
            self._verify_argon2(self._dummy_hash, password)
            return False
        if _BCRYPT.fullmatch(password_hash):
            # bcrypt reads at most 72 bytes; the system that made the hash did the same.
            return self._run(bcrypt.checkpw, password.encode()[:72], password_hash.encode())
        return self._verify_argon2(password_hash, password)

    def login(self, password_hash: str | None, password: str) -> tuple[bool, str | None]:
        """verify(), and when the password matches a hash made otherwise (bcrypt, other
        argon2id parameters), its hash with the current parameters to store instead. One turn
        of the queue for both: a login that is rehashed does not wait its turn twice."""
        if password_hash is None:
            return self.verify(None, password), None
        return self._run(self._login, password_hash, password)

    def _login(self, password_hash: str, password: str) -> tuple[bool, str | None]:
        if _BCRYPT.fullmatch(password_hash):
            matches = bcrypt.checkpw(password.encode()[:72], password_hash.encode())
        else:
            matches = self._argon2_matches(password_hash, password)
        if matches and self.needs_rehash(password_hash):
            return True, self._hasher.hash(password)
        return matches, None

    def _verify_argon2(self, password_hash: str, password: str) -> bool:
        # The mismatch is caught inside the task, not around it: gevent's thread pool reports
        # every exception a task raises as an error (a traceback on stderr), and a wrong
        # password is an answer.
        return self._run(self._argon2_matches, password_hash, password)

    def _argon2_matches(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:  # bcrypt: always move it to argon2id on the next good login
            return True


def _client() -> str:
    """Whose turn a hash takes: the request's API client ("" outside a request: the CLI)."""
    return (g.get("client_name") or "") if has_app_context() else ""


def _connection() -> str:
    """The request's connection, address and port ("" outside a request): a 503 of the
    connection that ignored its last one's Retry-After is held (HashQueue._held)."""
    if not has_request_context():
        return ""
    port = request.environ.get("REMOTE_PORT")  # none on a unix socket: never held there
    return f"{request.environ.get('REMOTE_ADDR')}:{port}" if port else ""
