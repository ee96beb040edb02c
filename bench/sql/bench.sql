-- The benchmark's own catalog queries (bench/run.py serves this directory through
-- CATALOG_SQL_DIRS): each the catalog's twin of an endpoint written in Python, so that the two
-- are measured side by side in one run.

-- name: organization_by_id(organization_id)^
-- One organization by id: the row GET /api/v1/organizations/{id} reads, served by the catalog.
-- endpoint: GET /api/v1/bench/organizations/{organization_id}
-- scope: organizations:read
-- example: {"organization_id": 1}
SELECT id, slug, name, version, created_at, updated_at
  FROM organizations
 WHERE id = :organization_id;
