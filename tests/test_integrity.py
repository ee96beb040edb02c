"""Integrity errors become problems naming the field, whichever constraint fires and wherever:
declared ones as their resource says, undeclared ones by their kind; never a 500."""

import pytest

from dataservice import db as db_module
from dataservice import integrity
from dataservice.errors import Conflict, Invalid, LastOwner, NotFound

from .support import BCRYPT_HASH, new_user


@pytest.fixture
def conn(app):
    """A connection lent the way a request borrows one (errors translated on the way out)."""
    with app.app_context():
        yield db_module.get()


def test_declared_constraints_mean_what_their_resource_says(conn, client):
    client.post("/api/v1/users", json=new_user(1))
    with pytest.raises(Conflict) as taken, conn.connection() as c:
        c.execute(
            "INSERT INTO users (email, username, password_hash) VALUES ('x@y.io', 'USER1', %s)",
            (BCRYPT_HASH,),
        )
    assert taken.value.extra["errors"] == {"username": ["Already taken (case-insensitive)."]}
    with pytest.raises(Invalid) as dangling, conn.connection() as c:
        c.execute("INSERT INTO memberships (organization_id, user_id, role) VALUES (1, 1, 'x')")
    assert list(dangling.value.extra["errors"]) in (["organization_id"], ["role"])


@pytest.mark.parametrize(
    "statement, error, field",
    [
        # a check nobody declared: named by PostgreSQL's <table>_<column>_check
        ("UPDATE users SET username = 'no spaces allowed'", Invalid, "username"),
        ("UPDATE users SET email = 'nope'", Invalid, "email"),
        ("INSERT INTO organizations (slug, name) VALUES ('UPPER', 'x')", Invalid, "slug"),
        ("INSERT INTO organizations (slug, name) VALUES ('fine', NULL)", Invalid, "name"),
        ("UPDATE users SET version = 0", Invalid, "version"),
    ],
)
def test_undeclared_constraints_still_name_the_field(conn, client, statement, error, field):
    client.post("/api/v1/users", json=new_user(1))
    with pytest.raises(error) as raised, conn.connection() as c:
        c.execute(statement)
    assert list(raised.value.extra["errors"]) == [field]


def test_a_rule_broken_at_commit_is_translated_too(conn):
    # organizations_start_with_an_owner is deferred: it fires at COMMIT, outside any statement.
    with pytest.raises(LastOwner) as raised, conn.transaction() as c:
        c.execute("INSERT INTO organizations (slug, name) VALUES ('ownerless', 'x')")
    assert len(raised.value.extra["organizations"]) == 1


def test_one_call_may_give_a_constraint_another_meaning(conn):
    with (
        pytest.raises(NotFound) as raised,
        conn.transaction() as c,
        integrity.meaning(
            memberships_organization_id_fkey=integrity.reference(
                "organization_id", "org", in_path=True
            )
        ),
    ):
        c.execute("INSERT INTO memberships (organization_id, user_id, role) VALUES (9, 9, 'owner')")
    assert raised.value.extra["errors"] == {"organization_id": ["No org with this id."]}


def test_every_constraint_of_the_service_is_named_for_clients(db):
    """Every unique index, foreign key and check on the service's tables maps to a field: by its
    resource's declaration, or by PostgreSQL's <table>_<column>_<kind> naming. A constraint
    named otherwise would reach clients as '_schema'."""
    import dataservice.api.memberships
    import dataservice.api.organizations
    import dataservice.api.users  # noqa: F401

    rows = db.execute(
        "SELECT conrelid::regclass::text, conname FROM pg_constraint"
        " WHERE connamespace = 'public'::regnamespace AND contype IN ('u', 'f', 'c', 'p')"
        " UNION SELECT indrelid::regclass::text, relname FROM pg_index JOIN pg_class"
        " ON pg_class.oid = indexrelid"
        " WHERE indisunique AND relnamespace = 'public'::regnamespace"
    ).fetchall()
    assert len(rows) > 20
    unnamed = []
    for table, name in rows:
        if table.startswith(("_yoyo", "yoyo")) or name in integrity._DECLARED:
            continue
        stripped = name.removeprefix(f"{table}_")
        if name != f"{table}_pkey" and (
            stripped == name or not stripped.endswith(("_key", "_fkey", "_check"))
        ):
            unnamed.append(name)
    assert unnamed == [], unnamed
