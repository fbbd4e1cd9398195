-- A pgroles manifest equivalent to the generator's schema-wide grants, within
-- pgroles' cap of 4096 grant entries: USAGE on each schema and SELECT on all of
-- its tables (name "*") for every role with USAGE there, in role order.
\set ON_ERROR_STOP on
\pset format unaligned
\pset tuples_only on
SELECT 'roles:' UNION ALL
(SELECT format(E'- name: %s\n  login: %s', r.rolname, CASE WHEN r.rolcanlogin THEN 'true' ELSE 'false' END) FROM pg_roles r
  WHERE r.rolname LIKE :'prefix' || '\_r%' ORDER BY r.rolname)
UNION ALL SELECT 'grants:' UNION ALL
(SELECT format(E'- role: %s\n  privileges: [USAGE]\n  object: {type: schema, name: %s}\n- role: %s\n  privileges: [SELECT]\n  object: {type: table, schema: %s, name: "*"}',
               a.rolname, n.nspname, a.rolname, n.nspname)
   FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) x JOIN pg_roles a ON a.oid = x.grantee
  WHERE n.nspname ~ '^s[0-9]+$' AND x.privilege_type = 'USAGE' AND a.rolname LIKE :'prefix' || '\_r%'
  ORDER BY a.rolname, n.nspname LIMIT 2048);
