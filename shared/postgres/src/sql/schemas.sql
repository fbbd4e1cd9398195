-- Schemas, owners and ACLs. A NULL nspacl is the built-in default
-- (acldefault 'n'): the owner alone.
SELECT n.nspname::text AS schema,
       pg_catalog.pg_get_userbyid(n.nspowner)::text AS owner,
       CASE WHEN a.grantee = 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(a.grantee)::text END AS grantee,
       a.privilege_type, a.is_grantable
FROM pg_catalog.pg_namespace n
LEFT JOIN LATERAL pg_catalog.aclexplode(COALESCE(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) a ON true
WHERE n.nspname = ANY($1)
