//! Just-in-time credentials against a real PostgreSQL: the issued role reads
//! exactly its scope (rows through a view, masked columns masked), nothing
//! else, and everything is gone after revocation.

use std::time::Duration;

use chrono::{DateTime, Utc};
use grantwarden_core::access::route_access;
use grantwarden_core::access_policy::{AccessPath, AccessScope, Incidents, RowPredicate};
use grantwarden_core::backoff::RetryPolicy;
use grantwarden_core::policy::PolicyRegistry;
use grantwarden_core::request::AccessRequest;
use grantwarden_core::revoke::{RevokeOptions, RevokeOutcome, revoke_ticket};
use grantwarden_core::snapshot::TargetId;
use grantwarden_core::store::TicketStore;
use grantwarden_core::ticket::{Decision, Ticket, TicketStatus, Trigger};
use grantwarden_local::LocalStore;
use grantwarden_postgres::activate::new_password;
use grantwarden_postgres::session::parse_config;
use grantwarden_postgres::{Executor, Timeouts};
use grantwarden_testkit::{TestDb, connect};

const REGISTRY: &str = include_str!("../../../infra/policy.example.yaml");

struct NoIncidents;
impl Incidents for NoIncidents {
    fn is_open(&self, _: &str, _: DateTime<Utc>) -> bool {
        false
    }
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

/// A request with an id unique to this test database: issued roles are
/// cluster-wide, so each run gets roles of its own.
fn request(db: &TestDb, id: &str, path: AccessPath, scope: AccessScope) -> AccessRequest {
    AccessRequest {
        id: format!("{}-{id}", db.prefix),
        identity: "alice@example.com".into(),
        target: TargetId::new("orders-prod").unwrap(),
        path,
        scope,
        duration: "1h".into(),
        justification: "CHG-77".into(),
        incident_id: None,
        script: None,
    }
}

fn ticket(r: &AccessRequest) -> Ticket {
    let registry = PolicyRegistry::load(&[("r.yaml".into(), REGISTRY.into())]).unwrap();
    match route_access(r, &registry, &NoIncidents, now()) {
        Decision::Ticket(t) => *t,
        other => panic!("{other:?}"),
    }
}

fn executor(db: &TestDb) -> Executor {
    let timeouts = Timeouts::default();
    let retry = RetryPolicy { max_attempts: 2, base: Duration::from_millis(50), cap: Duration::from_millis(100) };
    Executor::new(parse_config(&db.url(), &timeouts).unwrap(), timeouts, retry)
}

async fn setup() -> TestDb {
    let db = TestDb::new().await;
    db.exec(
        "CREATE SCHEMA billing; CREATE SCHEMA hr;
         CREATE TABLE billing.invoices (id int, customer_id int, total numeric);
         INSERT INTO billing.invoices VALUES (1, 42, 10), (2, 42, 20), (3, 7, 30);
         CREATE TABLE billing.customers (id int, email text, ssn text);
         INSERT INTO billing.customers VALUES (42, 'alice@example.com', '123-45-6789'), (7, NULL, '999');
         CREATE TABLE hr.pay (id int, amount int); INSERT INTO hr.pay VALUES (1, 100);
         CREATE TABLE billing.notes (id serial PRIMARY KEY, body text);",
    )
    .await;
    db
}

/// Drops issued roles a test did not revoke (roles outlive the test database).
async fn drop_roles(db: &TestDb, roles: &[&str]) {
    let admin = db.client().await;
    for r in roles {
        let r = postgres_protocol::escape::escape_identifier(r);
        admin.batch_execute(&format!("DROP OWNED BY {r}; DROP ROLE {r}")).await.unwrap();
    }
}

/// The code of a failed query (e.g. 42501 permission denied).
async fn fails_with(c: &tokio_postgres::Client, sql: &str) -> String {
    let e = c.query(sql, &[]).await.expect_err(sql);
    e.code().map(|c| c.code().to_owned()).unwrap_or_else(|| e.to_string())
}

#[tokio::test]
async fn a_row_scoped_credential_reads_only_its_rows_and_is_gone_after_revocation() {
    let db = setup().await;
    let predicate = RowPredicate::parse("customer_id = 42").unwrap();
    let scope = AccessScope::Rows { schema: "billing".into(), table: "invoices".into(), predicate };
    let t = ticket(&request(&db, "r-rows", AccessPath::ReadOnly, scope));
    assert_eq!(t.status(), TicketStatus::Active, "read-only on a scope that is not sensitive");
    let views = t.access().unwrap().views_schema.clone();
    let x = executor(&db);
    let dry = x.activate(&t, &new_password(), true).await.unwrap();
    assert!(dry.password.is_empty() && dry.sql.iter().any(|s| s.contains("'********'")), "{:?}", dry.sql);
    assert!(dry.sql[..3].iter().any(|s| s.contains("lock_timeout")), "a dry run shows what a real run opens with");
    let issued = x.activate(&t, &new_password(), false).await.unwrap();
    assert_eq!(issued.password.len(), 32);
    assert!(!issued.reissued);
    assert!(issued.sql.iter().all(|s| !s.contains(&issued.password)), "the password is never in the SQL shown");
    assert!(format!("{issued:?}").contains("<redacted>"));

    let admin = db.client().await;
    let stored: String =
        admin.query_one("SELECT rolpassword FROM pg_authid WHERE rolname = $1", &[&issued.role]).await.unwrap().get(0);
    assert!(stored.starts_with("SCRAM-SHA-256$"), "the server only ever saw the verifier");
    // an attempt that committed but never recorded the ticket as issued: issuing again
    // finds the ticket's own role and only sets a new password
    let again = x.activate(&t, &new_password(), false).await.unwrap();
    assert!(again.reissued && again.password != issued.password);
    assert_eq!(
        again.sql.iter().filter(|s| s.starts_with("ALTER ROLE") && s.contains("PASSWORD '********'")).count(),
        1
    );
    assert!(!again.sql.iter().any(|s| s.starts_with("CREATE") || s.starts_with("GRANT")), "{:?}", again.sql);
    let issued = again;
    let row = admin
        .query_one(
            "SELECT rolcanlogin, rolconnlimit, rolvaliduntil, rolinherit FROM pg_roles WHERE rolname = $1",
            &[&issued.role],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert_eq!(row.get::<_, i32>(1), 2, "the registry's connection limit");
    let until: DateTime<Utc> = row.get(2);
    assert_eq!(until.timestamp(), t.expires_at().timestamp(), "VALID UNTIL is the expiry");
    assert!(!row.get::<_, bool>(3), "NOINHERIT: nothing but its own grants");

    let me = connect(&db.url_as(&issued.role)).await.expect("the credential logs in");
    let rows = me.query(&format!("SELECT id, customer_id FROM {views}.invoices ORDER BY id"), &[]).await.unwrap();
    let ids: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, [1, 2], "only customer 42's rows");
    assert_eq!(fails_with(&me, "SELECT * FROM billing.invoices").await, "42501", "not the table itself");
    assert_eq!(fails_with(&me, "SELECT * FROM hr.pay").await, "42501", "nothing outside the scope");
    assert_eq!(fails_with(&me, &format!("INSERT INTO {views}.invoices VALUES (9, 42, 1)")).await, "42501", "read-only");
    let rls: bool = admin
        .query_one("SELECT relrowsecurity FROM pg_class WHERE oid = 'billing.invoices'::regclass", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!rls, "row-level security is never switched on for this");

    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(&dir.path().join("state.db")).unwrap();
    let mut ended = t.clone();
    assert!(ended.request_revoke("alice@example.com", now(), "done"));
    store.put_ticket(&ended, &[]).await.unwrap();
    let clock = || Utc::now();
    let outcome =
        revoke_ticket(&store, &x, t.id(), Trigger::Request, &RevokeOptions::default(), false, &clock).await.unwrap();
    let RevokeOutcome::Revoked { executed, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(executed.sessions_terminated, 1);
    assert!(me.query("SELECT 1", &[]).await.is_err(), "its session was ended");
    let left: i64 = admin
        .query_one(
            "SELECT (SELECT count(*) FROM pg_roles WHERE rolname = $1) + (SELECT count(*) FROM pg_namespace WHERE nspname = $2)",
            &[&issued.role, &views],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "role and views are gone");
    let untouched: i64 = admin.query_one("SELECT count(*) FROM billing.invoices", &[]).await.unwrap().get(0);
    assert_eq!(untouched, 3);
}

#[tokio::test]
async fn masked_columns_are_masked_and_a_migration_credential_writes_its_tables_only() {
    let db = setup().await;
    let scope = AccessScope::Tables { schema: "billing".into(), tables: vec!["customers".into(), "invoices".into()] };
    let mut t = ticket(&request(&db, "r-mask", AccessPath::ReadOnly, scope));
    assert_eq!(t.status(), TicketStatus::PendingApproval, "billing.customers is sensitive: one approval");
    t.approve(&grantwarden_core::identity::Actor::operator("bob@example.com"), now()).unwrap();
    assert_eq!(t.status(), TicketStatus::Active);
    let views = t.access().unwrap().views_schema.clone();
    let issued = executor(&db).activate(&t, &new_password(), false).await.unwrap();
    let me = connect(&db.url_as(&issued.role)).await.unwrap();
    let rows = me.query(&format!("SELECT id, email, ssn FROM {views}.customers ORDER BY id"), &[]).await.unwrap();
    let (email, ssn): (Option<String>, String) = (rows[1].get(1), rows[1].get(2));
    assert_eq!(email.as_deref(), Some("al***************"), "partial: the first two characters");
    assert_eq!(ssn.len(), 64, "hash: sha256 hex");
    assert_ne!(ssn, "123-45-6789");
    assert_eq!(rows[0].get::<_, Option<String>>(1), None, "NULL stays NULL");
    assert_eq!(
        fails_with(&me, "SELECT email FROM billing.customers").await,
        "42501",
        "the table itself is out of reach"
    );
    let n: i64 = me.query_one("SELECT count(*) FROM billing.invoices", &[]).await.unwrap().get(0);
    assert_eq!(n, 3, "an unmasked table in scope is granted directly");

    // migration: dual approval, then writes on its tables
    let scope = AccessScope::Tables { schema: "billing".into(), tables: vec!["invoices".into(), "notes".into()] };
    let mut m = ticket(&request(&db, "r-mig", AccessPath::Migration, scope));
    assert_eq!(m.status(), TicketStatus::PendingApproval);
    m.approve(&grantwarden_core::identity::Actor::operator("bob@example.com"), now()).unwrap();
    m.approve(&grantwarden_core::identity::Actor::operator("ciso@example.com"), now()).unwrap();
    assert_eq!(m.status(), TicketStatus::Active);
    let issued = executor(&db).activate(&m, &new_password(), false).await.unwrap();
    let me = connect(&db.url_as(&issued.role)).await.unwrap();
    me.batch_execute("INSERT INTO billing.invoices VALUES (4, 42, 40)").await.unwrap();
    me.batch_execute("INSERT INTO billing.notes (body) VALUES ('serial default')")
        .await
        .expect("USAGE on the owned sequence");
    assert_eq!(fails_with(&me, "DELETE FROM hr.pay").await, "42501");
    assert_eq!(fails_with(&me, "CREATE TABLE billing.x (id int)").await, "42501", "no DDL");
    drop(me);
    drop_roles(&db, &[&issued.role, t.request().role.as_str()]).await;
}

#[tokio::test]
async fn a_schema_scope_reads_masked_tables_masked_and_never_through_a_view_that_reads_them_raw() {
    let db = setup().await;
    db.exec(
        "CREATE VIEW billing.customer_emails AS SELECT id, email, ssn FROM billing.customers;
         CREATE VIEW billing.big_customers AS SELECT * FROM billing.customer_emails WHERE id > 10;
         CREATE VIEW billing.invoice_totals AS SELECT customer_id, sum(total) AS total FROM billing.invoices GROUP BY 1;",
    )
    .await;
    let mut t =
        ticket(&request(&db, "r-schema", AccessPath::ReadOnly, AccessScope::Schema { schema: "billing".into() }));
    t.approve(&grantwarden_core::identity::Actor::operator("bob@example.com"), now()).unwrap();
    assert_eq!(t.status(), TicketStatus::Active);
    let views = t.access().unwrap().views_schema.clone();
    let issued = executor(&db).activate(&t, &new_password(), false).await.unwrap();
    let me = connect(&db.url_as(&issued.role)).await.unwrap();
    let ssn: String =
        me.query_one(&format!("SELECT ssn FROM {views}.customers WHERE id = 42"), &[]).await.unwrap().get(0);
    assert_eq!(ssn.len(), 64, "masked through the ticket's view");
    for raw in ["billing.customers", "billing.customer_emails", "billing.big_customers"] {
        assert_eq!(fails_with(&me, &format!("SELECT ssn FROM {raw}")).await, "42501", "{raw} would show ssn as it is");
    }
    let n: i64 = me.query_one("SELECT count(*) FROM billing.invoice_totals", &[]).await.unwrap().get(0);
    assert_eq!(n, 2, "a view over unmasked tables is in scope");
    me.query("SELECT * FROM billing.notes", &[]).await.expect("the schema's other tables");
    drop(me);
    drop_roles(&db, &[&issued.role]).await;
}

#[tokio::test]
async fn a_hostile_identity_and_predicate_never_reach_the_sql() {
    let db = setup().await;
    let predicate = RowPredicate::parse("customer_id in (42, 7)").unwrap();
    let scope = AccessScope::Rows { schema: "billing".into(), table: "invoices".into(), predicate };
    let mut r = request(&db, "r-hostile", AccessPath::ReadOnly, scope);
    r.identity = "x\"; DROP TABLE billing.invoices; --@evil".into();
    let t = ticket(&r);
    assert!(t.request().role.as_str().starts_with("gw_xdroptablebillinginvoi"), "{}", t.request().role);
    let issued = executor(&db).activate(&t, &new_password(), false).await.unwrap();
    let me = connect(&db.url_as(&issued.role)).await.unwrap();
    let views = &t.access().unwrap().views_schema;
    let n: i64 = me.query_one(&format!("SELECT count(*) FROM {views}.invoices"), &[]).await.unwrap().get(0);
    assert_eq!(n, 3);
    assert!(RowPredicate::parse("customer_id = 42 or 1 = 1").is_err());
    drop(me);
    drop_roles(&db, &[&issued.role]).await;
}

#[tokio::test]
async fn the_login_fails_after_valid_until_even_before_revocation_runs() {
    let db = TestDb::with_passwords().await;
    db.exec("CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int, customer_id int);").await;
    let scope = AccessScope::Tables { schema: "billing".into(), tables: vec!["invoices".into()] };
    let mut r = request(&db, "r-short", AccessPath::ReadOnly, scope);
    r.duration = "3s".into();
    let t = ticket(&r);
    let issued = executor(&db).activate(&t, &new_password(), false).await.unwrap();
    let login = format!("{} password={}", db.url_as(&issued.role), issued.password);
    let me = connect(&login).await.expect("the password logs in while the window lasts");
    me.query("SELECT * FROM billing.invoices", &[]).await.unwrap();
    let wrong = format!("{} password=not-{}", db.url_as(&issued.role), issued.password);
    assert!(connect(&wrong).await.is_err(), "the cluster checks passwords");
    let wait = (t.expires_at() - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(1500);
    tokio::time::sleep(wait).await;
    let late = connect(&login).await.expect_err("VALID UNTIL has passed");
    assert_eq!(late.code().map(|c| c.code()), Some("28P01"), "{late}");
    drop(me);
    drop_roles(&db, &[&issued.role]).await;
}
