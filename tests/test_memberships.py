"""Memberships: added, changed and removed with PUT and DELETE, listed both ways, and the rule
that every organization keeps an owner, enforced by the database even under concurrent writes."""

import json
import random
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest

from .support import new_user


def user(client, n):
    return client.post("/api/v1/users", json=new_user(n)).get_json()["id"]


def organization(client, owner_id, slug="acme"):
    body = {"slug": slug, "name": slug.title(), "owner_id": owner_id}
    return client.post("/api/v1/organizations", json=body).get_json()["id"]


@pytest.fixture
def org(client):
    """(organization id, its owner's id, a user who is not a member)"""
    owner = user(client, 1)
    return organization(client, owner), owner, user(client, 2)


def member_url(organization_id, user_id):
    return f"/api/v1/organizations/{organization_id}/members/{user_id}"


def count(db, sql, *params):
    return db.execute(sql, params).fetchone()[0]


def test_put_adds_changes_and_leaves_alone(client, db, org):
    organization_id, _, newcomer = org
    url = member_url(organization_id, newcomer)
    added = client.put(url, json={"role": "member"})
    assert added.status_code == 201 and added.headers["Location"] == url
    assert added.headers["ETag"] == '"1"'
    body = added.get_json()
    assert body == {**body, "organization_id": organization_id, "user_id": newcomer}
    assert set(body) == {"organization_id", "user_id", "role", "created_at", "updated_at"}
    changed = client.put(url, json={"role": "admin"})
    assert changed.status_code == 200 and changed.headers["ETag"] == '"2"'
    assert changed.get_json()["role"] == "admin"
    same = client.put(url, json={"role": "admin"})
    assert same.status_code == 200 and same.headers["ETag"] == '"2"'  # nothing changed
    assert client.get(url).get_json() == changed.get_json()
    types = [t for (t,) in db.execute("SELECT type FROM events WHERE entity = 'membership'")]
    assert types == ["membership.created", "membership.created", "membership.updated"]


@pytest.mark.parametrize("body", [{}, {"role": "king"}, {"role": None}, {"role": "admin", "x": 1}])
def test_an_invalid_role_is_422(client, org, body):
    organization_id, _, newcomer = org
    response = client.put(member_url(organization_id, newcomer), json=body)
    assert response.status_code == 422 and "errors" in response.get_json()


@pytest.mark.parametrize("if_match", [None, '"1"'])
def test_an_unknown_organization_or_user_is_404_naming_which(client, db, org, if_match):
    organization_id, _, newcomer = org
    headers = {"If-Match": if_match} if if_match else {}
    for url, field in [
        (member_url(987654, newcomer), "organization_id"),
        (member_url(organization_id, 987654), "user_id"),
    ]:
        response = client.put(url, json={"role": "member"}, headers=headers)
        assert response.status_code == 404
        assert list(response.get_json()["errors"]) == [field]
    assert count(db, "SELECT count(*) FROM memberships") == 1


def test_if_match_on_a_membership_that_does_not_exist_is_412(client, org):
    organization_id, _, newcomer = org
    response = client.put(
        member_url(organization_id, newcomer), json={"role": "member"}, headers={"If-Match": '"1"'}
    )
    assert response.status_code == 412


def test_lists_both_ways_with_the_role_filter(client, org):
    organization_id, owner, newcomer = org
    other = organization(client, newcomer, slug="other")
    client.put(member_url(organization_id, newcomer), json={"role": "admin"})
    members = client.get(f"/api/v1/organizations/{organization_id}/members").get_json()
    assert [(m["user_id"], m["role"]) for m in members["items"]] == [
        (owner, "owner"),
        (newcomer, "admin"),
    ]
    admins = client.get(f"/api/v1/organizations/{organization_id}/members?role=admin&count=exact")
    assert [m["user_id"] for m in admins.get_json()["items"]] == [newcomer]
    assert admins.get_json()["total"] == 1
    mine = client.get(f"/api/v1/users/{newcomer}/memberships").get_json()["items"]
    assert [(m["organization_id"], m["role"]) for m in mine] == [
        (organization_id, "admin"),
        (other, "owner"),
    ]
    owned = client.get(f"/api/v1/users/{newcomer}/memberships?role=owner").get_json()["items"]
    assert [m["organization_id"] for m in owned] == [other]
    assert client.get("/api/v1/organizations/987654/members").status_code == 404
    assert client.get("/api/v1/users/987654/memberships").status_code == 404
    assert client.get(f"/api/v1/users/{newcomer}/memberships?role=x").status_code == 422


def test_a_cursor_belongs_to_its_organization(client, org):
    organization_id, _owner, newcomer = org
    client.put(member_url(organization_id, newcomer), json={"role": "member"})
    other = organization(client, newcomer, slug="other")
    cursor = client.get(f"/api/v1/organizations/{organization_id}/members?limit=1").get_json()[
        "next_cursor"
    ]
    assert client.get(f"/api/v1/organizations/{other}/members?cursor={cursor}").status_code == 400


def test_the_last_owner_can_be_neither_demoted_nor_removed(client, db, org):
    organization_id, owner, newcomer = org
    url = member_url(organization_id, owner)
    for response in (client.put(url, json={"role": "admin"}), client.delete(url)):
        assert response.status_code == 409
        problem = response.get_json()
        assert problem["type"] == "urn:dataservice:problem:last-owner"
        assert problem["organizations"] == [organization_id]
    # With a second owner, the first may step down.
    client.put(member_url(organization_id, newcomer), json={"role": "owner"})
    assert client.put(url, json={"role": "member"}).status_code == 200
    assert client.delete(member_url(organization_id, newcomer)).status_code == 409
    assert client.delete(url).status_code == 204


def test_deleting_the_last_owner_of_organizations_is_409_naming_them(client, db, org):
    organization_id, owner, newcomer = org
    second = organization(client, owner, slug="second")
    shared = organization(client, owner, slug="shared")
    client.put(member_url(shared, newcomer), json={"role": "owner"})  # shared keeps an owner
    response = client.delete(f"/api/v1/users/{owner}")
    assert response.status_code == 409
    assert response.get_json()["organizations"] == [organization_id, second]
    assert count(db, "SELECT count(*) FROM memberships WHERE user_id = %s", owner) == 3


def test_deleting_a_user_removes_their_memberships_with_events(client, db, org):
    organization_id, _owner, newcomer = org
    client.put(member_url(organization_id, newcomer), json={"role": "member"})
    assert client.delete(f"/api/v1/users/{newcomer}").status_code == 204
    assert count(db, "SELECT count(*) FROM memberships WHERE user_id = %s", newcomer) == 0
    deleted = db.execute(
        "SELECT type, data FROM events WHERE type LIKE '%%.deleted' ORDER BY id"
    ).fetchall()
    assert [t for t, _ in deleted] == ["membership.deleted", "user.deleted"]
    assert deleted[0][1]["user_id"] == newcomer


def test_a_database_write_around_the_api_cannot_leave_an_organization_ownerless(db, org):
    _organization_id, owner, _ = org
    with pytest.raises(Exception, match="at least one owner"):
        db.execute("UPDATE memberships SET role = 'member' WHERE user_id = %s", (owner,))
    with pytest.raises(Exception, match="at least one owner"):
        db.execute("INSERT INTO organizations (slug, name) VALUES ('bare', 'No owner')")
    assert count(db, "SELECT count(*) FROM organizations") == 1


def _send(base, method, path, body=None):
    request = urllib.request.Request(
        base + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.parametrize("round_", range(5))
def test_concurrent_demotions_and_removals_never_leave_an_organization_ownerless(
    make_app, serve, db, round_
):
    app = make_app(DATABASE_POOL_MIN_SIZE=4, DATABASE_POOL_MAX_SIZE=8, DATABASE_POOL_TIMEOUT=10.0)
    client = app.test_client()
    base = serve(app)
    owners = {}
    for slug in ("first", "second"):
        a, b = user(client, 10 * len(owners) + 1), user(client, 10 * len(owners) + 2)
        organization_id = organization(client, a, slug=slug)
        client.put(member_url(organization_id, b), json={"role": "owner"})
        owners[organization_id] = [a, b]
    rng = random.Random(round_)
    attempts = [
        (rng.choice(["PUT", "DELETE"]), organization_id, owner)
        for organization_id, pair in owners.items()
        for owner in pair
        for _ in range(4)
    ]
    rng.shuffle(attempts)
    barrier = Barrier(len(attempts))

    def attempt(args):
        method, organization_id, owner = args
        barrier.wait()
        body = {"role": rng.choice(["admin", "member"])} if method == "PUT" else None
        return method, _send(base, method, member_url(organization_id, owner), body)

    with ThreadPoolExecutor(len(attempts)) as pool:
        outcomes = list(pool.map(attempt, attempts))
    # 201: a PUT that came after a removal added the member back
    assert {status for _, status in outcomes} <= {200, 201, 204, 404, 409}, outcomes
    assert any(status == 409 for _, status in outcomes)  # the rule was tested
    for organization_id in owners:
        left = count(
            db,
            "SELECT count(*) FROM memberships WHERE organization_id = %s AND role = 'owner'",
            organization_id,
        )
        assert left >= 1, f"organization {organization_id} lost every owner: {outcomes}"
