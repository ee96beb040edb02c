-- Queries on users. Reviewed as plain SQL: see sql/README.md for the house style.
-- Only get_credentials reads password_hash; no query that feeds a response returns it.

-- name: create_user(email, username, password_hash, actor, trace_id)^
-- Inserts one user and its user.created event (the outbox) in one statement: one round trip,
-- atomic by itself, where BEGIN, two INSERTs and COMMIT took four (1.2x the creates per second,
-- docs/benchmarks.md, thirteenth round). Every write here records its event so. The unique
-- indexes on lower(email) and lower(username) reject clashes. The event's data is the user as
-- the API shows it (api_user of migration 0007).
WITH created AS (
    INSERT INTO users (email, username, password_hash)
    VALUES (:email, :username, :password_hash)
    RETURNING id, email, username, version, created_at, updated_at
), recorded AS (
    INSERT INTO events (type, entity, entity_id, actor, data, trace_id)
    SELECT 'user.created', 'user', id, :actor,
           api_user(id, email, username, created_at, updated_at), :trace_id
      FROM created
)
SELECT id, email, username, version, created_at, updated_at FROM created;

-- name: create_users(users, actor, trace_id)
-- Inserts many users and their user.created events in one statement (a batch's run of
-- creates). `users` is a JSON array of {email, username, password_hash}. Events are numbered in
-- the users' order, as create_user builds them (ids follow the order of the rows inserted).
-- Returns each user's username and its JSON as the API shows it (api_user, the event's data):
-- the batch answers with it rather than building the same document again.
WITH created AS (
    INSERT INTO users (email, username, password_hash)
    SELECT email, username, password_hash
      FROM jsonb_to_recordset(:users::jsonb) AS new (email text, username text, password_hash text)
    RETURNING id, username, api_user(id, email, username, created_at, updated_at) AS data
), recorded AS (
    INSERT INTO events (type, entity, entity_id, actor, data, trace_id)
    SELECT 'user.created', 'user', id, :actor, data, :trace_id
      FROM created
     ORDER BY id
)
SELECT username, data FROM created;

-- name: get_user_by_id(user_id)^
-- One user by primary key, or no row.
SELECT id, email, username, version, created_at, updated_at
  FROM users
 WHERE id = :user_id;

-- name: get_user_by_username(username)^
-- One user by username, case-insensitively (served by users_username_lower_key).
SELECT id, email, username, version, created_at, updated_at
  FROM users
 WHERE lower(username) = lower(:username);

-- name: get_user_by_email(email)^
-- One user by email, case-insensitively (served by users_email_lower_key).
SELECT id, email, username, version, created_at, updated_at
  FROM users
 WHERE lower(email) = lower(:email);

-- name: get_credentials(login)^
-- The user whose username or email is the login (never both: usernames have no '@'), with the hash.
SELECT id, email, username, version, created_at, updated_at, password_hash
  FROM users
 WHERE lower(username) = lower(:login)
    OR lower(email) = lower(:login);

-- name: get_user_version(user_id)$
-- The version of one user, or no row: tells a missing user (404) from a stale If-Match (412).
SELECT version
  FROM users
 WHERE id = :user_id;

-- name: update_user(user_id, email, username, versions, actor, trace_id)^
-- Changes email and/or username (NULL keeps the value) if the version is one of `versions`
-- (NULL: any version), and records the user.updated event (every write records its own event,
-- as create_user does). No row: the user is missing or the version is stale.
WITH changed AS (
    UPDATE users
       SET email = coalesce(:email, email),
           username = coalesce(:username, username),
           version = version + 1,
           updated_at = greatest(now(), updated_at)
     WHERE id = :user_id
       AND version_matches(version, :versions::integer[])
    RETURNING id, email, username, version, created_at, updated_at
), recorded AS (
    INSERT INTO events (type, entity, entity_id, actor, data, trace_id)
    SELECT 'user.updated', 'user', id, :actor,
           api_user(id, email, username, created_at, updated_at), :trace_id
      FROM changed
)
SELECT id, email, username, version, created_at, updated_at FROM changed;

-- name: update_password_hash(user_id, password_hash, versions, actor, trace_id)^
-- Replaces the password hash if the version matches, as update_user does, and records the
-- user.password_changed event (its data is the user, never the hash).
WITH changed AS (
    UPDATE users
       SET password_hash = :password_hash,
           version = version + 1,
           updated_at = greatest(now(), updated_at)
     WHERE id = :user_id
       AND version_matches(version, :versions::integer[])
    RETURNING id, email, username, version, created_at, updated_at
), recorded AS (
    INSERT INTO events (type, entity, entity_id, actor, data, trace_id)
    SELECT 'user.password_changed', 'user', id, :actor,
           api_user(id, email, username, created_at, updated_at), :trace_id
      FROM changed
)
SELECT id, email, username, version, created_at, updated_at FROM changed;

-- name: rehash_password(user_id, old_hash, new_hash)!
-- Upgrades a hash made with weaker parameters after a good login. Not a change a client sees:
-- version and updated_at stay. Skipped when the hash changed meanwhile.
UPDATE users
   SET password_hash = :new_hash
 WHERE id = :user_id
   AND password_hash = :old_hash;

-- name: lock_user(user_id)^
-- One user, locked until the transaction ends: their delete reads the memberships it removes
-- knowing no new one can be added meanwhile (a new membership's foreign key waits for it).
SELECT id, email, username, version, created_at, updated_at
  FROM users
 WHERE id = :user_id
   FOR UPDATE;

-- name: delete_user(user_id, actor, trace_id)!
-- Deletes one user (locked by lock_user); their memberships go with them (ON DELETE CASCADE),
-- unless that leaves an organization without an owner (migration 0016 refuses). Records a
-- membership.deleted event for each of those memberships (read in this statement's snapshot,
-- which the lock keeps complete), then the user.deleted event, each with the row as it was.
WITH removed AS (
    DELETE FROM users
     WHERE id = :user_id
    RETURNING id, email, username, created_at, updated_at
)
INSERT INTO events (type, entity, entity_id, actor, data, trace_id)
SELECT gone.type, split_part(gone.type, '.', 1), gone.entity_id, :actor, gone.data, :trace_id
  FROM (SELECT 1, m.id, 'membership.deleted',
               api_membership(m.organization_id, m.user_id, m.role, m.created_at, m.updated_at)
          FROM memberships AS m
         WHERE m.user_id = :user_id
           AND EXISTS (SELECT FROM removed)
        UNION ALL
        SELECT 2, id, 'user.deleted', api_user(id, email, username, created_at, updated_at)
          FROM removed) AS gone (step, entity_id, type, data)
 ORDER BY gone.step, gone.entity_id;

-- The four list queries below differ only in their keyset and order; users_matching (migration
-- 0014) holds the filters, each off when its parameter is NULL. They run unprepared (see
-- store/pages.py), so PostgreSQL plans each call with its real values and drops the filters
-- that are off before choosing an index.

-- name: list_users_by_id(after_id, email, username, username_prefix, created_after, created_before, limit)
-- A page in ascending id order, after the cursor's id (NULL: from the start).
SELECT id, email, username, version, created_at, updated_at
  FROM users_matching(:email, :username, :username_prefix, :created_after, :created_before)
 WHERE :after_id::bigint IS NULL OR id > :after_id
 ORDER BY id
 LIMIT :limit;

-- name: list_users_by_id_desc(after_id, email, username, username_prefix, created_after, created_before, limit)
-- A page in descending id order, after the cursor's id (NULL: from the newest).
SELECT id, email, username, version, created_at, updated_at
  FROM users_matching(:email, :username, :username_prefix, :created_after, :created_before)
 WHERE :after_id::bigint IS NULL OR id < :after_id
 ORDER BY id DESC
 LIMIT :limit;

-- name: list_users_by_created_at(after_created_at, after_id, email, username, username_prefix, created_after, created_before, limit)
-- A page in ascending (created_at, id) order, after the cursor's pair (served by users_created_at_id_idx).
SELECT id, email, username, version, created_at, updated_at
  FROM users_matching(:email, :username, :username_prefix, :created_after, :created_before)
 WHERE :after_id::bigint IS NULL
    OR (created_at, id) > (:after_created_at::timestamptz, :after_id::bigint)
 ORDER BY created_at, id
 LIMIT :limit;

-- name: list_users_by_created_at_desc(after_created_at, after_id, email, username, username_prefix, created_after, created_before, limit)
-- A page in descending (created_at, id) order, after the cursor's pair (same index, read backwards).
SELECT id, email, username, version, created_at, updated_at
  FROM users_matching(:email, :username, :username_prefix, :created_after, :created_before)
 WHERE :after_id::bigint IS NULL
    OR (created_at, id) < (:after_created_at::timestamptz, :after_id::bigint)
 ORDER BY created_at DESC, id DESC
 LIMIT :limit;

-- name: count_users(email, username, username_prefix, created_after, created_before)$
-- How many users the filters match (only for count=exact: it reads every matching row).
SELECT count(*)
  FROM users_matching(:email, :username, :username_prefix, :created_after, :created_before);
