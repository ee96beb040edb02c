"""verify-credentials: one answer for every failure, argon2id and bcrypt hashes, and rehashing."""

import bcrypt
import pytest
from argon2 import PasswordHasher, extract_parameters

from .support import FAST_HASHING

PASSWORD = "correct horse battery staple"


def verify(client, login, password):
    return client.post(
        "/api/v1/users/verify-credentials", json={"login": login, "password": password}
    )


@pytest.fixture
def ann(client):
    body = {"email": "Ann@Example.com", "username": "Ann", "password": PASSWORD}
    return client.post("/api/v1/users", json=body).get_json()


@pytest.mark.parametrize("login", ["Ann", "ann", "ANN", "ann@example.com", "ANN@EXAMPLE.COM"])
def test_good_password_by_username_or_email_returns_the_user(client, ann, login):
    response = verify(client, login, PASSWORD)
    assert response.status_code == 200
    assert response.get_json() == ann
    assert response.headers["ETag"] == '"1"'


def test_unknown_login_and_wrong_password_get_the_same_answer(client, ann):
    answers = [
        verify(client, "ann", "wrong password"),
        verify(client, "nobody", PASSWORD),
        verify(client, "nobody@example.com", PASSWORD),
    ]
    bodies = []
    for response in answers:
        assert response.status_code == 401
        assert response.mimetype == "application/problem+json"
        body = response.get_json()
        body.pop("request_id")
        # Server-Timing: the same phases, each with its own (varying) duration.
        timing = [p.split(";")[0] for p in response.headers["Server-Timing"].split(", ")]
        headers = {"X-Request-ID", "Server-Timing"}
        headers = sorted((k, v) for k, v in response.headers if k not in headers)
        bodies.append((body, headers, timing))
    assert bodies[0] == bodies[1] == bodies[2]
    assert bodies[0][0]["type"] == "urn:dataservice:problem:invalid-credentials"


def test_unknown_login_still_runs_a_hash_verification(app, monkeypatch):
    hasher = app.extensions["hasher"]
    calls = []
    real = hasher._verify_argon2
    monkeypatch.setattr(hasher, "_verify_argon2", lambda h, p: calls.append(h) or real(h, p))
    assert verify(app.test_client(), "nobody", PASSWORD).status_code == 401
    assert calls == [hasher._dummy_hash]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"login": "ann"},
        {"password": PASSWORD},
        {"login": "", "password": PASSWORD},
        {"login": "ann", "password": ""},
        {"login": "a\x00", "password": PASSWORD},
        {"login": "ann", "password": PASSWORD, "extra": 1},
    ],
)
def test_malformed_request_is_422(client, body):
    assert client.post("/api/v1/users/verify-credentials", json=body).status_code == 422


def test_bcrypt_hash_verifies_and_is_upgraded_to_argon2id(client, db):
    imported = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    body = {"email": "bo@example.com", "username": "bob", "hashed_password": imported}
    user = client.post("/api/v1/users", json=body).get_json()
    assert verify(client, "bob", "not it at all").status_code == 401
    assert db.execute("SELECT password_hash FROM users").fetchone()[0] == imported
    assert verify(client, "bob", PASSWORD).status_code == 200
    (stored, version) = db.execute("SELECT password_hash, version FROM users").fetchone()
    assert stored.startswith("$argon2id$") and PasswordHasher().verify(stored, PASSWORD)
    assert version == 1  # a rehash is not a change a client sees
    assert verify(client, "bob", PASSWORD).get_json() == user


def test_bcrypt_reads_only_72_bytes_as_its_maker_did(client):
    long_password = "x" * 80
    imported = bcrypt.hashpw(long_password.encode()[:72], bcrypt.gensalt(4)).decode()
    client.post(
        "/api/v1/users",
        json={"email": "l@example.com", "username": "long", "hashed_password": imported},
    )
    assert verify(client, "long", long_password).status_code == 200


def test_weaker_argon2_hash_is_rehashed_with_current_parameters(make_app, db):
    weak_client = make_app(**FAST_HASHING).test_client()
    weak_client.post(
        "/api/v1/users", json={"email": "w@example.com", "username": "weak", "password": PASSWORD}
    )
    (weak,) = db.execute("SELECT password_hash FROM users").fetchone()
    stronger = {"ARGON2_TIME_COST": 2, "ARGON2_MEMORY_COST_KIB": 2048, "ARGON2_PARALLELISM": 1}
    strong_client = make_app(**stronger).test_client()
    assert verify(strong_client, "weak", "wrong guess!").status_code == 401
    assert db.execute("SELECT password_hash FROM users").fetchone()[0] == weak  # only on success
    assert verify(strong_client, "weak", PASSWORD).status_code == 200
    (rehashed,) = db.execute("SELECT password_hash FROM users").fetchone()
    assert rehashed != weak
    params = extract_parameters(rehashed)
    assert (params.time_cost, params.memory_cost) == (2, 2048)
    assert verify(weak_client, "weak", PASSWORD).status_code == 200  # still the same password
