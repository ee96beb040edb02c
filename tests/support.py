"""Helpers the tests share: the test server's address and valid request bodies."""

import json
import os
import re
import signal
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

from flask.testing import FlaskClient
from psycopg.conninfo import conninfo_to_dict
from yoyo import get_backend, read_migrations

from dataservice import MIGRATIONS_DIR, auth
from dataservice.db import yoyo_url

TEST_DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL",
    "postgresql://dataservice_test:dataservice_test@127.0.0.1:5432/postgres",
)
SERVER = conninfo_to_dict(TEST_DATABASE_URL)
# Fast argon2 for tests that hash (the production parameters are tested on their own), and a
# long wait for a hashing slot: the suite runs on two processes, and a hash at nice 10 on a
# loaded machine can take past the 100-ms default (a 503 busy). The tests of that bound set
# their own wait.
FAST_HASHING = {
    "ARGON2_TIME_COST": 1,
    "ARGON2_MEMORY_COST_KIB": 1024,
    "ARGON2_PARALLELISM": 1,
    "PASSWORD_HASH_WAIT_MS": 10_000,
}


# The service connects as a login role with exactly dataservice_app's rights, so the whole suite
# proves that the migrations' GRANTs suffice.
APP_ROLE, APP_PASSWORD = "dataservice_app_test", "dataservice_app_test"
# A client with every scope, made once per session; tests send its token unless they say not to.
TOKEN = auth.new_token()
AUTHORIZATION = f"Bearer {TOKEN}"


def url_for_database(
    dbname: str, *, port: int | None = None, password: str | None = None, user: str | None = None
) -> str:
    """A postgresql:// URL on the test server (psycopg and yoyo both take it)."""
    if user is not None:
        password = password or ""
    user = quote(user or SERVER.get("user", "postgres"), safe="")
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


def register_test_client(conn) -> None:
    """Gives a freshly migrated database the client whose token the tests send, with every scope
    the migrations know (api_scopes; tests/test_contracts.py holds it equal to the code's)."""
    conn.execute(
        "INSERT INTO api_clients (name, token_hash, scopes)"
        " SELECT 'tests', %s, array_agg(name ORDER BY name) FROM api_scopes",
        (auth.token_hash(TOKEN),),
    )


class AuthorizedClient(FlaskClient):
    """Flask's test client, sending the test client's token unless a test sets another."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.environ_base["HTTP_AUTHORIZATION"] = AUTHORIZATION


# Every plaintext password the suite sends; hashes and tokens are found by their shape.
PASSWORDS_USED = (
    "correct horse battery staple",
    "long enough",
    "long enough!",
    "a long and secret passphrase",
    "a brand new secret",
    "the plain password itself",
    "request-line-secret-password",
    "gunicorn-test-password",
    "wrong but long",
    "another long passphrase",
    "s3cret-db-pw",
    APP_PASSWORD,
)
_SECRET_SHAPES = re.compile(r"dsk_[A-Za-z0-9_-]{43}|\$argon2id\$v=|\$2[aby]\$[0-9]{2}\$")


def find_secrets(text: str) -> list[str]:
    """The passwords, hashes and tokens in `text` (for checking logs)."""
    found = [m.group(0) for m in _SECRET_SHAPES.finditer(text)]
    return found + [password for password in PASSWORDS_USED if password in text]


# The installed `dataservice` command, for tests that run it as an operator does.
DATASERVICE = Path(sys.executable).parent / "dataservice"


def one_error_line(exit_code: int, stdout: str, stderr: str, *secrets: str) -> str:
    """The one line a failed command leaves on stderr: no traceback, nothing else, no secret."""
    assert exit_code != 0
    assert "Traceback" not in stdout + stderr
    for secret in secrets:
        assert secret not in stdout + stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


def request(url, body=None):
    """(status, JSON body) of a GET, or of a POST of `body` as JSON, over real HTTP."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def stop(process, log_path) -> str:
    """SIGTERM to a gunicorn the start_gunicorn fixture started; its output, once it exited 0."""
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    output = log_path.read_text()
    assert process.returncode == 0, output
    return output


def json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def raw_request(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Sends `data` as it is to 127.0.0.1:`port`; (status, headers with lower-case names,
    body) of an answer that ends with the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(data)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict((n.strip().lower(), v.strip()) for n, v in (h.split(":", 1) for h in lines))
    return int(status_line.split()[1]), headers, body


def roll_back(url: str, chosen) -> list[str]:
    """Rolls back the applied migrations whose id `chosen` accepts, newest first."""
    backend = get_backend(yoyo_url(url))
    try:
        with backend.lock():
            migrations = [m for m in backend.to_rollback(read_migrations(str(MIGRATIONS_DIR)))]
            chosen_ones = [m for m in migrations if chosen(m.id)]
            backend.rollback_migrations(chosen_ones)
        return [m.id for m in chosen_ones]
    finally:
        backend.connection.close()
