"""How gunicorn serves the app: everything gunicorn.conf.py names besides its settings.

- `gevent_worker.py`: the default worker, gevent with gevent's HTTP server (pywsgi) and a handler
  that holds it to gunicorn's limits, keep-alive and shutdown;
- `gthread_worker.py`: gunicorn's threaded worker (WEB_WORKER_CLASS=gthread);
- `problems.py`: what both answer themselves (414, 431, 400, 417, 501, 500), as problems;
- `stderr.py`: gunicorn's own lines, and whatever Python would print on stderr, as JSON lines;
- `lifecycle.py`: gunicorn's hooks (directories at start, the pool per worker, the end).

gunicorn's master imports this package and never the app: Flask, psycopg and the pool are
imported by each worker after the fork, once gevent has patched it (imported unpatched, psycopg
picks a blocking wait and one database wait stalls the whole worker: STACK-NOTES section 15).
tests/test_serving.py holds the package to that.
"""


def worker_class(name: str):
    """gunicorn's worker_class for WEB_WORKER_CLASS: ours for gevent and gthread; any other
    name (a gunicorn worker or a class's import path) goes to gunicorn as it is. Only the module
    of the chosen worker is imported, so a gthread master never imports gevent."""
    if name == "gevent":
        from .gevent_worker import DataserviceGeventWorker

        return DataserviceGeventWorker
    if name == "gthread":
        from .gthread_worker import DataserviceThreadWorker

        return DataserviceThreadWorker
    return name
