"""The change feed's query and page."""

import re

from marshmallow import Schema, ValidationError, fields, validate

from ..event_types import TYPES
from .fields import Pattern, UtcDateTime, text
from .pages import CURSOR


class KnownTypes(Pattern):
    """Comma-separated declared event types. The pattern is built when it is used (the document,
    a request), once every resource module has declared its types."""

    def __init__(self):
        pass

    @property
    def regex(self) -> re.Pattern:
        one = "(?:" + "|".join(re.escape(t) for t in TYPES) + ")"
        return re.compile(f"^{one}(?:,{one})*$")

    def __call__(self, value: str) -> str:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(f"Comma-separated event types; known: {', '.join(TYPES)}.")
        return value


class EventListArgs(Schema):
    after = text(
        **CURSOR,
        description="The next_cursor of the previous page; omit to start from the oldest event "
        "kept. (That it is one this service issued, unaltered, is checked too: a 400 otherwise.)",
    )
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    types = text(
        max_length=1024,
        validate=[KnownTypes()],
        description="Comma-separated event types to include.",
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
    trace_id = fields.String(
        allow_none=True,
        metadata={
            "description": "The W3C trace id (32 hex digits) of the request that made the "
            "change: its OpenTelemetry trace, or the trace its traceparent header named; null "
            "when neither.",
            "pattern": "^[0-9a-f]{32}$",
            "example": "4bf92f3577b34da6a3ce929d0e0e4736",
        },
    )


class EventPage(Schema):
    items = fields.List(fields.Nested(EventOut), required=True)
    next_cursor = fields.String(
        required=True, metadata={"description": "Pass back as `after`; always present."}
    )
