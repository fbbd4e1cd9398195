-- Functions, procedures and aggregates by schema, name and argument types,
-- with owner and ACL. A NULL proacl is the built-in default (acldefault 'f'):
-- EXECUTE for PUBLIC and everything for the owner, so a fresh function shows
-- PUBLIC EXECUTE. oidvectortypes gives the argument types without names, as
-- PostgreSQL resolves a function; with search_path pinned to pg_catalog every
-- other type comes schema-qualified and quoted where needed. Name and
-- arguments stay two columns: a name may hold parentheses and commas.
SELECT n.nspname::text AS schema,
       p.proname::text AS name,
       pg_catalog.oidvectortypes(p.proargtypes) AS arguments,
       p.prokind::text AS kind,
       pg_catalog.pg_get_userbyid(p.proowner)::text AS owner,
       COALESCE(p.proacl, pg_catalog.acldefault('f', p.proowner))::text[] AS acl
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = ANY($1)
