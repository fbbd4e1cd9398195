-- The floor: what reading the privilege catalogs costs at all, with no
-- decoding or diffing. The same facts grantwarden extracts (relations with
-- their ACLs, column ACLs, schemas, functions, default privileges, roles and
-- memberships), read in one pass each and discarded.
\set ON_ERROR_STOP on
\o /dev/null
SELECT r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin, r.rolreplication,
       r.rolbypassrls, r.rolconnlimit, r.rolvaliduntil FROM pg_catalog.pg_roles r;
SELECT m.roleid, m.member, m.admin_option FROM pg_catalog.pg_auth_members m;
SELECT n.nspname, n.nspowner, a.* FROM pg_catalog.pg_namespace n LEFT JOIN LATERAL aclexplode(n.nspacl) a ON true;
SELECT n.nspname, c.relname, c.relkind, c.relowner, a.*
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN LATERAL aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a ON true
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S');
SELECT att.attrelid, att.attname, a.* FROM pg_catalog.pg_attribute att, LATERAL aclexplode(att.attacl) a
 WHERE att.attacl IS NOT NULL;
SELECT p.oid, p.proname, a.* FROM pg_catalog.pg_proc p
  LEFT JOIN LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a ON true;
SELECT d.defaclrole, d.defaclnamespace, d.defaclobjtype, a.* FROM pg_catalog.pg_default_acl d, LATERAL aclexplode(d.defaclacl) a;
\o
