//! `grantwarden snapshot`, `generate` and `plan` of a MariaDB server
//! (scripts/mariadb): the grant model as the engine keeps it, with its
//! sha256; an account short of the documented grants gets an incomplete scan
//! and exit 1; a generated baseline plans back with no drift, and new power is
//! critical drift; a baseline of the other engine is refused; `apply` puts
//! drift right, revokes first, and a plan afterwards finds none; the commands
//! that do not change MySQL yet say so instead of failing on the URL; a
//! ticket that names an account excepts its grant, and apply leaves it.

use std::process::{Command, Output};

use grantwarden_core::report::Report;
use grantwarden_mysql::Scan;
use grantwarden_mysql::catalog::{Account, Scope};
use grantwarden_testkit::mariadb::TestMaria;

fn grantwarden(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_grantwarden")).args(args).env_remove("GRANTWARDEN_DATABASE_URL").output().unwrap()
}

#[tokio::test]
async fn snapshot_reads_a_mariadb_server_and_access_says_it_cannot_yet() {
    let m = TestMaria::new().await;
    let (app, user, reader) = (m.name("app"), m.name("user"), m.name("reader"));
    m.exec(&format!(
        "CREATE DATABASE `{app}`; CREATE TABLE `{app}`.t (a INT);
         CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'; GRANT SELECT, DELETE ON `{app}`.t TO '{user}'@'%';
         CREATE USER '{reader}'@'%' IDENTIFIED BY 'reader-pw'; GRANT SELECT ON mysql.* TO '{reader}'@'%';
         GRANT SHOW DATABASES, SHOW VIEW ON *.* TO '{reader}'@'%';"
    ))
    .await;
    let url = m.url().replacen("mysql://", "mariadb://", 1);
    let out = grantwarden(&["snapshot", "--database", &url, "--target", "maria-test"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let scan: Scan = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((scan.target.as_str(), scan.complete), ("maria-test", true));
    assert_eq!(scan.sha256, scan.catalog.sha256());
    let held =
        scan.catalog.privileges_at(&Account::new(&user, "%"), &Scope::Table { database: app, table: "t".into() });
    assert_eq!(held.unwrap().privileges.iter().map(|p| p.keyword()).collect::<Vec<_>>(), ["SELECT", "DELETE"]);

    // without TRIGGER the account cannot see trigger definers: exit 1, and why
    let out = grantwarden(&["snapshot", "--database", &m.url_as(&reader, "reader-pw")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not read: trigger definers (the scanning account lacks TRIGGER ON *.*)"), "{stderr}");
    let scan: Scan = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!scan.complete);

    let out = grantwarden(&["access", "issue", "t-1", "--database", &m.url(), "--state", "/nonexistent/state.db"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("just-in-time access (`access`, `request --database`) issues PostgreSQL"), "{stderr}");
}

fn stdout(out: &Output) -> String {
    assert!(out.status.code().is_some_and(|c| c != 1), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_generated_baseline_plans_clean_and_new_power_is_critical_drift() {
    let m = TestMaria::new().await;
    let (shop, app, adm, role) = (m.name("shop"), m.name("app"), m.name("adm"), m.name("reporting"));
    let anonymous_host = m.name("h");
    // `_` is a wildcard in a database grant unless escaped
    let esc_shop = shop.replace('_', "\\_");
    m.exec(&format!(
        "CREATE DATABASE `{shop}`; CREATE TABLE `{shop}`.orders (id INT, email TEXT);
         CREATE USER '{app}'@'10.0.%' IDENTIFIED BY 'pw-app';
         GRANT SELECT, INSERT ON `{esc_shop}`.* TO '{app}'@'10.0.%';
         GRANT SELECT (id) ON `{shop}`.orders TO '{app}'@'10.0.%';
         CREATE ROLE '{role}'; GRANT SELECT ON `{shop}`.orders TO '{role}'; GRANT '{role}' TO '{app}'@'10.0.%';
         CREATE USER '{adm}'@'localhost' IDENTIFIED BY 'pw-adm'; GRANT SUPER ON *.* TO '{adm}'@'localhost';
         CREATE DEFINER = '{adm}'@'localhost' SQL SECURITY DEFINER VIEW `{shop}`.totals AS SELECT 1 AS n;"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let baseline = dir.path().join("maria.yaml");
    let baseline = baseline.to_str().unwrap();
    // this test's accounts only: the server is shared with other tests
    let ignore = format!("*,!{p}*,!*@{p}*", p = m.prefix());
    let out = grantwarden(&["generate", "--database", &m.url(), "--ignore-accounts", &ignore, "-o", baseline]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let yaml = std::fs::read_to_string(baseline).unwrap();
    assert!(yaml.contains("engine: mariadb"), "{yaml}");
    assert!(yaml.contains(&format!("- user: {role}\n  role: true")), "{yaml}");
    assert!(
        yaml.contains(&format!("- {{\"on\": database, database: {shop}, privileges: [SELECT, INSERT]}}")),
        "{yaml}"
    );

    let plan =
        |format: &str| grantwarden(&["plan", "--database", &m.url(), "--baseline", baseline, "--format", format]);
    let out = plan("json");
    let report: Report = serde_json::from_str(&stdout(&out)).unwrap();
    let own = |r: &Report| -> Vec<(String, String, String, String)> {
        r.findings
            .iter()
            .filter(|f| f.grantee.as_str().contains(m.prefix()))
            .map(|f| (f.kind.as_str().into(), f.severity.to_string(), f.privilege.text().into(), f.object.to_string()))
            .collect()
    };
    assert_eq!(out.status.code(), Some(0), "no drift: {:#?}", own(&report));
    // the view lends SUPER to whoever may read it: an exposure, not drift
    assert_eq!(own(&report), [("exposure".into(), "critical".into(), "OWNER".into(), format!("view {shop}.totals"))]);

    m.exec(&format!(
        "GRANT FILE ON *.* TO '{app}'@'10.0.%' WITH GRANT OPTION; REVOKE SELECT ON `{shop}`.orders FROM '{role}';
         CREATE USER ''@'{anonymous_host}';"
    ))
    .await;
    let out = plan("json");
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Report = serde_json::from_str(&stdout(&out)).unwrap();
    let found = own(&report);
    let anonymous = format!("account ''@'{anonymous_host}'");
    for expected in [
        ("unauthorized", "critical", "FILE", "global *.*".to_owned()),
        ("unauthorized", "critical", "GRANT OPTION", "global *.*".to_owned()),
        ("missing", "low", "SELECT", format!("table {shop}.orders")),
        ("orphaned", "high", "ROLE", anonymous.clone()),
        ("exposure", "high", "ROLE", anonymous.clone()),
        ("exposure", "high", "LOGIN", anonymous),
    ] {
        let expected = (expected.0.into(), expected.1.into(), expected.2.into(), expected.3);
        assert!(found.contains(&expected), "{expected:?} in {found:#?}");
    }
    let table = stdout(&plan("table"));
    assert!(table.contains(&format!("'{app}'@'10.0.%'")) && table.contains("FILE"), "{table}");

    // a baseline is for one engine: each is refused against the other's server, by name
    let pg_baseline = dir.path().join("pg.yaml");
    std::fs::write(&pg_baseline, "version: 1\nroles: {}\n").unwrap();
    let out = grantwarden(&["plan", "--database", &m.url(), "--baseline", pg_baseline.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("names no `engine:`, so it is a PostgreSQL baseline"), "{stderr}");
    let db = grantwarden_testkit::TestDb::new().await;
    let out = grantwarden(&["plan", "--database", &db.url(), "--baseline", baseline]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is a baseline for `engine: mariadb`, and --database is a PostgreSQL server"), "{stderr}");
}

#[tokio::test]
async fn apply_puts_drift_right_revokes_first_and_a_plan_afterwards_finds_none() {
    let m = TestMaria::new().await;
    let (shop, app, ops, role, stray) =
        (m.name("shop"), m.name("app"), m.name("ops"), m.name("reporting"), m.name("stray"));
    let esc_shop = shop.replace('_', "\\_");
    m.exec(&format!(
        "CREATE DATABASE `{shop}`; CREATE TABLE `{shop}`.orders (id INT, email TEXT);
         CREATE PROCEDURE `{shop}`.refund() SELECT 1;
         CREATE USER '{app}'@'10.0.%' IDENTIFIED BY 'pw-app';
         GRANT SELECT ON `{esc_shop}`.* TO '{app}'@'10.0.%';
         GRANT SELECT (id) ON `{shop}`.orders TO '{app}'@'10.0.%';
         GRANT EXECUTE ON PROCEDURE `{shop}`.refund TO '{app}'@'10.0.%';
         CREATE ROLE '{role}'; GRANT SELECT ON `{shop}`.orders TO '{role}'; GRANT '{role}' TO '{app}'@'10.0.%';
         CREATE USER '{ops}'@'localhost' IDENTIFIED BY 'pw-ops' ACCOUNT LOCK;"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let baseline = dir.path().join("maria.yaml");
    let baseline = baseline.to_str().unwrap();
    let state = dir.path().join("state.db");
    let state = state.to_str().unwrap();
    let ignore = format!("*,!{p}*,!*@{p}*", p = m.prefix());
    let out = grantwarden(&["generate", "--database", &m.url(), "--ignore-accounts", &ignore, "-o", baseline]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    m.exec(&format!(
        "GRANT FILE ON *.* TO '{app}'@'10.0.%' WITH GRANT OPTION;
         GRANT UPDATE (email) ON `{shop}`.orders TO '{app}'@'10.0.%';
         REVOKE EXECUTE ON PROCEDURE `{shop}`.refund FROM '{app}'@'10.0.%';
         REVOKE '{role}' FROM '{app}'@'10.0.%';
         GRANT PROXY ON '{ops}'@'localhost' TO '{app}'@'10.0.%';
         ALTER USER '{ops}'@'localhost' ACCOUNT UNLOCK;
         GRANT DELETE ON `{shop}`.orders TO '{role}';
         CREATE USER '{stray}'@'%' IDENTIFIED BY 'pw-stray';"
    ))
    .await;
    let url = m.url();
    let plan = || {
        let out = grantwarden(&["plan", "--database", &url, "--baseline", baseline, "--format", "json"]);
        let report: Report = serde_json::from_str(&stdout(&out)).unwrap();
        let own: Vec<(String, String, String)> = report
            .findings
            .iter()
            .filter(|f| f.grantee.as_str().contains(m.prefix()) && f.kind.is_drift())
            .map(|f| (f.kind.as_str().into(), f.privilege.text().into(), f.object.to_string()))
            .collect();
        (out.status.code(), own)
    };
    let (code, before) = plan();
    assert_eq!(code, Some(2));
    assert_eq!(before.len(), 9, "{before:#?}");
    // with a state store the plan is recorded: findings with their age, the scan journaled; the dashboard reads it
    let target = "maria-apply";
    let recorded = |command: &[&str], more: &[&str]| {
        let mut args = command.to_vec();
        args.extend(["--database", &url, "--baseline", baseline, "--state", state, "--target", target]);
        args.extend(more);
        grantwarden(&args)
    };
    let out = recorded(&["plan"], &["--format", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Report = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report.governance.is_some());
    let page = dir.path().join("dashboard.html");
    let out = recorded(&["report", "dashboard"], &["-o", page.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains(target) && html.contains("9 findings"), "the dashboard shows the drift: {html}");
    let apply = |mode: &str, execute: bool| {
        let mut args = vec![
            "apply",
            "--database",
            &url,
            "--baseline",
            baseline,
            "--state",
            state,
            "--target",
            target,
            "--mode",
            mode,
        ];
        if execute {
            args.push("--execute");
        }
        let out = grantwarden(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    // report mode prints what converge would run, and runs nothing
    let printed = apply("report", true);
    let to_app = format!("'{app}'@'10.0.%'");
    for sql in [
        format!("REVOKE FILE ON *.* FROM {to_app};"),
        format!("REVOKE GRANT OPTION ON *.* FROM {to_app};"),
        format!("REVOKE UPDATE (`email`) ON `{shop}`.`orders` FROM {to_app};"),
        format!("REVOKE PROXY ON '{ops}'@'localhost' FROM {to_app};"),
        format!("REVOKE DELETE ON `{shop}`.`orders` FROM '{role}';"),
        format!("ALTER USER '{ops}'@'localhost' ACCOUNT LOCK;"),
        format!("GRANT EXECUTE ON PROCEDURE `{shop}`.`refund` TO {to_app};"),
        format!("GRANT '{role}' TO {to_app};"),
    ] {
        assert!(printed.contains(&sql), "{sql} in {printed}");
    }
    assert!(printed.contains("DROP USER by hand"), "{printed}");
    assert_eq!(plan().1, before, "report mode changed nothing");

    // revoke-unauthorized takes away and locks; what is missing stays missing
    let printed = apply("revoke-unauthorized", true);
    assert!(printed.contains("6 change(s) applied"), "{printed}");
    assert!(!printed.contains("GRANT EXECUTE"), "{printed}");
    let (_, left) = plan();
    let mut kinds: Vec<(&str, &str)> = left.iter().map(|(k, p, _)| (k.as_str(), p.as_str())).collect();
    kinds.sort();
    assert_eq!(kinds, [("missing", "EXECUTE"), ("missing", "MEMBER"), ("orphaned", "ROLE")], "{left:#?}");

    // converge grants what is missing; the stray account is a person's to drop
    apply("converge", true);
    m.exec(&format!("DROP USER '{stray}'@'%'")).await;
    let (code, left) = plan();
    assert_eq!((code, left), (Some(0), Vec::new()));

    // the recorded plan closes what apply put right, and the remediation report says who did
    let out = recorded(&["plan"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let out = grantwarden(&["report", "remediation", "--state", state, "--target", target]);
    let text = stdout(&out);
    assert!(text.contains("9 drift findings opened, 9 resolved"), "{text}");
    assert!(text.contains("| remediation applied by grantwarden | 8 |"), "{text}");
    assert!(text.contains("| a change outside grantwarden | 1 |"), "the stray account, dropped by hand: {text}");

    // applying again changes nothing; each run is journaled, with its changes
    let again = apply("converge", true);
    assert!(again.contains("0 change(s)"), "{again}");
    let out = grantwarden(&["audit", "export", "--user", "grantwarden:apply", "--state", state, "--format", "json"]);
    let events = stdout(&out);
    assert_eq!(events.matches("remediation.applied").count(), 3, "{events}");
    assert!(events.contains("remediation.planned") && events.contains("\"change\": \"mysql\""), "{events}");
    let out = grantwarden(&["audit", "export", "--user", target, "--state", state, "--format", "json"]);
    let journal = stdout(&out);
    for kind in ["finding.opened", "finding.closed", "scan.completed"] {
        assert!(journal.contains(kind), "{kind} journaled");
    }
}

#[tokio::test]
async fn a_ticket_naming_an_account_excepts_its_grant_and_apply_leaves_it_in_force() {
    let m = TestMaria::new().await;
    let (shop, app) = (m.name("shop"), m.name("app"));
    m.exec(&format!(
        "CREATE DATABASE `{shop}`; CREATE TABLE `{shop}`.orders (id INT);
         CREATE USER '{app}'@'10.0.%' IDENTIFIED BY 'pw-app';"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let (baseline, state, request) = (path("maria.yaml"), path("state.db"), path("grant.json"));
    let ignore = format!("*,!{p}*,!*@{p}*", p = m.prefix());
    let out = grantwarden(&["generate", "--database", &m.url(), "--ignore-accounts", &ignore, "-o", &baseline]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    m.exec(&format!("GRANT SELECT, DELETE ON `{shop}`.orders TO '{app}'@'10.0.%';")).await;
    // the provisioning system's grant event names the account as a report writes it
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/policy.example.yaml");
    let (target, expires) = ("maria-tickets", (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339());
    let event = serde_json::json!({
        "delivery_id": format!("d-{app}"), "source": "okta-workflows", "target": target,
        "principal": "contractor@example.com", "role": format!("'{app}'@'10.0.%'"),
        "privileges": ["SELECT"], "object": { "type": "table", "name": format!("{shop}.orders") },
        "justification": "INC-4411 reconciliation", "requested_by": "contractor@example.com", "expires_at": expires
    });
    std::fs::write(&request, event.to_string()).unwrap();
    let out = grantwarden(&["intake", &request, "--policy", policy, "--state", &state]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let url = m.url();
    let assessed = |command: &str, more: &[&str]| {
        let mut args = vec![command, "--database", &url, "--baseline", &baseline, "--state", &state];
        args.extend(["--target", target, "--policy", policy]);
        args.extend(more);
        grantwarden(&args)
    };
    let out = assessed("plan", &["--format", "json"]);
    assert_eq!(out.status.code(), Some(2), "DELETE is drift: {}", String::from_utf8_lossy(&out.stderr));
    let report: Report = serde_json::from_slice(&out.stdout).unwrap();
    let own: Vec<(String, String, bool)> = report
        .findings
        .iter()
        .filter(|f| f.grantee.as_str().contains(m.prefix()))
        .map(|f| (f.kind.as_str().to_owned(), f.privilege.text().into_owned(), f.exception_id.is_some()))
        .collect();
    assert_eq!(
        own,
        [("unauthorized".to_owned(), "DELETE".to_owned(), false), ("excepted".to_owned(), "SELECT".to_owned(), true)],
        "{:#?}",
        report.findings
    );
    // remediation takes DELETE away and leaves the ticket's SELECT while it is in force
    let out = assessed("apply", &["--mode", "revoke-unauthorized", "--execute"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("1 change(s) applied") && printed.contains("REVOKE DELETE"), "{printed}");
    assert!(!printed.contains("REVOKE SELECT"), "{printed}");
    let out = assessed("plan", &["--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "only the excepted grant is left: {}", String::from_utf8_lossy(&out.stdout));
    // without the store's tickets the same grant is drift
    let out = grantwarden(&["plan", "--database", &url, "--baseline", &baseline, "--format", "json"]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn an_ended_ticket_is_revoked_from_its_account_what_another_covers_stays_and_its_session_ends() {
    use mysql_async::prelude::Queryable;
    let m = TestMaria::new().await;
    let (shop, app) = (m.name("shop"), m.name("app"));
    m.exec(&format!(
        "CREATE DATABASE `{shop}`; CREATE TABLE `{shop}`.orders (id INT);
         CREATE USER '{app}'@'%' IDENTIFIED BY 'pw-app';"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let (baseline, state) = (path("maria.yaml"), path("state.db"));
    let ignore = format!("*,!{p}*,!*@{p}*", p = m.prefix());
    let out = grantwarden(&["generate", "--database", &m.url(), "--ignore-accounts", &ignore, "-o", &baseline]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // the provisioning system grants, and tells grantwarden with two grant events
    m.exec(&format!("GRANT SELECT, INSERT ON `{shop}`.orders TO '{app}'@'%';")).await;
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/policy.example.yaml");
    let target = "maria-revoke";
    let intake = |delivery: &str, privileges: &[&str], object: serde_json::Value| {
        let expires = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
        let event = serde_json::json!({
            "delivery_id": delivery, "source": "okta-workflows", "target": target,
            "principal": "contractor@example.com", "role": format!("{app}@%"), "privileges": privileges,
            "object": object, "justification": "INC-4411", "requested_by": "contractor@example.com",
            "expires_at": expires
        });
        let file = path(&format!("{delivery}.json"));
        std::fs::write(&file, event.to_string()).unwrap();
        let out = grantwarden(&["intake", &file, "--policy", policy, "--state", &state]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        line["ticket"]["id"].as_str().unwrap().to_owned()
    };
    // SELECT and INSERT on the table (one approval), and SELECT on the whole database (read-only: none)
    let table = intake(
        "d-table",
        &["SELECT", "INSERT"],
        serde_json::json!({ "type": "table", "name": format!("{shop}.orders") }),
    );
    let database = intake("d-db", &["SELECT"], serde_json::json!({ "type": "schema", "name": shop }));
    let run = |args: &[&str]| {
        let out = grantwarden(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&["tickets", "approve", &table, "--by", "lead@example.com", "--state", &state]);
    let url = m.url();
    let revoke = |ticket: &str| {
        let args =
            ["revoke", ticket, "--database", &url, "--state", &state, "--target", target, "--baseline", &baseline];
        run(&args)
    };
    let grants = || async {
        let mut conn = m.conn().await;
        let rows: Vec<String> = conn.query(format!("SHOW GRANTS FOR '{app}'@'%'")).await.unwrap();
        rows.into_iter().filter(|g| g.contains("orders")).collect::<Vec<_>>()
    };

    // not due while in force
    assert!(revoke(&table).contains("not_due"));
    // the account's open session
    let mut session = mysql_async::Conn::from_url(m.url_as(&app, "pw-app")).await.unwrap();
    let one: Option<u8> = session.query_first("SELECT 1").await.unwrap();
    assert_eq!(one, Some(1));

    // the table's ticket ends early: INSERT goes, SELECT stays (the database's ticket covers it)
    run(&["tickets", "revoke", &table, "--by", "contractor@example.com", "--state", &state]);
    let printed = revoke(&table);
    assert!(printed.contains(&format!("{table} revoked")), "{printed}");
    assert!(printed.contains(&format!("REVOKE INSERT ON `{shop}`.`orders` FROM '{app}'@'%'")), "{printed}");
    assert!(
        printed.contains(&format!("-- kept SELECT on table {shop}.orders: still covered by ticket {database}")),
        "{printed}"
    );
    assert!(printed.contains("1 session(s) ended") && printed.contains("KILL CONNECTION"), "{printed}");
    assert_eq!(grants().await, [format!("GRANT SELECT ON `{shop}`.`orders` TO `{app}`@`%`")]);
    assert!(session.query_drop("SELECT 1").await.is_err(), "the session was ended");
    // a second run finds it ended
    assert!(revoke(&table).contains("already_ended"), "idempotent");

    // the database's ticket ends: SELECT goes too; the account stays (grantwarden did not create it)
    run(&["tickets", "revoke", &database, "--by", "contractor@example.com", "--state", &state]);
    let printed = revoke(&database);
    assert!(printed.contains(&format!("REVOKE SELECT ON `{shop}`.`orders` FROM '{app}'@'%'")), "{printed}");
    assert!(printed.contains("0 session(s) ended"), "{printed}");
    assert!(grants().await.is_empty());
    let out = grantwarden(&["tickets", "show", &database, "--state", &state]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"revoked\""), "{}", String::from_utf8_lossy(&out.stdout));
    // the plan with the store: what the tickets granted is gone, nothing is left to except
    let out =
        grantwarden(&["plan", "--database", &url, "--baseline", &baseline, "--state", &state, "--target", target]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
}
