"""The password-hashing queue of one worker process: fair between clients, refusing only what
cannot be done in time.

A hash request joins its client's line; the lines are served round-robin (one hash of each
waiting client in turn), and a client with nothing queued goes before the clients already
served, so one client's flood of queued hashes puts another client's single login behind none
of it, only the hash running. A request waits while its expected wait fits the budget
(PASSWORD_HASH_WAIT_MS): the hashes ahead of it in that order, times the measured time of one
hash (a moving average), over the hashing threads. Past the budget it is refused at once
(503 busy) with a Retry-After from the same estimate.

The hashes run in native threads (PASSWORD_HASH_CONCURRENCY of them, by default the cores over
the workers: as many as cores on the instance) at a raised nice value (PASSWORD_HASH_NICE, 6):
when nothing else wants the cores hashing takes all of them, and when other requests want them
the scheduler gives hashing a smaller share (nice 6 weighs about a quarter of nice 0). Measured
(docs/benchmarks.md, fourteenth round): at nice 10 a verify flood beside another client's GET
flood got 0.20-0.21x of its solo rate, at 8 0.24x, at 6 0.29-0.38x (target 0.25x) while the
GETs kept 0.72-0.81x of theirs (target 0.7x). Under gevent they are gevent's native threads:
argon2-cffi and bcrypt release the GIL, so the worker's other requests go on meanwhile.

How it runs: each request spawns one task per hash on the thread pool; a task, when a thread
takes it, runs whichever queued hash is next in the fair order (not necessarily its own), and
hands it back to its owner. As many tasks as hashes: every hash runs exactly once.
"""

import math
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from itertools import chain

from . import tracing
from .errors import Busy
from .workers import cooperative, section_lock

# Weight of the newest hash in the moving average of a hash's time: recent enough to follow a
# change of load within a few dozen hashes, smooth enough not to jump at one slow one.
_SMOOTHING = 0.2


class _Ticket:
    __slots__ = ("args", "began", "done", "ended", "error", "function", "value")

    def __init__(self, function: Callable, args: tuple):
        self.function, self.args = function, args
        self.done = threading.Event()  # gevent's under gevent: set in the hub (_deliver)
        self.value = self.error = None
        self.began = self.ended = 0.0  # perf_counter, in the hashing thread


class HashQueue:
    def __init__(
        self, threads: int, budget: float, nice: int, hash_seconds: float, hold: float = 0.0
    ):
        self.threads, self.budget, self._nice, self._hold = threads, budget, nice, hold
        self.hash_seconds = hash_seconds  # moving average, first the one measured at start
        # A client's line starts in _new, served before _lines (the round's order) for one
        # hash: a single login waits for the running hash, not for one of each flood's too.
        self._new: OrderedDict[str, deque[_Ticket]] = OrderedDict()
        self._lines: OrderedDict[str, deque[_Ticket]] = OrderedDict()
        self._running = 0
        self._told: dict[str, float] = {}  # client and connection -> when its 503 said to retry
        # Taken by requests and by the native threads: never held while waiting for anything.
        self._mutex = section_lock()
        self._spawn: Callable | None = None  # made on first use, in the worker (after the fork)
        self._spawn_mutex = threading.Lock()

    def run(self, client: str, function: Callable, *args, connection: str = ""):
        """`function(*args)` in a hashing thread, in `client`'s turn; raises Busy at once when
        it would wait past the budget (see run_many for `connection`)."""
        return self.run_many(client, [(function, args)], connection)[0]

    def run_many(
        self, client: str, calls: list[tuple[Callable, tuple]], connection: str = ""
    ) -> list:
        """Several calls of one request (a batch), queued at once and run in parallel. Refused
        as a whole when its first would wait past the budget: its own later hashes are its own
        work, and they take turns with other clients' like any others. `connection` names the
        request's connection (address and port): see _held."""
        tickets = [_Ticket(function, args) for function, args in calls]
        queued = time.perf_counter()
        with self._mutex:
            wait = self.expected_wait(client)
            if wait > self.budget:
                retry = max(1, math.ceil(wait - self.budget))
                hold = self._held(client, connection, retry)
            else:
                retry = 0
                line = self._line(client)
                if line is None:
                    line = self._new[client] = deque()
                line.extend(tickets)
        if retry:
            if hold:
                time.sleep(hold)  # patched under gevent: other requests run meanwhile
            raise Busy(
                f"password hashing on this instance is booked for {wait:.1f} s ahead of this "
                f"request, past its budget of {self.budget:g} s (PASSWORD_HASH_WAIT_MS); retry "
                f"in {retry} s",
                "hashing",
                retry_after=retry,
            )
        spawn = self._spawner()
        for _ in tickets:
            spawn(self._next)
        for ticket in tickets:
            ticket.done.wait()
        _timed(queued, tickets)
        for ticket in tickets:
            if ticket.error is not None:
                raise ticket.error
        return [ticket.value for ticket in tickets]

    def expected_wait(self, client: str) -> float:
        """Seconds a new hash of `client` would wait (call under the mutex): in round-robin
        order it comes after the client's own queued hashes and, of every other waiting client,
        as many as the client has plus one (an upper bound for a client with none queued: it
        goes before the clients already served); then a thread must be free."""
        own = len(self._line(client) or ())
        ahead = own + sum(
            min(len(line), own + 1)
            for name, line in chain(self._new.items(), self._lines.items())
            if name != client
        )
        return max(0, ahead + self._running + 1 - self.threads) * self.hash_seconds / self.threads

    def _line(self, client: str) -> deque[_Ticket] | None:
        return self._new.get(client) or self._lines.get(client)

    def _held(self, client: str, connection: str, retry: int) -> float:
        """Seconds to hold this refusal (call under the mutex): up to `hold`
        (RATELIMIT_HOLD_MS, under gevent) when the same connection comes back before the
        Retry-After of its last 503, as admission holds a 429. A closed loop that ignores
        Retry-After would otherwise spend the cores on refusals (each parses, authenticates and
        looks the login up) at nice 0, beside hashes at PASSWORD_HASH_NICE: a 16-connection
        verify flood beside another client's GETs sent about 170 refused logins a second,
        about 20 with the hold (docs/benchmarks.md, fourteenth round). Keyed by the client's
        connection, not the client: the concurrent requests of one burst come on connections
        of their own, and each is refused at once."""
        if not (self._hold and connection):
            return 0.0
        now = time.monotonic()
        if len(self._told) > 10_000:  # forget the connections whose Retry-After has passed
            self._told = {key: told for key, told in self._told.items() if told > now}
        key = f"{client} {connection}"  # a proxy's connection may carry several clients
        told, self._told[key] = self._told.get(key, 0.0), now + retry
        return min(told - now, self._hold) if told > now else 0.0

    def _next(self) -> _Ticket:
        """A pool task: runs the next hash in the fair order, in this native thread."""
        if not getattr(_thread_state, "lowered", False):
            os.setpriority(os.PRIO_PROCESS, 0, self._nice)  # 0: this thread, on Linux
            _thread_state.lowered = True
        with self._mutex:
            lines = self._new or self._lines
            client, line = next(iter(lines.items()))
            ticket = line.popleft()
            del lines[client]
            if line:
                self._lines[client] = line  # its next hash after every other client's
            self._running += 1
        ticket.began = time.perf_counter()
        try:
            ticket.value = ticket.function(*ticket.args)
        except Exception as exc:  # handed to the request that asked, raised there
            ticket.error = exc
        ticket.ended = time.perf_counter()
        took = ticket.ended - ticket.began
        with self._mutex:
            self._running -= 1
            self.hash_seconds += _SMOOTHING * (took - self.hash_seconds)
        return ticket

    def _spawner(self) -> Callable:
        with self._spawn_mutex:
            if self._spawn is None:
                self._spawn = _native_pool(self.threads)
            return self._spawn


_thread_state = threading.local()


def _timed(queued: float, tickets: list[_Ticket]) -> None:
    """The request's hash phases (Server-Timing, spans): waiting for its turn, then hashing
    (a batch's hashes in parallel: from the first begun to the last ended)."""
    began = min(ticket.began for ticket in tickets)
    ended = max(ticket.ended for ticket in tickets)
    count = {"dataservice.password_hashes": len(tickets)} if len(tickets) > 1 else None
    tracing.interval(tracing.HASH_WAIT, "password hash wait", queued, began)
    tracing.interval(tracing.HASH, "password hash", began, ended, count)


def _deliver(ticket: _Ticket) -> None:
    ticket.done.set()


def _native_pool(size: int) -> Callable:
    """spawn(task): runs task() in one of `size` native threads, then wakes its ticket's owner
    (under gevent, in the hub: a native thread must not touch gevent's objects)."""
    if cooperative():
        import gevent
        from gevent.threadpool import ThreadPool

        pool = ThreadPool(size)

        def submit(task):
            pool.spawn(task).rawlink(lambda result: _deliver(result.value))

        # gevent's pool.spawn() waits, first come first served, while `size` tasks are out: in
        # a greenlet of its own, so that the request goes on to wait for its own hash, which
        # may be done (in its client's turn) long before this spawn's turn comes.
        return lambda task: gevent.spawn(submit, task)
    from concurrent.futures import ThreadPoolExecutor

    executor = ThreadPoolExecutor(size, thread_name_prefix="password-hash")
    return lambda task: executor.submit(task).add_done_callback(
        lambda future: _deliver(future.result())
    )
