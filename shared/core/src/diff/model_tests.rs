//! The diff against a naive model of it: every declared grant expanded
//! against the catalog into a set, every held grant listed, and the two
//! compared one grant at a time. Whatever the diff does to be fast (ACLs
//! shared between objects, verdicts memoized, objects looked up only when no
//! grant matched them), it must find exactly what the model finds.

use super::tests::relation;
use super::*;
use crate::model::{Function, Grant, RelationKind, RoleAttributes};
use crate::snapshot::Database;
use proptest::prelude::*;
use std::collections::BTreeMap;

/// (kind, grantee, privilege, object type, name, column, grantable)
type Found = (FindingKind, String, String, String, String, Option<String>, bool);

fn r(n: &str) -> RoleName {
    RoleName::new(n).unwrap()
}

/// The catalog: schema s owned by o with tables t0 and t1, a view v, a
/// sequence q, column t0.c and function f(integer), in database shop.
fn objects() -> Vec<(ObjectRef, &'static str)> {
    vec![
        (ObjectRef::database("shop"), "database"),
        (ObjectRef::schema("s"), "schema"),
        (ObjectRef::in_schema(ObjectClass::Table, "s", "t0"), "table"),
        (ObjectRef::in_schema(ObjectClass::Table, "s", "t1"), "table"),
        (ObjectRef::in_schema(ObjectClass::Table, "s", "v"), "view"),
        (ObjectRef::in_schema(ObjectClass::Sequence, "s", "q"), "sequence"),
        (ObjectRef::column("s", "t0", "c"), "column"),
        (ObjectRef::function("s", "f", "integer"), "function"),
    ]
}

const GRANTEES: [&str; 5] = ["PUBLIC", "a", "b", "c", "o"];

fn grantee(i: usize) -> Grantee {
    if i == 0 { Grantee::Public } else { Grantee::Role(r(GRANTEES[i])) }
}

fn state(held: &[(usize, usize, usize, bool)]) -> State {
    let mut s = State { database: Some(Database { name: "shop".into(), owner: r("o") }), ..State::default() };
    for n in &GRANTEES[1..] {
        s.roles.insert(r(n), RoleAttributes::default());
    }
    s.schemas.insert("s".into(), r("o"));
    for (name, kind) in [
        ("t0", RelationKind::Table),
        ("t1", RelationKind::Table),
        ("v", RelationKind::View),
        ("q", RelationKind::Sequence),
    ] {
        s.relations.insert(relation("s", name, kind, "o"));
    }
    s.functions.insert(Function {
        schema: "s".into(),
        name: "f".into(),
        arguments: "integer".into(),
        kind: "function".into(),
        owner: r("o"),
    });
    let objects = objects();
    for &(o, g, p, grantable) in held {
        let object = objects[o].0.clone();
        let privileges = object.class.acl_privileges(150_000);
        let privilege = privileges[p % privileges.len()];
        s.grants.insert(Grant { object, grantee: grantee(g), privilege, grantable });
    }
    s
}

/// One grants entry of the baseline: what it names, and the objects (by
/// index in `objects()`) it names that exist.
const DECLARATIONS: [(&str, &[usize]); 10] = [
    ("on: all_tables_in_schema, schema: s", &[2, 3, 4]),
    ("on: all_sequences_in_schema, schema: s", &[5]),
    ("on: table, schema: s, names: [t0, v]", &[2, 4]),
    ("on: table, name: s.t1", &[3]),
    ("on: sequence, name: s.q", &[5]),
    ("on: column, name: s.t0, columns: [c]", &[6]),
    ("on: schema, name: s", &[1]),
    ("on: function, name: \"s.f(integer)\"", &[7]),
    ("on: database", &[0]),
    ("on: table, name: s.nope", &[]),
];

fn class_of(d: usize) -> ObjectClass {
    [
        ObjectClass::Table,
        ObjectClass::Sequence,
        ObjectClass::Table,
        ObjectClass::Table,
        ObjectClass::Sequence,
        ObjectClass::Column,
        ObjectClass::Schema,
        ObjectClass::Function,
        ObjectClass::Database,
        ObjectClass::Table,
    ][d]
}

/// (grantee: 0 PUBLIC, 1 a, 2 b; declaration; privilege picks; ALL; grant option)
type Declared = (usize, usize, Vec<usize>, bool, bool);

fn baseline(declared: &[Declared]) -> String {
    let mut by_grantee: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (g, d, picks, all, option) in declared {
        let privileges: Vec<Privilege> = class_of(*d).acl_privileges(150_000);
        let listed: BTreeSet<&str> = picks.iter().map(|i| privileges[i % privileges.len()].keyword()).collect();
        let list = if *all { "ALL".to_owned() } else { listed.into_iter().collect::<Vec<_>>().join(", ") };
        by_grantee
            .entry(*g)
            .or_default()
            .push(format!("      - {{ privileges: [{list}], {}, with_grant_option: {option} }}\n", DECLARATIONS[*d].0));
    }
    let mut yaml = String::from("version: 1\nroles:\n  a: {}\n  b: {}\n");
    for (g, entries) in &by_grantee {
        if *g == 0 {
            continue;
        }
        yaml = yaml.replace(
            &format!("  {}: {{}}\n", GRANTEES[*g]),
            &format!("  {}:\n    grants:\n{}", GRANTEES[*g], entries.concat()),
        );
    }
    if let Some(public) = by_grantee.get(&0) {
        yaml.push_str(&format!("public:\n  grants:\n{}", public.concat().replace("      - ", "    - ")));
    }
    yaml
}

/// What the model finds: declared against held, one grant at a time.
fn model(held: &[(usize, usize, usize, bool)], declared: &[Declared]) -> (Vec<Found>, Vec<Found>) {
    let objects = objects();
    let state = state(held);
    let mut wanted: BTreeMap<(usize, usize, Privilege), bool> = BTreeMap::new();
    let mut findings = Vec::new();
    for (g, d, picks, all, option) in declared {
        let g = if *g == 0 { 0 } else { *g };
        let class = class_of(*d);
        let privileges: Vec<Privilege> = if *all {
            class.acl_privileges(150_000)
        } else {
            let of_class = class.acl_privileges(150_000);
            picks.iter().map(|i| of_class[i % of_class.len()]).collect()
        };
        if DECLARATIONS[*d].1.is_empty() {
            // each declaration of an object that does not exist is told once per privilege
            for p in privileges.iter().collect::<BTreeSet<_>>() {
                let nope = ("table".to_owned(), "nope".to_owned());
                findings.push((
                    FindingKind::Missing,
                    GRANTEES[g].into(),
                    p.keyword().into(),
                    nope.0,
                    nope.1,
                    None,
                    *option,
                ));
            }
        }
        for &o in DECLARATIONS[*d].1 {
            let privileges = if *all { objects[o].0.class.acl_privileges(150_000) } else { privileges.clone() };
            for p in privileges {
                *wanted.entry((o, g, p)).or_default() |= *option;
            }
        }
    }
    let mut observations = Vec::new();
    let found = |kind, g: usize, p: Privilege, o: usize, grantable| -> Found {
        let (object, kind_name) = &objects[o];
        (
            kind,
            GRANTEES[g].into(),
            p.keyword().into(),
            (*kind_name).into(),
            object.name.to_string(),
            object.column.as_ref().map(|c| c.to_string()),
            grantable,
        )
    };
    let index_of = |grantee: &Grantee| GRANTEES.iter().position(|n| *n == grantee.to_string()).unwrap();
    let mut held_keys = BTreeSet::new();
    for g in &state.grants {
        let o = objects.iter().position(|(obj, _)| obj == g.object).unwrap();
        let who = index_of(g.grantee);
        held_keys.insert((o, who, g.privilege));
        if who == 4 {
            continue; // the owner's
        }
        match wanted.get(&(o, who, g.privilege)) {
            Some(&option) if option != g.grantable => {
                let kind = if g.grantable { FindingKind::Unauthorized } else { FindingKind::Missing };
                findings.push(found(kind, who, g.privilege, o, true));
            }
            Some(_) => {}
            None if g.is_builtin_public() => {
                observations.push(found(FindingKind::Observed, who, g.privilege, o, g.grantable))
            }
            None if who == 3 => findings.push(found(FindingKind::Orphaned, who, g.privilege, o, g.grantable)),
            None => findings.push(found(FindingKind::Unauthorized, who, g.privilege, o, g.grantable)),
        }
    }
    for (&(o, who, p), &option) in &wanted {
        if !held_keys.contains(&(o, who, p)) {
            findings.push(found(FindingKind::Missing, who, p, o, option));
        }
    }
    findings.sort();
    observations.sort();
    (findings, observations)
}

fn of(fs: &[Finding]) -> Vec<Found> {
    let mut out: Vec<Found> = fs
        .iter()
        .map(|f| {
            (
                f.kind,
                f.grantee.to_string(),
                f.privilege.to_string(),
                f.object.type_name().into_owned(),
                f.object.name().to_owned(),
                f.object.column().map(str::to_owned),
                f.grantable,
            )
        })
        .collect();
    out.sort();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn the_diff_finds_what_a_grant_by_grant_comparison_finds(
        held in proptest::collection::vec((0usize..8, 0usize..5, 0usize..8, any::<bool>()), 0..30),
        declared in proptest::collection::vec(
            (0usize..3, 0usize..10, proptest::collection::vec(0usize..8, 1..3), proptest::bool::weighted(0.2), proptest::bool::weighted(0.2)),
            0..12,
        ),
    ) {
        let yaml = baseline(&declared);
        let b = Baseline::from_yaml(&yaml, "b.yaml").unwrap();
        let st = state(&held);
        let snapshot = Snapshot {
            target: TargetId::new("shop").unwrap(),
            scan_id: "scan".into(),
            taken_at: "2026-11-25T10:00:00Z".parse().unwrap(),
            server_version_num: 150_000,
            complete: true,
            consistent: true,
            chunks: vec![],
            sha256: String::new(),
            state: st,
        };
        let report = diff(&b, &snapshot, &ScoringConfig::standard());
        let (findings, observations) = model(&held, &declared);
        prop_assert_eq!(of(&report.findings), findings, "{}", yaml);
        prop_assert_eq!(of(&report.observations), observations, "{}", yaml);
    }
}
