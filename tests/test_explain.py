"""The EXPLAIN gate: every named query in sql/ is planned against every table of the service
filled to a realistic volume (SEEDS: 100,000 users, 20,000 organizations with 100,000
memberships, 100,000 events and idempotency keys, ...), and fails on a sequential scan of a large
table or a high estimated cost, unless the allow-list below says why. A new query cannot land
without sample parameters here, nor a new table without its seed, so none lands unplanned."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from dataservice import auth
from dataservice.api import blueprints
from dataservice.api.resource import RESOURCES
from dataservice.catalog import Catalog
from dataservice.queries import queries
from dataservice.seed import SEEDED_HASH, seed_organizations, seed_users

from .support import url_for_database

ROWS = 100_000
ORGANIZATIONS = 20_000  # five members each: 100,000 memberships
MAX_COST = 2_000  # a sequential scan of 100,000 users costs about 2,300 here


def _events(conn):
    conn.execute(
        "INSERT INTO events (type, entity, entity_id, data, occurred_at) "
        "SELECT 'user.created', 'user', id, '{}'::jsonb, created_at FROM users"
    )


def _idempotency_keys(conn):
    conn.execute(
        "INSERT INTO idempotency_keys (client, key, request_hash, expires_at) "
        "SELECT 'c', 'k' || i, 'x', now() + interval '1 day' FROM generate_series(1, %s) i",
        (ROWS,),
    )


def _api_clients(conn):
    with conn.cursor().copy("COPY api_clients (name, token_hash, scopes) FROM STDIN") as copy:
        for i in range(1_000):
            copy.write_row((f"client-{i}", auth.token_hash(f"token-{i}"), ["users:read"]))


# Every table of the service, and how it is filled (in this order); None: its migrations fill it.
SEEDS = {
    "users": lambda conn: seed_users(conn, ROWS),
    "organizations": lambda conn: seed_organizations(conn, ORGANIZATIONS),
    "memberships": None,  # seed_organizations: five per organization
    "events": _events,
    "idempotency_keys": _idempotency_keys,
    "api_clients": _api_clients,
    "api_scopes": None,  # a lookup table: the scopes, from the migrations
}
LARGE_TABLES = {"users", "organizations", "memberships", "events", "idempotency_keys"}
NOW = datetime.now(UTC)
NO_FILTERS = {
    "email": None,
    "username": None,
    "username_prefix": None,
    "created_after": None,
    "created_before": None,
}

OUTBOX = {"actor": "a", "trace_id": None}  # what every write takes for its event
ORG_FILTERS = {"slug_prefix": None, "created_after": None, "created_before": None, "member": None}

# Query name -> the parameter sets to plan it with (several where filters change the plan).
SAMPLES = {
    "users.create_user": [
        {
            "email": "new@example.com",
            "username": "new",
            "password_hash": SEEDED_HASH,
            "actor": "a",
            "trace_id": None,
        }
    ],
    "users.create_users": [
        {
            "users": Jsonb([{"email": "a@x.io", "username": "a_x", "password_hash": SEEDED_HASH}]),
            "actor": "a",
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        }
    ],
    "users.get_user_by_username": [{"username": "ada_adams0"}],
    "users.get_user_by_email": [{"email": "ada.adams.0@example.com"}],
    "users.get_credentials": [{"login": "ada_adams0"}, {"login": "ada.adams.0@example.com"}],
    "users.update_user": [
        {"user_id": 50_000, "email": None, "username": "x_y", "versions": [1], **OUTBOX}
    ],
    "users.update_password_hash": [
        {"user_id": 1, "password_hash": SEEDED_HASH, "versions": None, **OUTBOX}
    ],
    "users.rehash_password": [{"user_id": 1, "old_hash": SEEDED_HASH, "new_hash": SEEDED_HASH}],
    "users.list_users_by_id": [
        {**NO_FILTERS, "after_id": None, "limit": 51},
        {**NO_FILTERS, "after_id": 90_000, "limit": 51},
        {**NO_FILTERS, "after_id": 10, "email": "ada.adams.0@example.com", "limit": 51},
        {**NO_FILTERS, "after_id": None, "username": "ada_adams0", "limit": 51},
        {**NO_FILTERS, "after_id": None, "username_prefix": "zoe_silva9", "limit": 51},
        {**NO_FILTERS, "after_id": None, "created_after": NOW - timedelta(days=2), "limit": 51},
    ],
    "users.list_users_by_id_desc": [
        {**NO_FILTERS, "after_id": None, "limit": 51},
        {**NO_FILTERS, "after_id": 10_000, "limit": 51},
    ],
    "users.list_users_by_created_at": [
        {**NO_FILTERS, "after_created_at": None, "after_id": None, "limit": 51},
        {
            **NO_FILTERS,
            "after_created_at": NOW - timedelta(days=100),
            "after_id": 70_000,
            "limit": 51,
        },
        {
            **NO_FILTERS,
            "after_created_at": None,
            "after_id": None,
            "created_after": NOW - timedelta(days=30),
            "created_before": NOW - timedelta(days=29),
            "limit": 51,
        },
    ],
    "users.list_users_by_created_at_desc": [
        {**NO_FILTERS, "after_created_at": None, "after_id": None, "limit": 51},
        {
            **NO_FILTERS,
            "after_created_at": NOW - timedelta(days=200),
            "after_id": 40_000,
            "limit": 51,
        },
    ],
    "users.count_users": [NO_FILTERS, {**NO_FILTERS, "username_prefix": "zoe_silva9"}],
    "events.append_event": [
        {
            "type": "user.created",
            "entity": "user",
            "entity_id": 1,
            "actor": None,
            "data": "{}",
            "trace_id": None,
        }
    ],
    "session.tag_connection": [{"name": "dataservice 4bf92f3577b34da6a3ce929d0e0e4736"}],
    "events.list_events": [
        {"after_xid": 0, "after_id": 0, "types": None, "limit": 100},
        {"after_xid": 0, "after_id": 0, "types": ["user.deleted"], "limit": 100},
    ],
    # Steady state: pruning runs daily, so only the oldest day or so of events is past retention.
    "events.prune_events": [{"retention_seconds": 364 * 86400}],
    "events.announce_events": [{}],
    "idempotency.claim_key": [{"client": "c", "key": "k", "request_hash": b"x", "ttl_seconds": 60}],
    "idempotency.get_key": [{"client": "c", "key": "k"}],
    "idempotency.record_response": [
        {"client": "c", "key": "k", "status": 201, "headers": "{}", "body": b"{}"}
    ],
    "idempotency.prune_keys": [{}],
    "clients.create_client": [
        {
            "name": "n",
            "token_hash": b"x" * 32,
            "scopes": ["users:read"],
            "rate_per_second": 10.0,
            "burst": 20,
            "max_in_flight": 4,
        }
    ],
    "clients.get_active_by_token_hash": [{"token_hash": b"x" * 32}],
    "clients.list_clients": [{}],
    "clients.revoke_client": [{"name": "n"}],
    "clients.set_client_limits": [
        {"name": "n", "rate_per_second": None, "burst": None, "max_in_flight": None}
    ],
    "health.applied_migrations": [{}],
    "organizations.create_organization": [{"slug": "new-one", "name": "New", **OUTBOX}],
    "organizations.get_organization_by_slug": [{"slug": "adams-0"}],  # NULL would plan nothing
    "organizations.update_organization": [
        {"organization_id": 10_000, "slug": None, "name": "Renamed", "versions": [1], **OUTBOX}
    ],
    "organizations.list_organizations_by_id": [
        {**ORG_FILTERS, "after_id": None, "limit": 51},
        {**ORG_FILTERS, "after_id": 15_000, "limit": 51},
        {**ORG_FILTERS, "after_id": None, "slug_prefix": "silva-1", "limit": 51},
        {**ORG_FILTERS, "after_id": None, "member": 4_242, "limit": 51},
        {**ORG_FILTERS, "after_id": 100, "member": 4_242, "limit": 51},
    ],
    "organizations.list_organizations_by_id_desc": [
        {**ORG_FILTERS, "after_id": None, "limit": 51},
        {**ORG_FILTERS, "after_id": None, "member": 4_242, "limit": 51},
    ],
    "organizations.list_organizations_by_created_at": [
        {**ORG_FILTERS, "after_created_at": None, "after_id": None, "limit": 51},
        {
            **ORG_FILTERS,
            "after_created_at": NOW - timedelta(days=100),
            "after_id": 14_000,
            "created_before": NOW - timedelta(days=20),
            "limit": 51,
        },
    ],
    "organizations.list_organizations_by_created_at_desc": [
        {**ORG_FILTERS, "after_created_at": None, "after_id": None, "limit": 51},
    ],
    "organizations.count_organizations": [
        ORG_FILTERS,
        {**ORG_FILTERS, "slug_prefix": "silva-1"},
        {**ORG_FILTERS, "member": 4_242},
    ],
    "memberships.add_membership": [
        {"organization_id": 7, "user_id": 9, "role": "member", **OUTBOX}
    ],
    "memberships.lock_membership": [{"organization_id": 7, "user_id": 9}],
    "memberships.parents_exist": [{"organization_id": 7, "user_id": 9}],
    "memberships.update_role": [{"organization_id": 7, "user_id": 9, "role": "admin", **OUTBOX}],
    "memberships.list_members": [
        {"organization_id": 7, "role": None, "after_user_id": None, "limit": 51},
        {"organization_id": 7, "role": "owner", "after_user_id": 3, "limit": 51},
    ],
    "memberships.count_members": [{"organization_id": 7, "role": None}],
    "memberships.list_memberships_of_user": [
        {"user_id": 4_242, "role": None, "after_organization_id": None, "limit": 51},
        {"user_id": 4_242, "role": "member", "after_organization_id": 100, "limit": 51},
    ],
    "memberships.count_memberships_of_user": [{"user_id": 4_242, "role": None}],
    "replica.replayed_position": [{}],
    "replica.has_replayed": [{"lsn": "0/0"}],
    "replica.current_lsn": [{}],
}


def _catalog_samples() -> dict[str, list[dict]]:
    """The catalog's queries are planned with the example their header declares (a page's
    first page and one further on), so a DBA adding one edits no list here."""
    samples = {}
    for query in Catalog().queries:
        resource = Path(query.file).stem
        example = dict(query.example)
        missing = set(query.client_parameters) - set(example)
        assert not missing, f"{query.where}: its `-- example:` lacks {sorted(missing)}"
        variants = [example]
        if query.page:
            first = {**example, **dict.fromkeys(query.machinery_parameters), "limit": 51}
            variants = [first, {**first, **{f"after_{key}": 1 for key in query.page}}]
        samples[f"{resource}.{query.name}"] = variants
    return samples


SAMPLES.update(_catalog_samples())


def _sample(parameter: str):
    """A value for a parameter of a conventional query: a key is a row's id, `versions` the first
    version, `limit` a page and one; the rest (filters, cursor positions, new values) NULL."""
    if parameter.endswith("_id") and not parameter.startswith("after_"):
        return 4_242
    return {"versions": [1], "limit": 51}.get(parameter)


def _declared_samples() -> dict[str, list[dict]]:
    """One sample for each query the standard verbs of a declared resource run (api/verbs.py):
    a new resource's conventional queries are planned with no line in SAMPLES, which keeps the
    queries written by hand and the variants where a filter changes the plan."""
    blueprints()  # every resource declared
    samples = {}
    for resource in RESOURCES.values():
        for file, name in sorted(resource.used):
            parameters = getattr(getattr(queries, file), name).parameters or ()
            samples[f"{file}.{name}"] = [{p: _sample(p) for p in parameters}]
    return samples


SAMPLES = {**_declared_samples(), **SAMPLES}

# Intentional exceptions, each with its reason.
ALLOWED = {
    # count=exact reads every matching row by definition; clients opt in to paying for it.
    ("users.count_users", 0): "counts all users",
    ("organizations.count_organizations", 0): "counts all organizations",
    # A deep-filtered type scan reads the feed past events of other types until it has a page.
    ("events.list_events", 1): "type filter over a mostly-other-type feed",
}


@pytest.fixture(scope="module")
def planned_db(postgresql_noproc):
    name = postgresql_noproc.dbname + "_explain"
    admin = url_for_database("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(postgresql_noproc.template_dbname)
            )
        )
    with psycopg.connect(url_for_database(name)) as conn:
        for seed in SEEDS.values():
            if seed is not None:
                seed(conn)
        conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE")
        yield conn
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


# Not request traffic, and mostly not plannable (COPY, SET, ANALYZE, LISTEN): migrate's and the
# seed's queries, the feed listener's LISTEN, and the catalog's own (system catalogs read at
# start, a statement timeout set and put back: no table of ours).
NOT_PLANNED_FILES = {"migrate", "seed", "catalog_support"}
NOT_PLANNED = {"events.listen_for_events"}


def named_queries() -> list[str]:
    return sorted(
        f"{resource}.{name}"
        for resource, module in vars(queries).items()
        if resource not in NOT_PLANNED_FILES
        for name in module.available_queries
        if not name.endswith("_cursor")
        and "." not in name
        and f"{resource}.{name}" not in NOT_PLANNED
    )


def nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def test_every_table_is_seeded_and_large_ones_are_large(planned_db):
    tables = {
        name
        for (name,) in planned_db.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename NOT LIKE '%yoyo%'"
        ).fetchall()
    }
    assert tables == set(SEEDS), f"a table without a seed, or a seed without a table: {SEEDS}"
    for table in LARGE_TABLES:
        counted = planned_db.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        ).fetchone()[0]
        assert counted >= 10_000, (table, counted)


def test_every_query_has_sample_parameters():
    missing = sorted(set(named_queries()) - set(SAMPLES))
    templates = "\n".join(sample_template(name) for name in missing)
    assert not missing, (
        f"new queries have no sample parameters: add realistic values (ids that exist in the "
        f"seeded 100,000 users, filters as clients send them) to SAMPLES in {__file__}:\n"
        f"{templates}"
    )
    stale = sorted(set(SAMPLES) - set(named_queries()))
    assert not stale, f"SAMPLES names queries that no longer exist: {stale}"


def sample_template(query_name: str) -> str:
    """The SAMPLES line to fill in for a query, its parameters named."""
    resource, name = query_name.split(".")
    parameters = getattr(getattr(queries, resource), name).parameters or []
    fields = ", ".join(f'"{p}": ...' for p in parameters)
    return f'    "{query_name}": [{{{fields}}}],'


@pytest.mark.parametrize("query_name", sorted(SAMPLES))
def test_plan_uses_indexes_and_stays_cheap(planned_db, query_name):
    resource, name = query_name.split(".")
    query_sql = getattr(getattr(queries, resource), name).sql
    for variant, params in enumerate(SAMPLES[query_name]):
        plan = planned_db.execute(
            "EXPLAIN (FORMAT JSON) " + query_sql, params, prepare=False
        ).fetchone()[0][0]["Plan"]
        seq_scans = [
            n["Relation Name"]
            for n in nodes(plan)
            if n["Node Type"] == "Seq Scan" and n.get("Relation Name") in LARGE_TABLES
        ]
        problems = [f"sequential scan of {seq_scans}"] if seq_scans else []
        if plan["Total Cost"] > MAX_COST:
            problems.append(f"estimated cost {plan['Total Cost']} > {MAX_COST}")
        if (query_name, variant) in ALLOWED:
            assert problems, f"{query_name} #{variant} is fine now: remove it from ALLOWED"
        else:
            assert not problems, (
                f"{query_name} #{variant}: {'; '.join(problems)}. Give it an index (a new "
                f"migration), or, when that is intended, add ({query_name!r}, {variant}) to "
                f"ALLOWED with the reason"
            )
