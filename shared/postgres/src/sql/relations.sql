-- Tables, partitioned tables, views, materialized views, foreign tables and
-- sequences with owner, row-level security flags and ACL, for the schemas in
-- $1 and relation names in [$2, $3) (NULL: unbounded; C collation).
-- A NULL relacl is the built-in default: the owner alone (acldefault 'r', or
-- 's' for sequences, whose privilege set differs).
SELECT n.nspname::text AS schema, c.relname::text AS name, c.relkind::text AS kind,
       pg_catalog.pg_get_userbyid(c.relowner)::text AS owner,
       c.relrowsecurity, c.relforcerowsecurity,
       CASE WHEN a.grantee = 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(a.grantee)::text END AS grantee,
       a.privilege_type, a.is_grantable
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN LATERAL pg_catalog.aclexplode(COALESCE(c.relacl, pg_catalog.acldefault(
        CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))) a ON true
WHERE n.nspname = ANY($1)
  AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
  AND ($2::text IS NULL OR c.relname COLLATE "C" >= $2::text)
  AND ($3::text IS NULL OR c.relname COLLATE "C" < $3::text)
