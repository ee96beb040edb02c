"""Request bodies: JSON only, decoded strictly, before any schema sees them.

webargs would quietly treat a non-JSON body as missing and take the last of two duplicate keys.
We answer 415 for a body that is not JSON, 400 for one that is not well-formed (bad UTF-8,
duplicate keys, NaN, lone surrogates, absurd nesting), and leave field rules to the schemas (422).
"""

import json
import re
from typing import ClassVar

from flask_smorest import Blueprint as SmorestBlueprint
from marshmallow import RAISE
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

JSON_MEDIA_TYPES = ("application/json", "application/merge-patch+json")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class _DuplicateKey(ValueError):
    pass


def _object_without_duplicates(pairs: list[tuple[str, object]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _DuplicateKey
    return obj


def _no_constants(name: str):
    raise ValueError(f"{name} is not JSON")


def _has_lone_surrogate(value) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def decode_json(raw: bytes):
    """The JSON document in `raw`, or BadRequest saying what is wrong (never echoing content)."""
    if not raw.strip():
        raise BadRequest("the request body is empty; send a JSON document")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the request body is not valid UTF-8") from None
    try:
        data = json.loads(
            text, object_pairs_hook=_object_without_duplicates, parse_constant=_no_constants
        )
    except _DuplicateKey:
        raise BadRequest("the JSON body repeats a key within one object") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except ValueError:  # NaN, Infinity
        raise BadRequest("malformed JSON: NaN and Infinity are not JSON numbers") from None
    except RecursionError:
        raise BadRequest("the JSON body is nested too deeply") from None
    # Only documents with a \uD800-\uDFFF escape can hold a lone surrogate: skip the walk otherwise.
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(data):
        raise BadRequest("the JSON body holds a lone surrogate (\\uD800-\\uDFFF) escape")
    return data


def is_json_media_type(mimetype: str) -> bool:
    return mimetype in JSON_MEDIA_TYPES or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


class StrictParser(FlaskParser):
    # An unknown query parameter is most often a typo (usename=bob): say so instead of ignoring it.
    DEFAULT_UNKNOWN_BY_LOCATION: ClassVar[dict] = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": RAISE,
    }

    def _raw_load_json(self, req):
        if not is_json_media_type(req.mimetype):
            raise UnsupportedMediaType("send the body as application/json (Content-Type header)")
        return decode_json(req.get_data(cache=True))

    def load_json(self, req, schema):
        # The base class maps JSON errors to its own 400; ours are raised above already.
        return self._raw_load_json(req)


class Blueprint(SmorestBlueprint):
    """flask-smorest's Blueprint with our body parser."""

    ARGUMENTS_PARSER = StrictParser()
