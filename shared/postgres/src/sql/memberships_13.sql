-- Before PostgreSQL 16 a membership has only the ADMIN option: privileges are
-- inherited when the member role has INHERIT, and SET ROLE is always allowed.
SELECT r.rolname::text AS role, m.rolname::text AS member,
       pg_catalog.bool_or(am.admin_option) AS admin,
       pg_catalog.bool_or(m.rolinherit) AS inherit,
       true AS set
FROM pg_catalog.pg_auth_members am
JOIN pg_catalog.pg_roles r ON r.oid = am.roleid
JOIN pg_catalog.pg_roles m ON m.oid = am.member
GROUP BY 1, 2
