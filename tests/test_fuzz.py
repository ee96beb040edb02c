"""schemathesis against the live application, driven by its own /openapi.json: no 500, no
undocumented status, no response that breaks the documented schema or content type."""

import subprocess
import sys
from pathlib import Path

from .support import AUTHORIZATION, new_user

CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance,response_headers_conformance"
)


def test_api_conforms_to_its_own_description(make_app, serve, tmp_path):
    app = make_app(DATABASE_POOL_MAX_SIZE=4)
    client = app.test_client()
    for n in range(3):  # something to find, change and delete
        client.post("/api/v1/users", json=new_user(n))
    base = serve(app)
    result = subprocess.run(
        [
            Path(sys.executable).parent / "schemathesis",
            "run",
            f"{base}/openapi.json",
            "--checks",
            CHECKS,
            "--max-examples",
            "20",
            "--seed",
            "1",
            "--phases",
            "examples,coverage,fuzzing",
            "--header",
            f"Authorization: {AUTHORIZATION}",
            "--request-timeout",
            "20",
            "--generation-database",
            "none",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=540,
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "passed" in output.lower() or "no issues found" in output.lower(), output[-3000:]
