//! The SQLite store against a real file: idempotent tickets, conditional
//! updates, finding ages, and many writers on one file.

use std::path::{Path, PathBuf};

use grantwarden_core::finding::FindingKind;
use grantwarden_core::model::Privilege;
use grantwarden_core::snapshot::TargetId;
use grantwarden_core::store::{FindingStore, PutOutcome, TicketStore};
use grantwarden_local::LocalStore;
use grantwarden_testkit::contract::{self, audit_event, finding, now, ticket};

fn fresh() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(&dir.path().join("nested/state.db")).unwrap();
    (dir, store)
}

/// A store file just made in a fresh directory, which lives as long as the `TempDir`.
fn created_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    LocalStore::open(&path).unwrap();
    (dir, path)
}

/// Runs `work(w, store)` for each writer `w` in `0..writers` on its own thread,
/// with its own connection to the store at `path` (as separate CLI processes
/// would have) and its own runtime; returns when every writer is done.
fn on_separate_connections<F, Fut>(path: &Path, writers: usize, work: F)
where
    F: Fn(usize, LocalStore) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()>,
{
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let (path, work) = (path.to_owned(), work.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
                let store = LocalStore::open(&path).unwrap();
                rt.block_on(work(w, store));
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[tokio::test]
async fn tickets_are_idempotent_and_conflicts_are_refused() {
    let (dir, store) = fresh();
    contract::tickets_are_idempotent_and_conflicts_are_refused(&store).await;
    drop(store);
    let reopened = LocalStore::open(&dir.path().join("nested/state.db")).unwrap();
    assert_eq!(reopened.tickets(None).await.unwrap().len(), 1, "tickets survive a reopen");
}

grantwarden_testkit::store_contract_tests! {
    updates_are_conditional_on_the_version_read(fresh().1),
    ticket_writes_keep_their_events_until_journaled(fresh().1),
    findings_keep_first_seen_and_close_when_gone(fresh().1),
    incidents_keep_the_latest_update(fresh().1),
    the_journal_chains_and_verifies(fresh().1),
    replay_records_admit_each_key_once(fresh().1),
}

#[test]
fn many_writers_on_one_file_lose_nothing() {
    let (_dir, path) = created_file();
    on_separate_connections(&path, 8, |w, store| async move {
        for i in 0..25 {
            let t = ticket(&format!("d-{w}-{i}"), Privilege::Select);
            assert!(matches!(store.put_ticket(&t, &[]).await.unwrap(), PutOutcome::Created(_)));
            store.put_ticket(&t, &[]).await.unwrap();
            let target = TargetId::new("orders-prod").unwrap();
            store
                .record_findings(
                    &target,
                    &format!("s-{w}-{i}"),
                    &[finding(&format!("u{w}"), FindingKind::Unauthorized)],
                    now(),
                    false,
                )
                .await
                .unwrap();
        }
    });
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let store = LocalStore::open(&path).unwrap();
    assert_eq!(rt.block_on(store.tickets(None)).unwrap().len(), 200);
    let check: String =
        rusqlite::Connection::open(&path).unwrap().query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn a_store_from_another_schema_version_is_refused() {
    let (_dir, path) = created_file();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'", [])
        .unwrap();
    let err = LocalStore::open(&path).err().expect("refused");
    assert!(err.to_string().contains("schema version"), "{err}");
}

#[test]
fn concurrent_appenders_never_fork_or_gap_the_chain() {
    use grantwarden_core::audit::{AuditJournal, verify};
    let (_dir, path) = created_file();
    on_separate_connections(&path, 8, |w, store| async move {
        for i in 0..25 {
            store.append(audit_event(w * 100 + i)).await.unwrap();
        }
    });
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let store = LocalStore::open(&path).unwrap();
    let events = rt.block_on(store.events("orders-prod")).unwrap();
    let head = rt.block_on(store.head("orders-prod")).unwrap().unwrap();
    assert_eq!((events.len(), head.0), (200, 200));
    verify("orders-prod", &events, Some((head.0, &head.1))).unwrap();
    // deleting a row behind the store's back is caught
    rusqlite::Connection::open(&path).unwrap().execute("DELETE FROM journal WHERE seq = 7", []).unwrap();
    let events = rt.block_on(store.events("orders-prod")).unwrap();
    assert_eq!(verify("orders-prod", &events, Some((head.0, &head.1))).unwrap_err().seq, 7);
}

fn query_event(n: u64) -> grantwarden_core::queries::QueryEvent {
    use grantwarden_core::queries::{QueryEvent, StatementClass};
    let sha = |s: &str| grantwarden_core::statement::sha256(s);
    QueryEvent {
        target: TargetId::new("orders-prod").unwrap(),
        key: sha(&format!("record {n}")),
        at: now() + chrono::Duration::milliseconds(n as i64),
        session: Some("6b16598b.fa2".into()),
        user: Some("gw_alice_0a1b2c3d4e".into()),
        database: Some("orders".into()),
        person: "alice@example.com".into(),
        ticket: Some("t-1".into()),
        class: StatementClass::Read,
        command: "COPY".into(),
        object_type: None,
        object: Some("billing.invoices".into()),
        copy: Some("TO STDOUT".into()),
        rows: n.is_multiple_of(2).then_some(40),
        statement_id: n,
        substatement_id: 1,
        statement_sha256: sha("copy billing.invoices to stdout"),
        statement: "copy billing.invoices to stdout".into(),
        redacted: true,
        batch: sha("batch"),
        line: n + 1,
    }
}

#[test]
fn query_events_read_back_as_written_and_a_record_stored_again_adds_nothing() {
    use grantwarden_core::queries::{QueryFilter, QueryStore};
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let (_dir, store) = fresh();
    let events: Vec<_> = (0..5).map(query_event).collect();
    assert_eq!(rt.block_on(store.put_query_events(&events[..3])).unwrap(), 3);
    assert_eq!(rt.block_on(store.put_query_events(&events)).unwrap(), 2);
    assert_eq!(rt.block_on(store.query_events(&QueryFilter::default())).unwrap(), events);
    let window = QueryFilter { from: Some(events[1].at), to: Some(events[3].at), ..QueryFilter::default() };
    assert_eq!(rt.block_on(store.query_events(&window)).unwrap(), events[1..3]);
    let asked = [(events[4].at, events[4].key.clone()), (events[4].at, query_event(9).key)];
    let known = rt.block_on(store.known_keys(&events[0].target, &asked)).unwrap();
    assert_eq!(known.into_iter().collect::<Vec<_>>(), [events[4].key.clone()]);
}

#[test]
fn a_schema_version_1_store_has_its_query_events_converted_when_opened() {
    use grantwarden_core::queries::{QueryFilter, QueryStore};
    let (_dir, path) = created_file();
    let events: Vec<_> = (0..3).map(query_event).collect();
    {
        // the layout version 1 wrote: one JSON body per event
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP TABLE query_events;
             CREATE TABLE query_events (target TEXT NOT NULL, key TEXT NOT NULL, at TEXT NOT NULL, body TEXT NOT NULL,
                 PRIMARY KEY (target, key));
             CREATE INDEX query_events_by_time ON query_events (target, at);
             UPDATE meta SET value = '1' WHERE key = 'schema_version';",
        )
        .unwrap();
        for e in &events {
            conn.execute(
                "INSERT INTO query_events (target, key, at, body) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![e.target.as_str(), e.key, e.at.to_rfc3339(), serde_json::to_string(e).unwrap()],
            )
            .unwrap();
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let store = LocalStore::open(&path).unwrap();
    assert_eq!(rt.block_on(store.query_events(&QueryFilter::default())).unwrap(), events);
    assert_eq!(rt.block_on(store.put_query_events(&events)).unwrap(), 0, "converted events keep their identity");
    drop(store);
    let version: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, "2");
    LocalStore::open(&path).expect("a converted store opens as it is");
}
