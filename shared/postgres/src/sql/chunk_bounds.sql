-- Boundaries that split one large schema into ranges of at most $2 relations,
-- by relation name in C collation (the same order the range filters use).
SELECT s.relname
FROM (SELECT c.relname::text AS relname,
             pg_catalog.row_number() OVER (ORDER BY c.relname COLLATE "C") AS rn
      FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')) s
WHERE s.rn > 1 AND (s.rn - 1) % $2 = 0
ORDER BY s.relname COLLATE "C"
