//! `grantwarden snapshot` of a MariaDB server (scripts/mariadb): the grant
//! model as the engine keeps it, with its sha256; an account short of the
//! documented grants gets an incomplete scan and exit 1; the commands that do
//! not read MySQL yet say so instead of failing on the URL.

use std::process::{Command, Output};

use grantwarden_mysql::Scan;
use grantwarden_mysql::catalog::{Account, Scope};
use grantwarden_testkit::mariadb::TestMaria;

fn grantwarden(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_grantwarden")).args(args).env_remove("GRANTWARDEN_DATABASE_URL").output().unwrap()
}

#[tokio::test]
async fn snapshot_reads_a_mariadb_server_and_plan_says_it_cannot_yet() {
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

    let out = grantwarden(&["plan", "--database", &m.url(), "--baseline", "/nonexistent.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("read by `grantwarden snapshot` only"), "{stderr}");
}
