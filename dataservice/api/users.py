"""HTTP for the users resource. Its list, get, patch and delete are the standard verbs built
from the declaration (api/verbs.py); the create (its password hashed, a batch's run of creates
in one statement), the lookups by username and email, the password and the credentials check
are written here.

Every single-user response carries `ETag: "<version>"`. Writes honour `If-Match` (stale: 412)
and GETs honour `If-None-Match` (unchanged: 304).
"""

import re

from flask import current_app, g

from .. import db, integrity
from ..auth import requires
from ..errors import InvalidCredentials, NotFound
from ..openapi import links
from ..schemas.fields import NO_NUL
from ..schemas.users import (
    EMAIL_MAX_LENGTH,
    USERNAME_PATTERN,
    Credentials,
    PasswordChange,
    UserCreate,
    UserListArgs,
    UserOut,
    UserPage,
    UserPatch,
)
from ..store import users as store
from . import prehash, verbs
from .batch import bulk
from .idempotency import idempotent
from .memberships import MEMBERSHIPS
from .resource import CREATED_HEADERS, ETAG_HEADER, Resource, etag, if_match

integrity.declare(
    users_email_lower_key=integrity.unique("email", "Already taken (case-insensitive)."),
    users_username_lower_key=integrity.unique("username", "Already taken (case-insensitive)."),
)
USERS = Resource(
    "users",
    out=UserOut,
    patch=UserPatch,
    list_args=UserListArgs,
    page=UserPage,
    events=("created", "updated", "password_changed", "deleted"),
    description="Users. Email and username are unique case-insensitively.",
    queries={"get": "get_user_by_id"},
    docs={
        "list": "List users a page at a time (keyset pagination: pass `next_cursor` back as "
        "`cursor`).",
        "delete": "Delete a user and their memberships (not the last owner of an organization).",
    },
    missing="No user has this id.",
    taken="The email or the username is taken.",
    delete_conflict="The user is the last owner of organizations (named).",
    cascade=MEMBERSHIPS,
)
blp = USERS.blp
_USERNAME = re.compile(USERNAME_PATTERN)
_THE_USER = {"user_id": "$response.body#/id"}


def _path_parameter(name: str, **schema) -> list[dict]:
    """The documented form of a path parameter the view checks itself (a 404 when no row can
    have it: the path names nothing)."""
    return [{"in": "path", "name": name, "required": True, "schema": {"type": "string", **schema}}]


def _password_hash(data: dict) -> str:
    """The hash to store: the caller's own PHC hash as is, or argon2id of the plain password."""
    if "hashed_password" in data:
        return data["hashed_password"]
    return prehash.take(data["password"]) or current_app.extensions["hasher"].hash(data["password"])


def create_many(conn, bodies: list[dict]) -> list[dict]:
    """A batch's run of creates, from validated UserCreate bodies: one statement writes the users
    and their events. Returns each user as UserOut shows it (built in SQL, as its event's data;
    tests/test_events.py holds api_user and UserOut together)."""
    users = [
        {"email": b["email"], "username": b["username"], "password_hash": _password_hash(b)}
        for b in bodies
    ]
    return store.create_users(conn, users, actor=g.get("client_name"))


@blp.route("", methods=["POST"], strict_slashes=False)
@requires("users:write")
@bulk(UserCreate, create_many)
@idempotent
@blp.arguments(UserCreate())
@blp.response(201, UserOut, headers=CREATED_HEADERS)
@blp.alt_response(409, description="The email or the username is taken.")
@links(
    201,
    get_user=_THE_USER,
    update_user=_THE_USER,
    set_password=_THE_USER,
    delete_user=_THE_USER,
    list_user_memberships=_THE_USER,
    get_user_by_username={"username": "$response.body#/username"},
    get_user_by_email={"email": "$response.body#/email"},
)
def create_user(data):
    """Create a user."""
    password_hash = _password_hash(data)  # before borrowing a connection: hashing is slow
    # One statement writes the user and its event: no transaction of its own is needed.
    with db.single_statement() as conn:
        user = store.create_user(
            conn,
            email=data["email"],
            username=data["username"],
            password_hash=password_hash,
            actor=g.get("client_name"),
        )
    return USERS.created(user)


verbs.serve(USERS, "list", "get", "patch", "delete")


@blp.route(
    "/by-username/<username>",
    methods=["GET"],
    parameters=_path_parameter("username", pattern=USERNAME_PATTERN, minLength=3, maxLength=100),
)
@requires("users:read")
@blp.response(200, UserOut, headers=ETAG_HEADER)
@blp.alt_response(404, description="No user has this username.")
def get_user_by_username(username):
    """Get a user by username, case-insensitively."""
    if not _USERNAME.fullmatch(username):  # no such user can exist; spare the database
        raise NotFound("no user with this username")
    with db.read() as conn:
        return USERS.read(store.get_user_by_username(conn, username))


@blp.route(
    "/by-email/<email>",
    methods=["GET"],
    parameters=_path_parameter("email", maxLength=EMAIL_MAX_LENGTH, pattern=NO_NUL),
)
@requires("users:read")
@blp.response(200, UserOut, headers=ETAG_HEADER)
@blp.alt_response(404, description="No user has this email.")
def get_user_by_email(email):
    """Get a user by email, case-insensitively."""
    if len(email) > EMAIL_MAX_LENGTH or "\x00" in email:  # no such user (text holds no NUL)
        raise NotFound("no user with this email")
    with db.read() as conn:
        return USERS.read(store.get_user_by_email(conn, email))


@blp.route("/<bigint:user_id>/password", methods=["PUT"])
@requires("users:credentials")
@idempotent
@blp.arguments(PasswordChange())
@blp.response(204, headers=ETAG_HEADER)
@blp.alt_response(404, description="No user has this id.")
def set_password(data, user_id):
    """Replace the password (plain, hashed here, or a PHC hash made by the caller)."""
    password_hash = _password_hash(data)
    with db.single_statement() as conn:  # the change and its event, as a PATCH
        user = store.set_password_hash(
            conn, user_id, password_hash, if_match(), actor=g.get("client_name")
        )
    return None, 204, etag(user)


@blp.route("/verify-credentials", methods=["POST"])
@requires("users:credentials")
@idempotent
@blp.arguments(Credentials())
@blp.response(200, UserOut, headers=ETAG_HEADER)
@blp.alt_response(401, description="The login or the password is wrong (the same answer for both).")
def verify_credentials(data):
    """Check a login (username or email) and password; the user when they match."""
    hasher = current_app.extensions["hasher"]
    with db.read() as conn:
        user = store.get_credentials(conn, data["login"])
    # The connection goes back before the slow hash check; an unknown login costs the same.
    matches, new_hash = hasher.login(user and user["password_hash"], data["password"])
    if not matches:
        raise InvalidCredentials()
    if new_hash is not None:  # rehashed in the same turn of the hashing queue as the check
        with db.write() as conn:
            store.rehash_password(conn, user["id"], user["password_hash"], new_hash)
    del user["password_hash"]
    return user, etag(user)
