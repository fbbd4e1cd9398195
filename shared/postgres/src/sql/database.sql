-- The target database, its owner and its ACL. A NULL datacl is the built-in
-- default (acldefault 'd'): CONNECT and TEMPORARY for PUBLIC, everything for
-- the owner. Grantee oid 0 is PUBLIC. LEFT JOIN keeps a database whose ACL
-- was emptied by REVOKE.
SELECT d.datname::text AS name,
       pg_catalog.pg_get_userbyid(d.datdba)::text AS owner,
       CASE WHEN a.grantee = 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(a.grantee)::text END AS grantee,
       a.privilege_type, a.is_grantable
FROM pg_catalog.pg_database d
LEFT JOIN LATERAL pg_catalog.aclexplode(COALESCE(d.datacl, pg_catalog.acldefault('d', d.datdba))) a ON true
WHERE d.datname = pg_catalog.current_database()
