\set id random(1, :users)
\set r random(1, 1000000000000)
WITH changed AS (UPDATE users SET email = 'pgp' || :r || '@example.net', version = version + 1, updated_at = greatest(now(), updated_at) WHERE id = :id RETURNING id, email, username, version, created_at, updated_at), recorded AS (INSERT INTO events (type, entity, entity_id, actor, data) SELECT 'user.updated', 'user', id, 'bench', api_user(id, email, username, created_at, updated_at) FROM changed) SELECT id, email, username, version, created_at, updated_at FROM changed;
