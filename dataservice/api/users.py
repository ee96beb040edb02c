"""HTTP for the users resource: load with a schema, run the store in a transaction, dump."""

import re

from flask import current_app, url_for

from .. import db
from ..errors import NotFound
from ..schemas.users import USERNAME_PATTERN, UserCreate, UserOut
from ..store import users as store
from .parsing import Blueprint

blp = Blueprint(
    "users",
    __name__,
    url_prefix="/api/v1/users",
    description="Users: create and read. Email and username are unique case-insensitively.",
)

_USERNAME = re.compile(USERNAME_PATTERN)


def _password_hash(data: dict) -> str:
    """The hash to store: the caller's own PHC hash as is, or argon2id of the plain password."""
    if "hashed_password" in data:
        return data["hashed_password"]
    return current_app.extensions["hasher"].hash(data["password"])


@blp.route("", methods=["POST"], strict_slashes=False)
@blp.arguments(UserCreate)
@blp.response(
    201,
    UserOut,
    headers={"Location": {"description": "The new user's URL.", "schema": {"type": "string"}}},
)
@blp.alt_response(409, description="The email or the username is taken.")
def create_user(data):
    """Create a user."""
    password_hash = _password_hash(data)  # before borrowing a connection: hashing is slow
    with db.transaction() as conn:
        user = store.create_user(
            conn, email=data["email"], username=data["username"], password_hash=password_hash
        )
    return user, {"Location": url_for("users.get_user", user_id=user["id"])}


@blp.route("/<bigint:user_id>", methods=["GET"])
@blp.response(200, UserOut)
@blp.alt_response(404, description="No user has this id.")
def get_user(user_id):
    """Get a user by id."""
    with db.connection() as conn:
        return store.get_user(conn, user_id)


@blp.route("/by-username/<username>", methods=["GET"])
@blp.response(200, UserOut)
@blp.alt_response(404, description="No user has this username.")
def get_user_by_username(username):
    """Get a user by username, case-insensitively."""
    if not _USERNAME.fullmatch(username):  # no such user can exist; spare the database
        raise NotFound("no user with this username")
    with db.connection() as conn:
        return store.get_user_by_username(conn, username)
