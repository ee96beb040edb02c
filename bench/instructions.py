"""Instructions per request, counted by valgrind: a measure that does not drift with the host.

Throughput on a shared 2-core machine swings by 10-40% within minutes, more than the differences
issue 8 asks about (auth, metrics and request logs at most 10% of a GET). Valgrind's callgrind
counts the instructions a process executes in user mode: the same count, run after run, for the
same code and inputs, whatever else the machine is doing. What it leaves out: the kernel's work
(system calls, the network), cache misses and PostgreSQL, so it compares our Python with our
Python, not with the machine's limit.

One process serves one app the way a production worker does: gevent's patches, gevent's pywsgi
server with the production handler (dataservice/serving/gevent_worker.py), the app's own pool
and background threads. A client in the same process sends the scenario's requests on one
keep-alive connection over a raw socket (its own cost is small and the same for every app). Two
runs, of N and 3N requests; their difference over 2N is what one request costs, start-up and
warm-up excluded.

    python bench/instructions.py --app wsgi:app --scenario get_by_id   # the count, once
    (DATABASE_URL: a seeded benchmark database; BENCH_TOKEN: a token with every scope)

bench/run.py runs it for its yardstick apps after the wrk runs.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("get_by_id", "create", "patch", "get_organization", "catalog_organization")
# The hash bench/create.lua sends: a caller-made bcrypt hash, so no hashing on the server.
HASH = "$2b$04$OlPpVgLFaZFJB31QAVtesuUU1FzjOPosEmvpmG876eE7dOlILxKMW"


class CountError(Exception):
    """A run under valgrind failed: nothing was measured."""


def count(app: str, scenario: str, env: dict, requests: int = 300) -> int:
    """Instructions one request of `scenario` costs in `app` (the two runs go in parallel)."""
    with ThreadPoolExecutor(2) as runs:
        short, long = runs.map(
            lambda n: _instructions(app, scenario, n, env), (requests, 3 * requests)
        )
    return round((long - short) / (2 * requests))


def _instructions(app: str, scenario: str, requests: int, env: dict) -> int:
    with tempfile.TemporaryDirectory(prefix="dataservice-icount-") as metrics_dir:
        command = [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--serve",
            "--app",
            app,
            "--scenario",
            scenario,
            "--requests",
            str(requests),
        ]
        env = {
            **os.environ,
            # As in production (gunicorn.conf.py): metrics in multiprocess files.
            "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
            # The journal writes request lines and samples in batches, every 0.2 s: about 130
            # requests of a busy worker. Under valgrind a request takes ~25x longer, so its
            # interval does too, or the batches would be a twenty-fifth of production's.
            "LOG_FLUSH_SECONDS": "5",
            **env,
        }
        done = subprocess.run(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
    collected = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or f"served {requests}" not in done.stderr or not collected:
        raise CountError(f"{app} {scenario} x{requests} under valgrind:\n{done.stderr[-3000:]}")
    return int(collected.group(1))


def serve(app_path: str, scenario: str, requests: int) -> None:
    """Serves `requests` requests of `scenario` to an in-process client (under valgrind)."""
    from gevent import monkey

    monkey.patch_all()  # first, as gunicorn's gevent worker does
    import importlib
    import random
    from types import SimpleNamespace

    import gevent
    from gevent import pywsgi, socket

    sys.path.insert(0, str(ROOT))
    module, _, name = app_path.partition(":")
    app = getattr(importlib.import_module(module), name)
    app.extensions["db"].open()
    from dataservice.serving.gevent_worker import Handler as handler  # production's

    handler.worker = SimpleNamespace(cfg=SimpleNamespace(keepalive=5), alive=True)
    server = pywsgi.WSGIServer(("127.0.0.1", 0), app, handler_class=handler, log=None)
    server.log = SimpleNamespace(access_log_enabled=False, write=lambda *_: None)
    server.start()

    token = os.environ["BENCH_TOKEN"]
    users = int(os.environ.get("BENCH_USERS", "1000"))
    organizations = int(os.environ.get("BENCH_ORGANIZATIONS", "100"))
    random.seed(requests)  # the same ids for the same run; bench/get_by_id.lua draws alike
    tag = os.urandom(5).hex()  # usernames unique across runs

    def request(i: int) -> bytes:
        head = f"Host: bench\r\nAuthorization: Bearer {token}\r\n"
        if scenario == "get_by_id":
            return f"GET /api/v1/users/{random.randint(1, users)} HTTP/1.1\r\n{head}\r\n".encode()
        if scenario in ("get_organization", "catalog_organization"):
            prefix = "/api/v1/bench" if scenario == "catalog_organization" else "/api/v1"
            org = random.randint(1, organizations)
            return f"GET {prefix}/organizations/{org} HTTP/1.1\r\n{head}\r\n".encode()
        name = f"i{tag}_{i}"
        if scenario == "patch":  # a seeded user's email, as bench/patch.lua changes it
            body = f'{{"email": "{name}@example.net"}}'.encode()
            return (
                f"PATCH /api/v1/users/{random.randint(1, users)} HTTP/1.1\r\n{head}"
                f"Content-Type: application/merge-patch+json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body
        body = (
            f'{{"email": "{name}@bench.example", "username": "{name}", '
            f'"hashed_password": "{HASH}"}}'
        ).encode()
        return (
            f"POST /api/v1/users HTTP/1.1\r\n{head}Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    expected = b"HTTP/1.1 201" if scenario == "create" else b"HTTP/1.1 200"

    def client():
        connection = socket.create_connection(("127.0.0.1", server.server_port))
        pending = b""
        for i in range(requests):
            connection.sendall(request(i))
            while b"\r\n\r\n" not in pending:
                pending += connection.recv(65536)
            head, _, pending = pending.partition(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
            while len(pending) < length:
                pending += connection.recv(65536)
            if not head.startswith(expected):
                raise SystemExit(f"request {i}: {head.splitlines()[0]!r}")
            pending = pending[length:]
        connection.close()

    gevent.spawn(client).get()
    server.stop()
    from dataservice.app import close

    close(app)
    print(f"served {requests}", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--app", default="wsgi:app")
    parser.add_argument("--scenario", choices=SCENARIOS, default="get_by_id")
    parser.add_argument("--requests", type=int, default=300, help="N: runs of N and 3N")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.app, args.scenario, args.requests)
        return
    per_request = count(args.app, args.scenario, {}, args.requests)
    print(f"{args.app} {args.scenario}: {per_request:,} instructions per request")


if __name__ == "__main__":
    main()
