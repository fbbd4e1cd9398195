//! The differ against hand-made catalogs: each classification, owners, default privileges, functions.

use super::*;
use crate::model::{Function, Grant, Membership, RelationKind, RoleAttributes};
use crate::snapshot::{Database, TargetId};
use proptest::prelude::*;

fn r(n: &str) -> RoleName {
    RoleName::new(n).unwrap()
}

fn attrs() -> RoleAttributes {
    RoleAttributes::default()
}

fn grant(grantee: Grantee, privilege: Privilege, object: ObjectRef) -> Grant {
    Grant { object, grantee, privilege, grantable: false }
}

/// orders schema owned by migrator with line_items and customers; app_ro reads it.
fn state() -> State {
    let mut s = State { database: Some(Database { name: "shop".into(), owner: r("postgres") }), ..State::default() };
    for name in ["postgres", "migrator", "app_ro", "app_rw"] {
        s.roles.insert(r(name), attrs());
    }
    s.roles.get_mut(&r("postgres")).unwrap().superuser = true;
    s.roles.get_mut(&r("app_rw")).unwrap().login = true;
    s.schemas.insert("orders".into(), r("migrator"));
    for t in ["customers", "line_items"] {
        s.relations.insert(relation("orders", t, RelationKind::Table, "migrator"));
        s.grants.insert(grant(
            Grantee::Role(r("app_ro")),
            Privilege::Select,
            ObjectRef::in_schema(ObjectClass::Table, "orders", t),
        ));
        // the owner's implicit privileges, as acldefault shows them
        s.grants.insert(grant(
            Grantee::Role(r("migrator")),
            Privilege::Delete,
            ObjectRef::in_schema(ObjectClass::Table, "orders", t),
        ));
    }
    s.functions.insert(Function {
        schema: "orders".into(),
        name: "total".into(),
        arguments: "integer".into(),
        kind: "function".into(),
        owner: r("migrator"),
    });
    s.grants.insert(grant(Grantee::Public, Privilege::Execute, ObjectRef::function("orders", "total", "integer")));
    s.grants.insert(grant(Grantee::Public, Privilege::Connect, ObjectRef::database("shop")));
    s.grants.insert(grant(Grantee::Role(r("app_ro")), Privilege::Usage, ObjectRef::schema("orders")));
    s.memberships.insert(Membership { role: r("app_ro"), member: r("app_rw"), admin: false, inherit: true, set: true });
    s
}

const BASELINE: &str = r#"
version: 1
roles:
  migrator:
    owns: [{ on: schema, name: orders }, { on: all_tables_in_schema, schema: orders }]
  app_ro:
    grants:
      - { privileges: [USAGE], on: schema, name: orders }
      - { privileges: [SELECT], on: all_tables_in_schema, schema: orders }
  app_rw:
    login: true
    member_of: [app_ro]
ignore_roles: ["postgres"]
"#;

fn snapshot(state: State) -> Snapshot {
    Snapshot {
        target: TargetId::new("shop").unwrap(),
        scan_id: "scan-test".into(),
        taken_at: "2026-11-25T10:00:00Z".parse().unwrap(),
        server_version_num: 150_000,
        complete: true,
        consistent: true,
        chunks: vec![],
        sha256: state.sha256(),
        state,
    }
}

fn plan(baseline: &str, state: State) -> Report {
    let b = Baseline::from_yaml(baseline, "b.yaml").unwrap();
    diff(&b, &snapshot(state), &ScoringConfig::standard())
}

fn kinds(r: &Report) -> Vec<(FindingKind, String, String, String)> {
    r.findings.iter().map(|f| (f.kind, f.grantee.to_string(), f.privilege.to_string(), f.object.to_string())).collect()
}

/// The keyword of a finding about one privilege.
fn privilege(f: &Finding) -> &'static str {
    match f.privilege {
        FindingPrivilege::One(p) => p.keyword(),
        _ => panic!("{f:?} names no one privilege"),
    }
}

#[test]
fn matching_state_has_no_drift_and_shows_public_defaults() {
    let report = plan(BASELINE, state());
    assert_eq!(kinds(&report), vec![]);
    assert_eq!(report.summary.status, crate::report::Status::Ok);
    let observed: Vec<_> = report.observations.iter().map(|f| (f.grantee.as_str(), privilege(f))).collect();
    assert!(observed.contains(&("PUBLIC", "EXECUTE")) && observed.contains(&("PUBLIC", "CONNECT")));
    assert!(observed.contains(&("postgres", "SUPERUSER")), "superusers are listed even when ignored");
}

#[test]
fn a_table_created_after_the_baseline_is_covered_by_all_tables_in_schema() {
    let mut s = state();
    s.relations.insert(relation("orders", "shipments", RelationKind::View, "migrator"));
    let shipments = ObjectRef::in_schema(ObjectClass::Table, "orders", "shipments");
    s.grants.insert(grant(Grantee::Role(r("app_ro")), Privilege::Select, shipments.clone()));
    assert_eq!(kinds(&plan(BASELINE, s.clone())), vec![]);
    // ...and if it lacks the grant, that is missing
    s.grants.remove(&grant(Grantee::Role(r("app_ro")), Privilege::Select, shipments));
    assert_eq!(
        kinds(&plan(BASELINE, s)),
        vec![(FindingKind::Missing, "app_ro".into(), "SELECT".into(), "view orders.shipments".into())]
    );
}

#[test]
fn sequences_are_matched_by_schema_wide_and_by_name_declarations() {
    let mut s = state();
    for name in ["ids", "bare"] {
        s.relations.insert(relation("orders", name, RelationKind::Sequence, "migrator"));
    }
    let ids = ObjectRef::in_schema(ObjectClass::Sequence, "orders", "ids");
    s.grants.insert(grant(Grantee::Role(r("app_ro")), Privilege::Usage, ids.clone()));
    s.grants.insert(grant(Grantee::Role(r("app_rw")), Privilege::Select, ids));
    let baseline = BASELINE
            .replace(
                "      - { privileges: [SELECT], on: all_tables_in_schema, schema: orders }\n",
                "      - { privileges: [SELECT], on: all_tables_in_schema, schema: orders }\n      - { privileges: [USAGE], on: all_sequences_in_schema, schema: orders }\n",
            )
            // a sequence named as a table is still that sequence
            .replace(
                "    member_of: [app_ro]\n",
                "    member_of: [app_ro]\n    grants: [{ privileges: [SELECT], on: table, name: orders.ids }]\n",
            );
    // the sequence no grant touches is the one the schema-wide declaration misses
    assert_eq!(
        kinds(&plan(&baseline, s)),
        vec![(FindingKind::Missing, "app_ro".into(), "USAGE".into(), "sequence orders.bare".into())]
    );
}

#[test]
fn drift_is_classified() {
    let mut s = state();
    let li = ObjectRef::in_schema(ObjectClass::Table, "orders", "line_items");
    s.grants.insert(grant(Grantee::Role(r("app_ro")), Privilege::Insert, li.clone())); // unauthorized
    s.grants.remove(&grant(Grantee::Role(r("app_ro")), Privilege::Usage, ObjectRef::schema("orders"))); // missing
    s.roles.insert(r("contractor"), RoleAttributes { login: true, ..attrs() });
    s.grants.insert(grant(Grantee::Role(r("contractor")), Privilege::Select, li.clone())); // orphaned
    s.grants.insert(grant(Grantee::Public, Privilege::Select, li.clone())); // unauthorized, high
    s.roles.get_mut(&r("app_ro")).unwrap().bypassrls = true; // unauthorized attribute
    s.grants.insert(grant(Grantee::Role(r("postgres")), Privilege::Select, li)); // ignored role
    let report = plan(BASELINE, s);
    let got = kinds(&report);
    let want = [
        (FindingKind::Unauthorized, "app_ro", "BYPASSRLS", "role app_ro"),
        (FindingKind::Unauthorized, "PUBLIC", "SELECT", "table orders.line_items"),
        (FindingKind::Orphaned, "contractor", "LOGIN", "role contractor"),
        (FindingKind::Unauthorized, "app_ro", "INSERT", "table orders.line_items"),
        (FindingKind::Missing, "app_ro", "USAGE", "schema orders"),
        (FindingKind::Orphaned, "contractor", "SELECT", "table orders.line_items"),
    ];
    let want: Vec<_> = want.iter().map(|(k, g, p, o)| (*k, g.to_string(), p.to_string(), o.to_string())).collect();
    assert_eq!(got, want);
    let public = report.findings.iter().find(|f| f.grantee == Grantee::Public).unwrap();
    assert_eq!(public.severity, crate::scoring::Severity::High, "any non-default PUBLIC grant is high severity");
    assert_eq!(report.summary.status, crate::report::Status::Alert, "BYPASSRLS is critical");
    assert_eq!((report.summary.unauthorized, report.summary.missing, report.summary.orphaned), (3, 1, 2));
}

#[test]
fn owners_implicit_privileges_are_not_drift_but_declared_owners_are_checked() {
    let mut s = state();
    s.schemas.insert("orders".into(), r("app_rw"));
    let report = plan(BASELINE, s);
    assert_eq!(
        kinds(&report),
        vec![
            (FindingKind::Unauthorized, "app_rw".into(), "OWNER".into(), "schema orders".into()),
            (FindingKind::Missing, "migrator".into(), "OWNER".into(), "schema orders".into()),
        ]
    );
}

#[test]
fn builtin_public_defaults_are_unauthorized_when_the_baseline_revokes_them() {
    let baseline = format!("{BASELINE}public:\n  builtin_defaults: revoke\n");
    let report = plan(&baseline, state());
    let public: Vec<_> = report.findings.iter().map(|f| (f.kind, f.grantee.as_str(), privilege(f))).collect();
    assert_eq!(
        public,
        vec![(FindingKind::Unauthorized, "PUBLIC", "CONNECT"), (FindingKind::Unauthorized, "PUBLIC", "EXECUTE")]
    );
}

#[test]
fn membership_options_and_undeclared_memberships() {
    let mut s = state();
    s.memberships.clear();
    s.memberships.insert(Membership { role: r("app_ro"), member: r("app_rw"), admin: true, inherit: true, set: true });
    s.memberships.insert(Membership {
        role: r("migrator"),
        member: r("app_ro"),
        admin: false,
        inherit: true,
        set: true,
    });
    let report = plan(BASELINE, s.clone());
    let got: Vec<_> =
        report.findings.iter().map(|f| (f.kind, f.grantee.as_str(), f.object.name(), f.grantable)).collect();
    assert_eq!(
        got,
        vec![
            (FindingKind::Unauthorized, "app_rw", "app_ro", true),
            (FindingKind::Unauthorized, "app_ro", "migrator", false),
        ]
    );
    s.memberships.clear();
    let report = plan(BASELINE, s);
    assert_eq!(kinds(&report), vec![(FindingKind::Missing, "app_rw".into(), "MEMBER".into(), "role app_ro".into())]);
}

#[test]
fn a_declared_role_that_does_not_exist_is_one_missing_finding() {
    let baseline = format!(
        "{BASELINE}  ghost:\n    grants:\n      - {{ privileges: [SELECT], on: table, name: orders.customers }}\n"
    )
    .replace("ignore_roles: [\"postgres\"]\n", "")
        + "ignore_roles: [\"postgres\"]\n";
    let report = plan(&baseline, state());
    assert_eq!(kinds(&report), vec![(FindingKind::Missing, "ghost".into(), "ROLE".into(), "role ghost".into())]);
}

#[test]
fn declared_objects_that_do_not_exist_are_missing() {
    let baseline = BASELINE.replace(
            "      - { privileges: [USAGE], on: schema, name: orders }",
            "      - { privileges: [USAGE], on: schema, name: orders }\n      - { privileges: [SELECT], on: table, name: orders.nope }",
        );
    let report = plan(&baseline, state());
    assert_eq!(report.findings.len(), 1);
    assert_eq!(report.findings[0].kind, FindingKind::Missing);
    assert!(report.findings[0].detail.contains("does not exist"), "{}", report.findings[0].detail);
}

#[test]
fn incomplete_scans_never_read_as_clean() {
    let b = Baseline::from_yaml(BASELINE, "b.yaml").unwrap();
    let mut snap = snapshot(state());
    snap.complete = false;
    let report = diff(&b, &snap, &ScoringConfig::standard());
    assert_eq!(report.summary.status, crate::report::Status::Incomplete);
    assert!(!report.summary.complete);
}

proptest! {
    /// Findings depend on the state, not on the order facts were inserted in.
    #[test]
    fn diff_is_deterministic(extra in proptest::collection::vec((0usize..4, 0usize..6, 0usize..3), 0..25), seed: u64) {
        let roles = ["app_ro", "app_rw", "contractor", "PUBLIC"];
        let privileges = [Privilege::Select, Privilege::Insert, Privilege::Update, Privilege::Delete, Privilege::Truncate, Privilege::Trigger];
        let tables = ["customers", "line_items", "missing_table"];
        let mut grants: Vec<Grant> = extra.iter().map(|(g, p, t)| {
            let grantee = if roles[*g] == "PUBLIC" { Grantee::Public } else { Grantee::Role(r(roles[*g])) };
            grant(grantee, privileges[*p], ObjectRef::in_schema(ObjectClass::Table, "orders", tables[*t]))
        }).collect();
        let build = |gs: &[Grant]| {
            let mut s = state();
            s.roles.insert(r("contractor"), attrs());
            for g in gs { s.grants.insert(g.clone()); }
            s
        };
        let a = plan(BASELINE, build(&grants));
        let mut rng = seed;
        for i in (1..grants.len()).rev() {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            grants.swap(i, (rng >> 33) as usize % (i + 1));
        }
        let b = plan(BASELINE, build(&grants));
        prop_assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
        // nothing unscored hides drift: every held, undeclared grant of a declared role shows up
        for f in &a.findings {
            prop_assert!(f.score > 0.0);
        }
    }
}

/// A relation of the tests' catalogs, without row-level security.
pub(super) fn relation(
    schema: &str,
    name: &str,
    kind: crate::model::RelationKind,
    owner: &str,
) -> crate::model::Relation {
    crate::model::Relation {
        schema: schema.into(),
        name: name.into(),
        kind,
        owner: RoleName::new(owner).expect("a test's role name is valid"),
        rls_enabled: false,
        rls_forced: false,
    }
}
