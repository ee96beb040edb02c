"""The test kit: what every resource must do, described per resource so that tests/test_resources.py
runs the same tests against each.

What a case declares already (its entity, scopes, sorts and standard events) is read from the
resource's declaration (api/resource.py `Resource`); a case adds what only a test knows: how to
make one item through the API, how to change it, where its list is, how to seed many items
straight into the database, and which writes conflict or point nowhere. Every declared resource
must have its case (test_resources.py checks).
"""

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from dataservice.api import blueprints
from dataservice.api.resource import RESOURCES

from .support import BCRYPT_HASH, new_user

blueprints()  # every resource declared
STANDARD_EVENTS = ("created", "updated", "deleted")  # what make, change and delete record


@dataclass
class Item:
    url: str  # the item's own URL
    body: dict  # as the API returned it


@dataclass
class Case:
    name: str
    make: Callable  # (client, n) -> Item, through the API
    change: Callable  # (client, item) -> (method, url, body): a write that changes it
    missing_url: Callable  # (client) -> URL of an item that does not exist
    list_url: Callable  # (client) -> the list's URL (no query)
    sort_key: Callable  # (item body, sort) -> what the list is ordered by
    seed: Callable  # (db, client, n) -> the list's URL once n items exist in it
    identity: Callable  # (item body) -> what tells items apart
    grow: Callable | None = None  # (client, list URL, n): one more item in that list
    conflict: Callable | None = None  # (client, item) -> (method, url, body, field): a 409
    dangling: Callable | None = None  # (client) -> (method, url, body, status, field)
    sorts: tuple[str, ...] = field(default=())  # the list's; the declared list's when empty

    def __post_init__(self):
        declared = RESOURCES[self.name]
        self.entity = declared.thing  # its events' entity
        self.read_scope, self.write_scope = declared.read_scope, declared.write_scope
        # the actions its writes record, in order
        self.events = tuple(a for a in STANDARD_EVENTS if f"{self.entity}.{a}" in declared.events)
        if not self.sorts:
            sort = declared.list_args._declared_fields["sort"]
            self.sorts = tuple(sort.validators[0].choices)


_numbers = itertools.count(100_000)  # distinct usernames and slugs, whoever asks


def _user(client, n=None) -> Item:
    response = client.post("/api/v1/users", json=new_user(next(_numbers)))
    assert response.status_code == 201, response.get_json()
    return Item(response.headers["Location"], response.get_json())


def _seed_users(db, n, prefix="seeded"):
    with db.cursor().copy(
        "COPY users (email, username, password_hash, created_at, updated_at) FROM STDIN"
    ) as copy:
        for i in range(n):
            at = f"2024-01-01T00:00:{i % 60:02d}+00:00"  # repeated times: the id breaks ties
            copy.write_row((f"{prefix}{i}@example.com", f"{prefix}{i}", BCRYPT_HASH, at, at))


def _by_created_at(body, sort):
    return (body["created_at"], body["id"]) if "created_at" in sort else body["id"]


def _organization(client, n) -> Item:
    owner, n = _user(client), next(_numbers)
    body = {"slug": f"org-{n}", "name": f"Organization {n}", "owner_id": owner.body["id"]}
    response = client.post("/api/v1/organizations", json=body)
    assert response.status_code == 201, response.get_json()
    return Item(response.headers["Location"], response.get_json())


def _seed_organizations(db, client, n):
    _seed_users(db, 1, prefix="orgowner")
    db.execute(
        "WITH made AS (INSERT INTO organizations (slug, name, created_at, updated_at)"
        " SELECT 'seeded-' || i, 'Seeded ' || i, t, t"
        "   FROM generate_series(1, %s) i,"
        "        LATERAL (SELECT timestamptz '2024-01-01' + (i %% 60) * interval '1 s') AS at (t)"
        " RETURNING id)"
        " INSERT INTO memberships (organization_id, user_id, role)"
        " SELECT made.id, users.id, 'owner' FROM made, users WHERE username = 'orgowner0'",
        (n,),
    )
    return "/api/v1/organizations"


def _membership(client, n) -> Item:
    organization = client.get("/api/v1/organizations/by-slug/kit-org")
    if organization.status_code == 404:
        owner = _user(client)
        organization = client.post(
            "/api/v1/organizations",
            json={"slug": "kit-org", "name": "Kit", "owner_id": owner.body["id"]},
        )
    organization_id = organization.get_json()["id"]
    user = _user(client)
    url = f"/api/v1/organizations/{organization_id}/members/{user.body['id']}"
    response = client.put(url, json={"role": "member"})
    assert response.status_code == 201, response.get_json()
    return Item(url, response.get_json())


def _seed_members(db, client, n):
    _seed_users(db, n + 1, prefix="member")
    db.execute(
        "WITH made AS (INSERT INTO organizations (slug, name) VALUES ('walked', 'Walked')"
        " RETURNING id)"
        " INSERT INTO memberships (organization_id, user_id, role)"
        " SELECT made.id, users.id, CASE WHEN username = 'member0' THEN 'owner' ELSE 'member' END"
        "   FROM made, users WHERE username LIKE 'member%%'"
    )
    organization_id = client.get("/api/v1/organizations/by-slug/walked").get_json()["id"]
    return f"/api/v1/organizations/{organization_id}/members"


def _new_member(client, list_url, n):
    user = _user(client)
    response = client.put(f"{list_url}/{user.body['id']}", json={"role": "member"})
    assert response.status_code == 201, response.get_json()


def _last_owner(client, item):
    organization_id = item.body["organization_id"]
    owners = client.get(f"/api/v1/organizations/{organization_id}/members?role=owner").get_json()
    [owner] = owners["items"]
    url = f"/api/v1/organizations/{organization_id}/members/{owner['user_id']}"
    return "PUT", url, {"role": "admin"}, None


CASES = [
    Case(
        name="users",
        make=_user,
        change=lambda client, item: ("PATCH", item.url, {"username": "changed"}),
        missing_url=lambda client: "/api/v1/users/987654",
        list_url=lambda client: "/api/v1/users",
        sort_key=_by_created_at,
        seed=lambda db, client, n: _seed_users(db, n) or "/api/v1/users",
        identity=lambda body: body["id"],
        conflict=lambda client, item: (
            "POST",
            "/api/v1/users",
            new_user(next(_numbers), username=item.body["username"].upper()),
            "username",
        ),
    ),
    Case(
        name="organizations",
        make=_organization,
        change=lambda client, item: ("PATCH", item.url, {"name": "Changed"}),
        missing_url=lambda client: "/api/v1/organizations/987654",
        list_url=lambda client: "/api/v1/organizations",
        sort_key=_by_created_at,
        seed=_seed_organizations,
        identity=lambda body: body["id"],
        conflict=lambda client, item: (
            "PATCH",
            _organization(client, 77).url,
            {"slug": item.body["slug"]},
            "slug",
        ),
        dangling=lambda client: (
            "POST",
            "/api/v1/organizations",
            {"slug": "nobody-owns", "name": "N", "owner_id": 987654},
            422,
            "owner_id",
        ),
    ),
    Case(
        name="memberships",
        make=_membership,
        change=lambda client, item: ("PUT", item.url, {"role": "admin"}),
        missing_url=lambda client: _membership(client, 1).url.rsplit("/", 1)[0] + "/987654",
        list_url=lambda client: _membership(client, 2).url.rsplit("/", 1)[0],
        sorts=("user_id",),
        sort_key=lambda body, sort: body["user_id"],
        seed=_seed_members,
        grow=_new_member,
        identity=lambda body: (body["organization_id"], body["user_id"]),
        conflict=_last_owner,
        dangling=lambda client: (
            "PUT",
            _membership(client, 3).url.rsplit("/", 1)[0] + "/987654",
            {"role": "member"},
            404,
            "user_id",
        ),
    ),
]
