//! Assessment: one snapshot against the baseline, with the store's exceptions
//! laid over it, findings recorded with their age, and the scan journaled.
//!
//! The CLI (`plan` with a state file) and the diff Lambda both end here, which
//! is why the same scenario gives the same findings in local mode and on AWS.
//! Fail secure: a registry that cannot be read applies no exception and adds
//! an untagged finding that says why.

use chrono::{DateTime, Utc};

use crate::audit::{AuditJournal, NewEvent};
use crate::baseline::Baseline;
use crate::diff::{Exceptions, diff_with_exceptions};
use crate::intake::untagged_finding;
use crate::policy::PolicyRegistry;
use crate::report::Report;
use crate::scoring::ScoringConfig;
use crate::snapshot::Snapshot;
use crate::store::{FindingStore, StoreError, TicketStore};

/// The registry as the caller could load it: `None` when none is configured,
/// `Some(Err(why))` when it is configured but unusable.
pub type RegistryInput<'a> = Option<Result<&'a PolicyRegistry, String>>;

/// Diffs `snapshot` against `baseline` with the target's tickets and open
/// untagged findings as exceptions, records the findings (a partial scan
/// closes nothing), weighs them by age and journals `scan.completed` or
/// `scan.incomplete`.
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
    let mut untagged = store.open_untagged(&snapshot.target).await?;
    let mut tickets = store.tickets(Some(&snapshot.target)).await?;
    let mut registry_version = None;
    match registry {
        Some(Err(why)) => {
            tickets.clear();
            let reason = format!("policy registry unusable, exceptions not applied: {why}");
            untagged.push(untagged_finding(None, &reason, scoring));
        }
        Some(Ok(registry)) => registry_version = Some(registry.id.version.clone()),
        None => {}
    }
    let exceptions = Exceptions { tickets: &tickets, now, untagged: &untagged };
    let mut report = diff_with_exceptions(baseline, snapshot, scoring, &exceptions);
    let ages =
        store.record_findings(&snapshot.target, &snapshot.scan_id, &report.findings, now, snapshot.complete).await?;
    report.weigh_by_age(&ages, now, scoring);
    store.append(NewEvent::for_scan(&report, registry_version.as_deref(), now)).await?;
    Ok(report)
}
