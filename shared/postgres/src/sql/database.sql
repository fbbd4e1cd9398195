-- The target database, its owner and its ACL. A NULL datacl is the built-in
-- default (acldefault 'd'): CONNECT and TEMPORARY for PUBLIC, everything for
-- the owner. An ACL emptied by REVOKE is an empty array.
SELECT d.datname::text AS name,
       pg_catalog.pg_get_userbyid(d.datdba)::text AS owner,
       COALESCE(d.datacl, pg_catalog.acldefault('d', d.datdba))::text[] AS acl
FROM pg_catalog.pg_database d
WHERE d.datname = pg_catalog.current_database()
