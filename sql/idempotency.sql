-- Idempotency keys: the first request with a key claims it, runs, and records its response in
-- the same transaction; retries read the record.

-- name: claim_key(client, key, request_hash, ttl_seconds)^
-- Claims the key (a new one, or one whose record expired); no row when a live record holds it.
-- A concurrent claim of the same key waits here until the first transaction ends.
INSERT INTO idempotency_keys (client, key, request_hash, expires_at)
VALUES (:client, :key, :request_hash, now() + make_interval(secs => :ttl_seconds))
    ON CONFLICT (client, key) DO UPDATE
   SET request_hash = excluded.request_hash,
       status = NULL,
       headers = NULL,
       body = NULL,
       created_at = now(),
       expires_at = excluded.expires_at
 WHERE idempotency_keys.expires_at <= now()
RETURNING key;

-- name: get_key(client, key)^
-- The live record holding a key.
SELECT request_hash, status, headers, body
  FROM idempotency_keys
 WHERE client = :client
   AND key = :key;

-- name: record_response(client, key, status, headers, body)!
-- Stores the response of the request that claimed the key, before its transaction commits.
UPDATE idempotency_keys
   SET status = :status,
       headers = :headers,
       body = :body
 WHERE client = :client
   AND key = :key;

-- name: prune_keys()!
-- Deletes expired records.
DELETE FROM idempotency_keys
 WHERE expires_at <= now();
