-- Queries on memberships: who belongs to which organization, as owner, admin or member. An
-- organization keeps at least one owner: migration 0016's triggers refuse any statement below
-- that would leave one without (the API answers 409 last-owner).

-- name: add_membership(organization_id, user_id, role, actor, trace_id)^
-- Adds a user to an organization and records the membership.created event; no row (and no
-- event) when they are a member already (then update_role). The foreign keys reject an
-- organization or a user that does not exist.
WITH added AS (
    INSERT INTO memberships (organization_id, user_id, role)
    VALUES (:organization_id, :user_id, :role)
        ON CONFLICT (organization_id, user_id) DO NOTHING
    RETURNING id, organization_id, user_id, role, version, created_at, updated_at
), recorded AS (
    INSERT INTO events (type, entity, entity_id, actor, data, trace_id)
    SELECT 'membership.created', 'membership', id, :actor,
           api_membership(organization_id, user_id, role, created_at, updated_at), :trace_id
      FROM added
)
SELECT id, organization_id, user_id, role, version, created_at, updated_at FROM added;

-- name: get_membership(organization_id, user_id)^
-- One membership by its organization and user (the primary key), or no row.
SELECT id, organization_id, user_id, role, version, created_at, updated_at
  FROM memberships
 WHERE organization_id = :organization_id
   AND user_id = :user_id;

-- name: lock_membership(organization_id, user_id)^
-- One membership, locked until the transaction ends, before its role is changed.
SELECT id, organization_id, user_id, role, version, created_at, updated_at
  FROM memberships
 WHERE organization_id = :organization_id
   AND user_id = :user_id
   FOR UPDATE;

-- name: get_membership_version(organization_id, user_id)$
-- The version of one membership, or no row: a missing one (404) or a stale If-Match (412).
SELECT version
  FROM memberships
 WHERE organization_id = :organization_id
   AND user_id = :user_id;

-- name: parents_exist(organization_id, user_id)^
-- Whether the organization and the user of a would-be membership exist (which one is missing).
SELECT EXISTS (SELECT FROM organizations WHERE id = :organization_id) AS organization_exists,
       EXISTS (SELECT FROM users WHERE id = :user_id) AS user_exists;

-- name: update_role(organization_id, user_id, role, actor, trace_id)^
-- Changes the role of a locked membership (lock_membership) and records the
-- membership.updated event.
WITH changed AS (
    UPDATE memberships
       SET role = :role,
           version = version + 1,
           updated_at = greatest(now(), updated_at)
     WHERE organization_id = :organization_id
       AND user_id = :user_id
    RETURNING id, organization_id, user_id, role, version, created_at, updated_at
), recorded AS (
    INSERT INTO events (type, entity, entity_id, actor, data, trace_id)
    SELECT 'membership.updated', 'membership', id, :actor,
           api_membership(organization_id, user_id, role, created_at, updated_at), :trace_id
      FROM changed
)
SELECT id, organization_id, user_id, role, version, created_at, updated_at FROM changed;

-- name: remove_membership(organization_id, user_id, versions, actor, trace_id)^
-- Removes one membership if the version matches (NULL: any) and records the membership.deleted
-- event; returns it as it was. No row: it is missing or the version is stale.
WITH removed AS (
    DELETE FROM memberships
     WHERE organization_id = :organization_id
       AND user_id = :user_id
       AND version_matches(version, :versions::integer[])
    RETURNING id, organization_id, user_id, role, version, created_at, updated_at
), recorded AS (
    INSERT INTO events (type, entity, entity_id, actor, data, trace_id)
    SELECT 'membership.deleted', 'membership', id, :actor,
           api_membership(organization_id, user_id, role, created_at, updated_at), :trace_id
      FROM removed
)
SELECT id, organization_id, user_id, role, version, created_at, updated_at FROM removed;

-- name: list_members(organization_id, role, after_user_id, limit)
-- A page of one organization's memberships in user order, after the cursor's user (the primary key).
SELECT id, organization_id, user_id, role, version, created_at, updated_at
  FROM memberships
 WHERE organization_id = :organization_id
   AND (:role::text IS NULL OR role = :role)
   AND (:after_user_id::bigint IS NULL OR user_id > :after_user_id)
 ORDER BY user_id
 LIMIT :limit;

-- name: count_members(organization_id, role)$
-- How many memberships of one organization the filter matches (only for count=exact).
SELECT count(*)
  FROM memberships
 WHERE organization_id = :organization_id
   AND (:role::text IS NULL OR role = :role);

-- name: list_memberships_of_user(user_id, role, after_organization_id, limit)
-- A page of one user's memberships in organization order, after the cursor's organization
-- (served by memberships_user_id_organization_id_idx).
SELECT id, organization_id, user_id, role, version, created_at, updated_at
  FROM memberships
 WHERE user_id = :user_id
   AND (:role::text IS NULL OR role = :role)
   AND (:after_organization_id::bigint IS NULL OR organization_id > :after_organization_id)
 ORDER BY organization_id
 LIMIT :limit;

-- name: count_memberships_of_user(user_id, role)$
-- How many memberships of one user the filter matches (only for count=exact).
SELECT count(*)
  FROM memberships
 WHERE user_id = :user_id
   AND (:role::text IS NULL OR role = :role);
