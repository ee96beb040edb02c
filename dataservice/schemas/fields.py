"""Field types shared by the schemas: strings that PostgreSQL and JSON can both carry, and the
helpers that state each rule once, as the validator that enforces it. apispec writes the
documented form from the validators themselves (validate.Length: minLength/maxLength,
Pattern: pattern, validate.OneOf: enum, validate.Range: minimum/maximum), and openapi.py adds
the JSON Schema a schema-level rule carries (`exactly_one_of`, `at_least_one`)."""

import re
from datetime import UTC

from marshmallow import ValidationError, fields, validate, validates_schema

BIGINT_MAX = 2**63 - 1  # PostgreSQL bigint, the type of every id
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What a Text without a pattern of its own documents: any string without NUL. (Lone surrogates,
# which Text refuses too, cannot be written in a valid JSON document or URL at all.)
NO_NUL = r"^[^\u0000]*$"


def id_field(**kwargs) -> fields.Integer:
    """A row id: a positive 64-bit integer (in a body, strictly a JSON integer)."""
    return fields.Integer(validate=validate.Range(min=1, max=BIGINT_MAX), **kwargs)


def check_text(value: str) -> str:
    # PostgreSQL text cannot hold NUL, and a lone surrogate (legal in a JSON \u escape) cannot
    # be encoded as UTF-8: refuse both here, as a 422 naming the field, not as a database error.
    if "\x00" in value:
        raise ValidationError("Must not contain the NUL character.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("Must be valid Unicode (no lone surrogates).") from None
    return value


class Pattern(validate.Regexp):
    """validate.Regexp over the whole value, as JSON Schema reads a `^...$` pattern: re.match
    would let a trailing newline past `$`. apispec documents it as the field's `pattern`, so
    write it in the syntax both share (ECMA 262 and Python: classes, quantifiers, \\uXXXX)."""

    def __call__(self, value: str) -> str:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


class Text(fields.String):
    """A string without NUL or lone surrogates. Without a Pattern of its own it documents the
    NUL rule as its pattern."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if not any(hasattr(validator, "regex") for validator in self.validators):
            self.metadata = {"pattern": NO_NUL, **self.metadata}

    def _deserialize(self, value, attr, data, **kwargs):
        return check_text(super()._deserialize(value, attr, data, **kwargs))


def text(
    *,
    pattern: str | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    error: str | None = None,
    description: str | None = None,
    **kwargs,
) -> Text:
    """A Text field with its rules, each stated once as a validator (and so documented)."""
    rules = list(kwargs.pop("validate", []))
    if min_length is not None or max_length is not None:
        rules.append(validate.Length(min=min_length, max=max_length))
    if pattern is not None:
        rules.append(Pattern(pattern, error=error))
    if description is not None:
        kwargs["metadata"] = {"description": description, **kwargs.get("metadata", {})}
    return Text(validate=rules, **kwargs)


class Email(fields.Email):
    """An email address as given (not lowercased), with no control characters or spaces."""

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        if _CONTROL.search(value) or " " in value:
            raise ValidationError("Not a valid email address.")
        return check_text(value)


class UtcDateTime(fields.DateTime):
    """RFC 3339 in UTC whatever the session's TimeZone (behind PgBouncer it is the server's)."""

    def _serialize(self, value, attr, obj, **kwargs):
        return super()._serialize(value.astimezone(UTC) if value else value, attr, obj, **kwargs)


def documented(json_schema):
    """Marks a schema-level validator with the JSON Schema that states its rule: a dict, or a
    function of the schema class that returns one. openapi.py adds it to the schema's
    component."""

    def mark(method):
        method.json_schema = json_schema
        return method

    return mark


def exactly_one_of(first: str, second: str):
    """A schema rule (assign it in the class body): exactly one of two optional fields is given.

    Documented as "not both" (`not` of their `required`) and "at least one" (`minProperties`: one
    more than the required fields; so the two must be the schema's only optional fields, which
    its document states by refusing other fields). Not as a `oneOf` of the two: client
    generators then give up on the body's model (openapi-python-client types it `Any`)."""
    message = f"Give exactly one of {first} or {second}."

    def json_schema(schema: type) -> dict:
        fields_ = schema._declared_fields
        optional = {name for name, field in fields_.items() if not field.required}
        if optional != {first, second}:
            raise ValueError(
                f"{schema.__name__}: {first} and {second} must be its only optional fields"
            )
        required = len(fields_) - len(optional)
        return {"minProperties": required + 1, "not": {"required": [first, second]}}

    @validates_schema
    @documented(json_schema)
    def check(self, data, **kwargs):
        if (first in data) == (second in data):
            raise ValidationError({first: [message], second: [message]})

    return check


def at_least_one(*names: str):
    """A schema rule (assign it in the class body): a body with at least one field (a merge
    patch that changes something). Documented as minProperties: 1 (the schema takes no other
    fields than `names`)."""
    message = f"Give at least one of {' or '.join(names)}."

    @validates_schema
    @documented({"minProperties": 1})
    def check(self, data, **kwargs):
        if not data:
            raise ValidationError(message, "_schema")

    return check
