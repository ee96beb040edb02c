"""Idempotency-Key: a retry replays the first response and never repeats the effect."""

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
from click.testing import CliRunner

from dataservice.cli import main

from .support import new_user


def post(client, body, key, path="/api/v1/users"):
    return client.post(path, json=body, headers={"Idempotency-Key": key})


def count(db, table="users"):
    return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_retry_replays_the_identical_response_and_creates_one_row(client, db):
    first = post(client, new_user(), "key-1")
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    again = post(client, new_user(), "key-1")
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_data() == first.get_data()
    for header in ("Location", "ETag", "Content-Type"):
        assert again.headers[header] == first.headers[header]
    assert count(db) == 1 and count(db, "events") == 1


def test_same_key_other_body_or_path_is_422(client, db):
    user = post(client, new_user(), "key-2").get_json()
    response = post(client, new_user(2), "key-2")
    assert response.status_code == 422
    assert response.get_json()["type"] == "urn:dataservice:problem:idempotency-key-reused"
    patched = client.patch(
        f"/api/v1/users/{user['id']}",
        json={"username": "other"},
        headers={"Idempotency-Key": "key-2"},
    )
    assert patched.status_code == 422
    assert count(db) == 1


def test_keys_are_independent(client, db):
    assert post(client, new_user(1), "a").status_code == 201
    assert post(client, new_user(2), "b").status_code == 201
    assert count(db) == 2


def test_failed_request_records_nothing_and_may_be_retried(client, db):
    client.post("/api/v1/users", json=new_user(1))
    clash = post(client, new_user(2, username="user1"), "key-3")
    assert clash.status_code == 409
    assert count(db, "idempotency_keys") == 0
    client.delete("/api/v1/users/1")
    assert post(client, new_user(2, username="user1"), "key-3").status_code == 201


def test_every_write_method_honours_the_key(client, db):
    user = post(client, new_user(), "create").get_json()
    url = f"/api/v1/users/{user['id']}"
    for _ in range(2):
        response = client.patch(
            url, json={"username": "renamed"}, headers={"Idempotency-Key": "patch"}
        )
        assert response.status_code == 200 and response.headers["ETag"] == '"2"'
        response = client.put(
            url + "/password", json={"password": "long enough!"}, headers={"Idempotency-Key": "put"}
        )
        assert response.status_code == 204 and response.headers["ETag"] == '"3"'
    assert db.execute("SELECT version FROM users").fetchone()[0] == 3
    for _ in range(2):
        assert client.delete(url, headers={"Idempotency-Key": "delete"}).status_code == 204
    assert count(db) == 0


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "tab\there", "é"])
def test_malformed_key_is_400(client, db, key):
    response = client.post(
        "/api/v1/users",
        json=new_user(),
        headers={"Idempotency-Key": key.encode().decode("latin-1")},
    )
    assert response.status_code == 400
    assert count(db) == 0


def test_expired_key_runs_again_and_prune_removes_it(client, db, database_url):
    post(client, new_user(1), "old")
    db.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
    assert post(client, new_user(2), "old").status_code == 201  # a new request, not a reuse
    db.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
    result = CliRunner().invoke(main, ["prune"], env={"DATABASE_URL": database_url})
    assert "pruned 1 idempotency record(s)" in result.output, result.output
    assert count(db, "idempotency_keys") == 0


def test_twenty_concurrent_requests_with_one_key_make_one_user(make_app, serve, db):
    base = serve(
        make_app(DATABASE_POOL_MIN_SIZE=4, DATABASE_POOL_MAX_SIZE=8, DATABASE_POOL_TIMEOUT=10.0)
    )
    barrier = Barrier(20)

    def send(_):
        request = urllib.request.Request(
            base + "/api/v1/users",
            data=json.dumps(new_user()).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "Idempotency-Key": "race"},
        )
        barrier.wait()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read(), response.headers.get("Idempotent-Replayed")
        except urllib.error.HTTPError as error:
            return error.code, error.read(), None

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(send, range(20)))
    assert {status for status, _, _ in results} == {201}
    assert len({body for _, body, _ in results}) == 1
    assert sum(replayed == "true" for _, _, replayed in results) == 19
    assert count(db) == 1 and count(db, "events") == 1
