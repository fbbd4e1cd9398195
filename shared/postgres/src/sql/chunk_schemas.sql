-- Schemas to scan and how many relations each holds, to plan chunks.
-- System schemas (pg_catalog, information_schema, toast and temporary ones)
-- are PostgreSQL's own and not governed.
SELECT n.nspname::text AS schema, count(c.oid) AS relations
FROM pg_catalog.pg_namespace n
LEFT JOIN pg_catalog.pg_class c
       ON c.relnamespace = n.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_(toast|temp_)'
GROUP BY n.nspname
ORDER BY n.nspname COLLATE "C"
