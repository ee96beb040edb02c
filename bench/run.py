"""The benchmark: the service under wrk, beside pgbench running the same SQL as the ceiling.

    python bench/run.py            # the full run: 1,000,000 users, c=16 and 64, 3 repeats
    python bench/run.py --smoke    # proves the harness works, in about a minute (CI runs it)

It seeds a dedicated database, starts gunicorn with the production gunicorn.conf.py, and for each
scenario and concurrency runs a warm-up, then several timed repeats of wrk (medians reported),
then pgbench with the same SQL (prepared statements, same client count). It samples the CPU time
of wrk, the gunicorn processes and PostgreSQL during each cell: they share this machine's cores.
Results go to docs/benchmarks-results.md (a table) and docs/benchmarks.png (a chart).
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dataservice import auth  # noqa: E402
from dataservice.api import cursors  # noqa: E402
from dataservice.cli import apply_migrations  # noqa: E402
from dataservice.seed import seed_users  # noqa: E402

# verify-credentials goes last and at c=16 only: it hashes passwords for real (argon2id, 64 MiB),
# so at c=64 it is a queue of hashes that gunicorn keeps working through after wrk stops, and the
# next cell would measure that queue instead of its own scenario.
SCENARIOS = [
    "get_by_id",
    "get_by_username",
    "list_first",
    "list_deep",
    "create",
    "patch",
    "events",
    "verify",
]
ONLY_AT = {"verify": 16}
ENV = os.environ.copy()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin(tool: str) -> str:
    found = shutil.which(tool)
    if found:
        return found
    return str(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"))[-1])


def prepare_database(admin_url: str, name: str, users: int) -> str:
    """A migrated database with `users` seeded users (kept between runs when it already has
    them), and an API client for the benchmark. Returns its URL."""
    base = admin_url.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    apply_migrations(url)
    with psycopg.connect(url) as conn:
        seeded = conn.execute(
            "SELECT count(*) FROM users WHERE email LIKE '%%@example.%%'"
        ).fetchone()[0]
        if seeded != users:
            print(f"seeding {users} users ...", flush=True)
            conn.execute("TRUNCATE users, events, idempotency_keys RESTART IDENTITY")
            conn.execute("SET LOCAL statement_timeout = 0")
            seed_users(conn, users)
        else:  # drop what earlier runs wrote, keep the seed
            conn.execute("DELETE FROM users WHERE email NOT LIKE '%%@example.%%'")
            conn.execute("TRUNCATE events, idempotency_keys")
        conn.execute("DELETE FROM api_clients WHERE name = 'bench'")
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE users")
    return url


def make_token(url: str) -> str:
    token = auth.new_token()
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO api_clients (name, token_hash, scopes) VALUES ('bench', %s, %s)",
            (auth.token_hash(token), list(auth.SCOPES)),
        )
    return token


class Service:
    """gunicorn with the production configuration, on a free port."""

    def __init__(self, url: str, extra_env: dict):
        self.port = free_port()
        env = {  # production settings: request log lines (into a file), metrics and auth all on
            **ENV,
            "DATABASE_URL": url,
            "PORT": str(self.port),
            **extra_env,
        }
        self.log = open(ROOT / "var" / "bench-gunicorn.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(self.base + "/health", timeout=1).read()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not start; see var/bench-gunicorn.log")

    def pids(self) -> list[int]:
        children = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True
        ).stdout.split()
        return [self.process.pid, *map(int, children)]

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)
        self.log.close()


def cpu_seconds(pids) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass
    return total / ticks


def postgres_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-x", "postgres"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def run_wrk(service: Service, scenario: str, connections: int, seconds: float, env: dict):
    command = [
        "wrk",
        "-t",
        "2",
        "-c",
        str(connections),
        "-d",
        f"{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",  # verify-credentials hashes for real: slow by design, not an error
        "-s",
        f"bench/{scenario}.lua",
        service.base,
    ]
    before = {
        "wrk": 0.0,
        "service": cpu_seconds(service.pids()),
        "postgres": cpu_seconds(postgres_pids()),
    }
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**ENV, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wrk_cpu = 0.0
    while process.poll() is None:  # wrk's own CPU, read while it lives
        wrk_cpu = max(wrk_cpu, cpu_seconds([process.pid]))
        time.sleep(0.2)
    output = process.stdout.read()
    after = {
        "wrk": wrk_cpu,
        "service": cpu_seconds(service.pids()),
        "postgres": cpu_seconds(postgres_pids()),
    }
    match = re.search(r"BENCH_RESULT (\{.*\})", output)
    if not match:
        raise RuntimeError(f"wrk gave no result for {scenario}:\n{output}")
    result = json.loads(match.group(1))
    result["rps"] = result["requests"] / result["seconds"]
    result["cpu"] = {k: (after[k] - before[k]) / result["seconds"] for k in after}
    return result


def run_pgbench(url: str, scenario: str, connections: int, seconds: float, variables: dict):
    command = [
        pg_bin("pgbench"),
        "-n",
        "-M",
        "prepared",
        "-c",
        str(connections),
        "-j",
        "2",
        "-T",
        str(int(max(seconds, 1))),
        "-f",
        f"bench/pgbench/{scenario}.sql",
    ]
    for name, value in variables.items():
        command += ["-D", f"{name}={value}"]
    output = subprocess.run([*command, url], cwd=ROOT, capture_output=True, text=True).stdout
    match = re.search(r"tps = ([0-9.]+)", output)
    return float(match.group(1)) if match else None


def deep_cursor(users: int) -> tuple[str, int]:
    """The cursor of page 10,000 of 50 (or the middle page when there are fewer users)."""
    page = min(10_000, max(users // 50 // 2, 1))
    after = 50 * page
    fingerprint = cursors.fingerprint(
        {
            "sort": "id",
            "email": None,
            "username": None,
            "username_prefix": None,
            "created_after": None,
            "created_before": None,
        }
    )
    return cursors.encode([after], fingerprint), after


def batch_ratio(service: Service, token: str, operations: int) -> dict:
    """One batch of `operations` creates against as many single POSTs sent one after another
    on one keep-alive connection."""
    import http.client

    hash_ = "$2b$04$OlPpVgLFaZFJB31QAVtesuUU1FzjOPosEmvpmG876eE7dOlILxKMW"
    tag = os.urandom(4).hex()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=120)

    def body(kind, n):
        return {
            "email": f"{kind}{tag}{n}@batch.example",
            "username": f"{kind}{tag}{n}",
            "hashed_password": hash_,
        }

    started = time.perf_counter()
    for n in range(operations):
        conn.request("POST", "/api/v1/users", json.dumps(body("s", n)), headers)
        response = conn.getresponse()
        response.read()
        assert response.status == 201, response.status
    singles = time.perf_counter() - started
    payload = json.dumps(
        {
            "operations": [
                {"method": "POST", "path": "/api/v1/users", "body": body("b", n)}
                for n in range(operations)
            ]
        }
    )
    started = time.perf_counter()
    conn.request("POST", "/api/v1/batch", payload, headers)
    response = conn.getresponse()
    response.read()
    assert response.status == 200, response.status
    batch = time.perf_counter() - started
    return {
        "operations": operations,
        "singles_s": singles,
        "batch_s": batch,
        "speedup": singles / batch,
    }


def write_report(results: dict, args, out: Path):
    lines = [
        f"Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {args.users:,} users, "
        f"{args.seconds:g} s per repeat, {args.repeats} repeat(s) (median), warm-up "
        f"{args.warmup:g} s, `{args.label}`. wrk, gunicorn and PostgreSQL share "
        f"{os.cpu_count()} cores; CPU columns are cores used by each during the cell.",
        "",
        "| scenario | c | req/s | p50 ms | p99 ms | non-2xx | pgbench tps | ratio | CPU wrk | "
        "CPU service | CPU postgres |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (scenario, connections), cell in results["cells"].items():
        ceiling = cell["pgbench_tps"]
        ratio = f"{cell['rps'] / ceiling:.3f}" if ceiling else "n/a"
        cpu = cell["cpu"]
        lines.append(
            f"| {scenario} | {connections} | {cell['rps']:,.0f} | {cell['p50_ms']:.1f} | "
            f"{cell['p99_ms']:.1f} | {cell['non2xx']} | "
            f"{ceiling:,.0f} | {ratio} | {cpu['wrk']:.2f} | {cpu['service']:.2f} | "
            f"{cpu['postgres']:.2f} |"
            if ceiling
            else f"| {scenario} | {connections} | {cell['rps']:,.0f} | {cell['p50_ms']:.1f} | "
            f"{cell['p99_ms']:.1f} | {cell['non2xx']} | n/a | n/a | {cpu['wrk']:.2f} | "
            f"{cpu['service']:.2f} | {cpu['postgres']:.2f} |"
        )
    batch = results.get("batch")
    if batch:
        lines += [
            "",
            f"Batch: {batch['operations']} creates in one batch took "
            f"{batch['batch_s'] * 1000:.0f} ms; the same number of single POSTs, one "
            f"after another on one keep-alive connection, took "
            f"{batch['singles_s'] * 1000:.0f} ms: **{batch['speedup']:.1f}x**.",
        ]
    out.write_text("\n".join(lines) + "\n")
    (out.with_suffix(".json")).write_text(
        json.dumps(
            {"cells": {f"{s}@{c}": v for (s, c), v in results["cells"].items()}, "batch": batch},
            indent=2,
        )
    )


def write_chart(results: dict, path: Path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no chart (make bench installs it)")
        return
    cells = results["cells"]
    labels = [f"{s}\nc={c}" for s, c in cells]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 7), sharex=True)
    x = range(len(labels))
    top.bar(x, [cell["rps"] for cell in cells.values()], color="#3b6ea5")
    top.set_ylabel("requests/s")
    top.set_title("dataservice under wrk (gunicorn, PostgreSQL and wrk on one machine)")
    bottom.bar(x, [cell["p99_ms"] for cell in cells.values()], color="#c0504d")
    bottom.set_ylabel("p99 latency, ms")
    bottom.set_xticks(list(x), labels, rotation=60, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny and fast: proves the harness")
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--connections", default="16,64")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--label", default="production gunicorn.conf.py defaults")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        help="NAME=VALUE for the service (e.g. WEB_WORKERS=4); repeatable",
    )
    parser.add_argument("--database", default="dataservice_bench")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks-results.md"))
    args = parser.parse_args()
    if args.smoke:
        args.users, args.seconds, args.warmup, args.repeats = 5_000, 2.0, 0.5, 1
        args.connections, args.database = "16", args.database + "_smoke"
        args.out = str(ROOT / "var" / "bench-smoke.md")
    admin_url = os.environ["BENCH_ADMIN_URL"]
    (ROOT / "var").mkdir(exist_ok=True)
    url = prepare_database(admin_url, args.database, args.users)
    token = make_token(url)
    cursor, deep_after = deep_cursor(args.users)
    wrk_env = {"BENCH_TOKEN": token, "BENCH_USERS": str(args.users), "BENCH_DEEP_CURSOR": cursor}
    pg_vars = {"users": args.users, "deep_after": deep_after}
    service_env = dict(item.split("=", 1) for item in args.env)
    service = Service(url, service_env)
    results = {"cells": {}}
    try:
        for scenario in args.scenarios.split(","):
            for connections in map(int, args.connections.split(",")):
                if scenario in ONLY_AT and connections != ONLY_AT[scenario]:
                    continue
                run_wrk(service, scenario, connections, args.warmup, wrk_env)  # warm-up
                runs = [
                    run_wrk(service, scenario, connections, args.seconds, wrk_env)
                    for _ in range(args.repeats)
                ]
                median = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]
                cell = {
                    **median,
                    "rps": statistics.median(r["rps"] for r in runs),
                    "pgbench_tps": run_pgbench(
                        url, scenario, connections, min(args.seconds, 5), pg_vars
                    ),
                }
                results["cells"][(scenario, connections)] = cell
                print(
                    f"{scenario:16} c={connections:<3} {cell['rps']:8.0f} req/s  "
                    f"p50 {cell['p50_ms']:6.1f} ms  p99 {cell['p99_ms']:6.1f} ms  "
                    f"non-2xx {cell['non2xx']}  pgbench {cell['pgbench_tps'] or 0:8.0f} tps",
                    flush=True,
                )
        if not args.smoke or "create" in args.scenarios:
            results["batch"] = batch_ratio(service, token, 1000 if not args.smoke else 200)
            print(f"batch: {results['batch']}", flush=True)
    finally:
        service.stop()
    out = Path(args.out)
    write_report(results, args, out)
    write_chart(results, out.with_suffix(".png"))
    failures = [
        key
        for key, cell in results["cells"].items()
        if cell["requests"] == 0 or cell["errors"] or cell["non2xx"]
    ]
    if failures:
        sys.exit(f"cells with errors or non-2xx answers: {failures}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
