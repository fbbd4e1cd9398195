//! Revocation and remediation through the binary: a webhook's ticket revoked
//! by `revoke --due` after a dry run, an early end asked with `tickets revoke`,
//! `watch --once`, `apply` in its three modes with an excepted grant, and the
//! journal of a ticket write whose writer died finished by the next sweep.

mod common;

use std::path::Path;

use common::{billing_baseline, grantwarden, ok, policy, watch_once};

use grantwarden_testkit::TestDb;
use serde_json::Value;

fn intake(dir: &Path, state: &str, name: &str, role: &str, object: &str, at: &str, expires: &str) -> String {
    let body = format!(
        r#"{{ "delivery_id": "{name}", "source": "okta-workflows", "target": "orders-prod",
  "principal": "alice@example.com", "role": "{role}", "privileges": ["SELECT", "USAGE"], "object": {object},
  "justification": "INC-4411", "requested_by": "alice@example.com", "expires_at": "{expires}" }}"#
    );
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, body).unwrap();
    let out =
        ok(&grantwarden(&["intake", path.to_str().unwrap(), "--policy", &policy(), "--state", state, "--at", at]));
    let v: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    v["ticket"]["id"].as_str().unwrap().to_owned()
}

async fn has_on_invoices(db: &TestDb, role: &str, privilege: &str) -> bool {
    let sql = "SELECT has_table_privilege($1, 'billing.invoices', $2)";
    db.client().await.query_one(sql, &[&role, &privilege]).await.unwrap().get(0)
}

async fn has_usage(db: &TestDb, role: &str) -> bool {
    db.client().await.query_one("SELECT has_schema_privilege($1, 'billing', 'USAGE')", &[&role]).await.unwrap().get(0)
}

#[tokio::test]
async fn revoke_due_after_a_dry_run_and_an_early_end_on_request() {
    let db = TestDb::new().await;
    let (alice, bob) = (db.role("alice_tmp"), db.role("bob_tmp"));
    db.exec(&format!(
        "CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int);
         CREATE ROLE {a}; CREATE ROLE {b};
         GRANT USAGE ON SCHEMA billing TO {a}, {b}; GRANT SELECT ON billing.invoices TO {a}, {b};",
        a = db.ident("alice_tmp"),
        b = db.ident("bob_tmp")
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    let state = state.to_str().unwrap();
    let schema = r#"{ "type": "schema", "name": "billing" }"#;
    let a = intake(dir.path(), state, "d-a", &alice, schema, "2026-11-22T12:00:00Z", "2026-11-22T14:00:00Z");
    let b = intake(dir.path(), state, "d-b", &bob, schema, "2026-11-22T12:00:00Z", "2026-11-22T18:00:00Z");
    let url = db.url();
    let revoke = |extra: &[&str], at: &str| {
        let mut args = vec!["revoke", "--database", &url, "--target", "orders-prod", "--state", state, "--at", at];
        args.extend_from_slice(extra);
        grantwarden(&args)
    };

    // before expiry nothing is due
    let early = ok(&revoke(&["--due"], "2026-11-22T13:00:00Z"));
    assert!(early.is_empty(), "{early}");

    let dry = ok(&revoke(&["--due", "--dry-run"], "2026-11-22T14:00:30Z"));
    assert!(dry.contains(&format!("{a} dry_run")), "{dry}");
    assert!(dry.contains(&format!("REVOKE USAGE ON SCHEMA \"billing\" FROM \"{alice}\";")), "{dry}");
    assert!(dry.contains(&format!("REVOKE SELECT ON TABLE \"billing\".\"invoices\" FROM \"{alice}\";")), "{dry}");
    assert!(has_usage(&db, &alice).await, "a dry run changes nothing");

    let done = ok(&revoke(&["--due", "--concurrency", "4"], "2026-11-22T14:00:30Z"));
    assert!(done.contains(&format!("{a} revoked (30000 ms after the window ended")), "{done}");
    assert!(!has_usage(&db, &alice).await);
    assert!(has_usage(&db, &bob).await, "bob's ticket runs until 18:00");
    let shown: Value = serde_json::from_str(&ok(&grantwarden(&["tickets", "show", &a, "--state", state]))).unwrap();
    assert_eq!(shown["status"], "revoked");
    assert_eq!(shown["revocation"]["latency_ms"], 30000);
    assert_eq!(shown["revocation"]["trigger"], "operator");
    let listed = ok(&grantwarden(&["tickets", "list", "--state", state]));
    assert!(listed.contains("30000 ms after the end (operator)"), "{listed}");

    // bob's access is ended early on request, then by the sweeper
    let asked = grantwarden(&[
        "tickets",
        "revoke",
        &b,
        "--by",
        "ciso@example.com",
        "--reason",
        "left",
        "--state",
        state,
        "--at",
        "2026-11-22T15:00:00Z",
    ]);
    ok(&asked);
    let again = grantwarden(&["tickets", "revoke", &b, "--by", "ciso@example.com", "--state", state]);
    assert_eq!(again.status.code(), Some(1), "asking twice is refused");
    let swept = ok(&watch_once(&url, state, "2026-11-22T15:00:02Z", &["--json"]));
    let line: Value = serde_json::from_str(swept.trim()).unwrap();
    assert_eq!((line["ticket"].as_str(), line["outcome"].as_str()), (Some(b.as_str()), Some("revoked")));
    assert_eq!(line["latency_ms"], 2000);
    assert!(!has_usage(&db, &bob).await);
    assert!(ok(&watch_once(&url, state, "2026-11-22T15:00:02Z", &[])).is_empty(), "nothing left to sweep");

    // the journal verifies with the revocations on it
    ok(&grantwarden(&["audit", "verify", "--state", state, "--chain", "orders-prod"]));
}

#[tokio::test]
async fn apply_reports_revokes_and_converges_but_never_touches_an_excepted_grant() {
    let db = TestDb::new().await;
    let (ro, stray, tmp) = (db.role("app_ro"), db.role("stray"), db.role("tmp"));
    db.exec(&format!(
        "CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int);
         CREATE ROLE {ro}; CREATE ROLE {stray}; CREATE ROLE {tmp};
         GRANT USAGE ON SCHEMA billing TO {ro}; GRANT INSERT ON billing.invoices TO {ro};
         GRANT USAGE ON SCHEMA billing TO {tmp}; GRANT SELECT ON billing.invoices TO {tmp};",
        ro = db.ident("app_ro"),
        stray = db.ident("stray"),
        tmp = db.ident("tmp"),
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    let state = state.to_str().unwrap();
    let baseline = dir.path().join("baseline.yaml");
    billing_baseline(&baseline, &ro, &[&stray, &tmp], &db.ignore_others());
    let schema = r#"{ "type": "schema", "name": "billing" }"#;
    let t = intake(dir.path(), state, "d-tmp", &tmp, schema, "2026-11-22T12:00:00Z", "2026-11-22T18:00:00Z");
    let url = db.url();
    let example = policy();
    let apply_under = |policy: &str, extra: &[&str]| {
        let mut args = vec![
            "apply",
            "--database",
            &url,
            "--baseline",
            baseline.to_str().unwrap(),
            "--target",
            "orders-prod",
            "--state",
            state,
            "--policy",
            policy,
            "--at",
            "2026-11-22T13:00:00Z",
        ];
        args.extend_from_slice(extra);
        grantwarden(&args)
    };
    let apply = |extra: &[&str]| apply_under(&example, extra);
    let report = ok(&apply(&[]));
    assert!(report.contains(&format!("REVOKE INSERT ON TABLE \"billing\".\"invoices\" FROM \"{ro}\";")), "{report}");
    assert!(report.contains(&format!("GRANT SELECT ON TABLE \"billing\".\"invoices\" TO \"{ro}\";")), "{report}");
    assert!(report.contains(&format!("excepted by active ticket {t}")), "{report}");
    assert!(!report.contains(&format!("FROM \"{tmp}\"")), "the excepted grant is never in the SQL:\n{report}");
    assert!(has_on_invoices(&db, &ro, "INSERT").await, "report changes nothing, even with --execute");
    ok(&apply(&["--mode", "report", "--execute"]));
    assert!(has_on_invoices(&db, &ro, "INSERT").await);

    let revoked = ok(&apply(&["--mode", "revoke-unauthorized", "--execute"]));
    assert!(revoked.contains("applied"), "{revoked}");
    assert!(!has_on_invoices(&db, &ro, "INSERT").await, "the unauthorized INSERT is gone");
    assert!(!has_on_invoices(&db, &ro, "SELECT").await, "missing is granted only by converge");

    ok(&apply(&["--mode", "converge", "--execute"]));
    assert!(has_on_invoices(&db, &ro, "SELECT").await, "converge grants what is missing");
    assert!(has_usage(&db, &tmp).await, "the excepted grant is untouched");

    // an unreadable registry lays no exception over the plan (fail secure for
    // drift), yet the ticket in force still holds its grants back from a revoke
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "version: [").unwrap();
    let held = ok(&apply_under(broken.to_str().unwrap(), &["--mode", "revoke-unauthorized", "--execute"]));
    assert!(held.contains("held back: revoke SELECT on table billing.invoices"), "{held}");
    assert!(held.contains("held back: revoke USAGE on schema billing"), "{held}");
    assert!(!held.contains(&format!("FROM \"{tmp}\"")), "{held}");
    assert!(has_usage(&db, &tmp).await && has_on_invoices(&db, &tmp, "SELECT").await, "the excepted grant stays");

    // converged: planning now shows only the exception, and applying again changes nothing
    let again = ok(&apply(&["--mode", "converge", "--execute"]));
    assert!(again.contains("0 change(s)"), "{again}");
    let _ = stray;
    let events =
        ok(&grantwarden(&["audit", "export", "--user", "grantwarden:apply", "--state", state, "--format", "json"]));
    assert!(events.contains("remediation.planned") && events.contains("remediation.applied"), "{events}");
}

/// A run that stored a ticket change and died before journaling it leaves the
/// events in the ticket's outbox; `revoke --due` leaves them alone while their
/// writer may still be at work, and appends them, once, when the claim has run out.
#[tokio::test]
async fn revoke_due_finishes_the_journal_of_a_ticket_write_whose_writer_died() {
    use grantwarden_core::audit::event::OnTicket;
    use grantwarden_core::audit::{AuditJournal, NewEvent};
    use grantwarden_core::store::{TicketStore, Versioned};
    use grantwarden_local::LocalStore;

    let db = TestDb::new().await;
    let alice = db.role("alice_tmp");
    db.exec(&format!("CREATE SCHEMA billing; CREATE ROLE {};", db.ident("alice_tmp"))).await;
    let dir = tempfile::tempdir().unwrap();
    let state_path = dir.path().join("state.db");
    let state = state_path.to_str().unwrap();
    let schema = r#"{ "type": "schema", "name": "billing" }"#;
    let a = intake(dir.path(), state, "d-a", &alice, schema, "2026-11-22T12:00:00Z", "2026-11-22T18:00:00Z");
    {
        let store = LocalStore::open(&state_path).unwrap();
        let Versioned { value: t, version } = store.ticket(&a).await.unwrap().unwrap();
        let at = "2026-11-22T12:01:00Z".parse().unwrap();
        let approved = NewEvent::for_ticket(&t, OnTicket::Approved, "ciso@example.com", at);
        // the write lands with its event; the writer dies before appending it
        store.update_ticket(&t, version, &[approved]).await.unwrap();
    }
    let approvals = || async {
        let store = LocalStore::open(&state_path).unwrap();
        let events = store.events("orders-prod").await.unwrap();
        events.iter().filter(|e| e.kind.as_str() == "ticket.approved" && e.subject == a).count()
    };
    let url = db.url();
    let sweep = |at: &str| {
        grantwarden(&["revoke", "--due", "--database", &url, "--target", "orders-prod", "--state", state, "--at", at])
    };

    let early = sweep("2026-11-22T12:05:00Z");
    ok(&early);
    assert_eq!(approvals().await, 0, "five minutes on, its writer may still be at work");
    let late = sweep("2026-11-22T12:08:00Z");
    ok(&late);
    let said = String::from_utf8_lossy(&late.stderr);
    assert!(said.contains("journaled 1 event(s) of 1 ticket write(s) an earlier run left unfinished"), "{said}");
    assert_eq!(approvals().await, 1);
    ok(&sweep("2026-11-22T12:30:00Z"));
    assert_eq!(approvals().await, 1, "once");
    let store = LocalStore::open(&state_path).unwrap();
    let target = grantwarden_core::snapshot::TargetId::new("orders-prod").unwrap();
    assert!(store.unjournaled(&target).await.unwrap().is_empty());
    let events = store.events("orders-prod").await.unwrap();
    let head = store.head("orders-prod").await.unwrap().unwrap();
    grantwarden_core::audit::verify("orders-prod", &events, Some((head.0, &head.1))).expect("the chain is intact");
}
