"""Data access for memberships: a user's role (owner, admin, member) in an organization. The
database keeps every organization with an owner (migration 0016): a write that would leave one
without fails with LastOwner, naming the organizations."""

import psycopg

from .. import integrity
from ..errors import NotFound, PreconditionFailed
from ..queries import queries
from . import events
from .pages import Listing, Sort
from .rows import found, written

q = queries.memberships

EVENTS = events.declare("membership", "created", "updated", "deleted")
integrity.declare(
    memberships_keep_an_owner=integrity.keeps_an_owner,
    memberships_organization_id_fkey=integrity.reference("organization_id", "organization"),
    memberships_user_id_fkey=integrity.reference("user_id", "user"),
)
# The URL names both parents of a membership: a missing one is that URL's 404.
_IN_PATH = {
    "memberships_organization_id_fkey": integrity.reference(
        "organization_id", "organization", in_path=True
    ),
    "memberships_user_id_fkey": integrity.reference("user_id", "user", in_path=True),
}
MEMBERS = Listing({"user_id": Sort(q.list_members, "user_id")}, count=q.count_members)
OF_USER = Listing(
    {"organization_id": Sort(q.list_memberships_of_user, "organization_id")},
    count=q.count_memberships_of_user,
)
MISSING = "no membership of this user in this organization"


def add(conn: psycopg.Connection, organization_id: int, user_id: int, role: str, **meaning):
    """Adds a user to an organization; None when they are a member already. `meaning`: what a
    missing organization or user means here (integrity.meaning), a 422 by default."""
    with integrity.meaning(**meaning):
        return q.add_membership(conn, organization_id=organization_id, user_id=user_id, role=role)


def get(conn: psycopg.Connection, organization_id: int, user_id: int) -> dict:
    return found(q.get_membership(conn, organization_id=organization_id, user_id=user_id), MISSING)


def put(
    conn: psycopg.Connection,
    organization_id: int,
    user_id: int,
    role: str,
    versions: list[int] | None,
) -> tuple[dict, str | None]:
    """Makes the user a member with `role`: returns the membership and what happened to it,
    "created", "updated" or None (it had that role already). `versions`: the If-Match
    versions; a membership that does not exist matches none of them."""
    keys = {"organization_id": organization_id, "user_id": user_id}
    existing = q.lock_membership(conn, **keys)
    if existing is None and versions is None:
        added = add(conn, organization_id, user_id, role, **_IN_PATH)
        if added is not None:
            return added, "created"
        existing = q.lock_membership(conn, **keys)  # added by someone else meanwhile
    if existing is None:
        parents = q.parents_exist(conn, **keys)
        if not parents["organization_exists"]:
            raise NotFound("no organization with this id", field="organization_id")
        if not parents["user_exists"]:
            raise NotFound("no user with this id", field="user_id")
        raise PreconditionFailed()
    if versions is not None and existing["version"] not in versions:
        raise PreconditionFailed()
    if existing["role"] == role:
        return existing, None
    return q.update_role(conn, **keys, role=role), "updated"


def remove(
    conn: psycopg.Connection, organization_id: int, user_id: int, versions: list[int] | None
) -> dict:
    """Removes one membership; returns it as it was."""
    keys = {"organization_id": organization_id, "user_id": user_id}
    row = q.remove_membership(conn, **keys, versions=versions)
    return written(row, versions, lambda: q.get_membership_version(conn, **keys), MISSING)


def of_organization(conn: psycopg.Connection, organization_id: int) -> list[dict]:
    return list(q.memberships_of_organization(conn, organization_id=organization_id))


def of_user(conn: psycopg.Connection, user_id: int) -> list[dict]:
    return list(q.memberships_of_user(conn, user_id=user_id))
