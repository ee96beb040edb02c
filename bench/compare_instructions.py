"""Instructions per request of another checkout (say, main) against this one, alternated in
rounds, each counted by its own tree's bench/instructions.py; this tree also with
SERVER_TIMING=false. For a change that must cost nothing measurable (docs/benchmarks.md).

    git archive main | tar -x -C /tmp/main
    python bench/compare_instructions.py DATABASE_URL USERS ROUNDS /tmp/main [SCENARIO,...]
    (DATABASE_URL: a seeded benchmark database, as `make bench` leaves one; the scenarios of
    bench/instructions.py, get_by_id,create by default)
"""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.run import make_token  # noqa: E402


def _counter(tree: str, name: str):
    spec = importlib.util.spec_from_file_location(name, f"{tree}/bench/instructions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.count


def main(url: str, users: str, rounds: int, other: str, scenarios: list[str]) -> None:
    env = {
        "DATABASE_URL": url,
        "BENCH_TOKEN": make_token(url, "bench-compare"),
        "BENCH_USERS": users,
    }
    counters = {"other": _counter(other, "other_count"), "this": _counter(str(ROOT), "this_count")}
    variants = {
        "other": ("other", {}),
        "this": ("this", {}),
        "this-st-off": ("this", {"SERVER_TIMING": "false"}),
    }
    for r in range(rounds):
        for name, (tree, extra) in variants.items():
            for scenario in scenarios:
                n = counters[tree]("wsgi:app", scenario, {**env, **extra}, 300)
                print(f"round {r + 1} {name:12} {scenario:10} {n:,}", flush=True)


if __name__ == "__main__":
    scenarios = sys.argv[5].split(",") if len(sys.argv) > 5 else ["get_by_id", "create"]
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], scenarios)
