-- Every role of the cluster with its attributes.
-- pg_roles, never pg_authid: pg_authid is superuser-only, and on managed
-- PostgreSQL (RDS, Cloud SQL) nobody is a real superuser.
-- VALID UNTIL 'infinity' means never, the same as NULL; '-infinity' means
-- always expired, read as the epoch.
SELECT r.rolname::text AS name,
       r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin,
       r.rolreplication, r.rolbypassrls, r.rolconnlimit,
       CASE WHEN r.rolvaliduntil IS NULL OR r.rolvaliduntil = 'infinity' THEN NULL
            WHEN r.rolvaliduntil = '-infinity' THEN 'epoch'::timestamptz
            ELSE r.rolvaliduntil END AS valid_until
FROM pg_catalog.pg_roles r
