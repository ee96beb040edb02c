SELECT id, email, username, version, created_at, updated_at FROM users ORDER BY id LIMIT 51;
