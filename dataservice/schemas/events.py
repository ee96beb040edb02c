"""The change feed's query and page."""

from marshmallow import Schema, ValidationError, fields, validate

from ..store.events import TYPES
from .fields import Text, UtcDateTime


def _known_types(value: str) -> None:
    unknown = set(value.split(",")) - set(TYPES)
    if unknown:
        raise ValidationError(f"Unknown event types; known: {', '.join(TYPES)}.")


class EventListArgs(Schema):
    after = Text(
        validate=validate.Length(max=512),
        metadata={
            "description": "The next_cursor of the previous page; omit to start "
            "from the oldest event kept."
        },
    )
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    types = Text(
        validate=_known_types, metadata={"description": "Comma-separated event types to include."}
    )
    wait = fields.Float(
        load_default=0,
        validate=validate.Range(min=0, max=30),
        metadata={"description": "Seconds to hold an empty page open for new events (long poll)."},
    )


class EventOut(Schema):
    id = fields.Integer(required=True)
    type = fields.String(required=True, validate=validate.OneOf(TYPES))
    entity = fields.String(required=True)
    entity_id = fields.Integer(required=True)
    occurred_at = UtcDateTime(required=True)
    actor = fields.String(allow_none=True)
    data = fields.Dict(required=True)


class EventPage(Schema):
    items = fields.List(fields.Nested(EventOut), required=True)
    next_cursor = fields.String(
        required=True, metadata={"description": "Pass back as `after`; always present."}
    )
