"""HTTP for memberships: /organizations/{id}/members/{user_id} and a user's memberships. Each
membership has its own ETag; the database refuses to leave an organization without an owner
(409 last-owner, naming the organizations). Its GET and DELETE are the standard verbs
(api/verbs.py); the PUT (an upsert) and the two lists under their parents are written here."""

from .. import db, integrity
from ..auth import requires
from ..errors import NotFound, PreconditionFailed
from ..openapi import links
from ..queries import queries
from ..schemas.memberships import (
    MemberListArgs,
    MembershipOut,
    MembershipPage,
    MembershipPut,
    UserMembershipListArgs,
)
from ..store.pages import Listing, Sort
from . import verbs
from .idempotency import idempotent
from .pages import page
from .resource import CREATED_HEADERS, ETAG_HEADER, RESOURCES, Resource, etag, if_match, outbox

q = queries.memberships
integrity.declare(
    memberships_keep_an_owner=integrity.keeps_an_owner,
    memberships_organization_id_fkey=integrity.reference("organization_id", "organization"),
    memberships_user_id_fkey=integrity.reference("user_id", "user"),
)
LAST_OWNER = "It would leave the organization without an owner (last-owner)."
MEMBERSHIPS = Resource(
    "memberships",
    out=MembershipOut,
    key=("organization_id", "user_id"),
    scopes=("organizations:read", "organizations:write"),
    url_prefix="/api/v1",
    item="/organizations/<bigint:organization_id>/members/<bigint:user_id>",
    description="Who belongs to which organization: owner, admin or member.",
    queries={"delete": "remove_membership"},
    views={"get": "get_member", "delete": "delete_member"},
    docs={"get": "Get one membership.", "delete": "Remove a user from an organization."},
    absent="no membership of this user in this organization",
    delete_conflict=LAST_OWNER,
)
blp = MEMBERSHIPS.blp
_THE_MEMBERSHIP = {
    "organization_id": "$response.body#/organization_id",
    "user_id": "$response.body#/user_id",
}
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


def put(conn, keys: dict, role: str, versions: list[int] | None) -> tuple[dict, str | None]:
    """Makes the user a member with `role`: returns the membership and what happened to it,
    "created", "updated" or None (it had that role already; no event). `versions`: the If-Match
    versions; a membership that does not exist matches none of them."""
    existing = q.lock_membership(conn, **keys)
    if existing is None and versions is None:
        with integrity.meaning(**_IN_PATH):
            added = q.add_membership(conn, **keys, role=role, **outbox())
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
    return q.update_role(conn, **keys, role=role, **outbox()), "updated"


@blp.route(MEMBERSHIPS.item, methods=["PUT"])
@requires("organizations:write")
@idempotent
@blp.arguments(MembershipPut())
@blp.response(200, MembershipOut, headers=ETAG_HEADER)
@blp.alt_response(201, schema=MembershipOut, headers=CREATED_HEADERS, description="Added.")
@blp.alt_response(409, description=LAST_OWNER)
@links(200, get_member=_THE_MEMBERSHIP, delete_member=_THE_MEMBERSHIP)
@links(201, get_member=_THE_MEMBERSHIP, delete_member=_THE_MEMBERSHIP)
def put_member(data, organization_id, user_id):
    """Make a user a member of an organization with this role (200 when they were one)."""
    keys = {"organization_id": organization_id, "user_id": user_id}
    with db.write() as conn:
        membership, change = put(conn, keys, data["role"], if_match())
    if change == "created":
        body, headers = MEMBERSHIPS.created(membership)
        return body, 201, headers
    return membership, etag(membership)


verbs.serve(MEMBERSHIPS, "get", "delete")


@blp.route("/organizations/<bigint:organization_id>/members", methods=["GET"])
@requires("organizations:read")
@blp.arguments(MemberListArgs(), location="query")
@blp.response(200, MembershipPage)
@blp.alt_response(400, description=verbs.CURSOR_ALTERED)
def list_members(args, organization_id):
    """An organization's memberships, a page at a time."""
    with db.read() as conn:  # a missing organization is a 404
        verbs.one(RESOURCES["organizations"], conn, organization_id=organization_id)
    return page(MEMBERS, args, organization_id=organization_id)


@blp.route("/users/<bigint:user_id>/memberships", methods=["GET"])
@requires("organizations:read")
@blp.arguments(UserMembershipListArgs(), location="query")
@blp.response(200, MembershipPage)
@blp.alt_response(400, description=verbs.CURSOR_ALTERED)
def list_user_memberships(args, user_id):
    """A user's memberships, a page at a time."""
    with db.read() as conn:  # a missing user is a 404
        verbs.one(RESOURCES["users"], conn, user_id=user_id)
    return page(OF_USER, args, user_id=user_id)
