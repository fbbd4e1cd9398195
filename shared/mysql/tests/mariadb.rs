//! The reader against a real MariaDB (scripts/mariadb): every privilege level
//! with its grant option, roles, proxies, account attributes, definers, the
//! scanning account's documented grants, chunks and their failure.

use std::collections::BTreeSet;

use chrono::Utc;
use grantwarden_core::snapshot::ChunkSpec;
use grantwarden_mysql::catalog::{
    Account, Authentication, Catalog, DefaultRole, Definer, PrivilegeGrant, ProxyGrant, RoleGrant, Scope, StoredKind,
};
use grantwarden_mysql::privilege::Privilege;
use grantwarden_mysql::{ScanOptions, Scanner};
use grantwarden_testkit::mariadb::TestMaria;
use mysql_async::prelude::Queryable;

fn quiet() -> ScanOptions {
    ScanOptions { databases_per_chunk: Some(1), ..ScanOptions::default() }
}

/// The part of a catalog that is this test's: its accounts, databases and definers.
fn own(c: &Catalog, m: &TestMaria) -> Catalog {
    let mine = |a: &Account| a.user.starts_with(m.prefix()) || a.host.starts_with(m.prefix());
    let db = |d: &str| d.starts_with(m.prefix());
    Catalog {
        accounts: c.accounts.iter().filter(|a| mine(&a.account)).cloned().collect(),
        databases: c.databases.iter().filter(|d| db(d)).cloned().collect(),
        privileges: c.privileges.iter().filter(|g| mine(&g.grantee)).cloned().collect(),
        roles: c.roles.iter().filter(|r| mine(&r.grantee) || mine(&r.role)).cloned().collect(),
        default_roles: c.default_roles.iter().filter(|r| mine(&r.account)).cloned().collect(),
        proxies: c.proxies.iter().filter(|p| mine(&p.grantee)).cloned().collect(),
        partial_revokes: BTreeSet::new(),
        definers: c.definers.iter().filter(|d| db(&d.database)).cloned().collect(),
        unreadable: c.unreadable.clone(),
    }
}

/// `name` as a literal database name in a grant: `_` is a wildcard in
/// `GRANT ... ON db.*` unless escaped.
fn esc(name: &str) -> String {
    name.replace('_', "\\_")
}

fn set(ps: &[Privilege]) -> BTreeSet<Privilege> {
    ps.iter().cloned().collect()
}

fn grant<'a>(c: &'a Catalog, grantee: &Account, scope: Scope) -> &'a PrivilegeGrant {
    c.privileges_at(grantee, &scope).unwrap_or_else(|| panic!("{grantee} holds nothing at {scope:?}"))
}

#[tokio::test]
async fn every_privilege_level_is_read_with_its_grant_option() {
    let m = TestMaria::new().await;
    let (app, ghost) = (m.name("app"), m.name("ghost"));
    let (esc_app, esc_ghost) = (esc(&app), esc(&ghost));
    let [g, d, t, c, r] = ["g", "d", "t", "c", "r"].map(|n| m.name(n));
    m.exec(&format!(
        "CREATE DATABASE `{app}`; CREATE TABLE `{app}`.t (a INT, b INT);
         CREATE PROCEDURE `{app}`.p() SELECT 1;
         CREATE FUNCTION `{app}`.f(x INT) RETURNS INT DETERMINISTIC RETURN x + 1;
         CREATE USER '{g}'@'%' IDENTIFIED BY 'pw-g';
         GRANT FILE, PROCESS, SUPER, SHUTDOWN, CREATE USER ON *.* TO '{g}'@'%' WITH GRANT OPTION;
         CREATE USER '{d}'@'10.0.%' IDENTIFIED BY 'pw-d';
         GRANT SELECT, INSERT ON `{esc_app}`.* TO '{d}'@'10.0.%';
         GRANT SELECT ON `{app}`.* TO '{d}'@'10.0.%';
         GRANT SELECT ON `{esc_ghost}`.* TO '{d}'@'10.0.%';
         CREATE USER '{t}'@'localhost' IDENTIFIED BY 'pw-t';
         GRANT SELECT, UPDATE ON `{app}`.t TO '{t}'@'localhost' WITH GRANT OPTION;
         CREATE USER '{c}'@'%' IDENTIFIED BY 'pw-c';
         GRANT UPDATE (b), SELECT (a, b) ON `{app}`.t TO '{c}'@'%';
         CREATE USER '{r}'@'%' IDENTIFIED BY 'pw-r';
         GRANT EXECUTE ON PROCEDURE `{app}`.p TO '{r}'@'%';
         GRANT EXECUTE, ALTER ROUTINE ON FUNCTION `{app}`.f TO '{r}'@'%' WITH GRANT OPTION;"
    ))
    .await;
    let scan = Scanner::new(&m.url(), quiet()).unwrap().scan(Utc::now()).await.unwrap();
    assert!(scan.complete, "{:?} {:?}", scan.chunks, scan.catalog.unreadable);
    let cat = own(&scan.catalog, &m);

    let ga = Account::new(&g, "%");
    let global = grant(&cat, &ga, Scope::Global);
    use Privilege::*;
    assert_eq!(global.privileges, set(&[Shutdown, Process, File, Super, CreateUser]));
    assert!(global.grantable);

    let da = Account::new(&d, "10.0.%");
    let db = grant(&cat, &da, Scope::Database { database: app.clone(), pattern: false });
    assert_eq!((db.privileges.clone(), db.grantable), (set(&[Select, Insert]), false));
    // unescaped, the `_` of the name is a wildcard, as the server matches it
    let pat = grant(&cat, &da, Scope::Database { database: app.clone(), pattern: true });
    assert_eq!(pat.privileges, set(&[Select]));
    // a grant on a database that does not exist is read all the same
    assert_eq!(
        grant(&cat, &da, Scope::Database { database: ghost.clone(), pattern: false }).privileges,
        set(&[Select])
    );
    assert!(cat.databases.contains(&app) && !cat.databases.contains(&ghost));
    assert!(cat.privileges_at(&da, &Scope::Global).is_none(), "USAGE is no grant");

    let ta = Account::new(&t, "localhost");
    let table = grant(&cat, &ta, Scope::Table { database: app.clone(), table: "t".into() });
    assert_eq!((table.privileges.clone(), table.grantable), (set(&[Select, Update]), true));

    let ca = Account::new(&c, "%");
    let col = |column: &str| Scope::Column { database: app.clone(), table: "t".into(), column: column.into() };
    assert_eq!(grant(&cat, &ca, col("a")).privileges, set(&[Select]));
    assert_eq!(grant(&cat, &ca, col("b")).privileges, set(&[Select, Update]));
    assert!(!grant(&cat, &ca, col("b")).grantable);
    assert!(cat.privileges_at(&ca, &Scope::Table { database: app.clone(), table: "t".into() }).is_none());

    let ra = Account::new(&r, "%");
    let routine =
        |name: &str, kind: &str| Scope::Routine { database: app.clone(), name: name.into(), kind: kind.into() };
    let p = grant(&cat, &ra, routine("p", "PROCEDURE"));
    assert_eq!((p.privileges.clone(), p.grantable), (set(&[Execute]), false));
    let f = grant(&cat, &ra, routine("f", "FUNCTION"));
    assert_eq!((f.privileges.clone(), f.grantable), (set(&[Execute, AlterRoutine]), true));
    // every grant of the test's accounts is one of the above
    assert_eq!(cat.privileges.len(), 9, "{:#?}", cat.privileges);
}

#[tokio::test]
async fn roles_proxies_and_account_attributes_are_read_and_no_hash_leaves_the_server() {
    let m = TestMaria::new().await;
    let (app, role, inner) = (m.name("app"), m.name("role"), m.name("inner"));
    let esc_app = esc(&app);
    let [u, nopw, locked, expired, both, px] = ["u", "nopw", "locked", "expired", "both", "px"].map(|n| m.name(n));
    let anon_host = format!("{}.anon.example", m.prefix());
    m.exec(&format!(
        "CREATE DATABASE `{app}`;
         CREATE ROLE '{inner}'; GRANT SELECT ON `{esc_app}`.* TO '{inner}';
         CREATE ROLE '{role}'; GRANT INSERT ON `{esc_app}`.* TO '{role}' WITH GRANT OPTION; GRANT '{inner}' TO '{role}';
         CREATE USER '{u}'@'%' IDENTIFIED BY 'secret-u' WITH MAX_USER_CONNECTIONS 3 PASSWORD EXPIRE INTERVAL 30 DAY;
         GRANT '{role}' TO '{u}'@'%' WITH ADMIN OPTION; SET DEFAULT ROLE '{role}' FOR '{u}'@'%';
         CREATE USER '{nopw}'@'%';
         CREATE USER '{locked}'@'%' ACCOUNT LOCK;
         CREATE USER '{expired}'@'localhost' IDENTIFIED BY 'secret-e' PASSWORD EXPIRE;
         CREATE USER '{both}'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('secret-b');
         CREATE USER ''@'{anon_host}';
         CREATE USER '{px}'@'%' IDENTIFIED BY 'secret-p'; GRANT PROXY ON '{u}'@'%' TO '{px}'@'%';"
    ))
    .await;
    let scan = Scanner::new(&m.url(), quiet()).unwrap().scan(Utc::now()).await.unwrap();
    let cat = own(&scan.catalog, &m);
    let info = |a: &Account| cat.account(a).unwrap_or_else(|| panic!("{a} read")).clone();

    let (ra, ia, ua) = (Account::new(&role, ""), Account::new(&inner, ""), Account::new(&u, "%"));
    assert!(info(&ra).is_role && info(&ia).is_role && !info(&ua).is_role);
    assert_eq!(info(&ra).authentication, vec![Authentication::None]);
    assert!(cat.roles.contains(&RoleGrant { grantee: ua.clone(), role: ra.clone(), admin: true }));
    assert!(cat.roles.contains(&RoleGrant { grantee: ra.clone(), role: ia.clone(), admin: false }));
    assert!(cat.default_roles.contains(&DefaultRole { account: ua.clone(), role: ra.clone() }));
    let on_app = Scope::Database { database: app.clone(), pattern: false };
    assert_eq!(grant(&cat, &ra, on_app.clone()).privileges, set(&[Privilege::Insert]));
    assert!(grant(&cat, &ra, on_app.clone()).grantable);
    assert_eq!(grant(&cat, &ia, on_app).privileges, set(&[Privilege::Select]));

    let ui = info(&ua);
    assert_eq!((ui.max_user_connections, ui.password_lifetime_days), (3, Some(30)));
    assert!(!ui.passwordless() && !ui.locked && !ui.password_expired);
    assert!(info(&Account::new(&nopw, "%")).passwordless());
    let li = info(&Account::new(&locked, "%"));
    assert!(li.locked && !li.passwordless(), "a locked account without a password cannot log in");
    assert!(info(&Account::new(&expired, "localhost")).password_expired);
    let bi = info(&Account::new(&both, "localhost"));
    assert!(bi.authentication.contains(&Authentication::Socket { plugin: "unix_socket".into() }), "{bi:?}");
    assert!(
        bi.authentication.contains(&Authentication::Password { plugin: "mysql_native_password".into(), set: true }),
        "{bi:?}"
    );
    let anon = info(&Account::new("", &anon_host));
    assert!(anon.anonymous() && anon.passwordless());
    let pa = Account::new(&px, "%");
    assert!(cat.proxies.contains(&ProxyGrant { grantee: pa, proxied: ua, grantable: false }));

    // the hashes stay on the server: none of them is anywhere in what was read
    let mut conn = m.conn().await;
    let json = serde_json::to_string(&scan).unwrap();
    for pw in ["secret-u", "secret-e", "secret-b", "secret-p"] {
        let hash: String = conn.query_first(format!("SELECT PASSWORD('{pw}')")).await.unwrap().unwrap();
        assert!(!json.contains(&hash) && !json.contains(&hash[1..]), "the hash of {pw} was read");
    }
}

#[tokio::test]
async fn definers_of_views_routines_triggers_and_events_are_read_with_how_they_run() {
    let m = TestMaria::new().await;
    let (app, admin) = (m.name("app"), m.name("admin"));
    m.exec(&format!(
        "CREATE DATABASE `{app}`; CREATE USER '{admin}'@'%' IDENTIFIED BY 'pw';
         GRANT ALL ON *.* TO '{admin}'@'%' WITH GRANT OPTION;
         CREATE TABLE `{app}`.t (a INT);
         CREATE DEFINER = '{admin}'@'%' SQL SECURITY DEFINER VIEW `{app}`.v_def AS SELECT a FROM `{app}`.t;
         CREATE DEFINER = '{admin}'@'%' SQL SECURITY INVOKER VIEW `{app}`.v_inv AS SELECT a FROM `{app}`.t;
         CREATE DEFINER = '{admin}'@'%' PROCEDURE `{app}`.p() SQL SECURITY DEFINER SELECT 1;
         CREATE DEFINER = '{admin}'@'%' FUNCTION `{app}`.f() RETURNS INT SQL SECURITY INVOKER RETURN 1;
         CREATE DEFINER = '{admin}'@'%' TRIGGER `{app}`.tr BEFORE INSERT ON `{app}`.t FOR EACH ROW SET NEW.a = 1;
         CREATE DEFINER = '{admin}'@'%' EVENT `{app}`.ev ON SCHEDULE EVERY 1 DAY DISABLE DO SELECT 1;"
    ))
    .await;
    let scan = Scanner::new(&m.url(), quiet()).unwrap().scan(Utc::now()).await.unwrap();
    let cat = own(&scan.catalog, &m);
    let definer = Account::new(&admin, "%");
    let d = |kind, name: &str, runs_as_definer| Definer {
        kind,
        database: app.clone(),
        name: name.into(),
        definer: definer.clone(),
        runs_as_definer,
    };
    let want: BTreeSet<Definer> = [
        d(StoredKind::View, "v_def", true),
        d(StoredKind::View, "v_inv", false),
        d(StoredKind::Procedure, "p", true),
        d(StoredKind::Function, "f", false),
        d(StoredKind::Trigger, "tr", true),
        d(StoredKind::Event, "ev", true),
    ]
    .into_iter()
    .collect();
    assert_eq!(cat.definers, want);
}

/// The scanning account with exactly the grants the crate documents reads
/// what root reads; without TRIGGER it says what it missed and is incomplete;
/// without SELECT on `mysql.proc` its database chunks fail and name the table.
#[tokio::test]
async fn the_documented_grants_suffice_and_what_is_missing_is_never_silent() {
    let m = TestMaria::new().await;
    let (app, user, reader) = (m.name("app"), m.name("user"), m.name("reader"));
    m.exec(&format!(
        "CREATE DATABASE `{app}`; CREATE TABLE `{app}`.t (a INT);
         CREATE TRIGGER `{app}`.tr BEFORE INSERT ON `{app}`.t FOR EACH ROW SET NEW.a = 1;
         CREATE VIEW `{app}`.v AS SELECT a FROM `{app}`.t;
         CREATE PROCEDURE `{app}`.p() SELECT 1;
         CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'; GRANT SELECT (a) ON `{app}`.t TO '{user}'@'%';
         CREATE USER '{reader}'@'%' IDENTIFIED BY 'reader-pw';
         GRANT SELECT ON mysql.* TO '{reader}'@'%';
         GRANT SHOW DATABASES, SHOW VIEW, TRIGGER ON *.* TO '{reader}'@'%';"
    ))
    .await;
    let as_root = Scanner::new(&m.url(), quiet()).unwrap().scan(Utc::now()).await.unwrap();
    let as_reader = Scanner::new(&m.url_as(&reader, "reader-pw"), quiet()).unwrap().scan(Utc::now()).await.unwrap();
    assert!(as_reader.complete, "{:?}", as_reader.chunks);
    assert_eq!(own(&as_reader.catalog, &m), own(&as_root.catalog, &m));
    assert_eq!(own(&as_root.catalog, &m).definers.len(), 3, "view, trigger and procedure");

    m.exec(&format!("REVOKE TRIGGER ON *.* FROM '{reader}'@'%'")).await;
    let without = Scanner::new(&m.url_as(&reader, "reader-pw"), quiet()).unwrap().scan(Utc::now()).await.unwrap();
    assert!(!without.complete, "a scan that could not read trigger definers is not whole");
    let missing: Vec<_> = without.catalog.unreadable.iter().map(|u| (u.what.as_str(), u.why.as_str())).collect();
    assert_eq!(missing, vec![("trigger definers", "the scanning account lacks TRIGGER ON *.*")]);

    m.exec(&format!(
        "REVOKE SELECT ON mysql.* FROM '{reader}'@'%';
         GRANT SELECT ON mysql.global_priv TO '{reader}'@'%'; GRANT SELECT ON mysql.roles_mapping TO '{reader}'@'%';
         GRANT SELECT ON mysql.proxies_priv TO '{reader}'@'%'; GRANT SELECT ON mysql.db TO '{reader}'@'%';
         GRANT SELECT ON mysql.tables_priv TO '{reader}'@'%'; GRANT SELECT ON mysql.columns_priv TO '{reader}'@'%';
         GRANT SELECT ON mysql.procs_priv TO '{reader}'@'%'; GRANT SELECT ON mysql.event TO '{reader}'@'%';
         GRANT TRIGGER ON *.* TO '{reader}'@'%';"
    ))
    .await;
    let failed = Scanner::new(&m.url_as(&reader, "reader-pw"), quiet()).unwrap().scan(Utc::now()).await.unwrap();
    assert!(!failed.complete);
    assert!(failed.chunks[0].error.is_none(), "the accounts chunk needs no mysql.proc");
    let errors: Vec<_> = failed.chunks.iter().filter_map(|c| c.error.as_deref()).collect();
    assert!(
        !errors.is_empty() && errors.iter().all(|e| e.contains("mysql.proc") && e.contains("not retried")),
        "{errors:?}"
    );
}

#[tokio::test]
async fn chunks_are_groups_of_databases_with_deterministic_batch_ids_in_a_read_only_session() {
    let m = TestMaria::new().await;
    let dbs: Vec<String> = (0..3).map(|i| m.name(&format!("db{i}"))).collect();
    for db in &dbs {
        m.exec(&format!("CREATE DATABASE `{db}`")).await;
    }
    let now = Utc::now();
    let options = ScanOptions { databases_per_chunk: Some(1), window_seconds: 3600, ..ScanOptions::default() };
    let a = Scanner::new(&m.url(), options.clone()).unwrap().scan(now).await.unwrap();
    let b = Scanner::new(&m.url(), options.clone()).unwrap().scan(now).await.unwrap();
    assert_eq!(a.scan_id, b.scan_id);
    // other tests make and drop databases meanwhile: the same chunk has the same id
    let ids: std::collections::BTreeMap<_, _> =
        a.chunks.iter().map(|c| (c.chunk.clone(), c.batch_id.clone())).collect();
    let same = b.chunks.iter().filter(|c| ids.get(&c.chunk) == Some(&c.batch_id)).count();
    assert!(same > dbs.len(), "the cluster chunk and ours at least");
    assert!(b.chunks.iter().all(|c| ids.get(&c.chunk).is_none_or(|id| id == &c.batch_id)));
    assert_eq!(ids.values().collect::<BTreeSet<_>>().len(), a.chunks.len(), "batch ids are distinct");
    assert_eq!(a.chunks[0].chunk, ChunkSpec::Cluster);
    let a = Scanner::new(&m.url(), ScanOptions { databases_per_chunk: Some(2), ..options })
        .unwrap()
        .scan(now)
        .await
        .unwrap();
    let mut planned = BTreeSet::new();
    for c in &a.chunks {
        if let ChunkSpec::Schemas { schemas } = &c.chunk {
            assert!(schemas.len() <= 2);
            planned.extend(schemas.iter().cloned());
        }
    }
    assert!(a.catalog.databases.is_subset(&planned));
    assert!(dbs.iter().all(|d| a.catalog.databases.contains(d)));
    assert!(!a.consistent);

    // the session every chunk reads in refuses to write
    let opts = grantwarden_mysql::session::parse_url(&m.url()).unwrap();
    let (mut conn, _) = grantwarden_mysql::session::connect(&opts, &Default::default()).await.unwrap();
    grantwarden_mysql::session::begin_read_only(&mut conn).await.unwrap();
    for write in [
        format!("CREATE TABLE `{}`.x (a INT)", dbs[0]),
        "DELETE FROM mysql.proxies_priv WHERE 1 = 0".to_owned(),
        format!("CREATE USER '{}'@'%'", m.name("x")),
        "COMMIT".to_owned(),
        format!("DROP DATABASE `{}`", dbs[1]),
    ] {
        match conn.query_drop(&write).await {
            Err(e) => assert!(e.to_string().contains("READ ONLY"), "{write}: {e}"),
            Ok(()) => assert_eq!(write, "COMMIT", "the read-only session ran {write}"),
        }
    }
}

/// What render writes, the server takes, and the reader reads back the same,
/// for hostile names: quotes, backticks, a backslash, and `_` and `%` in a
/// database named literally (escaped, or the grant would cover other databases).
#[tokio::test]
async fn rendered_grants_and_revokes_round_trip_through_the_server() {
    use grantwarden_mysql::render;
    let m = TestMaria::new().await;
    let db = m.name("d`b'x%y");
    let (table, column) = ("t\"1".to_owned(), "c`1".to_owned());
    let user = Account::new(&m.name("o'k\\"), "10.0.%");
    let role = Account::new(&m.name("r`1"), "");
    let q = grantwarden_mysql::quote::ident;
    m.exec(&format!(
        "CREATE DATABASE {d}; CREATE TABLE {d}.{t} ({c} INT, b INT);
         CREATE PROCEDURE {d}.{p}() SELECT 1;
         CREATE USER {u} IDENTIFIED BY 'pw'; CREATE ROLE {r};",
        d = q(&db),
        t = q(&table),
        c = q(&column),
        p = q("p'1"),
        u = render::account(&user),
        r = render::account(&role),
    ))
    .await;
    let grant = |scope: Scope, ps: &[Privilege], grantable: bool| PrivilegeGrant {
        grantee: user.clone(),
        scope,
        privileges: set(ps),
        grantable,
        dynamic_grantable: BTreeSet::new(),
    };
    use Privilege::*;
    let grants = vec![
        grant(Scope::Global, &[Process], true),
        grant(Scope::Database { database: db.clone(), pattern: false }, &[Select, Insert], false),
        grant(Scope::Table { database: db.clone(), table: table.clone() }, &[Select, Delete], true),
        grant(
            Scope::Column { database: db.clone(), table: table.clone(), column: column.clone() },
            &[Update],
            true, // the table's grant option covers its columns
        ),
        grant(Scope::Routine { database: db.clone(), name: "p'1".into(), kind: "PROCEDURE".into() }, &[Execute], false),
    ];
    let role_grant = RoleGrant { grantee: user.clone(), role: role.clone(), admin: true };
    let proxy = ProxyGrant { grantee: user.clone(), proxied: Account::new(&m.name("px"), "%"), grantable: false };
    m.exec(&format!("CREATE USER {}", render::account(&proxy.proxied))).await;
    let mut sql: Vec<String> = Vec::new();
    for g in &grants {
        sql.extend(render::grant(g).unwrap());
    }
    sql.push(render::grant_role(&role_grant));
    sql.push(render::grant_proxy(&proxy));
    m.exec(&sql.join(";\n")).await;

    let read = own(&Scanner::new(&m.url(), quiet()).unwrap().scan(Utc::now()).await.unwrap().catalog, &m);
    let held: Vec<PrivilegeGrant> = read.privileges.iter().filter(|g| g.grantee == user).cloned().collect();
    let mut want = grants.clone();
    want.sort();
    assert_eq!(held, want, "{sql:#?}");
    assert!(read.roles.contains(&role_grant));
    assert!(read.proxies.contains(&proxy));
    // escaped, the database grant covers this database and no other
    let pattern_db = db.replace('%', "Z");
    assert!(read.privileges_at(&user, &Scope::Database { database: pattern_db, pattern: true }).is_none());

    // narrowest first: a table's last privilege gone takes its column grants' row with it
    let mut sql: Vec<String> = Vec::new();
    for g in grants.iter().rev() {
        sql.extend(render::revoke(g).unwrap());
    }
    sql.push(render::revoke_role(&role_grant));
    sql.push(render::revoke_proxy(&proxy));
    m.exec(&sql.join(";\n")).await;
    let read = own(&Scanner::new(&m.url(), quiet()).unwrap().scan(Utc::now()).await.unwrap().catalog, &m);
    assert!(read.privileges.iter().all(|g| g.grantee != user), "{:#?}", read.privileges);
    assert!(!read.roles.iter().any(|r| r.grantee == user) && !read.proxies.iter().any(|p| p.grantee == user));
}

#[tokio::test]
async fn remediation_runs_statement_by_statement_and_is_checked_against_the_grant_tables() {
    use grantwarden_core::change::Change;
    use grantwarden_core::mysql::change::MysqlChange;
    use grantwarden_core::remediation_flow::ChangeExecutor;
    use grantwarden_core::revoke::FailureClass;
    use grantwarden_mysql::apply::Executor;
    use grantwarden_mysql::render;
    let m = TestMaria::new().await;
    // names that need the engine's quoting: backticks, quotes, backslashes, a wildcard
    let db = m.name("sh`o'p_1");
    let user = Account::new(&m.name("a'p\\p"), "%");
    let role = Account::new(&m.name("re`port"), "");
    let q = grantwarden_mysql::quote::ident;
    m.exec(&format!(
        "CREATE DATABASE {d}; CREATE TABLE {d}.orders (id INT, email TEXT);
         CREATE USER {u} IDENTIFIED BY 'pw'; CREATE ROLE {r};
         GRANT SELECT, DELETE ON {d}.orders TO {u} WITH GRANT OPTION; GRANT {r} TO {u};",
        d = q(&db),
        u = render::account(&user),
        r = render::account(&role),
    ))
    .await;
    let orders = Scope::Table { database: db.clone(), table: "orders".into() };
    let pg = |ps: &[Privilege], grantable: bool, scope: &Scope| PrivilegeGrant {
        grantee: user.clone(),
        scope: scope.clone(),
        privileges: set(ps),
        grantable,
        dynamic_grantable: BTreeSet::new(),
    };
    let c = |mysql: MysqlChange| Change::Mysql { mysql };
    let changes = vec![
        c(MysqlChange::Revoke { grant: pg(&[Privilege::Delete], true, &orders) }),
        c(MysqlChange::RevokeRole { grant: RoleGrant { grantee: user.clone(), role: role.clone(), admin: false } }),
        c(MysqlChange::Lock { account: user.clone() }),
        // nothing to take: noted, not failed
        c(MysqlChange::Revoke {
            grant: pg(&[Privilege::Select], false, &Scope::Database { database: m.name("nodb"), pattern: false }),
        }),
        c(MysqlChange::Revoke {
            grant: pg(&[Privilege::Update], false, &Scope::Table { database: db.clone(), table: "gone".into() }),
        }),
        c(MysqlChange::Grant {
            grant: pg(
                &[Privilege::Select],
                false,
                &Scope::Column { database: db.clone(), table: "orders".into(), column: "email".into() },
            ),
        }),
    ];
    let executor = Executor::new(grantwarden_mysql::session::parse_url(&m.url()).unwrap(), quiet());

    let dry = executor.apply(&changes, true).await.unwrap();
    assert_eq!(dry.sql.len(), 7, "{:#?}", dry.sql);
    assert_eq!(dry.sql[0], format!("REVOKE DELETE ON {}.`orders` FROM {}", q(&db), render::account(&user)));
    let read = || async { own(&Scanner::new(&m.url(), quiet()).unwrap().scan(Utc::now()).await.unwrap().catalog, &m) };
    assert!(read().await.roles.iter().any(|r| r.grantee == user), "a dry run changes nothing");

    let applied = executor.apply(&changes, false).await.unwrap();
    assert_eq!((applied.sql.len(), applied.attempts), (5, 1), "{:#?}", applied.sql);
    assert_eq!(applied.skipped.len(), 2, "{:#?}", applied.skipped);
    assert!(
        applied.skipped[0].starts_with("revoke SELECT on database ") && applied.skipped[0].contains("no longer held"),
        "{:#?}",
        applied.skipped
    );
    let after = read().await;
    assert_eq!(
        after.privileges_at(&user, &orders).map(|g| (g.privileges.clone(), g.grantable)),
        Some((set(&[Privilege::Select]), false))
    );
    assert!(!after.roles.iter().any(|r| r.grantee == user));
    assert!(after.account(&user).unwrap().locked);

    // a statement that fails for good stops the run, and the error says what ran before it
    let failing = vec![
        c(MysqlChange::Unlock { account: user.clone() }),
        c(MysqlChange::Grant {
            grant: pg(&[Privilege::Select], false, &Scope::Table { database: db.clone(), table: "missing".into() }),
        }),
        c(MysqlChange::Grant { grant: pg(&[Privilege::Insert], false, &orders) }),
    ];
    let e = executor.apply(&failing, false).await.unwrap_err();
    assert_eq!(e.class, FailureClass::Permanent);
    assert!(
        e.message.contains("doesn't exist")
            && e.message.contains("1 statement(s) ran before it and stay applied: ALTER USER"),
        "{}",
        e.message
    );
    let after = read().await;
    assert!(!after.account(&user).unwrap().locked);
    assert!(!after.privileges_at(&user, &orders).unwrap().privileges.contains(&Privilege::Insert));

    // a PostgreSQL change is not this executor's
    let pg_change = Change::DropRole { role: grantwarden_core::model::RoleName::new("x").unwrap() };
    assert!(executor.apply(&[pg_change], true).await.unwrap_err().message.contains("no MySQL or MariaDB change"));
}
