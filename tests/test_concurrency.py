"""Real threads against a real HTTP server: uniqueness holds when clients race."""

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

from .support import new_user


def post_json(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_twenty_simultaneous_creates_of_one_username_give_one_201(make_app, serve, db):
    app = make_app(DATABASE_POOL_MIN_SIZE=4, DATABASE_POOL_MAX_SIZE=8, DATABASE_POOL_TIMEOUT=10.0)
    url = serve(app) + "/api/v1/users"
    barrier = Barrier(20)

    def create(n):
        barrier.wait()
        return post_json(url, new_user(n, username="SameName" if n % 2 else "samename"))

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(create, range(20)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [201] + [409] * 19
    assert all(
        body["errors"] == {"username": ["Already taken (case-insensitive)."]}
        for status, body in results
        if status == 409
    )
    assert db.execute("SELECT count(*) FROM users").fetchone()[0] == 1
