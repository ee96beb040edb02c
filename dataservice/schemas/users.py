"""What a client sends to the users resource and what it gets back."""

from marshmallow import Schema, fields, validate

from ..passwords import ACCEPTED_HASH_PATTERN
from .fields import Email, Text, UtcDateTime, at_least_one, exactly_one_of, text
from .pages import PageArgs, page_of, sorting

USERNAME_PATTERN = r"^[A-Za-z0-9._-]{3,100}$"
USERNAME_RULE = "3 to 100 characters of A-Z, a-z, 0-9, '.', '_', '-'."
EMAIL_MAX_LENGTH = 255

EMAIL = {
    "validate": validate.Length(max=EMAIL_MAX_LENGTH),
    "metadata": {"description": "Unique case-insensitively; stored as given."},
}


def username_field(**kwargs) -> Text:
    return text(
        pattern=USERNAME_PATTERN,
        min_length=3,
        max_length=100,
        error=USERNAME_RULE,
        description="Unique case-insensitively; stored as given.",
        **kwargs,
    )


class PasswordFields(Schema):
    """Exactly one of a plain password (the service hashes it with argon2id) or a hash made
    by the caller (a PHC argon2id or bcrypt string, stored as is)."""

    password = text(
        min_length=8,
        max_length=1024,
        load_only=True,
        description="Plain password; hashed with argon2id.",
        metadata={"format": "password"},
    )
    hashed_password = text(
        pattern=ACCEPTED_HASH_PATTERN,
        error="Must be a PHC-format argon2id hash or a bcrypt hash.",
        load_only=True,
        description="PHC argon2id or bcrypt hash made by the caller.",
        metadata={"format": "password"},
    )
    _exactly_one = exactly_one_of("password", "hashed_password")


class UserCreate(PasswordFields):
    email = Email(required=True, **EMAIL)
    username = username_field(required=True)


class UserOut(Schema):
    id = fields.Integer(required=True)
    email = fields.String(required=True)
    username = fields.String(required=True)
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)


class UserPatch(Schema):
    """A JSON merge patch of the user's changeable fields; at least one of them."""

    email = Email(**EMAIL)
    username = username_field()
    _not_empty = at_least_one("email", "username")


class PasswordChange(PasswordFields):
    pass


class Credentials(Schema):
    login = text(
        required=True, min_length=1, max_length=255, description="The username or the email."
    )
    password = text(
        required=True,
        load_only=True,
        min_length=1,
        max_length=1024,
        metadata={"format": "password"},
    )


PREFIX_PATTERN = r"^[A-Za-z0-9._-]{1,100}$"


class UserListArgs(PageArgs):
    sort = sorting("id", "-id", "created_at", "-created_at")
    email = Email(
        validate=validate.Length(max=EMAIL_MAX_LENGTH),
        metadata={"description": "Exact match, case-insensitive."},
    )
    username = text(max_length=100, description="Exact match, case-insensitive.")
    username_prefix = text(
        pattern=PREFIX_PATTERN,
        min_length=1,
        max_length=100,
        error="1 to 100 username characters.",
        description="Case-insensitive prefix of the username.",
    )
    created_after = fields.AwareDateTime(metadata={"description": "RFC 3339, exclusive."})
    created_before = fields.AwareDateTime(metadata={"description": "RFC 3339, exclusive."})


UserPage = page_of(UserOut, "UserPage")
