"""What it costs to tag each request's SQL with its trace id, three ways (docs/dba.md):

- application_name per checkout: `SELECT set_config('application_name', $1, false)` before the
  request's statements (one more round trip); pg_stat_activity.application_name shows it;
- a setting per transaction: the read runs in BEGIN; set_config('dataservice.trace_id', $1,
  true); ...; COMMIT (three more round trips for an autocommit read); only the session itself
  can read it, so pg_stat_activity cannot show it;
- sqlcommenter: the trace context in a comment at the end of the statement text; every text is
  new, so psycopg never prepares it and PostgreSQL plans it every time.

Each against the plain prepared SELECT by primary key (GET by id's statement), alternated in
rounds, one connection, wall time per request (client and server share the machine).

    python bench/dba_tagging.py postgresql://...   # a database it may create a table in
"""

import os
import statistics
import sys
import time

import psycopg

SELECT = "SELECT id, email, username, version FROM dba_tagging WHERE id = %s"


def plain(conn, i):
    conn.execute(SELECT, (i,)).fetchone()


def application_name(conn, i):
    conn.execute("SELECT set_config('application_name', %s, false)", (_tag(),))
    conn.execute(SELECT, (i,)).fetchone()


def setting_per_transaction(conn, i):
    with conn.transaction():
        conn.execute("SELECT set_config('dataservice.trace_id', %s, true)", (_tag(),))
        conn.execute(SELECT, (i,)).fetchone()


def sqlcommenter(conn, i):
    comment = f" /*traceparent='00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01'*/"
    conn.execute(SELECT + comment, (i,)).fetchone()


def _tag():
    return "dataservice " + os.urandom(16).hex()


WAYS = (plain, application_name, setting_per_transaction, sqlcommenter)


def main(url: str, requests: int = 3000, rounds: int = 5) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS dba_tagging")
        conn.execute(
            "CREATE TABLE dba_tagging (id bigint PRIMARY KEY, email text, username text,"
            " version bigint)"
        )
        conn.execute(
            "INSERT INTO dba_tagging SELECT g, 'u' || g || '@example.com', 'u' || g, 1"
            " FROM generate_series(1, 100000) g"
        )
        conn.execute("ANALYZE dba_tagging")
        times: dict[str, list[float]] = {way.__name__: [] for way in WAYS}
        for _ in range(rounds):
            for way in WAYS:
                for i in range(200):  # warm: psycopg prepares after 5 executions
                    way(conn, i + 1)
                started = time.perf_counter()
                for i in range(requests):
                    way(conn, (i * 7919) % 100000 + 1)
                times[way.__name__].append((time.perf_counter() - started) / requests)
        prepared = conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0]
        conn.execute("DROP TABLE dba_tagging")
    base = statistics.median(times["plain"])
    print(f"{requests} requests x {rounds} rounds, median per request (prepared: {prepared})")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"  {name:24s} {median * 1e6:8.1f} us  x{median / base:.2f}")


if __name__ == "__main__":
    main(sys.argv[1])
