"""What every list endpoint takes and gives: a keyset page (store/pages.py, api/pages.py)."""

from marshmallow import Schema, fields, validate

from .fields import Text

CURSOR_MAX_LENGTH = 2048


class PageArgs(Schema):
    """The query parameters every list shares; a resource's schema adds `sort` (`sorting`) and
    its filters."""

    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    cursor = Text(
        validate=validate.Length(max=CURSOR_MAX_LENGTH),
        metadata={"description": "The next_cursor of the previous page, as is."},
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
