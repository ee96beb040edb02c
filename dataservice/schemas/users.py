"""What a client sends to the users resource and what it gets back."""

from marshmallow import (
    Schema,
    ValidationError,
    fields,
    validate,
    validates,
    validates_schema,
)

from ..passwords import is_accepted_hash
from .fields import Email, Text, UtcDateTime
from .pages import PageArgs, page_of, sorting

USERNAME_PATTERN = r"^[A-Za-z0-9._-]{3,100}$"

EMAIL = {
    "validate": validate.Length(max=255),
    "metadata": {"description": "Unique case-insensitively; stored as given.", "maxLength": 255},
}
USERNAME = {
    "validate": validate.Regexp(
        USERNAME_PATTERN, error="3 to 100 characters of A-Z, a-z, 0-9, '.', '_', '-'."
    ),
    "metadata": {
        "description": "Unique case-insensitively; stored as given.",
        "pattern": USERNAME_PATTERN,
        "minLength": 3,
        "maxLength": 100,
    },
}


class PasswordFields(Schema):
    """Exactly one of a plain password (the service hashes it with argon2id) or a hash made
    by the caller (a PHC argon2id or bcrypt string, stored as is)."""

    password = Text(
        validate=validate.Length(min=8, max=1024),
        load_only=True,
        metadata={"description": "Plain password; hashed with argon2id.", "format": "password"},
    )
    hashed_password = Text(
        load_only=True,
        validate=validate.Length(max=512),
        metadata={
            "description": "PHC argon2id or bcrypt hash made by the caller.",
            "format": "password",
        },
    )

    @validates("hashed_password")
    def _phc(self, value, **kwargs):
        if not is_accepted_hash(value):
            raise ValidationError("Must be a PHC-format argon2id hash or a bcrypt hash.")

    @validates_schema
    def _exactly_one(self, data, **kwargs):
        given = [name for name in ("password", "hashed_password") if name in data]
        if len(given) != 1:
            message = "Give exactly one of password or hashed_password."
            raise ValidationError({"password": [message], "hashed_password": [message]})


class UserCreate(PasswordFields):
    email = Email(required=True, **EMAIL)
    username = Text(required=True, **USERNAME)


class UserOut(Schema):
    id = fields.Integer(required=True)
    email = fields.String(required=True)
    username = fields.String(required=True)
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)


class UserPatch(Schema):
    """A JSON merge patch of the user's changeable fields; at least one of them."""

    email = Email(**EMAIL)
    username = Text(**USERNAME)

    @validates_schema
    def _not_empty(self, data, **kwargs):
        if not data:
            raise ValidationError("Give at least one of email or username.", "_schema")


class PasswordChange(PasswordFields):
    pass


class Credentials(Schema):
    login = Text(
        required=True,
        validate=validate.Length(min=1, max=255),
        metadata={"description": "The username or the email."},
    )
    password = Text(
        required=True,
        load_only=True,
        validate=validate.Length(min=1, max=1024),
        metadata={"format": "password"},
    )


PREFIX_PATTERN = r"^[A-Za-z0-9._-]{1,100}$"


class UserListArgs(PageArgs):
    sort = sorting("id", "-id", "created_at", "-created_at")
    email = Email(
        validate=validate.Length(max=255),
        metadata={"description": "Exact match, case-insensitive."},
    )
    username = Text(
        validate=validate.Length(max=100),
        metadata={"description": "Exact match, case-insensitive."},
    )
    username_prefix = Text(
        validate=validate.Regexp(PREFIX_PATTERN, error="1 to 100 username characters."),
        metadata={"description": "Case-insensitive prefix of the username."},
    )
    created_after = fields.AwareDateTime(metadata={"description": "RFC 3339, exclusive."})
    created_before = fields.AwareDateTime(metadata={"description": "RFC 3339, exclusive."})


UserPage = page_of(UserOut, "UserPage")
