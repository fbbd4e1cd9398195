//! Just-in-time access through the binary: a read-only request issued at
//! once, a migration waiting for a dual approval, break-glass only during an
//! open incident, and the whole credential gone at the end of its window.

mod common;

use std::path::Path;

use common::{grantwarden, ok, policy};
use grantwarden_testkit::{TestDb, connect};
use serde_json::Value;

fn write_request(dir: &Path, name: &str, body: Value) -> String {
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, body.to_string()).unwrap();
    path.to_string_lossy().into_owned()
}

/// The last JSON line of an output, or the whole output when it is one pretty-printed document.
fn json(out: &str) -> Value {
    serde_json::from_str(out.trim()).or_else(|_| serde_json::from_str(out.lines().last().unwrap())).unwrap()
}

#[tokio::test]
async fn requests_on_three_paths_issue_exactly_the_scope_and_end_with_the_window() {
    let db = TestDb::new().await;
    db.exec(
        "CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int, customer_id int);
         INSERT INTO billing.invoices VALUES (1, 42), (2, 7);",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db").to_string_lossy().into_owned();
    let url = db.url();
    let request = |name: &str, path: &str, scope: Value, extra: Value| {
        let mut body = serde_json::json!({ "id": format!("{}-{name}", db.prefix), "identity": "alice@example.com",
            "target": "orders-prod", "path": path, "scope": scope, "duration": "20m", "justification": "CHG-1" });
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        write_request(dir.path(), name, body)
    };
    let run = |args: &[&str], at: &str| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--state", &state, "--at", at]);
        grantwarden(&all)
    };
    let rows = serde_json::json!({ "on": "rows", "schema": "billing", "table": "invoices",
        "predicate": { "column": "customer_id", "values": [42] } });

    // read-only: issued at once, shown once
    let file = request("ro", "read-only", rows.clone(), serde_json::json!({}));
    let out = json(&ok(&run(&["request", &file, "--policy", &policy(), "--database", &url], "2026-11-22T12:00:00Z")));
    assert_eq!(out["outcome"], "issued", "{out}");
    let (role, ticket) = (out["role"].as_str().unwrap().to_owned(), out["ticket"].as_str().unwrap().to_owned());
    assert_eq!(out["password"].as_str().map(str::len), Some(32));
    let me = connect(&db.url_as(&role)).await.unwrap();
    let views = out["views_schema"].as_str().unwrap();
    let n: i64 = me.query_one(&format!("SELECT count(*) FROM {views}.invoices"), &[]).await.unwrap().get(0);
    assert_eq!(n, 1, "customer 42 only");
    let again = run(&["access", "issue", &ticket, "--database", &url], "2026-11-22T12:01:00Z");
    assert_eq!(again.status.code(), Some(1), "a credential is shown once");
    let trail = ok(&run(&["audit", "export", "--user", &ticket, "--format", "json"], "2026-11-22T12:02:00Z"));
    assert!(
        trail.contains("access.issued") && !trail.contains(out["password"].as_str().unwrap()),
        "journaled, never the password"
    );

    // migration: pending until two approvers, one of them privileged
    let tables = serde_json::json!({ "on": "tables", "schema": "billing", "tables": ["invoices"] });
    let file = request("mig", "migration", tables.clone(), serde_json::json!({}));
    let out = json(&ok(&run(&["request", &file, "--policy", &policy(), "--database", &url], "2026-11-22T12:00:00Z")));
    assert_eq!((out["status"].as_str(), out["approvals_required"].as_u64()), (Some("pending_approval"), Some(2)));
    let mig = out["ticket"].as_str().unwrap().to_owned();
    assert_eq!(
        run(&["tickets", "approve", &mig, "--by", "alice@example.com"], "2026-11-22T12:01:00Z").status.code(),
        Some(1)
    );
    ok(&run(&["tickets", "approve", &mig, "--by", "bob@example.com"], "2026-11-22T12:01:00Z"));
    assert_eq!(
        run(&["tickets", "approve", &mig, "--by", "bob@example.com"], "2026-11-22T12:01:00Z").status.code(),
        Some(1)
    );
    ok(&run(&["tickets", "approve", &mig, "--by", "carol@example.com"], "2026-11-22T12:01:00Z"));
    assert_eq!(
        run(&["access", "issue", &mig, "--database", &url], "2026-11-22T12:02:00Z").status.code(),
        Some(1),
        "no privileged approver yet"
    );
    ok(&run(&["tickets", "approve", &mig, "--by", "ciso@example.com"], "2026-11-22T12:03:00Z"));
    let issued = json(&ok(&run(&["access", "issue", &mig, "--database", &url], "2026-11-22T12:04:00Z")));
    let writer = connect(&db.url_as(issued["role"].as_str().unwrap())).await.unwrap();
    writer.batch_execute("INSERT INTO billing.invoices VALUES (3, 42)").await.unwrap();

    // break-glass: refused without an open incident, issued during one
    let file = request("bg", "break-glass", tables.clone(), serde_json::json!({ "incident_id": "PD-42" }));
    let refused = run(&["request", &file, "--policy", &policy(), "--database", &url], "2026-11-22T12:00:00Z");
    assert_eq!(
        (refused.status.code(), json(&String::from_utf8_lossy(&refused.stdout))["outcome"].as_str()),
        (Some(1), Some("refused"))
    );
    let hook = write_request(
        dir.path(),
        "pd",
        serde_json::json!({ "event": { "event_type": "incident.triggered", "data": { "id": "PD-42" } } }),
    );
    ok(&run(&["incident", &hook], "2026-11-22T12:05:00Z"));
    // the grant webhook's break-glass category asks the same: an incident id alone is not enough
    let webhook = |name: &str, incident: &str| {
        write_request(
            dir.path(),
            name,
            serde_json::json!({ "delivery_id": name, "source": "pagerduty", "target": "orders-prod",
                "principal": "alice@example.com", "role": "alice_tmp", "privileges": ["DELETE"],
                "object": { "type": "table", "name": "billing.invoices" }, "requested_by": "alice@example.com",
                "incident_id": incident, "expires_at": "2026-11-22T12:30:00Z" }),
        )
    };
    let unknown = run(&["intake", &webhook("bg-unknown", "PD-99"), "--policy", &policy()], "2026-11-22T12:06:00Z");
    assert_eq!(unknown.status.code(), Some(1), "PD-99 was never reported open");
    assert!(String::from_utf8_lossy(&unknown.stdout).contains("incident PD-99 is not open"), "{unknown:?}");
    let open = ok(&run(&["intake", &webhook("bg-open", "PD-42"), "--policy", &policy()], "2026-11-22T12:06:00Z"));
    let open = json(&open);
    assert_eq!(
        (open["ticket"]["category"].as_str(), open["ticket"]["status"].as_str()),
        (Some("break-glass"), Some("active")),
        "{open}"
    );
    let glass = run(&["request", &file, "--policy", &policy(), "--database", &url], "2026-11-22T12:06:00Z");
    assert_eq!(json(&ok(&glass))["outcome"], "issued");
    assert!(String::from_utf8_lossy(&glass.stderr).contains("review is required"), "a high-priority alert");

    // renewed while the incident stays open, not after it is resolved
    let glass_ticket = json(&String::from_utf8_lossy(&glass.stdout))["ticket"].as_str().unwrap().to_owned();
    let renew = |at: &str| {
        run(
            &[
                "access",
                "renew",
                &glass_ticket,
                "--policy",
                &policy(),
                "--database",
                &url,
                "--by",
                "oncall@example.com",
            ],
            at,
        )
    };
    let renewed = json(&ok(&renew("2026-11-22T12:20:00Z")));
    assert_eq!(renewed["expires_at"], "2026-11-22T12:50:00Z", "30 minutes from the renewal");
    let resolved = write_request(
        dir.path(),
        "pd-resolved",
        serde_json::json!({ "event": { "event_type": "incident.resolved", "data": { "id": "PD-42" } } }),
    );
    ok(&run(&["incident", &resolved], "2026-11-22T12:30:00Z"));
    assert_eq!(renew("2026-11-22T12:40:00Z").status.code(), Some(1), "the incident is resolved");

    // governance metrics: the issued roles are not standing credentials; two break-glass uses this
    // month (the access request and the exception routed to the break-glass category)
    // governance metrics as JSON at 12:10; `extra` flags follow
    let registry = policy();
    let metrics_json = |extra: &[&str]| {
        let args =
            ["metrics", "--database", &url, "--target", "orders-prod", "--policy", &registry, "--format", "json"];
        run(&[&args[..], extra].concat(), "2026-11-22T12:10:00Z")
    };
    let metrics = metrics_json(&[]);
    let m = json(&String::from_utf8_lossy(&metrics.stdout).lines().collect::<Vec<_>>().join("\n"));
    assert_eq!(metrics.status.code(), Some(0), "below the threshold: {m}");
    let standing: Vec<&str> =
        m["standing_credentials"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert!(standing.contains(&"postgres") && !standing.contains(&role.as_str()), "{standing:?}");
    assert_eq!(m["break_glass_by_month"]["2026-11"], 2);
    assert_eq!(m["break_glass_threshold"], 3);

    // with pgaudit logs: the migration credential only read, the break-glass one never ran a statement
    let mig_role = issued["role"].as_str().unwrap();
    let log = dir.path().join("postgresql.log");
    std::fs::write(
        &log,
        format!(
            "2026-11-22 12:05:00.000 UTC [77] {mig_role}@orders LOG:  AUDIT: SESSION,1,1,READ,SELECT,,,\"SELECT * FROM billing.invoices\",<none>\n\
             2026-11-22 12:05:01.000 UTC [78] {role}@orders LOG:  AUDIT: SESSION,1,1,READ,SELECT,,,\"SELECT 1\",<none>\n"
        ),
    )
    .unwrap();
    let audited = metrics_json(&["--audit-log", log.to_str().unwrap()]);
    assert_eq!(audited.status.code(), Some(2), "over-privileged credentials alert");
    let m = json(&String::from_utf8_lossy(&audited.stdout));
    let over: Vec<(&str, Vec<&str>)> = m["over_privileged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (o["role"].as_str().unwrap(), o["used"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect())
        })
        .collect();
    assert_eq!(over.len(), 2, "{over:?}");
    assert!(over.contains(&(mig_role, vec!["READ"])), "the migration credential only read: {over:?}");
    assert!(over.iter().all(|(r, _)| *r != role.as_str()), "a read-only credential is never over-privileged");

    // at the end of the windows the sweeper takes everything away
    ok(&run(&["watch", "--once", "--database", &url, "--target", "orders-prod"], "2026-11-22T13:00:00Z"));
    let admin = db.client().await;
    let left: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_roles WHERE rolname = ANY($1)",
            &[&vec![role.clone(), issued["role"].as_str().unwrap().to_owned()]],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "every issued role is dropped");
    let schemas: i64 = admin
        .query_one("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'gw\\_access\\_%'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(schemas, 0, "and the views with them");
    assert!(me.query("SELECT 1", &[]).await.is_err());
}

#[tokio::test]
async fn a_request_nobody_approves_within_pending_ttl_expires_at_the_next_sweep() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db").to_string_lossy().into_owned();
    let url = db.url();
    let run = |args: &[&str], at: &str| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--state", &state, "--at", at]);
        grantwarden(&all)
    };
    let body = serde_json::json!({ "id": format!("{}-slow", db.prefix), "identity": "alice@example.com",
        "target": "orders-prod", "path": "migration", "scope": { "on": "schema", "schema": "public" },
        "duration": "4h", "justification": "CHG-9" });
    let file = write_request(dir.path(), "slow", body);
    let out = json(&ok(&run(&["request", &file, "--policy", &policy()], "2026-11-22T12:00:00Z")));
    assert_eq!(out["status"], "pending_approval", "{out}");
    let ticket = out["ticket"].as_str().unwrap().to_owned();
    let sweep = |at: &str| run(&["revoke", "--due", "--database", &url, "--target", "orders-prod"], at);
    let early = sweep("2026-11-22T12:59:00Z");
    assert!(!String::from_utf8_lossy(&early.stderr).contains("expired"), "within the hour it waits");
    let late = sweep("2026-11-22T13:00:00Z");
    assert!(String::from_utf8_lossy(&late.stderr).contains(&format!("{ticket} expired")), "{late:?}");
    let shown: Value = serde_json::from_str(&ok(&run(&["tickets", "show", &ticket], "2026-11-22T13:01:00Z"))).unwrap();
    assert_eq!(shown["status"], "expired");
    let trail = ok(&run(&["audit", "export", "--user", &ticket, "--format", "json"], "2026-11-22T13:02:00Z"));
    assert!(trail.contains("ticket.expired"), "{trail}");
    let late_approval = run(&["tickets", "approve", &ticket, "--by", "ciso@example.com"], "2026-11-22T13:03:00Z");
    assert_eq!(late_approval.status.code(), Some(1), "too late to approve");
}
