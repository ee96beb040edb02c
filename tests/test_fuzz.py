"""schemathesis over the gunicorn-served service (production gunicorn.conf.py, the application
role), driven by its own /openapi.json: every phase (examples, coverage, fuzzing, stateful
sequences along the document's links) and every check. Any failure or warning fails the test:
a 500, an undocumented status, header or content type, a response off its schema, invalid data
accepted or valid data refused (the document saying less than the server enforces).
tests/schemathesis.toml has the settings and the reason for each."""

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

from .support import AUTHORIZATION, new_user, request

HERE = Path(__file__).parent
# Where the ids of the rows the test makes start: far from the ids schemathesis draws (1, 2, the
# largest bigint...), so that its DELETEs do not remove them before the operations that need them.
FIRST_ID = 7_000_000_001


def put(url: str, body: dict) -> int:
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data, {"Content-Type": "application/json"}, method="PUT")
    with urllib.request.urlopen(req, timeout=10) as response:
        return response.status


def test_api_conforms_to_its_own_description(start_gunicorn, app_database_url, db, tmp_path):
    base, _, _ = start_gunicorn(DATABASE_URL=app_database_url)
    for table in ("users", "organizations"):
        db.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s, false)", (table, FIRST_ID))
    # Something to find, change and delete: an owner, a member, their organization and more users.
    made = [request(f"{base}/api/v1/users", new_user(n)) for n in range(4)]
    assert [status for status, _ in made] == [201] * 4
    owner, member = made[0][1]["id"], made[1][1]["id"]
    organization = {"slug": "acme", "name": "Acme", "owner_id": owner}
    status, created = request(f"{base}/api/v1/organizations", organization)
    assert status == 201
    url = f"{base}/api/v1/organizations/{created['id']}/members/{member}"
    assert put(url, {"role": "member"}) == 201
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": str(HERE / "schemathesis_hooks.py"),
        "FUZZ_OWNER_ID": str(owner),
        "FUZZ_ORGANIZATION_ID": str(created["id"]),
        "FUZZ_MEMBER_ID": str(member),
    }
    result = subprocess.run(
        [
            Path(sys.executable).parent / "schemathesis",
            "--config-file",
            HERE / "schemathesis.toml",
            "run",
            f"{base}/openapi.json",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--checks",
            "all",
            "--seed",
            "1",
            "--max-examples",
            "12",
            # One worker: with two, hypothesis' lambda descriptions (ast.parse in two threads)
            # crash CPython 3.11 ("AST constructor recursion depth mismatch").
            "--workers",
            "1",
            "--header",
            f"Authorization: {AUTHORIZATION}",
            "--request-timeout",
            "20",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    assert "WARNINGS" not in output, output[-8000:]
    # The stateful phase ran sequences along the links.
    assert re.search(r"API Links:\s+[1-9]", output), output[-3000:]
