"""Throughput of another checkout (say, main) against this one, served alternately by gunicorn
with each tree's own gunicorn.conf.py and code, on one seeded database: the "not slower"
check of a change that should cost nothing (docs/benchmarks.md).

    git archive main | tar -x -C /tmp/main
    python bench/compare_throughput.py DATABASE_URL ADMIN_URL USERS ROUNDS /tmp/main
    (DATABASE_URL: a seeded benchmark database, as `make bench` leaves one)

Each round serves both trees, the order swapped every round, wrk at 64 connections for 8 s
after 2 s of warm-up per scenario; the medians and their ratio are printed.
"""

import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.run import PostgresProcesses, Service, make_token, run_wrk  # noqa: E402

SCENARIOS = ("get_by_id", "create")


def main(url: str, admin_url: str, users: str, rounds: int, other: str) -> None:
    (ROOT / "var").mkdir(exist_ok=True)  # the services' logs
    env = {"BENCH_TOKEN": make_token(url, "bench-throughput"), "BENCH_USERS": users}
    postgres = PostgresProcesses(admin_url, url.rsplit("/", 1)[1])
    rates = {(tree, s): [] for tree in ("other", "this") for s in SCENARIOS}
    for r in range(rounds):
        order = ("other", "this") if r % 2 == 0 else ("this", "other")
        for tree in order:
            service = Service(url, {}, root=Path(other) if tree == "other" else ROOT)
            try:
                for scenario in SCENARIOS:
                    run_wrk(service, postgres, scenario, 64, 2, env)
                    result = run_wrk(service, postgres, scenario, 64, 8, env)
                    rates[tree, scenario].append(result["rps"])
                    print(
                        f"round {r + 1} {tree:6} {scenario:10} {result['rps']:8.0f}/s", flush=True
                    )
            finally:
                service.stop()
    for scenario in SCENARIOS:
        other_rate = statistics.median(rates["other", scenario])
        this_rate = statistics.median(rates["this", scenario])
        print(
            f"{scenario:10} other {other_rate:8.0f}/s  this {this_rate:8.0f}/s  "
            f"{this_rate / other_rate:.2f}x"
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
