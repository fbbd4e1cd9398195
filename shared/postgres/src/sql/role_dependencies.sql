-- Databases of the cluster where a role (by oid, $1) owns objects or appears
-- in ACLs (pg_shdepend is shared, so this one query sees every database).
-- dbid 0 is a shared object (a database or tablespace the role owns): DROP
-- ROLE will refuse it, and that is reported, not hidden.
SELECT DISTINCT d.datname::pg_catalog.text
  FROM pg_catalog.pg_shdepend s
  JOIN pg_catalog.pg_database d ON d.oid OPERATOR(pg_catalog.=) s.dbid
 WHERE s.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_authid'::pg_catalog.regclass
   AND s.refobjid OPERATOR(pg_catalog.=) $1::pg_catalog.oid
 ORDER BY 1
