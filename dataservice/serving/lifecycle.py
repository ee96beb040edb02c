"""gunicorn's hooks, in the order they run (gunicorn.conf.py names each).

on_starting, child_exit and on_exit run in the master, which never imports the app;
post_worker_init and worker_exit run in a worker, which has imported it by then (after gevent's
patches), and reach it through dataservice.app.
"""

import os
import shutil
import tempfile
from pathlib import Path

from . import stderr


def on_starting(server) -> None:
    """Before the master forks: JSON lines for everything (stderr.py), and the directories
    every worker of this instance shares."""
    stderr.everything_through_logging()
    # Metrics (prometheus_client multiprocess mode): every worker writes its samples to files in
    # this directory and a scrape adds them up. Workers inherit it; it must start empty.
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        for stale in Path(directory).glob("*.db"):
            stale.unlink()
    else:
        server.made_metrics_dir = tempfile.mkdtemp(prefix="dataservice-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = server.made_metrics_dir
    # Rates and permits every worker of this instance shares (dataservice/admission/), in
    # memory when /dev/shm is there (mkdtemp's directory is private: 0700, a random name).
    if not os.environ.get("INSTANCE_STATE_DIR"):
        shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None  # noqa: S108
        server.made_state_dir = tempfile.mkdtemp(prefix="dataservice-state-", dir=shm)
        os.environ["INSTANCE_STATE_DIR"] = server.made_state_dir


def post_worker_init(worker) -> None:
    """A worker has loaded the app: its pool opens now rather than on the first request."""
    from ..app import start

    start(worker.wsgi)


def worker_exit(server, worker) -> None:
    """A worker stops, its requests in flight finished: pending lines written, pool closed."""
    app = getattr(worker, "wsgi", None)  # absent when the worker failed to load the app
    if app is not None and "db" in getattr(app, "extensions", {}):
        from ..app import close

        close(app)
        server.log.info("database pool closed (pid: %s)", worker.pid)


def child_exit(server, worker) -> None:
    """A worker has died: its pool gauges stop counting; its counters stay (they only go up)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    """The master exits: the directories it made go."""
    for name in ("made_metrics_dir", "made_state_dir"):
        made = getattr(server, name, None)
        if made:
            shutil.rmtree(made, ignore_errors=True)
