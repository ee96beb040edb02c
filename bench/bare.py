"""A bare Flask + psycopg-pool service: the yardstick issue 8 measures our service against.

The issue's targets are absolute numbers from one 2-core machine, next to what "a bare Flask +
psycopg-pool sketch with none of our features" reached there (about 2,500 GET-by-id/s, 1,300 to
1,800 POST/s). On another machine the same targets mean something else, so the benchmark runs
this sketch too and reports our service as a multiple of it:

    make bench BENCH_ARGS='--scenarios get_by_id,create --connections 64 --app bench.bare:app'

It answers the two scenarios the sketch was measured on, with the same URLs and bodies as the
service, under the same gunicorn.conf.py: no auth, metrics, logs, validation beyond the JSON
parse, ETags, change feed or transaction (the create is one autocommitted INSERT).
"""

import os

from flask import Flask, abort, jsonify, request
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool


class BarePool:
    """The pool, opened in the worker after gunicorn forks (post_worker_init calls open())."""

    def __init__(self, url: str):
        self.pool = ConnectionPool(
            url,
            min_size=4,
            max_size=4,
            open=False,
            kwargs={"autocommit": True, "row_factory": dict_row},
        )

    def open(self):
        self.pool.open(wait=True)

    def close(self):
        self.pool.close()


app = Flask(__name__)
database = app.extensions["db"] = BarePool(os.environ["DATABASE_URL"])


@app.get("/ready")
def ready():
    return {"status": "ready"}


@app.get("/api/v1/users/<int:user_id>")
def get_user(user_id):
    with database.pool.connection() as conn:
        row = conn.execute(
            "SELECT id, email, username, version, created_at, updated_at FROM users WHERE id = %s",
            (user_id,),
        ).fetchone()
    if row is None:
        abort(404)
    return jsonify(row)


@app.post("/api/v1/users")
def create_user():
    body = request.get_json()
    with database.pool.connection() as conn:
        row = conn.execute(
            "INSERT INTO users (email, username, password_hash) VALUES (%s, %s, %s)"
            " RETURNING id, email, username, version, created_at, updated_at",
            (body["email"], body["username"], body["hashed_password"]),
        ).fetchone()
    return jsonify(row), 201
