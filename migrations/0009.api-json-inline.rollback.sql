-- Undoes 0009.api-json-inline: api_timestamp STRICT again, as 0007 made it.
CREATE OR REPLACE FUNCTION api_timestamp(ts timestamptz) RETURNS text
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    RETURN to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
        || CASE WHEN extract(microseconds FROM ts AT TIME ZONE 'UTC') % 1000000 = 0 THEN ''
                ELSE to_char(ts AT TIME ZONE 'UTC', '.US') END
        || '+00:00';
