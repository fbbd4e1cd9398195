-- Privileges held directly by one role (by oid, $1) in the current database.
-- Only non-NULL ACLs: a NULL ACL is the built-in default, which grants to the
-- owner and PUBLIC only, never to another role. The owner's own entries are
-- left out (a ticket never gives ownership, and revoking from the owner is not
-- what ending access means). Relations: tables, views, matviews, foreign and
-- partitioned tables, sequences; functions by schema, name and argument types
-- in separate columns, as extraction names them.
-- This runs inside the revoking transaction of a privileged role: every
-- function and operator is qualified (beside the pinned search_path).
SELECT 'database' AS class, NULL::pg_catalog.text AS schema, d.datname::pg_catalog.text AS name,
       NULL::pg_catalog.text AS col, NULL::pg_catalog.text AS args,
       a.privilege_type AS privilege, a.is_grantable AS grantable
  FROM pg_catalog.pg_database d, LATERAL pg_catalog.aclexplode(d.datacl) a
 WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()
   AND a.grantee OPERATOR(pg_catalog.=) $1::pg_catalog.oid AND d.datdba OPERATOR(pg_catalog.<>) $1::pg_catalog.oid
UNION ALL
SELECT 'schema', NULL, n.nspname::pg_catalog.text, NULL, NULL, a.privilege_type, a.is_grantable
  FROM pg_catalog.pg_namespace n, LATERAL pg_catalog.aclexplode(n.nspacl) a
 WHERE a.grantee OPERATOR(pg_catalog.=) $1::pg_catalog.oid AND n.nspowner OPERATOR(pg_catalog.<>) $1::pg_catalog.oid
UNION ALL
SELECT CASE WHEN c.relkind OPERATOR(pg_catalog.=) 'S'::pg_catalog."char" THEN 'sequence' ELSE 'table' END,
       n.nspname::pg_catalog.text, c.relname::pg_catalog.text, NULL, NULL, a.privilege_type, a.is_grantable
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace,
       LATERAL pg_catalog.aclexplode(c.relacl) a
 WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,v,m,f,p,S}'::pg_catalog."char"[])
   AND a.grantee OPERATOR(pg_catalog.=) $1::pg_catalog.oid AND c.relowner OPERATOR(pg_catalog.<>) $1::pg_catalog.oid
UNION ALL
SELECT 'column', n.nspname::pg_catalog.text, c.relname::pg_catalog.text, att.attname::pg_catalog.text, NULL,
       a.privilege_type, a.is_grantable
  FROM pg_catalog.pg_attribute att
  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) att.attrelid
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace,
       LATERAL pg_catalog.aclexplode(att.attacl) a
 WHERE att.attnum OPERATOR(pg_catalog.>) 0::pg_catalog.int2 AND NOT att.attisdropped
   AND a.grantee OPERATOR(pg_catalog.=) $1::pg_catalog.oid AND c.relowner OPERATOR(pg_catalog.<>) $1::pg_catalog.oid
UNION ALL
SELECT 'function', n.nspname::pg_catalog.text, p.proname::pg_catalog.text, NULL,
       pg_catalog.oidvectortypes(p.proargtypes), a.privilege_type, a.is_grantable
  FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace,
       LATERAL pg_catalog.aclexplode(p.proacl) a
 WHERE a.grantee OPERATOR(pg_catalog.=) $1::pg_catalog.oid AND p.proowner OPERATOR(pg_catalog.<>) $1::pg_catalog.oid
