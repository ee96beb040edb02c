"""The users endpoints of the core service: every success and every error the issue names."""

import json

import pytest
from flask import url_for

from .support import BCRYPT_HASH, new_user

ARGON2ID_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA"
    "$J4moa2MM0/6uf3HbY2Tf5Fux8JIBTwIhmhxGRbsY14qhTltQt+Vw3b7tcJNEbk8ium8AQfZeD4tabCnNqfkD1g"
)
USER_FIELDS = {"id", "email", "username", "created_at", "updated_at"}


def test_create_returns_201_location_and_body(client):
    response = client.post("/api/v1/users", json=new_user(email="Bob@Example.io", username="Bob"))
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == USER_FIELDS
    assert body["email"] == "Bob@Example.io" and body["username"] == "Bob"  # stored as given
    assert response.headers["Location"] == f"/api/v1/users/{body['id']}"
    assert body["created_at"] == body["updated_at"]
    assert body["created_at"].endswith("+00:00")


def test_location_is_the_url_flask_builds_for_the_user_also_under_a_prefix(app, client):
    for script_name in ("", "/data"):
        response = client.post(
            "/api/v1/users",
            json=new_user(len(script_name)),
            environ_overrides={"SCRIPT_NAME": script_name},
        )
        assert response.status_code == 201
        with app.test_request_context(environ_overrides={"SCRIPT_NAME": script_name}):
            built = url_for("users.get_user", user_id=response.get_json()["id"])
        assert response.headers["Location"] == built
        assert built.startswith(f"{script_name}/api/v1/users/")


def test_create_with_trailing_slash_is_not_redirected(client):
    response = client.post("/api/v1/users/", json=new_user())
    assert response.status_code == 201


def test_get_by_id_returns_what_create_returned(client):
    created = client.post("/api/v1/users", json=new_user()).get_json()
    response = client.get(f"/api/v1/users/{created['id']}")
    assert response.status_code == 200
    assert response.get_json() == created


def test_get_by_username_is_case_insensitive(client):
    created = client.post("/api/v1/users", json=new_user(username="MiXeD.Case_1")).get_json()
    response = client.get("/api/v1/users/by-username/mixed.case_1")
    assert response.status_code == 200
    assert response.get_json() == created


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/users/424242",
        "/api/v1/users/abc",
        "/api/v1/users/-1",
        "/api/v1/users/0",
        "/api/v1/users/1.5",
        "/api/v1/users/9223372036854775808",  # bigint max + 1
        "/api/v1/users/99999999999999999999999",
        "/api/v1/users/%D9%A1",  # an Arabic-Indic digit one
        "/api/v1/users/by-username/nobody",
        "/api/v1/users/by-username/x",  # too short to exist
        "/api/v1/users/by-username/a%00b%00c",
    ],
)
def test_absent_or_impossible_user_is_404_problem(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_bigint_max_is_a_valid_id(client):
    assert client.get("/api/v1/users/9223372036854775807").status_code == 404
    # (the route matched and the database said no: a problem, not a routing error)
    assert (
        client.get("/api/v1/users/9223372036854775807").get_json()["detail"]
        == "no user with this id"
    )


@pytest.mark.parametrize(
    "field, first, second",
    [
        ("email", "Bob@x.io", "bob@X.io"),
        ("username", "Bobby", "bOBBY"),
    ],
)
def test_case_insensitive_clash_is_409_naming_the_field(client, field, first, second):
    assert client.post("/api/v1/users", json=new_user(1, **{field: first})).status_code == 201
    response = client.post("/api/v1/users", json=new_user(2, **{field: second}))
    assert response.status_code == 409
    problem = response.get_json()
    assert problem["errors"] == {field: ["Already taken (case-insensitive)."]}
    assert field in problem["detail"]


@pytest.mark.parametrize(
    "hashed", [BCRYPT_HASH, BCRYPT_HASH.replace("$2b$", "$2a$"), ARGON2ID_HASH]
)
def test_hashed_password_in_phc_form_is_stored_as_is(client, db, hashed):
    user = client.post("/api/v1/users", json=new_user(hashed_password=hashed)).get_json()
    stored = db.execute("SELECT password_hash FROM users WHERE id = %s", (user["id"],)).fetchone()
    assert stored[0] == hashed


@pytest.mark.parametrize(
    "body, fields",
    [
        ({"username": "bob", "password": "long enough"}, {"email"}),
        ({"email": "bob@x.io", "password": "long enough"}, {"username"}),
        ({"email": "bob@x.io", "username": "bob"}, {"password", "hashed_password"}),
        ({**new_user(), "password": "long enough"}, {"password", "hashed_password"}),
        ({**new_user(), "extra": 1}, {"extra"}),
        ({**new_user(), "id": 5}, {"id"}),
        (new_user(email="not-an-email"), {"email"}),
        (new_user(email="a@b"), {"email"}),
        (new_user(email=" bob@x.io"), {"email"}),
        (new_user(email="bob@x.io\n"), {"email"}),
        (new_user(email="a" * 244 + "@example.com"), {"email"}),  # 256 characters
        (new_user(email=5), {"email"}),
        (new_user(email=None), {"email"}),
        (new_user(email="b\x00b@x.io"), {"email"}),
        (new_user(username="ab"), {"username"}),
        (new_user(username="a" * 101), {"username"}),
        (new_user(username="with space"), {"username"}),
        (new_user(username="émile"), {"username"}),
        (new_user(username="bo\x00b"), {"username"}),
        (new_user(username=["bob"]), {"username"}),
        (new_user(username=True), {"username"}),
        ({"email": "bob@x.io", "username": "bob", "password": "short"}, {"password"}),
        ({"email": "bob@x.io", "username": "bob", "password": "x" * 1025}, {"password"}),
        ({"email": "bob@x.io", "username": "bob", "password": "nul\x00inside"}, {"password"}),
        ({"email": "bob@x.io", "username": "bob", "password": 12345678}, {"password"}),
        (new_user(hashed_password="plain text password"), {"hashed_password"}),
        (
            new_user(hashed_password="$argon2i$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$aGFzaGhhc2hoYXNo"),
            {"hashed_password"},
        ),
        (new_user(hashed_password="$2b$04$tooShort"), {"hashed_password"}),
        (new_user(hashed_password="$1$md5crypt$abcdefghijklmnopqrstuv"), {"hashed_password"}),
        (new_user(hashed_password=BCRYPT_HASH + "\n"), {"hashed_password"}),
    ],
)
def test_invalid_create_body_is_422_naming_the_fields(client, db, body, fields):
    response = client.post("/api/v1/users", json=body)
    assert response.status_code == 422
    problem = response.get_json()
    assert set(problem["errors"]) == fields
    assert db.execute("SELECT count(*) FROM users").fetchone()[0] == 0


@pytest.mark.parametrize("body", [[], "string", 5, None, [new_user()]])
def test_body_that_is_not_an_object_is_422(client, body):
    response = client.post("/api/v1/users", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"


def test_longest_valid_values_are_accepted(client):
    body = new_user(email="a" * 243 + "@example.com", username="u" * 100)
    response = client.post("/api/v1/users", json=body)
    assert response.status_code == 201
    assert response.get_json()["email"] == body["email"]
