\set i random(0, :users - 1)
SELECT id, email, username, version, created_at, updated_at FROM users WHERE lower(username) = lower('ada_adams' || :i);
