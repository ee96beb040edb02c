"""What a client sends to the organizations resource and what it gets back."""

from marshmallow import Schema, fields

from .fields import UtcDateTime, at_least_one, id_field, text
from .pages import PageArgs, sorting

SLUG = {
    "pattern": r"^[a-z0-9-]{3,63}$",
    "min_length": 3,
    "max_length": 63,
    "error": "3 to 63 characters of a-z, 0-9 and '-'.",
    "description": "The organization's URL name; unique.",
}
NAME = {"min_length": 1, "max_length": 200}


class OrganizationCreate(Schema):
    slug = text(required=True, **SLUG)
    name = text(required=True, **NAME)
    owner_id = id_field(
        strict=True, required=True, metadata={"description": "The user who owns it from the start."}
    )


class OrganizationPatch(Schema):
    """A JSON merge patch of the organization's changeable fields; at least one of them."""

    slug = text(**SLUG)
    name = text(**NAME)
    _not_empty = at_least_one("slug", "name")


class OrganizationOut(Schema):
    id = fields.Integer(required=True)
    slug = fields.String(required=True)
    name = fields.String(required=True)
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)


class OrganizationListArgs(PageArgs):
    sort = sorting("id", "-id", "created_at", "-created_at")
    slug_prefix = text(
        pattern=r"^[a-z0-9-]{1,63}$",
        min_length=1,
        max_length=63,
        error="1 to 63 slug characters.",
        description="Prefix of the slug.",
    )
    created_after = fields.AwareDateTime(metadata={"description": "RFC 3339, exclusive."})
    created_before = fields.AwareDateTime(metadata={"description": "RFC 3339, exclusive."})
    member = id_field(metadata={"description": "Only organizations this user belongs to."})
