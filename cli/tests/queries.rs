//! Query-level audit through the binary, on a PostgreSQL that loads pgaudit:
//! a ticket's credential reads and exports, a standing role deletes, and
//! `grantwarden queries` attributes each statement to its person and ticket;
//! a log delivered again adds nothing; a record that does not read is kept
//! with its reason; the batch is on the target's chain by digest.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{grantwarden, ok, policy};
use futures::StreamExt;
use grantwarden_testkit::{TestDb, connect, pgaudit_logs};
use serde_json::Value;

fn lines(out: &str) -> Vec<Value> {
    out.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Waits until the server's log holds a record of `db` containing `needle` (the collector writes asynchronously).
async fn logged(log: &Path, db: &str, needle: &str) {
    for _ in 0..100 {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.lines().any(|l| l.contains(db)) && text.contains(needle) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} never logged {needle:?} for {db}", log.display());
}

#[tokio::test]
async fn each_statement_names_its_person_and_ticket_and_a_batch_counts_once() {
    let db = TestDb::with_pgaudit().await;
    let etl = db.role("etl");
    db.exec(&format!(
        "CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int, customer_id int, note text);
         INSERT INTO billing.invoices VALUES (1, 42, 'secret-note'), (2, 7, 'x'), (3, 7, 'y');
         CREATE ROLE {etl} LOGIN; GRANT USAGE ON SCHEMA billing TO {etl};
         GRANT SELECT, DELETE ON billing.invoices TO {etl};
         ALTER ROLE {etl} SET pgaudit.log = 'read, write'; ALTER ROLE {etl} SET pgaudit.log_rows = on;
         ALTER ROLE {etl} SET pgaudit.log_relation = on;",
        etl = db.ident("etl")
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db").to_string_lossy().into_owned();
    let body = serde_json::json!({ "id": format!("{}-ro", db.prefix), "identity": "alice@example.com",
        "target": "orders-prod", "path": "read-only", "duration": "1h", "justification": "CHG-1",
        "scope": { "on": "tables", "schema": "billing", "tables": ["invoices"] } });
    let request = dir.path().join("request.json");
    std::fs::write(&request, body.to_string()).unwrap();
    let issued: Value = serde_json::from_str(&ok(&grantwarden(&[
        "request",
        request.to_str().unwrap(),
        "--policy",
        &policy(),
        "--database",
        &db.url(),
        "--state",
        &state,
    ])))
    .unwrap();
    let (role, ticket) = (issued["role"].as_str().unwrap(), issued["ticket"].as_str().unwrap());
    // the credential is audited and held to the registry's limits, set on its role by issuing
    let admin = connect(&db.url()).await.unwrap();
    let settings: Vec<String> = admin
        .query(
            "SELECT unnest(s.setconfig) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
              WHERE r.rolname = $1 ORDER BY 1",
            &[&role],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        settings,
        [
            "idle_in_transaction_session_timeout=300000ms",
            "pgaudit.log=read, write, function, role, ddl",
            "pgaudit.log_relation=on",
            "pgaudit.log_rows=on",
            "statement_timeout=900000ms",
            "temp_file_limit=1048576kB",
        ]
    );
    assert_eq!(issued["left_out"], serde_json::json!([]), "{issued}");
    let server_roles: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_roles g WHERE g.rolname IN
               ('pg_read_server_files', 'pg_write_server_files', 'pg_execute_server_program')
               AND pg_has_role($1, g.oid, 'MEMBER')",
            &[&role],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(server_roles, 0, "a credential never reads or writes server files");

    // alice reads one customer's invoices and exports the table; the ETL role deletes
    let alice = connect(&db.url_as(role)).await.unwrap();
    let n = alice.query("SELECT * FROM billing.invoices WHERE note = 'secret-note'", &[]).await.unwrap().len();
    assert_eq!(n, 1);
    let copied: Vec<_> = alice.copy_out("COPY billing.invoices TO STDOUT").await.unwrap().collect::<Vec<_>>().await;
    assert!(!copied.is_empty());
    let etl_client = connect(&db.url_as(&etl)).await.unwrap();
    assert_eq!(etl_client.execute("DELETE FROM billing.invoices WHERE customer_id = 7", &[]).await.unwrap(), 2);
    let (csv, stderr) = pgaudit_logs();
    logged(&csv, &db.name, "customer_id = 7").await;

    let ingest = |file: &Path, state: &str| {
        ok(&grantwarden(&[
            "queries",
            "ingest",
            file.to_str().unwrap(),
            "--target",
            "orders-prod",
            "--dbname",
            &db.name,
            "--state",
            state,
            "--json",
        ]))
    };
    let first = &lines(&ingest(&csv, &state))[0];
    assert_eq!((first["delivered_before"].as_bool(), first["events"].as_u64()), (Some(false), Some(3)), "{first}");
    assert_eq!(first["rejected"], 0, "{first}");
    let list = |args: &[&str]| {
        let mut all = vec!["queries", "list", "--state", &state, "--json"];
        all.extend_from_slice(args);
        lines(&ok(&grantwarden(&all)))
    };
    let alices = list(&["--person", "alice@example.com"]);
    assert_eq!(alices.len(), 2, "{alices:?}");
    assert!(alices.iter().all(|e| e["ticket"] == ticket && e["user"] == role), "{alices:?}");
    let read = &alices[0];
    assert_eq!((read["class"].as_str(), read["command"].as_str()), (Some("READ"), Some("SELECT")));
    assert_eq!((read["object"].as_str(), read["rows"].as_i64()), (Some("billing.invoices"), Some(1)));
    assert_eq!(read["statement"], "SELECT * FROM billing.invoices WHERE note = ?", "literals are redacted");
    assert!(!read.to_string().contains("secret-note"));
    assert_eq!(
        read["statement_sha256"].as_str(),
        Some(grantwarden_core::statement::sha256("SELECT * FROM billing.invoices WHERE note = 'secret-note'").as_str())
    );
    let export = &alices[1];
    assert_eq!((export["command"].as_str(), export["copy"].as_str()), (Some("COPY"), Some("TO STDOUT")));
    assert_eq!(export["object"], "billing.invoices");
    let deletes = list(&["--class", "write", "--object", "billing.*"]);
    assert_eq!(deletes.len(), 1);
    assert_eq!((deletes[0]["person"].as_str(), deletes[0]["rows"].as_i64()), (Some(&*format!("role:{etl}")), Some(2)));
    assert_eq!(deletes[0]["ticket"], Value::Null);
    assert_eq!(list(&["--ticket", ticket, "--command", "copy"]).len(), 1);
    assert!(list(&["--to", "2000-01-01T00:00:00Z"]).is_empty());

    // the same file again: nothing added, nothing journaled
    let again = &lines(&ingest(&csv, &state))[0];
    assert_eq!(again["delivered_before"], true, "{again}");
    assert_eq!(list(&[]).len(), 3);

    // the batch is on the target's chain, once, by its sha256 (of the bytes ingested: the log grows)
    ok(&grantwarden(&["audit", "verify", "--state", &state]));
    let conn = rusqlite::Connection::open(&state).unwrap();
    let bodies: Vec<String> = conn
        .prepare("SELECT body FROM journal WHERE chain = 'orders-prod' AND body LIKE '%\"queries.ingested\"%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let event: Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(event["detail"]["sha256"], first["sha256"]);
    assert_eq!(event["detail"]["events"], 3);

    // the stderr log, with the documented prefix, gives the same statements (another state file)
    logged(&stderr, &db.name, "customer_id = 7").await;
    let other = dir.path().join("other.db").to_string_lossy().into_owned();
    let from_stderr = &lines(&ingest(&stderr, &other))[0];
    assert_eq!(from_stderr["events"], 3, "{from_stderr}");

    // a record that does not read is kept with its line and reason; the rest still counts
    let broken = dir.path().join("broken.csv");
    let mut text = std::fs::read_to_string(&csv).unwrap();
    text.push_str("not,a,log,record\n");
    std::fs::write(&broken, &text).unwrap();
    let third = dir.path().join("third.db").to_string_lossy().into_owned();
    let b = &lines(&ingest(&broken, &third))[0];
    assert_eq!((b["events"].as_u64(), b["rejected"].as_u64()), (Some(3), Some(1)), "{b}");
    let kept = lines(&ok(&grantwarden(&["queries", "rejected", "--state", &third, "--json"])));
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["text"], "not,a,log,record");
    assert_eq!(kept[0]["line"].as_u64(), Some(text.lines().count() as u64));
    assert!(kept[0]["reason"].as_str().unwrap().contains("4 columns"), "{}", kept[0]);
}
