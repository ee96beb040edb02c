-- What the catalog itself runs (dataservice/catalog/, api/catalog.py) to check, describe and
-- serve the endpoint queries: none of these is an endpoint.

-- name: known_scopes()
-- Every scope the database knows, to check each endpoint query's `scope:` at start.
SELECT name FROM api_scopes ORDER BY name;

-- name: types_of(oids)
-- The types an endpoint query's parameters and columns have, with what a schema needs of each:
-- its kind, an array's element, a domain's base, the type modifier and an enum's labels.
SELECT t.oid::int AS oid, t.typname AS name, t.typtype AS kind, t.typelem::int AS element,
       t.typbasetype::int AS base, t.typtypmod AS typmod, t.typcategory AS category,
       ARRAY(SELECT e.enumlabel::text FROM pg_enum AS e
              WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder) AS labels
  FROM pg_type AS t
 WHERE t.oid = ANY (:oids::oid[]);

-- name: not_null_columns(relations)
-- The NOT NULL columns of the tables an endpoint query's result columns come from.
SELECT a.attrelid::int AS relation, a.attnum::int AS number
  FROM pg_attribute AS a
 WHERE a.attrelid = ANY (:relations::oid[]) AND a.attnotnull AND a.attnum > 0;

-- name: set_statement_timeout(timeout)$
-- An endpoint query's declared `timeout:` for the current transaction; returns the one before.
SELECT current_setting('statement_timeout') AS previous,
       set_config('statement_timeout', :timeout, true) AS now;

-- name: restore_statement_timeout(previous)$
-- Puts back the statement timeout set_statement_timeout replaced.
SELECT set_config('statement_timeout', :previous, true);
