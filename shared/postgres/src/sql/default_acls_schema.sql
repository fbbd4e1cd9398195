-- Default privileges limited to one schema; these add to the global ones.
SELECT pg_catalog.pg_get_userbyid(d.defaclrole)::text AS for_role,
       n.nspname::text AS schema,
       d.defaclobjtype::text AS objtype,
       CASE WHEN a.grantee = 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(a.grantee)::text END AS grantee,
       a.privilege_type, a.is_grantable
FROM pg_catalog.pg_default_acl d
JOIN pg_catalog.pg_namespace n ON n.oid = d.defaclnamespace
CROSS JOIN LATERAL pg_catalog.aclexplode(d.defaclacl) a
WHERE n.nspname = ANY($1)
