//! The SQLite store against a real file: idempotent tickets, conditional
//! updates, finding ages, and many writers on one file.

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

#[tokio::test]
async fn tickets_are_idempotent_and_conflicts_are_refused() {
    let (dir, store) = fresh();
    contract::tickets_are_idempotent_and_conflicts_are_refused(&store).await;
    drop(store);
    let reopened = LocalStore::open(&dir.path().join("nested/state.db")).unwrap();
    assert_eq!(reopened.tickets(None).await.unwrap().len(), 1, "tickets survive a reopen");
}

#[tokio::test]
async fn updates_are_conditional_on_the_version_read() {
    contract::updates_are_conditional_on_the_version_read(&fresh().1).await;
}

#[tokio::test]
async fn findings_keep_first_seen_and_close_when_gone() {
    contract::findings_keep_first_seen_and_close_when_gone(&fresh().1).await;
}

#[tokio::test]
async fn incidents_keep_the_latest_update() {
    contract::incidents_keep_the_latest_update(&fresh().1).await;
}

#[tokio::test]
async fn the_journal_chains_and_verifies() {
    contract::the_journal_chains_and_verifies(&fresh().1).await;
}

#[tokio::test]
async fn replay_records_admit_each_key_once() {
    contract::replay_records_admit_each_key_once(&fresh().1).await;
}

#[test]
fn many_writers_on_one_file_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    LocalStore::open(&path).unwrap();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let path = path.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
                // each writer has its own connection, as separate CLI processes would
                let store = LocalStore::open(&path).unwrap();
                rt.block_on(async {
                    for i in 0..25 {
                        let t = ticket(&format!("d-{w}-{i}"), Privilege::Select);
                        assert!(matches!(store.put_ticket(&t).await.unwrap(), PutOutcome::Created(_)));
                        store.put_ticket(&t).await.unwrap();
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
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let store = LocalStore::open(&path).unwrap();
    assert_eq!(rt.block_on(store.tickets(None)).unwrap().len(), 200);
    let check: String =
        rusqlite::Connection::open(&path).unwrap().query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn a_store_from_another_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    LocalStore::open(&path).unwrap();
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
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    LocalStore::open(&path).unwrap();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let path = path.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
                let store = LocalStore::open(&path).unwrap();
                rt.block_on(async {
                    for i in 0..25 {
                        store.append(audit_event(w * 100 + i)).await.unwrap();
                    }
                });
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
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
