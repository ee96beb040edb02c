"""What every list endpoint takes and gives: a keyset page (store/pages.py, api/pages.py)."""

from marshmallow import Schema, fields, validate

from .fields import text

# A cursor is base64url (api/cursors.py), ~150 characters for the longest position: short
# enough that a URL with every parameter at its longest stays within gunicorn's request line.
CURSOR = {
    "pattern": r"^[A-Za-z0-9_-]+$",
    "min_length": 1,
    "max_length": 512,
    "error": "Not a cursor this service issued.",
}


class PageArgs(Schema):
    """The query parameters every list shares; a resource's schema adds `sort` (`sorting`) and
    its filters."""

    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    cursor = text(
        **CURSOR,
        description="The next_cursor of the previous page, as is. (That it is one this service "
        "issued for this query, unaltered, is checked too: a 400 otherwise.)",
    )
    count = fields.String(
        validate=validate.OneOf(["exact"]),
        metadata={"description": "exact: add the total number of matches."},
    )


def sorting(*sorts: str) -> fields.String:
    """The `sort` parameter: one of `sorts`, the first by default."""
    return fields.String(load_default=sorts[0], validate=validate.OneOf(sorts))


def page_of(item: type[Schema], name: str) -> type[Schema]:
    """The page schema of a list of `item`s, named `name` in the OpenAPI document."""
    return Schema.from_dict(
        {
            "items": fields.List(fields.Nested(item), required=True),
            "next_cursor": fields.String(
                required=True,
                allow_none=True,
                metadata={"description": "Pass back as `cursor` for the next page; null: last."},
            ),
            "total": fields.Integer(metadata={"description": "Only with count=exact."}),
        },
        name=name,
    )
