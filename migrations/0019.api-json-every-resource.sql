-- Why: every resource's write now records its change-feed event in its own statement, as a
-- user's create has since migration 0007 (one outbox path for every resource, issue 27; a
-- second INSERT from Python cost a create 16% of its throughput, docs/benchmarks.md). So each
-- resource's JSON is built in SQL too, and must read exactly as the API writes it: these are
-- the SQL side of OrganizationOut and MembershipOut (dataservice/schemas/), as api_user is of
-- UserOut. tests/test_events.py holds every declared resource's pair together. Not STRICT, so
-- that PostgreSQL inlines them (migration 0009).

CREATE FUNCTION api_organization(id bigint, slug text, name text, created_at timestamptz,
                                 updated_at timestamptz) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN jsonb_build_object('id', id, 'slug', slug, 'name', name,
                              'created_at', api_timestamp(created_at),
                              'updated_at', api_timestamp(updated_at));

CREATE FUNCTION api_membership(organization_id bigint, user_id bigint, role text,
                               created_at timestamptz, updated_at timestamptz) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN jsonb_build_object('organization_id', organization_id, 'user_id', user_id,
                              'role', role,
                              'created_at', api_timestamp(created_at),
                              'updated_at', api_timestamp(updated_at));

COMMENT ON FUNCTION api_organization(bigint, text, text, timestamptz, timestamptz) IS 'An organization as the API shows it (OrganizationOut), for event data built in SQL.';
COMMENT ON FUNCTION api_membership(bigint, bigint, text, timestamptz, timestamptz) IS 'A membership as the API shows it (MembershipOut), for event data built in SQL.';
