"""A corpus of hostile values sent to every field and path parameter. Each gets a 4xx problem,
or is stored and returned exactly as sent; none is a 500; an error changes nothing."""

import json
import re

import pytest
from psycopg import sql

from dataservice.api import blueprints
from dataservice.api.resource import RESOURCES

from .resource_kit import CASES
from .support import BCRYPT_HASH, new_user

blueprints()  # every resource declared
HOSTILE = [
    "'; DROP TABLE users; --",
    '" OR 1=1 --',
    "1; SELECT pg_sleep(10)",
    "$$; DELETE FROM users; $$",
    "%s%s%(x)s{0}",
    "\x00",
    "a\x00b",
    "\x01\x07\x1b[31m\x7f",
    "line\nbreak\r\n",
    "\u202e\u200b\ufeff",
    "😀" * 10,
    "x" * 1_000_000,
    "",
    " ",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    2**64,
    -(2**63) - 1,
    1.5,
    1e308,
    True,
    None,
    [],
    {},
    [[[[[[[[[[[]]]]]]]]]]],
    {"$gt": ""},
]
USER_FIELDS = ["email", "username", "password", "hashed_password"]


def send(client, method, path, body):
    """JSON through the standard library, which (unlike the app's orjson) writes any integer."""
    return client.open(path, method=method, data=json.dumps(body), content_type="application/json")


def snapshot(db):
    """Every row of every declared resource's table, and the number of events."""
    tables = [
        db.execute(sql.SQL("SELECT * FROM {} ORDER BY 1").format(sql.Identifier(name))).fetchall()
        for name in RESOURCES
    ]
    return (*tables, db.execute("SELECT count(*) FROM events").fetchone()[0])


def assert_safe(response, db, before, sent=None, field=None):
    assert response.status_code < 500, (response.status_code, response.get_data()[:300])
    if response.status_code >= 400:
        assert response.mimetype == "application/problem+json"
        assert snapshot(db) == before
    elif sent is not None and field in ("email", "username", "slug", "name"):
        assert response.get_json()[field] == sent


@pytest.fixture
def existing(client):
    """A user who owns the organization `acme` (id 1)."""
    user = client.post("/api/v1/users", json=new_user(0)).get_json()
    body = {"slug": "acme", "name": "Acme", "owner_id": user["id"]}
    assert client.post("/api/v1/organizations", json=body).status_code == 201
    return user


@pytest.mark.parametrize("field", USER_FIELDS)
def test_create_fields(client, db, existing, field):
    for value in HOSTILE:
        body = {"email": "h@example.com", "username": "hostile", "password": "long enough"}
        if field == "hashed_password":
            body.pop("password")
        body[field] = value
        before = snapshot(db)
        response = send(client, "POST", "/api/v1/users", body)
        assert_safe(response, db, before, value, field)
        if response.status_code == 201:
            client.delete(response.headers["Location"])


PATCHED = [
    (name, field)
    for name, resource in RESOURCES.items()
    if resource.patch is not None
    for field in resource.patch._declared_fields
]


@pytest.mark.parametrize("name, field", PATCHED, ids=[f"{n}.{f}" for n, f in PATCHED])
def test_patch_fields(client, db, existing, name, field):
    """Every field of every declared resource's PATCH (users: email, username; organizations:
    slug, name), on an item the kit makes."""
    [case] = [case for case in CASES if case.name == name]
    item = case.make(client, 0)
    for value in HOSTILE:
        before = snapshot(db)
        response = send(client, "PATCH", item.url, {field: value})
        assert_safe(response, db, before, value, field)


@pytest.mark.parametrize("field", ["login", "password"])
def test_verify_credentials_fields(client, db, existing, field):
    before = snapshot(db)
    for value in HOSTILE:
        body = {"login": "user0", "password": "wrong but long", field: value}
        response = send(client, "POST", "/api/v1/users/verify-credentials", body)
        assert_safe(response, db, before)
        assert response.status_code != 200


@pytest.mark.parametrize("field", ["slug", "name", "owner_id"])
def test_organization_fields(client, db, existing, field):
    for value in HOSTILE:
        body = {"slug": "hostile", "name": "Hostile", "owner_id": existing["id"], field: value}
        before = snapshot(db)
        response = send(client, "POST", "/api/v1/organizations", body)
        assert_safe(response, db, before, value, field)
        if response.status_code == 201:
            client.delete(response.headers["Location"])
        if field != "owner_id":
            response = send(client, "PATCH", "/api/v1/organizations/1", {field: value})
            assert_safe(response, db, before, value, field)
            if response.status_code == 200:
                send(client, "PATCH", "/api/v1/organizations/1", {"slug": "acme", "name": "Acme"})


def test_membership_fields(client, db, existing):
    other = client.post("/api/v1/users", json=new_user(1)).get_json()
    before = snapshot(db)
    for value in HOSTILE:
        for url in (f"/api/v1/organizations/1/members/{other['id']}", "/api/v1/organizations/1"):
            response = send(client, "PUT", url, {"role": value})
            assert_safe(response, db, before)
            assert response.status_code >= 400


PATH_VALUES = [
    "'; DROP TABLE users; --",
    "%00",
    "a%00b",
    "%FF%FE",
    "%ED%A0%80",
    "1%20OR%201=1",
    "9" * 400,
    "-1",
    "1e3",
    "0x10",
    "%2e%2e%2f",
    "..",
    "%0d%0aSet-Cookie:%20x=1",
]


def path_templates(app, resource: str) -> list[str]:
    """Each route of the resource once per path parameter: that one `{}`, the others 1."""
    templates = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] == resource:
            for argument in rule.arguments:
                path = re.sub(rf"<(\w+:)?{argument}>", "{}", rule.rule)
                templates.add(re.sub(r"<(\w+:)?\w+>", "1", path))
    return sorted(templates)


@pytest.mark.parametrize("resource", list(RESOURCES))
def test_path_parameters(app, client, db, existing, resource):
    templates = path_templates(app, resource)
    assert templates
    for template in templates:
        _hostile_paths(client, db, template)


def _hostile_paths(client, db, template):
    before = snapshot(db)
    for value in PATH_VALUES:
        for method in ("GET", "PATCH", "DELETE", "PUT"):
            response = client.open(template.format(value), method=method, json={"username": "x_y"})
            assert_safe(response, db, before)


def lists(client, resource: str) -> dict[str, list[str]]:
    """The resource's lists (its GETs with query parameters, in the OpenAPI document: tagged
    with its blueprint's name), their path parameters 1, and their query parameters."""
    spec = client.get("/openapi.json").get_json()
    found = {}
    for path, item in spec["paths"].items():
        operation = item.get("get")
        if operation and resource in operation.get("tags", []):
            query = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
            if query:
                found[re.sub(r"\{\w+\}", "1", path)] = query
    return found


@pytest.mark.parametrize("resource", list(RESOURCES))
def test_list_query_parameters(client, db, existing, resource):
    found = lists(client, resource)
    assert found
    for list_url, params in found.items():
        for param in params:
            for value in [*PATH_VALUES, "", "1" * 100]:
                response = client.get(f"{list_url}?{param}={value}")
                assert response.status_code in (200, 400, 422), (param, value)
                assert response.mimetype in ("application/json", "application/problem+json")


@pytest.mark.parametrize(
    "raw, content_type",
    [
        (b"", "application/json"),
        (b"\xff\xfe\xfd", "application/json"),
        (b'{"email": "\xed\xa0\x80@x.io"}', "application/json"),  # CESU-8 surrogate bytes
        (b'{"username": "\\udc00"}', "application/json"),
        (b"[" * 50_000, "application/json"),
        (b'{"email": 1, "email": 2}', "application/json"),
        (json.dumps(new_user()).encode(), "text/plain"),
        (json.dumps(new_user()).encode(), "application/x-www-form-urlencoded"),
        (json.dumps(new_user()).encode(), "application/jsonx"),
        (b"null", "application/json"),
        (b"123456789012345678901234567890", "application/json"),
        (b'"just a string"', "application/json"),
    ],
)
def test_raw_bodies(client, db, existing, raw, content_type):
    before = snapshot(db)
    for method, path in [
        ("POST", "/api/v1/users"),
        ("PATCH", "/api/v1/users/1"),
        ("PUT", "/api/v1/users/1/password"),
        ("POST", "/api/v1/users/verify-credentials"),
        ("POST", "/api/v1/batch"),
        ("POST", "/api/v1/organizations"),
        ("PATCH", "/api/v1/organizations/1"),
        ("PUT", "/api/v1/organizations/1/members/1"),
    ]:
        response = client.open(path, method=method, data=raw, content_type=content_type)
        assert_safe(response, db, before)
        assert 400 <= response.status_code < 500, (method, path)


def test_batch_operation_fields(client, db, existing):
    before = snapshot(db)
    for value in HOSTILE:
        for operation in (
            {"method": value, "path": "/api/v1/users", "body": new_user(5)},
            {"method": "POST", "path": value, "body": new_user(5)},
            {"method": "POST", "path": "/api/v1/users", "body": value},
            {"method": "POST", "path": "/api/v1/users", "body": new_user(5), "headers": value},
            {"method": "DELETE", "path": f"/api/v1/users/${{{value}}}"},
            {"method": "PATCH", "path": "/api/v1/users/1", "body": {"username": {"$ref": value}}},
        ):
            if operation.get("headers", "absent") == {}:
                continue  # an empty header map is valid
            response = send(client, "POST", "/api/v1/batch", {"operations": [operation]})
            assert_safe(response, db, before)
            assert response.status_code >= 400, operation


def test_stored_exactly_as_sent(client):
    tricky = {
        "email": "O'Brien+tag@example.com",
        "username": "o.brien-_x",
        "hashed_password": BCRYPT_HASH,
    }
    created = client.post("/api/v1/users", json=tricky).get_json()
    assert client.get(f"/api/v1/users/{created['id']}").get_json()["email"] == tricky["email"]


def test_catalog_parameters(app, client, db, existing):
    """Every endpoint query of the catalog, read from its declarations: each path parameter,
    query-string parameter and body field gets the corpus (the rest of the call valid)."""
    before = snapshot(db)
    for query in app.extensions["catalog"].queries:
        valid = {name: 1 for name in query.client_parameters}
        in_path = set(query.route_parameters)
        path = query.route.format(**{name: 1 for name in in_path})
        for value in PATH_VALUES:
            for name in in_path:
                hostile_path = query.route.format(**{n: value if n == name else 1 for n in in_path})
                body = {k: v for k, v in valid.items() if k not in in_path}
                response = send(client, query.method, hostile_path, body)
                assert_safe(response, db, before)
        for name in set(valid) - in_path:
            for value in HOSTILE:
                if query.method == "GET":
                    response = client.get(path, query_string={**valid, name: value})
                    assert response.status_code in (200, 400, 404, 422), (query.name, name, value)
                else:
                    body = {k: v for k, v in valid.items() if k not in in_path}
                    response = send(client, query.method, path, {**body, name: value})
                    assert_safe(response, db, before)
                    assert response.status_code in (404, 409, 422), (query.name, name, value)
        for name in ("limit", "cursor") if query.page else ():
            for value in [*PATH_VALUES, "", "1" * 100]:
                response = client.get(f"{path}?{name}={value}")
                assert response.status_code in (200, 400, 422), (query.name, name, value)
