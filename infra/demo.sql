-- A small database with real drift, for the quick start.
-- Run by scripts/demo in a fresh database named grantwarden_demo; roles are
-- cluster-wide, so every role here starts with demo_ and is recreated.
\set ON_ERROR_STOP on

DROP ROLE IF EXISTS demo_app_ro, demo_app_rw, demo_migrator, demo_contractor, demo_reporting;

CREATE ROLE demo_migrator NOLOGIN;
CREATE ROLE demo_app_ro NOLOGIN BYPASSRLS;                -- drift: BYPASSRLS is not in the baseline
CREATE ROLE demo_app_rw LOGIN;
CREATE ROLE demo_reporting LOGIN;
CREATE ROLE demo_contractor LOGIN VALID UNTIL '2026-01-31'; -- drift: not in the baseline at all
GRANT demo_app_ro TO demo_app_rw;
GRANT demo_app_ro TO demo_reporting WITH ADMIN OPTION;    -- drift: ADMIN OPTION not declared

CREATE SCHEMA orders AUTHORIZATION demo_migrator;
CREATE SCHEMA billing AUTHORIZATION postgres;             -- drift: the baseline says demo_migrator owns it

SET ROLE demo_migrator;
ALTER DEFAULT PRIVILEGES IN SCHEMA orders GRANT SELECT ON TABLES TO demo_app_ro;
CREATE TABLE orders.customers (id bigint PRIMARY KEY, email text, created_at timestamptz);
CREATE TABLE orders.line_items (id bigint PRIMARY KEY, customer_id bigint, amount numeric);
GRANT USAGE ON SCHEMA orders TO demo_app_ro;
GRANT SELECT, INSERT, UPDATE, TRUNCATE ON orders.line_items TO demo_app_rw; -- drift: TRUNCATE extra, DELETE missing
GRANT SELECT (id, created_at) ON orders.customers TO demo_app_rw;
-- created after the baseline was written: all_tables_in_schema and the
-- default privilege cover it, so it is not drift
CREATE TABLE orders.shipments (id bigint PRIMARY KEY, line_item_id bigint);
RESET ROLE;

CREATE TABLE billing.invoices (id bigint PRIMARY KEY, customer_id bigint, total numeric);
CREATE POLICY own_invoices ON billing.invoices USING (customer_id = current_setting('app.customer_id')::bigint);
-- drift: the policy exists but ROW LEVEL SECURITY was never enabled (an observation)
CREATE FUNCTION billing.invoice_total(integer) RETURNS numeric LANGUAGE sql AS 'SELECT 0::numeric';
GRANT USAGE ON SCHEMA billing TO demo_reporting, demo_contractor;
GRANT SELECT ON billing.invoices TO demo_reporting WITH GRANT OPTION;  -- drift: grant option not declared
GRANT SELECT ON billing.invoices TO demo_contractor;                   -- drift: orphaned role
GRANT SELECT ON billing.invoices TO PUBLIC;                            -- drift: every role can read invoices
