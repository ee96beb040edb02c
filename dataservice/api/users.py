"""HTTP for the users resource: load with a schema, run the store in a transaction, dump.

Every single-user response carries `ETag: "<version>"`. Writes honour `If-Match` (stale: 412)
and GETs honour `If-None-Match` (unchanged: 304).
"""

import re

from flask import Response, current_app, g, request

from .. import db
from ..auth import requires
from ..errors import InvalidCredentials, NotFound
from ..schemas.users import (
    USERNAME_PATTERN,
    Credentials,
    PasswordChange,
    UserCreate,
    UserListArgs,
    UserOut,
    UserPage,
    UserPatch,
)
from ..store import events
from ..store import users as store
from . import cursors
from .idempotency import idempotent
from .parsing import Blueprint

blp = Blueprint(
    "users",
    __name__,
    url_prefix="/api/v1/users",
    description="Users. Email and username are unique case-insensitively.",
)

_USERNAME = re.compile(USERNAME_PATTERN)
_USER_OUT = UserOut()
_FILTERS = ("email", "username", "username_prefix", "created_after", "created_before")
ETAG_HEADER = {
    "ETag": {
        "description": "The user's version, for If-Match and If-None-Match.",
        "schema": {"type": "string"},
    }
}


# Conditional requests ---------------------------------------------------------------------------


def _etag(user: dict) -> dict:
    return {"ETag": f'"{user["version"]}"'}


def _if_match_versions() -> list[int] | None:
    """The versions If-Match accepts: None without the header (or with *), else the numbers in
    its strong ETags; an empty list (nothing can match) when none is one of ours."""
    if_match = request.if_match
    if not if_match or if_match.star_tag:
        return None
    return [
        int(tag)
        for tag in if_match.as_set()
        if tag and tag.isascii() and tag.isdigit() and len(tag) < 10
    ]


def _read(user: dict):
    """A GET answer: 304 when If-None-Match already names this version."""
    if request.if_none_match.contains_weak(str(user["version"])):
        return Response(status=304, headers=_etag(user))
    return user, _etag(user)


def _record(conn, event_type: str, user: dict) -> None:
    """The outbox event of a change, in the change's transaction."""
    events.append(
        conn,
        type=event_type,
        entity="user",
        entity_id=user["id"],
        actor=g.get("client_name"),
        data=_USER_OUT.dump(user),
    )


def _password_hash(data: dict) -> str:
    """The hash to store: the caller's own PHC hash as is, or argon2id of the plain password."""
    if "hashed_password" in data:
        return data["hashed_password"]
    return current_app.extensions["hasher"].hash(data["password"])


# Endpoints --------------------------------------------------------------------------------------


@blp.route("", methods=["POST"], strict_slashes=False)
@requires("users:write")
@idempotent
@blp.arguments(UserCreate())
@blp.response(
    201,
    UserOut,
    headers={
        "Location": {"description": "The new user's URL.", "schema": {"type": "string"}},
        **ETAG_HEADER,
    },
)
@blp.alt_response(409, description="The email or the username is taken.")
def create_user(data):
    """Create a user."""
    password_hash = _password_hash(data)  # before borrowing a connection: hashing is slow
    # One statement writes the user and its event: no transaction of its own is needed.
    with db.connection() as conn:
        user = store.create_user(
            conn,
            email=data["email"],
            username=data["username"],
            password_hash=password_hash,
            actor=g.get("client_name"),
        )
    # The URL url_for("users.get_user") gives, without building it (~3% of a create's work).
    location = f"{request.script_root}{blp.url_prefix}/{user['id']}"
    return user, {"Location": location, **_etag(user)}


def create_many(conn, bodies: list[dict]) -> list[dict]:
    """Creates users from validated UserCreate bodies in one statement, with their events: a
    batch's run of creates. Returns each user as UserOut shows it (built in SQL, as its
    event's data; tests/test_events.py holds api_user and UserOut together). Raises Conflict
    for the lot when any of them clashes."""
    return store.create_users(
        conn,
        [
            {
                "email": body["email"],
                "username": body["username"],
                "password_hash": _password_hash(body),
            }
            for body in bodies
        ],
        actor=g.get("client_name"),
    )


@blp.route("", methods=["GET"], strict_slashes=False)
@requires("users:read")
@blp.arguments(UserListArgs(), location="query")
@blp.response(200, UserPage)
@blp.alt_response(400, description="The cursor was altered or belongs to another query.")
def list_users(args):
    """List users a page at a time (keyset pagination: pass `next_cursor` back as `cursor`)."""
    sort = args["sort"]
    filters = {name: args.get(name) for name in _FILTERS}
    query_fingerprint = cursors.fingerprint({"sort": sort, **filters})
    after = cursors.decode(args["cursor"], query_fingerprint) if "cursor" in args else None
    prefix = filters.pop("username_prefix")
    # LIKE treats _ as a wildcard; usernames may contain it, so it is escaped.
    filters["username_like"] = prefix.lower().replace("_", "\\_") + "%" if prefix else None
    with db.connection() as conn:
        rows = store.list_users(
            conn, sort=sort, after=after, filters=filters, limit=args["limit"] + 1
        )
        total = store.count_users(conn, filters) if args.get("count") == "exact" else None
    page, more = rows[: args["limit"]], len(rows) > args["limit"]
    result = {"items": page, "next_cursor": None}
    if more:
        result["next_cursor"] = cursors.encode(store.position(sort, page[-1]), query_fingerprint)
    if total is not None:
        result["total"] = total
    return result


@blp.route("/<bigint:user_id>", methods=["GET"])
@requires("users:read")
@blp.response(200, UserOut, headers=ETAG_HEADER)
@blp.alt_response(304, description="Unchanged since the If-None-Match version.")
@blp.alt_response(404, description="No user has this id.")
def get_user(user_id):
    """Get a user by id."""
    with db.connection() as conn:
        return _read(store.get_user(conn, user_id))


@blp.route("/by-username/<username>", methods=["GET"])
@requires("users:read")
@blp.response(200, UserOut, headers=ETAG_HEADER)
@blp.alt_response(304, description="Unchanged since the If-None-Match version.")
@blp.alt_response(404, description="No user has this username.")
def get_user_by_username(username):
    """Get a user by username, case-insensitively."""
    if not _USERNAME.fullmatch(username):  # no such user can exist; spare the database
        raise NotFound("no user with this username")
    with db.connection() as conn:
        return _read(store.get_user_by_username(conn, username))


@blp.route("/by-email/<email>", methods=["GET"])
@requires("users:read")
@blp.response(200, UserOut, headers=ETAG_HEADER)
@blp.alt_response(304, description="Unchanged since the If-None-Match version.")
@blp.alt_response(404, description="No user has this email.")
def get_user_by_email(email):
    """Get a user by email, case-insensitively."""
    if len(email) > 255 or "\x00" in email:  # no such user can exist (and text holds no NUL)
        raise NotFound("no user with this email")
    with db.connection() as conn:
        return _read(store.get_user_by_email(conn, email))


@blp.route("/<bigint:user_id>", methods=["PATCH"])
@requires("users:write")
@idempotent
@blp.arguments(UserPatch(), content_type="application/merge-patch+json")
@blp.response(200, UserOut, headers=ETAG_HEADER)
@blp.alt_response(404, description="No user has this id.")
@blp.alt_response(409, description="The email or the username is taken.")
@blp.alt_response(412, description="If-Match names a version that is no longer current.")
def update_user(data, user_id):
    """Change the email and/or the username (JSON merge patch)."""
    with db.transaction() as conn:
        user = store.update_user(
            conn,
            user_id,
            email=data.get("email"),
            username=data.get("username"),
            versions=_if_match_versions(),
        )
        _record(conn, "user.updated", user)
    return user, _etag(user)


@blp.route("/<bigint:user_id>/password", methods=["PUT"])
@requires("users:credentials")
@idempotent
@blp.arguments(PasswordChange())
@blp.response(204, headers=ETAG_HEADER)
@blp.alt_response(404, description="No user has this id.")
@blp.alt_response(412, description="If-Match names a version that is no longer current.")
def set_password(data, user_id):
    """Replace the password (plain, hashed here, or a PHC hash made by the caller)."""
    password_hash = _password_hash(data)
    with db.transaction() as conn:
        user = store.set_password_hash(conn, user_id, password_hash, _if_match_versions())
        _record(conn, "user.password_changed", user)
    return None, 204, _etag(user)


@blp.route("/<bigint:user_id>", methods=["DELETE"])
@requires("users:write")
@idempotent
@blp.response(204)
@blp.alt_response(404, description="No user has this id.")
@blp.alt_response(412, description="If-Match names a version that is no longer current.")
def delete_user(user_id):
    """Delete a user."""
    with db.transaction() as conn:
        user = store.delete_user(conn, user_id, _if_match_versions())
        _record(conn, "user.deleted", user)
    return None, 204


@blp.route("/verify-credentials", methods=["POST"])
@requires("users:credentials")
@idempotent
@blp.arguments(Credentials())
@blp.response(200, UserOut, headers=ETAG_HEADER)
@blp.alt_response(401, description="The login or the password is wrong (the same answer for both).")
def verify_credentials(data):
    """Check a login (username or email) and password; the user when they match."""
    hasher = current_app.extensions["hasher"]
    with db.connection() as conn:
        user = store.get_credentials(conn, data["login"])
    # The connection goes back before the slow hash check; an unknown login costs the same.
    if not hasher.verify(user and user["password_hash"], data["password"]):
        raise InvalidCredentials()
    if hasher.needs_rehash(user["password_hash"]):
        new_hash = hasher.hash(data["password"])
        with db.transaction() as conn:
            store.rehash_password(conn, user["id"], user["password_hash"], new_hash)
    del user["password_hash"]
    return user, _etag(user)
