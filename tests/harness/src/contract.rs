//! The store contract: behaviour every implementation of core's store ports
//! must show, written once and run against each (SQLite in shared/local,
//! DynamoDB on moto in shared/aws). Each function panics on a breach.

use chrono::{DateTime, Duration, Utc};
use grantwarden_core::audit::{AuditJournal, NewEvent, verify};
use grantwarden_core::error::StoreError;
use grantwarden_core::finding::FindingKind;
use grantwarden_core::manifest::On;
use grantwarden_core::model::{Grantee, ObjectClass, ObjectRef, Privilege, RoleName};
use grantwarden_core::policy::PolicyRegistry;
use grantwarden_core::report::{Finding, FindingObject, FindingPrivilege, ObjectType};
use grantwarden_core::request::{Action, GrantRequest, InputKind, RequestObject};
use grantwarden_core::scoring::Severity;
use grantwarden_core::snapshot::TargetId;
use grantwarden_core::store::{FindingStore, PutOutcome, ReplayGuard, ReplayKey, TicketStore, Unjournaled};
use grantwarden_core::ticket::{Decision, NewTicket, Ticket, TicketStatus, route};

const REGISTRY: &str = "version: \"1\"\nowner: a@x.io\napprover: b@x.io\ncategories:\n  ops: { framework: SOC2, max_ttl: 24h, approvals: 1, weight_factor: 0.25 }\nroutes:\n  - { match: {}, category: ops }\n";

/// The fixed "now" of the contract.
pub fn now() -> DateTime<Utc> {
    "2026-11-22T12:00:00Z".parse().expect("a valid timestamp")
}

/// A ticket on orders-prod needing one approval.
pub fn ticket(delivery: &str, privilege: Privilege) -> Ticket {
    observed(delivery, privilege, now())
}

/// The ticket of a delivery observed at `at`, routed at [`now`].
fn observed(delivery: &str, privilege: Privilege, at: DateTime<Utc>) -> Ticket {
    let registry = PolicyRegistry::load(&[("r.yaml".into(), REGISTRY.into())]).expect("the contract registry loads");
    let req = GrantRequest {
        delivery_id: delivery.into(),
        input: InputKind::Webhook,
        source: "okta".into(),
        action: Action::Grant,
        target: TargetId::new("orders-prod").expect("not empty"),
        principal: "alice@example.com".into(),
        role: RoleName::new("alice_tmp").expect("a valid role"),
        privileges: vec![privilege],
        object: RequestObject { on: On::Schema, schema: None, name: Some("billing".into()), columns: vec![] },
        expires_at: Some(now() + Duration::hours(4)),
        justification: None,
        requested_by: "alice@example.com".into(),
        incident_id: None,
        observed_at: at,
    };
    match route(&req, &registry, &grantwarden_core::incident::KnownIncidents(vec![]), now()) {
        Decision::Ticket(t) => *t,
        other => panic!("the contract request routes to a ticket, got {other:?}"),
    }
}

/// An active ticket of `role` on `target` for `privileges` on a schema, in
/// force from `starts` to `expires`, built directly (no routing): revocation
/// tests and benches make many with the roles of their own test database.
pub fn active_ticket(
    id: &str,
    target: &str,
    role: &str,
    schema: &str,
    privileges: &[Privilege],
    starts: DateTime<Utc>,
    expires: DateTime<Utc>,
) -> Ticket {
    let new = NewTicket {
        id: id.into(),
        request: GrantRequest {
            delivery_id: id.into(),
            input: InputKind::Webhook,
            source: "okta".into(),
            action: Action::Grant,
            target: TargetId::new(target).expect("not empty"),
            principal: "alice@example.com".into(),
            role: RoleName::new(role).expect("a valid role"),
            privileges: privileges.to_vec(),
            object: RequestObject { on: On::Schema, schema: None, name: Some(schema.into()), columns: vec![] },
            expires_at: Some(expires),
            justification: Some("INC-1".into()),
            requested_by: "alice@example.com".into(),
            incident_id: None,
            observed_at: starts,
        },
        request_sha256: id.into(),
        category: "ops".into(),
        tag: "ops".into(),
        approvals_required: 0,
        weight_factor: 0.25,
        registry: grantwarden_core::policy::RegistryRef { version: "1".into(), sha256: String::new() },
        starts_at: starts,
        expires_at: expires,
        history: vec![],
        role_lifecycle: grantwarden_core::ticket::RoleLifecycle::Standing,
        access: None,
        break_glass: false,
    };
    // no approval needed: active from `starts`; as stored when made active directly,
    // with no step in its history yet, so revocation tests read only the steps it adds
    as_stored(&Ticket::open(new, starts), |t| t["history"] = serde_json::json!([]))
}

/// `ticket` with its stored JSON changed by `edit`: a state the ticket's own methods
/// never reach (a step taken back, another object), as a store could hold it.
pub fn as_stored(ticket: &Ticket, edit: impl FnOnce(&mut serde_json::Value)) -> Ticket {
    let mut stored = serde_json::to_value(ticket).expect("a ticket serializes");
    edit(&mut stored);
    serde_json::from_value(stored).expect("a ticket reads back")
}

/// An unauthorized (or other kind of) finding for `grantee`.
pub fn finding(grantee: &str, kind: FindingKind) -> Finding {
    Finding {
        kind,
        severity: Severity::Medium,
        score: 2.0,
        grantee: Grantee::Role(RoleName::new(grantee).expect("a valid role name")),
        privilege: FindingPrivilege::One(Privilege::Insert),
        grantable: false,
        object: FindingObject::of(ObjectType::Table, &ObjectRef::in_schema(ObjectClass::Table, "s", "t")),
        exception_id: None,
        detail: "x".into(),
    }
}

/// A journal event on chain `orders-prod`.
pub fn audit_event(n: usize) -> NewEvent {
    NewEvent {
        chain: "orders-prod".into(),
        at: now(),
        kind: "ticket.requested".into(),
        actor: format!("writer-{n}"),
        subject: format!("tkt-{n}"),
        target: "orders-prod".into(),
        // a float and nesting: the stored event must hash the same after a round trip
        detail: serde_json::json!({ "registry_version": "2.1", "weight": 0.1, "n": n, "nested": { "list": [1, "two"] } }),
    }
}

/// Puts are idempotent on the ticket id; the same id with another payload conflicts.
pub async fn tickets_are_idempotent_and_conflicts_are_refused<S: TicketStore>(store: &S) {
    let t = ticket("d-1", Privilege::Select);
    assert!(matches!(store.put_ticket(&t, &[]).await.unwrap(), PutOutcome::Created(_)));
    let later = observed("d-1", Privilege::Select, now() + Duration::minutes(3));
    assert_eq!(
        store.put_ticket(&later, &[]).await.unwrap(),
        PutOutcome::Existing(t.clone()),
        "a redelivery returns the stored ticket"
    );
    let changed = ticket("d-1", Privilege::Delete);
    assert_eq!(store.put_ticket(&changed, &[]).await.unwrap(), PutOutcome::Conflict(t.clone()));
    assert_eq!(store.tickets(None).await.unwrap(), vec![t.clone()]);
    assert_eq!(store.tickets(Some(&TargetId::new("orders-prod").unwrap())).await.unwrap(), vec![t.clone()]);
    assert_eq!(store.tickets(Some(&TargetId::new("crm").unwrap())).await.unwrap(), vec![]);
}

/// Updates win only against the version read; unknown tickets are not found.
pub async fn updates_are_conditional_on_the_version_read<S: TicketStore>(store: &S) {
    let t = ticket("d-2", Privilege::Insert);
    store.put_ticket(&t, &[]).await.unwrap();
    let read = store.ticket(t.id()).await.unwrap().unwrap();
    assert_eq!((read.version, read.value.status()), (1, TicketStatus::PendingApproval));
    let mut approved = read.value.clone();
    approved.approve(&grantwarden_core::identity::Actor::operator("bob@example.com"), now()).unwrap();
    assert_eq!(store.update_ticket(&approved, read.version, &[]).await.unwrap(), 2);
    // a second writer that read version 1 loses
    let mut other = read.value.clone();
    other.approve(&grantwarden_core::identity::Actor::operator("carol@example.com"), now()).unwrap();
    assert!(matches!(store.update_ticket(&other, read.version, &[]).await, Err(StoreError::Stale(_))));
    let stored = store.ticket(t.id()).await.unwrap().unwrap();
    assert_eq!((stored.version, stored.value.status()), (2, TicketStatus::Active));
    assert_eq!(stored.value, approved);
    let ghost = ticket("d-9", Privilege::Insert);
    assert!(matches!(store.update_ticket(&ghost, 1, &[]).await, Err(StoreError::NotFound(_))));
    assert!(store.ticket(ghost.id()).await.unwrap().is_none());
}

/// A ticket event on orders-prod at `at`.
fn ticket_event(t: &Ticket, kind: &str, at: DateTime<Utc>) -> NewEvent {
    NewEvent {
        chain: "orders-prod".into(),
        at,
        kind: kind.into(),
        actor: "grantwarden".into(),
        subject: t.id().to_owned(),
        target: "orders-prod".into(),
        detail: serde_json::json!({ "weight": 0.1, "nested": { "list": [1, "two"] } }),
    }
}

/// Every ticket write keeps its journal events in the ticket's outbox, in the
/// same write, until they are cleared; a reclaim takes an entry over only if
/// it is still as read; entries are listed per target.
pub async fn ticket_writes_keep_their_events_until_journaled<S: TicketStore>(store: &S) {
    let target = TargetId::new("orders-prod").unwrap();
    let t = ticket("d-3", Privilege::Select);
    let created = [ticket_event(&t, "ticket.requested", now()), ticket_event(&t, "ticket.activated", now())];
    assert!(matches!(store.put_ticket(&t, &created).await.unwrap(), PutOutcome::Created(_)));
    let redelivered = [ticket_event(&t, "ticket.requested", now() + Duration::minutes(1))];
    assert!(matches!(store.put_ticket(&t, &redelivered).await.unwrap(), PutOutcome::Existing(_)));
    let v1 = Unjournaled::new(t.id(), 1, &created);
    assert_eq!((v1.claimed_at, v1.after, v1.is_fresh()), (now(), None, true));
    assert_eq!(store.unjournaled(&target).await.unwrap(), vec![v1.clone()], "a redelivery adds nothing");

    let later = now() + Duration::minutes(2);
    let mut approved = t.clone();
    approved.approve(&grantwarden_core::identity::Actor::operator("bob@example.com"), later).unwrap();
    let approval = [ticket_event(&t, "ticket.approved", later)];
    assert_eq!(store.update_ticket(&approved, 1, &approval).await.unwrap(), 2);
    assert!(matches!(store.update_ticket(&approved, 1, &approval).await, Err(StoreError::Stale(_))));
    assert_eq!(store.update_ticket(&approved, 2, &[]).await.unwrap(), 3, "a write without events");
    let v2 = Unjournaled::new(t.id(), 2, &approval);
    assert_eq!(v2.claimed_at, later);
    assert_eq!(store.unjournaled(&target).await.unwrap(), vec![v1.clone(), v2.clone()]);
    assert_eq!(store.unjournaled(&TargetId::new("crm").unwrap()).await.unwrap(), vec![]);

    let taken_at = now() + Duration::minutes(10);
    let taken = store.reclaim(&v1, taken_at, 7).await.unwrap().expect("as read: taken over");
    assert_eq!(taken, Unjournaled { claimed_at: taken_at, after: Some(7), ..v1.clone() });
    assert!(!taken.is_fresh());
    assert_eq!(store.reclaim(&v1, taken_at, 8).await.unwrap(), None, "no longer as read");
    assert_eq!(store.unjournaled(&target).await.unwrap(), vec![taken.clone(), v2.clone()]);

    store.journaled(&taken).await.unwrap();
    assert_eq!(store.unjournaled(&target).await.unwrap(), vec![v2.clone()]);
    store.journaled(&v2).await.unwrap();
    store.journaled(&v2).await.unwrap();
    assert_eq!(store.unjournaled(&target).await.unwrap(), vec![], "cleared, and clearing twice is nothing");
    assert_eq!(store.reclaim(&v2, taken_at, 9).await.unwrap(), None, "a cleared entry is nobody's");
    let stored = store.ticket(t.id()).await.unwrap().unwrap();
    assert_eq!((stored.version, stored.value), (3, approved), "the ticket itself untouched by its outbox");
}

/// Findings keep `first_seen` while open, close when a complete scan no
/// longer reports them, start a new life when they come back; a partial scan
/// closes nothing; open untagged findings are listed.
pub async fn findings_keep_first_seen_and_close_when_gone<S: FindingStore>(store: &S) {
    let target = TargetId::new("orders-prod").unwrap();
    let (a, b) = (finding("alice", FindingKind::Unauthorized), finding("bob", FindingKind::Unauthorized));
    let ages = store.record_findings(&target, "s1", &[a.clone(), b.clone()], now(), true).await.unwrap().ages;
    assert_eq!(ages[0].first_seen, now());
    let t2 = now() + Duration::hours(1);
    let recorded = store.record_findings(&target, "s2", std::slice::from_ref(&a), t2, true).await.unwrap();
    let ages = recorded.ages;
    assert_eq!((ages[0].first_seen, ages[0].last_seen), (now(), t2), "still open: first_seen stays");
    assert_eq!(recorded.closed, vec![b.clone()], "s2 closed bob and says so");
    let t3 = now() + Duration::hours(2);
    let ages = store.record_findings(&target, "s3", &[a.clone(), b.clone()], t3, true).await.unwrap().ages;
    assert_eq!((ages[0].first_seen, ages[1].first_seen), (now(), t3), "bob was closed by s2 and is new again");
    let t4 = now() + Duration::hours(3);
    assert_eq!(store.record_findings(&target, "s4", &[], t4, false).await.unwrap().closed, vec![]);
    let ages = store.record_findings(&target, "s5", &[a.clone(), b.clone()], t4, true).await.unwrap().ages;
    assert_eq!((ages[0].first_seen, ages[1].first_seen), (now(), t3), "a partial scan closes nothing");
    let open = store.open_with_age(&target).await.unwrap();
    let listed: Vec<(&str, DateTime<Utc>, DateTime<Utc>)> =
        open.iter().map(|(f, age)| (f.grantee.as_str(), age.first_seen, age.last_seen)).collect();
    assert_eq!(listed, [("alice", now(), t4), ("bob", t3, t4)], "open findings with their age, oldest first");

    let untagged = finding("mallory", FindingKind::Untagged);
    store.record_findings(&target, "intake", std::slice::from_ref(&untagged), t4, false).await.unwrap();
    assert_eq!(store.open_untagged(&target).await.unwrap(), vec![untagged.clone()]);
    assert_eq!(store.open_untagged(&TargetId::new("crm").unwrap()).await.unwrap(), vec![]);
    // a complete scan that no longer reports it closes it
    let recorded = store.record_findings(&target, "s6", &[a], t4 + Duration::hours(1), true).await.unwrap();
    assert_eq!(recorded.closed.len(), 2, "bob and the untagged finding: {:?}", recorded.closed);
    assert_eq!(store.open_untagged(&target).await.unwrap(), vec![]);
}

/// Appends chain from seq 1, keep every byte the hash covers, and verify against the head.
pub async fn the_journal_chains_and_verifies<S: AuditJournal>(store: &S) {
    assert_eq!(store.head("orders-prod").await.unwrap(), None);
    for n in 0..5 {
        let e = store.append(audit_event(n)).await.unwrap();
        assert_eq!(e.seq, n as u64 + 1);
    }
    let events = store.events("orders-prod").await.unwrap();
    let head = store.head("orders-prod").await.unwrap().unwrap();
    assert_eq!((events.len(), head.0), (5, 5));
    assert_eq!(events[4].hash, head.1);
    verify("orders-prod", &events, Some((head.0, &head.1))).unwrap();
    assert_eq!(store.events("other-chain").await.unwrap(), vec![]);
}

/// Incidents keep their latest update; an older one delivered late changes nothing.
pub async fn incidents_keep_the_latest_update<S: grantwarden_core::incident::IncidentStore>(store: &S) {
    use grantwarden_core::incident::{IncidentStatus, IncidentUpdate};
    let update = |status, minutes| IncidentUpdate {
        id: "PD-42".into(),
        status,
        source: "pagerduty".into(),
        at: now() + Duration::minutes(minutes),
    };
    assert_eq!(store.incident("PD-42").await.unwrap(), None);
    store.record_incident(&update(IncidentStatus::Open, 0)).await.unwrap();
    store.record_incident(&update(IncidentStatus::Resolved, 10)).await.unwrap();
    store.record_incident(&update(IncidentStatus::Open, 5)).await.unwrap();
    let last = store.incident("PD-42").await.unwrap().expect("recorded");
    assert_eq!(
        (last.status, last.at),
        (IncidentStatus::Resolved, now() + Duration::minutes(10)),
        "a late webhook does not reopen it"
    );
}

/// A replay key is admitted once until its record expires, then again; of
/// concurrent first uses exactly one wins; a forgotten key is admitted again.
pub async fn replay_records_admit_each_key_once<S: ReplayGuard>(store: &S) {
    let (a, b) = (ReplayKey::new("v2", b"request a"), ReplayKey::new("v2", b"request b"));
    let until = now() + Duration::minutes(6);
    assert!(store.first_use(&a, now(), until).await.unwrap(), "a new key");
    assert!(!store.first_use(&a, now(), until).await.unwrap(), "the same key again");
    assert!(!store.first_use(&a, until - Duration::seconds(1), until).await.unwrap(), "until its record expires");
    assert!(store.first_use(&b, now(), until).await.unwrap(), "another key is another request");
    assert!(!store.first_use(&ReplayKey::new("v2", b"request b"), now(), until).await.unwrap());
    assert!(
        store.first_use(&ReplayKey::new("pagerduty", b"request b"), now(), until).await.unwrap(),
        "the scheme is part of the key"
    );
    // an expired record counts as absent even where nothing deleted it yet (DynamoDB's lazy TTL)
    let later = until + Duration::minutes(6);
    assert!(store.first_use(&a, until, later).await.unwrap(), "expired at its until");
    assert!(!store.first_use(&a, until, later).await.unwrap(), "and recorded anew");
    // a sub-second until is kept at least that long
    let c = ReplayKey::new("v2", b"request c");
    let fractional = now() + Duration::milliseconds(1500);
    assert!(store.first_use(&c, now(), fractional).await.unwrap());
    assert!(!store.first_use(&c, now() + Duration::seconds(1), fractional).await.unwrap());

    store.forget(&b).await.unwrap();
    assert!(store.first_use(&b, now(), until).await.unwrap(), "a forgotten key is admitted again");
    store.forget(&ReplayKey::new("v2", b"never seen")).await.unwrap();

    let d = ReplayKey::new("v2", b"request d");
    let (r1, r2, r3, r4) = tokio::join!(
        store.first_use(&d, now(), until),
        store.first_use(&d, now(), until),
        store.first_use(&d, now(), until),
        store.first_use(&d, now(), until),
    );
    let wins = [r1, r2, r3, r4].into_iter().filter(|r| *r.as_ref().unwrap()).count();
    assert_eq!(wins, 1, "of concurrent first uses exactly one wins");
}

/// Declares one `#[tokio::test]` a contract check, named as the check, each
/// against the store its expression makes afresh: `check(fresh_store())`
/// becomes `async fn check() { contract::check(&fresh_store()).await }`.
/// An implementation's test file lists the checks it passes this way, so a
/// new check is one line there.
#[macro_export]
macro_rules! store_contract_tests {
    ($($check:ident($store:expr)),* $(,)?) => {$(
        #[tokio::test]
        async fn $check() {
            $crate::contract::$check(&$store).await;
        }
    )*};
}
