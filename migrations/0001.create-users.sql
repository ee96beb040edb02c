-- Why: the users table is the first resource the data service owns. The checks mirror the API's
-- validation so that no path around the API (a DBA's script, a future bug) can store what the API
-- would refuse. Uniqueness is case-insensitive while the values are stored as the user gave them.

CREATE TABLE users (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email         text        NOT NULL,
    username      text        NOT NULL,
    password_hash text        NOT NULL,
    -- Counts the changes of one user (the ETag): 2^31 of them will not happen.
    -- squawk-ignore prefer-bigint-over-int
    version       integer     NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_check
        CHECK (char_length(email) <= 255 AND email LIKE '_%@_%'),
    CONSTRAINT users_username_check
        CHECK (username ~ '^[A-Za-z0-9._-]{3,100}$'),
    CONSTRAINT users_password_hash_check
        CHECK (password_hash ~ '^\$(argon2id\$|2[aby]\$)'),
    CONSTRAINT users_version_check
        CHECK (version >= 1),
    CONSTRAINT users_timestamps_check
        CHECK (updated_at >= created_at)
);

-- text_pattern_ops serves both equality and prefix (LIKE 'abc%') lookups whatever the collation.
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email) text_pattern_ops);
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username) text_pattern_ops);

COMMENT ON TABLE users IS 'People known to the business services; written only through the data service API.';
COMMENT ON COLUMN users.email IS 'Stored as given; unique case-insensitively (users_email_lower_key).';
COMMENT ON COLUMN users.username IS 'Stored as given; unique case-insensitively (users_username_lower_key).';
COMMENT ON COLUMN users.password_hash IS 'PHC string, argon2id (made by the service) or bcrypt (imported). Never returned by the API.';
COMMENT ON COLUMN users.version IS 'Incremented by every change; the API''s ETag, for optimistic concurrency.';
