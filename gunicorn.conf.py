"""gunicorn settings for the data service, read from the environment (see docs/ and README).

Each worker process builds the app and opens its own connection pool after the fork; the pool is
closed when the worker exits, after gunicorn has finished the requests in flight.
"""

import multiprocessing
import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
worker_class = "gthread"
workers = int(os.environ.get("WEB_WORKERS", multiprocessing.cpu_count()))
threads = int(os.environ.get("WEB_THREADS", "4"))
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
# SIGTERM: stop accepting, let requests in flight finish for up to this long, then exit.
graceful_timeout = int(os.environ.get("WEB_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Not before the fork: the pool's threads would not survive it. Each worker imports the app.
preload_app = False
# The control socket's default path is shared by every gunicorn on the host; we need none.
control_socket_disable = True


def post_worker_init(worker):
    # Open the pool now rather than on the first request, so the first request is not slower.
    worker.wsgi.extensions["db"].open()


def worker_exit(server, worker):
    app = getattr(worker, "wsgi", None)
    if app is not None and "db" in getattr(app, "extensions", {}):
        app.extensions["db"].close()
