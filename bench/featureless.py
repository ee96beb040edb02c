"""The service without auth, metrics and the request log: for one benchmark comparison only.

Issue 8 asks what those three cost GET-by-id throughput, measured with and without them. Auth
cannot be switched off in the service (by design), so this variant removes the request hooks of
dataservice/auth.py and dataservice/observe.py and trusts every caller with every scope:

    make bench BENCH_ARGS='--scenarios get_by_id --connections 64 --app bench.featureless:app'

Never serve this anywhere but on a benchmark's loopback port.
"""

from flask import g

from dataservice import auth, observe
from dataservice.app import create_app

app = create_app()
_REMOVED = {auth.__name__, observe.__name__}
for hooks in (app.before_request_funcs, app.after_request_funcs):
    for functions in hooks.values():
        functions[:] = [f for f in functions if f.__module__ not in _REMOVED]


@app.before_request
def _trust_every_caller():
    context = g._get_current_object()  # once, as auth.py does
    context.client_name, context.scopes = "bench", _EVERY_SCOPE


_EVERY_SCOPE = frozenset(auth.scopes(app))
