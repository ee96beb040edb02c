"""Data access for organizations."""

import psycopg

from .. import integrity
from ..queries import queries
from . import events
from .pages import Listing, Sort
from .rows import current, found, written

q = queries.organizations

EVENTS = events.declare("organization", "created", "updated", "deleted")
integrity.declare(organizations_slug_key=integrity.unique("slug"))
LISTING = Listing(
    {
        "id": Sort(q.list_organizations_by_id, "id"),
        "-id": Sort(q.list_organizations_by_id_desc, "id"),
        "created_at": Sort(q.list_organizations_by_created_at, "created_at", "id"),
        "-created_at": Sort(q.list_organizations_by_created_at_desc, "created_at", "id"),
    },
    count=q.count_organizations,
)
MISSING = "no organization with this id"


def create(conn: psycopg.Connection, *, slug: str, name: str) -> dict:
    return q.create_organization(conn, slug=slug, name=name)


def get(conn: psycopg.Connection, organization_id: int) -> dict:
    row = q.get_organization(conn, organization_id=organization_id)
    return found(row, MISSING, "organization_id")


def get_by_slug(conn: psycopg.Connection, slug: str) -> dict:
    return found(q.get_organization_by_slug(conn, slug=slug), "no organization with this slug")


def update(
    conn: psycopg.Connection,
    organization_id: int,
    *,
    slug: str | None,
    name: str | None,
    versions: list[int] | None,
) -> dict:
    """`versions`: the If-Match versions (None: no precondition)."""
    row = q.update_organization(
        conn, organization_id=organization_id, slug=slug, name=name, versions=versions
    )
    version = lambda: q.get_organization_version(conn, organization_id=organization_id)  # noqa: E731
    return written(row, versions, version, MISSING)


def lock(conn: psycopg.Connection, organization_id: int, versions: list[int] | None) -> dict:
    """The organization, locked for a conditional delete."""
    return current(q.lock_organization(conn, organization_id=organization_id), versions, MISSING)


def delete(conn: psycopg.Connection, organization_id: int) -> None:
    """Deletes a locked organization and its memberships."""
    q.delete_organization(conn, organization_id=organization_id)
