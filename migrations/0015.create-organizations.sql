-- Why: organizations are the second resource the data service owns, and memberships the link
-- between them and users: who belongs to which organization, as owner, admin or member. As for
-- users, the checks mirror the API's validation, every row has a version (the API's ETag), and
-- the application role may read and write both tables. The rule that an organization keeps an
-- owner is migration 0016's.

CREATE TABLE organizations (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug       text        NOT NULL,
    name       text        NOT NULL,
    -- Counts the changes of one organization (the ETag): 2^31 of them will not happen.
    -- squawk-ignore prefer-bigint-over-int
    version    integer     NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT organizations_slug_check CHECK (slug ~ '^[a-z0-9-]{3,63}$'),
    CONSTRAINT organizations_name_check CHECK (char_length(name) BETWEEN 1 AND 200),
    CONSTRAINT organizations_version_check CHECK (version >= 1),
    CONSTRAINT organizations_timestamps_check CHECK (updated_at >= created_at)
);

-- text_pattern_ops: the one index serves lookups by slug and slug_prefix filters (LIKE 'ab%').
CREATE UNIQUE INDEX organizations_slug_key ON organizations (slug text_pattern_ops);
-- Keyset pages sorted by created_at, either way, and the created_after/before filters.
CREATE INDEX organizations_created_at_id_idx ON organizations (created_at, id);

CREATE TABLE memberships (
    -- The membership's own number, for its change-feed events; the API names a membership by
    -- its organization and user.
    id              bigint      GENERATED ALWAYS AS IDENTITY,
    organization_id bigint      NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id         bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role            text        NOT NULL,
    -- Counts the changes of one membership (the ETag).
    -- squawk-ignore prefer-bigint-over-int
    version         integer     NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, user_id),
    CONSTRAINT memberships_id_key UNIQUE (id),
    CONSTRAINT memberships_role_check CHECK (role IN ('owner', 'admin', 'member')),
    CONSTRAINT memberships_version_check CHECK (version >= 1),
    CONSTRAINT memberships_timestamps_check CHECK (updated_at >= created_at)
);

-- A user's memberships in organization order (their list, the organizations' `member` filter,
-- and the cascade when a user is deleted); the primary key serves an organization's members.
CREATE INDEX memberships_user_id_organization_id_idx ON memberships (user_id, organization_id);
-- An organization's owners, for the rule of 0016 (an organization may have many members).
CREATE INDEX memberships_owners_idx ON memberships (organization_id) WHERE role = 'owner';

-- The organizations a list request's filters match (NULL: filter off), inlined into the
-- queries of sql/organizations.sql as users_matching (0014) is into those of users. The API
-- allows only a-z, 0-9 and - in a slug prefix, so it holds no LIKE wildcard. `member` reads the
-- user's organizations once (an uncorrelated ARRAY, planned as an InitPlan) and then fetches
-- them by primary key: an EXISTS under the OR could not become a join, and the planner would
-- test every organization in turn.
CREATE FUNCTION organizations_matching(slug_prefix text, created_after timestamptz,
                                       created_before timestamptz, member bigint)
    RETURNS SETOF organizations
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT *
      FROM organizations
     WHERE (slug_prefix IS NULL OR organizations.slug LIKE slug_prefix || '%')
       AND (created_after IS NULL OR organizations.created_at > created_after)
       AND (created_before IS NULL OR organizations.created_at < created_before)
       AND (member IS NULL
            OR organizations.id = ANY (ARRAY(SELECT memberships.organization_id
                                               FROM memberships
                                              WHERE memberships.user_id = member)))
$$;

INSERT INTO api_scopes (name, description) VALUES
    ('organizations:read', 'Read organizations and their memberships.'),
    ('organizations:write', 'Create, change and delete organizations and memberships.');

GRANT SELECT, INSERT, UPDATE, DELETE ON organizations, memberships TO dataservice_app;

COMMENT ON TABLE organizations IS 'Organizations of users; written only through the data service API.';
COMMENT ON COLUMN organizations.slug IS 'The URL name: 3 to 63 of a-z, 0-9, -; unique.';
COMMENT ON COLUMN organizations.version IS 'Incremented by every change; the API''s ETag.';
COMMENT ON TABLE memberships IS 'Who belongs to which organization, and as what; an organization keeps at least one owner (0016).';
COMMENT ON COLUMN memberships.id IS 'The membership''s number in change-feed events (entity_id); not in the API.';
COMMENT ON COLUMN memberships.version IS 'Incremented by every change of the role; the membership''s ETag.';
COMMENT ON FUNCTION organizations_matching(text, timestamptz, timestamptz, bigint) IS 'The organizations a list request''s filters match (NULL: filter off); inlined into the queries of sql/organizations.sql.';
