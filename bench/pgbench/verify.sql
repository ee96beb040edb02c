\set id random(1, :users)
SELECT id, email, username, version, created_at, updated_at, password_hash FROM users WHERE lower(username) = lower('ada_adams' || :id) OR lower(email) = lower('ada_adams' || :id);
