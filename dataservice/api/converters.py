"""URL converters for path parameters."""

from werkzeug.exceptions import NotFound
from werkzeug.routing import BaseConverter

from ..schemas.fields import BIGINT_MAX


class BigintConverter(BaseConverter):
    """A positive PostgreSQL bigint in ASCII digits. Anything else (letters, a sign, Unicode
    digits, a number past bigint) does not match the route, so the client gets a 404."""

    regex = r"[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if not 1 <= number <= BIGINT_MAX:
            # No row has this id. Not werkzeug's ValidationError: matching would go on, and
            # answer 405 when the same path has a rule for another method (DELETE /users/0).
            raise NotFound()
        return number

    def to_url(self, value: int) -> str:
        return str(value)


def bigint_schema(converter: BigintConverter) -> dict:
    return {"type": "integer", "format": "int64", "minimum": 1, "maximum": BIGINT_MAX}


class SlugConverter(BaseConverter):
    """An organization's slug: 3 to 63 of a-z, 0-9 and -. Anything else cannot name one, so it
    does not match the route (a 404), and never reaches the database (which refuses NUL)."""

    regex = r"[a-z0-9-]{3,63}"


def slug_schema(converter: SlugConverter) -> dict:
    return {
        "type": "string",
        "pattern": f"^{SlugConverter.regex}$",
        "minLength": 3,
        "maxLength": 63,
    }
