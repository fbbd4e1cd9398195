-- Column privileges. Unlike other ACLs, a NULL attacl has no default: it
-- means no column-level grant (table-level grants cover every column).
SELECT n.nspname::text AS schema, c.relname::text AS table_name, att.attname::text AS column_name,
       att.attacl::text[] AS acl
FROM pg_catalog.pg_attribute att
JOIN pg_catalog.pg_class c ON c.oid = att.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY($1)
  AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND att.attnum > 0 AND NOT att.attisdropped AND att.attacl IS NOT NULL
  AND ($2::text IS NULL OR c.relname COLLATE "C" >= $2::text)
  AND ($3::text IS NULL OR c.relname COLLATE "C" < $3::text)
  -- $4, $5: the chunk's planned oid range (NULL: none), a range scan of
  -- pg_class_oid_index instead of a scan of all of pg_class; $6: the highest
  -- oid when planning, for a chunk read in a later snapshot: relations made
  -- since are read too (NULL: none can be, it reads the planner's snapshot)
  AND (c.oid BETWEEN COALESCE($4::oid, 0::oid) AND COALESCE($5::oid, 4294967295::oid)
       OR c.oid > $6::oid)
