-- A role's global default privileges (defaclnamespace = 0). Such an entry
-- replaces the built-in defaults for what the role creates, so it lists the
-- creator's own privileges and PUBLIC's too.
SELECT pg_catalog.pg_get_userbyid(d.defaclrole)::text AS for_role,
       NULL::text AS schema,
       d.defaclobjtype::text AS objtype,
       CASE WHEN a.grantee = 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(a.grantee)::text END AS grantee,
       a.privilege_type, a.is_grantable
FROM pg_catalog.pg_default_acl d
CROSS JOIN LATERAL pg_catalog.aclexplode(d.defaclacl) a
WHERE d.defaclnamespace = 0
