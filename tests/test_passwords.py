"""Passwords: hashed with argon2id by the service, never returned, never logged."""

import json
import logging

from argon2 import PasswordHasher, extract_parameters

from dataservice.app import create_app

from .support import BCRYPT_HASH, new_user

PASSWORD = "a long and secret passphrase"


def test_plain_password_is_stored_as_argon2id_that_verifies(client, db):
    body = {"email": "ann@example.com", "username": "ann", "password": PASSWORD}
    user = client.post("/api/v1/users", json=body).get_json()
    (stored,) = db.execute(
        "SELECT password_hash FROM users WHERE id = %s", (user["id"],)
    ).fetchone()
    assert stored.startswith("$argon2id$")
    assert PasswordHasher().verify(stored, PASSWORD)


def test_default_argon2_parameters_meet_owasp(database_url):
    app = create_app({"DATABASE_URL": database_url})
    params = extract_parameters(app.extensions["hasher"].hash(PASSWORD))
    # OWASP: argon2id with at least m=19 MiB, t=2, p=1 (or an equivalent trade-off).
    assert params.type.name == "ID"
    assert params.memory_cost >= 19 * 1024 and params.time_cost >= 2


def test_no_response_carries_the_password_or_its_hash(client, db, caplog):
    caplog.set_level(logging.DEBUG)
    responses = [
        client.post(
            "/api/v1/users",
            json={"email": "ann@example.com", "username": "ann", "password": PASSWORD},
        ),
        client.post("/api/v1/users", json=new_user(2)),
    ]
    responses.append(client.get(f"/api/v1/users/{responses[0].get_json()['id']}"))
    responses.append(client.get("/api/v1/users/by-username/user2"))
    # failures too: a clash and a validation error echo nothing secret
    responses.append(
        client.post(
            "/api/v1/users",
            json={"email": "ann@example.com", "username": "ann2", "password": PASSWORD},
        )
    )
    responses.append(
        client.post("/api/v1/users", json={"email": "x", "username": "ann3", "password": PASSWORD})
    )
    hashes = [h for (h,) in db.execute("SELECT password_hash FROM users").fetchall()]
    assert len(hashes) == 2
    for response in responses:
        text = response.get_data(as_text=True) + json.dumps(dict(response.headers))
        for secret in (PASSWORD, BCRYPT_HASH, *hashes):
            assert secret not in text
            assert secret not in caplog.text
        body = response.get_json()
        assert "password" not in body and "hashed_password" not in body
