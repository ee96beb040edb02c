"""What a query's row tells, the same for every resource: whether it was there (`found`) and,
for a conditional write, why it was not written (`written`, `current`).

Optimistic concurrency: each row has a `version` that every change increments (the API's ETag),
and a conditional write changes a row only when its version is one the client named (If-Match;
`version_matches` of migration 0010 in the SQL)."""

from collections.abc import Callable

from ..errors import NotFound, PreconditionFailed


def found(row: dict | None, missing: str, field: str | None = None) -> dict:
    """The row, or NotFound (`missing` as the detail, naming `field` when given)."""
    if row is None:
        raise NotFound(missing, field=field)
    return row


def written(
    row: dict | None,
    versions: list[int] | None,
    current_version: Callable[[], int | None],
    missing: str,
) -> dict:
    """The row a conditional write returned (`versions`: the If-Match versions, None for no
    precondition). When it touched none, says why: the row is gone (NotFound with `missing` as
    the detail) or its version is not one the client named."""
    if row is not None:
        return row
    if versions is None or current_version() is None:  # without a precondition: it was gone
        raise NotFound(missing)
    raise PreconditionFailed()


def current(row: dict | None, versions: list[int] | None, missing: str) -> dict:
    """A row read and locked for a conditional write: NotFound when there is none,
    PreconditionFailed when its version is not one the client named (None: any)."""
    found(row, missing)
    if versions is not None and row["version"] not in versions:
        raise PreconditionFailed()
    return row
