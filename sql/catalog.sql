-- Questions business services ask, each served as an endpoint with no Python (docs/queries.md):
-- the `endpoint:` and `scope:` lines of a query's header make it one, the other lines say how.
-- Types come from PostgreSQL's description of each statement; every value is a bound parameter.

-- name: user_organizations(user_id, after_organization_id, limit)
-- The organizations a user belongs to, with the user's role and each one's number of members.
-- endpoint: GET /api/v1/users/{user_id}/organizations
-- scope: organizations:read
-- page: organization_id
-- replica: allowed
-- example: {"user_id": 4242}
SELECT o.id AS organization_id, o.slug, o.name, m.role,
       (SELECT count(*) FROM memberships AS c WHERE c.organization_id = o.id) AS member_count
  FROM memberships AS m
  JOIN organizations AS o ON o.id = m.organization_id
 WHERE m.user_id = :user_id
   AND (:after_organization_id::bigint IS NULL OR m.organization_id > :after_organization_id)
 ORDER BY m.organization_id
 LIMIT :limit;

-- name: organization_roles(organization_id)^
-- How many owners, admins and members an organization has, and when the last one joined.
-- endpoint: GET /api/v1/organizations/{organization_id}/roles
-- scope: organizations:read
-- replica: allowed
-- example: {"organization_id": 10000}
SELECT o.id AS organization_id,
       count(m.user_id) FILTER (WHERE m.role = 'owner') AS owners,
       count(m.user_id) FILTER (WHERE m.role = 'admin') AS admins,
       count(m.user_id) FILTER (WHERE m.role = 'member') AS members,
       count(m.user_id) AS total,
       max(m.created_at) AS last_joined_at
  FROM organizations AS o
  LEFT JOIN memberships AS m ON m.organization_id = o.id
 WHERE o.id = :organization_id
 GROUP BY o.id;

-- name: transfer_ownership(organization_id, from_user_id, to_user_id)^
-- Makes one member an owner and an owner an admin, in one statement (the owners lock first).
-- endpoint: POST /api/v1/organizations/{organization_id}/transfer-ownership
-- scope: organizations:write
-- check: distinct_users 409 to_user_id Is the user the ownership comes from.
-- check: from_is_owner 409 from_user_id Is not an owner of this organization.
-- check: to_is_member 404 to_user_id Is not a member of this organization.
-- event: organization.ownership_transferred organization_id
-- example: {"organization_id": 7, "from_user_id": 31, "to_user_id": 32}
WITH parties AS (
    SELECT user_id, role
      FROM memberships
     WHERE organization_id = :organization_id
       AND user_id IN (:from_user_id, :to_user_id)
       FOR UPDATE
), checked AS (
    SELECT :from_user_id <> :to_user_id AS distinct_users,
           EXISTS (SELECT FROM parties WHERE user_id = :from_user_id AND role = 'owner')
               AS from_is_owner,
           EXISTS (SELECT FROM parties WHERE user_id = :to_user_id) AS to_is_member
), moved AS (
    UPDATE memberships AS m
       SET role = CASE WHEN m.user_id = :to_user_id THEN 'owner' ELSE 'admin' END,
           version = m.version + 1,
           updated_at = greatest(now(), m.updated_at)
      FROM checked
     WHERE checked.distinct_users AND checked.from_is_owner AND checked.to_is_member
       AND m.organization_id = :organization_id
       AND m.user_id IN (:from_user_id, :to_user_id)
    RETURNING m.user_id
)
SELECT o.id AS organization_id,
       :from_user_id::bigint AS from_user_id,
       :to_user_id::bigint AS to_user_id,
       checked.distinct_users, checked.from_is_owner, checked.to_is_member
  FROM organizations AS o, checked
 WHERE o.id = :organization_id;
