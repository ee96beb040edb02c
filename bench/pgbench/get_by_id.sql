\set id random(1, :users)
SELECT id, email, username, version, created_at, updated_at FROM users WHERE id = :id;
