"""Cheap contracts that catch real bugs: every named query is used; SQL follows the house style."""

import ast
import re
from pathlib import Path

from dataservice.api import blueprints
from dataservice.api.resource import RESOURCES
from dataservice.catalog import Catalog
from dataservice.queries import SQL_DIR, queries

# An endpoint query's header lines (docs/queries.md): `-- scope: users:read` names no parameter.
_CATALOG_LINE = re.compile(
    r"^-- (endpoint|scope|page|optional|timeout|replica|event|check|example):"
)

ROOT = Path(__file__).parent.parent


def named_queries() -> dict[str, list[str]]:
    return {
        path.stem: re.findall(r"^-- name: (\w+)", path.read_text(), re.MULTILINE)
        for path in sorted(SQL_DIR.glob("*.sql"))
    }


# The files that are not a resource's, and the modules that run them.
NOT_A_RESOURCE = {
    "migrate": ["migrate.py"],
    "seed": ["seed.py"],
    "catalog_support": ["catalog/__init__.py", "catalog/describe.py", "api/catalog.py"],
}


def user_of(sql_file: str) -> str:
    """The source of the module(s) that run sql/<name>.sql: store/<name>.py and (for a declared
    resource, api/verbs.py serving the rest) api/<name>.py for a resource."""
    modules = NOT_A_RESOURCE.get(sql_file, [f"store/{sql_file}.py", f"api/{sql_file}.py"])
    paths = [ROOT / "dataservice" / module for module in modules]
    return "\n".join(path.read_text() for path in paths if path.exists())


def test_every_named_query_is_used_by_its_store_module():
    blueprints()  # every resource declared, its standard verbs built
    served = {query.name for query in Catalog().queries}  # the catalog serves these itself
    for resource, names in named_queries().items():
        by_convention = {
            name for r in RESOURCES.values() for file, name in r.used if file == resource
        }
        names = [name for name in names if name not in served | by_convention]
        if not names:
            continue
        store = user_of(resource)
        # `queries.users.get_user_by_id`, or `q.get_user_by_id` after `q = queries.users`
        aliases = re.findall(rf"^(\w+) = queries\.{resource}$", store, re.MULTILINE)
        prefixes = "|".join([rf"(?:queries|named_sql)\.{resource}", *aliases])
        for name in names:
            used = re.search(rf"(?:{prefixes})\.{name}\b", store)
            assert used, f"{resource}.{name} is never used"


def test_every_query_has_a_doc_comment_and_declares_its_parameters():
    for path in SQL_DIR.glob("*.sql"):
        blocks = re.split(r"^-- name: ", path.read_text(), flags=re.MULTILINE)[1:]
        for block in blocks:
            header, doc, *body = block.splitlines()
            assert re.fullmatch(r"\w+\((\w+(, \w+)*)?\)[\^$!#]?", header), header
            assert doc.startswith("-- ") and len(doc) > 10, f"{header}: no doc comment"
            sql = "\n".join(line for line in body if not _CATALOG_LINE.match(line))
            declared = set(re.findall(r"\w+", header.split("(", 1)[1]))
            used = set(re.findall(r"(?<!:):(\w+)", sql))
            assert used == declared, header
            assert "SELECT *" not in sql, f"{header}: list the columns"


def test_loaded_queries_match_the_files():
    for resource, names in named_queries().items():
        assert set(names) <= set(dir(getattr(queries, resource)))


def test_sql_never_reads_the_password_hash_into_a_response():
    users_sql = (SQL_DIR / "users.sql").read_text()
    for block in re.split(r"^-- name: ", users_sql, flags=re.MULTILINE)[1:]:
        name = block.split("(", 1)[0]
        read_from_table = re.findall(r"SELECT([^;]*?)FROM users", block, re.DOTALL)
        returned = re.findall(r"RETURNING([^;]*)", block, re.DOTALL)
        for columns in read_from_table + returned:
            if name != "get_credentials":
                assert "password_hash" not in columns, name


def test_the_database_knows_exactly_the_scopes_the_endpoints_require(app, db):
    from dataservice import auth

    in_database = {name for (name,) in db.execute("SELECT name FROM api_scopes").fetchall()}
    assert in_database == set(auth.scopes(app))


def test_every_event_type_the_sql_writes_is_declared(app):
    """Each resource's writes insert their events in SQL (docs/dba.md, "The outbox"), the type
    a literal there: every one must be declared (the feed's `types` filter and its documentation
    list them), and every type a resource declares must be written by one of its queries."""
    from dataservice.store import events

    blueprints()
    written = set()
    for path in SQL_DIR.glob("*.sql"):
        for block in re.split(r"^-- name: ", path.read_text(), flags=re.MULTILINE)[1:]:
            if "INSERT INTO events" in block:
                written |= set(re.findall(r"'([a-z_]+\.[a-z_]+)'", block))
    assert written <= set(events.TYPES), written - set(events.TYPES)
    for resource in RESOURCES.values():
        assert set(resource.events) <= written, (resource.name, set(resource.events) - written)
    assert len(events.TYPES) == len(set(events.TYPES))


def test_nothing_below_the_api_imports_the_api():
    """api/ (HTTP) sits on the rest; where a lower layer reports upward it calls a hook."""
    package = ROOT / "dataservice"
    for path in package.rglob("*.py"):
        relative = path.relative_to(package)
        if relative.parts[0] in ("api", "app.py", "cli.py"):
            continue  # api itself, the factory that wires it, and the command line
        source = path.read_text()
        imports = re.findall(r"^\s*(?:from|import) (\S+)", source, re.MULTILINE)
        upward = [name for name in imports if re.match(r"(\.+|dataservice\.)api\b", name)]
        assert not upward, f"{relative} imports {upward}"


def test_schemas_never_import_the_store():
    """Schemas describe the HTTP documents; what they share with the store lives below both."""
    for path in (ROOT / "dataservice" / "schemas").rglob("*.py"):
        imports = re.findall(r"^\s*(?:from|import) (\S+)", path.read_text(), re.MULTILINE)
        assert not [name for name in imports if re.match(r"(\.+|dataservice\.)store\b", name)], path


# A string that starts like a statement (a keyword and more: "DELETE" alone is an HTTP method).
# Docstrings are prose, and messages that name SQL start with something else.
STATEMENT = re.compile(
    r"\s*(SELECT|INSERT|UPDATE|DELETE|WITH|COPY|SET|SHOW|ANALYZE|VACUUM|LISTEN|NOTIFY|TRUNCATE"
    r"|CREATE|ALTER|DROP|GRANT|BEGIN|COMMIT|ROLLBACK|CALL|DO)\s+\S"
)


def test_sql_lives_in_sql_and_migrations_only():
    """Every statement the service runs is in sql/ (or migrations/), where a DBA reviews it. The
    tests' and the benchmark's data builders are exempt: they are not the service."""
    sources = [*(ROOT / "dataservice").rglob("*.py"), ROOT / "wsgi.py", ROOT / "gunicorn.conf.py"]
    found = []
    for path in sources:
        tree = ast.parse(path.read_text())
        docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}
        for node in ast.walk(tree):
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and id(node) not in docstrings and STATEMENT.match(text):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value[:40]!r}")
    assert not found, found


_REQUEST_HOOK = re.compile(
    r"\b(before_request|after_request|teardown_request|after_this_request|before_app_request"
    r"|after_app_request|teardown_app_request|url_value_preprocessor|url_defaults)\b"
)


def test_request_hooks_are_registered_in_the_pipeline_only(app):
    """What happens around a view is api/pipeline.py's, in its one visible order; a hook
    registered anywhere else would run in an order nobody wrote down."""
    pipeline = ROOT / "dataservice" / "api" / "pipeline.py"
    for path in (ROOT / "dataservice").rglob("*.py"):
        if path != pipeline:
            found = _REQUEST_HOOK.findall(path.read_text())
            assert not found, f"{path.relative_to(ROOT)} registers a request hook: {found}"
    registered = [
        *(f for funcs in app.before_request_funcs.values() for f in funcs),
        *(f for funcs in app.after_request_funcs.values() for f in funcs),
        *(f for funcs in app.teardown_request_funcs.values() for f in funcs),
    ]
    assert {f.__module__ for f in registered} == {"dataservice.api.pipeline"}
    assert sorted(f.__name__ for f in registered) == ["after", "before"]


def test_a_batch_operation_is_told_apart_in_the_pipeline_only():
    """A batch's operations take one documented path through the pipeline: the flag that marks
    them is set by the batch and read by the pipeline, nowhere else."""
    users = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "dataservice").rglob("*.py")
        if re.search(r"\bNESTED\b", path.read_text())
    }
    assert users == {"dataservice/api/pipeline.py", "dataservice/api/batch.py"}


def test_the_request_path_in_docs_names_real_places():
    """docs/architecture.md walks a newcomer through the code: every file it names exists and
    every `module.name` it names is defined there, so the walk cannot rot unseen."""
    import importlib

    text = (ROOT / "docs" / "architecture.md").read_text()
    names = re.findall(r"`([^`\s]+)`", text)
    files = [n for n in names if re.fullmatch(r"[\w/.]+\.(py|sql|md)", n)]
    missing = [
        n for n in files if not (ROOT / n).exists() and not (ROOT / "dataservice" / n).exists()
    ]
    assert not missing, missing
    assert len(files) > 20
    dotted = [
        m.groups()
        for n in names
        if (m := re.fullmatch(r"([a-z_]+(?:/[a-z_]+)?)\.(\w+)(?:\(\))?", n))
        and m.group(2) not in ("py", "sql", "md")
    ]
    package = ROOT / "dataservice"
    for module, attribute in dotted:
        if not (package / f"{module}.py").exists() and not (package / module).is_dir():
            continue  # not a module of ours (Flask's `g.replica`, say)
        path = module.replace("/", ".")
        found = importlib.import_module(f"dataservice.{path}")
        assert hasattr(found, attribute), f"dataservice.{path} has no {attribute}"
    assert len(dotted) > 10


def test_every_declared_resource_has_a_kit_case():
    """tests/test_resources.py runs the kit's tests on every resource declared (api/resource.py):
    one without its case in tests/resource_kit.py would go untested."""
    from .resource_kit import CASES

    blueprints()
    assert {case.name for case in CASES} == set(RESOURCES)
