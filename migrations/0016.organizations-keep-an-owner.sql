-- Why: an organization always has at least one owner. Checked in Python the rule races: two
-- clients demoting the two owners of one organization each see the other owner still there, and
-- both commit. Here the database enforces it, whoever writes:
--
-- * After any statement that demotes or removes owners, each organization that lost one is
--   locked (FOR UPDATE, in id order) and must still have an owner. The lock makes writers of
--   one organization take turns: the second waits for the first to commit, and its check, a new
--   statement under READ COMMITTED, then sees the first one's change. A violation names every
--   organization it would leave without an owner (the API answers 409 last-owner with them).
--   Rows removed with their organization (ON DELETE CASCADE) are not checked: the organization
--   is gone.
-- * A new organization must have an owner when its transaction commits (a deferred check), so
--   an organization is never seen without one.
-- docs/dba.md explains the choice (against SERIALIZABLE with retries) and what it costs.

CREATE FUNCTION memberships_keep_an_owner() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public
AS $$
DECLARE
    organization bigint;
    ownerless bigint[] := '{}';
BEGIN
    FOR organization IN
        SELECT DISTINCT organization_id FROM old_memberships WHERE role = 'owner' ORDER BY 1
    LOOP
        PERFORM FROM organizations WHERE id = organization FOR UPDATE;
        IF FOUND AND NOT EXISTS (SELECT FROM memberships
                                  WHERE organization_id = organization AND role = 'owner') THEN
            ownerless := ownerless || organization;
        END IF;
    END LOOP;
    IF cardinality(ownerless) > 0 THEN
        RAISE EXCEPTION 'an organization must keep at least one owner'
            USING ERRCODE = 'integrity_constraint_violation',
                  CONSTRAINT = 'memberships_keep_an_owner',
                  TABLE = 'memberships',
                  DETAIL = to_json(ownerless)::text;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER memberships_keep_an_owner_on_update AFTER UPDATE ON memberships
    REFERENCING OLD TABLE AS old_memberships
    FOR EACH STATEMENT EXECUTE FUNCTION memberships_keep_an_owner();
CREATE TRIGGER memberships_keep_an_owner_on_delete AFTER DELETE ON memberships
    REFERENCING OLD TABLE AS old_memberships
    FOR EACH STATEMENT EXECUTE FUNCTION memberships_keep_an_owner();

CREATE FUNCTION organizations_start_with_an_owner() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public
AS $$
BEGIN
    IF EXISTS (SELECT FROM organizations WHERE id = NEW.id)
       AND NOT EXISTS (SELECT FROM memberships
                        WHERE organization_id = NEW.id AND role = 'owner') THEN
        RAISE EXCEPTION 'an organization must keep at least one owner'
            USING ERRCODE = 'integrity_constraint_violation',
                  CONSTRAINT = 'memberships_keep_an_owner',
                  TABLE = 'organizations',
                  DETAIL = to_json(ARRAY[NEW.id])::text;
    END IF;
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER organizations_start_with_an_owner AFTER INSERT ON organizations
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION organizations_start_with_an_owner();

COMMENT ON FUNCTION memberships_keep_an_owner() IS 'Refuses a statement that leaves an organization without an owner (locks each organization that lost one).';
COMMENT ON FUNCTION organizations_start_with_an_owner() IS 'Refuses to commit a new organization without an owner.';
