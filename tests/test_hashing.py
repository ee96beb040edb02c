"""The password-hashing queue (dataservice/hashing.py): bursts are served, a queue past its
budget is refused at once, clients take turns, and an idle instance hashes on every core.

The queue's rules in-process, then the whole under gunicorn with the production config and the
production argon2 cost, for both worker classes. Figures under load: bench/ (docs/benchmarks.md).
"""

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from argon2 import PasswordHasher

from dataservice.errors import Busy
from dataservice.hashing import HashQueue

from .support import find_secrets
from .test_limits import add_client, fetch

PASSWORD = "long enough"  # in support.PASSWORDS_USED: the log checks look for it
# The production settings (gunicorn.conf.py reads the rest): start_gunicorn's FAST_HASHING undone.
PRODUCTION = {
    "ARGON2_TIME_COST": "2",
    "ARGON2_MEMORY_COST_KIB": "19456",
    "ARGON2_PARALLELISM": "1",
    "PASSWORD_HASH_WAIT_MS": "1000",
}
WORKER_CLASSES = ["gevent", "gthread"]


# The queue's rules ------------------------------------------------------------------------------


def gated_queue(threads=1, budget=10.0):
    """A queue whose calls wait for `gate` (one hash "takes" 0.1 s in its estimate)."""
    return HashQueue(threads, budget, 0, 0.1), threading.Event()


def test_a_single_hash_of_another_client_goes_before_a_queued_flood():
    queue, gate = gated_queue()
    order = []

    def call(name):
        gate.wait(10)
        order.append(name)

    def send(client, name):
        return threading.Thread(target=queue.run, args=(client, call, name))

    first = send("a", "a0")
    first.start()
    time.sleep(0.1)  # a0 runs (waiting on the gate); the rest queue
    flood = [send("a", f"a{n}") for n in range(1, 6)]
    for thread in flood:
        thread.start()
    time.sleep(0.1)
    single = send("c", "c0")
    single.start()
    time.sleep(0.1)
    gate.set()
    for thread in [first, *flood, single]:
        thread.join(10)
    assert sorted(order) == sorted(["a0", "a1", "a2", "a3", "a4", "a5", "c0"])
    assert order.index("c0") <= 2  # after a0 and at most one more of a's, not after all five


def test_a_hash_that_would_wait_past_the_budget_is_refused_at_once():
    queue, gate = gated_queue(threads=2, budget=0.18)
    running = [threading.Thread(target=queue.run, args=("a", gate.wait, 10)) for _ in range(4)]
    for thread in running:
        thread.start()
    time.sleep(0.1)  # two run, two wait: the next would wait (2 + 2 + 1 - 2) x 0.1 / 2 s
    assert queue.expected_wait("a") == pytest.approx(0.15)
    assert queue.expected_wait("b") == pytest.approx(0.1)  # one of a's, then b's turn
    waiting = threading.Thread(target=queue.run, args=("a", gate.wait, 10))
    waiting.start()  # 0.15 s: within the budget, it queues
    time.sleep(0.1)
    started = time.monotonic()
    with pytest.raises(Busy) as refused:
        queue.run("a", gate.wait, 10)  # (3 + 2 + 1 - 2) x 0.1 / 2: 0.2 s, past 0.18 s
    assert time.monotonic() - started < 0.05  # refused, not queued
    assert refused.value.headers["Retry-After"] == "1"
    assert "booked for 0.2 s" in refused.value.detail
    gate.set()
    for thread in [*running, waiting]:
        thread.join(10)
    assert queue.expected_wait("a") == 0  # all done: idle


def test_a_client_with_nothing_queued_goes_next_before_a_flood_already_served():
    queue, gate = gated_queue()
    order = []

    def call(name):
        gate.wait(10)
        order.append(name)

    calls = [(call, (f"a{n}",)) for n in range(6)]
    flood = threading.Thread(target=queue.run_many, args=("a", calls))
    flood.start()
    time.sleep(0.1)  # a0 runs (waiting on the gate); a1-a5 wait, their client served once
    single = threading.Thread(target=queue.run, args=("c", call, "c0"))
    single.start()
    time.sleep(0.1)
    gate.set()
    for thread in (flood, single):
        thread.join(10)
    assert order[:2] == ["a0", "c0"]  # c's first hash before a's second: only a0 ahead


def test_a_connection_back_before_its_retry_after_is_held_a_burst_is_not():
    queue, gate = HashQueue(1, 0.15, 0, 0.1, hold=0.2), threading.Event()
    running = [threading.Thread(target=queue.run, args=("a", gate.wait, 10)) for _ in range(2)]
    for thread in running:
        thread.start()
    time.sleep(0.1)  # one runs, one waits: the next would wait (1 + 1 + 1 - 1) x 0.1 s
    for connection in ("10.0.0.1:5001", "10.0.0.1:5002"):  # two of a burst's connections
        started = time.monotonic()
        with pytest.raises(Busy):
            queue.run("a", gate.wait, 10, connection=connection)
        assert time.monotonic() - started < 0.05  # each refused at once
    started = time.monotonic()
    with pytest.raises(Busy) as refused:  # the first back, well before its Retry-After of 1 s
        queue.run("a", gate.wait, 10, connection="10.0.0.1:5001")
    assert 0.18 <= time.monotonic() - started < 0.5  # held for the hold, then refused
    assert refused.value.headers["Retry-After"] == "1"
    gate.set()
    for thread in running:
        thread.join(10)


def test_a_batch_is_hashed_in_parallel_and_its_errors_reach_it():
    queue = HashQueue(2, 1.0, 0, 0.01)
    threads_seen = set()

    def square(n):
        threads_seen.add(threading.get_ident())
        time.sleep(0.02)
        return n * n

    assert queue.run_many("a", [(square, (n,)) for n in range(8)]) == [n * n for n in range(8)]
    assert len(threads_seen) == 2
    with pytest.raises(ZeroDivisionError):
        queue.run_many("a", [(square, (1,)), (lambda: 1 / 0, ())])
    assert queue.run("a", square, 3) == 9  # the failure left nothing behind


def test_the_estimate_follows_the_measured_time_of_a_hash():
    queue = HashQueue(1, 1.0, 0, 1.0)  # started from a slow first measurement
    for _ in range(20):
        queue.run("a", time.sleep, 0.01)
    assert 0.01 <= queue.hash_seconds < 0.1


# Under gunicorn ---------------------------------------------------------------------------------


def serve(start_gunicorn, worker_class, **env):
    base, _, log_path = start_gunicorn(WEB_WORKER_CLASS=worker_class, **{**PRODUCTION, **env})
    return base, log_path


# With gthread, a request waits for one of a worker's WEB_THREADS before the hashing queue sees
# it: beyond 2 x 4 requests at once the queue is gunicorn's, first come first served. The tests
# of turns and of the budget give it threads enough to queue there (docs/operations.md).
QUEUE_IN_THREADS = {"WEB_THREADS": "24"}


def create(base, token, n, username=None):
    body = {"email": f"burst{n}@example.com", "username": username or f"burst{n}"}
    return fetch(f"{base}/api/v1/users", token, {**body, "password": PASSWORD}, timeout=30)


def at_once(count, call):
    """`call(n)` for n in range(count), all sent at once; their results in order."""
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(call, range(count)))


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_bursts_of_creates_are_served_whole(start_gunicorn, db, worker_class):
    # Nice 0: the suite's other process loads this machine; at nice 10 hashing would get a
    # tenth of a core beside it, and a burst would rightly be refused as not doable in time.
    base, log_path = serve(start_gunicorn, worker_class, PASSWORD_HASH_NICE="0")
    token = add_client(db, "signups", in_flight=32)  # the default in-flight limit
    sent = 0
    for burst in (5, 20, 32):
        answers = at_once(burst, lambda n, sent=sent: create(base, token, sent + n))
        statuses = [status for status, _, _ in answers]
        assert statuses == [201] * burst, [a for a in answers if a[0] != 201][:1]
        sent += burst
    # Twenty creates of one username: one wins, the others are told it is taken, none is busy.
    answers = at_once(20, lambda n: create(base, token, 100 + n, username="taken"))
    assert sorted(status for status, _, _ in answers) == [201] + [409] * 19
    # A batch of 100 creates with plain passwords: hashed in parallel, then written.
    operations = [
        {
            "method": "POST",
            "path": "/api/v1/users",
            "body": {"email": f"b{n}@example.com", "username": f"batch{n}", "password": PASSWORD},
        }
        for n in range(100)
    ]
    status, _, body = fetch(f"{base}/api/v1/batch", token, {"operations": operations}, timeout=60)
    assert status == 200, body
    assert db.execute("SELECT count(*) FROM users").fetchone()[0] == 5 + 20 + 32 + 1 + 100
    login = {"login": "batch99", "password": PASSWORD}
    assert fetch(f"{base}/api/v1/users/verify-credentials", token, login)[0] == 200
    assert find_secrets(log_path.read_text()) == []


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_a_queue_past_its_budget_answers_503_at_once(start_gunicorn, db, worker_class):
    base, _ = serve(start_gunicorn, worker_class, PASSWORD_HASH_WAIT_MS="50", **QUEUE_IN_THREADS)
    token = add_client(db, "flood")
    assert create(base, token, 0)[0] == 201
    url = f"{base}/api/v1/users/verify-credentials"
    login = {"login": "burst0", "password": PASSWORD}

    def verify(_):
        status, headers, body = fetch(url, token, login, timeout=30)
        return status, headers, body, time.monotonic()

    answers = at_once(32, verify)
    busy = [a for a in answers if a[0] == 503]
    served = [a for a in answers if a[0] == 200]
    assert busy and served and len(busy) + len(served) == 32
    for _, headers, body, _ in busy:
        assert headers["Content-Type"] == "application/problem+json"
        assert body["type"] == "urn:dataservice:problem:busy"
        # Seconds until the queue ahead fits the budget: 32 hashes on 2 workers take far less.
        assert 1 <= int(headers["Retry-After"]) <= 3
    # Refused at once: every 503 came back before the last hash that ran had finished.
    assert max(a[3] for a in busy) < max(a[3] for a in served)


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_a_single_login_goes_before_another_clients_flood(start_gunicorn, db, worker_class):
    base, _ = serve(start_gunicorn, worker_class, **QUEUE_IN_THREADS)
    flooder, single = add_client(db, "flooder"), add_client(db, "single")
    assert create(base, flooder, 0)[0] == 201
    url = f"{base}/api/v1/users/verify-credentials"
    login = {"login": "burst0", "password": PASSWORD}
    stop = threading.Event()

    def timed(token):
        started = time.monotonic()
        status = fetch(url, token, login, timeout=30)[0]
        return status, time.monotonic() - started

    def flood(_):
        answers = []
        while not stop.is_set():
            answers.append(timed(flooder))
        return answers

    with ThreadPoolExecutor(16) as pool:
        flooding = [pool.submit(flood, n) for n in range(16)]
        time.sleep(0.5)  # the flood's queues fill
        singles = [timed(single) for _ in range(10)]  # one at a time
        stop.set()
        floods = [answer for future in flooding for answer in future.result()]
    assert [status for status, _ in singles] == [200] * 10
    assert {status for status, _ in floods} <= {200, 503}
    flood_p50 = statistics.median(seconds for status, seconds in floods if status == 200)
    # Behind the flood's queued hashes, a login would wait as long as the flood's own; its
    # turn comes after at most one hash of each other client waiting.
    assert statistics.median(seconds for _, seconds in singles) < 0.6 * flood_p50


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_an_idle_instance_hashes_on_every_core(start_gunicorn, db, worker_class):
    """The same logins at c=4 on one worker hashing in the default threads (the cores) and in
    one thread (as one hashing slot did), in alternating rounds: the ratio of their rates says
    how many cores hashed, whatever the machine's speed. Nice 0: the suite's other process
    loads this machine, and at nice 10 hashing would yield to it (the point of the nice)."""
    token = add_client(db, "logins")
    bases = {}
    for threads in ("", "1"):
        bases[threads], _ = serve(
            start_gunicorn,
            worker_class,
            WEB_WORKERS="1",
            PASSWORD_HASH_NICE="0",
            PASSWORD_HASH_CONCURRENCY=threads,
        )
    assert create(bases[""], token, 0)[0] == 201
    login = {"login": "burst0", "password": PASSWORD}

    def rate(base, hashes=24, connections=4):
        url = f"{base}/api/v1/users/verify-credentials"
        per = hashes // connections
        started = time.monotonic()
        statuses = at_once(connections, lambda _: [fetch(url, token, login)[0] for _ in range(per)])
        assert statuses == [[200] * per] * connections
        return hashes / (time.monotonic() - started)

    for base in bases.values():
        rate(base, 8)  # warm: threads made, first connections paid
    # What this machine can give right now: the same hashes in-process, two threads against one.
    argon2 = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)

    def spare(threads, hashes=24):
        started = time.monotonic()
        HashQueue(threads, 60, 0, 0.02).run_many("", [(argon2.hash, (PASSWORD,))] * hashes)
        return hashes / (time.monotonic() - started)

    ratios, possible = [], []
    for _ in range(3):  # alternating rounds: the machine's load drifts
        ratios.append(rate(bases[""]) / rate(bases["1"]))
        possible.append(spare(2) / spare(1))
    if max(possible) < 1.4:
        pytest.skip(f"no idle core to hash on: two threads of argon2 gave {max(possible):.2f}x")
    # Two cores: up to 2x, in practice less, as the worker's own Python and the suite's other
    # process share them (1.15-1.2x seen while in-process argon2 got 1.5x). One thread hashing
    # at a time gives about 1x; 1.1x is past its noise.
    assert max(ratios) > 1.1, (ratios, possible)
