"""What every resource does, run against each one (tests/resource_kit.py describes them): 404s,
conditional requests, keyset walks under concurrent writes, 409/422 mapping, scopes, events and
idempotent replays."""

import random
import threading

import pytest
from werkzeug.exceptions import HTTPException

from dataservice import auth

from .resource_kit import CASES

pytestmark = pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])


def events_of(db, entity):
    rows = db.execute("SELECT type FROM events WHERE entity = %s ORDER BY id", (entity,))
    return [event_type for (event_type,) in rows.fetchall()]


def test_a_missing_item_is_404_for_every_method(client, case):
    url = case.missing_url(client)
    method, _, body = case.change(client, case.make(client, 1))
    for response in (
        client.get(url),
        client.open(url, method=method, json=body),
        client.delete(url),
    ):
        assert response.status_code == 404, response.get_json()
        assert response.get_json()["type"] == "urn:dataservice:problem:not-found"


def test_if_none_match_is_304_until_it_changes(client, case):
    item = case.make(client, 1)
    first = client.get(item.url)
    assert first.status_code == 200 and first.get_json() == item.body
    etag = first.headers["ETag"]
    unchanged = client.get(item.url, headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.data == b""
    method, url, body = case.change(client, item)
    assert client.open(url, method=method, json=body).status_code == 200
    changed = client.get(item.url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag


def test_a_stale_if_match_is_412_and_changes_nothing(client, case):
    item = case.make(client, 1)
    etag = client.get(item.url).headers["ETag"]
    method, url, body = case.change(client, item)
    for attempt in (
        client.open(url, method=method, json=body, headers={"If-Match": '"999"'}),
        client.delete(item.url, headers={"If-Match": '"999"'}),
    ):
        assert attempt.status_code == 412
        assert attempt.get_json()["type"] == "urn:dataservice:problem:precondition-failed"
    assert client.get(item.url).get_json() == item.body
    changed = client.open(url, method=method, json=body, headers={"If-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert client.delete(item.url, headers={"If-Match": changed.headers["ETag"]}).status_code == 204
    assert client.get(item.url).status_code == 404


def walk(client, url) -> list[dict]:
    items, cursor = [], None
    while True:
        response = client.get(url + (f"&cursor={cursor}" if cursor else ""))
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def test_every_sort_walks_every_item_once_while_others_write(make_app, db, case):
    app = make_app(DATABASE_POOL_MAX_SIZE=6)
    client = app.test_client()
    list_url = case.seed(db, client, 120)
    doomed: list[dict] = []  # deleted while a walk goes on; the rest exist throughout
    stop = threading.Event()

    def churn():
        writer, rng, n = app.test_client(), random.Random(7), 0
        while not stop.is_set() and (doomed or n < 40):
            n += 1
            if case.grow:
                case.grow(writer, list_url, n)
            else:
                case.make(writer, 50_000 + n)
            if doomed:
                gone = doomed.pop(rng.randrange(len(doomed)))
                item_url = _item_url(list_url, case, gone)
                assert writer.delete(item_url).status_code == 204

    for sort in case.sorts:
        everything = walk(client, f"{list_url}?limit=500")
        assert len(everything) >= 120
        doomed[:] = [body for n, body in enumerate(everything) if n % 3 == 0]
        stable = {case.identity(body) for n, body in enumerate(everything) if n % 3}
        writer = threading.Thread(target=churn)
        writer.start()
        try:
            seen = walk(client, f"{list_url}?limit=7&sort={sort}")
        finally:
            stop.set()
            writer.join()
            stop.clear()
        ids = [case.identity(body) for body in seen]
        assert len(ids) == len(set(ids)), f"{sort}: an item was returned twice"
        assert stable <= set(ids), f"{sort}: an item that existed throughout was skipped"
        keys = [case.sort_key(body, sort) for body in seen]
        assert keys == sorted(keys, reverse=sort.startswith("-")), f"{sort}: out of order"


def _item_url(list_url, case, body):
    if case.name == "memberships":
        return f"{list_url}/{body['user_id']}"
    return f"{list_url}/{body['id']}"


def test_a_clash_is_409_naming_the_field(client, db, case):
    if case.conflict is None:
        pytest.skip(f"{case.name} has no write that can clash")
    item = case.make(client, 1)
    method, url, body, field = case.conflict(client, item)
    before = events_of(db, case.entity)
    response = client.open(url, method=method, json=body)
    assert response.status_code == 409, response.get_json()
    problem = response.get_json()
    if field is None:  # a rule across rows, not one field
        assert problem["type"] == "urn:dataservice:problem:last-owner"
    else:
        assert problem["type"] == "urn:dataservice:problem:conflict"
        assert list(problem["errors"]) == [field]
    assert events_of(db, case.entity) == before


def test_a_reference_to_nothing_names_the_field(client, db, case):
    if case.dangling is None:
        pytest.skip(f"{case.name} refers to nothing")
    method, url, body, status, field = case.dangling(client)
    before = events_of(db, case.entity)  # after the setup
    response = client.open(url, method=method, json=body)
    assert response.status_code == status, response.get_json()
    assert list(response.get_json()["errors"]) == [field]
    assert events_of(db, case.entity) == before


def _routes(app, item, list_url):
    """(method, URL, scope) of every endpoint that serves this resource's items and list."""
    targets = {}
    adapter = app.url_map.bind("")
    for url in (item.url, list_url):
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            try:
                endpoint, _ = adapter.match(url, method=method)
            except HTTPException:  # no such route: nothing to check
                continue
            targets[(method, url)] = app.view_functions[endpoint].required_scopes
    return targets


def test_each_endpoint_needs_its_scope(client, db, case):
    item = case.make(client, 1)
    routes = _routes(client.application, item, case.list_url(client))
    assert {scopes for scopes in routes.values()} <= {(case.read_scope,), (case.write_scope,)}
    for (method, url), (scope,) in routes.items():
        lacking = [s for s in auth.scopes(client.application) if s != scope]
        token = _client_with(db, f"without-{method}-{len(url)}", lacking)
        response = client.open(url, method=method, json={}, headers=_bearer(token))
        assert response.status_code == 403, (method, url, response.get_json())
        assert response.get_json()["missing_scopes"] == [scope]


def _client_with(db, name, scopes):
    token = auth.new_token()
    db.execute(
        "INSERT INTO api_clients (name, token_hash, scopes) VALUES (%s, %s, %s)",
        (name, auth.token_hash(token), scopes),
    )
    return token


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_every_write_records_its_event_with_the_item(client, db, case):
    item = case.make(client, 1)
    method, url, body = case.change(client, item)
    changed = client.open(url, method=method, json=body).get_json()
    assert client.delete(item.url).status_code == 204
    rows = db.execute(
        "SELECT type, data, actor FROM events WHERE entity = %s ORDER BY id", (case.entity,)
    ).fetchall()
    recorded = [(event_type, data) for event_type, data, _ in rows if data in (item.body, changed)]
    assert [event_type for event_type, _ in recorded] == [
        f"{case.entity}.{action}" for action in case.events
    ]
    assert recorded[-1][1] == changed  # a delete carries the item as it was
    assert {actor for _, _, actor in rows} == {"tests"}


def test_writes_with_an_idempotency_key_are_replayed(client, db, case):
    item = case.make(client, 1)
    method, url, body = case.change(client, item)
    for key, (write_method, write_url, write_body) in {
        "change": (method, url, body),
        "delete": ("DELETE", item.url, None),
    }.items():
        headers = {"Idempotency-Key": f"{case.name}-{key}"}
        first = client.open(write_url, method=write_method, json=write_body, headers=headers)
        again = client.open(write_url, method=write_method, json=write_body, headers=headers)
        assert first.status_code in (200, 204), first.get_json()
        assert again.status_code == first.status_code
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.get_data() == first.get_data()
    types = events_of(db, case.entity)
    assert types.count(f"{case.entity}.deleted") == 1
