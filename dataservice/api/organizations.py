"""HTTP for the organizations resource. An organization is created with its owner's membership
(api/memberships.py has the rest of them) and always keeps an owner."""

from .. import db
from ..auth import requires
from ..integrity import reference
from ..openapi import links
from ..schemas.organizations import (
    OrganizationCreate,
    OrganizationListArgs,
    OrganizationOut,
    OrganizationPage,
    OrganizationPatch,
)
from ..store import memberships
from ..store import organizations as store
from .idempotency import idempotent
from .memberships import MEMBERSHIPS
from .pages import page
from .parsing import Blueprint
from .resource import CREATED_HEADERS, ETAG_HEADER, Resource, etag, if_match

blp = Blueprint(
    "organizations",
    __name__,
    url_prefix="/api/v1/organizations",
    description="Organizations of users; each keeps at least one owner.",
)

_THE_ORGANIZATION = {"organization_id": "$response.body#/id"}
ORGANIZATIONS = Resource(
    OrganizationOut(), endpoint="organizations.get_organization", events=store.EVENTS
)


@blp.route("", methods=["POST"], strict_slashes=False)
@requires("organizations:write")
@idempotent
@blp.arguments(OrganizationCreate())
@blp.response(201, OrganizationOut, headers=CREATED_HEADERS)
@blp.alt_response(409, description="The slug is taken.")
@links(
    201,
    get_organization=_THE_ORGANIZATION,
    update_organization=_THE_ORGANIZATION,
    delete_organization=_THE_ORGANIZATION,
    list_members=_THE_ORGANIZATION,
    get_organization_by_slug={"slug": "$response.body#/slug"},
)
def create_organization(data):
    """Create an organization, owned by `owner_id` (its first membership)."""
    with db.write() as conn:
        organization = store.create(conn, slug=data["slug"], name=data["name"])
        owner = memberships.add(
            conn,
            organization["id"],
            data["owner_id"],
            "owner",
            memberships_user_id_fkey=reference("owner_id", "user"),
        )
        ORGANIZATIONS.record(conn, "organization.created", organization)
        MEMBERSHIPS.record(conn, "membership.created", owner)
    return ORGANIZATIONS.created(organization, organization_id=organization["id"])


@blp.route("", methods=["GET"], strict_slashes=False)
@requires("organizations:read")
@blp.arguments(OrganizationListArgs(), location="query")
@blp.response(200, OrganizationPage)
@blp.alt_response(400, description="The cursor was altered or belongs to another query.")
def list_organizations(args):
    """List organizations a page at a time (keyset pagination, as for users)."""
    return page(store.LISTING, args)


@blp.route("/<bigint:organization_id>", methods=["GET"])
@requires("organizations:read")
@blp.response(200, OrganizationOut, headers=ETAG_HEADER)
def get_organization(organization_id):
    """Get an organization by id."""
    with db.read() as conn:
        return ORGANIZATIONS.read(store.get(conn, organization_id))


@blp.route("/by-slug/<slug:slug>", methods=["GET"])
@requires("organizations:read")
@blp.response(200, OrganizationOut, headers=ETAG_HEADER)
def get_organization_by_slug(slug):
    """Get an organization by slug."""
    with db.read() as conn:
        return ORGANIZATIONS.read(store.get_by_slug(conn, slug))


@blp.route("/<bigint:organization_id>", methods=["PATCH"])
@requires("organizations:write")
@idempotent
@blp.arguments(OrganizationPatch(), content_type="application/merge-patch+json")
@blp.response(200, OrganizationOut, headers=ETAG_HEADER)
@blp.alt_response(409, description="The slug is taken.")
def update_organization(data, organization_id):
    """Change the slug and/or the name (JSON merge patch)."""
    with db.write() as conn:
        organization = store.update(
            conn, organization_id, slug=data.get("slug"), name=data.get("name"), versions=if_match()
        )
        ORGANIZATIONS.record(conn, "organization.updated", organization)
    return organization, etag(organization)


@blp.route("/<bigint:organization_id>", methods=["DELETE"])
@requires("organizations:write")
@idempotent
@blp.response(204)
def delete_organization(organization_id):
    """Delete an organization and its memberships."""
    with db.write() as conn:
        organization = store.lock(conn, organization_id, if_match())
        removed = memberships.of_organization(conn, organization_id)
        store.delete(conn, organization_id)
        for membership in removed:
            MEMBERSHIPS.record(conn, "membership.deleted", membership)
        ORGANIZATIONS.record(conn, "organization.deleted", organization)
    return None, 204
