"""The data service: the one HTTP gateway to the PostgreSQL database it owns."""

import logging
import re
import uuid
from pathlib import Path

from flask import Flask, g, request
from flask_smorest import Api

from . import config as config_module
from . import db, errors
from .api import batch, events, health, idempotency, users
from .api.converters import BigintConverter, bigint_schema
from .db import libpq_url
from .jsonprovider import OrjsonProvider
from .notifier import ChangeNotifier
from .passwords import Hasher

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def migration_ids(directory: Path = MIGRATIONS_DIR) -> set[str]:
    """The ids yoyo records for the migrations shipped with this code (file name less .sql)."""
    return {
        p.name.removesuffix(".sql")
        for p in directory.glob("*.sql")
        if not p.name.endswith(".rollback.sql")
    }


def create_app(config: dict | None = None) -> Flask:
    """Build the application. `config` overrides settings read from the environment; the
    database pool is created here but opened only in the process that serves requests."""
    app = Flask(__name__, static_folder=None)
    app.config.update(config_module.load(config))
    app.config.update(
        MAX_CONTENT_LENGTH=app.config["MAX_BODY_BYTES"],
        API_TITLE="dataservice",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
    )
    app.json = OrjsonProvider(app)
    logging.getLogger("dataservice").setLevel(app.config["LOG_LEVEL"])

    db.init_app(app)
    app.extensions["notifier"] = ChangeNotifier(
        libpq_url(app.config["DATABASE_LISTEN_URL"] or app.config["DATABASE_URL"]),
        max_waiters=app.config["EVENTS_MAX_WAITERS"],
    )
    app.extensions["hasher"] = Hasher(app.config)
    app.extensions["migrations"] = migration_ids()

    app.url_map.converters["bigint"] = BigintConverter
    api = Api(app)
    api.register_converter(BigintConverter, bigint_schema)

    api.register_blueprint(health.blp)
    api.register_blueprint(users.blp)
    api.register_blueprint(events.blp)
    api.register_blueprint(batch.blp)
    errors.init_app(app)  # after Api(): replaces flask-smorest's error handlers with ours
    idempotency.init_app(app)

    @app.before_request
    def _request_id():
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex

    @app.after_request
    def _echo_request_id(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        return response

    return app
