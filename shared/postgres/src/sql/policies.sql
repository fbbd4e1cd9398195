-- Row-level security policies. polroles holds 0 for PUBLIC; polcmd is
-- r (SELECT), a (INSERT), w (UPDATE), d (DELETE) or * (ALL).
SELECT n.nspname::text AS schema, c.relname::text AS table_name, p.polname::text AS name,
       p.polcmd::text AS cmd, p.polpermissive AS permissive,
       ARRAY(SELECT CASE WHEN r = 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(r)::text END
             FROM pg_catalog.unnest(p.polroles) AS r ORDER BY 1) AS roles,
       pg_catalog.pg_get_expr(p.polqual, p.polrelid) AS using_expr,
       pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) AS check_expr
FROM pg_catalog.pg_policy p
JOIN pg_catalog.pg_class c ON c.oid = p.polrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY($1)
  AND ($2::text IS NULL OR c.relname COLLATE "C" >= $2::text)
  AND ($3::text IS NULL OR c.relname COLLATE "C" < $3::text)
  -- $4, $5: the chunk's planned oid range (NULL: none), a range scan of
  -- pg_class_oid_index instead of a scan of all of pg_class; $6: the highest
  -- oid when planning, for a chunk read in a later snapshot: relations made
  -- since are read too (NULL: none can be, it reads the planner's snapshot)
  AND (c.oid BETWEEN COALESCE($4::oid, 0::oid) AND COALESCE($5::oid, 4294967295::oid)
       OR c.oid > $6::oid)
