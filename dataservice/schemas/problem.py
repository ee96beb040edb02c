"""What every error response carries: an RFC 9457 problem (errors.py builds it; this schema
documents it in the OpenAPI document)."""

from marshmallow import INCLUDE, Schema, fields


class Problem(Schema):
    class Meta:
        unknown = INCLUDE  # RFC 9457 lets a problem carry extension members

    type = fields.String(
        required=True,
        metadata={
            "description": "URI naming the problem: urn:dataservice:problem:<slug>, "
            "or about:blank when the HTTP status says it all.",
            "example": "urn:dataservice:problem:not-found",
        },
    )
    title = fields.String(required=True, metadata={"description": "The status's short name."})
    status = fields.Integer(required=True, metadata={"description": "The HTTP status code."})
    detail = fields.String(
        required=True, metadata={"description": "What went wrong, for a human to read."}
    )
    request_id = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "The X-Request-ID of the request; quote it when reporting."},
    )
    errors = fields.Dict(
        keys=fields.String(),
        metadata={
            "description": "For 409 and 422: the offending fields, each with its messages, "
            'e.g. {"email": ["Not a valid email address."]}.'
        },
    )
