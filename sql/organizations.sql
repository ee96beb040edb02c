-- Queries on organizations. Reviewed as plain SQL: see sql/README.md for the house style.

-- name: create_organization(slug, name, actor, trace_id)^
-- Inserts one organization and its organization.created event (its owner's membership follows
-- in the same transaction: organizations_start_with_an_owner checks at commit).
-- organizations_slug_key rejects a taken slug.
WITH created AS (
    INSERT INTO organizations (slug, name)
    VALUES (:slug, :name)
    RETURNING id, slug, name, version, created_at, updated_at
), recorded AS (
    INSERT INTO events (type, entity, entity_id, actor, data, trace_id)
    SELECT 'organization.created', 'organization', id, :actor,
           api_organization(id, slug, name, created_at, updated_at), :trace_id
      FROM created
)
SELECT id, slug, name, version, created_at, updated_at FROM created;

-- name: get_organization(organization_id)^
-- One organization by primary key, or no row.
SELECT id, slug, name, version, created_at, updated_at
  FROM organizations
 WHERE id = :organization_id;

-- name: get_organization_by_slug(slug)^
-- One organization by slug (served by organizations_slug_key).
SELECT id, slug, name, version, created_at, updated_at
  FROM organizations
 WHERE slug = :slug;

-- name: get_organization_version(organization_id)$
-- The version of one organization, or no row: tells a missing one (404) from a stale If-Match (412).
SELECT version
  FROM organizations
 WHERE id = :organization_id;

-- name: lock_organization(organization_id)^
-- One organization, locked until the transaction ends: its delete reads the memberships it
-- removes knowing no new one can join meanwhile (a new membership's foreign key waits for it).
SELECT id, slug, name, version, created_at, updated_at
  FROM organizations
 WHERE id = :organization_id
   FOR UPDATE;

-- name: update_organization(organization_id, slug, name, versions, actor, trace_id)^
-- Changes slug and/or name (NULL keeps the value) if the version is one of `versions` (NULL:
-- any), and records the organization.updated event. No row: the organization is missing or the
-- version is stale.
WITH changed AS (
    UPDATE organizations
       SET slug = coalesce(:slug, slug),
           name = coalesce(:name, name),
           version = version + 1,
           updated_at = greatest(now(), updated_at)
     WHERE id = :organization_id
       AND version_matches(version, :versions::integer[])
    RETURNING id, slug, name, version, created_at, updated_at
), recorded AS (
    INSERT INTO events (type, entity, entity_id, actor, data, trace_id)
    SELECT 'organization.updated', 'organization', id, :actor,
           api_organization(id, slug, name, created_at, updated_at), :trace_id
      FROM changed
)
SELECT id, slug, name, version, created_at, updated_at FROM changed;

-- name: delete_organization(organization_id, actor, trace_id)!
-- Deletes one organization (locked by lock_organization); its memberships go with it (ON DELETE
-- CASCADE). Records a membership.deleted event for each of them (read in this statement's
-- snapshot, which the lock keeps complete), then the organization.deleted event, each with the
-- row as it was.
WITH removed AS (
    DELETE FROM organizations
     WHERE id = :organization_id
    RETURNING id, slug, name, created_at, updated_at
)
INSERT INTO events (type, entity, entity_id, actor, data, trace_id)
SELECT gone.type, split_part(gone.type, '.', 1), gone.entity_id, :actor, gone.data, :trace_id
  FROM (SELECT 1, m.id, 'membership.deleted',
               api_membership(m.organization_id, m.user_id, m.role, m.created_at, m.updated_at)
          FROM memberships AS m
         WHERE m.organization_id = :organization_id
           AND EXISTS (SELECT FROM removed)
        UNION ALL
        SELECT 2, id, 'organization.deleted',
               api_organization(id, slug, name, created_at, updated_at)
          FROM removed) AS gone (step, entity_id, type, data)
 ORDER BY gone.step, gone.entity_id;

-- The four list queries below differ only in their keyset and order; organizations_matching
-- (migration 0015) holds the filters, each off when its parameter is NULL (see users.sql).

-- name: list_organizations_by_id(after_id, slug_prefix, created_after, created_before, member, limit)
-- A page in ascending id order, after the cursor's id (NULL: from the start).
SELECT id, slug, name, version, created_at, updated_at
  FROM organizations_matching(:slug_prefix, :created_after, :created_before, :member)
 WHERE :after_id::bigint IS NULL OR id > :after_id
 ORDER BY id
 LIMIT :limit;

-- name: list_organizations_by_id_desc(after_id, slug_prefix, created_after, created_before, member, limit)
-- A page in descending id order, after the cursor's id (NULL: from the newest).
SELECT id, slug, name, version, created_at, updated_at
  FROM organizations_matching(:slug_prefix, :created_after, :created_before, :member)
 WHERE :after_id::bigint IS NULL OR id < :after_id
 ORDER BY id DESC
 LIMIT :limit;

-- name: list_organizations_by_created_at(after_created_at, after_id, slug_prefix, created_after, created_before, member, limit)
-- A page in ascending (created_at, id) order (served by organizations_created_at_id_idx).
SELECT id, slug, name, version, created_at, updated_at
  FROM organizations_matching(:slug_prefix, :created_after, :created_before, :member)
 WHERE :after_id::bigint IS NULL
    OR (created_at, id) > (:after_created_at::timestamptz, :after_id::bigint)
 ORDER BY created_at, id
 LIMIT :limit;

-- name: list_organizations_by_created_at_desc(after_created_at, after_id, slug_prefix, created_after, created_before, member, limit)
-- A page in descending (created_at, id) order (the same index, read backwards).
SELECT id, slug, name, version, created_at, updated_at
  FROM organizations_matching(:slug_prefix, :created_after, :created_before, :member)
 WHERE :after_id::bigint IS NULL
    OR (created_at, id) < (:after_created_at::timestamptz, :after_id::bigint)
 ORDER BY created_at DESC, id DESC
 LIMIT :limit;

-- name: count_organizations(slug_prefix, created_after, created_before, member)$
-- How many organizations the filters match (only for count=exact).
SELECT count(*)
  FROM organizations_matching(:slug_prefix, :created_after, :created_before, :member);
