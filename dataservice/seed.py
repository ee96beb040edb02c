"""Fake users for demos and benchmarks, loaded with COPY (one stream, not N inserts).

Names are realistic and unique: a first and a last name from small lists plus a serial number.
Every seeded user has the same bcrypt hash (of "seeded password"), made once. Seeding writes no
change-feed events: it is bulk loading, not API traffic. bench/common.lua and the pgbench scripts
in bench/pgbench/ rebuild the same usernames: keep them in step with this file.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg.rows import tuple_row

# fmt: off
FIRST = ("ada", "alan", "anna", "bob", "carla", "chen", "dara", "emil", "fatima", "grace", "hugo",
         "ines", "jon", "kemal", "lena", "mario", "nadia", "olga", "pedro", "quinn", "rosa",
         "sami", "tara", "uma", "victor", "wen", "xavier", "yara", "zoe")
LAST = ("adams", "brown", "costa", "dubois", "evans", "fischer", "garcia", "hansen", "ivanov",
        "jensen", "kim", "lopez", "martin", "nguyen", "okafor", "petrov", "rossi", "silva",
        "tanaka", "weber")
# fmt: on
DOMAINS = ("example.com", "example.org", "example.net")
# bcrypt (cost 4) of "seeded password": valid for verify-credentials, cheap to check.
SEEDED_HASH = "$2b$04$OlPpVgLFaZFJB31QAVtesuUU1FzjOPosEmvpmG876eE7dOlILxKMW"
SEEDED_PASSWORD = "seeded password"  # noqa: S105 (public: demo data)


def seeded_username(i: int) -> str:
    """The username of the i-th seeded user (0-based), e.g. ada_adams0."""
    return f"{FIRST[i % len(FIRST)]}_{LAST[(i // len(FIRST)) % len(LAST)]}{i}"


def fake_users(count: int, *, start: int = 0, now: datetime | None = None) -> Iterator[tuple]:
    """(email, username, password_hash, created_at, updated_at) rows, oldest first, spread
    evenly over the year before `now`."""
    now = now or datetime.now(UTC)
    step = timedelta(days=365) / max(count, 1)
    first_at = now - timedelta(days=365)
    for i in range(start, start + count):
        first, last = FIRST[i % len(FIRST)], LAST[(i // len(FIRST)) % len(LAST)]
        created = first_at + step * (i - start)
        email = f"{first}.{last}.{i}@{DOMAINS[i % len(DOMAINS)]}"
        yield (email, f"{first}_{last}{i}", SEEDED_HASH, created, created)


def seed_users(
    conn: psycopg.Connection, count: int, *, start: int = 0, progress=None, chunk: int = 10_000
) -> int:
    """COPYs `count` fake users in the caller's transaction; calls progress(n) per chunk.
    Binary COPY: the client spends about a third of the CPU text costs; the server's time goes
    to the five indexes either way (about 35 s of one core per million users here)."""
    copied = 0
    with conn.cursor().copy(
        "COPY users (email, username, password_hash, created_at, updated_at)"
        " FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["text", "text", "text", "timestamptz", "timestamptz"])
        for row in fake_users(count, start=start):
            copy.write_row(row)
            copied += 1
            if progress and copied % chunk == 0:
                progress(chunk)
    if progress and copied % chunk:
        progress(copied % chunk)
    return copied


def fake_organizations(
    count: int, *, start: int = 0, now: datetime | None = None
) -> Iterator[tuple]:
    """(slug, name, created_at, updated_at) rows, oldest first, spread over the year before
    `now`; slugs `<last name>-<n>` are unique."""
    now = now or datetime.now(UTC)
    step = timedelta(days=365) / max(count, 1)
    first_at = now - timedelta(days=365)
    for i in range(start, start + count):
        created = first_at + step * (i - start)
        last = LAST[i % len(LAST)]
        yield (f"{last}-{i}", f"{last.title()} & Co {i}", created, created)


# Each seeded organization's members: an owner, an admin and three members, drawn from every
# user by a stride (the user numbered 1 + (id * 5 + k * 9973) % n in id order), so memberships
# spread over all users. A join on that number, not a subscript of an array of every id: the
# array (8 MB at a million users) was copied for each of the 500,000 rows, and the seed of
# `make bench`'s default size never finished.
_SEED_MEMBERSHIPS = """
WITH numbered AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM users),
     total AS (SELECT count(*) AS n FROM users)
INSERT INTO memberships (organization_id, user_id, role, created_at, updated_at)
SELECT o.id, numbered.id,
       CASE k WHEN 0 THEN 'owner' WHEN 1 THEN 'admin' ELSE 'member' END,
       o.created_at, o.created_at
  FROM organizations o
 CROSS JOIN generate_series(0, 4) AS k
 CROSS JOIN total
  JOIN numbered ON numbered.n = 1 + (o.id * 5 + k * 9973) %% total.n
 WHERE o.id > %s
    ON CONFLICT DO NOTHING
"""


def seed_organizations(conn: psycopg.Connection, count: int, *, start: int = 0) -> int:
    """COPYs `count` fake organizations, each with five members among the existing users, in
    the caller's transaction (which must commit them: an organization needs its owner by then).
    Writes no change-feed events, as seed_users does."""
    last = conn.cursor(row_factory=tuple_row).execute("SELECT max(id) FROM organizations")
    after = last.fetchone()[0] or 0
    with conn.cursor().copy(
        "COPY organizations (slug, name, created_at, updated_at) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["text", "text", "timestamptz", "timestamptz"])
        for row in fake_organizations(count, start=start):
            copy.write_row(row)
    conn.execute(_SEED_MEMBERSHIPS, (after,))
    return count
