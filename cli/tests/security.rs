//! The guard must never be the way in: each attack of issue W2-H, run as an
//! ordinary login would, against real PostgreSQL in a database prepared the
//! pre-15 way (PUBLIC holds CREATE on schema public, as every database made
//! before PostgreSQL 15 and kept by pg_upgrade does), with variants of each
//! class.
//!
//! The attacker, `mallory`, plants in `public` functions, operators and
//! aggregates that match grantwarden's calls better than pg_catalog's. Each
//! records who called it and, called by a superuser, makes mallory one; in a
//! read-only transaction (a scan) it cannot record, so it fails the statement
//! loudly instead. Before the fix each of these ran as the admin.

mod common;

use std::path::Path;
use std::process::Output;

use common::{grantwarden, ok};
use grantwarden_testkit::{TestDb, connect};
use serde_json::Value;

/// Functions, operators and aggregates that win PostgreSQL's overload
/// resolution over pg_catalog's for calls grantwarden makes (or made) through
/// the default search_path: an exact argument type beats an implicit cast, a
/// polymorphic or `"any"` parameter, and `name` for an untyped literal.
const HOSTILE: &str = r#"
CREATE TABLE public.gw_hostile_calls (what text, by_whom text);
GRANT SELECT, INSERT ON public.gw_hostile_calls TO PUBLIC;
CREATE FUNCTION public.gw_hostile(what text) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
  IF pg_catalog.current_setting('transaction_read_only') OPERATOR(pg_catalog.=) 'on' THEN
    RAISE EXCEPTION 'hostile % ran as % in a read-only transaction', what, current_user;
  END IF;
  INSERT INTO public.gw_hostile_calls VALUES (what, current_user);
  IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) current_user) THEN
    EXECUTE pg_catalog.format('ALTER ROLE %I SUPERUSER', '@MALLORY@');
  END IF;
END $f$;
-- the advisory lock keys: hashtextextended('...', 0) took (text, integer) here
CREATE FUNCTION public.hashtextextended(t text, seed integer) RETURNS bigint LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.gw_hostile('hashtextextended(text, integer)'); RETURN pg_catalog.hashtextextended(t, seed::bigint); END $f$;
CREATE FUNCTION public.pg_advisory_xact_lock(k integer) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.gw_hostile('pg_advisory_xact_lock(integer)'); END $f$;
-- the hash mask: convert_to(x, 'UTF8') took (text, text) over (text, name)
CREATE FUNCTION public.convert_to(t text, enc text) RETURNS bytea LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.gw_hostile('convert_to(text, text)'); RETURN pg_catalog.convert_to(t, enc::name); END $f$;
CREATE FUNCTION public.left(t varchar, n integer) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.gw_hostile('left(varchar, integer)'); RETURN t; END $f$;
-- a row scope's `region IN ('eu')` on a varchar column, and its CHECK OPTION
CREATE FUNCTION public.gw_eq(a varchar, b varchar) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.gw_hostile('=(varchar, varchar)'); RETURN true; END $f$;
CREATE OPERATOR public.= (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = public.gw_eq);
CREATE FUNCTION public.gw_eq_name(a name, b varchar) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.gw_hostile('=(name, varchar)'); RETURN a::text OPERATOR(pg_catalog.=) b::text; END $f$;
CREATE OPERATOR public.= (LEFTARG = name, RIGHTARG = varchar, FUNCTION = public.gw_eq_name);
-- aggregates of the catalog reads: array_agg(text) over array_agg(anynonarray), count(oid) over count("any")
CREATE FUNCTION public.gw_agg(s text[], v text) RETURNS text[] LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.gw_hostile('array_agg(text)'); RETURN s OPERATOR(pg_catalog.||) v; END $f$;
CREATE AGGREGATE public.array_agg(text) (SFUNC = public.gw_agg, STYPE = text[], INITCOND = '{}');
CREATE FUNCTION public.gw_count(s bigint, v oid) RETURNS bigint LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.gw_hostile('count(oid)'); RETURN s OPERATOR(pg_catalog.+) 1; END $f$;
CREATE AGGREGATE public.count(oid) (SFUNC = public.gw_count, STYPE = bigint, INITCOND = '0');
"#;

/// A test database prepared the pre-15 way, with mallory (a plain login) and
/// the planted objects. Returns mallory's role name.
async fn hostile_database(db: &TestDb) -> String {
    let mallory = db.role("mallory");
    db.exec(&format!(
        "GRANT CREATE ON SCHEMA public TO PUBLIC; CREATE ROLE {m} LOGIN;
         SET ROLE {m}; {hostile} RESET ROLE;",
        m = db.ident("mallory"),
        hostile = HOSTILE.replace("@MALLORY@", &mallory)
    ))
    .await;
    mallory
}

/// What mallory got: superuser or not, and every call of a planted object (who made it).
async fn damage(db: &TestDb, mallory: &str) -> (bool, Vec<String>) {
    let c = db.client().await;
    let superuser: bool =
        c.query_one("SELECT rolsuper FROM pg_roles WHERE rolname = $1", &[&mallory]).await.unwrap().get(0);
    let calls = column(&c, "SELECT what || ' by ' || by_whom FROM public.gw_hostile_calls ORDER BY 1").await;
    (superuser, calls)
}

/// The first column of every row `sql` returns.
async fn column<T: for<'a> tokio_postgres::types::FromSql<'a>>(c: &tokio_postgres::Client, sql: &str) -> Vec<T> {
    c.query(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}")).iter().map(|r| r.get(0)).collect()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// The last JSON line of a run's standard output.
fn last_json(o: &Output) -> Value {
    let out = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(out.lines().last().unwrap_or_default())
        .unwrap_or_else(|_| panic!("no JSON line: {out}\n{}", String::from_utf8_lossy(&o.stderr)))
}

/// A registry whose read-only path needs `approvals` and that accepts PUBLIC's
/// CREATE on schema public when `allow_public` (as an operator may choose to).
fn registry(dir: &Path, approvals: &str, allow_public: bool) -> String {
    let allow = if allow_public { "  allow_public_create: [public]\n" } else { "" };
    write(
        dir,
        &format!("policy-{approvals}-{allow_public}.yaml"),
        &format!(
            r#"version: "1.0"
owner: security@example.com
approver: ciso@example.com
categories:
  ops: {{ framework: SOC2, max_ttl: 24h, approvals: 1, weight_factor: 0.25 }}
routes:
  - {{ match: {{}}, category: ops }}
access:
  approver_roles: {{ security: [ciso@example.com] }}
  paths:
    read-only: {{ max_ttl: 8h, approvals: {approvals} }}
    migration: {{ max_ttl: 4h, approvals: dual }}
  sensitive: {{ tables: [billing.customers] }}
  masking: {{ billing.customers: {{ email: partial, ssn: hash }}, billing.accounts: {{ email: hash }} }}
{allow}"#
        ),
    )
}

struct Cli {
    state: String,
    url: String,
}

impl Cli {
    fn run(&self, args: &[&str], at: &str) -> Output {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--state", &self.state, "--at", at]);
        grantwarden(&all)
    }

    /// The security approver approves `ticket` at 12:01 and its credential is issued at 12:02.
    fn approve_and_issue(&self, ticket: &str) -> Value {
        ok(&self.run(&["tickets", "approve", ticket, "--by", "ciso@example.com"], "2026-11-22T12:01:00Z"));
        let issued =
            last_json(&self.run(&["access", "issue", ticket, "--database", &self.url], "2026-11-22T12:02:00Z"));
        assert_eq!(issued["outcome"], "issued", "{issued}");
        issued
    }

    fn request(&self, dir: &Path, id: &str, policy: &str, scope: Value, at: &str) -> Output {
        let body = serde_json::json!({ "id": id, "identity": "alice@example.com", "target": "orders-prod",
            "path": "read-only", "scope": scope, "duration": "20m", "justification": "CHG-1" });
        let file = write(dir, &format!("{id}.json"), &body.to_string());
        self.run(&["request", &file, "--policy", policy, "--database", &self.url], at)
    }
}

#[tokio::test]
async fn search_path_tricks_never_run_as_the_admin_in_a_scan_an_issue_a_read_or_a_revocation() {
    let db = TestDb::new().await;
    let mallory = hostile_database(&db).await;
    db.exec(
        "CREATE SCHEMA billing;
         CREATE TABLE billing.invoices (id int, region varchar(8), amount int);
         INSERT INTO billing.invoices VALUES (1, 'eu', 10), (2, 'us', 20), (3, 'eu', 30);
         CREATE TABLE billing.customers (id int, email varchar, ssn varchar);
         INSERT INTO billing.customers VALUES (1, 'alice@example.com', '123-45-6789');",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli { state: dir.path().join("state.db").to_string_lossy().into_owned(), url: db.url() };
    // the operator accepts PUBLIC's CREATE on public: the pinned search_path is what protects
    let policy = registry(dir.path(), "single", true);
    let ignore: Vec<String> = db.ignore_others().iter().map(|p| format!("{p:?}")).collect();
    let baseline = write(dir.path(), "baseline.yaml", &format!("version: 1\nignore_roles: [{}]\n", ignore.join(", ")));

    // a scan as the admin: the catalog reads' aggregates
    let plan =
        cli.run(&["plan", "--database", &cli.url, "--baseline", &baseline, "--format", "json"], "2026-11-22T12:00:00Z");
    assert_ne!(plan.status.code(), Some(1), "the scan completes: {}", String::from_utf8_lossy(&plan.stderr));

    // a row scope on a varchar column, issued (advisory locks) and read by the credential
    let rows = serde_json::json!({ "on": "rows", "schema": "billing", "table": "invoices",
        "predicate": { "column": "region", "values": ["eu"] } });
    let out =
        last_json(&cli.request(dir.path(), &format!("{}-rows", db.prefix), &policy, rows, "2026-11-22T12:00:00Z"));
    let issued = cli.approve_and_issue(&out_ticket_of(&out));
    let views = issued["views_schema"].as_str().unwrap().to_owned();
    let me = connect(&db.url_as(issued["role"].as_str().unwrap())).await.unwrap();
    let regions: Vec<String> = column(&me, &format!("SELECT region::text FROM {views}.invoices ORDER BY id")).await;
    assert_eq!(regions, ["eu", "eu"], "the row scope holds whatever public.= says");

    // a masked table (the hash mask's convert_to, the partial mask's left)
    let masked = serde_json::json!({ "on": "tables", "schema": "billing", "tables": ["customers"] });
    let out =
        last_json(&cli.request(dir.path(), &format!("{}-masked", db.prefix), &policy, masked, "2026-11-22T12:00:00Z"));
    let issued = cli.approve_and_issue(&out_ticket_of(&out));
    let reader = connect(&db.url_as(issued["role"].as_str().unwrap())).await.unwrap();
    let row = reader
        .query_one(&format!("SELECT email, ssn FROM {}.customers", issued["views_schema"].as_str().unwrap()), &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), format!("al{}", "*".repeat("alice@example.com".len() - 2)));
    assert_eq!(row.get::<_, String>(1).len(), 64, "sha256, hex");

    // the end of both windows: the role locks, the session ending, the drops
    drop((me, reader));
    let revoked = ok(&cli.run(
        &["revoke", "--due", "--database", &cli.url, "--target", "orders-prod", "--json"],
        "2026-11-22T13:00:00Z",
    ));
    assert_eq!(revoked.matches("\"revoked\"").count(), 2, "{revoked}");

    let (superuser, calls) = damage(&db, &mallory).await;
    assert!(!superuser, "mallory is not superuser");
    assert_eq!(calls, Vec::<String>::new(), "no planted object was ever called");
}

#[tokio::test]
async fn a_function_name_that_holds_a_signature_neither_injects_nor_blocks_remediation() {
    let db = TestDb::new().await;
    let mallory = db.role("mallory");
    let runner = db.role("runner");
    let (m, r) = (db.ident("mallory"), db.ident("runner"));
    // mallory may create in schema app, whose functions runner may execute
    db.exec(&format!(
        r#"CREATE ROLE {m} LOGIN; CREATE ROLE {r} LOGIN; GRANT {r} TO {m};
           CREATE SCHEMA app AUTHORIZATION {m};
           CREATE TABLE app.t (id int);
           SET ROLE {m};
           CREATE TYPE app."(" AS (x int); CREATE TYPE app.")" AS (x int);
           CREATE FUNCTION app.f(app."(") RETURNS int LANGUAGE sql AS 'SELECT 1';
           CREATE FUNCTION app.g(app."(", app.")") RETURNS int LANGUAGE sql AS 'SELECT 2';
           CREATE FUNCTION app."f(app.""("" ), pg_catalog.lo_export(oid, text), app.g "(app."(", app.")")
             RETURNS int LANGUAGE sql AS 'SELECT 3';
           REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA app FROM PUBLIC;
           RESET ROLE;"#
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ignore: Vec<String> = db.ignore_others().iter().map(|p| format!("{p:?}")).collect();
    // converge grants runner EXECUTE on every function of app (the baseline says so) and SELECT on app.t
    let baseline = write(
        dir.path(),
        "baseline.yaml",
        &format!(
            "version: 1\nroles:\n  {mallory}:\n    login: true\n    member_of: [{runner}]\n    owns: [{{ on: schema, name: app }}, \
             {{ on: all_tables_in_schema, schema: app }}, {{ on: all_functions_in_schema, schema: app }}]\n  \
             {runner}:\n    login: true\n    grants:\n      - {{ privileges: [USAGE], on: schema, name: app }}\n      \
             - {{ privileges: [EXECUTE], on: all_functions_in_schema, schema: app }}\n      \
             - {{ privileges: [SELECT], on: table, name: app.t }}\n\
             public:\n  builtin_defaults: keep\nignore_roles: [{}]\n",
            ignore.join(", ")
        ),
    );
    let state = dir.path().join("state.db").to_string_lossy().into_owned();
    let apply = |mode: &str| {
        grantwarden(&[
            "apply",
            "--database",
            &db.url(),
            "--baseline",
            &baseline,
            "--mode",
            mode,
            "--execute",
            "--state",
            &state,
        ])
    };
    let out = ok(&apply("converge"));
    let c = db.client().await;
    let can = |f: &str| {
        let c = &c;
        let runner = runner.clone();
        let f = f.to_owned();
        async move {
            c.query_one("SELECT has_function_privilege($1, $2::text::regprocedure, 'EXECUTE')", &[&runner, &f])
                .await
                .unwrap()
                .get::<_, bool>(0)
        }
    };
    assert!(!can("pg_catalog.lo_export(oid, text)").await, "never lo_export: {out}");
    assert!(can(r#"app."f(app.""("" ), pg_catalog.lo_export(oid, text), app.g "(app."(", app.")")"#).await, "{out}");
    assert!(can(r#"app.f(app."(")"#).await && can(r#"app.g(app."(", app.")")"#).await, "{out}");
    let t: bool = c.query_one("SELECT has_table_privilege($1, 'app.t', 'SELECT')", &[&runner]).await.unwrap().get(0);
    assert!(t, "the other grants of the run went through: {out}");
    // and mallory, runner's member, cannot write a file as the server's OS user
    let as_mallory = connect(&db.url_as(&mallory)).await.unwrap();
    let lo = as_mallory.batch_execute("SELECT pg_catalog.lo_export(0, '/tmp/gw-never')").await;
    assert!(lo.is_err() && !Path::new("/tmp/gw-never").exists());

    // the hostile name revoked the same way: by its own identity, and only what is not declared
    let undeclared = std::fs::read_to_string(&baseline)
        .unwrap()
        .replace("      - { privileges: [EXECUTE], on: all_functions_in_schema, schema: app }\n", "");
    std::fs::write(&baseline, undeclared).unwrap();
    let out = ok(&apply("revoke-unauthorized"));
    assert!(!can(r#"app."f(app.""("" ), pg_catalog.lo_export(oid, text), app.g "(app."(", app.")")"#).await, "{out}");
    assert!(!can(r#"app.f(app."(")"#).await && !can(r#"app.g(app."(", app.")")"#).await, "{out}");
    let t: bool = c.query_one("SELECT has_table_privilege($1, 'app.t', 'SELECT')", &[&runner]).await.unwrap().get(0);
    assert!(t, "what the baseline declares stays: {out}");
}

#[tokio::test]
async fn what_a_credential_created_goes_with_it_and_a_security_definer_function_is_a_high_finding() {
    let db = TestDb::new().await;
    let mallory = hostile_database(&db).await;
    db.exec("CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int);").await;
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli { state: dir.path().join("state.db").to_string_lossy().into_owned(), url: db.url() };
    let policy = registry(dir.path(), "auto", true);
    let tables = serde_json::json!({ "on": "tables", "schema": "billing", "tables": ["invoices"] });
    let out =
        last_json(&cli.request(dir.path(), &format!("{}-sd", db.prefix), &policy, tables, "2026-11-22T12:00:00Z"));
    assert_eq!(out["outcome"], "issued", "{out}");
    let role = out["role"].as_str().unwrap().to_owned();
    // the credential leaves a trap in public: whoever owns it, calling it acts as them
    let me = connect(&db.url_as(&role)).await.unwrap();
    me.batch_execute(&format!(
        "CREATE FUNCTION public.become() RETURNS void LANGUAGE sql SECURITY DEFINER AS \
         'ALTER ROLE {} SUPERUSER'; GRANT EXECUTE ON FUNCTION public.become() TO PUBLIC;
         CREATE TABLE public.left_behind (id int);",
        db.ident("mallory")
    ))
    .await
    .unwrap();
    drop(me);
    ok(&cli.run(&["revoke", "--due", "--database", &cli.url, "--target", "orders-prod"], "2026-11-22T13:00:00Z"));
    let c = db.client().await;
    let left: i64 = c
        .query_one(
            "SELECT (SELECT count(*) FROM pg_proc WHERE proname = 'become') + \
                    (SELECT count(*) FROM pg_class WHERE relname = 'left_behind')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "dropped with the role, never reassigned to the admin");
    let as_mallory = connect(&db.url_as(&mallory)).await.unwrap();
    assert!(as_mallory.batch_execute("SELECT public.become()").await.is_err());
    let (superuser, calls) = damage(&db, &mallory).await;
    assert!(!superuser && calls.is_empty(), "{calls:?}");
    let report =
        ok(&cli.run(&["report", "remediation", "--target", "orders-prod", "--format", "json"], "2026-11-22T13:01:00Z"));
    assert!(
        report.contains("SECURITY DEFINER") && report.contains("become"),
        "the function is a finding for a person: {report}"
    );
}

#[tokio::test]
async fn issuing_refuses_where_public_may_create_and_says_how_to_fix_it() {
    let db = TestDb::new().await;
    hostile_database(&db).await;
    db.exec("CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int);").await;
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli { state: dir.path().join("state.db").to_string_lossy().into_owned(), url: db.url() };
    let policy = registry(dir.path(), "auto", false);
    let tables = serde_json::json!({ "on": "tables", "schema": "billing", "tables": ["invoices"] });
    let out = cli.request(dir.path(), &format!("{}-pc", db.prefix), &policy, tables.clone(), "2026-11-22T12:00:00Z");
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("PUBLIC holds CREATE on schema public"), "{said}");
    assert!(said.contains("REVOKE CREATE ON SCHEMA public FROM PUBLIC"), "{said}");
    let c = db.client().await;
    let ticket = grantwarden_core::ticket::ticket_id("access", &format!("{}-pc", db.prefix));
    assert_eq!(credentials_of(&db, &ticket).await, 0, "nothing was created");
    // fixed as the message says, the same ticket issues
    c.batch_execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC").await.unwrap();
    let issued = last_json(&cli.run(&["access", "issue", &ticket, "--database", &cli.url], "2026-11-22T12:01:00Z"));
    assert_eq!(issued["outcome"], "issued", "{issued}");
    ok(&cli.run(&["revoke", "--due", "--database", &cli.url, "--target", "orders-prod"], "2026-11-22T13:00:00Z"));
}

/// Roles grantwarden made for `ticket` (the credential and its views' owner), by their comment.
async fn credentials_of(db: &TestDb, ticket: &str) -> i64 {
    db.client()
        .await
        .query_one(
            "SELECT count(*) FROM pg_roles r WHERE shobj_description(r.oid, 'pg_authid') LIKE '%' || $1 || '%'",
            &[&ticket],
        )
        .await
        .unwrap()
        .get(0)
}

fn out_ticket_of(v: &Value) -> String {
    v["ticket"].as_str().unwrap_or_else(|| panic!("no ticket in {v}")).to_owned()
}

fn out_ticket(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v["ticket"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no ticket in {}", String::from_utf8_lossy(&o.stdout)))
}

#[tokio::test]
async fn masking_and_approvals_follow_partitions_inheritance_views_and_row_level_security() {
    let db = TestDb::new().await;
    db.exec(
        "CREATE SCHEMA billing; CREATE SCHEMA reports;
         CREATE TABLE billing.customers (id int, region text, email text, ssn text) PARTITION BY LIST (region);
         CREATE TABLE billing.customers_eu PARTITION OF billing.customers FOR VALUES IN ('eu');
         CREATE TABLE billing.customers_us PARTITION OF billing.customers FOR VALUES IN ('us');
         INSERT INTO billing.customers VALUES (1, 'eu', 'alice@example.com', '111'), (2, 'us', 'bob@example.com', '222');
         CREATE TABLE billing.accounts (id int, email text);
         CREATE TABLE billing.accounts_vip (note text) INHERITS (billing.accounts);
         INSERT INTO billing.accounts_vip VALUES (3, 'carol@example.com', 'x');
         CREATE VIEW reports.emails AS SELECT id, email FROM billing.customers_eu;
         CREATE TABLE billing.invoices (id int, customer_id int, region text);
         INSERT INTO billing.invoices VALUES (1, 42, 'eu'), (2, 42, 'us'), (3, 7, 'eu');
         ALTER TABLE billing.invoices ENABLE ROW LEVEL SECURITY;
         CREATE POLICY eu_only ON billing.invoices FOR SELECT USING (region = 'eu');",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli { state: dir.path().join("state.db").to_string_lossy().into_owned(), url: db.url() };
    let auto = registry(dir.path(), "auto", false);
    let request = |id: &str, policy: &str, scope: Value| {
        cli.request(dir.path(), &format!("{}-{id}", db.prefix), policy, scope, "2026-11-22T12:00:00Z")
    };
    let tables = |schema: &str, t: &str| serde_json::json!({ "on": "tables", "schema": schema, "tables": [t] });

    // a partition of the sensitive, masked table: no approval, no credential
    let out = request("part", &auto, tables("billing", "customers_eu"));
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("shares rows with the sensitive table billing.customers"), "{said}");
    // a view over the partition: it reads a masked relation
    let out = request("view", &auto, tables("reports", "emails"));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("view over the masked table billing.customers_eu"), "{said}");
    // a schema scope leaves it out and says so (here, nothing is left)
    let out = request("schema", &auto, serde_json::json!({ "on": "schema", "schema": "reports" }));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("schema reports holds no table") && said.contains("reports.emails: it is a view"), "{said}");

    // approved, the partition and its child are read through masking views
    let single = registry(dir.path(), "single", false);
    let ticket = out_ticket(&request("approved", &single, tables("billing", "customers_eu")));
    let issued = cli.approve_and_issue(&ticket);
    let me = connect(&db.url_as(issued["role"].as_str().unwrap())).await.unwrap();
    let views = issued["views_schema"].as_str().unwrap().to_owned();
    let emails: Vec<String> = column(&me, &format!("SELECT email FROM {views}.customers_eu ORDER BY id")).await;
    assert_eq!(emails, [format!("al{}", "*".repeat(15))], "masked as its parent is");
    assert!(me.batch_execute("SELECT * FROM billing.customers_eu").await.is_err(), "never the table itself");

    // an inheritance child of a masked table (not a sensitive one): masked, no approval needed
    let out = last_json(&request("child", &auto, tables("billing", "accounts_vip")));
    assert_eq!(out["outcome"], "issued", "{out}");
    let child = connect(&db.url_as(out["role"].as_str().unwrap())).await.unwrap();
    let email: String = child
        .query_one(&format!("SELECT email FROM {}.accounts_vip", out["views_schema"].as_str().unwrap()), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(email.len(), 64, "hashed as its parent's column is: {email}");
    drop(child);

    // a row scope over a table with row-level security: the view's owner is held to it
    let rows = serde_json::json!({ "on": "rows", "schema": "billing", "table": "invoices",
        "predicate": { "column": "customer_id", "values": [42] } });
    let out = last_json(&request("rls", &auto, rows));
    assert_eq!(out["outcome"], "issued", "{out}");
    let reader = connect(&db.url_as(out["role"].as_str().unwrap())).await.unwrap();
    let views = out["views_schema"].as_str().unwrap();
    let seen: Vec<i32> = column(&reader, &format!("SELECT id FROM {views}.invoices ORDER BY id")).await;
    assert_eq!(seen, [1], "customer 42's rows that the table's policy lets through, not its 'us' row");
    let owner: (String, bool, bool) = {
        let r = db
            .client()
            .await
            .query_one(
                "SELECT c.relowner::regrole::text, a.rolsuper, a.rolbypassrls FROM pg_class c \
                 JOIN pg_roles a ON a.oid = c.relowner WHERE c.relname = 'invoices' AND c.relkind = 'v'",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    assert!(owner.0.ends_with("_views") && !owner.1 && !owner.2, "{owner:?}");
    drop((me, reader));
    ok(&cli.run(&["revoke", "--due", "--database", &cli.url, "--target", "orders-prod"], "2026-11-22T13:00:00Z"));
    let schemas: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'gw\\_access\\_%'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(schemas, 0, "the views and their schemas are gone");
    for t in [ticket, out_ticket_of(&out)] {
        assert_eq!(credentials_of(&db, &t).await, 0, "the credential and its views' owner of {t} are gone");
    }
}

#[tokio::test]
async fn the_views_schema_is_drawn_at_random_and_one_made_beforehand_stops_the_issue() {
    let db = TestDb::new().await;
    db.exec(
        "CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int, customer_id int);
         INSERT INTO billing.invoices VALUES (1, 42);",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli { state: dir.path().join("state.db").to_string_lossy().into_owned(), url: db.url() };
    let policy = registry(dir.path(), "single", false);
    let rows = serde_json::json!({ "on": "rows", "schema": "billing", "table": "invoices",
        "predicate": { "column": "customer_id", "values": [42] } });
    let ticket =
        out_ticket(&cli.request(dir.path(), &format!("{}-sq", db.prefix), &policy, rows, "2026-11-22T12:00:00Z"));
    let shown = ok(&cli.run(&["tickets", "show", &ticket], "2026-11-22T12:00:30Z"));
    let schema = shown
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .find(|w| w.starts_with("gw_access_"))
        .unwrap_or_else(|| panic!("no views schema in {shown}"))
        .to_owned();
    use sha2::Digest;
    let derived = format!("gw_access_{}", &hex::encode(sha2::Sha256::digest(ticket.as_bytes()))[..10]);
    assert_ne!(schema, derived, "not derived from the ticket id");
    // someone who learnt it makes it first, with a view of their own inside
    let squatter = db.ident("squatter");
    db.exec(&format!(
        "CREATE ROLE {squatter}; CREATE SCHEMA {schema} AUTHORIZATION {squatter};
         CREATE VIEW {schema}.invoices AS SELECT * FROM billing.invoices; ALTER VIEW {schema}.invoices OWNER TO {squatter};"
    ))
    .await;
    ok(&cli.run(&["tickets", "approve", &ticket, "--by", "ciso@example.com"], "2026-11-22T12:01:00Z"));
    let out = cli.run(&["access", "issue", &ticket, "--database", &cli.url], "2026-11-22T12:02:00Z");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already exists"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // the revocation drops nothing of theirs
    ok(&cli.run(&["revoke", "--due", "--database", &cli.url, "--target", "orders-prod"], "2026-11-22T13:00:00Z"));
    let still: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM pg_namespace WHERE nspname = $1", &[&schema])
        .await
        .unwrap()
        .get(0);
    assert_eq!(still, 1, "another role's schema is not grantwarden's to drop");
}
