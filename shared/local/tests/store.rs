//! The SQLite store against a real file: idempotent tickets, conditional
//! updates, finding ages, and many writers on one file.

use chrono::{DateTime, Duration, Utc};
use grantwarden_core::baseline::On;
use grantwarden_core::model::{Privilege, RoleName};
use grantwarden_core::normalize::{Action, GrantRequest, InputKind, RequestObject};
use grantwarden_core::policy::PolicyRegistry;
use grantwarden_core::report::{Finding, FindingKind, FindingObject};
use grantwarden_core::scoring::Severity;
use grantwarden_core::snapshot::TargetId;
use grantwarden_core::store::{FindingStore, PutOutcome, StoreError, TicketStore};
use grantwarden_core::ticket::{Decision, Ticket, TicketStatus, route};
use grantwarden_local::LocalStore;

const REGISTRY: &str = "version: \"1\"\nowner: a@x.io\napprover: b@x.io\ncategories:\n  ops: { framework: SOC2, max_ttl: 24h, approvals: 1, weight_factor: 0.25 }\nroutes:\n  - { match: {}, category: ops }\n";

fn now() -> DateTime<Utc> {
    "2026-11-22T12:00:00Z".parse().unwrap()
}

fn ticket(delivery: &str, privilege: Privilege) -> Ticket {
    let registry = PolicyRegistry::load(&[("r.yaml".into(), REGISTRY.into())]).unwrap();
    let req = GrantRequest {
        delivery_id: delivery.into(),
        input: InputKind::Webhook,
        source: "okta".into(),
        action: Action::Grant,
        target: TargetId::new("orders-prod").unwrap(),
        principal: "alice@example.com".into(),
        role: RoleName::new("alice_tmp").unwrap(),
        privileges: vec![privilege],
        object: RequestObject { on: On::Schema, schema: None, name: Some("billing".into()), columns: vec![] },
        expires_at: Some(now() + Duration::hours(4)),
        justification: None,
        requested_by: "alice@example.com".into(),
        incident_id: None,
        observed_at: now(),
    };
    match route(&req, &registry, now()) {
        Decision::Ticket(t) => *t,
        other => panic!("{other:?}"),
    }
}

fn finding(grantee: &str) -> Finding {
    Finding {
        kind: FindingKind::Unauthorized,
        severity: Severity::Medium,
        score: 2.0,
        grantee: grantee.into(),
        privilege: "INSERT".into(),
        grantable: false,
        object: FindingObject {
            kind: "table".into(),
            schema: Some("s".into()),
            name: "t".into(),
            column: None,
            for_role: None,
        },
        exception_id: None,
        detail: "x".into(),
    }
}

#[tokio::test]
async fn tickets_are_idempotent_and_conflicts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/state.db");
    let store = LocalStore::open(&path).unwrap();
    let t = ticket("d-1", Privilege::Select);
    assert!(matches!(store.put_ticket(&t).await.unwrap(), PutOutcome::Created(_)));
    let mut later = t.clone();
    later.request.observed_at = now() + Duration::minutes(3);
    assert_eq!(
        store.put_ticket(&later).await.unwrap(),
        PutOutcome::Existing(t.clone()),
        "a redelivery returns the stored ticket"
    );
    let changed = ticket("d-1", Privilege::Delete);
    assert_eq!(store.put_ticket(&changed).await.unwrap(), PutOutcome::Conflict(t.clone()));
    drop(store);
    let reopened = LocalStore::open(&path).unwrap();
    assert_eq!(reopened.tickets(None).await.unwrap(), vec![t.clone()]);
    assert_eq!(reopened.tickets(Some(&TargetId::new("crm").unwrap())).await.unwrap(), vec![]);
}

#[tokio::test]
async fn updates_are_conditional_on_the_version_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(&dir.path().join("state.db")).unwrap();
    let t = ticket("d-1", Privilege::Insert);
    store.put_ticket(&t).await.unwrap();
    let read = store.ticket(&t.id).await.unwrap().unwrap();
    assert_eq!((read.version, read.value.status), (1, TicketStatus::PendingApproval));
    let mut approved = read.value.clone();
    approved.approve("bob@example.com", now()).unwrap();
    assert_eq!(store.update_ticket(&approved, read.version).await.unwrap(), 2);
    // a second writer that read version 1 loses
    let mut other = read.value.clone();
    other.approve("carol@example.com", now()).unwrap();
    assert!(matches!(store.update_ticket(&other, read.version).await, Err(StoreError::Stale(_))));
    let stored = store.ticket(&t.id).await.unwrap().unwrap();
    assert_eq!((stored.version, stored.value.status), (2, TicketStatus::Active));
    assert_eq!(stored.value.approvals[0].approver, "bob@example.com");
    let ghost = ticket("d-9", Privilege::Insert);
    assert!(matches!(store.update_ticket(&ghost, 1).await, Err(StoreError::NotFound(_))));
}

#[tokio::test]
async fn findings_keep_first_seen_and_close_when_gone() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(&dir.path().join("state.db")).unwrap();
    let target = TargetId::new("orders-prod").unwrap();
    let (a, b) = (finding("alice"), finding("bob"));
    let ages = store.record_findings(&target, "s1", &[a.clone(), b.clone()], now(), true).await.unwrap();
    assert_eq!(ages[0].first_seen, now());
    let t2 = now() + Duration::hours(1);
    let ages = store.record_findings(&target, "s2", std::slice::from_ref(&a), t2, true).await.unwrap();
    assert_eq!((ages[0].first_seen, ages[0].last_seen), (now(), t2), "still open: first_seen stays");
    // bob was closed by the complete scan s2; when he comes back he is new again
    let t3 = now() + Duration::hours(2);
    let ages = store.record_findings(&target, "s3", &[a.clone(), b.clone()], t3, true).await.unwrap();
    assert_eq!((ages[0].first_seen, ages[1].first_seen), (now(), t3));
    // a partial scan closes nothing
    let t4 = now() + Duration::hours(3);
    store.record_findings(&target, "s4", &[], t4, false).await.unwrap();
    let ages = store.record_findings(&target, "s5", &[a, b], t4, true).await.unwrap();
    assert_eq!((ages[0].first_seen, ages[1].first_seen), (now(), t3));
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
                            .record_findings(&target, &format!("s-{w}-{i}"), &[finding(&format!("u{w}"))], now(), false)
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

fn audit_event(n: usize) -> grantwarden_core::audit::NewEvent {
    grantwarden_core::audit::NewEvent {
        chain: "orders-prod".into(),
        at: now(),
        kind: "ticket.requested".into(),
        actor: format!("writer-{n}"),
        subject: format!("tkt-{n}"),
        target: "orders-prod".into(),
        detail: serde_json::json!({ "registry_version": "2.1" }),
    }
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
