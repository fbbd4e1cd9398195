-- Functions, procedures and aggregates by signature, with owner and ACL.
-- A NULL proacl is the built-in default (acldefault 'f'): EXECUTE for PUBLIC
-- and everything for the owner, so a fresh function shows PUBLIC EXECUTE.
-- oidvectortypes gives the argument types without names, as PostgreSQL
-- resolves a function.
SELECT n.nspname::text AS schema,
       p.proname::text || '(' || pg_catalog.oidvectortypes(p.proargtypes) || ')' AS signature,
       p.prokind::text AS kind,
       pg_catalog.pg_get_userbyid(p.proowner)::text AS owner,
       COALESCE(p.proacl, pg_catalog.acldefault('f', p.proowner))::text[] AS acl
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = ANY($1)
