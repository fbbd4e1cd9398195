//! Assessment: one snapshot against the baseline, with the store's exceptions
//! laid over it, findings recorded with their age, and the scan journaled.
//!
//! The CLI (`plan` with a state file) and the diff Lambda both end here, which
//! is why the same scenario gives the same findings in local mode and on AWS.
//! Fail secure: a registry that cannot be read, or a store that cannot be
//! opened ([`assess_without_store`]), applies no exception and adds an
//! untagged finding that says why.
//!
//! A MySQL or MariaDB scan ([`assess_mysql`]) is assessed and recorded the
//! same way: the target's tickets (naming accounts, `Ticket::covers_mysql`)
//! laid over it, untagged findings added, findings with their age, the scan
//! journaled.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::audit::event::{FindingChange, FindingsBulk, ScanFinding};
use crate::audit::{AuditJournal, NewEvent};
use crate::baseline::Baseline;
use crate::diff::{Exceptions, diff_with_exceptions};
use crate::error::StoreError;
use crate::intake::untagged_finding;
use crate::mysql_baseline::Baseline as MysqlBaseline;
use crate::mysql_plan::EngineMismatch;
use crate::mysql_scan::Scan as MysqlScan;
use crate::policy::PolicyRegistry;
use crate::report::{Finding, Report};
use crate::scoring::ScoringConfig;
use crate::snapshot::Snapshot;
use crate::store::{FindingStore, TicketStore, finding_key};
use sha2::Digest as _;

/// The registry as the caller could load it: `None` when none is configured,
/// `Some(Err(why))` when it is configured but unusable.
pub type RegistryInput<'a> = Option<Result<&'a PolicyRegistry, String>>;

/// Diffs `snapshot` against `baseline` with the target's tickets and open
/// untagged findings as exceptions, records the findings, weighs them by age
/// and journals the findings opened and closed, then `scan.completed`. A
/// partial scan (a chunk failed) records nothing, opening and closing no
/// finding, and journals only `scan.incomplete`.
pub async fn assess<S>(
    store: &S,
    baseline: &Baseline,
    snapshot: &Snapshot,
    scoring: &ScoringConfig,
    registry: RegistryInput<'_>,
    now: DateTime<Utc>,
) -> Result<Report, StoreError>
where
    S: TicketStore + FindingStore + AuditJournal + Sync,
{
    let Laid { tickets, untagged, registry_version, threshold } =
        lay_exceptions(store, &snapshot.target, registry, scoring, now).await?;
    let exceptions = Exceptions { tickets: &tickets, now, untagged: &untagged };
    let mut report = diff_with_exceptions(baseline, snapshot, scoring, &exceptions);
    let logins: Vec<String> =
        snapshot.state.roles.iter().filter(|(_, a)| a.login).map(|(r, _)| r.to_string()).collect();
    report.governance = Some(crate::governance::governance(&tickets, &logins, threshold, now));
    record(store, &mut report, snapshot.complete, registry_version.as_deref(), scoring, now).await?;
    Ok(report)
}

/// Why a MySQL or MariaDB scan was not assessed.
#[derive(Debug, thiserror::Error)]
pub enum MysqlAssessError {
    /// The baseline is for the other engine: nothing was recorded.
    #[error(transparent)]
    Engine(#[from] EngineMismatch),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Plans a MySQL or MariaDB `scan` against its `baseline` with the target's
/// tickets and open untagged findings as exceptions
/// ([`crate::mysql_plan::plan_with_exceptions`]), and records it as
/// [`assess`] records a PostgreSQL snapshot: findings with their age, opened
/// and closed ones journaled, then the scan's event; a partial scan records
/// no finding. The registry counts as for [`assess`] (an unusable one applies
/// no ticket). The governance figures count the target's tickets and the
/// accounts that log in.
pub async fn assess_mysql<S>(
    store: &S,
    baseline: &MysqlBaseline,
    scan: &MysqlScan,
    scoring: &ScoringConfig,
    registry: RegistryInput<'_>,
    now: DateTime<Utc>,
) -> Result<Report, MysqlAssessError>
where
    S: TicketStore + FindingStore + AuditJournal + Sync,
{
    // before anything is journaled
    crate::mysql_plan::check_engine(baseline, scan)?;
    let Laid { tickets, untagged, registry_version, threshold } =
        lay_exceptions(store, &scan.target, registry, scoring, now).await?;
    let exceptions = Exceptions { tickets: &tickets, now, untagged: &untagged };
    let mut report = crate::mysql_plan::plan_with_exceptions(baseline, scan, scoring, &exceptions)?;
    let logins: Vec<String> =
        scan.catalog.accounts.iter().filter(|a| !a.is_role && !a.locked).map(|a| a.account.to_string()).collect();
    report.governance = Some(crate::governance::governance(&tickets, &logins, threshold, now));
    record(store, &mut report, scan.complete, registry_version.as_deref(), scoring, now).await?;
    Ok(report)
}

/// The exceptions of a target as the store and the registry give them.
struct Laid {
    tickets: Vec<crate::ticket::Ticket>,
    untagged: Vec<Finding>,
    registry_version: Option<String>,
    threshold: Option<u32>,
}

/// The target's tickets and open untagged findings, and what the registry
/// says: its version (noted in the journal when new) and the break-glass
/// alert threshold. Fail secure: a registry that cannot be read applies no
/// ticket and adds an untagged finding that says why.
async fn lay_exceptions<S>(
    store: &S,
    target: &crate::snapshot::TargetId,
    registry: RegistryInput<'_>,
    scoring: &ScoringConfig,
    now: DateTime<Utc>,
) -> Result<Laid, StoreError>
where
    S: TicketStore + FindingStore + AuditJournal + Sync,
{
    let mut untagged = store.open_untagged(target).await?;
    let mut tickets = store.tickets(Some(target)).await?;
    let mut registry_version = None;
    let threshold = match &registry {
        Some(Ok(r)) => r.access.as_ref().map(|a| a.break_glass_alert_per_month),
        _ => None,
    };
    match registry {
        Some(Err(why)) => {
            tickets.clear();
            let reason = format!("policy registry unusable, exceptions not applied: {why}");
            untagged.push(untagged_finding(None, &reason, scoring));
        }
        Some(Ok(registry)) => {
            crate::audit::note_registry(store, registry, "grantwarden", now).await?;
            registry_version = Some(registry.id.version.clone());
        }
        None => {}
    }
    Ok(Laid { tickets, untagged, registry_version, threshold })
}

/// Records a report's findings with their age and journals the findings
/// opened and closed, then the scan's event. A partial scan records nothing:
/// what it did not read may hold what an open finding is about (so it closes
/// none), and what it read is not the whole (so it opens none). Its findings
/// are in the report, unweighed by age, and its end is journaled as
/// `scan.incomplete`.
async fn record<S>(
    store: &S,
    report: &mut Report,
    complete: bool,
    registry_version: Option<&str>,
    scoring: &ScoringConfig,
    now: DateTime<Utc>,
) -> Result<(), StoreError>
where
    S: FindingStore + AuditJournal + Sync,
{
    if complete {
        let recorded = store.record_findings(&report.target, &report.scan_id, &report.findings, now, true).await?;
        report.weigh_by_age(&recorded.ages, now, scoring);
        let opened: Vec<&Finding> = report
            .findings
            .iter()
            .zip(&recorded.ages)
            .filter(|(_, age)| age.first_seen == now)
            .map(|(f, _)| f)
            .collect();
        let closed: Vec<&Finding> = recorded.closed.iter().collect();
        for event in finding_events(report, registry_version, &opened, &closed, now) {
            store.append(event).await?;
        }
    }
    store.append(NewEvent::for_scan(report, registry_version, now)).await?;
    Ok(())
}

/// The assessment when the store cannot be opened at all: fail secure. No
/// ticket can be read, so no exception is applied, and an untagged finding
/// says why (the store being unavailable is itself a finding of the report);
/// nothing is recorded or journaled, there being nowhere to.
pub fn assess_without_store(
    baseline: &Baseline,
    snapshot: &Snapshot,
    scoring: &ScoringConfig,
    why: &StoreError,
    now: DateTime<Utc>,
) -> Report {
    let reason = format!("state store unavailable, exceptions not applied: {why}");
    let untagged = [untagged_finding(None, &reason, scoring)];
    let exceptions = Exceptions { tickets: &[], now, untagged: &untagged };
    diff_with_exceptions(baseline, snapshot, scoring, &exceptions)
}

/// Findings journaled one event each per scan; beyond this, one summary
/// event per direction (the scan's report lists every finding), so a first
/// scan of a drifted database does not hold the chain head for minutes.
pub const MAX_FINDING_EVENTS: usize = 100;

/// `finding.opened` / `finding.closed` for what a scan opened and closed: one
/// event per finding, or a `finding.opened.bulk` / `finding.closed.bulk`
/// summary (count and sha256 of the sorted finding keys) past
/// [`MAX_FINDING_EVENTS`].
pub fn finding_events(
    report: &Report,
    registry_version: Option<&str>,
    opened: &[&Finding],
    closed: &[&Finding],
    now: DateTime<Utc>,
) -> Vec<NewEvent> {
    let target = report.target.as_str();
    let mut out = Vec::new();
    for (change, findings) in [(FindingChange::Opened, opened), (FindingChange::Closed, closed)] {
        if findings.len() <= MAX_FINDING_EVENTS {
            for f in findings {
                let detail = ScanFinding {
                    finding: (*f).clone(),
                    scan_id: report.scan_id.clone(),
                    registry_version: registry_version.map(str::to_owned),
                };
                out.push(NewEvent::scan_finding(target, change, &detail, now));
            }
        } else {
            let mut keys: Vec<String> = findings.iter().map(|f| finding_key(f)).collect();
            keys.sort();
            let digest = hex::encode(sha2::Sha256::digest(keys.join("\n").as_bytes()));
            let mut by_kind = BTreeMap::new();
            // drift by grantee: enough for the remediation report to tell how each was resolved
            let mut by_grantee = BTreeMap::new();
            for f in findings.iter() {
                *by_kind.entry(f.kind).or_insert(0) += 1;
                if f.kind.is_drift() {
                    *by_grantee.entry(f.grantee.clone()).or_insert(0) += 1;
                }
            }
            let bulk = FindingsBulk {
                count: findings.len(),
                by_kind: Some(by_kind),
                by_grantee: Some(by_grantee),
                keys_sha256: digest,
                scan_id: report.scan_id.clone(),
                registry_version: registry_version.map(str::to_owned),
            };
            out.push(NewEvent::scan_findings_bulk(target, change, &bulk, now));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::FindingKind;
    use crate::model::{Grant, Grantee, ObjectRef, Privilege, RoleAttributes, RoleName};
    use crate::scoring::Severity;

    #[test]
    fn a_partial_scan_records_no_finding_and_journals_only_that_it_was_incomplete() {
        use crate::memory_store::{MemoryStore, ready};
        use crate::snapshot::{ChunkOutcome, ChunkSpec};
        let rogue = RoleName::new("rogue").unwrap();
        let mut snapshot: Snapshot = serde_json::from_value(serde_json::json!({
            "target": "orders-prod", "scan_id": "scan-1", "taken_at": "2026-11-22T12:00:00Z",
            "server_version_num": 150_000, "complete": false, "consistent": true, "chunks": [], "sha256": "",
            "state": { "schemas": { "billing": "postgres" } }
        }))
        .unwrap();
        snapshot.state.roles.insert(rogue.clone(), RoleAttributes::default());
        snapshot.state.roles.insert(RoleName::new("app_ro").unwrap(), RoleAttributes::default());
        snapshot.chunks = vec![ChunkOutcome {
            batch_id: "b1".into(),
            chunk: ChunkSpec::Schemas { schemas: vec!["orders".into()] },
            attempts: 1,
            error: Some("permission denied for table pg_proc".into()),
        }];
        let usage = Grant {
            object: ObjectRef::schema("billing"),
            grantee: Grantee::Role(rogue),
            privilege: Privilege::Usage,
            grantable: false,
        };
        snapshot.state.grants.insert(usage);
        snapshot.seal();
        // orders was not read: its declared grant is not judged; rogue's grant on billing is drift
        let baseline = Baseline::from_yaml(
            "version: 1\nroles:\n  app_ro:\n    grants:\n      - { privileges: [USAGE], on: schema, name: orders }\n",
            "b.yaml",
        )
        .unwrap();
        let store = MemoryStore::default();
        let report =
            ready(assess(&store, &baseline, &snapshot, &ScoringConfig::standard(), None, snapshot.taken_at)).unwrap();
        let kinds: Vec<(FindingKind, &str)> = report.findings.iter().map(|f| (f.kind, f.grantee.as_str())).collect();
        assert!(!kinds.contains(&(FindingKind::Missing, "app_ro")), "{kinds:?}");
        assert!(kinds.contains(&(FindingKind::Orphaned, "rogue")), "what was read is listed: {kinds:?}");
        assert_eq!(report.summary.status, crate::report::Status::Incomplete);
        assert!(store.0.lock().unwrap().findings.is_empty(), "no finding opened");
        assert_eq!(store.kinds("orders-prod"), vec!["scan.incomplete"], "no finding event, the scan's end");
    }

    #[test]
    fn an_unavailable_store_applies_no_exception_and_says_so_in_an_untagged_finding() {
        let alice = RoleName::new("alice_tmp").unwrap();
        let mut snapshot: Snapshot = serde_json::from_value(serde_json::json!({
            "target": "orders-prod", "scan_id": "scan-1", "taken_at": "2026-11-22T12:00:00Z",
            "server_version_num": 150_000, "complete": true, "consistent": true, "chunks": [], "sha256": "",
            "state": { "schemas": { "billing": "postgres" } }
        }))
        .unwrap();
        snapshot.state.roles.insert(alice.clone(), RoleAttributes::default());
        let usage = Grant {
            object: ObjectRef::schema("billing"),
            grantee: Grantee::Role(alice),
            privilege: Privilege::Usage,
            grantable: false,
        };
        snapshot.state.grants.insert(usage);
        snapshot.seal();
        let baseline = Baseline::from_yaml("version: 1\n", "b.yaml").unwrap();
        let why = StoreError::Unavailable("cannot open .grantwarden/state.db".into());
        let report = assess_without_store(&baseline, &snapshot, &ScoringConfig::standard(), &why, snapshot.taken_at);
        let kinds: Vec<FindingKind> = report.findings.iter().map(|f| f.kind).collect();
        assert!(!kinds.contains(&FindingKind::Excepted), "nothing is excepted: {kinds:?}");
        assert!(report.findings.iter().any(|f| f.kind.is_drift() && f.grantee.as_str() == "alice_tmp"), "{kinds:?}");
        let untagged = report.findings.iter().find(|f| f.kind == FindingKind::Untagged).expect("an untagged finding");
        assert!(untagged.severity >= Severity::High);
        assert_eq!(
            untagged.detail,
            "state store unavailable, exceptions not applied: state store unavailable: cannot open .grantwarden/state.db"
        );
    }
}
