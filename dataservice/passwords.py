"""Password hashing: argon2id for the passwords we hash; argon2id or bcrypt PHC strings accepted
from calling services that hash on their side. Nothing here ever logs a password or a hash."""

import os
import re
import threading
from collections.abc import Callable

import bcrypt
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import RFC_9106_LOW_MEMORY

from . import tracing
from .errors import Busy
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


class HashingPool:
    """Where hashes run: at most `permits.size` at once on the whole instance (a permit is
    waited for at most `wait` seconds, then the request is refused with a 503 at once), in
    native threads of their own whose nice value is raised by `nice`. A hash then still takes
    every idle cycle, but when other requests want the cores the scheduler gives hashing a
    small share (nice 10 weighs about a tenth of nice 0), so a flood of logins cannot starve
    the rest of the API. Under gevent (gunicorn's worker) the threads are gevent's native
    ones: argon2-cffi and bcrypt release the GIL, so the worker's other requests go on."""

    def __init__(self, permits, wait: float, nice: int):
        self._permits, self._wait, self._nice = permits, wait, nice
        self._threads = None  # made on first use, in the worker process (after the fork)
        self._mutex = threading.Lock()

    def run(self, function: Callable, *args):
        with tracing.phase(tracing.HASH_WAIT, "password hash wait"):
            index = self._permits.acquire(self._wait)
        if index is None:
            raise Busy(
                f"{self._permits.size} password hash(es) are running on this instance, its "
                "bound (PASSWORD_HASH_CONCURRENCY); retry shortly",
                "hashing",
            )
        try:
            with tracing.phase(tracing.HASH, "password hash"):
                return self._submit(self._lowered, function, args)
        finally:
            self._permits.release(index)

    def _lowered(self, function: Callable, args):
        if not getattr(_thread_state, "lowered", False):
            os.setpriority(os.PRIO_PROCESS, 0, self._nice)  # 0: this thread, on Linux
            _thread_state.lowered = True
        return function(*args)

    def _submit(self, task: Callable, function: Callable, args):
        with self._mutex:
            if self._threads is None:
                self._threads = _native_threads(self._permits.size)
        return self._threads(task, function, args)


_thread_state = threading.local()


def _native_threads(size: int) -> Callable:
    if cooperative():
        from gevent.threadpool import ThreadPool

        pool = ThreadPool(size)
        return lambda task, *args: pool.apply(task, args)
    from concurrent.futures import ThreadPoolExecutor

    executor = ThreadPoolExecutor(size, thread_name_prefix="password-hash")
    return lambda task, *args: executor.submit(task, *args).result()


class Hasher:
    """argon2id with the configured cost (docs/security.md explains the defaults), run through
    a HashingPool."""

    def __init__(self, config: dict, permits):
        self._hasher = PasswordHasher(
            time_cost=config["ARGON2_TIME_COST"],
            memory_cost=config["ARGON2_MEMORY_COST_KIB"],
            parallelism=config["ARGON2_PARALLELISM"],
            hash_len=RFC_9106_LOW_MEMORY.hash_len,
            salt_len=RFC_9106_LOW_MEMORY.salt_len,
            type=Type.ID,
        )
        self._run = HashingPool(
            permits, config["PASSWORD_HASH_WAIT_MS"] / 1000, config["PASSWORD_HASH_NICE"]
        ).run
        # Verified against when a login names no user, so that answer takes as long as a
        # wrong password does.
        self._dummy_hash = self._hasher.hash("no such user: a password nobody has")

    def hash(self, password: str) -> str:
        return self._run(self._hasher.hash, password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True when `password` matches; None as the hash still costs one verification."""
        if password_hash is None:
            self._verify_argon2(self._dummy_hash, password)
            return False
        if _BCRYPT.fullmatch(password_hash):
            # bcrypt reads at most 72 bytes; the system that made the hash did the same.
            return self._run(bcrypt.checkpw, password.encode()[:72], password_hash.encode())
        return self._verify_argon2(password_hash, password)

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
