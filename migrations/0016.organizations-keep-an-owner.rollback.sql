-- Undoes 0016.organizations-keep-an-owner: the rule is no longer enforced.
DROP TRIGGER organizations_start_with_an_owner ON organizations;
-- A rollback removes what its migration made: it runs only when asked for (yoyo rollback).
-- squawk-ignore ban-drop-function
DROP FUNCTION organizations_start_with_an_owner();
DROP TRIGGER memberships_keep_an_owner_on_delete ON memberships;
DROP TRIGGER memberships_keep_an_owner_on_update ON memberships;
-- Its triggers are gone; the function goes too.
-- squawk-ignore ban-drop-function
DROP FUNCTION memberships_keep_an_owner();
