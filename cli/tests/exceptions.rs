//! The exception flow end to end: a real temporary grant, its webhook through
//! intake, plan with the overlay before and after expiry; redeliveries,
//! untagged input, approvals and simulate.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{grantwarden, policy};

use grantwarden_testkit::TestDb;
use serde_json::Value;

fn json_lines(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

const T0: &str = "2026-11-22T12:00:00Z";

fn webhook(dir: &Path, name: &str, role: &str, privileges: &str, object: &str, expires: &str) -> PathBuf {
    let body = format!(
        r#"{{ "delivery_id": "{name}", "source": "okta-workflows", "target": "orders-prod",
  "principal": "alice@example.com", "role": "{role}", "privileges": {privileges}, "object": {object},
  "justification": "INC-4411 debugging", "requested_by": "alice@example.com", "expires_at": "{expires}" }}"#
    );
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, body).unwrap();
    path
}

#[tokio::test]
async fn a_temporary_grant_is_excepted_while_its_ticket_lives_and_a_breach_after() {
    let db = TestDb::new().await;
    let alice = db.role("alice_tmp");
    db.exec(&format!(
        "CREATE ROLE {a}; CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int);
         GRANT USAGE ON SCHEMA billing TO {a}; GRANT SELECT ON ALL TABLES IN SCHEMA billing TO {a};",
        a = db.ident("alice_tmp")
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    let state = state.to_str().unwrap();
    let baseline = dir.path().join("baseline.yaml");
    let ignore: Vec<String> = db.ignore_others().iter().map(|p| format!("{p:?}")).collect();
    std::fs::write(
        &baseline,
        format!(
            "version: 1\npublic:\n  grants:\n    - {{ privileges: [USAGE], on: schema, name: public }}\nignore_roles: [{}]\n",
            ignore.join(", ")
        ),
    )
    .unwrap();
    let baseline = baseline.to_str().unwrap();
    let url = db.url();
    // plan against orders-prod with the state store at `state` and, where given, the registry at `registry`
    let plan_with = |state: &str, registry: Option<&str>, at: &str| {
        let mut args =
            vec!["plan", "--database", &url, "--baseline", baseline, "--target", "orders-prod", "--state", state];
        args.extend(registry.map(|r| ["--policy", r]).into_iter().flatten());
        args.extend(["--format", "json", "--at", at]);
        grantwarden(&args)
    };
    let example_registry = policy();
    let plan = |at: &str| plan_with(state, Some(&example_registry), at);

    // without a ticket the grant is drift
    let before = plan(T0);
    assert_eq!(before.status.code(), Some(2), "{}", String::from_utf8_lossy(&before.stderr));

    // delivery d-123: alice_tmp may use and read schema billing until `expires`
    let billing_read_until = |expires: &str| {
        webhook(
            dir.path(),
            "d-123",
            &alice,
            r#"["SELECT", "USAGE"]"#,
            r#"{ "type": "schema", "name": "billing" }"#,
            expires,
        )
    };
    let hook = billing_read_until("2026-11-22T16:00:00Z");
    let out = grantwarden(&["intake", hook.to_str().unwrap(), "--policy", &policy(), "--state", state, "--at", T0]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let created = &json_lines(&out)[0];
    assert_eq!(created["outcome"], "created");
    let ticket = created["ticket"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["ticket"]["status"], "active", "read-only needs no approval");
    assert_eq!(created["ticket"]["registry"]["version"], "2.1");
    assert_eq!(created["ticket"]["registry"]["sha256"].as_str().map(str::len), Some(64));

    // redelivery: same ticket, no new one; a changed payload under the same id conflicts
    let again = grantwarden(&["intake", hook.to_str().unwrap(), "--policy", &policy(), "--state", state, "--at", T0]);
    assert_eq!((again.status.code(), json_lines(&again)[0]["outcome"].as_str()), (Some(0), Some("existing")));
    let changed = billing_read_until("2026-11-22T17:00:00Z");
    let conflict =
        grantwarden(&["intake", changed.to_str().unwrap(), "--policy", &policy(), "--state", state, "--at", T0]);
    assert_eq!((conflict.status.code(), json_lines(&conflict)[0]["outcome"].as_str()), (Some(1), Some("conflict")));

    // while the ticket lives: excepted, logged, no drift
    let during = plan("2026-11-22T13:00:00Z");
    assert_eq!(during.status.code(), Some(0), "{}", String::from_utf8_lossy(&during.stdout));
    let report: Value = serde_json::from_slice(&during.stdout).unwrap();
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 2, "{findings:#?}");
    for f in findings {
        assert_eq!((f["kind"].as_str(), f["exception_id"].as_str()), (Some("excepted"), Some(ticket.as_str())));
        assert!(f["score"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(report["summary"]["status"], "ok");
    assert!(report["summary"]["exception_weight"].as_f64().unwrap() > 0.0);

    // after expiry the grant is still there: a TTL breach that alerts
    let after = plan("2026-11-22T17:00:00Z");
    assert_eq!(after.status.code(), Some(2));
    let report: Value = serde_json::from_slice(&after.stdout).unwrap();
    assert!(report["findings"].as_array().unwrap().iter().all(|f| f["kind"] == "expired_exception"));
    assert_eq!(report["summary"]["expired_exception"], 2);
    assert_eq!(report["summary"]["status"], "alert");

    // unroutable input is recorded as untagged and stays in the report
    let no_expiry = dir.path().join("no-expiry.json");
    // (the conflicting redelivery above rewrote d-123.json with a 17:00 expiry)
    let body = std::fs::read_to_string(&changed)
        .unwrap()
        .replace(r#", "expires_at": "2026-11-22T17:00:00Z""#, "")
        .replace("d-123", "d-124");
    assert!(!body.contains("expires_at"));
    std::fs::write(&no_expiry, body).unwrap();
    let out =
        grantwarden(&["intake", no_expiry.to_str().unwrap(), "--policy", &policy(), "--state", state, "--at", T0]);
    assert_eq!(out.status.code(), Some(1));
    let line = &json_lines(&out)[0];
    assert_eq!((line["outcome"].as_str(), line["finding"]["severity"].as_str()), (Some("untagged"), Some("high")));
    assert!(line["finding"]["detail"].as_str().unwrap().contains("expires_at: missing"), "{line}");
    let report: Value = serde_json::from_slice(&plan("2026-11-22T13:00:00Z").stdout).unwrap();
    assert_eq!(report["summary"]["untagged"], 1);
    assert_eq!(report["summary"]["excepted"], 2, "the valid ticket still covers its grant");

    // drift that stays open weighs more: the breach seen again a day later scores higher
    let breach_score = |at: &str| {
        serde_json::from_slice::<Value>(&plan(at).stdout).unwrap()["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["kind"] == "expired_exception")
            .map(|f| f["score"].as_f64().unwrap())
            .sum::<f64>()
    };
    let (first, day_later) = (breach_score("2026-11-22T17:00:00Z"), breach_score("2026-11-23T17:00:00Z"));
    assert!(day_later > first, "age weighting: {first} then {day_later}");

    // a state store that cannot be opened applies no exception (fail secure)
    let out = plan_with("/proc/no/such/state.db", None, "2026-11-22T13:00:00Z");
    assert_eq!(out.status.code(), Some(2));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((report["summary"]["excepted"].as_u64(), report["summary"]["untagged"].as_u64()), (Some(0), Some(1)));

    // every decision is in the hash-chained journal; the redelivery added no event
    {
        use grantwarden_core::audit::event::EventKind;
        use grantwarden_core::audit::{AuditJournal, verify};
        let store = grantwarden_local::LocalStore::open(Path::new(state)).unwrap();
        let events = store.events("orders-prod").await.unwrap();
        let head = store.head("orders-prod").await.unwrap().unwrap();
        verify("orders-prod", &events, Some((head.0, &head.1))).unwrap();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds.iter().filter(|k| **k == "ticket.requested").count(), 1, "{kinds:?}");
        for k in ["ticket.activated", "ticket.conflict", "finding.opened", "finding.closed", "scan.completed"] {
            assert!(kinds.contains(&k), "{k} in {kinds:?}");
        }
        // the excepted grant's findings opened while the ticket lived and closed when it expired
        let excepted = |kind: &str| {
            events
                .iter()
                .filter(|e| e.kind.as_str() == kind && e.detail["finding"]["kind"] == "excepted")
                .map(|e| e.subject.clone())
                .collect::<std::collections::BTreeSet<_>>()
        };
        assert_eq!(excepted("finding.opened").len(), 2, "{kinds:?}");
        assert_eq!(excepted("finding.opened"), excepted("finding.closed"), "each one opened was closed again");
        let closed = events.iter().find(|e| e.kind == EventKind::FindingClosed).unwrap();
        assert_eq!(closed.detail["registry_version"], "2.1", "{}", closed.detail);
        let requested = events.iter().find(|e| e.kind == EventKind::TicketRequested).unwrap();
        assert_eq!(
            (requested.subject.as_str(), requested.detail["registry_version"].as_str()),
            (ticket.as_str(), Some("2.1"))
        );
        // the registry was loaded by every intake and plan, unchanged: recorded once, with its hash
        let registry = store.events("policy-registry").await.unwrap();
        assert_eq!(registry.len(), 1, "{registry:?}");
        assert_eq!(
            (registry[0].kind.as_str(), registry[0].detail["registry_version"].as_str()),
            ("registry.loaded", Some("2.1"))
        );
        assert_eq!(registry[0].detail["sha256"], requested.detail["registry_sha256"]);
    }

    // an unreadable registry applies no exception (fail secure)
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "version: \"3\"\nowner: a@x.io\napprover: b@x.io\nroutes:\n  - { match: {}, category: nope }\n",
    )
    .unwrap();
    let out = plan_with(state, broken.to_str(), "2026-11-22T13:00:00Z");
    assert_eq!(out.status.code(), Some(2));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["summary"]["excepted"], 0);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown category \"nope\""));
}

#[test]
fn approvals_and_ticket_listing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    let state = state.to_str().unwrap();
    let hook = webhook(
        dir.path(),
        "d-200",
        "alice_tmp",
        r#"["INSERT"]"#,
        r#"{ "type": "table", "name": "billing.invoices" }"#,
        "2026-11-22T20:00:00Z",
    );
    let out = grantwarden(&["intake", hook.to_str().unwrap(), "--policy", &policy(), "--state", state, "--at", T0]);
    let created = &json_lines(&out)[0];
    assert_eq!(created["ticket"]["status"], "pending_approval", "soc2-ops needs one approval");
    let id = created["ticket"]["id"].as_str().unwrap();
    let own = grantwarden(&["tickets", "approve", id, "--by", "alice@example.com", "--state", state, "--at", T0]);
    assert_eq!(own.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&own.stderr).contains("cannot approve it"));
    let ok = grantwarden(&["tickets", "approve", id, "--by", "bob@example.com", "--state", state, "--at", T0]);
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("is active (1/1 approvals)"));
    let show: Value =
        serde_json::from_slice(&grantwarden(&["tickets", "show", id, "--state", state, "--at", T0]).stdout).unwrap();
    let history: Vec<&str> = show["history"].as_array().unwrap().iter().map(|e| e["what"].as_str().unwrap()).collect();
    assert_eq!(history, ["requested", "approved", "activated"]);
    let later = grantwarden(&["tickets", "show", id, "--state", state, "--at", "2026-11-23T00:00:00Z"]);
    assert_eq!(serde_json::from_slice::<Value>(&later.stdout).unwrap()["effective_status"], "expired");
    let list = grantwarden(&["tickets", "list", "--state", state, "--at", T0]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains(id) && text.contains("soc2-ops") && text.contains("active"), "{text}");
}

#[test]
fn simulate_replays_an_audit_log_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    std::fs::write(
        &log,
        concat!(
            "2026-11-22 10:00:01.123 UTC [42] admin@orders LOG:  AUDIT: SESSION,1,1,ROLE,GRANT,,,\"GRANT SELECT ON TABLE phi_claims.claims TO alice_tmp\",<none>\n",
            "2026-11-22 10:00:02.000 UTC [42] admin@orders LOG:  AUDIT: SESSION,2,1,READ,SELECT,,,\"SELECT 1\",<none>\n",
            "2026-11-22 10:00:03.000 UTC [42] admin@orders LOG:  AUDIT: SESSION,3,1,ROLE,GRANT,,,\"GRANT SELECT ON invoices TO bob\",<none>\n",
        ),
    )
    .unwrap();
    let out = grantwarden(&[
        "simulate",
        "--audit-log",
        log.to_str().unwrap(),
        "--policy",
        &policy(),
        "--target",
        "orders-prod",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2, "the READ line is not a grant");
    assert_eq!(lines[0]["decision"], "untagged", "audit lines carry no expiry: fail secure");
    assert_eq!(lines[0]["reason"], "no expiry: an exception must end");
    assert!(lines[1]["reason"].as_str().unwrap().contains("not schema-qualified"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 untagged (nothing was written)"));
    assert!(!Path::new(".grantwarden/state.db").exists() || std::fs::read_dir(dir.path()).unwrap().count() == 1);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "only the log itself");
}
