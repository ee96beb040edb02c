-- API clients and their bearer tokens (only SHA-256 hashes are stored).

-- name: create_client(name, token_hash, scopes, rate_per_second, burst, max_in_flight)^
-- Registers a client with its limits (NULL: unlimited); api_clients_name_key rejects a name in use.
INSERT INTO api_clients (name, token_hash, scopes, rate_per_second, burst, max_in_flight)
VALUES (:name, :token_hash, :scopes, :rate_per_second, :burst, :max_in_flight)
RETURNING id, name, scopes, created_at, revoked_at;

-- name: get_active_by_token_hash(token_hash)^
-- The unrevoked client holding a token (served by api_clients_token_hash_key).
SELECT name, token_hash, scopes, rate_per_second, burst, max_in_flight
  FROM api_clients
 WHERE token_hash = :token_hash
   AND revoked_at IS NULL;

-- name: list_clients()
-- Every client, revoked ones included; never a token or its hash.
SELECT id, name, scopes, rate_per_second, burst, max_in_flight, created_at, revoked_at
  FROM api_clients
 ORDER BY name;

-- name: revoke_client(name)^
-- Revokes a client's token; no row when no active client has this name.
UPDATE api_clients
   SET revoked_at = now()
 WHERE name = :name
   AND revoked_at IS NULL
RETURNING name, revoked_at;

-- name: set_client_limits(name, rate_per_second, burst, max_in_flight)^
-- Changes an active client's limits (NULL: unlimited); workers apply them within
-- AUTH_CACHE_SECONDS. No row when no active client has this name.
UPDATE api_clients
   SET rate_per_second = :rate_per_second,
       burst = :burst,
       max_in_flight = :max_in_flight
 WHERE name = :name
   AND revoked_at IS NULL
RETURNING name, rate_per_second, burst, max_in_flight;
