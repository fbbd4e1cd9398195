-- A synthetic catalog for benchmarks: :schemas schemas x :tables tables x
-- :roles roles, with a realistic mix of grants. Run in a fresh database:
--   psql -v schemas=10 -v tables=100 -v roles=20 -v prefix=gwb -f catalog.sql DB
-- Roles are cluster-wide: their names carry :prefix, so catalogs of several
-- sizes can live in one cluster. Deterministic: the same sizes give the same
-- catalog (no random()).
--
-- The mix, per role i (0-based) and schema s:
--   - USAGE on a schema when (i + s) % 3 = 0 (a third of the schemas);
--   - in those schemas: SELECT on every table; INSERT, UPDATE on every 4th
--     table when i % 2 = 0; DELETE on every 10th table when i % 5 = 0;
--   - a column grant (SELECT (id, name)) on every 20th table of any schema
--     when i % 7 = 0;
--   - default privileges: the schema owner grants SELECT on new tables to
--     role (s % roles) in every schema;
--   - memberships: role i is a member of role i - 1 when i % 10 != 0 (chains of 10);
--   - every 5th role can log in.
\set ON_ERROR_STOP on
SET client_min_messages = warning;

-- A procedure, so each schema commits on its own: one transaction holding a
-- lock on 100k new tables would run out of lock memory.
CREATE PROCEDURE gwb_generate_catalog(n_schemas int, n_tables int, n_roles int, p text)
LANGUAGE plpgsql AS $gen$
DECLARE
    s int; t int; i int;
    sch text; tbl text; r text;
    usage text; writers text; deleters text; columns text;
BEGIN
    FOR i IN 0 .. n_roles - 1 LOOP
        r := format('%s_r%s', p, i);
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I %s', r, CASE WHEN i % 5 = 0 THEN 'LOGIN' ELSE 'NOLOGIN' END);
        END IF;
        IF i % 10 <> 0 AND NOT EXISTS (
            SELECT 1 FROM pg_auth_members m JOIN pg_roles a ON a.oid = m.roleid JOIN pg_roles b ON b.oid = m.member
             WHERE a.rolname = format('%s_r%s', p, i - 1) AND b.rolname = r
        ) THEN
            EXECUTE format('GRANT %I TO %I', format('%s_r%s', p, i - 1), r);
        END IF;
    END LOOP;
    COMMIT;
    FOR s IN 0 .. n_schemas - 1 LOOP
        sch := format('s%s', s);
        EXECUTE format('CREATE SCHEMA %I', sch);
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO %I', sch, format('%s_r%s', p, s % n_roles));
        FOR t IN 0 .. n_tables - 1 LOOP
            tbl := format('t%s', t);
            EXECUTE format('CREATE TABLE %I.%I (id int PRIMARY KEY, name text, amount numeric, created_at timestamptz)', sch, tbl);
            IF t % 500 = 499 THEN
                COMMIT;
            END IF;
        END LOOP;
        COMMIT;
        -- each privilege goes to all of its roles in one statement per object: a
        -- table's ACL is rewritten once per kind of grant, not once per role
        -- (per-role statements took hours at 100k tables)
        usage := (SELECT string_agg(quote_ident(format('%s_r%s', p, k)), ', ' ORDER BY k)
                    FROM generate_series(0, n_roles - 1) k WHERE (k + s) % 3 = 0);
        writers := (SELECT string_agg(quote_ident(format('%s_r%s', p, k)), ', ' ORDER BY k)
                      FROM generate_series(0, n_roles - 1) k WHERE (k + s) % 3 = 0 AND k % 2 = 0);
        deleters := (SELECT string_agg(quote_ident(format('%s_r%s', p, k)), ', ' ORDER BY k)
                       FROM generate_series(0, n_roles - 1) k WHERE (k + s) % 3 = 0 AND k % 5 = 0);
        columns := (SELECT string_agg(quote_ident(format('%s_r%s', p, k)), ', ' ORDER BY k)
                      FROM generate_series(0, n_roles - 1) k WHERE k % 7 = 0);
        IF usage IS NOT NULL THEN
            EXECUTE format('GRANT USAGE ON SCHEMA %I TO %s', sch, usage);
            EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO %s', sch, usage);
        END IF;
        IF writers IS NOT NULL THEN
            FOR t IN 0 .. n_tables - 1 BY 4 LOOP
                EXECUTE format('GRANT INSERT, UPDATE ON %I.%I TO %s', sch, format('t%s', t), writers);
            END LOOP;
        END IF;
        IF deleters IS NOT NULL THEN
            FOR t IN 0 .. n_tables - 1 BY 10 LOOP
                EXECUTE format('GRANT DELETE ON %I.%I TO %s', sch, format('t%s', t), deleters);
            END LOOP;
        END IF;
        IF columns IS NOT NULL THEN
            FOR t IN 0 .. n_tables - 1 BY 20 LOOP
                EXECUTE format('GRANT SELECT (id, name) ON %I.%I TO %s', sch, format('t%s', t), columns);
            END LOOP;
        END IF;
        COMMIT;
    END LOOP;
END
$gen$;
CALL gwb_generate_catalog(:schemas, :tables, :roles, :'prefix');
DROP PROCEDURE gwb_generate_catalog(int, int, int, text);
