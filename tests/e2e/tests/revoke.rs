//! Revocation against a real PostgreSQL with the local store: every trigger,
//! triggers racing, overlapping tickets, a short-lived role that owns objects
//! in two databases and has an open session, PostgreSQL down then back, a
//! permission error, a grant by another grantor, and a hostile role name.

use std::time::Duration;

use chrono::{DateTime, Utc};
use grantwarden_core::audit::AuditJournal;
use grantwarden_core::backoff::RetryPolicy;
use grantwarden_core::manifest::On;
use grantwarden_core::model::Privilege;
use grantwarden_core::request::RequestObject;
use grantwarden_core::revoke::{RevokeError, RevokeOptions, RevokeOutcome, revoke_ticket};
use grantwarden_core::store::{PutOutcome, TicketStore};
use grantwarden_core::ticket::{RoleLifecycle, Ticket, TicketStatus, Trigger};
use grantwarden_local::LocalStore;
use grantwarden_postgres::session::parse_config;
use grantwarden_postgres::{Executor, Timeouts};
use grantwarden_testkit::{TestDb, contract};
use postgres_protocol::escape::escape_identifier;
use tokio::net::{TcpListener, TcpStream};

const TARGET: &str = "orders-prod";

fn at(minutes: i64) -> DateTime<Utc> {
    "2026-11-22T12:00:00Z".parse::<DateTime<Utc>>().unwrap() + chrono::Duration::minutes(minutes)
}

fn ticket(
    id: &str,
    role: &str,
    on: On,
    schema: Option<&str>,
    name: &str,
    privileges: &[Privilege],
    until: i64,
) -> Ticket {
    let t = contract::active_ticket(id, TARGET, role, name, privileges, at(0), at(until));
    let object = RequestObject { on, schema: schema.map(Into::into), name: Some(name.into()), columns: vec![] };
    contract::as_stored(&t, |t| t["request"]["object"] = serde_json::json!(object))
}

/// The same ticket for a role grantwarden made for it alone.
fn short_lived(t: &Ticket) -> Ticket {
    contract::as_stored(t, |t| t["role_lifecycle"] = serde_json::json!(RoleLifecycle::ShortLived))
}

fn executor_for(url: &str, attempts: u32) -> Executor {
    let timeouts = Timeouts { connect: Duration::from_secs(2), ..Timeouts::default() };
    let retry =
        RetryPolicy { max_attempts: attempts, base: Duration::from_millis(50), cap: Duration::from_millis(200) };
    Executor::new(parse_config(url, &timeouts).unwrap(), timeouts, retry)
}

struct Fixture {
    db: TestDb,
    store: LocalStore,
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

async fn fixture() -> Fixture {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = LocalStore::open(&path).unwrap();
    Fixture { db, store, _dir: dir, path }
}

impl Fixture {
    async fn put(&self, t: &Ticket) {
        assert!(matches!(self.store.put_ticket(t, &[]).await.unwrap(), PutOutcome::Created(_)));
    }

    async fn revoke(&self, x: &Executor, id: &str, trigger: Trigger, now: i64) -> Result<RevokeOutcome, RevokeError> {
        let clock = move || at(now);
        revoke_ticket(&self.store, x, id, trigger, &RevokeOptions::default(), false, &clock).await
    }

    /// `privilege` of `role` on a table, or on the schema when `table` is empty.
    async fn has(&self, role: &str, privilege: &str, schema: &str, table: &str) -> bool {
        let c = self.db.client().await;
        let row = if table.is_empty() {
            c.query_one("SELECT has_schema_privilege($1, $2, $3)", &[&role, &schema, &privilege]).await
        } else {
            let qualified = format!("{}.{}", escape_identifier(schema), escape_identifier(table));
            c.query_one("SELECT has_table_privilege($1, $2, $3)", &[&role, &qualified, &privilege]).await
        };
        row.unwrap().get(0)
    }

    async fn events(&self, kind: &str) -> Vec<serde_json::Value> {
        self.store
            .events(TARGET)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind.as_str() == kind)
            .map(|e| e.detail)
            .collect()
    }

    async fn status(&self, id: &str) -> Ticket {
        self.store.ticket(id).await.unwrap().unwrap().value
    }
}

#[tokio::test]
async fn a_temporary_grant_is_gone_after_expiry_through_each_trigger_and_overlaps_are_kept() {
    let f = fixture().await;
    let roles: Vec<String> = ["lease", "sched", "sweep", "req"].iter().map(|r| f.db.role(r)).collect();
    let mut sql = "CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int); CREATE TABLE billing.ledger (id int);
                   CREATE SCHEMA hr; CREATE TABLE hr.pay (id int);"
        .to_owned();
    for r in &roles {
        let r = escape_identifier(r);
        sql.push_str(&format!(
            "CREATE ROLE {r}; GRANT USAGE ON SCHEMA billing TO {r}; GRANT SELECT ON ALL TABLES IN SCHEMA billing TO {r};
             GRANT USAGE ON SCHEMA hr TO {r}; GRANT SELECT ON hr.pay TO {r};"
        ));
    }
    f.db.exec(&sql).await;
    let x = executor_for(&f.db.url(), 3);
    let triggers = [Trigger::Lease, Trigger::Schedule, Trigger::Sweeper, Trigger::Request];
    for (r, trigger) in roles.iter().zip(triggers) {
        let mut t =
            ticket(&format!("t-{r}"), r, On::Schema, None, "billing", &[Privilege::Usage, Privilege::Select], 60);
        if trigger == Trigger::Request {
            assert!(t.request_revoke("ciso@example.com", at(30), "left the team"));
        }
        f.put(&t).await;
    }
    // the first role also holds an overlapping ticket on billing.ledger until 02:00
    let overlap = ticket("t-overlap", &roles[0], On::Table, Some("billing"), "ledger", &[Privilege::Select], 120);
    f.put(&overlap).await;

    for (r, trigger) in roles.iter().zip(triggers) {
        let id = format!("t-{r}");
        let outcome = f.revoke(&x, &id, trigger, 61).await.unwrap();
        let RevokeOutcome::Revoked { ticket, executed } = outcome else { panic!("{r}: {outcome:?}") };
        assert_eq!(ticket.status(), TicketStatus::Revoked);
        let rev = ticket.revocation().unwrap();
        assert_eq!(rev.trigger, trigger);
        let expected_latency = if trigger == Trigger::Request { 31 * 60_000 } else { 60_000 };
        assert_eq!(rev.latency_ms, expected_latency, "{trigger}: from the end of the window to the commit");
        assert_eq!(rev.statements, executed.plan.len(), "{trigger}: changes run, not framing statements");
        assert!(rev.statements >= 2, "{trigger}: USAGE and SELECT at least: {:?}", executed.plan);
        assert!(!f.has(r, "USAGE", "billing", "").await, "{trigger}: schema usage is gone");
        assert!(!f.has(r, "SELECT", "billing", "invoices").await, "{trigger}: table select is gone");
        assert!(f.has(r, "SELECT", "hr", "pay").await, "{trigger}: what the ticket did not cover stays");
        assert!(f.has(r, "USAGE", "hr", "").await);
        assert!(executed.sql.iter().any(|s| s.starts_with("SET LOCAL lock_timeout")), "{:?}", executed.sql);
        if trigger == Trigger::Lease {
            assert!(f.has(r, "SELECT", "billing", "ledger").await, "kept for the overlapping ticket");
            assert_eq!(executed.plan.kept.len(), 1);
            assert!(executed.plan.kept[0].reason.contains("t-overlap"));
        }
        // a second trigger later finds it ended and runs nothing
        let again = f.revoke(&x, &id, Trigger::Sweeper, 62).await.unwrap();
        assert_eq!(again, RevokeOutcome::AlreadyEnded(TicketStatus::Revoked));
    }
    let revoked = f.events("ticket.revoked").await;
    assert_eq!(revoked.len(), 4);
    for d in &revoked {
        let sql: Vec<&str> = d["sql"].as_array().unwrap().iter().filter_map(|s| s.as_str()).collect();
        assert!(sql.iter().any(|s| s.starts_with("REVOKE USAGE ON SCHEMA \"billing\"")), "{sql:?}");
        assert!(sql.iter().any(|s| s.starts_with("REVOKE SELECT ON TABLE \"billing\".\"invoices\"")), "{sql:?}");
        assert!(sql.contains(&"COMMIT"), "{sql:?}");
    }

    // the overlapping ticket's own end takes the rest
    let RevokeOutcome::Revoked { .. } = f.revoke(&x, "t-overlap", Trigger::Sweeper, 121).await.unwrap() else {
        panic!("the overlapping ticket revokes at its own expiry")
    };
    assert!(!f.has(&roles[0], "SELECT", "billing", "ledger").await);
}

#[tokio::test]
async fn three_triggers_racing_revoke_once() {
    let f = fixture().await;
    let r = f.db.role("race");
    f.db.exec(&format!(
        "CREATE ROLE {r}; CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int);
         GRANT USAGE ON SCHEMA billing TO {r}; GRANT SELECT ON billing.invoices TO {r};",
        r = f.db.ident("race")
    ))
    .await;
    f.put(&ticket("t-race", &r, On::Schema, None, "billing", &[Privilege::Usage, Privilege::Select], 10)).await;
    let (a, b, c) = (executor_for(&f.db.url(), 3), executor_for(&f.db.url(), 3), executor_for(&f.db.url(), 3));
    let (ra, rb, rc) = tokio::join!(
        f.revoke(&a, "t-race", Trigger::Lease, 11),
        f.revoke(&b, "t-race", Trigger::Schedule, 11),
        f.revoke(&c, "t-race", Trigger::Sweeper, 11),
    );
    let outcomes = [ra.unwrap(), rb.unwrap(), rc.unwrap()];
    let revoked = outcomes.iter().filter(|o| matches!(o, RevokeOutcome::Revoked { .. })).count();
    let ended = outcomes.iter().filter(|o| **o == RevokeOutcome::AlreadyEnded(TicketStatus::Revoked)).count();
    assert_eq!((revoked, ended), (1, 2), "{outcomes:#?}");
    assert_eq!(f.events("ticket.revoked").await.len(), 1, "one revocation on the record");
    assert_eq!(ran_on_record(&f, "REVOKE USAGE ON SCHEMA").await, 1, "what ran is on the record, once");
    assert!(!f.has(&r, "USAGE", "billing", "").await);
    let t = f.status("t-race").await;
    assert_eq!(t.history().iter().filter(|e| e.what == "revoked").count(), 1);
}

/// How many journaled revocations (`ticket.revoked`, or `revocation.executed` of a
/// run that lost the race to record the end) hold a statement starting with `prefix`.
async fn ran_on_record(f: &Fixture, prefix: &str) -> usize {
    let mut events = f.events("ticket.revoked").await;
    events.extend(f.events("revocation.executed").await);
    events
        .iter()
        .filter(|d| d["sql"].as_array().is_some_and(|s| s.iter().any(|l| l.as_str().unwrap().starts_with(prefix))))
        .count()
}

#[tokio::test]
async fn three_triggers_racing_on_a_short_lived_role_drop_it_once_and_none_fails() {
    let f = fixture().await;
    let r = f.db.role("jitrace");
    let ri = f.db.ident("jitrace");
    f.db.exec(&format!(
        "CREATE ROLE {ri} LOGIN; CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int);
         GRANT USAGE, CREATE ON SCHEMA billing TO {ri}; GRANT SELECT ON billing.invoices TO {ri};
         SET ROLE {ri}; CREATE TABLE billing.scratch (id int); RESET ROLE;"
    ))
    .await;
    let t = short_lived(&ticket("t-jitrace", &r, On::Table, Some("billing"), "invoices", &[Privilege::Select], 10));
    f.put(&t).await;
    let (a, b, c) = (executor_for(&f.db.url(), 5), executor_for(&f.db.url(), 5), executor_for(&f.db.url(), 5));
    let (ra, rb, rc) = tokio::join!(
        f.revoke(&a, "t-jitrace", Trigger::Lease, 11),
        f.revoke(&b, "t-jitrace", Trigger::Schedule, 11),
        f.revoke(&c, "t-jitrace", Trigger::Sweeper, 11),
    );
    let outcomes = [ra.unwrap(), rb.unwrap(), rc.unwrap()];
    let revoked = outcomes.iter().filter(|o| matches!(o, RevokeOutcome::Revoked { .. })).count();
    let ended = outcomes.iter().filter(|o| **o == RevokeOutcome::AlreadyEnded(TicketStatus::Revoked)).count();
    assert_eq!((revoked, ended), (1, 2), "the role lock makes the others wait, then find it gone: {outcomes:#?}");
    assert_eq!(f.status("t-jitrace").await.status(), TicketStatus::Revoked);
    assert_eq!(ran_on_record(&f, "DROP ROLE IF EXISTS").await, 1);
    let gone: i64 =
        f.db.client().await.query_one("SELECT count(*) FROM pg_roles WHERE rolname = $1", &[&r]).await.unwrap().get(0);
    assert_eq!(gone, 0);
}

#[tokio::test]
async fn a_short_lived_role_with_objects_in_two_databases_and_an_open_session_is_dropped() {
    let f = fixture().await;
    let r = f.db.role("jit");
    let ri = f.db.ident("jit");
    let other = format!("{}_other", f.db.prefix);
    f.db.exec(&format!(
        "CREATE ROLE {ri} LOGIN; CREATE ROLE {readers}; GRANT {readers} TO {ri};
         CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int);
         GRANT USAGE, CREATE ON SCHEMA billing TO {ri}; GRANT SELECT ON billing.invoices TO {ri};
         SET ROLE {ri}; CREATE TABLE billing.scratch (id int); RESET ROLE;",
        readers = f.db.ident("readers"),
    ))
    .await;
    f.db.exec(&format!("CREATE DATABASE {}", escape_identifier(&other))).await;
    let other_url = f.db.url().replace(&f.db.name, &other);
    let oc = grantwarden_testkit::connect(&other_url).await.unwrap();
    oc.batch_execute(&format!("CREATE TABLE owned_elsewhere (id int); ALTER TABLE owned_elsewhere OWNER TO {ri}"))
        .await
        .unwrap();
    let session = grantwarden_testkit::connect(&f.db.url_as(&r)).await.expect("the role can log in");
    session.batch_execute("SELECT 1 FROM billing.invoices").await.unwrap();

    let t = short_lived(&ticket("t-jit", &r, On::Table, Some("billing"), "invoices", &[Privilege::Select], 30));
    f.put(&t).await;
    let x = executor_for(&f.db.url(), 3);
    let outcome = f.revoke(&x, "t-jit", Trigger::Schedule, 30).await.unwrap();
    let RevokeOutcome::Revoked { executed, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(executed.sessions_terminated, 1, "{:?}", executed.sql);
    assert!(executed.sql.iter().any(|s| s.contains("NOLOGIN VALID UNTIL")));
    assert!(executed.sql.contains(&format!("-- in database {}", escape_identifier(&other))));

    assert!(session.batch_execute("SELECT 1").await.is_err(), "the open session was ended");
    let admin = f.db.client().await;
    let gone: i64 = admin.query_one("SELECT count(*) FROM pg_roles WHERE rolname = $1", &[&r]).await.unwrap().get(0);
    assert_eq!(gone, 0, "the role is dropped");
    // never handed to the admin: what a short-lived role made goes with it
    let left: i64 =
        admin.query_one("SELECT count(*) FROM pg_tables WHERE tablename = 'scratch'", &[]).await.unwrap().get(0);
    assert_eq!(left, 0, "what it owned here was dropped, not reassigned");
    let left: i64 =
        oc.query_one("SELECT count(*) FROM pg_tables WHERE tablename = 'owned_elsewhere'", &[]).await.unwrap().get(0);
    assert_eq!(left, 0, "and in the other database too");
    assert!(!executed.sql.iter().any(|s| s.contains("REASSIGN")), "{:?}", executed.sql);
    assert!(grantwarden_testkit::connect(&f.db.url_as(&r)).await.is_err(), "no new login");
    drop(oc);
    admin.batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", escape_identifier(&other))).await.unwrap();

    let t = f.status("t-jit").await;
    assert_eq!(t.status(), TicketStatus::Revoked);
    // the lease trigger arriving late finds it ended and runs nothing
    let late = f.revoke(&x, "t-jit", Trigger::Lease, 90).await.unwrap();
    assert_eq!(late, RevokeOutcome::AlreadyEnded(TicketStatus::Revoked));
    assert_eq!(f.events("revocation.executed").await.len(), 0);
}

/// Forwards TCP to PostgreSQL once started: until then, the port refuses connections.
async fn proxy(listener: TcpListener, upstream: String) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else { return };
        let upstream = upstream.clone();
        tokio::spawn(async move {
            if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

#[tokio::test]
async fn postgres_down_during_revocation_then_back_revokes_after_retry_and_loses_nothing() {
    let f = fixture().await;
    let r = f.db.role("down");
    f.db.exec(&format!(
        "CREATE ROLE {r}; CREATE SCHEMA billing; GRANT USAGE ON SCHEMA billing TO {r};",
        r = f.db.ident("down")
    ))
    .await;
    f.put(&ticket("t-down", &r, On::Schema, None, "billing", &[Privilege::Usage], 10)).await;
    let config = parse_config(&f.db.url(), &Timeouts::default()).unwrap();
    let (host, port) = match (config.get_hosts().first(), config.get_ports().first()) {
        (Some(tokio_postgres::config::Host::Tcp(h)), Some(p)) => (h.clone(), *p),
        _ => ("127.0.0.1".to_owned(), 5432),
    };
    // a port nobody listens on yet: PostgreSQL is "down"
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_port = free.local_addr().unwrap().port();
    drop(free);
    let down_url: Vec<String> =
        f.db.url()
            .split(' ')
            .map(|kv| match kv.split_once('=') {
                Some(("host", _)) => "host=127.0.0.1".to_owned(),
                Some(("port", _)) => format!("port={proxy_port}"),
                _ => kv.to_owned(),
            })
            .collect();
    let down_url = down_url.join(" ");
    let x = executor_for(&down_url, 3);

    let err = f.revoke(&x, "t-down", Trigger::Lease, 11).await.unwrap_err();
    let RevokeError::Transient { error, .. } = &err else { panic!("{err}") };
    assert_eq!(error.attempts, 3, "retried within the invocation: {err}");
    let t = f.status("t-down").await;
    assert_eq!(t.status(), TicketStatus::Active, "nothing recorded: the ticket stays due for the next trigger");
    assert!(t.is_due(at(11)));
    assert!(f.has(&r, "USAGE", "billing", "").await);

    // back up, a little after the next attempt starts: the retry inside one invocation gets through
    let started = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let listener = TcpListener::bind(("127.0.0.1", proxy_port)).await.unwrap();
        proxy(listener, format!("{host}:{port}")).await;
    });
    let x = executor_for(&down_url, 20);
    let outcome = f.revoke(&x, "t-down", Trigger::Sweeper, 12).await.unwrap();
    let RevokeOutcome::Revoked { ticket, executed } = outcome else { panic!("{outcome:?}") };
    assert!(executed.attempts > 1, "it took retries: {}", executed.attempts);
    assert_eq!(ticket.revocation().unwrap().latency_ms, 2 * 60_000);
    assert!(!f.has(&r, "USAGE", "billing", "").await);
    started.abort();
}

#[tokio::test]
async fn a_standing_role_with_an_open_session_loses_it_after_the_commit_and_keeps_the_role() {
    let f = fixture().await;
    let r = f.db.role("live");
    f.db.exec(&format!(
        "CREATE ROLE {r} LOGIN; CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int);
         GRANT USAGE ON SCHEMA billing TO {r}; GRANT SELECT ON billing.invoices TO {r};",
        r = f.db.ident("live")
    ))
    .await;
    let t = ticket("t-live", &r, On::Schema, None, "billing", &[Privilege::Usage, Privilege::Select], 10);
    f.put(&t).await;
    // the user is working in a live connection when the window ends
    let session = grantwarden_testkit::connect(&f.db.url_as(&r)).await.expect("the role can log in");
    session.batch_execute("BEGIN; SELECT 1 FROM billing.invoices").await.unwrap();
    let x = executor_for(&f.db.url(), 3);
    let RevokeOutcome::Revoked { executed, .. } = f.revoke(&x, "t-live", Trigger::Lease, 11).await.unwrap() else {
        panic!("revoked")
    };
    assert_eq!(executed.sessions_terminated, 1, "{:?}", executed.sql);
    assert!(session.batch_execute("SELECT 1 FROM billing.invoices").await.is_err(), "the live connection is ended");
    assert!(!f.has(&r, "SELECT", "billing", "invoices").await);
    // a standing role outlives its ticket: it may log in again, and can no longer read
    let again = grantwarden_testkit::connect(&f.db.url_as(&r)).await.expect("the role still exists");
    let denied = again.batch_execute("SELECT 1 FROM billing.invoices").await.unwrap_err();
    assert_eq!(denied.code(), Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE), "{denied}");
}

#[tokio::test]
async fn a_connection_lost_inside_the_revoking_transaction_is_retried_and_loses_nothing() {
    let f = fixture().await;
    let (r, other) = (f.db.role("midway"), f.db.role("bystander"));
    f.db.exec(&format!(
        "CREATE ROLE {r}; CREATE ROLE {o}; CREATE SCHEMA billing; GRANT USAGE ON SCHEMA billing TO {r};",
        r = f.db.ident("midway"),
        o = f.db.ident("bystander")
    ))
    .await;
    f.put(&ticket("t-midway", &r, On::Schema, None, "billing", &[Privilege::Usage], 10)).await;
    // another transaction is changing the schema's ACL: the REVOKE waits on its row
    let blocker = f.db.client().await;
    blocker
        .batch_execute(&format!("BEGIN; GRANT USAGE ON SCHEMA billing TO {}", escape_identifier(&other)))
        .await
        .unwrap();
    let timeouts = Timeouts { lock: Duration::from_secs(30), ..Timeouts::default() };
    let retry = RetryPolicy { max_attempts: 5, base: Duration::from_millis(50), cap: Duration::from_millis(200) };
    let x = Executor::new(parse_config(&f.db.url(), &timeouts).unwrap(), timeouts, retry);
    let revoking = f.revoke(&x, "t-midway", Trigger::Lease, 11);
    let kill = async {
        // the server drops the revoking connection in the middle of its transaction
        let watcher = f.db.client().await;
        let waiting = "SELECT pid FROM pg_stat_activity WHERE datname = current_database()
                        AND wait_event_type = 'Lock' AND query LIKE 'REVOKE USAGE ON SCHEMA%'";
        let pid: i32 = loop {
            if let Some(row) = watcher.query_opt(waiting, &[]).await.unwrap() {
                break row.get(0);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let killed: bool = watcher.query_one("SELECT pg_terminate_backend($1)", &[&pid]).await.unwrap().get(0);
        assert!(killed);
        // the retry waits on the same row, then goes through once the other transaction commits
        loop {
            let again = watcher.query_opt(waiting, &[]).await.unwrap();
            if again.is_some_and(|row| row.get::<_, i32>(0) != pid) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        blocker.batch_execute("COMMIT").await.unwrap();
    };
    let (outcome, ()) = tokio::join!(revoking, kill);
    let RevokeOutcome::Revoked { ticket, executed } = outcome.unwrap() else { panic!("revoked after the retry") };
    assert!(executed.attempts >= 2, "the first attempt was cut off: {}", executed.attempts);
    assert_eq!(ticket.status(), TicketStatus::Revoked);
    assert!(!f.has(&r, "USAGE", "billing", "").await, "revoked");
    assert!(f.has(&other, "USAGE", "billing", "").await, "the other transaction's grant is intact");
    assert_eq!(f.events("ticket.revoked").await.len(), 1, "one revocation on record");
}

#[tokio::test]
async fn a_permission_error_fails_for_good_with_a_finding_and_an_audit_event() {
    let f = fixture().await;
    let r = f.db.role("perm");
    let weak = f.db.role("weak");
    f.db.exec(&format!(
        "CREATE ROLE {r}; CREATE ROLE {w} LOGIN; CREATE SCHEMA billing; GRANT USAGE ON SCHEMA billing TO {r};
         GRANT CONNECT ON DATABASE {db} TO {w};",
        r = f.db.ident("perm"),
        w = f.db.ident("weak"),
        db = escape_identifier(&f.db.name),
    ))
    .await;
    f.put(&ticket("t-perm", &r, On::Schema, None, "billing", &[Privilege::Usage], 10)).await;
    let x = executor_for(&f.db.url_as(&weak), 5);
    let outcome = f.revoke(&x, "t-perm", Trigger::Lease, 11).await.unwrap();
    let RevokeOutcome::Failed { ticket, error } = outcome else { panic!("{outcome:?}") };
    assert_eq!(error.attempts, 1, "a permission error is not retried");
    assert!(error.message.contains("42501"), "{}", error.message);
    assert_eq!(ticket.status(), TicketStatus::RevocationFailed, "never revoked");
    assert_eq!(f.status("t-perm").await.status(), TicketStatus::RevocationFailed);
    assert!(f.has(&r, "USAGE", "billing", "").await, "still held, and said so");
    let failed = f.events("ticket.revocation_failed").await;
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["error"].as_str().unwrap().contains("permission denied"));
    assert!(f.events("ticket.revoked").await.is_empty());
    let db = rusqlite::Connection::open(&f.path).unwrap();
    let (severity, detail): (String, String) = db
        .query_row(
            "SELECT json_extract(body, '$.severity'), json_extract(body, '$.detail') FROM findings WHERE open = 1 AND key LIKE '%expired_exception%'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!(severity, "critical");
    assert!(detail.contains("revocation failed"), "{detail}");
    // a sweep later does not hammer it: it waits for a person
    assert_eq!(
        f.revoke(&x, "t-perm", Trigger::Sweeper, 12).await.unwrap(),
        RevokeOutcome::AlreadyEnded(TicketStatus::RevocationFailed)
    );
    // the operator fixes the privilege problem and runs revoke again: now it goes
    let strong = executor_for(&f.db.url(), 3);
    let RevokeOutcome::Revoked { ticket, .. } = f.revoke(&strong, "t-perm", Trigger::Operator, 30).await.unwrap()
    else {
        panic!("the operator's retry revokes")
    };
    assert_eq!(ticket.status(), TicketStatus::Revoked);
    let whats: Vec<&str> = ticket.history().iter().map(|e| e.what.as_str()).collect();
    assert_eq!(whats, ["revocation_failed", "revoked"]);
    assert!(!f.has(&r, "USAGE", "billing", "").await);
}

#[tokio::test]
async fn a_privilege_granted_by_another_grantor_is_never_reported_revoked() {
    let f = fixture().await;
    let (owner, mid, r) = (f.db.role("owner"), f.db.role("mid"), f.db.role("alice"));
    f.db.exec(&format!(
        "CREATE ROLE {o} LOGIN; CREATE ROLE {m}; CREATE ROLE {a};
         GRANT CONNECT ON DATABASE {db} TO {o};
         CREATE SCHEMA billing AUTHORIZATION {o};
         SET ROLE {o}; GRANT USAGE ON SCHEMA billing TO {m} WITH GRANT OPTION; RESET ROLE;
         SET ROLE {m}; GRANT USAGE ON SCHEMA billing TO {a}; RESET ROLE;",
        o = f.db.ident("owner"),
        m = f.db.ident("mid"),
        a = f.db.ident("alice"),
        db = escape_identifier(&f.db.name),
    ))
    .await;
    let _ = mid;
    f.put(&ticket("t-grantor", &r, On::Schema, None, "billing", &[Privilege::Usage], 10)).await;
    // the owner's REVOKE only removes the owner's own grants: PostgreSQL warns, the privilege stays
    let x = executor_for(&f.db.url_as(&owner), 3);
    let outcome = f.revoke(&x, "t-grantor", Trigger::Lease, 11).await.unwrap();
    let RevokeOutcome::Failed { error, .. } = outcome else { panic!("{outcome:?}") };
    assert!(error.message.contains("another grantor"), "{}", error.message);
    assert!(f.has(&r, "USAGE", "billing", "").await);
}

#[tokio::test]
async fn a_hostile_role_name_is_quoted_and_revoked_like_any_other() {
    let f = fixture().await;
    let hostile = format!("{}_x\"; DROP TABLE billing.invoices; --", f.db.prefix);
    let q = escape_identifier(&hostile);
    f.db.exec(&format!(
        "CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int);
         CREATE ROLE {q}; GRANT USAGE ON SCHEMA billing TO {q}; GRANT SELECT ON billing.invoices TO {q};"
    ))
    .await;
    f.put(&ticket("t-hostile", &hostile, On::Schema, None, "billing", &[Privilege::Usage, Privilege::Select], 10))
        .await;
    let x = executor_for(&f.db.url(), 3);
    let dry = {
        let clock = || at(11);
        revoke_ticket(&f.store, &x, "t-hostile", Trigger::Operator, &RevokeOptions::default(), true, &clock)
            .await
            .unwrap()
    };
    let RevokeOutcome::DryRun(plan) = dry else { panic!("{dry:?}") };
    assert!(plan.sql.iter().any(|s| s.contains(&q)), "{:?}", plan.sql);
    assert!(f.has(&hostile, "USAGE", "billing", "").await, "a dry run changes nothing");
    assert_eq!(f.events("revocation.planned").await.len(), 1, "and is audited");

    let RevokeOutcome::Revoked { .. } = f.revoke(&x, "t-hostile", Trigger::Lease, 11).await.unwrap() else {
        panic!("revoked")
    };
    assert!(!f.has(&hostile, "USAGE", "billing", "").await);
    let still: i64 = f.db.client().await.query_one("SELECT count(*) FROM billing.invoices", &[]).await.unwrap().get(0);
    assert_eq!(still, 0, "the table is still there");
}
