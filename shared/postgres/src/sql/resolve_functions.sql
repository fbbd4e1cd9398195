-- The functions a set of changes names, by schema ($1), name ($2) and argument
-- types as oidvectortypes prints them ($3), parallel arrays: each one's
-- position in the arrays, OID, schema, name, and its argument types as
-- (schema, typname) pairs in order, so the statement can name it part by part.
-- Runs in the transaction that grants or revokes, as a privileged role: every
-- function and operator is qualified. A name that matches nothing (dropped
-- since the plan) gives no row.
SELECT w.at, p.oid, n.nspname::pg_catalog.text, p.proname::pg_catalog.text,
       ARRAY(SELECT tn.nspname::pg_catalog.text
               FROM pg_catalog.unnest(p.proargtypes::pg_catalog.oid[]) WITH ORDINALITY AS a(t, i)
               JOIN pg_catalog.pg_type ty ON ty.oid OPERATOR(pg_catalog.=) a.t
               JOIN pg_catalog.pg_namespace tn ON tn.oid OPERATOR(pg_catalog.=) ty.typnamespace
              ORDER BY a.i),
       ARRAY(SELECT ty.typname::pg_catalog.text
               FROM pg_catalog.unnest(p.proargtypes::pg_catalog.oid[]) WITH ORDINALITY AS a(t, i)
               JOIN pg_catalog.pg_type ty ON ty.oid OPERATOR(pg_catalog.=) a.t
              ORDER BY a.i)
  FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]), pg_catalog.unnest($2::pg_catalog.text[]),
                  pg_catalog.unnest($3::pg_catalog.text[]))
       WITH ORDINALITY AS w(schema, name, args, at)
  JOIN pg_catalog.pg_namespace n ON n.nspname OPERATOR(pg_catalog.=) w.schema::pg_catalog.name
  JOIN pg_catalog.pg_proc p ON p.pronamespace OPERATOR(pg_catalog.=) n.oid
   AND p.proname OPERATOR(pg_catalog.=) w.name::pg_catalog.name
   AND pg_catalog.oidvectortypes(p.proargtypes) OPERATOR(pg_catalog.=) w.args
