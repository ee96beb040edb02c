"""What a client sends to the organizations resource and what it gets back."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from .fields import BIGINT_MAX, Text, UtcDateTime
from .pages import PageArgs, page_of, sorting

SLUG_PATTERN = r"^[a-z0-9-]{3,63}$"
SLUG = {
    "validate": validate.Regexp(SLUG_PATTERN, error="3 to 63 characters of a-z, 0-9 and '-'."),
    "metadata": {
        "description": "The organization's URL name; unique.",
        "pattern": SLUG_PATTERN,
        "minLength": 3,
        "maxLength": 63,
    },
}
NAME = {"validate": validate.Length(min=1, max=200)}


def id_field(**kwargs) -> fields.Integer:
    """A row id: a positive 64-bit integer (in a body, strictly a JSON integer)."""
    return fields.Integer(validate=validate.Range(min=1, max=BIGINT_MAX), **kwargs)


class OrganizationCreate(Schema):
    slug = Text(required=True, **SLUG)
    name = Text(required=True, **NAME)
    owner_id = id_field(
        strict=True, required=True, metadata={"description": "The user who owns it from the start."}
    )


class OrganizationPatch(Schema):
    """A JSON merge patch of the organization's changeable fields; at least one of them."""

    slug = Text(**SLUG)
    name = Text(**NAME)

    @validates_schema
    def _not_empty(self, data, **kwargs):
        if not data:
            raise ValidationError("Give at least one of slug or name.", "_schema")


class OrganizationOut(Schema):
    id = fields.Integer(required=True)
    slug = fields.String(required=True)
    name = fields.String(required=True)
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)


class OrganizationListArgs(PageArgs):
    sort = sorting("id", "-id", "created_at", "-created_at")
    slug_prefix = Text(
        validate=validate.Regexp(r"^[a-z0-9-]{1,63}$", error="1 to 63 slug characters."),
        metadata={"description": "Prefix of the slug."},
    )
    created_after = fields.AwareDateTime(metadata={"description": "RFC 3339, exclusive."})
    created_before = fields.AwareDateTime(metadata={"description": "RFC 3339, exclusive."})
    member = id_field(metadata={"description": "Only organizations this user belongs to."})


OrganizationPage = page_of(OrganizationOut, "OrganizationPage")
