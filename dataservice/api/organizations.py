"""HTTP for the organizations resource: its standard verbs built from the declaration
(api/verbs.py); the create, with its owner's membership, written here."""

from .. import db, integrity
from ..queries import queries
from ..schemas import organizations as schemas
from . import verbs
from .memberships import MEMBERSHIPS
from .resource import Resource, outbox

q = queries.organizations
integrity.declare(organizations_slug_key=integrity.unique("slug"))
ORGANIZATIONS = Resource(
    "organizations",
    out=schemas.OrganizationOut,
    create=schemas.OrganizationCreate,
    patch=schemas.OrganizationPatch,
    list_args=schemas.OrganizationListArgs,
    description="Organizations of users; each keeps at least one owner.",
    docs={"list": "List organizations a page at a time (keyset pagination, as for users)."},
    taken="The slug is taken.",
    cascade=MEMBERSHIPS,
    links={
        "list_members": {"organization_id": "$response.body#/id"},
        "get_organization_by_slug": {"slug": "$response.body#/slug"},
    },
)
blp = ORGANIZATIONS.blp


@verbs.creates(ORGANIZATIONS)
def create_organization(data):
    """Create an organization, owned by `owner_id` (its first membership)."""
    with db.write() as conn:  # each statement records its event
        organization = q.create_organization(conn, slug=data["slug"], name=data["name"], **outbox())
        with integrity.meaning(memberships_user_id_fkey=integrity.reference("owner_id", "user")):
            queries.memberships.add_membership(
                conn,
                organization_id=organization["id"],
                user_id=data["owner_id"],
                role="owner",
                **outbox(),
            )
    return ORGANIZATIONS.created(organization)


verbs.serve(ORGANIZATIONS, "list", "get", "by_slug", "patch", "delete")
