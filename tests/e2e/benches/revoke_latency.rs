//! Revocation latency, local path: N tickets expire at the same instant and
//! the sweeper revokes them against a real PostgreSQL, one at a time (as
//! `grantwarden revoke --due` and `watch` do) and with several revocations in
//! flight. Latency is the ticket's own record: from the expiry to the commit
//! of its revoking transaction (ending its sessions comes after), so a ticket
//! late in the queue carries the wait of those before it.
//!
//! `scripts/bench-revoke` runs it; figures are printed, never asserted (beyond
//! every ticket ending revoked and every grant gone). `BENCH_TICKETS` sets N.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use grantwarden_core::backoff::RetryPolicy;
use grantwarden_core::model::Privilege;
use grantwarden_core::revoke::{RevokeOptions, RevokeOutcome, due, revoke_ticket};
use grantwarden_core::store::TicketStore;
use grantwarden_core::ticket::{Ticket, Trigger};
use grantwarden_local::LocalStore;
use grantwarden_postgres::session::parse_config;
use grantwarden_postgres::{Executor, Timeouts};
use grantwarden_testkit::{TestDb, contract};
use postgres_protocol::escape::escape_identifier;
use tokio::sync::Semaphore;

fn tickets() -> usize {
    std::env::var("BENCH_TICKETS").ok().and_then(|v| v.parse().ok()).unwrap_or(200)
}

fn ticket(id: &str, role: &str, expires: chrono::DateTime<Utc>) -> Ticket {
    let privileges = [Privilege::Usage, Privilege::Select];
    contract::active_ticket(id, "bench", role, "billing", &privileges, expires - chrono::Duration::hours(1), expires)
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn run(db: &TestDb, n: usize, in_flight: usize) {
    let roles: Vec<String> = (0..n).map(|i| db.role(&format!("c{in_flight}_r{i}"))).collect();
    let mut sql = String::new();
    for r in &roles {
        let r = escape_identifier(r);
        sql.push_str(&format!(
            "CREATE ROLE {r}; GRANT USAGE ON SCHEMA billing TO {r}; GRANT SELECT ON ALL TABLES IN SCHEMA billing TO {r};"
        ));
    }
    db.exec(&sql).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalStore::open(&dir.path().join("state.db")).unwrap());
    let expiry = Utc::now();
    for (i, r) in roles.iter().enumerate() {
        store.put_ticket(&ticket(&format!("t{in_flight}-{i}"), r, expiry), &[]).await.unwrap();
    }
    let timeouts = Timeouts::default();
    let executor =
        Arc::new(Executor::new(parse_config(&db.url(), &timeouts).unwrap(), timeouts, RetryPolicy::default()));
    let started = Instant::now();
    let all = store.tickets(None).await.unwrap();
    let ids: Vec<String> = due(&all, Utc::now()).into_iter().map(|t| t.id().to_owned()).collect();
    assert_eq!(ids.len(), n);
    let gate = Arc::new(Semaphore::new(in_flight));
    let mut tasks = tokio::task::JoinSet::new();
    for id in ids {
        let (store, executor, gate) = (store.clone(), executor.clone(), gate.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            let clock = Utc::now;
            revoke_ticket(&*store, &*executor, &id, Trigger::Sweeper, &RevokeOptions::default(), false, &clock).await
        });
    }
    let mut latencies = Vec::with_capacity(n);
    while let Some(done) = tasks.join_next().await {
        match done.unwrap().unwrap() {
            RevokeOutcome::Revoked { ticket, .. } => latencies.push(ticket.revocation().unwrap().latency_ms),
            other => panic!("every ticket revokes: {other:?}"),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let left: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM pg_roles r WHERE r.rolname LIKE $1 AND has_schema_privilege(r.oid, 'billing', 'USAGE')",
            &[&format!("{}\\_c{in_flight}\\_%", db.prefix)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "every grant is gone");
    println!(
        "local sweeper  in flight {in_flight:>2}  tickets {n:>5}  {secs:>7.2} s  {:>7.1} revocations/s  latency p50 {:>6} ms  p99 {:>6} ms  max {:>6} ms",
        n as f64 / secs,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let db = TestDb::new().await;
        let mut tables = String::from("CREATE SCHEMA billing;");
        for t in 0..20 {
            tables.push_str(&format!("CREATE TABLE billing.t{t} (id int);"));
        }
        db.exec(&tables).await;
        let n = tickets();
        println!("{n} tickets expiring at once; each role holds USAGE on the schema and SELECT on its 20 tables (21 REVOKEs per ticket)");
        for in_flight in [1, 4, 8] {
            run(&db, n, in_flight).await;
        }
    });
}
