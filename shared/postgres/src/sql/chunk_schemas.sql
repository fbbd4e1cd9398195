-- Schemas to scan, how many relations each holds and the range of their
-- oids, to plan chunks (a chunk that reads the planner's snapshot looks its
-- relations up by that range: pg_class has no index on the schema alone).
-- System schemas (pg_catalog, information_schema, toast and temporary ones)
-- are PostgreSQL's own and not governed.
SELECT n.nspname::text AS schema, pg_catalog.count(c.oid) AS relations, pg_catalog.min(c.oid) AS min_oid, pg_catalog.max(c.oid) AS max_oid
FROM pg_catalog.pg_namespace n
LEFT JOIN pg_catalog.pg_class c
       ON c.relnamespace = n.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_(toast|temp_)'
GROUP BY n.nspname
ORDER BY n.nspname COLLATE "C"
