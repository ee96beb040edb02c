"""Helpers the tests share: the test server's address and valid request bodies."""

import os
from urllib.parse import quote

from psycopg.conninfo import conninfo_to_dict

TEST_DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL",
    "postgresql://dataservice_test:dataservice_test@127.0.0.1:5432/postgres",
)
SERVER = conninfo_to_dict(TEST_DATABASE_URL)
# Fast argon2 for tests that hash; the production parameters are tested on their own.
FAST_ARGON2 = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST_KIB": 1024, "ARGON2_PARALLELISM": 1}


def url_for_database(dbname: str, *, port: int | None = None, password: str | None = None) -> str:
    """A postgresql:// URL on the test server (psycopg and yoyo both take it)."""
    user = quote(SERVER.get("user", "postgres"), safe="")
    password = password if password is not None else SERVER.get("password")
    auth = f"{user}:{quote(password, safe='')}" if password else user
    host = SERVER.get("host", "127.0.0.1")
    return f"postgresql://{auth}@{host}:{port or SERVER.get('port', 5432)}/{dbname}"


def new_user(n: int = 1, **fields) -> dict:
    """A valid create body; `hashed_password` keeps tests fast (no argon2 on the server)."""
    return {
        "email": f"user{n}@example.com",
        "username": f"user{n}",
        "hashed_password": BCRYPT_HASH,
        **fields,
    }


# bcrypt of "correct horse battery staple", cost 4 (made once with the bcrypt package).
BCRYPT_HASH = "$2b$04$/2qorxm54fvC0oltazGFtud57NDj0SiOy4xplcXRAP47GiA.V8BLy"
