//! The differ on partial scans: a catalog read in chunks as the scanner plans
//! them (the cluster facts, a whole schema, a schema split in three), against
//! a baseline that is clean on the whole catalog, with one chunk failed at a
//! time. Nothing of the failed chunk is judged; the rest still is.

use super::tests::relation;
use super::*;
use crate::model::{DefaultPrivilege, Function, Grant, Membership, RelationKind, RoleAttributes};
use crate::report::Status;
use crate::snapshot::{ChunkOutcome, ChunkSpec, Database};

fn r(n: &str) -> RoleName {
    RoleName::new(n).unwrap()
}

fn grant(state: &mut State, grantee: &str, privilege: Privilege, object: ObjectRef) {
    let grantee = if grantee == "PUBLIC" { Grantee::Public } else { Grantee::Role(r(grantee)) };
    state.grants.insert(Grant { object, grantee, privilege, grantable: false });
}

fn table(schema: &str, name: &str) -> ObjectRef {
    ObjectRef::in_schema(ObjectClass::Table, schema, name)
}

fn default_select(schema: Option<&str>) -> DefaultPrivilege {
    DefaultPrivilege {
        for_role: r("migrator"),
        schema: schema.map(str::to_owned),
        on: DefaultObjectType::Tables,
        grantee: Grantee::Role(r("app_ro")),
        privilege: Privilege::Select,
        grantable: false,
    }
}

/// The cluster chunk: roles, a membership, the database and a global default privilege.
fn cluster() -> State {
    let mut s = State { database: Some(Database { name: "shop".into(), owner: r("postgres") }), ..State::default() };
    for name in ["postgres", "migrator", "app_ro", "app_rw"] {
        s.roles.insert(r(name), RoleAttributes::default());
    }
    s.roles.get_mut(&r("postgres")).unwrap().superuser = true;
    s.roles.get_mut(&r("app_rw")).unwrap().login = true;
    s.memberships.insert(Membership { role: r("app_ro"), member: r("app_rw"), admin: false, inherit: true, set: true });
    grant(&mut s, "app_ro", Privilege::Connect, ObjectRef::database("shop"));
    s.default_privileges.insert(default_select(None));
    s
}

/// A schema with its own ACL, as a chunk that reads the schema itself holds it.
fn schema_itself(s: &mut State, schema: &str) {
    s.schemas.insert(schema.into(), r("migrator"));
    grant(s, "app_ro", Privilege::Usage, ObjectRef::schema(schema));
}

/// A table app_ro reads, owned by migrator.
fn read_table(s: &mut State, schema: &str, name: &str) {
    s.relations.insert(relation(schema, name, RelationKind::Table, "migrator"));
    grant(s, "app_ro", Privilege::Select, table(schema, name));
}

/// `billing`, read whole by one chunk: its ACL, a table and a function.
fn billing() -> State {
    let mut s = State::default();
    schema_itself(&mut s, "billing");
    read_table(&mut s, "billing", "invoices");
    grant(&mut s, "app_rw", Privilege::Insert, table("billing", "invoices"));
    s.functions.insert(Function {
        schema: "billing".into(),
        name: "total".into(),
        arguments: "integer".into(),
        kind: "function".into(),
        owner: r("migrator"),
    });
    grant(&mut s, "PUBLIC", Privilege::Execute, ObjectRef::function("billing", "total", "integer"));
    s
}

/// `orders [-, f)`: the schema itself (its ACL, a function, its default
/// privileges) and the relations named before `f`.
fn orders_first() -> State {
    let mut s = State::default();
    schema_itself(&mut s, "orders");
    s.functions.insert(Function {
        schema: "orders".into(),
        name: "refund".into(),
        arguments: "integer".into(),
        kind: "function".into(),
        owner: r("migrator"),
    });
    grant(&mut s, "app_rw", Privilege::Execute, ObjectRef::function("orders", "refund", "integer"));
    s.default_privileges.insert(default_select(Some("orders")));
    read_table(&mut s, "orders", "customers");
    s
}

/// `orders [f, p)`: line_items, which app_rw writes by name.
fn orders_middle() -> State {
    let mut s = State::default();
    read_table(&mut s, "orders", "line_items");
    grant(&mut s, "app_rw", Privilege::Insert, table("orders", "line_items"));
    s
}

/// `orders [p, -)`: payments and shipments.
fn orders_last() -> State {
    let mut s = State::default();
    read_table(&mut s, "orders", "payments");
    read_table(&mut s, "orders", "shipments");
    s
}

const CLUSTER: usize = 0;
const BILLING: usize = 1;
const ORDERS_FIRST: usize = 2;
const ORDERS_MIDDLE: usize = 3;
const ORDERS_LAST: usize = 4;

/// The chunks as the planner makes them, each with what it reads.
fn chunks() -> Vec<(ChunkSpec, State)> {
    let part = |from: Option<&str>, to: Option<&str>| ChunkSpec::SchemaPart {
        schema: "orders".into(),
        from: from.map(str::to_owned),
        to: to.map(str::to_owned),
    };
    vec![
        (ChunkSpec::Cluster, cluster()),
        (ChunkSpec::Schemas { schemas: vec!["billing".into()] }, billing()),
        (part(None, Some("f")), orders_first()),
        (part(Some("f"), Some("p")), orders_middle()),
        (part(Some("p"), None), orders_last()),
    ]
}

/// Clean on the whole catalog: every grant above is declared, every declaration held.
const BASELINE: &str = r#"
version: 1
roles:
  migrator:
    owns:
      - { on: schema, name: orders }
      - { on: all_tables_in_schema, schema: orders }
      - { on: schema, name: billing }
      - { on: table, name: billing.invoices }
      - { on: function, name: "orders.refund(integer)" }
  app_ro:
    grants:
      - { privileges: [CONNECT], on: database }
      - { privileges: [USAGE], on: schema, name: orders }
      - { privileges: [SELECT], on: all_tables_in_schema, schema: orders }
      - { privileges: [USAGE], on: schema, name: billing }
      - { privileges: [SELECT], on: all_tables_in_schema, schema: billing }
      - { privileges: [SELECT], on: default_tables, schema: orders, for_role: migrator }
      - { privileges: [SELECT], on: default_tables, for_role: migrator }
  app_rw:
    login: true
    member_of: [app_ro]
    grants:
      - { privileges: [INSERT], on: table, name: orders.line_items }
      - { privileges: [INSERT], on: table, name: billing.invoices }
      - { privileges: [EXECUTE], on: function, name: "orders.refund(integer)" }
ignore_roles: ["postgres"]
"#;

/// A scan whose chunk `failed` (if any) failed. `plant` changes what each
/// chunk holds (given its index and state) before the scan loses what the
/// failed one read: a real drift, seen only where its chunk did not fail.
fn scan(failed: Option<usize>, plant: impl Fn(usize, &mut State)) -> Snapshot {
    let mut outcomes = Vec::new();
    let mut states = Vec::new();
    for (i, (chunk, mut state)) in chunks().into_iter().enumerate() {
        plant(i, &mut state);
        let error = (Some(i) == failed).then(|| "permission denied for table pg_proc".to_owned());
        if error.is_none() {
            states.push(state);
        }
        outcomes.push(ChunkOutcome { batch_id: format!("b{i}"), chunk, attempts: 1, error });
    }
    let state = State::merge_all(states);
    Snapshot {
        target: TargetId::new("shop").unwrap(),
        scan_id: "scan-partial".into(),
        taken_at: "2026-11-25T10:00:00Z".parse().unwrap(),
        server_version_num: 150_000,
        complete: failed.is_none(),
        consistent: true,
        chunks: outcomes,
        sha256: state.sha256(),
        state,
    }
}

fn plan(snapshot: &Snapshot) -> Report {
    let b = Baseline::from_yaml(BASELINE, "b.yaml").unwrap();
    diff(&b, snapshot, &ScoringConfig::standard())
}

fn kinds(r: &Report) -> Vec<(FindingKind, String, String, String)> {
    r.findings.iter().map(|f| (f.kind, f.grantee.to_string(), f.privilege.to_string(), f.object.to_string())).collect()
}

/// Nothing changed.
fn unchanged(_: usize, _: &mut State) {}

/// The real drift planted in every scenario: app_ro may read orders.payments, not delete from it.
fn delete_on_payments(chunk: usize, s: &mut State) {
    if chunk == ORDERS_LAST {
        grant(s, "app_ro", Privilege::Delete, table("orders", "payments"));
    }
}

fn planted() -> Vec<(FindingKind, String, String, String)> {
    vec![(FindingKind::Unauthorized, "app_ro".into(), "DELETE".into(), "table orders.payments".into())]
}

#[test]
fn the_whole_catalog_is_clean_and_the_planted_grant_is_its_only_drift() {
    let clean = plan(&scan(None, unchanged));
    assert_eq!(kinds(&clean), vec![]);
    assert_eq!(clean.summary.status, Status::Ok);
    assert_eq!((clean.summary.declarations_not_judged, clean.summary.not_judged.len()), (0, 0));
    assert_eq!(kinds(&plan(&scan(None, delete_on_payments))), planted());
}

/// Each failed chunk: the report is incomplete, says what was not judged,
/// finds no drift in what it did not read, and still judges what it read.
fn judges_only_what_was_read(failed: usize, not_judged: &str, declarations: usize) {
    let report = plan(&scan(Some(failed), delete_on_payments));
    assert_eq!(kinds(&report), planted(), "chunk {failed}: the read part is judged, the rest is not");
    let s = &report.summary;
    assert_eq!(s.status, Status::Incomplete);
    assert!(!s.complete);
    assert_eq!(s.failed_chunks.len(), 1);
    assert!(s.failed_chunks[0].ends_with("permission denied for table pg_proc"), "{:?}", s.failed_chunks);
    assert_eq!(s.not_judged.len(), 1);
    assert!(s.not_judged[0].starts_with(not_judged), "{:?}", s.not_judged);
    assert_eq!(s.declarations_not_judged, declarations, "chunk {failed}");
    // and with nothing planted, nothing at all
    let report = plan(&scan(Some(failed), unchanged));
    assert_eq!(kinds(&report), vec![]);
    assert_eq!(report.summary.status, Status::Incomplete);
}

#[test]
fn a_failed_cluster_chunk_judges_no_role_and_still_judges_the_grants_it_read() {
    // the three roles (attributes, memberships), CONNECT on the database, the global default
    judges_only_what_was_read(CLUSTER, "cluster: roles", 5);
}

#[test]
fn a_failed_whole_schema_is_neither_missing_nor_its_grants() {
    // USAGE and SELECT on billing, INSERT on billing.invoices; its owner and the table's
    judges_only_what_was_read(BILLING, "schema billing: the schema itself", 5);
}

#[test]
fn a_failed_first_part_of_a_split_schema_leaves_the_schema_wide_grants_on_the_rest() {
    // USAGE on orders, SELECT on its tables (in part), its default, EXECUTE on refund;
    // the owner of orders, of its tables (in part) and of refund
    judges_only_what_was_read(ORDERS_FIRST, "schema orders [-, f): the schema itself", 7);
}

#[test]
fn a_failed_middle_part_of_a_split_schema_judges_the_relations_around_it() {
    // SELECT on orders' tables (in part), INSERT on line_items; the owner of its tables (in part)
    judges_only_what_was_read(ORDERS_MIDDLE, "schema orders [f, p): its relations named from f up to p", 3);
}

#[test]
fn a_grant_in_the_failed_part_is_not_seen_and_the_rest_still_is() {
    // the planted grant sits in the part that failed: nothing to see, nothing invented
    let report = plan(&scan(Some(ORDERS_LAST), delete_on_payments));
    assert_eq!(kinds(&report), vec![]);
    assert_eq!(report.summary.status, Status::Incomplete);
    // a grant revoked in a part that was read is still missing
    let revoked = plan(&scan(Some(ORDERS_LAST), |chunk, s| {
        if chunk != ORDERS_MIDDLE {
            return;
        }
        s.grants.remove(&Grant {
            object: table("orders", "line_items"),
            grantee: Grantee::Role(r("app_rw")),
            privilege: Privilege::Insert,
            grantable: false,
        });
    }));
    assert_eq!(
        kinds(&revoked),
        vec![(FindingKind::Missing, "app_rw".into(), "INSERT".into(), "table orders.line_items".into())]
    );
}

#[test]
fn without_the_roles_grants_of_undeclared_roles_are_not_judged_but_those_of_declared_ones_are() {
    let rogue = |chunk, s: &mut State| match chunk {
        CLUSTER => {
            s.roles.insert(r("rogue"), RoleAttributes::default());
        }
        ORDERS_FIRST => grant(s, "app_rw", Privilege::Truncate, table("orders", "customers")),
        ORDERS_LAST => grant(s, "rogue", Privilege::Update, table("orders", "payments")),
        _ => {}
    };
    let whole = plan(&scan(None, rogue));
    let orphaned = (FindingKind::Orphaned, "rogue".into(), "UPDATE".into(), "table orders.payments".into());
    let unauthorized = (FindingKind::Unauthorized, "app_rw".into(), "TRUNCATE".into(), "table orders.customers".into());
    assert!(kinds(&whole).contains(&orphaned), "{:?}", kinds(&whole));
    assert!(kinds(&whole).contains(&unauthorized), "{:?}", kinds(&whole));
    let partial = plan(&scan(Some(CLUSTER), rogue));
    assert_eq!(kinds(&partial), vec![unauthorized]);
}

#[test]
fn an_incomplete_scan_is_incomplete_even_past_the_alert_thresholds() {
    // TRIGGER for PUBLIC, with grant option: critical drift in the part that was read
    let critical = |chunk, s: &mut State| {
        if chunk != ORDERS_LAST {
            return;
        }
        s.grants.insert(Grant {
            object: table("orders", "payments"),
            grantee: Grantee::Public,
            privilege: Privilege::Trigger,
            grantable: true,
        });
    };
    let whole = plan(&scan(None, critical));
    assert_eq!(whole.summary.status, Status::Alert);
    assert_eq!(whole.alert(), Some(crate::report::ReportAlert::Drift));
    for failed in [CLUSTER, BILLING, ORDERS_FIRST, ORDERS_MIDDLE] {
        let partial = plan(&scan(Some(failed), critical));
        assert_eq!(kinds(&partial), kinds(&whole), "the drift that was read is listed");
        assert_eq!(partial.summary.status, Status::Incomplete, "chunk {failed}");
        assert_eq!(partial.alert(), Some(crate::report::ReportAlert::Incomplete), "never a drift alert");
    }
}

#[test]
fn a_declared_object_that_does_not_exist_is_still_missing_where_the_scan_read() {
    // billing failed; orders was read whole: a table it does not hold is missing, one in billing is not judged
    let baseline = format!(
        "{BASELINE}public:\n  grants:\n    - {{ privileges: [SELECT], on: table, name: orders.nope }}\n    - {{ privileges: [SELECT], on: table, name: billing.nope }}\n"
    );
    let b = Baseline::from_yaml(&baseline, "b.yaml").unwrap();
    let report = diff(&b, &scan(Some(BILLING), unchanged), &ScoringConfig::standard());
    assert_eq!(
        kinds(&report),
        vec![(FindingKind::Missing, "PUBLIC".into(), "SELECT".into(), "table orders.nope".into())]
    );
}

#[test]
fn what_a_scan_did_not_read_follows_its_failed_chunks() {
    let unread = |failed| scan(Some(failed), unchanged).unread();
    assert!(scan(None, unchanged).unread().is_empty());
    let cluster = unread(CLUSTER);
    assert!(cluster.cluster() && !cluster.schema("orders") && !cluster.relation("orders", "payments"));
    let billing = unread(BILLING);
    assert!(billing.schema("billing") && billing.relation("billing", "anything") && !billing.schema("orders"));
    let first = unread(ORDERS_FIRST);
    assert!(first.schema("orders") && first.relation("orders", "customers") && first.relation("orders", "ez"));
    assert!(!first.relation("orders", "f") && !first.relation("orders", "payments"));
    let middle = unread(ORDERS_MIDDLE);
    assert!(!middle.schema("orders") && middle.any_of_schema("orders"));
    assert!(middle.relation("orders", "f") && middle.relation("orders", "line_items"));
    assert!(!middle.relation("orders", "p") && !middle.relation("orders", "customers"));
    // C collation: byte order, upper case before lower case
    assert!(!middle.relation("orders", "Zebra"));
}
