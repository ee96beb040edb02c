\set id random(1, :users)
\set r random(1, 1000000000000)
BEGIN;
UPDATE users SET email = 'pgp' || :r || '@example.net', version = version + 1, updated_at = now() WHERE id = :id RETURNING id, email, username, version, created_at, updated_at;
INSERT INTO events (type, entity, entity_id, actor, data) VALUES ('user.updated', 'user', :id, 'bench', '{}');
END;
