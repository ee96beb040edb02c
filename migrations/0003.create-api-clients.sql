-- Why: the data service must know who calls it and what each caller may do. Each business
-- service is an API client with a bearer token; only the token's SHA-256 is stored, so a copy
-- of this table grants nothing. Revoking keeps the row, for the audit trail.

CREATE TABLE api_clients (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text        NOT NULL,
    token_hash bytea       NOT NULL,
    scopes     text[]      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    CONSTRAINT api_clients_name_key UNIQUE (name),
    CONSTRAINT api_clients_token_hash_key UNIQUE (token_hash),
    CONSTRAINT api_clients_name_check CHECK (name ~ '^[A-Za-z0-9._-]{1,100}$'),
    CONSTRAINT api_clients_token_hash_check CHECK (octet_length(token_hash) = 32),
    CONSTRAINT api_clients_scopes_check CHECK (
        scopes <@ ARRAY['users:read', 'users:write', 'users:credentials', 'events:read']::text[]
    )
);

COMMENT ON TABLE api_clients IS 'Callers of the API: one bearer token each, with the scopes it grants.';
COMMENT ON COLUMN api_clients.token_hash IS 'SHA-256 of the bearer token; the token itself is shown once, at creation, and never stored.';
COMMENT ON COLUMN api_clients.revoked_at IS 'Set by `dataservice clients revoke`; a revoked token stops working within AUTH_CACHE_SECONDS.';
