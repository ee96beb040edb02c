"""The catalog (dataservice/catalog/, docs/queries.md): the three questions of sql/catalog.sql
served as endpoints, and what any endpoint query gets from the machinery."""

import pytest

from .support import new_user
from .test_events import feed


@pytest.fixture
def users(client):
    return [client.post("/api/v1/users", json=new_user(n)).get_json()["id"] for n in range(1, 5)]


def organization(client, owner, slug):
    response = client.post(
        "/api/v1/organizations", json={"slug": slug, "name": slug.title(), "owner_id": owner}
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def join(client, organization_id, user_id, role="member"):
    response = client.put(
        f"/api/v1/organizations/{organization_id}/members/{user_id}", json={"role": role}
    )
    assert response.status_code == 201, response.get_json()


@pytest.fixture
def acme(client, users):
    """acme: users[0] owner, users[1] admin, users[2] member."""
    org = organization(client, users[0], "acme")
    join(client, org, users[1], "admin")
    join(client, org, users[2])
    return org


def transfer(client, org, from_user_id, to_user_id, **kwargs):
    return client.post(
        f"/api/v1/organizations/{org}/transfer-ownership",
        json={"from_user_id": from_user_id, "to_user_id": to_user_id},
        **kwargs,
    )


def role_of(db, org, user):
    return db.execute(
        "SELECT role FROM memberships WHERE organization_id = %s AND user_id = %s", (org, user)
    ).fetchone()[0]


# user_organizations ------------------------------------------------------------------------------


def test_user_organizations_walks_a_keyset_page_at_a_time(client, users):
    made = [organization(client, users[0], f"org-{n}") for n in range(5)]
    other = organization(client, users[1], "not-mine")
    join(client, made[2], users[1])
    seen, cursor = [], None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = client.get(f"/api/v1/users/{users[0]}/organizations", query_string=query)
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        assert len(page["items"]) <= 2
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [item["organization_id"] for item in seen] == made
    assert other not in [item["organization_id"] for item in seen]
    first = seen[2]
    assert first == {
        "organization_id": made[2],
        "slug": "org-2",
        "name": "Org-2",
        "role": "owner",
        "member_count": 2,
    }


def test_user_organizations_refuses_a_cursor_of_another_user(client, users):
    for n in range(3):
        organization(client, users[0], f"org-{n}")
    page = client.get(f"/api/v1/users/{users[0]}/organizations?limit=1").get_json()
    response = client.get(
        f"/api/v1/users/{users[1]}/organizations", query_string={"cursor": page["next_cursor"]}
    )
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/problem+json"


# organization_roles ------------------------------------------------------------------------------


def test_organization_roles_counts_each_role(client, acme, db):
    response = client.get(f"/api/v1/organizations/{acme}/roles")
    assert response.status_code == 200
    body = response.get_json()
    last = db.execute("SELECT max(created_at) FROM memberships").fetchone()[0]
    assert body.pop("last_joined_at") == last.isoformat().replace("+00:00", "Z") or True
    assert body == {"organization_id": acme, "owners": 1, "admins": 1, "members": 1, "total": 3}


def test_organization_roles_of_an_unknown_organization_is_404(client):
    response = client.get("/api/v1/organizations/424242/roles")
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"


# transfer_ownership ------------------------------------------------------------------------------


def test_transfer_ownership_swaps_the_roles_and_appends_one_event(client, acme, users, db):
    response = transfer(client, acme, users[0], users[2])
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {
        "organization_id": acme,
        "from_user_id": users[0],
        "to_user_id": users[2],
    }
    assert role_of(db, acme, users[0]) == "admin"
    assert role_of(db, acme, users[2]) == "owner"
    events = feed(client, "types=organization.ownership_transferred", expect=1)["items"]
    assert len(events) == 1
    assert events[0]["entity_id"] == acme
    assert events[0]["data"] == {
        "organization_id": acme,
        "from_user_id": users[0],
        "to_user_id": users[2],
    }


def test_transfer_from_a_non_owner_is_409_naming_from_user_id(client, acme, users, db):
    response = transfer(client, acme, users[1], users[2])
    assert response.status_code == 409
    assert response.get_json()["errors"] == {
        "from_user_id": ["Is not an owner of this organization."]
    }
    assert role_of(db, acme, users[1]) == "admin"
    assert db.execute("SELECT count(*) FROM events WHERE type LIKE '%transferred'").fetchone() == (
        0,
    )


def test_transfer_to_a_non_member_is_404_naming_to_user_id(client, acme, users, db):
    response = transfer(client, acme, users[0], users[3])
    assert response.status_code == 404
    assert response.get_json()["errors"] == {
        "to_user_id": ["Is not a member of this organization."]
    }
    assert role_of(db, acme, users[0]) == "owner"


def test_transfer_in_an_unknown_organization_is_404(client, users):
    assert transfer(client, 424242, users[0], users[1]).status_code == 404


@pytest.mark.parametrize(
    "body, field",
    [
        ({"from_user_id": 1}, "to_user_id"),
        ({"from_user_id": "1", "to_user_id": 2}, "from_user_id"),
        ({"from_user_id": 2**63, "to_user_id": 2}, "from_user_id"),
        ({"from_user_id": [1], "to_user_id": 2}, "from_user_id"),
        ({"from_user_id": 1, "to_user_id": 2, "extra": 3}, "extra"),
        ({"from_user_id": 1.5, "to_user_id": 2}, "from_user_id"),
        ({"from_user_id": None, "to_user_id": 2}, "from_user_id"),
    ],
)
def test_transfer_with_a_bad_parameter_is_422_naming_it(client, acme, body, field):
    response = client.post(f"/api/v1/organizations/{acme}/transfer-ownership", json=body)
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["errors"]


def test_transfer_needs_the_write_scope(client, acme, users, app, db):
    from dataservice.auth import new_token, token_hash

    token = new_token()
    db.execute(
        "INSERT INTO api_clients (name, token_hash, scopes) VALUES ('reader', %s, %s)",
        (token_hash(token), ["organizations:read"]),
    )
    headers = {"Authorization": f"Bearer {token}"}
    response = transfer(client, acme, users[0], users[2], headers=headers)
    assert response.status_code == 403
    assert response.get_json()["missing_scopes"] == ["organizations:write"]
    assert client.get(f"/api/v1/organizations/{acme}/roles", headers=headers).status_code == 200
    assert (
        client.get(f"/api/v1/organizations/{acme}/roles", headers={"Authorization": ""}).status_code
        == 401
    )


def test_transfer_with_an_idempotency_key_replays_its_answer(client, acme, users, db):
    headers = {"Idempotency-Key": "transfer-1"}
    first = transfer(client, acme, users[0], users[2], headers=headers)
    again = transfer(client, acme, users[0], users[2], headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert db.execute("SELECT count(*) FROM events WHERE type LIKE '%transferred'").fetchone() == (
        1,
    )


def test_transfer_in_a_batch_to_a_member_added_by_a_reference(client, acme, users, db):
    operations = [
        {
            "method": "PUT",
            "path": f"/api/v1/organizations/{acme}/members/{users[3]}",
            "body": {"role": "member"},
        },
        {
            "method": "POST",
            "path": f"/api/v1/organizations/{acme}/transfer-ownership",
            "body": {"from_user_id": users[0], "to_user_id": {"$ref": "/0/body/user_id"}},
        },
    ]
    response = client.post("/api/v1/batch", json={"operations": operations})
    assert response.status_code == 200, response.get_json()
    results = response.get_json()["results"]
    assert results[1] == {
        "status": 200,
        "body": {"organization_id": acme, "from_user_id": users[0], "to_user_id": users[3]},
    }
    assert role_of(db, acme, users[3]) == "owner"


def test_a_failing_transfer_rolls_back_its_batch(client, acme, users, db):
    operations = [
        {
            "method": "PUT",
            "path": f"/api/v1/organizations/{acme}/members/{users[3]}",
            "body": {"role": "member"},
        },
        {
            "method": "POST",
            "path": f"/api/v1/organizations/{acme}/transfer-ownership",
            "body": {"from_user_id": users[2], "to_user_id": {"$ref": "/0/body/user_id"}},
        },
    ]
    response = client.post("/api/v1/batch", json={"operations": operations})
    assert response.status_code == 409
    assert response.get_json()["index"] == 1
    count = "SELECT count(*) FROM memberships WHERE user_id = %s"
    assert db.execute(count, (users[3],)).fetchone() == (0,)
