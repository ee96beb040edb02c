"""The application factory: create_app builds the Flask app of one worker process (wsgi.py for
gunicorn, the CLI, the tests), and close releases what it holds.

Importing this module imports Flask, psycopg and the pool; gunicorn's master never does (see
dataservice/serving/): each worker imports it after the fork, once gevent has patched it.
"""

from flask import Flask

from . import api, db, logs, metrics, migration_ids, notifier, observe, replica, tracing
from . import config as config_module
from .admission import Admission
from .api import catalog as catalog_api
from .api import idempotency, pipeline, problems
from .api.converters import BigintConverter, SlugConverter, bigint_schema, slug_schema
from .catalog import Catalog, collisions_with
from .jsonprovider import OrjsonProvider
from .openapi import ServiceApi
from .passwords import Hasher

API_DESCRIPTION = (
    "The one HTTP gateway to the PostgreSQL database it owns. Every error is an RFC 9457 "
    "problem (application/problem+json) carrying the request's X-Request-ID."
)


def start(app: Flask) -> None:
    """Opens the pool of a worker about to serve, so that its first request is not slower
    (gunicorn's post_worker_init, serving/lifecycle.py); its tracer too, when tracing is on."""
    app.extensions["db"].open()
    tracing.start()


def close(app: Flask) -> None:
    """Writes the request lines and metrics still pending, then releases what a worker holds:
    the pools' connections and the feed's listener (whichever of them this app has), and
    the spans still queued for export."""
    for name in ("journal", "notifier", "db", "replica", "admission"):
        if name in app.extensions:
            app.extensions[name].close()
    tracing.shutdown()  # the spans still queued are exported


def create_app(config: dict | None = None) -> Flask:
    """Build the application. `config` overrides settings read from the environment; the
    database pool is created here but opened only in the process that serves requests."""
    app = Flask("dataservice", static_folder=None)  # the package's name (root path, logger)
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
    logs.configure(app.config["LOG_LEVEL"], observe.log_context)

    db.init_app(app, on_error=metrics.record_database_error)
    notifier.init_app(app)
    app.extensions["admission"] = Admission(app.config)
    app.extensions["hasher"] = Hasher(app.config)
    app.extensions["migrations"] = migration_ids()
    if app.config["DATABASE_REPLICA_URL"]:
        app.extensions["replica"] = replica.Replica(app.config, app.extensions["db"])
    pipeline.init_app(app)  # what happens around every view, in order (the only request hooks)

    app.url_map.converters.update(bigint=BigintConverter, slug=SlugConverter)
    spec = ServiceApi(app)
    spec.register_converter(BigintConverter, bigint_schema)
    spec.register_converter(SlugConverter, slug_schema)
    for blueprint in api.blueprints():  # every module of api/ that defines `blp`
        if isinstance(blueprint, api.parsing.Blueprint):
            spec.register_blueprint(blueprint)
        else:  # a plain Flask blueprint (/docs): for people, not in the OpenAPI document
            app.register_blueprint(blueprint)
    # The catalog's endpoints last: a route of theirs that one above serves is refused.
    catalog = app.extensions["catalog"] = Catalog(app.config["CATALOG_SQL_DIRS"])
    collisions_with(catalog.queries, app.url_map.iter_rules())
    if app.config.get("CATALOG_DESCRIBE_AT_START", True):
        catalog.start(db.libpq_url(app.config["DATABASE_URL"]), app.config["DATABASE_POOL_TIMEOUT"])
    app.url_map.converters["catalog_text"] = catalog_api.TextConverter
    spec.register_converter(catalog_api.TextConverter, catalog_api.text_schema)
    spec.register_blueprint(catalog_api.blueprint(catalog))
    problems.init_app(app)  # after Api(): replaces flask-smorest's error handlers with ours
    idempotency.init_app(app)

    return app
