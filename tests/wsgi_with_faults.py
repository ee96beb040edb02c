"""The production app (wsgi.py) with faults on demand, for tests that run gunicorn on it:
`gunicorn -c gunicorn.conf.py tests.wsgi_with_faults:app`. It lives in the test tree only (the
image leaves tests/ out), so no build of the service can serve these paths.

    /_faults/view      a view raises: the app's own 500
    /_faults/escape    an exception escapes the WSGI app: the worker's 500
    /_faults/warn      a Python warning
    /_faults/thread    a thread dies of an exception nobody catches
    /_faults/greenlet  (gevent) a greenlet dies of one: the hub reports it
    /_faults/pid       no fault: the worker's process id, to tell which worker answered

and with FAULT_AT_BOOT=1 in the environment, a worker fails as it loads the app.
"""

import os
import threading
import warnings

from dataservice.workers import cooperative
from wsgi import app as service

PREFIX = "/_faults/"


class InjectedFault(Exception):
    """What the faults raise."""


def _fail():
    raise InjectedFault("a fault a test asked for")


if os.environ.get("FAULT_AT_BOOT") == "1":
    _fail()
service.add_url_rule(PREFIX + "view", "fault_in_view", _fail)


def _no_content(start_response):
    start_response("204 No Content", [])
    return []


def _pid(start_response):
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _with_faults(wsgi_app):
    """WSGI middleware in Flask's place for it (app.wsgi_app): gunicorn still serves the app."""

    def serve(environ, start_response):
        fault = environ.get("PATH_INFO", "").removeprefix(PREFIX)
        if fault == "escape":
            _fail()
        if fault == "pid":
            return _pid(start_response)
        if fault == "warn":
            warnings.warn("a warning a test asked for", UserWarning, stacklevel=1)
            return _no_content(start_response)
        if fault == "thread":
            threading.Thread(target=_fail, name="fault-thread").start()
            return _no_content(start_response)
        if fault == "greenlet" and cooperative():
            import gevent

            gevent.spawn(_fail)
            return _no_content(start_response)
        return wsgi_app(environ, start_response)

    return serve


service.wsgi_app = _with_faults(service.wsgi_app)
app = service
