-- Undoes 0015.organizations-keep-an-owner: the rule is no longer enforced.
DROP TRIGGER organizations_start_with_an_owner ON organizations;
DROP FUNCTION organizations_start_with_an_owner();
DROP TRIGGER memberships_keep_an_owner_on_delete ON memberships;
DROP TRIGGER memberships_keep_an_owner_on_update ON memberships;
DROP FUNCTION memberships_keep_an_owner();
