-- Tables, partitioned tables, views, materialized views, foreign tables and
-- sequences with owner, row-level security flags and ACL, for the schemas in
-- $1 and relation names in [$2, $3) (NULL: unbounded; C collation).
-- A NULL relacl is the built-in default: the owner alone (acldefault 'r', or
-- 's' for sequences, whose privilege set differs).
-- One row per distinct ACL, with the relations that hold it as parallel
-- arrays: the tables of a schema usually share one (GRANT ... ON ALL TABLES,
-- default privileges), and turning an ACL into text (aclitemout, two role
-- lookups per entry) was most of what reading a large catalog cost the
-- server, and decoding it most of what it cost us. aclitem[] hashes, so the
-- grouping is a hash aggregate. The ACL comes whole, as text, decoded by acl.rs.
SELECT r.acl::text[] AS acl,
       pg_catalog.array_agg(r.schema) AS schemas, pg_catalog.array_agg(r.name) AS names, pg_catalog.array_agg(r.kind) AS kinds,
       pg_catalog.array_agg(r.owner) AS owners, pg_catalog.array_agg(r.relrowsecurity) AS rls_enabled,
       pg_catalog.array_agg(r.relforcerowsecurity) AS rls_forced
FROM (
    SELECT n.nspname::text AS schema, c.relname::text AS name, c.relkind::text AS kind,
           pg_catalog.pg_get_userbyid(c.relowner)::text AS owner,
           c.relrowsecurity, c.relforcerowsecurity,
           COALESCE(c.relacl, pg_catalog.acldefault(
               CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner)) AS acl
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = ANY($1)
      AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
      AND ($2::text IS NULL OR c.relname COLLATE "C" >= $2::text)
      AND ($3::text IS NULL OR c.relname COLLATE "C" < $3::text)
      -- $4, $5: the chunk's planned oid range (NULL: none), a range scan of
      -- pg_class_oid_index instead of a scan of all of pg_class; $6: the highest
      -- oid when planning, for a chunk read in a later snapshot: relations made
      -- since are read too (NULL: none can be, it reads the planner's snapshot)
      AND (c.oid BETWEEN COALESCE($4::oid, 0::oid) AND COALESCE($5::oid, 4294967295::oid)
           OR c.oid > $6::oid)
) r
GROUP BY r.acl
