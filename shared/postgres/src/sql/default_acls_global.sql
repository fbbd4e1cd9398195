-- A role's global default privileges (defaclnamespace = 0). Such an entry
-- replaces the built-in defaults for what the role creates, so it lists the
-- creator's own privileges and PUBLIC's too.
SELECT pg_catalog.pg_get_userbyid(d.defaclrole)::text AS for_role,
       NULL::text AS schema,
       d.defaclobjtype::text AS objtype,
       d.defaclacl::text[] AS acl
FROM pg_catalog.pg_default_acl d
WHERE d.defaclnamespace = 0
