-- What one role (by oid, $1) owns in the current database: relations
-- (tables, partitioned and foreign tables, views, materialized views, and
-- sequences no column owns: those follow their table), functions with their
-- SECURITY DEFINER flag, and schemas. Read inside the revoking transaction of
-- a privileged role: every function and operator is qualified.
SELECT 'relation' AS what, c.relkind::pg_catalog.text AS kind, n.nspname::pg_catalog.text AS schema,
       c.relname::pg_catalog.text AS name, NULL::pg_catalog.text AS args, false AS security_definer
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
 WHERE c.relowner OPERATOR(pg_catalog.=) $1::pg_catalog.oid
   AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,f,v,m,S}'::pg_catalog."char"[])
   AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
                    WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND d.objid OPERATOR(pg_catalog.=) c.oid
                      AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND d.deptype OPERATOR(pg_catalog.=) ANY ('{a,i}'::pg_catalog."char"[])
                      AND c.relkind OPERATOR(pg_catalog.=) 'S'::pg_catalog."char")
UNION ALL
SELECT 'function', p.prokind::pg_catalog.text, n.nspname::pg_catalog.text, p.proname::pg_catalog.text,
       pg_catalog.oidvectortypes(p.proargtypes), p.prosecdef
  FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
 WHERE p.proowner OPERATOR(pg_catalog.=) $1::pg_catalog.oid
UNION ALL
SELECT 'schema', NULL, NULL, n.nspname::pg_catalog.text, NULL, false
  FROM pg_catalog.pg_namespace n
 WHERE n.nspowner OPERATOR(pg_catalog.=) $1::pg_catalog.oid
ORDER BY 1, 3, 4, 5
