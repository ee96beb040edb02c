-- Why: clients retry writes after timeouts. A write sent with an Idempotency-Key records its
-- response here in the same transaction as its effect, so a retry gets the first response back
-- instead of a second effect. Only successful responses are recorded: a failed request changed
-- nothing and may simply run again.

CREATE TABLE idempotency_keys (
    client       text        NOT NULL,
    key          text        NOT NULL,
    request_hash bytea       NOT NULL,
    -- NULL only inside the claiming transaction, which fills them before it commits.
    -- An HTTP status code (100 to 599).
    -- squawk-ignore prefer-bigint-over-smallint
    status       smallint,
    headers      jsonb,
    body         bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (client, key),
    CONSTRAINT idempotency_keys_key_check CHECK (char_length(key) BETWEEN 1 AND 255)
);

CREATE INDEX idempotency_keys_expires_at_idx ON idempotency_keys (expires_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO dataservice_app;

COMMENT ON TABLE idempotency_keys IS 'Responses of writes sent with an Idempotency-Key, replayed to retries until expires_at.';
COMMENT ON COLUMN idempotency_keys.request_hash IS 'SHA-256 of method, path and body: the same key with another request is refused.';
