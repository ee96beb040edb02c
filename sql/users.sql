-- Queries on users. Reviewed as plain SQL: see sql/README.md for the house style.
-- The password hash is written here but never read back by a query that feeds a response.

-- name: create_user(email, username, password_hash)^
-- Inserts one user; the unique indexes on lower(email) and lower(username) reject clashes.
INSERT INTO users (email, username, password_hash)
VALUES (:email, :username, :password_hash)
RETURNING id, email, username, version, created_at, updated_at;

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
