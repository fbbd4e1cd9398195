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

/// Waits until the server's log holds a line of `db` containing `needle` (the collector writes asynchronously).
async fn logged(log: &Path, db: &str, needle: &str) {
    for _ in 0..100 {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        // the log outlives test runs: the needle must be on a record of this test's database
        if text.lines().any(|l| l.contains(db) && l.contains(needle)) {
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
    // the log is shared with the other tests on this cluster and grows: ingest a copy of it as it is now
    let snapshot = dir.path().join("postgresql.csv");
    std::fs::copy(&csv, &snapshot).unwrap();
    let first = &lines(&ingest(&snapshot, &state))[0];
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

    // the same file again: nothing added, nothing journaled; the log as it has grown since: its
    // records already ingested are the same events
    let again = &lines(&ingest(&snapshot, &state))[0];
    assert_eq!(again["delivered_before"], true, "{again}");
    etl_client.query("SELECT count(*) FROM billing.invoices WHERE id > 0", &[]).await.unwrap();
    logged(&csv, &db.name, "WHERE id > 0").await;
    let grown = &lines(&ingest(&csv, &state))[0];
    assert_eq!((grown["events"].as_u64(), grown["new_events"].as_u64()), (Some(4), Some(1)), "{grown}");
    assert_eq!(list(&[]).len(), 4);

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
    assert_eq!(bodies.len(), 2, "the copy, then the grown log: {bodies:?}");
    let event: Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(event["detail"]["sha256"], first["sha256"]);
    assert_eq!(event["detail"]["events"], 3);

    // the stderr log, with the documented prefix, gives the same statements (another state file)
    logged(&stderr, &db.name, "WHERE id > 0").await;
    let other = dir.path().join("other.db").to_string_lossy().into_owned();
    let from_stderr = &lines(&ingest(&stderr, &other))[0];
    assert_eq!(from_stderr["events"], 4, "{from_stderr}");

    // a record that does not read is kept with its line and reason; the rest still counts
    let broken = dir.path().join("broken.csv");
    let mut text = std::fs::read_to_string(&snapshot).unwrap();
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

#[tokio::test]
async fn the_four_questions_have_exact_answers_and_an_export_ends_the_ticket() {
    let db = TestDb::with_pgaudit().await;
    db.exec(
        "CREATE SCHEMA billing;
         CREATE TABLE billing.customers (id int, email text, ssn text);
         INSERT INTO billing.customers VALUES (1, 'a@x', '1'), (2, 'b@y', '2'), (3, 'c@z', '3');
         CREATE TABLE billing.invoices (id int, customer_id int); INSERT INTO billing.invoices VALUES (1, 1), (2, 2);
         CREATE TABLE public.orders (id int); INSERT INTO public.orders SELECT generate_series(1, 20);",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db").to_string_lossy().into_owned();
    // the example registry, with exports past 10 rows ending the ticket
    let registry = dir.path().join("registry.yaml");
    let text = std::fs::read_to_string(policy()).unwrap();
    std::fs::write(
        &registry,
        text.replace("export_rows: 10000", "export_rows: 10").replace("on_export: alert", "on_export: revoke"),
    )
    .unwrap();
    let registry = registry.to_string_lossy().into_owned();
    let url = db.url();
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--state", &state]);
        grantwarden(&all)
    };
    let request = |name: &str, body: Value| {
        let path = dir.path().join(format!("{name}.json"));
        let mut body = body;
        body["id"] = format!("{}-{name}", db.prefix).into();
        body["target"] = "orders-prod".into();
        body["justification"] = "CHG-7".into();
        body["duration"] = "1h".into();
        std::fs::write(&path, body.to_string()).unwrap();
        let out: Value = serde_json::from_str(&ok(&run(&[
            "request",
            path.to_str().unwrap(),
            "--policy",
            &registry,
            "--database",
            &url,
        ])))
        .unwrap();
        out
    };

    // a migration approved with its script: dave runs it, and one statement more
    let script = "INSERT INTO billing.invoices VALUES (10, 1);\nUPDATE billing.invoices SET customer_id = 3 WHERE id = 2;\n\
                  -- clean up\nDELETE FROM billing.invoices WHERE id = 10;";
    let mig = request(
        "mig",
        serde_json::json!({ "identity": "dave@example.com", "path": "migration", "script": { "text": script },
            "scope": { "on": "tables", "schema": "billing", "tables": ["invoices"] } }),
    );
    let mig_ticket = mig["ticket"].as_str().unwrap().to_owned();
    ok(&run(&["tickets", "approve", &mig_ticket, "--by", "eng-manager@example.com"]));
    ok(&run(&["tickets", "approve", &mig_ticket, "--by", "ciso@example.com"]));
    let issued: Value = serde_json::from_str(&ok(&run(&["access", "issue", &mig_ticket, "--database", &url]))).unwrap();
    let dave = connect(&db.url_as(issued["role"].as_str().unwrap())).await.unwrap();
    for statement in [
        "INSERT INTO billing.invoices VALUES (10, 1)",
        "UPDATE billing.invoices SET customer_id = 3 WHERE id = 2",
        "DELETE FROM billing.invoices WHERE id = 1",
        "DELETE FROM billing.invoices WHERE id = 10",
    ] {
        dave.batch_execute(statement).await.unwrap();
    }

    // alice reads a sensitive table, exports it, and reads 20 orders at once (past 10: an export)
    let ro = request(
        "ro",
        serde_json::json!({ "identity": "alice@example.com", "path": "read-only",
            "scope": { "on": "tables", "schema": "public", "tables": ["orders"] } }),
    );
    let ro_ticket = ro["ticket"].as_str().unwrap().to_owned();
    assert_eq!(ro["outcome"], "issued", "{ro}");
    let sens = request(
        "sens",
        serde_json::json!({ "identity": "alice@example.com", "path": "read-only",
            "scope": { "on": "tables", "schema": "billing", "tables": ["customers"] } }),
    );
    let sens_ticket = sens["ticket"].as_str().unwrap().to_owned();
    ok(&run(&["tickets", "approve", &sens_ticket, "--by", "bob@example.com"]));
    let sens_issued: Value =
        serde_json::from_str(&ok(&run(&["access", "issue", &sens_ticket, "--database", &url]))).unwrap();
    let alice = connect(&db.url_as(ro["role"].as_str().unwrap())).await.unwrap();
    assert_eq!(alice.query("SELECT * FROM public.orders", &[]).await.unwrap().len(), 20);
    let alice_sens = connect(&db.url_as(sens_issued["role"].as_str().unwrap())).await.unwrap();
    // masked tables are read through the ticket's views; billing.customers is masked in the example registry
    let views = sens_issued["views_schema"].as_str().unwrap();
    assert_eq!(alice_sens.query(&format!("SELECT * FROM {views}.customers"), &[]).await.unwrap().len(), 3);
    let copied: Vec<_> = alice_sens
        .copy_out(&format!("COPY (SELECT * FROM {views}.customers) TO STDOUT"))
        .await
        .unwrap()
        .collect::<Vec<_>>()
        .await;
    assert_eq!(copied.len(), 3);
    let (csv, _) = pgaudit_logs();
    logged(&csv, &db.name, "COPY (SELECT * FROM").await;

    let out = ok(&run(&[
        "queries",
        "ingest",
        csv.to_str().unwrap(),
        "--target",
        "orders-prod",
        "--dbname",
        &db.name,
        "--policy",
        &registry,
        "--json",
    ]));
    let ingested = &lines(&out)[0];
    assert_eq!(ingested["alerts"], 2, "the COPY TO and the 20-row read: {ingested}");
    // on_export: revoke ended both of alice's tickets early; the migration goes on
    let status = |t: &str| {
        let shown: Value = serde_json::from_str(&ok(&run(&["tickets", "show", t]))).unwrap();
        shown["status"].as_str().unwrap().to_owned()
    };
    assert_eq!(
        (status(&ro_ticket), status(&sens_ticket)),
        ("revoke_requested".to_owned(), "revoke_requested".to_owned())
    );
    assert_eq!(status(&mig_ticket), "active");
    ok(&run(&["revoke", "--due", "--database", &url, "--target", "orders-prod"]));
    assert!(connect(&db.url_as(ro["role"].as_str().unwrap())).await.is_err(), "the credential is gone");

    let report = |args: &[&str]| {
        let mut all = vec!["report"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--format", "json"]);
        let o = run(&all);
        let v: Value = serde_json::from_str(&String::from_utf8_lossy(&o.stdout))
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
        (o.status.code(), v)
    };
    // who read the sensitive table: alice, through her second ticket, its view over billing.customers
    let (_, sensitive) = report(&["sensitive-reads", "--policy", &registry]);
    let reads = sensitive["reads"].as_array().unwrap();
    assert!(
        reads.iter().all(|r| r["person"] == "alice@example.com" && r["ticket"] == sens_ticket.as_str()),
        "{sensitive}"
    );
    assert!(!reads.is_empty(), "{sensitive}");
    // exports: exactly the COPY and the 20-row read
    let (_, exports) = report(&["exports", "--policy", &registry]);
    let kinds: Vec<&str> = exports["exports"].as_array().unwrap().iter().map(|x| x["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["large_result", "copy_to"], "{exports}");
    // the migration: three statements as approved, one extra
    let (code, migration) = report(&["migration", "--ticket", &mig_ticket]);
    assert_eq!(code, Some(2), "{migration}");
    let check = &migration["check"];
    assert_eq!(
        (check["script_statements"].as_u64(), check["executed"].as_u64(), check["matched"].as_u64()),
        (Some(3), Some(4), Some(3))
    );
    let extra: Vec<&str> =
        check["extra"].as_array().unwrap().iter().map(|s| s["statement"].as_str().unwrap()).collect();
    assert_eq!(extra, ["DELETE FROM billing.invoices WHERE id = ?"]);
    assert!(check["missing"].as_array().unwrap().is_empty() && check["reordered"].as_array().unwrap().is_empty());
    // DELETE/UPDATE/TRUNCATE by person: dave's two deletes and one update
    let (_, changes) = report(&["data-changes"]);
    let rows: Vec<(String, String, u64)> = changes["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["person"].as_str().unwrap().into(),
                c["command"].as_str().unwrap().into(),
                c["statements"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [("dave@example.com".into(), "DELETE".into(), 2), ("dave@example.com".into(), "UPDATE".into(), 1)]
    );
    // alice's evidence carries her query activity and exports
    let (_, evidence) = report(&["evidence", "--user", "alice@example.com", "--policy", &registry]);
    assert_eq!(evidence["queries"]["exports"].as_array().unwrap().len(), 2, "{}", evidence["queries"]);
    assert!(evidence["queries"]["statements"].as_u64().unwrap() >= 3);
    // the batch journaled with its counts, which the dashboards (the CLI's and the diff function's) add up
    let conn = rusqlite::Connection::open(&state).unwrap();
    let bodies: Vec<Value> = conn
        .prepare("SELECT body FROM journal WHERE body LIKE '%\"type\":\"queries.ingested\"%'")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|b| serde_json::from_str(&b.unwrap()).unwrap())
        .collect();
    let activity = &bodies.last().expect("the batch journaled")["detail"]["activity"];
    assert_eq!(activity["exports"], 2, "{activity}");
    assert_eq!(activity["destructive"], 3, "dave's two deletes and one update: {activity}");
    assert!(activity["by_person"]["alice@example.com"].as_u64().unwrap() >= 3, "{activity}");
}

#[tokio::test]
async fn a_grant_made_by_hand_is_an_untagged_finding_within_seconds_through_follow() {
    let db = TestDb::with_pgaudit().await;
    let grantee = db.role("by_hand");
    db.exec(&format!(
        "CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int);
         CREATE ROLE {grantee}; ALTER DATABASE {dbname} SET pgaudit.log = 'role';",
        grantee = db.ident("by_hand"),
        dbname = postgres_protocol::escape::escape_identifier(&db.name)
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db").to_string_lossy().into_owned();
    let (csv, _) = pgaudit_logs();
    let mut follow = std::process::Command::new(env!("CARGO_BIN_EXE_grantwarden"))
        .args(["queries", "follow", csv.to_str().unwrap(), "--target", "orders-prod", "--dbname", &db.name])
        .args(["--policy", &policy(), "--state", &state, "--interval", "100ms"])
        .env_remove("GRANTWARDEN_STATE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut stderr = std::io::BufReader::new(follow.stderr.take().unwrap());
    let mut started = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut started).unwrap();
    assert!(started.starts_with("following"), "{started}");

    // a new session, so the database's pgaudit.log applies
    let admin = connect(&db.url()).await.unwrap();
    let granted_at = std::time::Instant::now();
    admin.batch_execute(&format!("GRANT SELECT ON billing.invoices TO {}", db.ident("by_hand"))).await.unwrap();
    let untagged = loop {
        let line = rx.recv_timeout(Duration::from_secs(10)).expect("follow reported the grant within 10 s");
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["outcome"] == "untagged" {
            break v;
        }
    };
    let seen_after = granted_at.elapsed();
    let _ = follow.kill();
    let _ = follow.wait();
    eprintln!(
        "GRANT to untagged finding: {} ms (server log time to finding: {} ms)",
        seen_after.as_millis(),
        untagged["latency_ms"]
    );
    assert!(seen_after < Duration::from_secs(5), "{seen_after:?}");
    let finding = untagged["finding"].to_string();
    assert!(finding.contains(&grantee) && finding.contains("invoices"), "{untagged}");
    let alert = untagged["alert"].as_str().unwrap_or_default();
    assert!(alert.contains(&grantee) && alert.contains("no ticket covers it"), "{untagged}");
    // recorded as an open untagged finding, and journaled with its alert
    let conn = rusqlite::Connection::open(&state).unwrap();
    let open: i64 = conn
        .query_row("SELECT count(*) FROM findings WHERE open = 1 AND body LIKE ?1", [format!("%{grantee}%")], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(open, 1);
    let journaled = |kind: &str| -> i64 {
        conn.query_row(
            "SELECT count(*) FROM journal WHERE body LIKE ?1 AND body LIKE ?2",
            [format!("%\"type\":\"{kind}\"%"), format!("%{grantee}%")],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!((journaled("finding.opened"), journaled("queries.alert")), (1, 1));
}
