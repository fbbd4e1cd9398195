-- Databases of the cluster where a role (by oid, $1) owns objects or appears
-- in ACLs (pg_shdepend is shared, so this one query sees every database).
-- dbid 0 is a shared object (a database or tablespace the role owns): DROP
-- ROLE will refuse it, and that is reported, not hidden.
SELECT DISTINCT d.datname::text
  FROM pg_catalog.pg_shdepend s
  JOIN pg_catalog.pg_database d ON d.oid = s.dbid
 WHERE s.refclassid = 'pg_catalog.pg_authid'::regclass AND s.refobjid = $1
 ORDER BY 1
