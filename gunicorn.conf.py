"""gunicorn's settings for the data service, read from the environment (docs/operations.md).

Settings only. The worker classes, the problems they answer themselves, the JSON logging and
the hooks' work live in dataservice/serving/. gunicorn's master imports that package, never the
app: each worker imports the app after the fork, then opens its own connection pool, which it
closes when it exits, after the requests in flight.
"""

import multiprocessing
import os

from dataservice import serving
from dataservice.serving import lifecycle
from dataservice.serving.stderr import JsonLogger

# Loopback unless told otherwise (the image sets HOST=0.0.0.0).
bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"

# gevent (default): many requests per worker in one thread, HTTP by gevent's pywsgi (~25% more
# GETs/s than gthread, half the p99: docs/benchmarks.md); gthread: WEB_THREADS threads per
# worker; any other value is a gunicorn worker class, passed on as it is.
worker_class = serving.worker_class(os.environ.get("WEB_WORKER_CLASS", "gevent"))
# One process per core: serving is CPU-bound here, and each process has its own pool.
workers = int(os.environ.get("WEB_WORKERS", multiprocessing.cpu_count()))
# gthread only; keep DATABASE_POOL_MAX_SIZE at least this large.
threads = int(os.environ.get("WEB_THREADS", "4"))
# gevent: requests one worker takes at once; beyond its pool they wait for a connection (at most
# DATABASE_POOL_TIMEOUT, then 503), so this bounds the queue, not the database's load.
worker_connections = int(os.environ.get("WEB_WORKER_CONNECTIONS", "256"))
# A worker silent this long is stuck: killed and replaced.
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
# SIGTERM: stop accepting, let requests in flight finish for up to this long, then exit.
graceful_timeout = int(os.environ.get("WEB_GRACEFUL_TIMEOUT", "30"))
# An idle keep-alive connection is closed after this long, so idle clients cannot hold every
# greenlet of a worker, nor keep a stopping worker waiting.
keepalive = 5

# What both worker classes accept (gunicorn's defaults, stated here because the OpenAPI
# document's maxLength values follow from them): a request line of at most 4094 bytes less its
# CRLF; at most 100 header fields, each line at most 8190 bytes with its CRLF. Past them: 414
# and 431 (dataservice/serving/problems.py).
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190

# Logs: every line on stdout and stderr is one JSON object. The app writes one line per request
# on stdout, so gunicorn's access log is off (it would repeat each in another format); gunicorn's
# own lines go to stderr as JSON (serving/stderr.py).
accesslog = None
errorlog = "-"
logger_class = JsonLogger
loglevel = os.environ.get("LOG_LEVEL", "info").lower()

# Not before the fork: the pool's threads would not survive it, and psycopg must be imported
# after gevent patches the worker (../shared/STACK-NOTES.md section 15).
preload_app = False
# The control socket's default path is shared by every gunicorn on the host; we need none.
control_socket_disable = True

# The hooks (dataservice/serving/lifecycle.py): JSON logging and the shared directories at
# start, each worker's pool opened and closed, a dead worker's gauges dropped, the directories
# removed at exit.
on_starting = lifecycle.on_starting
post_worker_init = lifecycle.post_worker_init
worker_exit = lifecycle.worker_exit
child_exit = lifecycle.child_exit
on_exit = lifecycle.on_exit
