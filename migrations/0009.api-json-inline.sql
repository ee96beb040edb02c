-- Why: a call of a SQL function that PostgreSQL cannot inline costs microseconds per row, and a
-- batch of 1,000 creates calls api_user 1,000 times (about 10 ms of its statement here). A
-- STRICT function is inlined only when its body is strict too, and api_timestamp's CASE is not,
-- so api_timestamp stayed a call and api_user, which calls it twice, did too. Without STRICT
-- both are inlined; NULL still gives NULL (to_char and || of NULL are NULL).
CREATE OR REPLACE FUNCTION api_timestamp(ts timestamptz) RETURNS text
    LANGUAGE sql STABLE CALLED ON NULL INPUT PARALLEL SAFE
    RETURN to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
        || CASE WHEN extract(microseconds FROM ts AT TIME ZONE 'UTC') % 1000000 = 0 THEN ''
                ELSE to_char(ts AT TIME ZONE 'UTC', '.US') END
        || '+00:00';
