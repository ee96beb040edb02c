"""Issue 25's burst table: N concurrent POST /api/v1/users with a plain password from one client
(the default limits) on an idle instance with the production gunicorn.conf.py and default
settings; how many were answered 201, 429 or 503, and the slowest answer. Then twenty concurrent
creates of one username (one 201, nineteen 409 wanted). Each checkout named runs under its own
.venv, alternately, for --rounds rounds:

    BENCH_ADMIN_URL=postgresql://... .venv/bin/python bench/bursts.py . /path/to/other/checkout
"""

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.run import checkout_database_name, make_token, prepare_database

DEFAULT_LIMITS = (500.0, 1000, 32)  # api_clients' defaults: rate, burst, in flight


def post(base: str, token: str, body: dict) -> tuple[int, float]:
    request = urllib.request.Request(
        base + "/api/v1/users",
        json.dumps(body).encode(),
        {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    return status, time.perf_counter() - started


def burst(base: str, token: str, bodies: list[dict]) -> tuple[list[int], float]:
    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(lambda body: post(base, token, body), bodies))
    return [status for status, _ in answers], max(seconds for _, seconds in answers)


def start(checkout: Path, url: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": url, "PORT": str(port)}
    process = subprocess.Popen(
        [str(checkout / ".venv" / "bin" / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=checkout,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            urllib.request.urlopen(base + "/ready", timeout=1).read()
            break
        except OSError:
            time.sleep(0.2)
    else:
        process.terminate()
        raise SystemExit(f"{checkout}: the service did not get ready")
    time.sleep(1)  # idle: the workers' start-up is over
    return process, base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkouts", nargs="*", default=["."])
    parser.add_argument("--sizes", default="5,10,20,32,50")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--users", type=int, default=100_000)
    args = parser.parse_args()
    url = prepare_database(
        os.environ["BENCH_ADMIN_URL"], checkout_database_name("dataservice_bursts"), args.users
    )
    token = make_token(url, "bench-bursts", DEFAULT_LIMITS)
    for round_ in range(args.rounds):
        for checkout in map(Path, args.checkouts):
            process, base = start(checkout.resolve(), url)
            try:
                row = []
                for n in map(int, args.sizes.split(",")):
                    tag = secrets.token_hex(4)
                    bodies = [
                        {
                            "email": f"b{tag}x{i}@burst.test",
                            "username": f"b{tag}x{i}",
                            "password": "a burst password",
                        }
                        for i in range(n)
                    ]
                    statuses, slowest = burst(base, token, bodies)
                    counts = ", ".join(f"{statuses.count(s)} x {s}" for s in sorted(set(statuses)))
                    row.append(f"{n}: {counts} (slowest {slowest:.2f} s)")
                    time.sleep(2)  # idle again before the next burst
                tag = secrets.token_hex(4)
                same = [
                    {
                        "email": f"s{tag}x{i}@burst.test",
                        "username": f"s{tag}",
                        "password": "a burst password",
                    }
                    for i in range(20)
                ]
                statuses, slowest = burst(base, token, same)
                counts = ", ".join(f"{statuses.count(s)} x {s}" for s in sorted(set(statuses)))
                row.append(f"one username x20: {counts} (slowest {slowest:.2f} s)")
            finally:
                process.terminate()
                process.wait(60)
            print(f"round {round_} {checkout}: " + " | ".join(row), flush=True)


if __name__ == "__main__":
    main()
