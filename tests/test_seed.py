"""`dataservice seed --users N`: fake users by COPY that the API serves like any other."""

from click.testing import CliRunner

from dataservice.cli import main
from dataservice.seed import SEEDED_PASSWORD


def seed(database_url, count):
    return CliRunner().invoke(
        main, ["seed", "--users", str(count)], env={"DATABASE_URL": database_url}
    )


def test_seed_loads_unique_users_the_api_serves(app_database_url, db, client):
    first = seed(app_database_url, 300)  # as the service's own role: no owner rights needed
    assert first.exit_code == 0, first.output
    assert "seeded 300 users" in first.stdout
    again = seed(app_database_url, 200)  # a second run continues the numbering: no clash
    assert again.exit_code == 0, again.output
    assert "left to autovacuum" in again.stderr  # ANALYZE needs the owner; it says so

    count, emails, usernames, days = db.execute(
        "SELECT count(*), count(DISTINCT lower(email)), count(DISTINCT lower(username)),"
        " extract(day FROM max(created_at) - min(created_at)) FROM users"
    ).fetchone()
    assert count == emails == usernames == 500
    assert days > 300  # spread over about a year, not all at one instant

    user = db.execute("SELECT id, username, email FROM users ORDER BY id DESC LIMIT 1").fetchone()
    got = client.get(f"/api/v1/users/{user[0]}")
    assert got.status_code == 200
    assert (got.get_json()["username"], got.get_json()["email"]) == (user[1], user[2])
    login = {"login": user[1], "password": SEEDED_PASSWORD}  # the seeded hash is a real one
    assert client.post("/api/v1/users/verify-credentials", json=login).status_code == 200


def test_seed_as_the_owner_analyzes_the_table(database_url, db):
    result = seed(database_url, 50)
    assert result.exit_code == 0, result.output
    analyzed = db.execute(
        "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'users'"
    ).fetchone()[0]
    assert analyzed


def test_seed_refuses_a_count_below_one(app_database_url):
    result = seed(app_database_url, 0)
    assert result.exit_code != 0
    assert "Traceback" not in result.output


def test_seed_organizations_have_an_owner_and_five_members_each(app_database_url, db, client):
    for _ in range(2):  # a second run continues the numbering: no slug clash
        result = CliRunner().invoke(
            main,
            ["seed", "--users", "100", "--organizations", "20"],
            env={"DATABASE_URL": app_database_url},
        )
        assert result.exit_code == 0, result.output
        assert "and 20 organizations" in result.stdout
    per_organization = db.execute(
        "SELECT count(*), count(*) FILTER (WHERE role = 'owner') FROM memberships"
        " GROUP BY organization_id"
    ).fetchall()
    assert len(per_organization) == 40 and set(per_organization) == {(5, 1)}
    organization = client.get("/api/v1/organizations?limit=1&sort=-id").get_json()["items"][0]
    members = client.get(f"/api/v1/organizations/{organization['id']}/members").get_json()
    assert len(members["items"]) == 5
