"""A real streaming replica (pg_basebackup of a private primary, started on another port): GETs
read from it, fall back to the primary when it is down or too far behind, and a client that
sends back X-Data-Version as X-Min-Data-Version reads its own writes."""

import shutil
import time

import psycopg
import pytest
from psycopg import sql

from dataservice.app import close, create_app
from dataservice.migrate import apply_migrations

from .private_cluster import PrivateCluster, free_port
from .support import FAST_HASHING, AuthorizedClient, new_user, register_test_client


class Standby(PrivateCluster):
    """A hot standby of `primary`, streaming from it."""

    def __init__(self, primary: PrivateCluster):  # not PrivateCluster.__init__: no initdb here
        self.bin, self.port, self._as_root = primary.bin, free_port(), primary._as_root
        self.dir = primary.dir / "standby-home"
        self.dir.mkdir()
        if self._as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self._run(
            "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(primary.port),
            "-U",
            "postgres",
            "-D",
            str(self.data),
            "-R",
            "-X",
            "stream",
        )
        self.start()


@pytest.fixture(scope="module")
def clusters():
    primary = PrivateCluster()
    standby = None
    try:
        apply_migrations(primary.url)
        with psycopg.connect(primary.url, autocommit=True) as conn:
            register_test_client(conn)
        standby = Standby(primary)
        yield primary, standby
    finally:
        if standby is not None:
            standby.destroy()
        primary.destroy()


@pytest.fixture
def make_replica_app(clusters):
    primary, standby = clusters
    apps = []

    def make(**overrides):
        app = create_app(
            {
                "DATABASE_URL": primary.url,
                "DATABASE_REPLICA_URL": standby.url,
                "DATABASE_POOL_MIN_SIZE": 1,
                "DATABASE_POOL_TIMEOUT": 2.0,
                **FAST_HASHING,
                **overrides,
            }
        )
        app.test_client_class = AuthorizedClient
        apps.append(app)
        return app

    yield make
    for app in apps:
        close(app)


def wait_replayed(standby, lsn):
    with psycopg.connect(standby.url, autocommit=True) as conn:
        for _ in range(100):
            if conn.execute(
                "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), %s) >= 0", (lsn,)
            ).fetchone()[0]:
                return
            time.sleep(0.05)
    raise AssertionError("the standby never replayed the write")


def wait_fresh(app):
    """Until the app has seen the replica replay a position the primary had: a process that has
    just started knows no such position and reads from the primary meanwhile."""
    for _ in range(50):
        if app.extensions["replica"].fresh():
            return
        time.sleep(0.2)
    raise AssertionError("the replica never counted as fresh")


def replay(standby, paused: bool):
    with psycopg.connect(standby.url, autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()" if paused else "SELECT pg_wal_replay_resume()")


def test_reads_come_from_the_replica_and_read_your_writes_from_the_primary(
    clusters, make_replica_app
):
    _, standby = clusters
    app = make_replica_app()
    client = app.test_client()
    created = client.post("/api/v1/users", json=new_user(1))
    assert created.status_code == 201
    user, version = created.get_json(), created.headers["X-Data-Version"]
    wait_replayed(standby, version)
    wait_fresh(app)
    replay(standby, paused=True)
    try:
        changed = client.patch(f"/api/v1/users/{user['id']}", json={"username": "renamed"})
        assert changed.status_code == 200
        fresh = changed.headers["X-Data-Version"]
        # The replica has not replayed the change: a plain GET shows the old name (so it was
        # served by the replica), and one sending the write's version shows the new one.
        assert client.get(f"/api/v1/users/{user['id']}").get_json()["username"] == "user1"
        ryw = client.get(f"/api/v1/users/{user['id']}", headers={"X-Min-Data-Version": fresh})
        assert ryw.get_json()["username"] == "renamed"
        old = client.get(f"/api/v1/users/{user['id']}", headers={"X-Min-Data-Version": version})
        assert old.get_json()["username"] == "user1"  # an older version: the replica will do
    finally:
        replay(standby, paused=False)
    wait_replayed(standby, fresh)
    assert client.get(f"/api/v1/users/{user['id']}").get_json()["username"] == "renamed"


def test_a_replica_past_the_lag_bound_is_skipped(clusters, make_replica_app):
    _, standby = clusters
    client = make_replica_app(DATABASE_REPLICA_MAX_LAG_SECONDS=1.0).test_client()
    user = client.post("/api/v1/users", json=new_user(2)).get_json()
    replay(standby, paused=True)
    try:
        client.patch(f"/api/v1/users/{user['id']}", json={"username": "lagging"})
        time.sleep(2.5)  # the replica is now more than a second behind, and checked again
        client.get("/health")
        assert client.get(f"/api/v1/users/{user['id']}").get_json()["username"] == "lagging"
    finally:
        replay(standby, paused=False)


def test_a_replica_cut_off_from_its_primary_is_skipped_past_the_bound(clusters, make_replica_app):
    # Without its WAL receiver a standby has replayed all it received: by its own clocks it is
    # current, however much the primary has written since.
    _, standby = clusters
    app = make_replica_app(DATABASE_REPLICA_MAX_LAG_SECONDS=1.0)
    client = app.test_client()
    user = client.post("/api/v1/users", json=new_user(5)).get_json()
    wait_fresh(app)
    with psycopg.connect(standby.url, autocommit=True) as conn:
        conninfo = conn.execute("SHOW primary_conninfo").fetchone()[0]
        set_conninfo = sql.SQL("ALTER SYSTEM SET primary_conninfo = {}")
        conn.execute(set_conninfo.format(""))
        conn.execute("SELECT pg_reload_conf()")
        try:
            for _ in range(100):
                if not conn.execute("SELECT count(*) FROM pg_stat_wal_receiver").fetchone()[0]:
                    break
                time.sleep(0.05)
            else:
                raise AssertionError("the standby kept its WAL receiver")
            client.patch(f"/api/v1/users/{user['id']}", json={"username": "cutoff"})
            time.sleep(2.5)  # past the bound, and checked again
            assert client.get(f"/api/v1/users/{user['id']}").get_json()["username"] == "cutoff"
        finally:
            conn.execute(set_conninfo.format(conninfo))
            conn.execute("SELECT pg_reload_conf()")


def test_a_stopped_replica_costs_reads_nothing_but_a_fallback(clusters, make_replica_app):
    _, standby = clusters
    client = make_replica_app().test_client()
    user = client.post("/api/v1/users", json=new_user(3)).get_json()
    standby.stop("fast")
    try:
        time.sleep(1.1)  # past the next health check
        started = time.monotonic()
        for _ in range(5):
            response = client.get(f"/api/v1/users/{user['id']}")
            assert response.status_code == 200
        assert time.monotonic() - started < 3.0
    finally:
        standby.start()


def test_a_malformed_min_data_version_is_400(make_replica_app):
    client = make_replica_app().test_client()
    response = client.get("/api/v1/users/1", headers={"X-Min-Data-Version": "yesterday"})
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"


def test_without_a_replica_writes_carry_no_version(client):
    response = client.post("/api/v1/users", json=new_user(4))
    assert response.status_code == 201 and "X-Data-Version" not in response.headers


def test_with_the_primary_down_the_replica_serves_reads_without_waiting(clusters, make_replica_app):
    # The freshness check asks the primary for its WAL position; with the primary down that
    # must cost a read a fraction of a second, not the primary pool's whole timeout.
    primary, _ = clusters
    # Tokens are checked on the primary: keep the one the create checked trusted meanwhile.
    app = make_replica_app(AUTH_CACHE_SECONDS=60)
    client = app.test_client()
    user = client.post("/api/v1/users", json=new_user(6)).get_json()
    wait_fresh(app)
    primary.stop("fast")
    try:
        time.sleep(1.1)  # past the next check
        for _ in range(3):
            started = time.monotonic()
            response = client.get(f"/api/v1/users/{user['id']}")
            assert response.status_code == 200
            assert time.monotonic() - started < 1.5
    finally:
        primary.start()


PRIMARY_ONLY_SQL = """
-- name: role_on_the_primary(organization_id, user_id)^
-- One member's role, never from a replica (no `replica:` line).
-- endpoint: GET /api/v1/organizations/{organization_id}/role-of/{user_id}
-- scope: organizations:read
SELECT role FROM memberships WHERE organization_id = :organization_id AND user_id = :user_id;
"""


def test_a_catalog_query_reads_the_replica_only_when_its_header_allows(
    clusters, make_replica_app, tmp_path
):
    _, standby = clusters
    (tmp_path / "primary_only.sql").write_text(PRIMARY_ONLY_SQL)
    app = make_replica_app(CATALOG_SQL_DIRS=str(tmp_path))
    client = app.test_client()
    owner, member = (
        client.post("/api/v1/users", json=new_user(n)).get_json()["id"] for n in (7, 8)
    )
    body = {"slug": "replicated", "name": "Replicated", "owner_id": owner}
    org = client.post("/api/v1/organizations", json=body).get_json()["id"]
    added = client.put(f"/api/v1/organizations/{org}/members/{member}", json={"role": "member"})
    wait_replayed(standby, added.headers["X-Data-Version"])
    wait_fresh(app)
    replay(standby, paused=True)
    try:
        moved = client.post(
            f"/api/v1/organizations/{org}/transfer-ownership",
            json={"from_user_id": owner, "to_user_id": member},
        )
        assert moved.status_code == 200, moved.get_json()
        fresh = moved.headers["X-Data-Version"]

        def role(**headers):
            page = client.get(f"/api/v1/users/{member}/organizations", headers=headers)
            return page.get_json()["items"][0]["role"]

        assert role() == "member"  # user_organizations allows the replica, which lags
        assert role(**{"X-Min-Data-Version": fresh}) == "owner"  # read-your-writes
        primary = client.get(f"/api/v1/organizations/{org}/role-of/{member}")
        assert primary.get_json() == {"role": "owner"}
    finally:
        replay(standby, paused=False)
