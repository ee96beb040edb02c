-- Why: one client must not be able to starve the others (dataservice/admission.py). Each client
-- may have a sustained request rate with a burst, and a number of requests in flight at once;
-- NULL is unlimited. Existing clients stay unlimited (nothing changes for them on upgrade);
-- `dataservice clients create` gives new ones the defaults and `clients limits` changes them.
-- The columns are nullable without defaults: adding them rewrites nothing.

ALTER TABLE api_clients
    ADD COLUMN rate_per_second real,
    ADD COLUMN burst bigint,
    ADD COLUMN max_in_flight bigint;

-- The limits go together: a rate has a burst; each is positive.
-- api_clients holds one row per calling service: the check's scan under the table's lock is
-- instant, so no NOT VALID + VALIDATE in a migration of its own (as 0012/0013 do for events).
-- squawk-ignore constraint-missing-not-valid
ALTER TABLE api_clients ADD CONSTRAINT api_clients_limits_check CHECK (
    (rate_per_second IS NULL) = (burst IS NULL)
    AND (rate_per_second IS NULL OR (rate_per_second > 0 AND burst >= 1))
    AND (max_in_flight IS NULL OR max_in_flight >= 1)
);

COMMENT ON COLUMN api_clients.rate_per_second IS 'Sustained requests per second this client may send (NULL: unlimited).';
COMMENT ON COLUMN api_clients.burst IS 'Requests this client may send at once after a quiet spell; set with rate_per_second.';
COMMENT ON COLUMN api_clients.max_in_flight IS 'Requests of this client one instance serves at once (NULL: unlimited).';
