-- Schemas, owners and ACLs. A NULL nspacl is the built-in default
-- (acldefault 'n'): the owner alone.
SELECT n.nspname::text AS schema,
       pg_catalog.pg_get_userbyid(n.nspowner)::text AS owner,
       COALESCE(n.nspacl, pg_catalog.acldefault('n', n.nspowner))::text[] AS acl
FROM pg_catalog.pg_namespace n
WHERE n.nspname = ANY($1)
