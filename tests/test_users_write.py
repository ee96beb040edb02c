"""Changing users: PATCH, PUT password, DELETE, versions, ETags and conditional requests."""

import json
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
from argon2 import PasswordHasher

from .support import BCRYPT_HASH, new_user


@pytest.fixture
def user(client):
    response = client.post("/api/v1/users", json=new_user())
    assert response.headers["ETag"] == '"1"'
    return response.get_json()


def patch(client, user_id, body, content_type="application/merge-patch+json", **headers):
    return client.patch(
        f"/api/v1/users/{user_id}",
        data=json.dumps(body),
        content_type=content_type,
        headers=headers,
    )


def version_of(db, user_id):
    return db.execute("SELECT version FROM users WHERE id = %s", (user_id,)).fetchone()[0]


@pytest.mark.parametrize("content_type", ["application/merge-patch+json", "application/json"])
def test_patch_changes_fields_version_and_updated_at(client, db, user, content_type):
    response = patch(client, user["id"], {"username": "Renamed"}, content_type)
    assert response.status_code == 200
    changed = response.get_json()
    assert changed["username"] == "Renamed" and changed["email"] == user["email"]
    assert changed["updated_at"] > user["updated_at"]
    assert changed["created_at"] == user["created_at"]
    assert response.headers["ETag"] == '"2"'
    assert client.get(f"/api/v1/users/{user['id']}").get_json() == changed
    response = patch(client, user["id"], {"email": "new@example.com", "username": "again"})
    assert response.headers["ETag"] == '"3"' and version_of(db, user["id"]) == 3


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "_schema"),
        ({"email": None}, "email"),
        ({"username": None}, "username"),
        ({"username": "x"}, "username"),
        ({"email": "nope"}, "email"),
        ({"password": "long enough"}, "password"),
        ({"id": 7}, "id"),
        ({"version": 7}, "version"),
    ],
)
def test_invalid_patch_is_422_and_changes_nothing(client, db, user, body, field):
    response = patch(client, user["id"], body)
    assert response.status_code == 422
    assert field in response.get_json()["errors"]
    assert version_of(db, user["id"]) == 1


def test_patch_into_a_taken_name_is_409(client, db, user):
    client.post("/api/v1/users", json=new_user(2))
    response = patch(client, user["id"], {"username": "USER2"})
    assert response.status_code == 409
    assert response.get_json()["errors"] == {"username": ["Already taken (case-insensitive)."]}
    assert version_of(db, user["id"]) == 1


def test_patch_own_name_in_other_case_is_allowed(client, user):
    assert patch(client, user["id"], {"username": user["username"].upper()}).status_code == 200


def test_if_match_current_version_succeeds_stale_is_412(client, db, user):
    assert patch(client, user["id"], {"username": "one"}, **{"If-Match": '"1"'}).status_code == 200
    stale = patch(client, user["id"], {"username": "two"}, **{"If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.get_json()["type"] == "urn:dataservice:problem:precondition-failed"
    assert client.get(f"/api/v1/users/{user['id']}").get_json()["username"] == "one"
    # a list naming the current version matches, and so does *
    assert (
        patch(client, user["id"], {"username": "three"}, **{"If-Match": '"1", "2"'}).status_code
        == 200
    )
    assert patch(client, user["id"], {"username": "four"}, **{"If-Match": "*"}).status_code == 200


@pytest.mark.parametrize("if_match", ['W/"1"', '"abc"', '"99999999999999999999"', '""'])
def test_if_match_that_cannot_match_is_412(client, db, user, if_match):
    response = patch(client, user["id"], {"username": "x_y_z"}, **{"If-Match": if_match})
    assert response.status_code == 412
    assert version_of(db, user["id"]) == 1


def test_write_to_a_missing_user_is_404_even_with_if_match(client):
    assert patch(client, 999, {"username": "ghost"}, **{"If-Match": '"1"'}).status_code == 404
    assert client.delete("/api/v1/users/999").status_code == 404
    assert (
        client.put("/api/v1/users/999/password", json={"password": "long enough"}).status_code
        == 404
    )


def test_get_with_if_none_match(client, user):
    url = f"/api/v1/users/{user['id']}"
    not_modified = client.get(url, headers={"If-None-Match": '"1"'})
    assert not_modified.status_code == 304 and not_modified.data == b""
    assert not_modified.headers["ETag"] == '"1"'
    assert client.get(url, headers={"If-None-Match": 'W/"1"'}).status_code == 304
    assert client.get(url, headers={"If-None-Match": '"0", "1"'}).status_code == 304
    patch(client, user["id"], {"username": "changed"})
    changed = client.get(url, headers={"If-None-Match": '"1"'})
    assert changed.status_code == 200 and changed.headers["ETag"] == '"2"'
    for by in (f"by-username/{user['username']}", f"by-email/{user['email']}"):
        response = client.get(f"/api/v1/users/{by}", headers={"If-None-Match": '"1"'})
        assert response.status_code in (200, 404)
    by_name = client.get("/api/v1/users/by-username/changed", headers={"If-None-Match": '"2"'})
    assert by_name.status_code == 304


@pytest.mark.parametrize("n", [2, 12])
def test_concurrent_patches_with_one_if_match_give_one_200_the_rest_412(
    make_app, serve, user, db, n
):
    import urllib.error
    import urllib.request

    base = serve(make_app(DATABASE_POOL_MAX_SIZE=8, DATABASE_POOL_TIMEOUT=10.0))
    barrier = Barrier(n)

    def send(name):
        request = urllib.request.Request(
            f"{base}/api/v1/users/{user['id']}",
            method="PATCH",
            data=json.dumps({"username": name}).encode(),
            headers={"Content-Type": "application/merge-patch+json", "If-Match": '"1"'},
        )
        barrier.wait()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    with ThreadPoolExecutor(n) as pool:
        assert sorted(pool.map(send, [f"name{i}" for i in range(n)])) == [200] + [412] * (n - 1)
    assert db.execute("SELECT version FROM users").fetchone()[0] == 2


def test_delete_then_get_is_404(client, db, user):
    response = client.delete(f"/api/v1/users/{user['id']}")
    assert response.status_code == 204 and response.data == b""
    assert client.get(f"/api/v1/users/{user['id']}").status_code == 404
    assert client.delete(f"/api/v1/users/{user['id']}").status_code == 404


def test_delete_with_stale_if_match_is_412_and_keeps_the_user(client, user):
    patch(client, user["id"], {"username": "bumped"})
    response = client.delete(f"/api/v1/users/{user['id']}", headers={"If-Match": '"1"'})
    assert response.status_code == 412
    assert client.get(f"/api/v1/users/{user['id']}").status_code == 200
    assert (
        client.delete(f"/api/v1/users/{user['id']}", headers={"If-Match": '"2"'}).status_code == 204
    )


def test_put_password_hashes_with_argon2id_and_bumps_version(client, db, user):
    response = client.put(
        f"/api/v1/users/{user['id']}/password", json={"password": "a brand new secret"}
    )
    assert response.status_code == 204 and response.data == b""
    assert response.headers["ETag"] == '"2"'
    (stored,) = db.execute(
        "SELECT password_hash FROM users WHERE id = %s", (user["id"],)
    ).fetchone()
    assert PasswordHasher().verify(stored, "a brand new secret")
    after = client.get(f"/api/v1/users/{user['id']}").get_json()
    assert after["updated_at"] > user["updated_at"]


def test_put_password_accepts_a_hash_and_honours_if_match(client, db, user):
    url = f"/api/v1/users/{user['id']}/password"
    other = BCRYPT_HASH.replace("$2b$", "$2y$")
    stale = client.put(url, json={"hashed_password": other}, headers={"If-Match": '"7"'})
    assert stale.status_code == 412
    ok = client.put(url, json={"hashed_password": other}, headers={"If-Match": '"1"'})
    assert ok.status_code == 204
    assert db.execute("SELECT password_hash FROM users").fetchone()[0] == other


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"password": "short"},
        {"hashed_password": "plain"},
        {"password": "long enough", "hashed_password": BCRYPT_HASH},
        {"email": "a@b.io"},
    ],
)
def test_invalid_password_change_is_422(client, db, user, body):
    response = client.put(f"/api/v1/users/{user['id']}/password", json=body)
    assert response.status_code == 422
    assert version_of(db, user["id"]) == 1


def test_a_change_made_in_a_transaction_older_than_the_row_keeps_its_times_in_order(
    database_url, db
):
    # now() is when a transaction began: a batch that changes a user created after it began
    # must not give it an updated_at before its created_at (users_timestamps_check).
    import psycopg
    from psycopg.rows import dict_row

    from dataservice.queries import queries

    with psycopg.connect(database_url, row_factory=dict_row) as older:
        older.execute("SELECT now()")  # its transaction (and now()) starts here
        db.execute(
            "INSERT INTO users (email, username, password_hash) VALUES ('late@x.io', 'late', %s)",
            (BCRYPT_HASH,),
        )
        [user_id] = db.execute("SELECT id FROM users WHERE username = 'late'").fetchone()
        changed = queries.users.update_user(
            older,
            user_id=user_id,
            email=None,
            username="later",
            versions=None,
            actor=None,
            trace_id=None,
        )
        assert changed["updated_at"] >= changed["created_at"]
