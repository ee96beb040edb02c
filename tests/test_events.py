"""The outbox and the change feed: every committed change once, in commit-safe order."""

import json
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest
from click.testing import CliRunner
from marshmallow import fields
from psycopg.types.json import Jsonb

from dataservice.api import blueprints
from dataservice.api.resource import RESOURCES
from dataservice.cli import main
from dataservice.schemas.fields import UtcDateTime

from .support import new_user

blueprints()  # every resource declared

SECRET = "the plain password itself"


def feed(client, query="", expect: int | None = None):
    """A page of the feed. With `expect`, read again until it holds that many events: the feed
    rightly holds events back while any older transaction in the cluster is still running, and
    other test sessions may share the server."""
    deadline = time.monotonic() + 15
    while True:
        response = client.get(f"/api/v1/events?{query}")
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        if expect is None or len(page["items"]) >= expect or time.monotonic() > deadline:
            return page
        time.sleep(0.05)


def drain(client, cursor=None, query="limit=1000"):
    """Every event available now after `cursor`; returns (events, last cursor)."""
    events = []
    while True:
        page = feed(client, query + (f"&after={cursor}" if cursor else ""))
        events += page["items"]
        if not page["items"] or page["next_cursor"] == cursor:
            return events, page["next_cursor"]
        cursor = page["next_cursor"]


def test_every_write_appends_its_event(client, db):
    user = client.post("/api/v1/users", json=new_user()).get_json()
    url = f"/api/v1/users/{user['id']}"
    client.patch(url, json={"username": "renamed"})
    client.put(url + "/password", json={"password": SECRET})
    client.delete(url)
    events = feed(client, expect=4)["items"]
    assert [e["type"] for e in events] == [
        "user.created",
        "user.updated",
        "user.password_changed",
        "user.deleted",
    ]
    assert all(e["entity"] == "user" and e["entity_id"] == user["id"] for e in events)
    assert events[0]["data"] == user
    assert events[1]["data"]["username"] == "renamed"
    assert events[3]["data"]["username"] == "renamed"  # a delete carries the user as it was
    fields = {"id", "type", "entity", "entity_id", "occurred_at", "actor", "data", "trace_id"}
    assert set(events[0]) == fields
    assert {e["trace_id"] for e in events} == {None}  # no traceparent sent, tracing off
    (raw,) = db.execute("SELECT string_agg(data::text, ' ') FROM events").fetchone()
    assert SECRET not in raw and "$2b$" not in raw and "argon2" not in raw
    assert "password" not in raw


def test_a_failed_write_leaves_no_event(client, db):
    client.post("/api/v1/users", json=new_user(1))
    assert client.post("/api/v1/users", json=new_user(2, username="USER1")).status_code == 409
    assert client.patch("/api/v1/users/1", json={"email": "x"}).status_code == 422
    assert client.delete("/api/v1/users/1", headers={"If-Match": '"9"'}).status_code == 412
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 1


def test_pages_cursor_limit_and_types(client):
    for n in range(5):
        client.post("/api/v1/users", json=new_user(n))
    client.patch("/api/v1/users/2", json={"username": "two"})
    first = feed(client, "limit=2", expect=2)
    assert [e["entity_id"] for e in first["items"]] == [1, 2]
    rest = feed(client, f"after={first['next_cursor']}", expect=4)
    assert [e["type"] for e in rest["items"]] == ["user.created"] * 3 + ["user.updated"]
    empty = feed(client, f"after={rest['next_cursor']}")
    assert empty == {"items": [], "next_cursor": rest["next_cursor"]}
    updates = feed(client, "types=user.updated,user.deleted", expect=1)
    assert [e["type"] for e in updates["items"]] == ["user.updated"]


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=1001",
        "types=user.exploded",
        "wait=31",
        "wait=-1",
        "after=bogus",
        "since=1",
    ],
)
def test_bad_feed_parameters_are_4xx_problems(client, query):
    response = client.get(f"/api/v1/events?{query}")
    assert response.status_code in (400, 422)
    assert response.mimetype == "application/problem+json"


def insert_event(conn, entity_id):
    conn.execute(
        "INSERT INTO events (type, entity, entity_id, data) "
        "VALUES ('user.created', 'user', %s, %s)",
        (entity_id, Jsonb({})),
    )


def test_transactions_committing_in_reverse_order_are_each_delivered_once(client, database_url):
    with psycopg.connect(database_url) as early, psycopg.connect(database_url) as late:
        insert_event(early, 1)  # begins first, gets the lower id and xid
        insert_event(late, 2)
        late.commit()  # ...but commits last-begun first
        seen, cursor = drain(client)
        assert seen == []  # 2 is held back: 1 could still commit behind it
        early.commit()
    # Any other transaction still running in the cluster holds the feed back too: wait for it.
    seen, deadline = [], time.monotonic() + 15
    while len(seen) < 2 and time.monotonic() < deadline:
        more, cursor = drain(client, cursor)
        seen += more
        time.sleep(0.05)
    assert [e["entity_id"] for e in seen] == [1, 2]
    assert drain(client, cursor)[0] == []


def test_long_poll_wakes_within_a_second_of_a_commit(make_app, serve):
    app = make_app()
    base = serve(app)
    cursor = feed(app.test_client())["next_cursor"]
    result = {}

    def poll():
        started = time.monotonic()
        with urllib.request.urlopen(
            f"{base}/api/v1/events?wait=10&after={cursor}", timeout=20
        ) as response:
            result["body"] = json.load(response)
        result["answered"] = time.monotonic()
        result["started"] = started

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(1.0)  # the poller is waiting now
    assert "body" not in result
    app.test_client().post("/api/v1/users", json=new_user())
    committed = time.monotonic()
    poller.join(15)
    assert [e["type"] for e in result["body"]["items"]] == ["user.created"]
    # Answered at once, not at the end of its 10-s wait (the margin is for a loaded machine:
    # 1.01 s was seen with other suites running beside it).
    assert result["answered"] - committed < 2.0


@pytest.fixture
def listener(database_url):
    """A session LISTENing on the feed's channel, as every worker's listener does."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("LISTEN dataservice_events")
        yield conn


def notifications(conn, seconds: float) -> int:
    return sum(1 for _ in conn.notifies(timeout=seconds))


WRITES = {
    "create": ("POST", "/api/v1/users", new_user(2)),
    "update": ("PATCH", "/api/v1/users/{id}", {"username": "renamed"}),
    "delete": ("DELETE", "/api/v1/users/{id}", None),
    "batch": (
        "POST",
        "/api/v1/batch",
        {"operations": [{"method": "POST", "path": "/api/v1/users", "body": new_user(3)}]},
    ),
}


@pytest.mark.parametrize("write", WRITES)
def test_a_committed_write_is_announced_after_its_commit(client, listener, write):
    user_id = client.post("/api/v1/users", json=new_user()).get_json()["id"]
    notifications(listener, 0.3)  # that create's own announcement
    method, path, body = WRITES[write]
    response = client.open(path.format(id=user_id), method=method, json=body)
    assert response.status_code in (200, 201, 204), response.get_json()
    notice = next(listener.notifies(timeout=2.0), None)
    assert notice is not None and notice.channel == "dataservice_events"
    # Announced after the commit: the listener's session already sees the change.
    count = listener.execute("SELECT count(*) FROM events").fetchone()[0]
    assert count == 2


def test_a_failed_write_is_not_announced(client, listener):
    client.post("/api/v1/users", json=new_user())
    notifications(listener, 0.3)
    assert client.post("/api/v1/users", json=new_user()).status_code == 409
    assert notifications(listener, 0.3) == 0


def test_announcements_made_together_become_one_notify(app, listener):
    notifier = app.extensions["notifier"]
    for _ in range(50):
        notifier.announce()
    # The first may go out alone; the other 49 arrive while it is sent or within the interval.
    assert 1 <= notifications(listener, 0.5) <= 2


def test_writes_commit_without_notifying(db):
    """NOTIFY inside a write's transaction would make every write commit under one
    database-wide lock (migration 0008): the events table has no trigger any more."""
    triggers = db.execute(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = 'events'::regclass AND NOT tgisinternal"
    ).fetchall()
    assert triggers == []


def test_long_poll_without_news_ends_after_the_wait(client):
    started = time.monotonic()
    page = feed(client, "wait=1")
    assert page["items"] == [] and 0.9 < time.monotonic() - started < 3


def test_consumer_beside_four_writers_sees_every_event_exactly_once(make_app, serve, db):
    app = make_app(DATABASE_POOL_MAX_SIZE=8)
    stop = threading.Event()

    def write(worker):
        client = app.test_client()
        n = 0
        while not stop.is_set() and n < 40:
            n += 1
            client.post("/api/v1/users", json=new_user(1000 * worker + n))

    seen = []
    cursor = None
    with ThreadPoolExecutor(4) as writers:
        futures = [writers.submit(write, w) for w in range(4)]
        consumer = app.test_client()
        while not all(f.done() for f in futures):
            page = feed(consumer, "limit=7" + (f"&after={cursor}" if cursor else ""))
            seen += [e["id"] for e in page["items"]]
            cursor = page["next_cursor"]
    all_ids = [row[0] for row in db.execute("SELECT id FROM events ORDER BY id").fetchall()]
    # The feed holds back events while any older transaction in the cluster is still running
    # (other tests' included): keep reading until everything is through, or give up.
    deadline = time.monotonic() + 15
    while len(seen) < len(all_ids) and time.monotonic() < deadline:
        rest, cursor = drain(app.test_client(), cursor)
        seen += [e["id"] for e in rest]
        time.sleep(0.1)
    assert len(all_ids) == 160
    assert len(seen) == len(set(seen)) and sorted(seen) == all_ids


def test_prune_removes_events_past_the_retention(client, db, database_url):
    client.post("/api/v1/users", json=new_user(1))
    client.post("/api/v1/users", json=new_user(2))
    db.execute("UPDATE events SET occurred_at = now() - interval '8 days' WHERE entity_id = 1")
    result = CliRunner().invoke(main, ["prune"], env={"DATABASE_URL": database_url})
    assert "1 event(s)" in result.output, result.output
    assert [e["entity_id"] for e in feed(client, expect=1)["items"]] == [2]


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "America/St_Johns", "Africa/Monrovia"])
def test_timestamps_built_in_sql_read_as_the_api_writes_them(db, zone):
    # The create's event JSON is built in SQL (sql/users.sql, api_timestamp of migration 0007);
    # it must match UtcDateTime byte for byte, whatever the session's time zone.
    field = UtcDateTime()
    db.execute("SELECT set_config('TimeZone', %s, false)", (zone,))
    for moment in [
        datetime(2026, 12, 1, 13, 5, 9, 120000, tzinfo=UTC),
        datetime(2026, 12, 1, 13, 5, 9, tzinfo=UTC),  # no microseconds: isoformat omits them
        datetime(2026, 12, 1, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1871, 3, 4, 0, 0, 1, 1, tzinfo=UTC),  # before zones were whole minutes
        datetime(2024, 2, 29, 5, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    ]:
        [text] = db.execute("SELECT api_timestamp(%s)", (moment,)).fetchone()
        assert text == field._serialize(moment, "created_at", None)


SAMPLES = {  # a value of each kind of field an `out` schema has, for the SQL side's arguments
    fields.Integer: 7,
    fields.String: "Ada@Example.com",
    UtcDateTime: datetime(2026, 12, 1, 13, 5, 9, 120000, tzinfo=UTC),
}


@pytest.mark.parametrize("name", list(RESOURCES))
def test_every_resource_built_in_sql_reads_as_the_api_writes_it(db, name):
    # Each write records its event in its own statement, its data built by api_<thing>
    # (migrations 0007, 0019), which takes the `out` schema's fields in order: it must be the
    # same document as the API's, field for field, timestamps byte for byte.
    resource = RESOURCES[name]
    declared = resource.out_schema._declared_fields
    row = {field: SAMPLES[type(kind)] for field, kind in declared.items()}
    row["updated_at"] = datetime(2026, 12, 1, 13, 5, 10, tzinfo=UTC)  # no microseconds
    arguments = ", ".join(f"%({field})s" for field in declared)
    [data] = db.execute(f"SELECT api_{resource.thing}({arguments})", row).fetchone()
    assert data == resource.out_schema().dump(row)


@pytest.mark.parametrize("name", list(RESOURCES))
def test_the_json_functions_are_inlined(db, name):
    # A call PostgreSQL cannot inline costs microseconds per row: a batch of 1,000 creates
    # spent ~10 ms of its statement in api_user calls (migration 0009). Inlined, the plan shows
    # the function's body instead of the call; NULLs still give NULLs.
    resource = RESOURCES[name]
    declared = resource.out_schema._declared_fields
    arguments = ", ".join(
        "now()" if isinstance(kind, UtcDateTime) else "NULL" for kind in declared.values()
    )
    call = f"api_{resource.thing}({arguments})"
    plan = db.execute(f"EXPLAIN (VERBOSE) SELECT {call}, api_timestamp(now())").fetchall()
    output = " ".join(line for [line] in plan)
    assert "jsonb_build_object" in output and "to_char" in output
    assert f"api_{resource.thing}(" not in output and "api_timestamp(" not in output
    nulls = ", ".join("NULL" for _ in declared)
    assert db.execute(f"SELECT api_timestamp(NULL), api_{resource.thing}({nulls})").fetchone() == (
        None,
        dict.fromkeys(declared),
    )
