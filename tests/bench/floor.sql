-- The floor: what reading the privilege catalogs costs at all, with no
-- decoding or diffing. The same facts grantwarden extracts, in the shape it
-- reads them (shared/postgres/src/sql: each object's ACL whole, as text, one
-- row per relation, column with an ACL, function, schema, default ACL), but in
-- one unchunked pass each, printed unaligned and discarded.
\set ON_ERROR_STOP on
\pset format unaligned
\pset tuples_only on
\o /dev/null
SELECT r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin, r.rolreplication,
       r.rolbypassrls, r.rolconnlimit, r.rolvaliduntil FROM pg_catalog.pg_roles r;
SELECT m.roleid, m.member, m.admin_option FROM pg_catalog.pg_auth_members m;
SELECT n.nspname, pg_catalog.pg_get_userbyid(n.nspowner),
       COALESCE(n.nspacl, pg_catalog.acldefault('n', n.nspowner))::text[]
  FROM pg_catalog.pg_namespace n;
SELECT n.nspname, c.relname, c.relkind, pg_catalog.pg_get_userbyid(c.relowner), c.relrowsecurity,
       c.relforcerowsecurity,
       COALESCE(c.relacl, pg_catalog.acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char",
                                                c.relowner))::text[]
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S');
SELECT n.nspname, c.relname, att.attname, att.attacl::text[]
  FROM pg_catalog.pg_attribute att
  JOIN pg_catalog.pg_class c ON c.oid = att.attrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE att.attnum > 0 AND NOT att.attisdropped AND att.attacl IS NOT NULL;
SELECT n.nspname, p.proname || '(' || pg_catalog.oidvectortypes(p.proargtypes) || ')', p.prokind,
       pg_catalog.pg_get_userbyid(p.proowner), COALESCE(p.proacl, pg_catalog.acldefault('f', p.proowner))::text[]
  FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace;
SELECT pg_catalog.pg_get_userbyid(d.defaclrole), d.defaclnamespace, d.defaclobjtype, d.defaclacl::text[]
  FROM pg_catalog.pg_default_acl d;
\o
