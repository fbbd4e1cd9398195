//! Micro-benchmarks of the pure core: the diff of 1k, 100k and 1M grants,
//! reading the baseline `generate` writes for the 1M grants, the snapshot's
//! sha256 of the 1M grants, routing one grant request (normalize + route), and
//! sealing audit events.
//!
//! `cargo bench -p grantwarden-core --bench core`; `BENCH_DIFF_SIZES=100000`
//! runs one size of the diff (and of the baseline and the hash).
//! After the diff group it prints the process's peak memory (VmHWM), which
//! holds the largest state, its baseline and its report at once.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::time::Duration;

use chrono::{DateTime, Utc};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use grantwarden_core::audit::{NewEvent, seal};
use grantwarden_core::baseline::Baseline;
use grantwarden_core::diff::diff;
use grantwarden_core::generate::generate;
use grantwarden_core::manifest::RoleFilter;
use grantwarden_core::model::{
    Grant, Grantee, ObjectClass, ObjectRef, Privilege, Relation, RelationKind, RoleAttributes, RoleName,
};
use grantwarden_core::normalize::{Context, from_webhook};
use grantwarden_core::policy::PolicyRegistry;
use grantwarden_core::scoring::ScoringConfig;
use grantwarden_core::snapshot::{Database, Snapshot, State, TargetId};
use grantwarden_core::ticket::route;

/// Roles that receive grants; every table is granted to `GRANTEES_PER_TABLE` of them.
const ROLES: usize = 200;
const GRANTEES_PER_TABLE: usize = 10;
const TABLES_PER_SCHEMA: usize = 1_000;

fn now() -> DateTime<Utc> {
    "2026-11-22T12:00:00Z".parse().unwrap()
}

fn role(i: usize) -> RoleName {
    RoleName::new(format!("role_{i:03}")).unwrap()
}

/// A state of about `grants` table grants: tables in schemas of 1000, each granted
/// SELECT to 10 of 200 roles (INSERT and UPDATE too, for every fourth), plus USAGE
/// on each schema for those roles.
fn state(grants: usize) -> State {
    let owner = RoleName::new("owner").unwrap();
    let mut s = State { database: Some(Database { name: "bench".into(), owner: owner.clone() }), ..State::default() };
    s.roles.insert(owner.clone(), RoleAttributes { login: true, ..RoleAttributes::default() });
    for i in 0..ROLES {
        s.roles.insert(role(i), RoleAttributes::default());
    }
    let tables = grants.div_ceil(GRANTEES_PER_TABLE * 3 / 2).max(1);
    let mut set = BTreeSet::new();
    for t in 0..tables {
        let schema = format!("s{:03}", t / TABLES_PER_SCHEMA);
        if t % TABLES_PER_SCHEMA == 0 {
            s.schemas.insert(schema.clone(), owner.clone());
        }
        let name = format!("t{:04}", t % TABLES_PER_SCHEMA);
        s.relations.insert(Relation {
            schema: schema.clone(),
            name: name.clone(),
            kind: RelationKind::Table,
            owner: owner.clone(),
            rls_enabled: false,
            rls_forced: false,
        });
        let object = ObjectRef::in_schema(ObjectClass::Table, &schema, &name);
        for k in 0..GRANTEES_PER_TABLE {
            let grantee = Grantee::Role(role((t * 7 + k * 13) % ROLES));
            let mut privileges = vec![Privilege::Select];
            if (t + k) % 4 == 0 {
                privileges.extend([Privilege::Insert, Privilege::Update]);
            }
            for privilege in privileges {
                set.insert(Grant { object: object.clone(), grantee: grantee.clone(), privilege, grantable: false });
            }
            set.insert(Grant {
                object: ObjectRef::schema(&schema),
                grantee: grantee.clone(),
                privilege: Privilege::Usage,
                grantable: false,
            });
        }
    }
    s.grants = set.into_iter().collect();
    s
}

fn snapshot(state: State) -> Snapshot {
    Snapshot {
        target: TargetId::new("bench").unwrap(),
        scan_id: "scan-bench".into(),
        taken_at: now(),
        server_version_num: 160_000,
        complete: true,
        consistent: true,
        chunks: vec![],
        sha256: String::new(),
        state,
    }
}

/// The baseline of `state` (as `grantwarden generate` writes it), then the state
/// drifted: every 100th grant revoked (missing) and as many granted (unauthorized).
fn scenario(grants: usize) -> (Baseline, Snapshot) {
    let mut s = state(grants);
    let filter = RoleFilter::new(&[]).unwrap();
    let baseline = Baseline::resolve(&generate(&s, &filter), "bench").expect("a generated baseline resolves");
    let drop: Vec<Grant> = s.grants.iter().step_by(100).map(|g| g.to_grant()).collect();
    for g in &drop {
        s.grants.remove(g);
        let mut extra = g.clone();
        extra.privilege = Privilege::Delete;
        s.grants.insert(extra);
    }
    (baseline, snapshot(s))
}

/// `VmHWM` (peak) or `VmRSS` (now) of this process, in MB.
fn memory_mb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Resets the peak to what is resident now (Linux: `5` to /proc/self/clear_refs).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn bench_diff(c: &mut Criterion) {
    let scoring = ScoringConfig::standard();
    let mut group = c.benchmark_group("diff");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    let mut memory = Vec::new();
    // BENCH_DIFF_SIZES=100000 runs one size (e.g. under a profiler)
    for grants in diff_sizes() {
        let (baseline, snapshot) = scenario(grants);
        let held = snapshot.state.grants.len();
        // memory: the inputs resident before, and the peak while one diff runs
        reset_peak();
        let inputs = memory_mb("VmRSS:");
        let report = diff(&baseline, &snapshot, &scoring);
        memory.push((held, report.findings.len(), inputs, memory_mb("VmHWM:")));
        drop(report);
        group.throughput(Throughput::Elements(held as u64));
        group.bench_with_input(BenchmarkId::from_parameter(format!("{held} grants")), &held, |b, _| {
            b.iter(|| black_box(diff(&baseline, &snapshot, &scoring)))
        });
    }
    group.finish();
    for (held, findings, inputs, peak) in memory {
        if let (Some(inputs), Some(peak)) = (inputs, peak) {
            println!(
                "diff of {held} grants ({findings} findings): {inputs:.0} MB resident before (state and baseline), \
                 peak {peak:.0} MB while diffing (+{:.0} MB)",
                peak - inputs
            );
        }
    }
}

const POLICY: &str = include_str!("../../../infra/policy.example.yaml");
const WEBHOOK: &str = include_str!("../../../infra/grant-webhook.example.json");

fn bench_route(c: &mut Criterion) {
    let registry = PolicyRegistry::load(&[("policy.example.yaml".into(), POLICY.into())]).unwrap();
    let targets = BTreeSet::new();
    let at: DateTime<Utc> = "2026-11-22T12:00:00Z".parse().unwrap();
    let ctx = Context { targets: &targets, now: at, audit_target: None };
    let incidents = grantwarden_core::incident::KnownIncidents(vec![]);
    c.bench_function("route one grant request (normalize + route)", |b| {
        b.iter(|| {
            let request = from_webhook(black_box(WEBHOOK.as_bytes()), &ctx).unwrap();
            black_box(route(&request, &registry, &incidents, at))
        })
    });
}

fn bench_seal(c: &mut Criterion) {
    let event = |i: u64| NewEvent {
        chain: "orders-prod".into(),
        at: now(),
        kind: "ticket.revoked".into(),
        actor: "grantwarden:schedule".into(),
        subject: format!("tkt-{i:020}"),
        target: "orders-prod".into(),
        detail: serde_json::json!({ "role": "alice_tmp", "sql": ["REVOKE USAGE ON SCHEMA \"billing\" FROM \"alice_tmp\""],
                                    "latency_ms": 420, "registry_version": "2.1" }),
    };
    let head = "ab".repeat(32);
    c.bench_function("seal one audit event (RFC 8785 + sha256 chain link)", |b| {
        b.iter_batched(|| event(7), |e| black_box(seal(e, Some((6, &head)))), BatchSize::SmallInput)
    });
}

/// The sizes of the diff group (`BENCH_DIFF_SIZES`, default 1k, 100k and 1M grants).
fn diff_sizes() -> Vec<usize> {
    std::env::var("BENCH_DIFF_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 100_000, 1_000_000])
}

/// What runs beside the diff in `grantwarden plan` on the largest size: reading
/// the baseline (YAML, as `generate` writes it) and hashing the snapshot.
fn bench_baseline_and_hash(c: &mut Criterion) {
    let Some(&grants) = diff_sizes().iter().max() else { return };
    let state = state(grants);
    let manifest = generate(&state, &RoleFilter::new(&[]).unwrap());
    let yaml = serde_saphyr::to_string(&manifest).expect("a manifest serializes");
    let held = state.grants.len();
    let mut group = c.benchmark_group("plan beside the diff");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Bytes(yaml.len() as u64));
    group.bench_function(format!("read the baseline of {held} grants ({} KB of YAML)", yaml.len() / 1024), |b| {
        b.iter(|| black_box(Baseline::from_yaml(&yaml, "bench.yaml").expect("a generated baseline reads")))
    });
    group.throughput(Throughput::Elements(held as u64));
    group.bench_function(format!("sha256 of the snapshot of {held} grants"), |b| b.iter(|| black_box(state.sha256())));
    group.finish();
}

criterion_group!(benches, bench_route, bench_seal, bench_diff, bench_baseline_and_hash);
criterion_main!(benches);
