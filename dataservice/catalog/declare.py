"""The catalog's declarations: the named queries of sql/*.sql (and of the CATALOG_SQL_DIRS) whose
header has an `endpoint:` line, with what the rest of their header says (docs/queries.md has the
syntax). Nothing here touches the database: describe.py asks it for the types.
"""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import aiosql

from ..queries import SQL_DIR

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_DIRECTIVE = re.compile(
    r"(endpoint|scope|page|optional|timeout|replica|event|check|example):\s*(.*)"
)
_ROUTE_PARAMETER = re.compile(r"\{(\w+)\}")
_SCOPE = re.compile(r"[a-z_]+:[a-z_]+")
_EVENT = re.compile(r"[a-z]+(_[a-z]+)*\.[a-z]+(_[a-z]+)*")
_TIMEOUT = re.compile(r"([0-9]+)\s*(ms|s)")
_SHAPES = {"": "list", "^": "one", "!": "write"}


class CatalogError(Exception):
    """A declaration the service refuses to start with: one line naming the file and query."""

    def __init__(self, where: str, message: str):
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Check:
    """`-- check: <column> <status> <field> <message>`: the row's boolean column must be true,
    else the problem (404, 409 or 422) naming `field`, and the transaction is rolled back."""

    column: str
    status: int
    field: str
    message: str


@dataclass
class Query:
    """One endpoint query, as its header declares it."""

    name: str
    file: str
    sql: str  # as aiosql gives it to psycopg: %(name)s placeholders
    parameters: tuple[str, ...]
    shape: str  # one, list or write
    method: str
    route: str  # /api/v1/users/{user_id}/organizations
    scopes: tuple[str, ...]
    summary: str
    description: str
    page: tuple[str, ...] = ()  # the keyset's columns (a list); after_<column> and limit bound
    optional: frozenset[str] = frozenset()
    timeout_ms: int | None = None
    replica: bool = False
    event: tuple[str, str] | None = None  # (type, the column or parameter of the entity id)
    checks: tuple[Check, ...] = ()
    example: dict = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.file}: {self.name}"

    @property
    def route_parameters(self) -> list[str]:
        return _ROUTE_PARAMETER.findall(self.route)

    @property
    def machinery_parameters(self) -> set[str]:
        """The parameters the service binds itself (a page's position and size)."""
        return {f"after_{column}" for column in self.page} | ({"limit"} if self.page else set())

    @property
    def client_parameters(self) -> list[str]:
        """The parameters the client gives: in the path, the query string or the body."""
        return [p for p in self.parameters if p not in self.machinery_parameters]


def sql_dirs(extra: str = "") -> list[Path]:
    """sql/ and the directories CATALOG_SQL_DIRS names (separated by the path separator)."""
    dirs = [SQL_DIR] + [Path(d) for d in re.split(r"[:;]", extra or "") if d.strip()]
    return dirs


def load(dirs: list[Path]) -> list[Query]:
    """Every endpoint query in the .sql files of `dirs`; CatalogError on a bad declaration."""
    found = []
    for directory in dirs:
        for path in sorted(Path(directory).glob("*.sql")):
            module = aiosql.from_path(path, "psycopg")
            shown = _shown(path)
            for name in module.available_queries:
                if "." in name or name.endswith("_cursor"):
                    continue
                query = _declared(getattr(module, name), name, path, shown)
                if query is not None:
                    found.append(query)
    _no_collisions(found)
    return found


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(SQL_DIR.parent))
    except ValueError:
        return str(path)


def _suffix(path: Path, name: str) -> str:
    match = re.search(rf"^-- name: {name}\([^)]*\)([$^!#<*]*)", path.read_text(), re.MULTILINE)
    return match.group(1) if match else ""


def _declared(function, name: str, path: Path, shown: str) -> Query | None:
    doc = function.__doc__ or ""
    prose, directives = [], {}
    for line in doc.splitlines():
        match = _DIRECTIVE.fullmatch(line.strip())
        if match:
            directives.setdefault(match.group(1), []).append(match.group(2).strip())
        else:
            prose.append(line.strip())
    if "endpoint" not in directives:
        return None
    where = f"{shown}: {name}"

    def one(key: str) -> str | None:
        values = directives.get(key, [])
        if len(values) > 1:
            raise CatalogError(where, f"`{key}:` is given {len(values)} times")
        return values[0] if values else None

    suffix = _suffix(path, name)
    if suffix not in _SHAPES:
        raise CatalogError(
            where, f"the suffix {suffix!r} is not one an endpoint takes (^, !, none)"
        )
    method, _, route = one("endpoint").partition(" ")
    route = route.strip()
    if method not in METHODS or not route.startswith("/api/v1/"):
        raise CatalogError(where, "write `-- endpoint: <GET|POST|PUT|PATCH|DELETE> /api/v1/...`")
    shape = _SHAPES[suffix]
    if shape == "write" and method == "GET":
        raise CatalogError(where, "a GET cannot be a write (`!`)")
    scopes = tuple(s for s in re.split(r"[,\s]+", one("scope") or "") if s)
    if not scopes:
        raise CatalogError(where, "no `-- scope:` line: every endpoint needs its scope")
    for scope in scopes:
        if not _SCOPE.fullmatch(scope):
            raise CatalogError(where, f"the scope {scope!r} is not <resource>:<access>")
    parameters = tuple(function.parameters or ())
    query = Query(
        name=name,
        file=shown,
        sql=function.sql,
        parameters=parameters,
        shape=shape,
        method=method,
        route=route,
        scopes=scopes,
        summary=(prose[0] if prose else name).rstrip("."),
        description=" ".join(prose),
        page=tuple(c for c in re.split(r"[,\s]+", one("page") or "") if c),
        optional=frozenset(p for p in re.split(r"[,\s]+", one("optional") or "") if p),
        timeout_ms=_timeout(where, one("timeout")),
        replica=(one("replica") or "no").lower() in ("yes", "allowed", "true"),
        event=_event(where, one("event")),
        checks=tuple(_check(where, text) for text in directives.get("check", [])),
        example=_example(where, one("example")),
    )
    _consistent(query)
    return query


def _timeout(where: str, text: str | None) -> int | None:
    if text is None:
        return None
    match = _TIMEOUT.fullmatch(text)
    if not match:
        raise CatalogError(where, f"`-- timeout: {text}`: write it like 500ms or 2s")
    return int(match.group(1)) * (1000 if match.group(2) == "s" else 1)


def _event(where: str, text: str | None) -> tuple[str, str] | None:
    if text is None:
        return None
    parts = text.split()
    if len(parts) != 2 or not _EVENT.fullmatch(parts[0]):
        raise CatalogError(where, "write `-- event: <entity>.<action> <column of the entity id>`")
    return parts[0], parts[1]


def _check(where: str, text: str) -> Check:
    parts = text.split(None, 3)
    if len(parts) != 4 or parts[1] not in ("404", "409", "422"):
        raise CatalogError(where, "write `-- check: <column> <404|409|422> <field> <message>`")
    return Check(parts[0], int(parts[1]), parts[2], parts[3])


def _example(where: str, text: str | None) -> dict:
    if text is None:
        return {}
    try:
        example = json.loads(text)
    except ValueError:
        raise CatalogError(where, "`-- example:` is not a JSON object") from None
    if not isinstance(example, dict):
        raise CatalogError(where, "`-- example:` is not a JSON object")
    return example


def _consistent(query: Query) -> None:
    where = query.where
    for name in query.route_parameters:
        if name not in query.parameters:
            raise CatalogError(where, f"the route's {{{name}}} is not a parameter of the query")
    if query.page:
        if query.shape != "list" or query.method != "GET":
            raise CatalogError(where, "only a GET list (no suffix) has a `-- page:`")
        missing = sorted(query.machinery_parameters - set(query.parameters))
        if missing:
            raise CatalogError(
                where, f"a page by {', '.join(query.page)} takes :{', :'.join(missing)}"
            )
    unknown = set(query.example) - set(query.client_parameters)
    if unknown:
        raise CatalogError(where, f"the example names {sorted(unknown)}, not parameters")
    if query.event and query.method == "GET":
        raise CatalogError(where, "a GET appends no event")
    if query.checks and query.shape != "one":
        raise CatalogError(where, "a `-- check:` reads the one row a `^` query returns")


def _normalised(route: str) -> str:
    return _ROUTE_PARAMETER.sub("{}", route)


def _no_collisions(found: list[Query]) -> None:
    seen: dict[tuple[str, str], Query] = {}
    for query in found:
        key = (query.method, _normalised(query.route))
        if key in seen:
            raise CatalogError(
                query.where, f"{query.method} {query.route} is already {seen[key].where}"
            )
        seen[key] = query
    names: dict[str, Query] = {}
    for query in found:
        if query.name in names:
            raise CatalogError(query.where, f"the name is already {names[query.name].where}")
        names[query.name] = query


def collisions_with(found: list[Query], rules) -> None:
    """Refuses a catalog route that an endpoint written in Python already serves."""
    taken = {}
    for rule in rules:
        route = re.sub(r"<(?:[^:>]+:)?[^>]+>", "{}", rule.rule)
        for method in rule.methods or ():
            taken[(method, route)] = rule.endpoint
    for query in found:
        endpoint = taken.get((query.method, _normalised(query.route)))
        if endpoint is not None:
            raise CatalogError(
                query.where, f"{query.method} {query.route} is already served by {endpoint}"
            )
