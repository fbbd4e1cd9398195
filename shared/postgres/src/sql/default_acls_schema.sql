-- Default privileges limited to one schema; these add to the global ones.
SELECT pg_catalog.pg_get_userbyid(d.defaclrole)::text AS for_role,
       n.nspname::text AS schema,
       d.defaclobjtype::text AS objtype,
       d.defaclacl::text[] AS acl
FROM pg_catalog.pg_default_acl d
JOIN pg_catalog.pg_namespace n ON n.oid = d.defaclnamespace
WHERE n.nspname = ANY($1)
