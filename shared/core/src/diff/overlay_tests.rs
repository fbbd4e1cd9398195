//! Exceptions laid over the diff: excepted while a ticket covers a grant, an expired exception after.

use super::tests::relation;
use super::*;
use crate::manifest::On;
use crate::model::{Grant, RelationKind, RoleAttributes};
use crate::policy::PolicyRegistry;
use crate::report::Status;
use crate::request::{Action, GrantRequest, InputKind, RequestObject};
use crate::ticket::{Decision, Ticket, route};
use chrono::{DateTime, Utc};
use proptest::prelude::*;

const REGISTRY: &str = "version: \"1\"\nowner: a@x.io\napprover: b@x.io\ncategories:\n  ops: { framework: SOC2, max_ttl: 24h, approvals: 0, weight_factor: 0.25 }\nroutes:\n  - { match: {}, category: ops }\n";
const BASELINE: &str = "version: 1\nroles:\n  app_rw: {}\nignore_roles: [\"postgres\"]\n";

fn r(n: &str) -> RoleName {
    RoleName::new(n).unwrap()
}

fn at(h: i64) -> DateTime<Utc> {
    "2026-11-22T12:00:00Z".parse::<DateTime<Utc>>().unwrap() + chrono::Duration::hours(h)
}

fn state(grants: &[(&str, Privilege, &str)]) -> State {
    let mut s = State::default();
    let attrs = RoleAttributes::default();
    for n in ["postgres", "app_rw", "alice_tmp"] {
        s.roles.insert(r(n), attrs.clone());
    }
    s.schemas.insert("orders".into(), r("postgres"));
    for t in ["line_items", "customers"] {
        s.relations.insert(relation("orders", t, RelationKind::Table, "postgres"));
    }
    for (role, p, t) in grants {
        s.grants.insert(Grant {
            object: ObjectRef::in_schema(ObjectClass::Table, "orders", t),
            grantee: Grantee::Role(r(role)),
            privilege: *p,
            grantable: false,
        });
    }
    s
}

fn snapshot(state: State, taken_at: DateTime<Utc>) -> Snapshot {
    Snapshot {
        target: TargetId::new("orders-prod").unwrap(),
        scan_id: "scan".into(),
        taken_at,
        server_version_num: 150_000,
        complete: true,
        consistent: true,
        chunks: vec![],
        sha256: state.sha256(),
        state,
    }
}

fn ticket(role: &str, privileges: &[Privilege], table: &str, hours: i64, id: &str) -> Ticket {
    let registry = PolicyRegistry::load(&[("r.yaml".into(), REGISTRY.into())]).unwrap();
    let req = GrantRequest {
        delivery_id: id.into(),
        input: InputKind::Webhook,
        source: "okta".into(),
        action: Action::Grant,
        target: TargetId::new("orders-prod").unwrap(),
        principal: "alice@example.com".into(),
        role: r(role),
        privileges: privileges.to_vec(),
        object: RequestObject {
            on: On::Table,
            schema: Some("orders".into()),
            name: Some(table.into()),
            columns: vec![],
        },
        expires_at: Some(at(hours)),
        justification: None,
        requested_by: "alice@example.com".into(),
        incident_id: None,
        observed_at: at(0),
    };
    match route(&req, &registry, &crate::incident::KnownIncidents(vec![]), at(0)) {
        Decision::Ticket(t) => *t,
        other => panic!("{other:?}"),
    }
}

fn plan(grants: &[(&str, Privilege, &str)], tickets: &[Ticket], now: DateTime<Utc>) -> Report {
    let b = Baseline::from_yaml(BASELINE, "b.yaml").unwrap();
    diff_with_exceptions(
        &b,
        &snapshot(state(grants), now),
        &ScoringConfig::standard(),
        &Exceptions { tickets, now, untagged: &[] },
    )
}

#[test]
fn an_active_ticket_makes_a_grant_excepted_and_scored_not_free() {
    let t = ticket("alice_tmp", &[Privilege::Select], "line_items", 4, "d-1");
    let report = plan(&[("alice_tmp", Privilege::Select, "line_items")], std::slice::from_ref(&t), at(1));
    let f = &report.findings[0];
    assert_eq!((f.kind, f.exception_id.as_deref()), (FindingKind::Excepted, Some(t.id())));
    assert!(f.score > 0.0, "an exception is never weightless");
    assert_eq!(f.score, 0.25, "excepted x read x object x weight_factor 0.25");
    assert_eq!((report.summary.excepted, report.summary.exception_weight), (1, 0.25));
    assert_eq!(report.summary.status, Status::Ok, "an authorized exception is logged, not alerted");
    assert!(!report.has_drift());
}

#[test]
fn after_expiry_the_same_grant_is_a_ttl_breach_that_alerts() {
    let t = ticket("alice_tmp", &[Privilege::Select], "line_items", 4, "d-1");
    let report = plan(&[("alice_tmp", Privilege::Select, "line_items")], &[t], at(5));
    let f = &report.findings[0];
    assert_eq!(f.kind, FindingKind::ExpiredException);
    assert!(f.severity >= crate::scoring::Severity::High);
    assert!(f.detail.starts_with("TTL breach"), "{}", f.detail);
    assert_eq!(report.summary.status, Status::Alert);
}

#[test]
fn coverage_accounts_for_every_privilege_held_once() {
    let t = ticket("alice_tmp", &[Privilege::Select], "line_items", 4, "d-1");
    let held = [
        ("alice_tmp", Privilege::Select, "line_items"),
        ("alice_tmp", Privilege::Insert, "line_items"),
        ("alice_tmp", Privilege::Select, "customers"),
    ];
    let during = plan(&held, std::slice::from_ref(&t), at(1)).summary.coverage;
    assert_eq!((during.held, during.baseline, during.exceptions, during.drift), (3, 0, 1, 2));
    assert_eq!(during.percent(during.exceptions), 33.33);
    let after = plan(&held, &[t], at(5)).summary.coverage;
    assert_eq!((after.held, after.exceptions, after.drift), (3, 0, 3), "an expired exception is drift");
}

#[test]
fn a_ticket_covers_only_what_it_names() {
    let t = ticket("alice_tmp", &[Privilege::Select], "line_items", 4, "d-1");
    let report = plan(
        &[("alice_tmp", Privilege::Insert, "line_items"), ("alice_tmp", Privilege::Select, "customers")],
        &[t],
        at(1),
    );
    assert!(report.findings.iter().all(|f| f.kind == FindingKind::Orphaned), "{:?}", report.findings);
}

#[test]
fn overlapping_windows_use_the_active_ticket_and_a_revoked_one_is_a_breach() {
    let old = ticket("alice_tmp", &[Privilege::Select], "line_items", 2, "d-1");
    let new = ticket("alice_tmp", &[Privilege::Select], "line_items", 8, "d-2");
    let report = plan(&[("alice_tmp", Privilege::Select, "line_items")], &[old, new.clone()], at(3));
    assert_eq!(report.findings[0].exception_id.as_deref(), Some(new.id()));
    let mut revoked = new;
    revoked.revoke("ciso@example.com", at(1), "principal left");
    let report = plan(&[("alice_tmp", Privilege::Select, "line_items")], &[revoked], at(3));
    assert_eq!(
        report.findings[0].kind,
        FindingKind::ExpiredException,
        "a grant outliving a revoked ticket is a breach"
    );
}

proptest! {
    /// The overlay only reclassifies: no finding disappears, and every excepted
    /// finding names an active ticket that covers it.
    #[test]
    fn nothing_is_suppressed_without_a_ticket(
        grants in proptest::collection::vec((0usize..2, 0usize..3, 0usize..2), 0..10),
        tickets in proptest::collection::vec((0usize..2, 0usize..3, 0usize..2, -3i64..6), 0..5),
        now in 0i64..8,
    ) {
        let roles = ["alice_tmp", "app_rw"];
        let privs = [Privilege::Select, Privilege::Insert, Privilege::Delete];
        let tables = ["line_items", "customers"];
        let held: Vec<(&str, Privilege, &str)> = grants.iter().map(|(a, b, c)| (roles[*a], privs[*b], tables[*c])).collect();
        let tickets: Vec<Ticket> = tickets.iter().enumerate().filter(|(_, t)| t.3 > 0).map(|(i, (a, b, c, h))| {
            ticket(roles[*a], &[privs[*b]], tables[*c], *h, &format!("d-{i}"))
        }).collect();
        let bare = plan(&held, &[], at(now));
        let overlaid = plan(&held, &tickets, at(now));
        prop_assert_eq!(bare.findings.len(), overlaid.findings.len());
        for f in &overlaid.findings {
            if f.kind == FindingKind::Excepted {
                let t = tickets.iter().find(|t| Some(t.id()) == f.exception_id.as_deref());
                prop_assert!(t.is_some_and(|t| t.is_active_at(at(now))));
                prop_assert!(f.score > 0.0);
            }
        }
    }
}
