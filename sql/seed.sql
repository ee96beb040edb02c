-- Bulk loading of fake users and organizations for demos and benchmarks (dataservice/seed.py,
-- `dataservice seed`). Not API traffic: it writes no change-feed events.

-- name: lift_statement_timeout()#
-- One long COPY in this transaction, not a request: no statement timeout.
SET LOCAL statement_timeout = 0;

-- name: last_user_id()$
-- The highest user id so far (0 when none): new fake users are numbered after it.
SELECT coalesce(max(id), 0) FROM users;

-- name: last_organization_id()$
-- The highest organization id so far (0 when none).
SELECT coalesce(max(id), 0) FROM organizations;

-- name: copy_users()#
-- The binary COPY that loads fake users (seed_users writes the rows).
COPY users (email, username, password_hash, created_at, updated_at) FROM STDIN (FORMAT BINARY);

-- name: copy_organizations()#
-- The binary COPY that loads fake organizations (seed_organizations writes the rows).
COPY organizations (slug, name, created_at, updated_at) FROM STDIN (FORMAT BINARY);

-- name: seed_memberships(after)!
-- Five members for each organization after id :after: an owner, an admin and three members,
-- the user numbered 1 + mod(id * 5 + k * 9973, n) in id order, so memberships spread over all
-- users. A join on that number, not a subscript of an array of every id: the array (8 MB at a
-- million users) was copied for each of the 500,000 rows and the seed never finished.
WITH numbered AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM users),
     total AS (SELECT count(*) AS n FROM users)
INSERT INTO memberships (organization_id, user_id, role, created_at, updated_at)
SELECT o.id, numbered.id,
       CASE k WHEN 0 THEN 'owner' WHEN 1 THEN 'admin' ELSE 'member' END,
       o.created_at, o.created_at
  FROM organizations AS o
 CROSS JOIN generate_series(0, 4) AS k
 CROSS JOIN total
  JOIN numbered ON numbered.n = 1 + mod(o.id * 5 + k * 9973, total.n)
 WHERE o.id > :after
    ON CONFLICT DO NOTHING;

-- name: owns_the_seeded_tables()$
-- Whether this role may ANALYZE the seeded tables (only their owner may).
SELECT pg_has_role(relowner, 'USAGE') FROM pg_class WHERE oid = 'users'::regclass;

-- name: analyze_seeded_tables()#
-- Fresh statistics, so that the planner sees the new rows at once.
ANALYZE users, organizations, memberships;
