//! The `grantwarden` binary end to end against a real PostgreSQL: exit codes,
//! the JSON contract, brownfield round trip, bad input.

mod common;

use std::process::Output;

use common::{grantwarden, write_baseline};
use grantwarden_core::snapshot::Snapshot;
use grantwarden_testkit::TestDb;
use serde_json::Value;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn plan_exits_0_without_drift_and_2_with_it_and_prints_the_json_contract() {
    let db = TestDb::new().await;
    let (ro, rw) = (db.ident("ro"), db.ident("rw"));
    db.exec(&format!(
        "CREATE ROLE {ro}; CREATE ROLE {rw} LOGIN; GRANT {ro} TO {rw};
         CREATE SCHEMA app; CREATE TABLE app.t (id int, email text);
         GRANT USAGE ON SCHEMA app TO {ro}; GRANT SELECT ON ALL TABLES IN SCHEMA app TO {ro};
         GRANT SELECT (id) ON app.t TO {rw};"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let roles = format!(
        "  {ro}:\n    grants:\n      - {{ privileges: [USAGE], on: schema, name: app }}\n      - {{ privileges: [SELECT], on: all_tables_in_schema, schema: app }}\n  {rw}:\n    login: true\n    member_of: [{ro}]\n    grants:\n      - {{ privileges: [SELECT], on: column, name: app.t, columns: [id] }}\n",
        ro = db.role("ro"),
        rw = db.role("rw")
    );
    let baseline = write_baseline(dir.path(), &db, &roles);
    let url = db.url();

    // plan as JSON against the test database and its baseline; `extra` flags follow
    let plan_json = |extra: &[&str]| {
        grantwarden(&[&["plan", "--database", &url, "--baseline", &baseline, "--format", "json"][..], extra].concat())
    };
    let clean = plan_json(&[]);
    assert_eq!(clean.status.code(), Some(0), "{}", stderr(&clean));
    let report: Value = serde_json::from_slice(&clean.stdout).unwrap();
    assert_eq!(report["summary"]["status"], "ok");
    assert_eq!(report["findings"], Value::Array(vec![]));

    db.exec(&format!("GRANT DELETE ON app.t TO {rw} WITH GRANT OPTION; CREATE TABLE app.later (id int);")).await;
    let drift = plan_json(&["--target", "orders-prod"]);
    assert_eq!(drift.status.code(), Some(2), "{}", stderr(&drift));
    let report: Value = serde_json::from_slice(&drift.stdout).unwrap();
    for key in ["target", "scan_id", "taken_at", "snapshot_sha256", "summary", "findings"] {
        assert!(report.get(key).is_some(), "report has {key}");
    }
    assert_eq!(report["target"], "orders-prod");
    let summary = &report["summary"];
    for key in [
        "unauthorized",
        "missing",
        "orphaned",
        "excepted",
        "expired_exception",
        "untagged",
        "score",
        "exception_weight",
        "status",
    ] {
        assert!(summary.get(key).is_some(), "summary has {key}");
    }
    assert_eq!((summary["unauthorized"].as_u64(), summary["missing"].as_u64()), (Some(1), Some(1)));
    let findings = report["findings"].as_array().unwrap();
    let unauthorized = findings.iter().find(|f| f["kind"] == "unauthorized").unwrap();
    assert_eq!(unauthorized["grantee"], db.role("rw").as_str());
    assert_eq!(unauthorized["privilege"], "DELETE");
    assert_eq!(unauthorized["grantable"], true);
    assert_eq!(
        unauthorized["object"],
        serde_json::json!({ "type": "table", "schema": "app", "name": "t", "column": null })
    );
    for key in ["severity", "score", "detail"] {
        assert!(unauthorized.get(key).is_some(), "finding has {key}");
    }
    // a table created after the baseline is covered by all_tables_in_schema: it lacks SELECT, so that is missing
    let missing = findings.iter().find(|f| f["kind"] == "missing").unwrap();
    assert_eq!((missing["privilege"].as_str(), missing["object"]["name"].as_str()), (Some("SELECT"), Some("later")));

    // a scoring file changes the weights: write class x10
    let scoring = dir.path().join("scoring.yaml");
    std::fs::write(&scoring, "class:\n  write: 20\n").unwrap();
    let heavy = plan_json(&["--scoring", scoring.to_str().unwrap()]);
    let heavy: Value = serde_json::from_slice(&heavy.stdout).unwrap();
    let delete = |r: &Value| {
        r["findings"].as_array().unwrap().iter().find(|f| f["privilege"] == "DELETE").unwrap()["score"].as_f64()
    };
    assert_eq!((delete(&report), delete(&heavy)), (Some(3.0), Some(30.0)), "write 2 -> 20, x1.5 for the grant option");

    let table = grantwarden(&["plan", "--database", &url, "--baseline", &baseline]);
    assert_eq!(table.status.code(), Some(2));
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("unauthorized") && text.contains("table app.t") && text.contains("status warn"), "{text}");
    let md = grantwarden(&["plan", "--database", &url, "--baseline", &baseline, "--format", "markdown"]);
    let text = String::from_utf8_lossy(&md.stdout);
    assert!(text.starts_with("# grantwarden plan: ") && text.contains("| Severity | Kind |"), "{text}");
}

#[tokio::test]
async fn generate_then_plan_reports_no_drift() {
    let db = TestDb::new().await;
    let (owner, ro, rw, odd) = (db.ident("owner"), db.ident("ro"), db.ident("rw"), db.ident("we\"ird ro'le ✓"));
    db.exec(&format!(
        "CREATE ROLE {owner}; CREATE ROLE {ro}; CREATE ROLE {rw} LOGIN CREATEDB VALID UNTIL '2030-06-01 00:00:00+00';
         CREATE ROLE {odd} LOGIN CONNECTION LIMIT 2;
         GRANT {ro} TO {rw} WITH ADMIN OPTION; GRANT {ro} TO {odd};
         CREATE SCHEMA app AUTHORIZATION {owner}; CREATE SCHEMA \"Odd.Schema\" AUTHORIZATION {owner};
         SET ROLE {owner};
         CREATE TABLE app.a (id int, secret text); CREATE TABLE app.b (id int); CREATE VIEW app.v AS SELECT id FROM app.a;
         CREATE SEQUENCE app.s; CREATE FUNCTION app.f(integer, text) RETURNS int LANGUAGE sql AS 'SELECT 1';
         CREATE TABLE \"Odd.Schema\".\"Tab le\" (\"Col\" int);
         GRANT USAGE ON SCHEMA app, \"Odd.Schema\" TO {ro};
         GRANT SELECT ON ALL TABLES IN SCHEMA app TO {ro};
         GRANT INSERT, UPDATE ON app.a TO {rw} WITH GRANT OPTION;
         GRANT UPDATE (secret), REFERENCES (secret) ON app.a TO {odd};
         GRANT SELECT (\"Col\") ON \"Odd.Schema\".\"Tab le\" TO {odd};
         GRANT USAGE, SELECT ON SEQUENCE app.s TO {rw};
         REVOKE EXECUTE ON FUNCTION app.f(integer, text) FROM PUBLIC;
         GRANT EXECUTE ON FUNCTION app.f(integer, text) TO {rw};
         GRANT SELECT ON app.b TO PUBLIC;
         ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO {ro};
         ALTER DEFAULT PRIVILEGES GRANT USAGE ON SEQUENCES TO {rw} WITH GRANT OPTION;
         RESET ROLE;
         GRANT CREATE ON DATABASE {db} TO {rw};",
        db = postgres_protocol::escape::escape_identifier(&db.name)
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("generated.yaml");
    let ignore = db.ignore_others().join(",");
    let url = db.url();
    let out =
        grantwarden(&["generate", "--database", &url, "--ignore-roles", &ignore, "-o", manifest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(
        text.contains("all_tables_in_schema") && text.contains("default_tables") && text.contains("valid_until"),
        "{text}"
    );

    let plan = grantwarden(&["plan", "--database", &url, "--baseline", manifest.to_str().unwrap(), "--format", "json"]);
    let report: Value = serde_json::from_slice(&plan.stdout).unwrap_or_default();
    assert_eq!(plan.status.code(), Some(0), "{}\n{text}\n{report:#}", stderr(&plan));

    // objects created later through the default privilege stay in line with the baseline
    db.exec(&format!("SET ROLE {owner}; CREATE TABLE app.c (id int);")).await;
    let plan = grantwarden(&["plan", "--database", &url, "--baseline", manifest.to_str().unwrap()]);
    assert_eq!(plan.status.code(), Some(0), "{}", String::from_utf8_lossy(&plan.stdout));
}

#[tokio::test]
async fn snapshot_is_canonical_json_with_its_sha256() {
    let db = TestDb::new().await;
    db.exec(&format!("CREATE ROLE {}; CREATE SCHEMA app; CREATE TABLE app.t (id int);", db.ident("ro"))).await;
    let out = grantwarden(&["snapshot", "--database", &db.url(), "--concurrency", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let snap: Snapshot = serde_json::from_slice(&out.stdout).unwrap();
    assert!(snap.complete);
    assert_eq!(snap.sha256, snap.state.sha256());
    let again = serde_json::to_string_pretty(&snap).unwrap() + "\n";
    assert_eq!(again.as_bytes(), out.stdout.as_slice(), "the output is already in canonical order");
}

#[tokio::test]
async fn a_bad_baseline_exits_1_naming_file_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("baseline.yaml");
    std::fs::write(
        &path,
        "version: 1\nroles:\n  app_rw:\n    grants:\n      - { privileges: [SELECT] , on: schema, name: s }\n",
    )
    .unwrap();
    // the baseline is read before anything connects: no database needed
    let out =
        grantwarden(&["plan", "--database", "postgres://nobody@127.0.0.1:1/x", "--baseline", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("baseline.yaml: roles.app_rw.grants[0].privileges[0]: SELECT cannot be granted on schema"),
        "{err}"
    );
    std::fs::write(
        &path,
        "version: 1\nroles:\n  app_rw:\n    grants:\n      - { privileges: [SELEC], on: table, name: s.t }\n",
    )
    .unwrap();
    let err = stderr(&grantwarden(&[
        "plan",
        "--database",
        "postgres://x@127.0.0.1:1/x",
        "--baseline",
        path.to_str().unwrap(),
    ]));
    assert!(err.contains("roles.app_rw.grants[0].privileges[0]: unknown privilege \"SELEC\" (line 5"), "{err}");
    let err =
        stderr(&grantwarden(&["plan", "--database", "postgres://x@127.0.0.1:1/x", "--baseline", "/nonexistent.yaml"]));
    assert!(err.contains("reading baseline /nonexistent.yaml"), "{err}");
    std::fs::write(&path, "version: 1\n").unwrap();
    let scoring = dir.path().join("scoring.yaml");
    std::fs::write(&scoring, "class:\n  write: -2\n").unwrap();
    let out = grantwarden(&[
        "plan",
        "--database",
        "postgres://x@127.0.0.1:1/x",
        "--baseline",
        path.to_str().unwrap(),
        "--scoring",
        scoring.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("scoring.yaml: class.write: must be a number of zero or more"), "{}", stderr(&out));
}

#[tokio::test]
async fn an_incomplete_scan_exits_1_and_says_which_chunk_failed() {
    let db = TestDb::new().await;
    db.exec(&format!(
        "CREATE ROLE {} LOGIN; CREATE SCHEMA app; REVOKE SELECT ON pg_catalog.pg_policy FROM PUBLIC;",
        db.ident("reader")
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let baseline = write_baseline(dir.path(), &db, "");
    let out = grantwarden(&[
        "plan",
        "--database",
        &db.url_as(&db.role("reader")),
        "--baseline",
        &baseline,
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["summary"]["complete"], false);
    assert_ne!(report["summary"]["status"], "ok");
    let failed = report["summary"]["failed_chunks"][0].as_str().unwrap();
    assert!(failed.contains("permission denied"), "{failed}");
    assert!(stderr(&out).contains("incomplete"));
}
