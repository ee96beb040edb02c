\set r random(1, 1000000000000)
BEGIN;
INSERT INTO users (email, username, password_hash) VALUES ('pg' || :r || '@bench.example', 'pg' || :r, '$2b$04$OlPpVgLFaZFJB31QAVtesuUU1FzjOPosEmvpmG876eE7dOlILxKMW') RETURNING id, email, username, version, created_at, updated_at;
INSERT INTO events (type, entity, entity_id, actor, data) VALUES ('user.created', 'user', 0, 'bench', '{}');
END;
