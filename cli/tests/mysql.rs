//! `grantwarden snapshot`, `generate` and `plan` of a MariaDB server
//! (scripts/mariadb): the grant model as the engine keeps it, with its
//! sha256; an account short of the documented grants gets an incomplete scan
//! and exit 1; a generated baseline plans back with no drift, and new power is
//! critical drift; a baseline of the other engine is refused; the commands
//! that do not change MySQL yet say so instead of failing on the URL.

use std::process::{Command, Output};

use grantwarden_core::report::Report;
use grantwarden_mysql::Scan;
use grantwarden_mysql::catalog::{Account, Scope};
use grantwarden_testkit::mariadb::TestMaria;

fn grantwarden(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_grantwarden")).args(args).env_remove("GRANTWARDEN_DATABASE_URL").output().unwrap()
}

#[tokio::test]
async fn snapshot_reads_a_mariadb_server_and_apply_says_it_cannot_yet() {
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

    let out = grantwarden(&["apply", "--database", &m.url(), "--baseline", "/nonexistent.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("apply, revocation and just-in-time access change PostgreSQL only so far"), "{stderr}");
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
