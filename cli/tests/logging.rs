//! Logs never show a credential: a just-in-time credential issued with
//! RUST_LOG at debug or trace, the PostgreSQL driver's statement logging
//! asked for by name, leaves no SCRAM verifier on stderr.

mod common;

use std::process::Command;

use common::{ok, policy, watch_once};
use grantwarden_testkit::TestDb;

#[tokio::test]
async fn an_issue_at_debug_level_logs_no_scram_verifier() {
    let db = TestDb::new().await;
    db.exec("CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int);").await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db").to_string_lossy().into_owned();
    let levels = ["debug", "trace,tokio_postgres=trace,postgres_protocol=trace", "tokio_postgres::simple_query=debug"];
    for (i, rust_log) in levels.into_iter().enumerate() {
        // a request of its own each time, so each run issues a credential
        let request = dir.path().join(format!("ro-{i}.json"));
        let body = serde_json::json!({ "id": format!("{}-log{i}", db.prefix), "identity": format!("user{i}@example.com"),
            "target": "orders-prod", "path": "read-only", "duration": "20m", "justification": "CHG-1",
            "scope": { "on": "tables", "schema": "billing", "tables": ["invoices"] } });
        std::fs::write(&request, body.to_string()).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_grantwarden"))
            .args(["request", &request.to_string_lossy(), "--policy", &policy(), "--database", &db.url()])
            .args(["--state", &state, "--at", "2026-11-22T12:00:00Z", "-vv"])
            .env("RUST_LOG", rust_log)
            .env_remove("GRANTWARDEN_DATABASE_URL")
            .env_remove("GRANTWARDEN_STATE")
            .env_remove("GRANTWARDEN_POLICY")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let issued: serde_json::Value = serde_json::from_str(ok(&out).trim()).unwrap();
        assert_eq!(issued["outcome"], "issued", "{issued}");
        // without the cap this run logs every statement at debug, the CREATE ROLE
        // with its verifier among them (grantwarden-aws's logging test shows the same
        // lines with and without it)
        assert!(!stderr.contains("SCRAM-SHA-256$"), "RUST_LOG={rust_log}: a verifier in the logs:\n{stderr}");
        assert!(!stderr.to_ascii_lowercase().contains("password '"), "RUST_LOG={rust_log}:\n{stderr}");
    }
    // the windows end: the sweeper drops the roles issued here
    let url = db.url();
    ok(&watch_once(&url, &state, "2026-11-22T13:00:00Z", &[]));
}
