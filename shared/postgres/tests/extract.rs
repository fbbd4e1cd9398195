//! Extraction against a real PostgreSQL: every object class, NULL-ACL defaults,
//! default privileges, memberships, RLS, hostile names, chunking, failures.

use std::time::Duration;

use chrono::Utc;
use grantwarden_core::backoff::RetryPolicy;
use grantwarden_core::model::{DefaultObjectType, Grantee, ObjectClass, ObjectRef, Privilege, RelationKind, RoleName};
use grantwarden_core::snapshot::{ChunkSpec, Snapshot};
use grantwarden_postgres::{ChunkSize, NoProgress, ScanOptions, Scanner};
use grantwarden_testkit::TestDb;

async fn scan_with(url: &str, options: ScanOptions) -> Snapshot {
    Scanner::new(url, options).unwrap().scan(Utc::now(), &NoProgress).await.unwrap()
}

async fn scan(url: &str) -> Snapshot {
    scan_with(url, ScanOptions::default()).await
}

fn role(name: &str) -> Grantee {
    Grantee::Role(RoleName::new(name).unwrap())
}

fn holds(s: &Snapshot, grantee: &Grantee, privilege: Privilege, object: &ObjectRef) -> Option<bool> {
    s.state
        .grants
        .iter()
        .find(|g| g.grantee == grantee && g.privilege == privilege && g.object == object)
        .map(|g| g.grantable)
}

/// Roles are cluster-wide and tests run in parallel: keep this test's own.
fn mine(db: &TestDb, snap: &Snapshot) -> grantwarden_core::snapshot::State {
    let mut st = snap.state.clone();
    st.roles.retain(|r, _| r.as_str().starts_with(&db.prefix));
    st.memberships.retain(|m| m.member.as_str().starts_with(&db.prefix));
    st
}

fn table(schema: &str, name: &str) -> ObjectRef {
    ObjectRef::in_schema(ObjectClass::Table, schema, name)
}

#[tokio::test]
async fn every_object_class_and_builtin_defaults_are_read() {
    let db = TestDb::new().await;
    let (owner, ro) = (db.ident("owner"), db.ident("ro"));
    db.exec(&format!(
        "CREATE ROLE {owner}; CREATE ROLE {ro};
         CREATE SCHEMA app AUTHORIZATION {owner};
         SET ROLE {owner};
         CREATE TABLE app.t (id int, secret text);
         CREATE VIEW app.v AS SELECT id FROM app.t;
         CREATE MATERIALIZED VIEW app.mv AS SELECT id FROM app.t;
         CREATE TABLE app.parted (id int) PARTITION BY RANGE (id);
         CREATE SEQUENCE app.seq;
         CREATE FUNCTION app.f(a integer, b text) RETURNS int LANGUAGE sql AS 'SELECT 1';
         CREATE PROCEDURE app.p() LANGUAGE sql AS 'SELECT 1';
         GRANT USAGE ON SCHEMA app TO {ro};
         GRANT SELECT ON app.t, app.v, app.mv, app.parted TO {ro};
         GRANT INSERT ON app.t TO {ro} WITH GRANT OPTION;
         GRANT UPDATE (secret) ON app.t TO {ro};
         GRANT USAGE ON SEQUENCE app.seq TO {ro};
         GRANT SELECT ON app.v TO PUBLIC;
         RESET ROLE;
         CREATE FOREIGN DATA WRAPPER gw_fdw; CREATE SERVER gw_srv FOREIGN DATA WRAPPER gw_fdw;
         CREATE FOREIGN TABLE app.ft (id int) SERVER gw_srv;
         ALTER FOREIGN TABLE app.ft OWNER TO {owner};
         GRANT SELECT ON app.ft TO {ro};"
    ))
    .await;
    let s = scan(&db.url()).await;
    assert!(s.complete && s.consistent, "{:?}", s.failed_chunks());
    let (o, r) = (role(&db.role("owner")), role(&db.role("ro")));

    let kinds: Vec<(String, RelationKind)> =
        s.state.relations.iter().filter(|x| x.schema == "app").map(|x| (x.name.clone(), x.kind)).collect();
    assert_eq!(
        kinds,
        vec![
            ("ft".into(), RelationKind::ForeignTable),
            ("mv".into(), RelationKind::MaterializedView),
            ("parted".into(), RelationKind::PartitionedTable),
            ("seq".into(), RelationKind::Sequence),
            ("t".into(), RelationKind::Table),
            ("v".into(), RelationKind::View),
        ]
    );
    assert_eq!(s.state.schemas.get("app").map(RoleName::as_str), Some(db.role("owner").as_str()));

    // schema, table-likes, sequence, column
    assert_eq!(holds(&s, &r, Privilege::Usage, &ObjectRef::schema("app")), Some(false));
    for t in ["t", "v", "mv", "parted", "ft"] {
        assert_eq!(holds(&s, &r, Privilege::Select, &table("app", t)), Some(false), "SELECT on {t}");
    }
    assert_eq!(holds(&s, &r, Privilege::Insert, &table("app", "t")), Some(true), "WITH GRANT OPTION");
    assert_eq!(holds(&s, &r, Privilege::Update, &ObjectRef::column("app", "t", "secret")), Some(false));
    assert_eq!(holds(&s, &r, Privilege::Update, &table("app", "t")), None, "a column grant is not a table grant");
    let seq = ObjectRef::in_schema(ObjectClass::Sequence, "app", "seq");
    assert_eq!(holds(&s, &r, Privilege::Usage, &seq), Some(false));
    assert_eq!(holds(&s, &Grantee::Public, Privilege::Select, &table("app", "v")), Some(false));

    // NULL ACLs read as acldefault: a fresh function gives PUBLIC EXECUTE, owners hold everything
    let f = ObjectRef::function("app", "f", "integer, text");
    assert_eq!(holds(&s, &Grantee::Public, Privilege::Execute, &f), Some(false));
    assert_eq!(holds(&s, &o, Privilege::Execute, &f), Some(false));
    let p = ObjectRef::function("app", "p", "");
    assert_eq!(holds(&s, &Grantee::Public, Privilege::Execute, &p), Some(false));
    assert!(s.state.functions.iter().any(|x| x.name == "p" && x.arguments.is_empty() && x.kind == "procedure"));
    for privilege in [
        Privilege::Select,
        Privilege::Insert,
        Privilege::Update,
        Privilege::Delete,
        Privilege::Truncate,
        Privilege::References,
        Privilege::Trigger,
    ] {
        assert!(
            holds(&s, &o, privilege, &table("app", "mv")).is_some(),
            "owner implicit {privilege} on a NULL-ACL matview"
        );
    }
    for privilege in [Privilege::Usage, Privilege::Select, Privilege::Update] {
        assert!(holds(&s, &o, privilege, &seq).is_some(), "owner {privilege} on the sequence");
    }
    let dbo = ObjectRef::database(&db.name);
    assert_eq!(holds(&s, &Grantee::Public, Privilege::Connect, &dbo), Some(false));
    assert_eq!(holds(&s, &Grantee::Public, Privilege::Temporary, &dbo), Some(false));
    assert_eq!(s.state.database.as_ref().map(|d| d.name.as_str()), Some(db.name.as_str()));
}

#[tokio::test]
async fn role_attributes_memberships_and_default_privileges_are_read() {
    let db = TestDb::new().await;
    let (owner, ro, rw, admin) = (db.ident("owner"), db.ident("ro"), db.ident("rw"), db.ident("admin"));
    db.exec(&format!(
        "CREATE ROLE {owner}; CREATE ROLE {ro};
         CREATE ROLE {rw} LOGIN NOINHERIT VALID UNTIL '2031-01-02 03:04:05+00' CONNECTION LIMIT 3;
         CREATE ROLE {admin} CREATEDB CREATEROLE BYPASSRLS VALID UNTIL 'infinity';
         GRANT {ro} TO {rw};
         GRANT {ro} TO {admin} WITH ADMIN OPTION;
         CREATE SCHEMA app AUTHORIZATION {owner};
         ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA app GRANT SELECT ON TABLES TO {ro};
         ALTER DEFAULT PRIVILEGES FOR ROLE {owner} GRANT USAGE ON SEQUENCES TO {rw} WITH GRANT OPTION;
         ALTER DEFAULT PRIVILEGES FOR ROLE {owner} REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;"
    ))
    .await;
    let s = scan(&db.url()).await;
    let name = |n: &str| RoleName::new(db.role(n)).unwrap();

    let rw_attrs = &s.state.roles[&name("rw")];
    assert!(rw_attrs.login && !rw_attrs.inherit && !rw_attrs.superuser);
    assert_eq!(rw_attrs.connection_limit, 3);
    assert_eq!(rw_attrs.valid_until.map(|t| t.to_rfc3339()), Some("2031-01-02T03:04:05+00:00".into()));
    let admin_attrs = &s.state.roles[&name("admin")];
    assert!(admin_attrs.createdb && admin_attrs.createrole && admin_attrs.bypassrls && !admin_attrs.login);
    assert_eq!(admin_attrs.valid_until, None, "VALID UNTIL infinity reads as never");

    let m_rw = s.state.memberships.iter().find(|m| m.member == name("rw") && m.role == name("ro")).unwrap();
    assert!(!m_rw.admin && m_rw.set);
    if s.server_version_num < 160_000 {
        assert!(!m_rw.inherit, "before 16 the member's NOINHERIT decides");
    }
    let m_admin = s.state.memberships.iter().find(|m| m.member == name("admin")).unwrap();
    assert!(m_admin.admin && m_admin.inherit);

    let dps: Vec<_> = s.state.default_privileges.iter().filter(|d| d.for_role == name("owner")).collect();
    assert!(dps.iter().any(|d| d.schema.as_deref() == Some("app")
        && d.on == DefaultObjectType::Tables
        && d.grantee == Grantee::Role(name("ro"))
        && d.privilege == Privilege::Select
        && !d.grantable));
    assert!(dps.iter().any(|d| d.schema.is_none()
        && d.on == DefaultObjectType::Sequences
        && d.grantee == Grantee::Role(name("rw"))
        && d.grantable));
    // the global functions entry replaced the built-in default: owner only, no PUBLIC
    let functions: Vec<_> = dps.iter().filter(|d| d.on == DefaultObjectType::Functions).collect();
    assert!(!functions.is_empty());
    assert!(functions.iter().all(|d| d.grantee != Grantee::Public));
}

#[tokio::test]
async fn row_level_security_policies_are_read() {
    let db = TestDb::new().await;
    let ro = db.ident("ro");
    db.exec(&format!(
        "CREATE ROLE {ro}; CREATE SCHEMA app;
         CREATE TABLE app.accounts (id int, tenant text);
         ALTER TABLE app.accounts ENABLE ROW LEVEL SECURITY;
         ALTER TABLE app.accounts FORCE ROW LEVEL SECURITY;
         CREATE POLICY tenant_read ON app.accounts FOR SELECT TO {ro} USING (tenant = current_user);
         CREATE POLICY no_insert ON app.accounts AS RESTRICTIVE FOR INSERT WITH CHECK (false);"
    ))
    .await;
    let s = scan(&db.url()).await;
    let rel = s.state.relations.iter().find(|r| r.name == "accounts").unwrap();
    assert!(rel.rls_enabled && rel.rls_forced);
    let read = s.state.policies.iter().find(|p| p.name == "tenant_read").unwrap();
    assert_eq!(read.command, "SELECT");
    assert!(read.permissive);
    assert!(
        read.using.as_deref().is_some_and(|u| u.starts_with("(tenant = ") && u.contains("CURRENT_USER")),
        "{:?}",
        read.using
    );
    assert_eq!(read.roles, vec![role(&db.role("ro"))]);
    let ins = s.state.policies.iter().find(|p| p.name == "no_insert").unwrap();
    assert_eq!((ins.command.as_str(), ins.permissive, ins.with_check.as_deref()), ("INSERT", false, Some("false")));
    assert_eq!(ins.roles, vec![Grantee::Public], "a policy without TO applies to PUBLIC");
}

#[tokio::test]
async fn hostile_role_names_are_read_exactly() {
    let db = TestDb::new().await;
    let hostile = db.role("we\"ird ro'le; DROP TABLE x; -- ✓");
    let q = postgres_protocol::escape::escape_identifier(&hostile);
    db.exec(&format!("CREATE ROLE {q} LOGIN; CREATE SCHEMA \"Mixed Case\"; CREATE TABLE \"Mixed Case\".\"a.b\" (id int); GRANT SELECT ON \"Mixed Case\".\"a.b\" TO {q};")).await;
    let s = scan(&db.url()).await;
    assert!(s.state.roles.contains_key(&RoleName::new(hostile.clone()).unwrap()));
    assert_eq!(holds(&s, &role(&hostile), Privilege::Select, &table("Mixed Case", "a.b")), Some(false));
}

#[tokio::test]
async fn an_ordinary_role_without_superuser_can_extract() {
    let db = TestDb::new().await;
    let (reader, ro) = (db.ident("reader"), db.ident("ro"));
    db.exec(&format!(
        "CREATE ROLE {reader} LOGIN NOSUPERUSER; CREATE ROLE {ro};
         CREATE SCHEMA app; CREATE TABLE app.t (id int); GRANT SELECT ON app.t TO {ro};"
    ))
    .await;
    let as_super = scan(&db.url()).await;
    let as_reader = scan(&db.url_as(&db.role("reader"))).await;
    assert!(as_reader.complete, "{:?}", as_reader.failed_chunks());
    assert_eq!(mine(&db, &as_reader), mine(&db, &as_super), "a catalog reader sees what a superuser sees");
}

#[tokio::test]
async fn chunked_scans_give_the_same_state_as_one_chunk() {
    let db = TestDb::new().await;
    let ro = db.ident("ro");
    let mut sql = format!("CREATE ROLE {ro};");
    for s in ["a", "b", "big"] {
        sql.push_str(&format!("CREATE SCHEMA {s};"));
    }
    for i in 0..25 {
        sql.push_str(&format!("CREATE TABLE big.t{i:02} (id int, c text); GRANT SELECT ON big.t{i:02} TO {ro};"));
        if i % 5 == 0 {
            sql.push_str(&format!("GRANT UPDATE (c) ON big.t{i:02} TO {ro};"));
        }
    }
    sql.push_str(&format!("CREATE TABLE a.x (id int); CREATE TABLE b.y (id int); GRANT SELECT ON b.y TO {ro};"));
    db.exec(&sql).await;
    let whole =
        scan_with(&db.url(), ScanOptions { chunk_size: ChunkSize::Max(100_000), concurrency: 1, ..Default::default() })
            .await;
    let split =
        scan_with(&db.url(), ScanOptions { chunk_size: ChunkSize::Max(4), concurrency: 3, ..Default::default() }).await;
    assert!(whole.complete && split.complete);
    assert!(split.consistent, "chunks share the exported snapshot");
    assert_eq!(whole.chunks.len(), 2, "cluster + one packed chunk");
    let parts = split
        .chunks
        .iter()
        .filter(|c| matches!(&c.chunk, ChunkSpec::SchemaPart { schema, .. } if schema == "big"))
        .count();
    assert_eq!(parts, 7, "25 relations in ranges of 4");
    assert_eq!(mine(&db, &whole), mine(&db, &split));
    assert_eq!(mine(&db, &whole).sha256(), mine(&db, &split).sha256());
    let ids: std::collections::BTreeSet<&str> = split.chunks.iter().map(|c| c.batch_id.as_str()).collect();
    assert_eq!(ids.len(), split.chunks.len(), "batch ids are distinct");
}

#[tokio::test]
async fn a_permission_error_is_not_retried_and_marks_the_scan_incomplete() {
    let db = TestDb::new().await;
    let reader = db.ident("reader");
    // pg_policy is per-database: revoking it here affects only this test database
    db.exec(&format!(
        "CREATE ROLE {reader} LOGIN; CREATE SCHEMA app; REVOKE SELECT ON pg_catalog.pg_policy FROM PUBLIC;"
    ))
    .await;
    let options = ScanOptions {
        retry: RetryPolicy { max_attempts: 4, base: Duration::from_millis(1), cap: Duration::from_millis(5) },
        ..Default::default()
    };
    let s = scan_with(&db.url_as(&db.role("reader")), options).await;
    assert!(!s.complete);
    let failed: Vec<_> = s.chunks.iter().filter(|c| c.error.is_some()).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].attempts, 1, "permission errors are not retried");
    let msg = failed[0].error.as_deref().unwrap();
    assert!(msg.contains("permission denied") && msg.contains("42501") && msg.contains("not retried"), "{msg}");
    assert!(s.failed_chunks()[0].starts_with("schema"), "the failure names the chunk: {:?}", s.failed_chunks());
}

#[tokio::test]
async fn an_unreachable_server_is_retried_then_reported() {
    let options = ScanOptions {
        retry: RetryPolicy { max_attempts: 3, base: Duration::from_millis(1), cap: Duration::from_millis(5) },
        ..Default::default()
    };
    // port 1 on loopback: nothing listens, the connection is refused (a transient error)
    let scanner =
        Scanner::new("host=127.0.0.1 port=1 user=postgres dbname=postgres connect_timeout=2", options).unwrap();
    let err = scanner.scan(Utc::now(), &NoProgress).await.unwrap_err();
    assert_eq!(err.class(), grantwarden_postgres::ErrorClass::Transient);
    assert!(err.to_string().starts_with("connecting:"), "{err}");
}

#[tokio::test]
async fn extraction_does_not_wait_behind_an_exclusive_lock() {
    let db = TestDb::new().await;
    db.exec("CREATE SCHEMA app; CREATE TABLE app.t (id int);").await;
    let locker = db.client().await;
    locker
        .batch_execute("BEGIN; LOCK TABLE app.t IN ACCESS EXCLUSIVE MODE; ALTER TABLE app.t ADD COLUMN c int;")
        .await
        .unwrap();
    let s = tokio::time::timeout(Duration::from_secs(60), scan(&db.url()))
        .await
        .expect("the scan must not block on DDL locks");
    assert!(s.complete, "{:?}", s.failed_chunks());
    locker.batch_execute("ROLLBACK").await.unwrap();
}

/// A fan-out plans the chunks and Lambdas read them later, each in a snapshot
/// of its own: a table made, or dropped and made again, after the plan is read
/// by its chunk through the planned oid range, as a fresh scan reads it.
#[tokio::test]
async fn chunks_read_after_the_plan_find_the_tables_made_since() {
    use std::sync::Arc;

    use grantwarden_core::snapshot::State;
    use grantwarden_postgres::session::parse_config;
    use grantwarden_postgres::{extract_one, plan_only};

    let db = TestDb::new().await;
    let ro = db.ident("ro");
    let mut sql = format!("CREATE ROLE {ro}; CREATE SCHEMA a; CREATE SCHEMA b;");
    for i in 0..6 {
        sql.push_str(&format!("CREATE TABLE a.t{i} (id int); GRANT SELECT ON a.t{i} TO {ro};"));
        sql.push_str(&format!("CREATE TABLE b.t{i} (id int, c text); GRANT SELECT (c) ON b.t{i} TO {ro};"));
    }
    db.exec(&sql).await;
    let options = ScanOptions { chunk_size: ChunkSize::Max(4), ..Default::default() };
    let config = parse_config(&db.url(), &options.timeouts).unwrap();
    let (version, chunks) = plan_only(&config, &options).await.unwrap();
    let planned: Vec<_> = chunks.iter().filter_map(|(_, oids)| *oids).collect();
    assert!(planned.len() >= 4, "every relation chunk has its range: {chunks:?}");
    assert!(planned.iter().all(|r| r.newer_than.is_some_and(|n| n >= r.hi)), "{planned:?}");

    // after the plan: a new table in the first range of a, one past the last range
    // of b, and a table of b dropped and made again (a new oid, the same name)
    db.exec(&format!(
        "CREATE TABLE a.t0a (id int); GRANT SELECT ON a.t0a TO {ro};
         CREATE TABLE b.zz (id int, c text); GRANT SELECT (c) ON b.zz TO {ro};
         DROP TABLE b.t3; CREATE TABLE b.t3 (id int, c text); GRANT INSERT ON b.t3 TO {ro};"
    ))
    .await;
    let config = Arc::new(config);
    let mut batches = Vec::new();
    for (chunk, oids) in chunks {
        let (state, _) = extract_one(Arc::clone(&config), chunk, oids, version, &options).await.unwrap();
        batches.push(state);
    }
    let read_late = State::merge_all(batches);
    let fresh = scan(&db.url()).await;
    let mine_of = |st: &State| {
        let mut st = st.clone();
        st.roles.retain(|r, _| r.as_str().starts_with(&db.prefix));
        st.memberships.retain(|m| m.member.as_str().starts_with(&db.prefix));
        st
    };
    assert_eq!(mine_of(&read_late), mine_of(&fresh.state));
    let ro = role(&db.role("ro"));
    let late = Snapshot { state: read_late, ..fresh.clone() };
    assert_eq!(holds(&late, &ro, Privilege::Select, &table("a", "t0a")), Some(false));
    assert_eq!(holds(&late, &ro, Privilege::Select, &ObjectRef::column("b", "zz", "c")), Some(false));
    assert_eq!(holds(&late, &ro, Privilege::Insert, &table("b", "t3")), Some(false));
    assert_eq!(
        holds(&late, &ro, Privilege::Select, &ObjectRef::column("b", "t3", "c")),
        None,
        "the dropped table's grant"
    );
}
