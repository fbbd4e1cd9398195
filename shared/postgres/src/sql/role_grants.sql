-- Privileges held directly by one role (by oid, $1) in the current database.
-- Only non-NULL ACLs: a NULL ACL is the built-in default, which grants to the
-- owner and PUBLIC only, never to another role. The owner's own entries are
-- left out (a ticket never gives ownership, and revoking from the owner is not
-- what ending access means). Relations: tables, views, matviews, foreign and
-- partitioned tables, sequences; functions by `name(argtypes)` as extraction
-- names them.
SELECT 'database' AS class, NULL::text AS schema, d.datname::text AS name, NULL::text AS col,
       a.privilege_type AS privilege, a.is_grantable AS grantable
  FROM pg_catalog.pg_database d, LATERAL aclexplode(d.datacl) a
 WHERE d.datname = current_database() AND a.grantee = $1 AND d.datdba <> $1
UNION ALL
SELECT 'schema', NULL, n.nspname::text, NULL, a.privilege_type, a.is_grantable
  FROM pg_catalog.pg_namespace n, LATERAL aclexplode(n.nspacl) a
 WHERE a.grantee = $1 AND n.nspowner <> $1
UNION ALL
SELECT CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE 'table' END, n.nspname::text, c.relname::text, NULL,
       a.privilege_type, a.is_grantable
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace,
       LATERAL aclexplode(c.relacl) a
 WHERE c.relkind IN ('r', 'v', 'm', 'f', 'p', 'S') AND a.grantee = $1 AND c.relowner <> $1
UNION ALL
SELECT 'column', n.nspname::text, c.relname::text, att.attname::text, a.privilege_type, a.is_grantable
  FROM pg_catalog.pg_attribute att
  JOIN pg_catalog.pg_class c ON c.oid = att.attrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace,
       LATERAL aclexplode(att.attacl) a
 WHERE att.attnum > 0 AND NOT att.attisdropped AND a.grantee = $1 AND c.relowner <> $1
UNION ALL
SELECT 'function', n.nspname::text, p.proname::text || '(' || pg_catalog.oidvectortypes(p.proargtypes) || ')', NULL,
       a.privilege_type, a.is_grantable
  FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace,
       LATERAL aclexplode(p.proacl) a
 WHERE a.grantee = $1 AND p.proowner <> $1
