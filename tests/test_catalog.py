"""The catalog (dataservice/catalog/, docs/queries.md): the three questions of sql/catalog.sql
served as endpoints, and what any endpoint query gets from the machinery."""

import json
import re
from pathlib import Path

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


def add_member_then_transfer(client, acme, users, from_user: int):
    """A batch: users[3] joins `acme`, then ownership moves from `from_user` to them (a
    reference to the first operation's result)."""
    operations = [
        {
            "method": "PUT",
            "path": f"/api/v1/organizations/{acme}/members/{users[3]}",
            "body": {"role": "member"},
        },
        {
            "method": "POST",
            "path": f"/api/v1/organizations/{acme}/transfer-ownership",
            "body": {"from_user_id": from_user, "to_user_id": {"$ref": "/0/body/user_id"}},
        },
    ]
    return client.post("/api/v1/batch", json={"operations": operations})


def test_transfer_in_a_batch_to_a_member_added_by_a_reference(client, acme, users, db):
    response = add_member_then_transfer(client, acme, users, users[0])
    assert response.status_code == 200, response.get_json()
    results = response.get_json()["results"]
    assert results[1] == {
        "status": 200,
        "body": {"organization_id": acme, "from_user_id": users[0], "to_user_id": users[3]},
    }
    assert role_of(db, acme, users[3]) == "owner"


def test_a_failing_transfer_rolls_back_its_batch(client, acme, users, db):
    response = add_member_then_transfer(client, acme, users, users[2])
    assert response.status_code == 409
    assert response.get_json()["index"] == 1
    count = "SELECT count(*) FROM memberships WHERE user_id = %s"
    assert db.execute(count, (users[3],)).fetchone() == (0,)


# A query in a test's own SQL file -----------------------------------------------------------------

GADGETS = """
CREATE TYPE mood AS ENUM ('calm', 'busy', 'broken');
CREATE DOMAIN short_code AS varchar(8);
CREATE TABLE gadgets (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code    short_code NOT NULL,
    mood    mood NOT NULL,
    price   numeric(10, 2),
    tags    text[],
    made_on date,
    seen_at timestamptz,
    info    jsonb,
    ok      boolean,
    ref     uuid
);
GRANT SELECT, INSERT ON gadgets TO dataservice_app;
"""

GADGETS_SQL = """
-- name: gadget(gadget_id)^
-- One gadget.
-- endpoint: GET /api/v1/gadgets/{gadget_id}
-- scope: users:read
-- example: {"gadget_id": 1}
SELECT id, code, mood, price, tags, made_on, seen_at, info, ok, ref
  FROM gadgets
 WHERE id = :gadget_id;

-- name: add_gadget(code, mood, price, tags, made_on, seen_at, info, ok, ref)^
-- Adds a gadget.
-- endpoint: POST /api/v1/gadgets
-- scope: users:write
-- optional: price, tags, made_on, seen_at, info, ok, ref
INSERT INTO gadgets (code, mood, price, tags, made_on, seen_at, info, ok, ref)
VALUES (:code, :mood, :price, :tags, :made_on, :seen_at, :info, :ok, :ref)
RETURNING id, code, mood, price, tags, made_on, seen_at, info, ok, ref;

-- name: gadgets_in_a_mood(mood, min_id)
-- The gadgets in one mood.
-- endpoint: GET /api/v1/gadgets
-- scope: users:read
SELECT id, code
  FROM gadgets
 WHERE mood = :mood AND id >= :min_id
 ORDER BY id;

-- name: nap(seconds)^
-- Sleeps, past its own timeout.
-- endpoint: GET /api/v1/nap
-- scope: users:read
-- timeout: 100ms
SELECT pg_sleep(:seconds) AS slept, 1 AS one;
"""


@pytest.fixture
def gadgets(db, tmp_path, make_app):
    """An app serving a SQL file of the test's own, over a table with every kind of type."""
    db.execute(GADGETS)
    (tmp_path / "gadgets.sql").write_text(GADGETS_SQL)
    app = make_app(CATALOG_SQL_DIRS=str(tmp_path))
    return app


def test_a_query_in_the_tests_own_sql_file_is_served_with_no_python(gadgets):
    client = gadgets.test_client()
    body = {
        "code": "g-1",
        "mood": "busy",
        "price": "12.50",
        "tags": ["a", "b"],
        "made_on": "2026-01-02",
        "seen_at": "2026-01-02T03:04:05+02:00",
        "info": {"k": [1, 2]},
        "ok": True,
        "ref": "8b0f7f3c-3c1c-4b8e-9a55-0d6b3c0d2a10",
    }
    created = client.post("/api/v1/gadgets", json=body)
    assert created.status_code == 200, created.get_json()
    gadget = created.get_json()
    assert gadget["price"] == "12.50"  # numeric: exact, as a string
    assert gadget["seen_at"] == "2026-01-02T01:04:05+00:00"
    assert {k: gadget[k] for k in ("code", "mood", "tags", "made_on", "info", "ok", "ref")} == {
        k: body[k] for k in ("code", "mood", "tags", "made_on", "info", "ok", "ref")
    }
    assert client.get(f"/api/v1/gadgets/{gadget['id']}").get_json() == gadget
    assert client.get("/api/v1/gadgets/424242").status_code == 404
    listed = client.get("/api/v1/gadgets", query_string={"mood": "busy", "min_id": 1})
    assert listed.get_json() == {"items": [{"id": gadget["id"], "code": "g-1"}], "truncated": False}
    assert client.get("/api/v1/gadgets?mood=calm&min_id=1").get_json()["items"] == []


def test_the_openapi_types_are_the_databases(gadgets):
    document = gadgets.test_client().get("/openapi.json").get_json()
    schemas = document["components"]["schemas"]
    listing = document["paths"]["/api/v1/gadgets"]["get"]
    parameters = {p["name"]: p["schema"] for p in listing["parameters"] if p["in"] == "query"}
    assert parameters["min_id"]["maximum"] == 2**63 - 1
    assert parameters["min_id"]["minimum"] == -(2**63)
    assert parameters["mood"]["enum"] == ["calm", "busy", "broken"]
    one = document["paths"]["/api/v1/gadgets/{gadget_id}"]
    path_parameter = next(p for p in one["parameters"] if p["name"] == "gadget_id")
    assert path_parameter["schema"]["maximum"] == 2**63 - 1
    row = schemas["Gadget"]["properties"]
    assert row["id"]["type"] == "integer" and row["id"]["format"] == "int64"
    assert "nullable" not in row["id"] and "nullable" not in row["code"]  # NOT NULL columns
    assert row["price"]["nullable"] is True
    assert row["code"]["maxLength"] == 8  # the domain's varchar(8)
    assert row["mood"]["enum"] == ["calm", "busy", "broken"]
    assert row["seen_at"]["format"] == "date-time"
    assert row["made_on"]["format"] == "date"
    assert row["ref"]["format"] == "uuid"
    assert row["tags"]["type"] == "array" and row["tags"]["items"]["type"] == "string"
    assert row["ok"]["type"] == "boolean"
    body = schemas["AddGadgetBody"]["properties"]
    assert body["price"]["type"] == "string" and "pattern" in body["price"]
    assert body["code"]["maxLength"] == 8
    assert schemas["AddGadgetBody"]["required"] == ["code", "mood"]


HOSTILE = [1, 1.5, 2**64, -(2**64), "x\x00y", "x" * 10_000, [1, 2], {"a": 1}, True, "NaN", ""]


def test_hostile_parameters_are_422_never_500(gadgets):
    client = gadgets.test_client()
    refused = 0
    for field in ("code", "mood", "price", "tags", "made_on", "seen_at", "ok", "ref"):
        for value in HOSTILE:
            body = {"code": "g-1", "mood": "calm", field: value}
            # json.dumps: the test client's own encoder (orjson) stops at 64-bit integers
            response = client.post(
                "/api/v1/gadgets", data=json.dumps(body), content_type="application/json"
            )
            if response.status_code == 200:  # a value of the type after all ("" for code)
                continue
            assert response.status_code == 422, (field, value, response.get_json())
            assert field in response.get_json()["errors"], (field, value)
            refused += 1
    assert refused > 70


def test_hostile_query_parameters_are_422(gadgets):
    client = gadgets.test_client()
    for name in ("min_id", "mood"):
        for value in ("1x", "9" * 30, "\x00", "x" * 10_000, "-1e400", "NaN"):
            query = {"mood": "calm", "min_id": "1", name: value}
            response = client.get("/api/v1/gadgets", query_string=query)
            assert response.status_code == 422, (name, value, response.get_json())
            assert name in response.get_json()["errors"]


@pytest.mark.parametrize("path", ["/api/v1/gadgets/x", "/api/v1/gadgets/99999999999999999999"])
def test_a_hostile_path_parameter_is_404(gadgets, path):
    assert gadgets.test_client().get(path).status_code == 404


def test_a_declared_statement_timeout_holds(gadgets):
    response = gadgets.test_client().get("/api/v1/nap?seconds=2")
    assert response.status_code == 503
    assert response.headers["Content-Type"] == "application/problem+json"
    assert gadgets.test_client().get("/api/v1/nap?seconds=0").status_code == 200


def test_a_dropped_column_fails_ready_and_check(gadgets, db, tmp_path, app_database_url):
    client = gadgets.test_client()
    assert client.get("/ready").status_code == 200
    assert check(app_database_url, tmp_path).exit_code == 0
    db.execute("ALTER TABLE gadgets DROP COLUMN made_on")
    response = client.get("/ready")
    assert response.status_code == 503
    detail = response.get_json()["detail"]
    assert "gadget" in detail and 'column "made_on" does not exist' in detail
    result = check(app_database_url, tmp_path)
    assert result.exit_code == 1
    assert "gadgets.sql: gadget:" in result.output and "made_on" in result.output
    assert len(result.output.strip().splitlines()) == 1


def check(database_url, *dirs):
    from click.testing import CliRunner

    from dataservice.cli import main

    env = {"DATABASE_URL": database_url, "CATALOG_SQL_DIRS": ":".join(map(str, dirs))}
    return CliRunner().invoke(main, ["check"], env=env, prog_name="dataservice")


def test_check_passes_on_the_shipped_catalog(app_database_url):
    result = check(app_database_url)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "3 endpoint queries describe"


@pytest.mark.parametrize(
    "sql, refusal",
    [
        (
            "-- name: clash(user_id)^\n-- A clash.\n-- endpoint: GET /api/v1/users/{user_id}\n"
            "-- scope: users:read\nSELECT :user_id::bigint AS id;\n",
            "GET /api/v1/users/{user_id} is already served by users.get_user",
        ),
        (
            "-- name: clash(user_id)^\n-- A scope nobody knows.\n"
            "-- endpoint: GET /api/v1/x/{user_id}\n-- scope: gadgets:read\n"
            "SELECT :user_id::bigint AS id;\n",
            "the database knows no scope gadgets:read",
        ),
        (
            "-- name: clash(user_id)^\n-- A route parameter the query does not take.\n"
            "-- endpoint: GET /api/v1/x/{id}\n-- scope: users:read\n"
            "SELECT :user_id::bigint AS id;\n",
            "the route's {id} is not a parameter of the query",
        ),
    ],
)
def test_the_service_refuses_to_start_naming_the_file_and_query(make_app, tmp_path, sql, refusal):
    from dataservice.catalog import CatalogError

    (tmp_path / "bad.sql").write_text(sql)
    with pytest.raises(CatalogError) as refused:
        make_app(CATALOG_SQL_DIRS=str(tmp_path))
    message = str(refused.value)
    assert message == f"{tmp_path / 'bad.sql'}: clash: {refusal}"
    assert "\n" not in message


def test_metrics_and_log_lines_name_the_query(client, acme, caplog):
    with caplog.at_level("INFO", logger="dataservice.access"):
        assert client.get(f"/api/v1/organizations/{acme}/roles").status_code == 200
        assert client.get("/api/v1/organizations/424242/roles").status_code == 404
    lines = [r.line_fields for r in caplog.records if hasattr(r, "line_fields")]
    assert [(line["operation"], line["status"]) for line in lines] == [
        ("organization_roles", 200),
        ("organization_roles", 404),
    ]
    exposition = client.get("/metrics").get_data(as_text=True)
    for status in (200, 404):
        sample = (
            f'dataservice_catalog_queries_total{{query="organization_roles",status="{status}"}}'
        )
        assert sample in exposition


def test_an_integrity_violation_is_mapped_by_the_kit_naming_the_column(gadgets, db):
    db.execute("CREATE UNIQUE INDEX gadgets_code_key ON gadgets (code)")
    db.execute("ALTER TABLE gadgets ADD CONSTRAINT gadgets_price_check CHECK (price >= 0)")
    client = gadgets.test_client()
    assert client.post("/api/v1/gadgets", json={"code": "g-1", "mood": "calm"}).status_code == 200
    taken = client.post("/api/v1/gadgets", json={"code": "g-1", "mood": "calm"})
    assert taken.status_code == 409
    assert taken.get_json()["errors"] == {"code": ["Already taken."]}
    negative = client.post("/api/v1/gadgets", json={"code": "g-2", "mood": "calm", "price": "-1"})
    assert negative.status_code == 422
    assert list(negative.get_json()["errors"]) == ["price"]
    too_precise = client.post(
        "/api/v1/gadgets", json={"code": "g-3", "mood": "calm", "price": "1" * 20}
    )
    assert too_precise.status_code == 422  # numeric(10, 2) overflows: the database's own refusal


def test_a_catalog_the_database_could_not_describe_at_start_is_described_when_called(
    make_app, db, tmp_path
):
    (tmp_path / "gadgets.sql").write_text(GADGETS_SQL)
    app = make_app(CATALOG_SQL_DIRS=str(tmp_path))  # no gadgets table yet
    client = app.test_client()
    ready = client.get("/ready")
    assert ready.status_code == 503
    assert 'relation "gadgets" does not exist' in ready.get_json()["detail"]
    assert client.get("/api/v1/gadgets/1").status_code == 503
    db.execute(GADGETS)
    assert client.get("/ready").status_code == 200
    assert client.get("/api/v1/gadgets/1").status_code == 404
    assert client.get("/api/v1/gadgets/x").status_code == 404
    created = client.post("/api/v1/gadgets", json={"code": "g-1", "mood": "calm"})
    assert created.status_code == 200, created.get_json()
    assert client.get(f"/api/v1/gadgets/{created.get_json()['id']}").status_code == 200
    assert client.post("/api/v1/gadgets", json={"code": "g-2", "mood": "sad"}).status_code == 422


def test_the_fourth_question_of_docs_queries_md_is_served_as_written(
    make_app, tmp_path, client, app_database_url
):
    page = (Path(__file__).parent.parent / "docs" / "queries.md").read_text()
    block = re.search(r"```sql\n(.*?)```", page, re.DOTALL).group(1)
    (tmp_path / "fourth.sql").write_text(block)
    acme_owner = client.post("/api/v1/users", json=new_user(1)).get_json()["id"]
    organization(client, acme_owner, "acme")
    organization(client, acme_owner, "other")
    served = make_app(CATALOG_SQL_DIRS=str(tmp_path)).test_client()
    response = served.get("/api/v1/users/by-username/USER1/organization-count")
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"id": acme_owner, "organizations": 2}
    assert served.get("/api/v1/users/by-username/nobody/organization-count").status_code == 404
    result = check(app_database_url, tmp_path)
    assert result.output.strip() == "4 endpoint queries describe"
