"""Throughput of another checkout (say, main) against this one, served alternately by gunicorn
with each tree's own gunicorn.conf.py and code, on one seeded database: the "not slower"
check of a change that should cost nothing (docs/benchmarks.md).

    git archive main | tar -x -C /tmp/main
    python bench/compare_throughput.py DATABASE_URL ADMIN_URL USERS ROUNDS /tmp/main [SCENARIO...]
    (DATABASE_URL: a seeded benchmark database, as `make bench` leaves one; ADMIN_URL: a
    superuser's, for CHECKPOINT; SCENARIO: get_by_id and create unless named)

Two other checkouts against each other (a bisect): --this=/tmp/newer before the arguments. The
services inherit the environment: SERVER_TIMING=false in front turns Server-Timing off in
both (a tree from before it ignores the variable).

Each round serves both trees, the order swapped every round, wrk at 64 connections for 8 s
after 2 s of warm-up per scenario; the medians and their ratio are printed. Before every cell
the database is put back as it was: what the requests wrote is deleted, then VACUUM ANALYZE
and CHECKPOINT, so that neither tree runs on the other's rows, nor pays for its vacuum and
checkpoint (a create cell writes some 25,000 users and their events). A cell during which
the rest of the machine was busy is run again (QUIET).
"""

import statistics
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.run import (  # noqa: E402
    PostgresProcesses,
    Service,
    delete_written,
    make_token,
    run_wrk,
)

SCENARIOS = ("get_by_id", "create")
# The machine is shared: a cell during which everyone else used more than QUIET cores is run
# again, up to ATTEMPTS times (the last one counts).
QUIET = 0.25
ATTEMPTS = 4


def reset_database(url: str, admin_url: str) -> None:
    """The database as the seed left it: the requests' writes deleted, vacuumed, checkpointed."""
    with psycopg.connect(url) as conn:
        delete_written(conn)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def main(url: str, admin_url: str, users: str, rounds: int, other: str, scenarios, this=ROOT):
    (ROOT / "var").mkdir(exist_ok=True)  # the services' logs
    env = {"BENCH_TOKEN": make_token(url, "bench-throughput"), "BENCH_USERS": users}
    postgres = PostgresProcesses(admin_url, url.rsplit("/", 1)[1])
    rates = {(tree, s): [] for tree in ("other", "this") for s in scenarios}
    for r in range(rounds):
        order = ("other", "this") if r % 2 == 0 else ("this", "other")
        for tree in order:
            service = Service(url, {}, root=Path(other) if tree == "other" else this)
            try:
                for scenario in scenarios:
                    for _ in range(ATTEMPTS):
                        reset_database(url, admin_url)
                        run_wrk(service, postgres, scenario, 64, 2, env)
                        result = run_wrk(service, postgres, scenario, 64, 8, env)
                        print(
                            f"round {r + 1} {tree:6} {scenario:10} {result['rps']:8.0f}/s"
                            f"  (others' load {result['cpu']['other']:.2f} cores)",
                            flush=True,
                        )
                        if result["cpu"]["other"] <= QUIET:
                            break
                        time.sleep(10)  # disturbed: run the cell again
                    rates[tree, scenario].append(result["rps"])
            finally:
                service.stop()
    for scenario in scenarios:
        other_rate = statistics.median(rates["other", scenario])
        this_rate = statistics.median(rates["this", scenario])
        each = zip(rates["this", scenario], rates["other", scenario], strict=True)
        print(
            f"{scenario:10} other {other_rate:8.0f}/s  this {this_rate:8.0f}/s  "
            f"{this_rate / other_rate:.3f}x  (rounds: {' '.join(f'{t / o:.2f}' for t, o in each)})"
        )


if __name__ == "__main__":
    args, this = sys.argv[1:], ROOT
    if args and args[0].startswith("--this="):
        this = Path(args.pop(0).removeprefix("--this="))
    main(*args[:3], int(args[3]), args[4], args[5:] or SCENARIOS, this)
