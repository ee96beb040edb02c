"""Behind PgBouncer in transaction-pooling mode (Debian's pgbouncer, started here on a free
port in front of the test server) the API works: no prepared statement or session setting
leaks from one transaction to another. (The `pgbouncer` fixture is in conftest.py.)"""

from concurrent.futures import ThreadPoolExecutor

import psycopg

from .support import new_user


def test_the_api_through_pgbouncer_transaction_pooling(pgbouncer, make_app, app_database_url):
    app = make_app(
        DATABASE_URL=pgbouncer,
        DATABASE_PGBOUNCER=True,
        DATABASE_LISTEN_URL=app_database_url,  # LISTEN needs a direct session
        DATABASE_POOL_MIN_SIZE=4,
        DATABASE_POOL_MAX_SIZE=4,
        DATABASE_POOL_TIMEOUT=10.0,
    )

    def scenario(worker: int):
        client = app.test_client()
        for n in range(10):  # well past psycopg's prepare threshold of 5
            number = 1000 * worker + n
            created = client.post("/api/v1/users", json=new_user(number))
            assert created.status_code == 201, created.get_json()
            user = created.get_json()
            url = f"/api/v1/users/{user['id']}"
            assert client.get(url).get_json() == user
            assert client.get(f"/api/v1/users/by-username/user{number}").status_code == 200
            page = client.get("/api/v1/users?limit=2&sort=-created_at").get_json()
            if page["next_cursor"]:
                cursor = page["next_cursor"]
                more = client.get(f"/api/v1/users?limit=2&sort=-created_at&cursor={cursor}")
                assert more.status_code == 200
            patched = client.patch(
                url, json={"username": f"renamed{number}"}, headers={"If-Match": '"1"'}
            )
            assert patched.status_code == 200
            changed = client.put(url + "/password", json={"password": "long enough"})
            assert changed.status_code == 204
            check = client.post(
                "/api/v1/users/verify-credentials",
                json={"login": f"renamed{number}", "password": "long enough"},
            )
            assert check.status_code == 200
            key = {"Idempotency-Key": f"k{number}"}
            replay = [
                client.post(
                    "/api/v1/batch",
                    headers=key,
                    json={"operations": [{"method": "DELETE", "path": url}]},
                )
                for _ in range(2)
            ]
            assert [r.status_code for r in replay] == [200, 200]
            assert replay[1].headers["Idempotent-Replayed"] == "true"
            assert client.get(url).status_code == 404
            assert client.get("/api/v1/events?limit=5").status_code == 200
        return True

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(scenario, range(4)))
    # timestamps look the same as without PgBouncer: UTC whatever the session's TimeZone
    with psycopg.connect(pgbouncer) as conn:
        assert conn.execute("SHOW timezone").fetchone()[0] == "Asia/Kolkata"
    created = app.test_client().post("/api/v1/users", json=new_user(99)).get_json()
    assert created["created_at"].endswith("+00:00")
