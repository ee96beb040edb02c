"""PostgreSQL types as marshmallow fields: one table, read both ways. A parameter's field
validates what a client sends (a 422 naming it, never a database error); a column's field
dumps the value and documents it. apispec writes the OpenAPI schema from the same fields
(ranges, lengths, formats, enum values, nullability).
"""

import re
from decimal import Decimal

from marshmallow import ValidationError, fields, validate
from psycopg.types.json import Jsonb

from ..schemas.fields import BIGINT_MAX, Text, UtcDateTime, check_text
from .describe import PgType

INTEGERS = {
    "int2": (-(2**15), 2**15 - 1, "int32"),
    "int4": (-(2**31), 2**31 - 1, "int32"),
    "int8": (-BIGINT_MAX - 1, BIGINT_MAX, "int64"),
}
TEXTS = ("text", "varchar", "bpchar", "name", "citext")
# A text parameter without a length of its own (varchar(n), a domain over it) takes at most this
# many characters: a 10,000-character value is a 422, not a scan for it.
TEXT_PARAMETER_MAX = 1000
ARRAY_PARAMETER_MAX = 1000
_NUMERIC = re.compile(r"^-?[0-9]{1,1000}(\.[0-9]{1,1000})?$")


class Integer(fields.Integer):
    """An integer: strict (no "1" for 1, no 1.0) in a JSON body; from text in a query string."""


class NumericText(Text):
    """numeric, exact: a decimal string (a JSON number would pass through a float)."""

    def __init__(self, **kwargs):
        kwargs["metadata"] = {**kwargs.get("metadata", {}), "pattern": _NUMERIC.pattern}
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        if not _NUMERIC.fullmatch(value):
            raise ValidationError("Not a decimal number (digits, one point, a leading -).")
        return Decimal(value)


class JsonValue(fields.Raw):
    """json/jsonb: any JSON value, bound as jsonb."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            check_text(value)
        return Jsonb(value)


class AnyText(fields.String):
    """A column of a type without a JSON form of its own (interval, inet...): its text."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else str(value)


def _described(pg: PgType) -> dict:
    shown = f"domain {pg.domain} over {pg.name}" if pg.domain else pg.name
    if pg.name == "enum":
        shown = "enum: " + ", ".join(pg.labels)
    return {"description": f"PostgreSQL {shown}."}


def parameter_field(pg: PgType, *, in_json: bool, required: bool, example=None) -> fields.Field:
    """The field a parameter of type `pg` is loaded with."""
    kwargs: dict = {"required": required, "metadata": _described(pg)}
    if not required:
        kwargs.update(load_default=None, allow_none=True)
    if example is not None:
        kwargs["metadata"]["example"] = example
    return _field(pg, kwargs, in_json=in_json, parameter=True)


def column_field(pg: PgType, *, not_null: bool) -> fields.Field:
    """The field a result column of type `pg` is dumped and documented with."""
    kwargs = {"required": True, "allow_none": not not_null, "metadata": _described(pg)}
    return _field(pg, kwargs, in_json=True, parameter=False)


def _field(pg: PgType, kwargs: dict, *, in_json: bool, parameter: bool) -> fields.Field:
    name = pg.name
    if name in INTEGERS:
        low, high, form = INTEGERS[name]
        kwargs["metadata"]["format"] = form
        return Integer(strict=in_json, validate=validate.Range(min=low, max=high), **kwargs)
    if name in ("float4", "float8"):
        return fields.Float(allow_nan=False, **kwargs)
    if name == "numeric":
        if parameter:
            return NumericText(**kwargs)
        return fields.Decimal(as_string=True, **kwargs)
    if name == "bool":
        if in_json and parameter:
            return StrictBoolean(**kwargs)
        return fields.Boolean(**kwargs)
    if name == "uuid":
        return fields.UUID(**kwargs)
    if name == "date":
        return fields.Date(**kwargs)
    if name == "timestamptz":
        if parameter:
            return fields.AwareDateTime(**kwargs)
        return UtcDateTime(**kwargs)
    if name == "timestamp":
        return fields.NaiveDateTime(**kwargs)
    if name in ("json", "jsonb"):
        return JsonValue(**kwargs) if parameter else fields.Raw(**kwargs)
    if name == "enum":
        return fields.String(validate=validate.OneOf(pg.labels), **kwargs)
    if name == "array" and pg.element is not None:
        inner = _field(
            pg.element, {"required": True, "metadata": {}}, in_json=in_json, parameter=parameter
        )
        rules = [validate.Length(max=ARRAY_PARAMETER_MAX)] if parameter else []
        return fields.List(inner, validate=rules, **kwargs)
    if name in TEXTS:
        length = pg.length or (TEXT_PARAMETER_MAX if parameter else None)
        rules = [validate.Length(max=length)] if length else []
        return Text(validate=rules, **kwargs)
    # Any other type: text both ways, parsed by PostgreSQL (a bad value is a 422, db.py).
    if parameter:
        return Text(validate=[validate.Length(max=TEXT_PARAMETER_MAX)], **kwargs)
    return AnyText(**kwargs)


class StrictBoolean(fields.Boolean):
    """true or false in a JSON body, nothing that merely looks like one ("yes", 1)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise ValidationError("Not a valid boolean.")
        return value
