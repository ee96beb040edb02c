\set id random(1, :organizations)
SELECT id, slug, name, version, created_at, updated_at FROM organizations WHERE id = :id;
