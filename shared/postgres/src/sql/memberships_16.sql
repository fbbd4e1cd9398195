-- PostgreSQL 16 and later keep one pg_auth_members row per grantor, each with
-- its own ADMIN, INHERIT and SET options; a member holds the union of them.
SELECT r.rolname::text AS role, m.rolname::text AS member,
       pg_catalog.bool_or(am.admin_option) AS admin,
       pg_catalog.bool_or(am.inherit_option) AS inherit,
       pg_catalog.bool_or(am.set_option) AS set
FROM pg_catalog.pg_auth_members am
JOIN pg_catalog.pg_roles r ON r.oid = am.roleid
JOIN pg_catalog.pg_roles m ON m.oid = am.member
GROUP BY 1, 2
