//! Audit journal appends per second: the local chain (SQLite, one
//! `BEGIN IMMEDIATE` transaction per append) and the DynamoDB chain against
//! moto (a conditional put on the next seq, then the head), each with one
//! writer and with several racing for the same chain head.
//!
//! `scripts/bench-audit` runs it (it starts moto); figures are printed, never
//! asserted. Set `BENCH_APPENDS` to change the number of appends per run.

use std::sync::Arc;
use std::time::Instant;

use grantwarden_aws::{Clients, DynamoStore, provision};
use grantwarden_core::audit::{AuditJournal, verify};
use grantwarden_local::LocalStore;
use grantwarden_testkit::{contract, moto};

fn appends() -> usize {
    std::env::var("BENCH_APPENDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000)
}

fn report(what: &str, writers: usize, n: usize, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{what:<28} writers {writers:>2}  appends {n:>5}  {secs:>7.2} s  {:>8.0} appends/s  {:>7.2} ms/append",
        n as f64 / secs,
        secs * 1000.0 / n as f64
    );
}

async fn check<J: AuditJournal>(store: &J, n: usize) {
    let events = store.events("orders-prod").await.unwrap();
    let head = store.head("orders-prod").await.unwrap().unwrap();
    assert_eq!(events.len(), n, "every append landed");
    verify("orders-prod", &events, Some((head.0, &head.1))).expect("the chain verifies after the run");
}

async fn local(writers: usize, n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    LocalStore::open(&path).unwrap();
    let started = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let path = path.clone();
            std::thread::spawn(move || {
                // one connection per writer, as separate CLI processes would have
                let store = LocalStore::open(&path).unwrap();
                let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
                rt.block_on(async {
                    for i in 0..n / writers {
                        store.append(contract::audit_event(w * n + i)).await.unwrap();
                    }
                });
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    report("local (SQLite, WAL)", writers, n / writers * writers, started);
    check(&LocalStore::open(&path).unwrap(), n / writers * writers).await;
}

async fn dynamodb(clients: &Clients, writers: usize, n: usize) {
    let settings = provision::create(clients, &moto::unique_prefix("bench")).await.unwrap();
    let store = Arc::new(DynamoStore::new(clients, &settings));
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..n / writers {
                    store.append(contract::audit_event(w * n + i)).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    report("DynamoDB (moto)", writers, n / writers * writers, started);
    check(store.as_ref(), n / writers * writers).await;
}

#[tokio::main]
async fn main() {
    let n = appends();
    println!(
        "audit appends, {} profile, {} cores",
        if cfg!(debug_assertions) { "debug" } else { "release" },
        std::thread::available_parallelism().map_or(1, |p| p.get())
    );
    for writers in [1, 4, 16] {
        local(writers, n).await;
    }
    let clients = Clients::for_endpoint(&moto::endpoint()).await;
    for writers in [1, 4, 16] {
        dynamodb(&clients, writers, n / 4).await;
    }
}
