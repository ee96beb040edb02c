"""Resources declared once (api/resource.py `Resource`), their standard verbs built over the named
queries found by convention (api/verbs.py): a declared resource whose SQL lacks one of them
refuses to start, in one line naming the file and the query."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dataservice.api import blueprints
from dataservice.api.resource import RESOURCES

from .support import one_error_line

ROOT = Path(__file__).parent.parent


def _without(sql: str, name: str) -> str:
    """The file's text without the named query's block (its header to the next blank line)."""
    removed = re.sub(rf"-- name: {name}\(.*?\n\n", "", sql, flags=re.DOTALL)
    assert removed != sql, name
    return removed


def _start(tmp_path, sql_file: str | None = None, edit=None):
    """Starts (the `scopes` command) a copy of the package and sql/, with sql/<sql_file>.sql
    passed through `edit` first."""
    shutil.copytree(ROOT / "dataservice", tmp_path / "dataservice")
    shutil.copytree(ROOT / "sql", tmp_path / "sql")
    if sql_file:
        path = tmp_path / "sql" / f"{sql_file}.sql"
        path.write_text(edit(path.read_text()))
    return subprocess.run(
        [sys.executable, "-c", "from dataservice.cli import main; main()", "scopes"],
        cwd=tmp_path,  # this copy of the package, not the installed one
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "sql_file, query, verb",
    [
        ("organizations", "get_organization_version", "version"),  # for PATCH's 404 or 412
        ("organizations", "list_organizations_by_created_at_desc", "sort -created_at"),
        ("users", "lock_user", "lock"),  # DELETE
        ("memberships", "remove_membership", "delete"),  # renamed by the declaration
    ],
)
def test_a_resource_missing_a_conventional_query_refuses_to_start(tmp_path, sql_file, query, verb):
    done = _start(tmp_path, sql_file, lambda sql: _without(sql, query))
    line = one_error_line(done.returncode, done.stdout, done.stderr)
    assert line == (
        f"Error: sql/{sql_file}.sql: the resource {sql_file} has no query {query} (its {verb})"
    )


def _without_outbox_parameters(sql: str) -> str:
    """update_organization taking no actor and trace_id (its event written without them)."""
    header = "update_organization(organization_id, slug, name, versions, actor, trace_id)"
    assert header in sql
    sql = sql.replace(header, "update_organization(organization_id, slug, name, versions)")
    block = sql[sql.index("-- name: update_organization(") :]
    block = block[: block.index("\n\n")]
    return sql.replace(block, block.replace(":actor", "NULL").replace(":trace_id", "NULL"))


def test_a_write_that_records_no_event_refuses_to_start(tmp_path):
    """Every write of a resource records its own outbox event, so it takes the actor and the
    trace id: a PATCH query that lost them refuses the start."""
    done = _start(tmp_path, "organizations", _without_outbox_parameters)
    line = one_error_line(done.returncode, done.stdout, done.stderr)
    assert line == (
        "Error: sql/organizations.sql: update_organization (the patch of organizations) takes "
        "no actor and trace_id: a write records its own event"
    )


def test_the_same_tree_starts(tmp_path):
    """The copy above, unchanged, starts: the refusals are the edits'."""
    done = _start(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "organizations:write" in done.stdout.split()


def test_the_declared_verbs_are_the_documented_operations(client):
    """Each declared resource's standard views carry the operationIds clients already use."""
    blueprints()
    spec = client.get("/openapi.json").get_json()
    operations = {
        operation["operationId"]
        for item in spec["paths"].values()
        for operation in item.values()
        if isinstance(operation, dict) and "operationId" in operation
    }
    built = {
        endpoint.rsplit(".", 1)[1]
        for endpoint in client.application.view_functions
        if endpoint.split(".")[0] in RESOURCES
    }
    assert (
        {
            "list_users",
            "get_user",
            "update_user",
            "delete_user",
            "list_organizations",
            "get_organization",
            "get_organization_by_slug",
            "update_organization",
            "delete_organization",
            "get_member",
            "delete_member",
        }
        <= built
        <= operations
    )
