SELECT id, email, username, version, created_at, updated_at FROM users WHERE id > :deep_after ORDER BY id LIMIT 51;
