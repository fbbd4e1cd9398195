//! `plan` on a scan that missed chunks, against a real PostgreSQL: a catalog
//! the reading role may not read fails the chunks that read it, every time.
//! Revoking `pg_proc` in the test database fails every chunk that reads a
//! schema itself (whole schemas, the first part of a split one); revoking
//! `pg_auth_members` fails the cluster chunk. (A catalog's privileges are
//! kept per database, shared catalogs' too: other tests' databases are not
//! touched.) What was read is judged, the rest is not, and nothing is recorded.

mod common;

use std::process::Output;

use common::{grantwarden, write_baseline};
use grantwarden_core::audit::AuditJournal;
use grantwarden_core::snapshot::TargetId;
use grantwarden_core::store::FindingStore;
use grantwarden_local::LocalStore;
use grantwarden_testkit::TestDb;
use serde_json::Value;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `(kind, grantee, privilege, object)` of each finding of a JSON report.
fn findings(report: &Value) -> Vec<(String, String, String, String)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let o = &f["object"];
            let object = format!("{} {}.{}", text(&o["type"]), text(&o["schema"]), text(&o["name"]));
            (text(&f["kind"]), text(&f["grantee"]), text(&f["privilege"]), object)
        })
        .collect()
}

fn finding(kind: &str, grantee: &str, privilege: &str, object: &str) -> (String, String, String, String) {
    (kind.into(), grantee.into(), privilege.into(), object.into())
}

#[tokio::test]
async fn a_plan_missing_a_whole_schema_and_part_of_a_split_one_judges_only_what_it_read_and_records_nothing() {
    let db = TestDb::new().await;
    let (ro, rw, reader) = (db.ident("ro"), db.ident("rw"), db.ident("reader"));
    // big holds six tables: split by two into [-, c), [c, e), [e, -); public and small share a chunk
    db.exec(&format!(
        "CREATE ROLE {ro}; CREATE ROLE {rw}; CREATE ROLE {reader} LOGIN;
         CREATE SCHEMA big; CREATE SCHEMA small;
         CREATE TABLE big.a (id int); CREATE TABLE big.b (id int); CREATE TABLE big.c (id int);
         CREATE TABLE big.d (id int); CREATE TABLE big.e (id int); CREATE TABLE big.f (id int);
         CREATE TABLE small.t (id int);
         GRANT USAGE ON SCHEMA big, small TO {ro}; GRANT SELECT ON ALL TABLES IN SCHEMA big, small TO {ro};
         GRANT INSERT ON big.a, small.t TO {rw};
         -- drift the complete scan sees, in what the partial one will not read
         GRANT UPDATE ON small.t TO {rw};"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let roles = format!(
        "  {ro}:\n    grants:\n      - {{ privileges: [USAGE], on: schema, name: big }}\n      - {{ privileges: [SELECT], on: all_tables_in_schema, schema: big }}\n      - {{ privileges: [USAGE], on: schema, name: small }}\n      - {{ privileges: [SELECT], on: all_tables_in_schema, schema: small }}\n  {rw}:\n    grants:\n      - {{ privileges: [INSERT], on: table, name: big.a }}\n      - {{ privileges: [INSERT], on: table, name: small.t }}\n  {reader}:\n    login: true\n",
        ro = db.role("ro"),
        rw = db.role("rw"),
        reader = db.role("reader"),
    );
    let baseline = write_baseline(dir.path(), &db, &roles);
    let state = dir.path().join("state.db");
    let plan = |url: &str, at: &str| {
        grantwarden(&[
            "plan",
            "--database",
            url,
            "--baseline",
            &baseline,
            "--target",
            "orders-prod",
            "--state",
            state.to_str().unwrap(),
            "--max-relations-per-chunk",
            "2",
            "--format",
            "json",
            "--at",
            at,
        ])
    };

    // the whole catalog: one drift, opened in the store
    let whole = plan(&db.url(), "2026-11-25T10:00:00Z");
    assert_eq!(whole.status.code(), Some(2), "{}", stderr(&whole));
    let report: Value = serde_json::from_slice(&whole.stdout).unwrap();
    let update = finding("unauthorized", &db.role("rw"), "UPDATE", "table small.t");
    assert_eq!(findings(&report), vec![update.clone()]);

    // then the reader, who may not read pg_proc: big [-, c) and the chunk of public and small fail
    db.exec("REVOKE SELECT ON pg_catalog.pg_proc FROM PUBLIC;").await;
    db.exec(&format!("GRANT DELETE ON big.f TO {ro};")).await;
    let partial = plan(&db.url_as(&db.role("reader")), "2026-11-25T11:00:00Z");
    assert_eq!(partial.status.code(), Some(1), "{}", stderr(&partial));
    assert!(stderr(&partial).contains("incomplete"), "{}", stderr(&partial));
    let report: Value = serde_json::from_slice(&partial.stdout).unwrap();
    let summary = &report["summary"];
    assert_eq!((summary["status"].as_str(), summary["complete"].as_bool()), (Some("incomplete"), Some(false)));
    let failed: Vec<&str> = summary["failed_chunks"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(failed[0].starts_with("schema big [-, c): ") && failed[0].contains("permission denied"), "{failed:?}");
    assert!(failed[1].starts_with("schemas public..small (2): "), "{failed:?}");
    let not_judged: Vec<&str> = summary["not_judged"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(not_judged[0].starts_with("schema big [-, c): the schema itself"), "{not_judged:?}");
    assert!(not_judged[1].starts_with("schemas public, small: "), "{not_judged:?}");
    // big's USAGE, its tables (in part), small's USAGE and tables, rw's two INSERTs, PUBLIC's USAGE on public
    assert_eq!(summary["declarations_not_judged"], 7);
    // schema-wide SELECT still covers big.c to big.f; the grant planted there is the one finding
    assert_eq!(findings(&report), vec![finding("unauthorized", &db.role("ro"), "DELETE", "table big.f")]);

    // the store: the open finding stays open, the new one is not opened; the scan is journaled incomplete
    let store = LocalStore::open(&state).unwrap();
    let target = TargetId::new("orders-prod").unwrap();
    let open = store.open_with_age(&target).await.unwrap();
    let open: Vec<String> = open.iter().map(|(f, _)| format!("{} {}", f.privilege, f.object)).collect();
    assert_eq!(open, vec!["UPDATE table small.t".to_owned()]);
    let kinds: Vec<String> =
        store.events("orders-prod").await.unwrap().iter().map(|e| e.kind.as_str().to_owned()).collect();
    assert_eq!(kinds, vec!["finding.opened", "scan.completed", "scan.incomplete"]);
}

#[tokio::test]
async fn a_plan_missing_the_cluster_chunk_judges_no_role_and_still_the_grants_it_read() {
    let db = TestDb::new().await;
    let (ro, rw, reader) = (db.ident("ro"), db.ident("rw"), db.ident("reader"));
    db.exec(&format!(
        "CREATE ROLE {ro}; CREATE ROLE {rw} LOGIN CREATEDB; CREATE ROLE {reader} LOGIN;
         CREATE SCHEMA app; CREATE TABLE app.t (id int);
         GRANT USAGE ON SCHEMA app TO {ro}; GRANT SELECT, DELETE ON app.t TO {ro};"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    // rw should be a member of ro and may not create databases: role drift only the cluster chunk shows
    let roles = format!(
        "  {ro}:\n    grants:\n      - {{ privileges: [USAGE], on: schema, name: app }}\n      - {{ privileges: [SELECT], on: all_tables_in_schema, schema: app }}\n  {rw}:\n    login: true\n    member_of: [{ro}]\n  {reader}:\n    login: true\n",
        ro = db.role("ro"),
        rw = db.role("rw"),
        reader = db.role("reader"),
    );
    let baseline = write_baseline(dir.path(), &db, &roles);
    let plan = |url: &str| grantwarden(&["plan", "--database", url, "--baseline", &baseline, "--format", "json"]);
    let delete = finding("unauthorized", &db.role("ro"), "DELETE", "table app.t");

    let whole = plan(&db.url());
    assert_eq!(whole.status.code(), Some(2), "{}", stderr(&whole));
    let all = findings(&serde_json::from_slice(&whole.stdout).unwrap());
    assert_eq!(all.len(), 3, "CREATEDB, the missing membership and DELETE: {all:?}");
    assert!(all.contains(&delete));

    db.exec("REVOKE SELECT ON pg_catalog.pg_auth_members FROM PUBLIC;").await;
    let partial = plan(&db.url_as(&db.role("reader")));
    assert_eq!(partial.status.code(), Some(1), "{}", stderr(&partial));
    let report: Value = serde_json::from_slice(&partial.stdout).unwrap();
    assert_eq!(report["summary"]["status"], "incomplete");
    let failed = report["summary"]["failed_chunks"][0].as_str().unwrap();
    assert!(failed.starts_with("cluster: ") && failed.contains("permission denied"), "{failed}");
    assert!(report["summary"]["not_judged"][0].as_str().unwrap().starts_with("cluster: roles"));
    assert_eq!(findings(&report), vec![delete], "no role is judged; the grants read still are");
}
