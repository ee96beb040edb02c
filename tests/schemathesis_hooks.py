"""schemathesis hooks for tests/test_fuzz.py (loaded through SCHEMATHESIS_HOOKS).

A new organization's owner must be an existing user: a valid owner_id that names nobody is a 422
naming the field, which no schema can state. Every organization create schemathesis sends,
alone or in a batch, names the owner the test made (FUZZ_OWNER_ID) in place of a generated id
that is valid; an invalid one (a negative case) is left as it is."""

import os

import schemathesis

from dataservice.schemas.fields import BIGINT_MAX

ORGANIZATIONS = "/api/v1/organizations"


def _with_the_owner(body) -> None:
    owner_id = body.get("owner_id") if isinstance(body, dict) else None
    if type(owner_id) is int and 1 <= owner_id <= BIGINT_MAX:
        body["owner_id"] = int(os.environ["FUZZ_OWNER_ID"])


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.method != "POST":
        return
    if case.path == ORGANIZATIONS:
        _with_the_owner(case.body)
    elif case.path == "/api/v1/batch" and isinstance(case.body, dict):
        for operation in case.body.get("operations") or []:
            creates = isinstance(operation, dict) and operation.get("method") == "POST"
            if creates and operation.get("path") == ORGANIZATIONS:
                _with_the_owner(operation.get("body"))
