"""Atomic batches: every operation under its single-endpoint rules, all committed or none."""

import pytest

from dataservice.schemas.batch import BatchRequest, Operation, loads_unchanged

from .support import new_user


def create_op(n, **fields):
    return {"method": "POST", "path": "/api/v1/users", "body": new_user(n, **fields)}


def batch(client, operations, **headers):
    return client.post("/api/v1/batch", json={"operations": operations}, headers=headers)


def count(db, table):
    return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_mixed_batch_commits_everything_and_returns_each_result(client, db):
    client.post("/api/v1/users", json=new_user(0))
    response = batch(
        client,
        [
            create_op(1),
            {
                "method": "PATCH",
                "path": "/api/v1/users/1",
                "body": {"username": "zero"},
                "headers": {"If-Match": '"1"'},
            },
            {
                "method": "PUT",
                "path": "/api/v1/users/1/password",
                "body": {"password": "long enough"},
            },
            {"method": "DELETE", "path": "/api/v1/users/2"},
        ],
    )
    assert response.status_code == 200, response.get_json()
    results = response.get_json()["results"]
    assert [r["status"] for r in results] == [201, 200, 204, 204]
    assert results[0]["body"]["username"] == "user1"
    assert results[1]["body"]["username"] == "zero"
    assert results[2]["body"] is None
    assert count(db, "users") == 1
    assert [t for (t,) in db.execute("SELECT type FROM events ORDER BY id").fetchall()] == [
        "user.created",
        "user.created",
        "user.updated",
        "user.password_changed",
        "user.deleted",
    ]


def test_a_failure_at_operation_500_leaves_no_row_and_no_event(client, db):
    operations = [create_op(n) for n in range(1000)]
    operations[499] = create_op(499, username="USER3")  # clashes with operation 3
    response = batch(client, operations)
    assert response.status_code == 409
    problem = response.get_json()
    assert problem["index"] == 499
    assert problem["request_id"] == response.headers["X-Request-ID"]  # the batch's own id
    assert problem["errors"] == {"username": ["Already taken (case-insensitive)."]}
    assert problem["type"] == "urn:dataservice:problem:conflict"
    assert response.mimetype == "application/problem+json"
    assert count(db, "users") == 0 and count(db, "events") == 0


def test_an_invalid_operation_fails_the_batch_with_its_status_and_index(client, db):
    response = batch(client, [create_op(1), create_op(2, email="nope")])
    assert response.status_code == 422
    assert response.get_json()["index"] == 1 and "email" in response.get_json()["errors"]
    user = client.post("/api/v1/users", json=new_user(9)).get_json()
    delete = {"method": "DELETE", "path": f"/api/v1/users/{user['id']}"}
    stale = batch(client, [create_op(1), {**delete, "headers": {"If-Match": '"5"'}}])
    assert stale.status_code == 412 and stale.get_json()["index"] == 1
    missing = batch(client, [{"method": "DELETE", "path": "/api/v1/users/77"}])
    assert missing.status_code == 404 and missing.get_json()["index"] == 0
    assert count(db, "users") == 1


def test_a_batch_of_a_thousand_creates_commits(client, db):
    response = batch(client, [create_op(n) for n in range(1000)])
    assert response.status_code == 200
    assert count(db, "users") == 1000 and count(db, "events") == 1000
    # One statement wrote the users and their events (JSON built in SQL): each event carries
    # its user as the API showed it, in the batch's order, with the caller as the actor.
    bodies = [result["body"] for result in response.get_json()["results"]]
    events = db.execute("SELECT entity_id, actor, data FROM events ORDER BY id").fetchall()
    assert [data for _, _, data in events] == bodies
    assert [entity_id for entity_id, _, _ in events] == [body["id"] for body in bodies]
    assert {actor for _, actor, _ in events} == {"tests"}


@pytest.mark.parametrize(
    "operations",
    [
        [],
        [create_op(n) for n in range(1001)],
        [{"method": "GET", "path": "/api/v1/users/1"}],
        [{"method": "POST", "path": "/health"}],
        [{"method": "POST", "path": "/api/v1/batch", "body": {"operations": []}}],
        [
            {
                "method": "POST",
                "path": "/api/v1/users",
                "body": new_user(),
                "headers": {"Idempotency-Key": "nested"},
            }
        ],
        [{"method": "POST"}],
        [{"method": "POST", "path": "/api/v1/users", "extra": 1}],
        ["not an object"],
        [create_op(1), {"method": "POST", "path": "/api/v1/users", "body": {}, "extra": 1}],
        [create_op(1), "not an object", create_op(2)],
    ],
)
def test_malformed_batch_is_422(client, db, operations):
    response = batch(client, operations)
    assert response.status_code == 422
    assert count(db, "users") == 0


def test_a_malformed_operation_among_plain_creates_is_named_by_its_index(client):
    response = batch(client, [create_op(1), create_op(2), {"method": "GET", "path": "/x"}])
    assert response.status_code == 422
    errors = response.get_json()["errors"]["operations"]
    assert set(errors) == {"2"} and set(errors["2"]) == {"method", "path"}


@pytest.mark.parametrize(
    "body", [new_user(), {}, None, [], "text", {"email": 1, "extra": {"deep": [1]}}]
)
def test_plain_creates_load_as_the_operation_schema_loads_them(body):
    # Operations skips the per-item load when every item is a plain create: only sound while
    # Operation returns such an item unchanged, which this holds.
    operations = [{"method": "POST", "path": "/api/v1/users", "body": body}] * 2
    loaded = BatchRequest().load({"operations": operations})["operations"]
    assert all(loads_unchanged(operation) for operation in operations)
    assert loaded == Operation(many=True).load(operations) == operations
    assert loaded[0] is not operations[0]  # copies, as a load makes


def test_batch_with_an_idempotency_key_is_replayed(client, db):
    first = batch(client, [create_op(1), create_op(2)], **{"Idempotency-Key": "batch-1"})
    again = batch(client, [create_op(1), create_op(2)], **{"Idempotency-Key": "batch-1"})
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_data() == first.get_data()
    assert count(db, "users") == 2


def test_operation_on_an_unknown_path_is_404_with_index(client):
    response = batch(client, [{"method": "POST", "path": "/api/v1/nothing", "body": {}}])
    assert response.status_code == 404 and response.get_json()["index"] == 0


def test_references_create_a_user_an_organization_they_own_and_two_more_members(client, db):
    response = batch(
        client,
        [
            create_op(1),
            {
                "method": "POST",
                "path": "/api/v1/organizations",
                "body": {"slug": "made-in-one", "name": "One", "owner_id": {"$ref": "/0/body/id"}},
            },
            create_op(2),
            create_op(3),
            {
                "method": "PUT",
                "path": "/api/v1/organizations/${/1/body/id}/members/${/2/body/id}",
                "body": {"role": "admin"},
            },
            {
                "method": "PUT",
                "path": "/api/v1/organizations/${/1/body/id}/members/${/3/body/id}",
                "body": {"role": {"$ref": "/4/body/role"}},
            },
        ],
    )
    assert response.status_code == 200, response.get_json()
    results = response.get_json()["results"]
    assert [r["status"] for r in results] == [201, 201, 201, 201, 201, 201]
    users = [results[n]["body"]["id"] for n in (0, 2, 3)]
    organization_id = results[1]["body"]["id"]
    members = db.execute(
        "SELECT user_id, role FROM memberships WHERE organization_id = %s ORDER BY user_id",
        (organization_id,),
    ).fetchall()
    assert members == [(users[0], "owner"), (users[1], "admin"), (users[2], "admin")]


@pytest.mark.parametrize(
    "operation, detail",
    [
        ({"method": "DELETE", "path": "/api/v1/users/${/3/body/id}"}, "runs after it"),
        ({"method": "DELETE", "path": "/api/v1/users/${/2/body/id}"}, "runs after it"),  # itself
        ({"method": "DELETE", "path": "/api/v1/users/${/0/body/nothing}"}, "no 'nothing'"),
        ({"method": "DELETE", "path": "/api/v1/users/${/0/body}"}, "not for a path"),
        ({"method": "DELETE", "path": "/api/v1/users/${0/body/id}"}, "not a pointer"),
        ({"method": "DELETE", "path": "/api/v1/users/${/x/body/id}"}, "not a pointer"),
        ({"method": "DELETE", "path": "/api/v1/users/${/01/body/id}"}, "not a pointer"),
        ({"method": "DELETE", "path": "/api/v1/${/0/body/username}"}, "not one a batch"),
        (
            {"method": "POST", "path": "/api/v1/organizations", "body": {"$ref": "/5"}},
            "runs after it",
        ),
        (
            {
                "method": "PATCH",
                "path": "/api/v1/users/1",
                "body": {"username": {"$ref": "/0/status/x"}},
            },
            "no 'x'",
        ),
    ],
)
def test_a_bad_reference_is_422_with_its_index_and_nothing_commits(client, db, operation, detail):
    operations = [create_op(1, username="batch"), create_op(2), operation, create_op(3)]
    response = batch(client, operations)
    assert response.status_code == 422, response.get_json()
    problem = response.get_json()
    assert problem["type"] == "urn:dataservice:problem:invalid-reference"
    assert problem["index"] == 2 and detail in problem["detail"]
    assert count(db, "users") == 0 and count(db, "events") == 0


def test_references_reach_into_lists_and_escaped_members(client, db):
    response = batch(
        client,
        [
            create_op(1),
            {
                "method": "PATCH",
                "path": "/api/v1/users/${/0/body/id}",
                "body": {"username": "renamed"},
            },
            {"method": "DELETE", "path": "/api/v1/users/${/1/body/id}"},
        ],
    )
    assert response.status_code == 200, response.get_json()
    assert [r["status"] for r in response.get_json()["results"]] == [201, 200, 204]
    assert count(db, "users") == 0


def test_text_that_only_looks_like_a_reference_is_left_alone(client, db):
    # Only an object whose one member is "$ref" is a reference; "${" outside a path is text.
    body = new_user(1, username="dollar")
    response = batch(
        client,
        [
            {"method": "POST", "path": "/api/v1/users", "body": body},
            {
                "method": "POST",
                "path": "/api/v1/organizations",
                "body": {"slug": "costs", "name": "${/0/body/id} and more", "owner_id": 1},
            },
        ],
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["results"][1]["body"]["name"] == "${/0/body/id} and more"
