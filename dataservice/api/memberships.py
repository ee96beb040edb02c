"""HTTP for memberships: /organizations/{id}/members/{user_id} and a user's memberships. Each
membership has its own ETag; the database refuses to leave an organization without an owner
(409 last-owner, naming the organizations)."""

from .. import db
from ..auth import requires
from ..openapi import links
from ..schemas.memberships import (
    MemberListArgs,
    MembershipOut,
    MembershipPage,
    MembershipPut,
    UserMembershipListArgs,
)
from ..store import memberships as store
from ..store import organizations, users
from .idempotency import idempotent
from .pages import page
from .parsing import Blueprint
from .resource import CREATED_HEADERS, ETAG_HEADER, Resource, etag, if_match

blp = Blueprint(
    "memberships",
    __name__,
    url_prefix="/api/v1",
    description="Who belongs to which organization: owner, admin or member.",
)

MEMBERSHIPS = Resource(MembershipOut(), endpoint="memberships.get_member", events=store.EVENTS)
MEMBER = "/organizations/<bigint:organization_id>/members/<bigint:user_id>"
_THE_MEMBERSHIP = {
    "organization_id": "$response.body#/organization_id",
    "user_id": "$response.body#/user_id",
}
LAST_OWNER = "It would leave the organization without an owner (last-owner)."


@blp.route(MEMBER, methods=["PUT"])
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
    with db.write() as conn:
        membership, change = store.put(conn, organization_id, user_id, data["role"], if_match())
        if change is not None:
            MEMBERSHIPS.record(conn, f"membership.{change}", membership)
    if change == "created":
        body, headers = MEMBERSHIPS.created(
            membership, organization_id=organization_id, user_id=user_id
        )
        return body, 201, headers
    return membership, etag(membership)


@blp.route(MEMBER, methods=["GET"])
@requires("organizations:read")
@blp.response(200, MembershipOut, headers=ETAG_HEADER)
def get_member(organization_id, user_id):
    """Get one membership."""
    with db.read() as conn:
        return MEMBERSHIPS.read(store.get(conn, organization_id, user_id))


@blp.route(MEMBER, methods=["DELETE"])
@requires("organizations:write")
@idempotent
@blp.response(204)
@blp.alt_response(409, description=LAST_OWNER)
def delete_member(organization_id, user_id):
    """Remove a user from an organization."""
    with db.write() as conn:
        membership = store.remove(conn, organization_id, user_id, if_match())
        MEMBERSHIPS.record(conn, "membership.deleted", membership)
    return None, 204


@blp.route("/organizations/<bigint:organization_id>/members", methods=["GET"])
@requires("organizations:read")
@blp.arguments(MemberListArgs(), location="query")
@blp.response(200, MembershipPage)
@blp.alt_response(400, description="The cursor was altered or belongs to another query.")
def list_members(args, organization_id):
    """An organization's memberships, a page at a time."""
    with db.read() as conn:
        organizations.get(conn, organization_id)  # a missing organization is a 404
    return page(store.MEMBERS, args, organization_id=organization_id)


@blp.route("/users/<bigint:user_id>/memberships", methods=["GET"])
@requires("organizations:read")
@blp.arguments(UserMembershipListArgs(), location="query")
@blp.response(200, MembershipPage)
@blp.alt_response(400, description="The cursor was altered or belongs to another query.")
def list_user_memberships(args, user_id):
    """A user's memberships, a page at a time."""
    with db.read() as conn:
        users.get_user(conn, user_id)  # a missing user is a 404
    return page(store.OF_USER, args, user_id=user_id)
