"""gunicorn's master loads gunicorn.conf.py, and with it dataservice/serving/, but never the app:
Flask, psycopg and the pool are imported by each worker after the fork, once gevent has patched
it. psycopg imported before the patch picks a blocking wait, and one database wait then stalls
every request of the worker (../shared/STACK-NOTES.md section 15). Checked in a fresh Python
process, which loads what the master loads and runs the hooks the master runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
# What the master must not import: the app, the web framework, the database driver and pool.
FORBIDDEN = ("flask", "werkzeug", "psycopg", "psycopg_pool", "dataservice.app", "wsgi")

AS_THE_MASTER = """
import importlib, json, pkgutil, runpy, sys
from types import SimpleNamespace

settings = runpy.run_path("gunicorn.conf.py")  # as gunicorn reads it
import dataservice.serving
for module in pkgutil.iter_modules(dataservice.serving.__path__):
    importlib.import_module("dataservice.serving." + module.name)
server = SimpleNamespace(log=None)
settings["on_starting"](server)
settings["child_exit"](server, SimpleNamespace(pid=1))
settings["on_exit"](server)
print(json.dumps({"modules": sorted(sys.modules), "worker_class": str(settings["worker_class"])}))
"""


@pytest.mark.parametrize("worker_class", ["gevent", "gthread"])
def test_what_the_master_loads_imports_no_app_framework_or_driver(worker_class):
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("PROMETHEUS_MULTIPROC_DIR", "INSTANCE_STATE_DIR")
    }
    done = subprocess.run(
        [sys.executable, "-c", AS_THE_MASTER],
        cwd=ROOT,
        env={**env, "WEB_WORKER_CLASS": worker_class},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert loaded["worker_class"].endswith(
        "DataserviceGeventWorker'>" if worker_class == "gevent" else "DataserviceThreadWorker'>"
    )
    imported = [
        name
        for name in loaded["modules"]
        if any(name == forbidden or name.startswith(forbidden + ".") for forbidden in FORBIDDEN)
    ]
    assert imported == []
    assert "dataservice.serving.lifecycle" in loaded["modules"]  # the check saw the package
