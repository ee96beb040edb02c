"""Field types shared by the schemas: strings that PostgreSQL and JSON can both carry."""

import re
from datetime import UTC

from marshmallow import ValidationError, fields

BIGINT_MAX = 2**63 - 1  # PostgreSQL bigint, the type of every id
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _check_text(value: str) -> str:
    # PostgreSQL text cannot hold NUL, and a lone surrogate (legal in a JSON \u escape) cannot
    # be encoded as UTF-8: refuse both here, as a 422 naming the field, not as a database error.
    if "\x00" in value:
        raise ValidationError("Must not contain the NUL character.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("Must be valid Unicode (no lone surrogates).") from None
    return value


class Text(fields.String):
    """A string without NUL or lone surrogates."""

    def _deserialize(self, value, attr, data, **kwargs):
        return _check_text(super()._deserialize(value, attr, data, **kwargs))


class Email(fields.Email):
    """An email address as given (not lowercased), with no control characters or spaces."""

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        if _CONTROL.search(value) or " " in value:
            raise ValidationError("Not a valid email address.")
        return _check_text(value)


class UtcDateTime(fields.DateTime):
    """RFC 3339 in UTC whatever the session's TimeZone (behind PgBouncer it is the server's)."""

    def _serialize(self, value, attr, obj, **kwargs):
        return super()._serialize(value.astimezone(UTC) if value else value, attr, obj, **kwargs)
