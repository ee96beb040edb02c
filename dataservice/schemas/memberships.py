"""What a client sends to the memberships resource and what it gets back."""

from marshmallow import Schema, fields, validate

from .fields import UtcDateTime
from .pages import PageArgs, page_of, sorting

ROLES = ("owner", "admin", "member")
ROLE = {"validate": validate.OneOf(ROLES)}


class MembershipPut(Schema):
    role = fields.String(required=True, **ROLE)


class MembershipOut(Schema):
    organization_id = fields.Integer(required=True)
    user_id = fields.Integer(required=True)
    role = fields.String(required=True, **ROLE)
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)


class MemberListArgs(PageArgs):
    sort = sorting("user_id")
    role = fields.String(**ROLE)


class UserMembershipListArgs(PageArgs):
    sort = sorting("organization_id")
    role = fields.String(**ROLE)


MembershipPage = page_of(MembershipOut, "MembershipPage")
