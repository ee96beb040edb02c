"""Organizations: created with their owner, found by id or slug, listed, changed and deleted
with their memberships. (What every resource does is in tests/test_resources.py.)"""

import pytest

from .support import new_user


@pytest.fixture
def owner(client):
    return client.post("/api/v1/users", json=new_user(1)).get_json()


def create(client, owner_id, slug="acme", name="Acme"):
    return client.post(
        "/api/v1/organizations", json={"slug": slug, "name": name, "owner_id": owner_id}
    )


def rows(db, sql, *params):
    return db.execute(sql, params).fetchall()


def test_create_makes_the_organization_and_its_owner_in_one_transaction(client, db, owner):
    response = create(client, owner["id"])
    assert response.status_code == 201
    organization = response.get_json()
    assert set(organization) == {"id", "slug", "name", "created_at", "updated_at"}
    assert response.headers["Location"] == f"/api/v1/organizations/{organization['id']}"
    assert response.headers["ETag"] == '"1"'
    assert rows(db, "SELECT user_id, role FROM memberships") == [(owner["id"], "owner")]
    events = rows(db, "SELECT type, xid FROM events WHERE entity <> 'user' ORDER BY id")
    assert [t for t, _ in events] == ["organization.created", "membership.created"]
    assert len({xid for _, xid in events}) == 1  # one transaction
    assert client.get(response.headers["Location"]).get_json() == organization


def test_an_unknown_owner_is_422_naming_owner_id_and_nothing_is_written(client, db):
    response = create(client, 424242)
    assert response.status_code == 422
    assert response.get_json()["errors"] == {"owner_id": ["No user has this id."]}
    assert rows(db, "SELECT count(*) FROM organizations") == [(0,)]
    assert rows(db, "SELECT count(*) FROM events") == [(0,)]


def test_a_taken_slug_is_409(client, db, owner):
    assert create(client, owner["id"]).status_code == 201
    response = create(client, owner["id"], name="Another")
    assert response.status_code == 409
    assert response.get_json()["errors"] == {"slug": ["Already taken."]}
    assert rows(db, "SELECT count(*) FROM organizations") == [(1,)]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"slug": "ab", "name": "x"}, "slug"),
        ({"slug": "a" * 64, "name": "x"}, "slug"),
        ({"slug": "Upper", "name": "x"}, "slug"),
        ({"slug": "under_score", "name": "x"}, "slug"),
        ({"slug": "fine", "name": ""}, "name"),
        ({"slug": "fine", "name": "x" * 201}, "name"),
        ({"slug": "fine", "name": "x", "owner_id": "1"}, "owner_id"),
        ({"slug": "fine", "name": "x", "owner_id": 0}, "owner_id"),
        ({"slug": "fine", "name": "x", "owner_id": 2**63}, "owner_id"),
        ({"slug": "fine", "name": "x", "extra": 1}, "extra"),
    ],
)
def test_invalid_organizations_are_422(client, db, owner, body, field):
    response = client.post("/api/v1/organizations", json={"owner_id": owner["id"], **body})
    assert response.status_code == 422
    assert field in response.get_json()["errors"]


def test_by_slug_and_its_404(client, owner):
    organization = create(client, owner["id"], slug="acme-9").get_json()
    found = client.get("/api/v1/organizations/by-slug/acme-9")
    assert found.status_code == 200 and found.get_json() == organization
    assert found.headers["ETag"] == '"1"'
    assert client.get("/api/v1/organizations/by-slug/nope").status_code == 404
    assert client.get("/api/v1/organizations/by-slug/ACME-9").status_code == 404  # exact


def test_list_filters(client, db, owner):
    other = client.post("/api/v1/users", json=new_user(2)).get_json()
    for slug in ("alpha-1", "alpha-2", "beta-1"):
        create(client, owner["id"], slug=slug)
    beta = client.get("/api/v1/organizations/by-slug/beta-1").get_json()
    client.put(f"/api/v1/organizations/{beta['id']}/members/{other['id']}", json={"role": "member"})
    db.execute(
        "UPDATE organizations SET created_at = '2024-01-01', updated_at = now()"
        " WHERE slug = 'alpha-1'"
    )

    def slugs(query):
        response = client.get(f"/api/v1/organizations?{query}")
        assert response.status_code == 200, response.get_json()
        return [o["slug"] for o in response.get_json()["items"]]

    assert slugs("slug_prefix=alpha") == ["alpha-1", "alpha-2"]
    assert slugs(f"member={other['id']}") == ["beta-1"]
    assert slugs(f"member={owner['id']}&sort=-id") == ["beta-1", "alpha-2", "alpha-1"]
    assert slugs("member=987654") == []
    assert slugs("created_before=2025-01-01T00:00:00Z") == ["alpha-1"]
    assert slugs("created_after=2025-01-01T00:00:00Z&sort=created_at") == ["alpha-2", "beta-1"]
    total = client.get("/api/v1/organizations?slug_prefix=alpha&count=exact&limit=1").get_json()
    assert total["total"] == 2 and len(total["items"]) == 1
    for bad in ("slug_prefix=A", "member=x", "member=0", "sort=slug", "limit=0"):
        assert client.get(f"/api/v1/organizations?{bad}").status_code == 422, bad


def test_patch_is_a_merge_patch(client, db, owner):
    organization = create(client, owner["id"]).get_json()
    url = f"/api/v1/organizations/{organization['id']}"
    response = client.patch(url, json={"name": "Acme Inc"})
    assert response.status_code == 200 and response.headers["ETag"] == '"2"'
    changed = response.get_json()
    assert changed["name"] == "Acme Inc" and changed["slug"] == "acme"
    assert changed["updated_at"] > organization["updated_at"]
    assert client.patch(url, json={"slug": "acme-inc"}).get_json()["slug"] == "acme-inc"
    assert client.patch(url, json={}).status_code == 422
    assert client.patch(url, json={"owner_id": 1}).status_code == 422


def test_delete_removes_its_memberships_with_their_events(client, db, owner):
    organization = create(client, owner["id"]).get_json()
    other = client.post("/api/v1/users", json=new_user(2)).get_json()
    url = f"/api/v1/organizations/{organization['id']}"
    client.put(f"{url}/members/{other['id']}", json={"role": "admin"})
    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404
    assert rows(db, "SELECT count(*) FROM memberships") == [(0,)]
    deleted = rows(db, "SELECT type, xid FROM events WHERE type LIKE '%%.deleted' ORDER BY id")
    assert [t for t, _ in deleted] == ["membership.deleted"] * 2 + ["organization.deleted"]
    assert len({xid for _, xid in deleted}) == 1  # in the delete's transaction
    assert client.get(f"/api/v1/users/{owner['id']}").status_code == 200  # users stay
