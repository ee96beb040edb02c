"""The data service: the one HTTP gateway to the PostgreSQL database it owns."""

from pathlib import Path

from flask import Flask

from . import auth, db, errors, logs, metrics, notifier, observe, replica
from . import config as config_module
from .api import batch, docs, events, health, idempotency, users
from .api.converters import BigintConverter, bigint_schema
from .jsonprovider import OrjsonProvider
from .openapi import ServiceApi
from .passwords import Hasher

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
API_DESCRIPTION = (
    "The one HTTP gateway to the PostgreSQL database it owns. Every error is an RFC 9457 "
    "problem (application/problem+json) carrying the request's X-Request-ID."
)


def migration_ids(directory: Path = MIGRATIONS_DIR) -> set[str]:
    """The ids yoyo records for the migrations shipped with this code (file name less .sql)."""
    return {
        p.name.removesuffix(".sql")
        for p in directory.glob("*.sql")
        if not p.name.endswith(".rollback.sql")
    }


class ServiceFlask(Flask):
    """Flask, remembering which views and hooks are plain functions. Flask asks inspect whether
    each one is a coroutine function every time it calls it (six times for a GET: about 30 of
    a request's 1,400 function calls); for a given function the answer never changes."""

    _REMEMBERED = 1024  # functions made per call are not worth keeping, nor leaking

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._sync: dict = {}

    def ensure_sync(self, func):
        try:
            return self._sync[func]
        except KeyError:
            sync = super().ensure_sync(func)
            if len(self._sync) < self._REMEMBERED:
                self._sync[func] = sync
            return sync
        except TypeError:  # an unhashable callable
            return super().ensure_sync(func)


def close(app: Flask) -> None:
    """Writes the request lines and metrics still pending, then releases what a worker holds:
    the pools' connections and the feed's listener (whichever of them this app has)."""
    for name in ("journal", "notifier", "db", "replica"):
        if name in app.extensions:
            app.extensions[name].close()


def create_app(config: dict | None = None) -> Flask:
    """Build the application. `config` overrides settings read from the environment; the
    database pool is created here but opened only in the process that serves requests."""
    app = ServiceFlask(__name__, static_folder=None)
    app.config.update(config_module.load(config))
    app.config.update(
        MAX_CONTENT_LENGTH=app.config["MAX_BODY_BYTES"],
        API_TITLE="dataservice",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={"info": {"description": API_DESCRIPTION}},
    )
    app.json = OrjsonProvider(app)
    logs.configure(app.config["LOG_LEVEL"])

    db.init_app(app)
    notifier.init_app(app)
    app.extensions["hasher"] = Hasher(app.config)
    app.extensions["migrations"] = migration_ids()
    observe.init_app(app)  # first request hooks: request id, clock; metrics and log line last
    auth.init_app(app)  # after observe: a 401 still gets its request id and log line
    replica.init_app(app)

    app.url_map.converters["bigint"] = BigintConverter
    api = ServiceApi(app)
    api.register_converter(BigintConverter, bigint_schema)

    api.register_blueprint(health.blp)
    api.register_blueprint(users.blp)
    api.register_blueprint(events.blp)
    api.register_blueprint(batch.blp)
    api.register_blueprint(metrics.blp)
    app.register_blueprint(docs.blp)  # /docs: for people, not in the OpenAPI document
    errors.init_app(app)  # after Api(): replaces flask-smorest's error handlers with ours
    idempotency.init_app(app)

    return app
