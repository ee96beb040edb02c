"""Listing users: keyset pagination, filters, sorts, opaque cursors, count=exact."""

import random
import threading
from datetime import UTC, datetime, timedelta

import pytest

from dataservice.api import cursors

from .support import BCRYPT_HASH, new_user


def seed(db, n: int, *, start: datetime | None = None, names=None):
    """n users straight into the table, one second apart in created_at (fast: one COPY)."""
    start = start or datetime(2024, 1, 1, tzinfo=UTC)
    names = names or [f"user{i:05d}" for i in range(n)]
    with db.cursor().copy(
        "COPY users (email, username, password_hash, created_at, updated_at) FROM STDIN"
    ) as copy:
        for i, name in enumerate(names):
            at = start + timedelta(seconds=i)
            copy.write_row((f"{name}@example.com", name, BCRYPT_HASH, at, at))


def walk(client, query: str) -> list[dict]:
    items, cursor = [], None
    while True:
        url = f"/api/v1/users?{query}" + (f"&cursor={cursor}" if cursor else "")
        response = client.get(url)
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def test_first_page_defaults(client, db):
    seed(db, 60)
    page = client.get("/api/v1/users").get_json()
    assert len(page["items"]) == 50
    assert [u["id"] for u in page["items"]] == sorted(u["id"] for u in page["items"])
    assert set(page["items"][0]) == {"id", "email", "username", "created_at", "updated_at"}
    assert page["next_cursor"] and "total" not in page


def test_last_page_has_no_cursor(client, db):
    seed(db, 3)
    page = client.get("/api/v1/users?limit=3").get_json()
    assert len(page["items"]) == 3 and page["next_cursor"] is None
    assert client.get("/api/v1/users").get_json() == {"items": page["items"], "next_cursor": None}


def test_empty_table(client):
    assert client.get("/api/v1/users?count=exact").get_json() == {
        "items": [],
        "next_cursor": None,
        "total": 0,
    }


@pytest.mark.parametrize(
    "sort, key, reverse",
    [
        ("id", lambda u: u["id"], False),
        ("-id", lambda u: u["id"], True),
        ("created_at", lambda u: (u["created_at"], u["id"]), False),
        ("-created_at", lambda u: (u["created_at"], u["id"]), True),
    ],
)
def test_every_sort_walks_every_user_once_in_order(client, db, sort, key, reverse):
    seed(db, 45)
    # Two users with the same created_at: the id breaks the tie.
    db.execute(
        "UPDATE users SET created_at = '2024-01-01T00:00:10Z', updated_at = now() "
        "WHERE username IN ('user00020', 'user00030')"
    )
    items = walk(client, f"limit=7&sort={sort}")
    assert len(items) == 45 and len({u["id"] for u in items}) == 45
    assert items == sorted(items, key=key, reverse=reverse)


def test_filters(client, db):
    seed(db, 30, names=[f"alpha_{i:02d}" for i in range(10)] + [f"beta{i:02d}" for i in range(20)])
    start = datetime(2024, 1, 1, tzinfo=UTC)

    def usernames(query):
        return [u["username"] for u in walk(client, query)]

    assert usernames("email=ALPHA_03@example.com") == ["alpha_03"]
    assert usernames("username=Beta07") == ["beta07"]
    assert usernames("username_prefix=ALPHA_0&limit=3") == [f"alpha_0{i}" for i in range(10)]
    assert usernames("username_prefix=alpha_") == [f"alpha_{i:02d}" for i in range(10)]
    # '_' is literal in a prefix, not LIKE's any-character wildcard
    assert usernames("username_prefix=alpha0") == []
    after = (start + timedelta(seconds=25)).isoformat()
    before = (start + timedelta(seconds=28)).isoformat()
    assert usernames(f"created_after={after}&created_before={before}".replace("+", "%2B")) == [
        "beta16",
        "beta17",
    ]
    total = client.get("/api/v1/users?username_prefix=beta&count=exact&limit=1").get_json()
    assert total["total"] == 20 and len(total["items"]) == 1


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=501",
        "limit=abc",
        "limit=1.5",
        "sort=email",
        "sort=",
        "created_after=2024-01-01",
        "created_after=yesterday",
        "count=estimated",
        "username_prefix=with%20space",
        "email=not-an-email",
        "username=a%00b",
        "unknown=1",
    ],
)
def test_bad_query_parameters_are_422(client, query):
    response = client.get(f"/api/v1/users?{query}")
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"


def test_limit_bounds_are_inclusive(client, db):
    seed(db, 3)
    assert len(client.get("/api/v1/users?limit=1").get_json()["items"]) == 1
    assert client.get("/api/v1/users?limit=500").status_code == 200


def first_cursor(client, query="limit=2"):
    return client.get(f"/api/v1/users?{query}").get_json()["next_cursor"]


@pytest.mark.parametrize(
    "alter",
    [
        lambda c: c[:-1],
        lambda c: c + "A",
        lambda c: c[:10] + ("B" if c[10] != "B" else "C") + c[11:],
        lambda c: c + "!",
        lambda c: c + "==",
        lambda c: "!" + c,
        lambda c: "",
        lambda c: "not a cursor",
        lambda c: "%00",
    ],
)
def test_tampered_cursor_is_400(client, db, alter):
    seed(db, 5)
    response = client.get(f"/api/v1/users?limit=2&cursor={alter(first_cursor(client))}")
    assert response.status_code in (400, 422)  # 422 only where the cursor is not even a string
    assert response.mimetype == "application/problem+json"
    if response.status_code == 400:
        assert response.get_json()["type"] == "urn:dataservice:problem:invalid-cursor"


@pytest.mark.parametrize("other", ["sort=-id", "username_prefix=user", "email=a@b.io"])
def test_cursor_used_with_other_sort_or_filters_is_400(client, db, other):
    seed(db, 5)
    cursor = first_cursor(client)
    response = client.get(f"/api/v1/users?limit=2&{other}&cursor={cursor}")
    assert response.status_code == 400
    assert "different sort" in response.get_json()["detail"]


def test_cursor_survives_a_change_of_limit(client, db):
    seed(db, 5)
    response = client.get(f"/api/v1/users?limit=3&cursor={first_cursor(client)}")
    assert [u["username"] for u in response.get_json()["items"]] == [
        "user00002",
        "user00003",
        "user00004",
    ]


def test_cursor_round_trip_and_checksum():
    fp = cursors.fingerprint({"sort": "id"})
    token = cursors.encode([2**62, "x"], fp)
    assert cursors.decode(token, fp) == [2**62, "x"]
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_walk_under_concurrent_inserts_and_deletes_loses_and_repeats_no_stable_user(make_app, db):
    seed(db, 1000)
    stable = {
        row[0] for row in db.execute("SELECT id FROM users WHERE id % 3 <> 0").fetchall()
    }  # never deleted during the walk
    doomed = [row[0] for row in db.execute("SELECT id FROM users WHERE id % 3 = 0").fetchall()]
    app = make_app(DATABASE_POOL_MAX_SIZE=6)
    client = app.test_client()
    stop = threading.Event()

    def churn(worker: int):
        churn_client = app.test_client()
        rng = random.Random(worker)
        n = 0
        while not stop.is_set():
            n += 1
            churn_client.post("/api/v1/users", json=new_user(100_000 * worker + n))
            if doomed:
                churn_client.delete(f"/api/v1/users/{doomed.pop(rng.randrange(len(doomed)))}")

    workers = [threading.Thread(target=churn, args=(w,)) for w in (1, 2)]
    for worker in workers:
        worker.start()
    try:
        for sort in ("id", "-created_at"):
            seen = [u["id"] for u in walk(client, f"limit=7&sort={sort}")]
            assert len(seen) == len(set(seen)), f"{sort}: a user was returned twice"
            assert stable <= set(seen), f"{sort}: a user that existed throughout was skipped"
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    created = db.execute("SELECT count(*) FROM users WHERE id > 1000").fetchone()[0]
    assert created > 0  # the churn really ran during the walk
