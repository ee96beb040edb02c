"""HTTP for the organizations resource. An organization is created with its owner's membership
(api/memberships.py has the rest of them) and always keeps an owner. The standard verbs come
from the declaration (api/verbs.py); the create, with its owner, is written here."""

from .. import db, integrity
from ..auth import requires
from ..integrity import reference
from ..openapi import links
from ..queries import queries
from ..schemas.organizations import (
    OrganizationCreate,
    OrganizationListArgs,
    OrganizationOut,
    OrganizationPage,
    OrganizationPatch,
)
from . import verbs
from .idempotency import idempotent
from .memberships import MEMBERSHIPS
from .resource import CREATED_HEADERS, Resource

integrity.declare(organizations_slug_key=integrity.unique("slug"))
ORGANIZATIONS = Resource(
    "organizations",
    out=OrganizationOut,
    patch=OrganizationPatch,
    list_args=OrganizationListArgs,
    page=OrganizationPage,
    description="Organizations of users; each keeps at least one owner.",
    docs={
        "list": "List organizations a page at a time (keyset pagination, as for users).",
        "delete": "Delete an organization and its memberships.",
    },
    taken="The slug is taken.",
    cascade=MEMBERSHIPS,
)
blp = ORGANIZATIONS.blp
_THE_ORGANIZATION = {"organization_id": "$response.body#/id"}


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
    with db.transaction() as conn:
        organization = queries.organizations.create_organization(
            conn, slug=data["slug"], name=data["name"]
        )
        with integrity.meaning(memberships_user_id_fkey=reference("owner_id", "user")):
            owner = queries.memberships.add_membership(
                conn, organization_id=organization["id"], user_id=data["owner_id"], role="owner"
            )
        ORGANIZATIONS.record(conn, "created", organization)
        MEMBERSHIPS.record(conn, "created", owner)
    return ORGANIZATIONS.created(organization)


verbs.serve(ORGANIZATIONS, "list", "get", "by_slug", "patch", "delete")
