//! Compliance evidence: what an auditor asks, answered from the plan report,
//! the tickets, the open findings and the audit journal, never from notes.
//!
//! - [`CoverageReport`]: who should have access (the baseline) against who has
//!   it (the scan): privileges declared, excepted, in drift, with targets.
//! - [`AccessChanges`]: tickets requested, granted, ended by expiry or early,
//!   failed revocations, approval times, the auto-revoked share and latency.
//! - [`RemediationReport`]: drift opened and resolved (by what), open items
//!   with their age, mean time to resolution.
//! - [`Evidence`]: one person's roles, the policy and exceptions that apply,
//!   the privileges their roles hold, and their whole audit trail.
//!
//! Each carries a [`Basis`]: the registry version and the head of every audit
//! chain it was built from, so it can be checked later against the journal.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::audit::event::{EventKind, FindingOpenedOrClosed, FindingsBulk, Remediation, TicketDetail};
use crate::audit::{AuditEvent, AuditJournal};
use crate::change::Change;
use crate::error::StoreError;
use crate::finding::FindingAge;
use crate::metrics::Durations;
use crate::model::{Grant, Grantee, RoleName};
use crate::policy::{Category, PolicyRegistry};
use crate::report::{Coverage, Finding, FindingPrivilege, Report};
use crate::scoring::CoverageTargets;
use crate::ticket::{Ticket, TicketStatus, Trigger};

/// What a report was built from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Basis {
    /// When it was built.
    pub generated_at: DateTime<Utc>,
    /// The policy registry version in force, when one was loaded.
    pub registry_version: Option<String>,
    /// The head `(seq, hash)` of every audit chain read.
    pub chain_heads: BTreeMap<String, ChainHead>,
}

impl Basis {
    /// The basis of a report built now from `chains` of `journal` under registry `registry_version`.
    pub async fn read<J: AuditJournal + Sync>(
        journal: &J,
        chains: &[String],
        registry_version: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Self, StoreError> {
        let mut chain_heads = BTreeMap::new();
        for chain in chains {
            if let Some((seq, hash)) = journal.head(chain).await? {
                chain_heads.insert(chain.clone(), ChainHead { seq, hash });
            }
        }
        Ok(Self { generated_at: now, registry_version, chain_heads })
    }
}

/// One chain's head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// Last sequence number.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
}

/// A window of time; either end may be open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// From (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// To (exclusive).
    pub to: Option<DateTime<Utc>>,
}

impl Window {
    /// Whether `at` falls in it.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.from.is_none_or(|f| at >= f) && self.to.is_none_or(|t| at < t)
    }
}

/// One coverage target and whether it is met.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// What is measured.
    pub name: String,
    /// The measured percentage.
    pub actual: f64,
    /// `>=` or `<=`.
    pub comparison: String,
    /// The target percentage.
    pub target: f64,
    /// Met or not.
    pub met: bool,
}

/// Policy coverage of one scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoverageReport {
    /// The target.
    pub target: String,
    /// The scan.
    pub scan_id: String,
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
    /// The counts.
    pub coverage: Coverage,
    /// Declared by the baseline, in percent of what is held.
    pub baseline_percent: f64,
    /// Covered by exceptions, in percent.
    pub exceptions_percent: f64,
    /// Drift, in percent.
    pub drift_percent: f64,
    /// Declared but not held (not part of the percentages).
    pub missing: usize,
    /// Whether the scan was complete (a partial scan proves nothing).
    pub complete: bool,
    /// Targets from the scoring config.
    pub targets: Vec<Target>,
    /// What it was built from.
    pub basis: Basis,
}

impl CoverageReport {
    /// Coverage of `report` against `targets`.
    pub fn new(report: &Report, targets: &CoverageTargets, basis: Basis) -> Self {
        let c = report.summary.coverage;
        let (b, e, d) = (c.percent(c.baseline), c.percent(c.exceptions), c.percent(c.drift));
        let target = |name: &str, actual: f64, at_least: bool, target: f64| Target {
            name: name.to_owned(),
            actual,
            comparison: if at_least { ">=" } else { "<=" }.to_owned(),
            target,
            met: if at_least { actual >= target } else { actual <= target },
        };
        Self {
            target: report.target.to_string(),
            scan_id: report.scan_id.clone(),
            taken_at: report.taken_at,
            coverage: c,
            baseline_percent: b,
            exceptions_percent: e,
            drift_percent: d,
            missing: report.summary.missing,
            complete: report.summary.complete,
            targets: vec![
                target("declared by the baseline", b, true, targets.baseline_min_percent),
                target("covered by exceptions", e, false, targets.exceptions_max_percent),
                target("drift", d, false, targets.drift_max_percent),
            ],
            basis,
        }
    }

    /// Every target met, on a complete scan.
    pub fn meets_targets(&self) -> bool {
        self.complete && self.targets.iter().all(|t| t.met)
    }
}

/// One ticket, as the access-changes report lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketLine {
    /// Id.
    pub id: String,
    /// Person.
    pub principal: String,
    /// Role.
    pub role: String,
    /// Category.
    pub category: String,
    /// Status now.
    pub status: TicketStatus,
    /// Requested at.
    pub requested_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Revocation trigger and latency, once revoked.
    pub revocation: Option<String>,
}

/// Access granted and taken away in a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessChanges {
    /// The window.
    pub window: Window,
    /// Tickets requested in it.
    pub requested: usize,
    /// Of those, activated (granted).
    pub granted: usize,
    /// Still waiting for approvals.
    pub pending: usize,
    /// Tickets whose window ended in it by expiry.
    pub expired: usize,
    /// Revoked in it (any trigger).
    pub revoked: usize,
    /// Revoked automatically (lease, schedule, sweeper), in percent of `revoked`.
    pub auto_revoked_percent: Option<f64>,
    /// Ended early on request.
    pub ended_early: usize,
    /// Revocation failed for good.
    pub revocation_failed: usize,
    /// Request to activation, for tickets that needed approvals.
    pub approval_time: Durations,
    /// End of window to committed revocation.
    pub revocation_latency: Durations,
    /// Requested, by category.
    pub by_category: BTreeMap<String, usize>,
    /// The tickets requested in the window.
    pub tickets: Vec<TicketLine>,
    /// What it was built from.
    pub basis: Basis,
}

fn requested_at(t: &Ticket) -> DateTime<Utc> {
    t.history().iter().find(|e| e.what == "requested").map_or(t.starts_at(), |e| e.at)
}

fn activated_at(t: &Ticket) -> Option<DateTime<Utc>> {
    t.history().iter().find(|e| e.what == "activated").map(|e| e.at)
}

fn ticket_line(t: &Ticket, now: DateTime<Utc>) -> TicketLine {
    TicketLine {
        id: t.id().to_owned(),
        principal: t.request().principal.clone(),
        role: t.request().role.to_string(),
        category: t.category().to_owned(),
        status: t.status_at(now),
        requested_at: requested_at(t),
        expires_at: t.expires_at(),
        revocation: t.revocation().filter(|r| r.error.is_none()).map(|r| {
            format!(
                "by the {}, {} after the end",
                r.trigger,
                humantime::format_duration(std::time::Duration::from_millis(r.latency_ms.max(0) as u64))
            )
        }),
    }
}

fn seconds(d: Duration) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

impl AccessChanges {
    /// The changes among `tickets` in `window`, judged at `now`.
    pub fn new(tickets: &[Ticket], window: Window, now: DateTime<Utc>, basis: Basis) -> Self {
        let requested: Vec<&Ticket> = tickets.iter().filter(|t| window.contains(requested_at(t))).collect();
        let revoked: Vec<&Ticket> = tickets
            .iter()
            .filter(|t| t.status() == TicketStatus::Revoked)
            .filter(|t| t.revocation().is_some_and(|r| window.contains(r.at)))
            .collect();
        let automatic = |t: &&Ticket| {
            t.revocation()
                .as_ref()
                .is_some_and(|r| matches!(r.trigger, Trigger::Lease | Trigger::Schedule | Trigger::Sweeper))
        };
        let auto = revoked.iter().filter(|t| automatic(t)).count();
        let mut by_category = BTreeMap::new();
        for t in &requested {
            *by_category.entry(t.category().to_owned()).or_insert(0) += 1;
        }
        Self {
            window,
            requested: requested.len(),
            granted: requested.iter().filter(|t| activated_at(t).is_some()).count(),
            pending: requested.iter().filter(|t| t.status_at(now) == TicketStatus::PendingApproval).count(),
            expired: tickets
                .iter()
                .filter(|t| {
                    t.revoke_requested_at().is_none() && t.expires_at() <= now && window.contains(t.expires_at())
                })
                .filter(|t| activated_at(t).is_some())
                .count(),
            revoked: revoked.len(),
            auto_revoked_percent: (!revoked.is_empty())
                .then(|| (auto as f64 * 10_000.0 / revoked.len() as f64).round() / 100.0),
            ended_early: tickets.iter().filter(|t| t.revoke_requested_at().is_some_and(|r| window.contains(r))).count(),
            revocation_failed: tickets
                .iter()
                .filter(|t| t.status() == TicketStatus::RevocationFailed)
                .filter(|t| t.revocation().is_some_and(|r| window.contains(r.at)))
                .count(),
            approval_time: Durations::of(
                requested
                    .iter()
                    .filter(|t| t.approvals_required() > 0)
                    .filter_map(|t| activated_at(t).map(|a| seconds(a - requested_at(t))))
                    .collect(),
            ),
            revocation_latency: Durations::of(
                revoked.iter().filter_map(|t| t.revocation()).map(|r| r.latency_ms as f64 / 1000.0).collect(),
            ),
            by_category,
            tickets: requested.iter().map(|t| ticket_line(t, now)).collect(),
            basis,
        }
    }
}

/// How a closed finding was put right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// A remediation grantwarden applied.
    Remediated,
    /// A ticket's revocation took it away.
    Revoked,
    /// Someone changed the database (or the baseline) outside grantwarden.
    ChangedOutside,
}

/// One open finding and its age.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenItem {
    /// The finding.
    pub finding: Finding,
    /// First seen.
    pub first_seen: DateTime<Utc>,
    /// Days open.
    pub age_days: f64,
}

/// Drift opened and resolved in a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemediationReport {
    /// The window.
    pub window: Window,
    /// Findings opened in it (bulk events counted by their count).
    pub opened: usize,
    /// Findings closed in it.
    pub resolved: usize,
    /// Closed, by what closed them.
    pub resolved_by: BTreeMap<Resolution, usize>,
    /// From opening to closing, for closed findings whose opening is on record.
    pub time_to_resolution: Durations,
    /// Open drift now, oldest first.
    pub open: Vec<OpenItem>,
    /// What it was built from.
    pub basis: Basis,
}

/// The drift findings a bulk event summarizes: its `by_kind` drift entries, or its
/// whole count for events written before bulk events said which kinds they held.
fn bulk_count(bulk: &FindingsBulk) -> usize {
    match &bulk.by_kind {
        Some(by_kind) => by_kind.iter().filter(|(kind, _)| kind.is_drift()).map(|(_, n)| n).sum(),
        None => bulk.count,
    }
}

/// The finding a `finding.opened` / `finding.closed` event is about, when it
/// is drift (not an excepted grant or an observation: an exception that ends
/// is not a remediation).
fn drift_of(e: &AuditEvent) -> Option<Finding> {
    let finding = e.detail_as::<FindingOpenedOrClosed>().ok()?.into_finding();
    finding.kind.is_drift().then_some(finding)
}

/// Whether a remediation's change put `finding` right: a grant or revoke of
/// that privilege on that object to or from its grantee.
fn puts_right(remediation: &Remediation, finding: &Finding) -> bool {
    remediation.changes().iter().any(|c| match c {
        Change::Grant { grant } | Change::Revoke { grant, .. } => {
            let (o, w) = (&grant.object, &finding.object);
            grant.grantee == finding.grantee
                && finding.privilege == FindingPrivilege::One(grant.privilege)
                && o.schema.as_deref() == w.schema()
                && o.name.as_str() == w.name()
                && o.column.as_deref() == w.column()
        }
        // the change remediation makes of that finding, either way
        Change::Mysql { mysql } => match &finding.grantee {
            Grantee::Account(a) => [true, false]
                .into_iter()
                .any(|wanted| crate::remediate::mysql_change_for(finding, a, wanted).is_ok_and(|c| c == *mysql)),
            Grantee::Role(_) | Grantee::Public => false,
        },
        _ => false,
    })
}

/// How a closing (`closed`) of drift held by `grantee` came about: what acted on
/// the grantee on the same chain between `since` (the opening) and the closing.
/// With the `finding` at hand, a remediation counts only when one of its changes
/// is about that privilege on that object; a bulk closing knows the grantee only.
fn resolution_of(
    earlier: &[&AuditEvent],
    closed: &AuditEvent,
    since: DateTime<Utc>,
    grantee: &Grantee,
    finding: Option<&Finding>,
) -> Resolution {
    let between = |o: &&&AuditEvent| o.chain == closed.chain && o.at >= since && o.at <= closed.at;
    let acted = |kind: EventKind, on: &dyn Fn(&AuditEvent) -> bool| {
        earlier.iter().filter(between).any(|o| o.kind == kind && on(o))
    };
    let revoked = |o: &AuditEvent| o.detail_as::<TicketDetail>().is_ok_and(|t| t.role.as_str() == grantee.as_str());
    let remediated = |o: &AuditEvent| match finding {
        // a bulk closing names no privilege: a remediation that names the grantee anywhere counts
        None => mentions(&o.detail, grantee.as_str()),
        Some(f) => o.detail_as::<Remediation>().is_ok_and(|r| puts_right(&r, f)),
    };
    if acted(EventKind::TicketRevoked, &revoked) {
        Resolution::Revoked
    } else if acted(EventKind::RemediationApplied, &remediated) {
        Resolution::Remediated
    } else {
        Resolution::ChangedOutside
    }
}

impl RemediationReport {
    /// From the journal `events` of the targets in scope and their `open` findings, at `now`.
    pub fn new(
        events: &[AuditEvent],
        open: &[(Finding, FindingAge)],
        window: Window,
        now: DateTime<Utc>,
        basis: Basis,
    ) -> Self {
        let mut sorted: Vec<&AuditEvent> = events.iter().collect();
        sorted.sort_by(|a, b| (a.at, &a.chain, a.seq).cmp(&(b.at, &b.chain, b.seq)));
        let in_window = |e: &&&AuditEvent| window.contains(e.at);
        let bulk = |e: &AuditEvent| e.detail_as::<FindingsBulk>().ok();
        let opened = sorted
            .iter()
            .filter(in_window)
            .map(|e| match e.kind {
                EventKind::FindingOpened if drift_of(e).is_some() => 1,
                EventKind::FindingsOpenedBulk => bulk(e).map_or(0, |b| bulk_count(&b)),
                _ => 0,
            })
            .sum();
        let mut resolved = 0;
        let mut resolved_by = BTreeMap::new();
        let mut durations = Vec::new();
        for (i, e) in sorted.iter().enumerate() {
            if !window.contains(e.at) {
                continue;
            }
            match e.kind {
                EventKind::FindingsClosedBulk => {
                    let Some(bulk) = bulk(e) else { continue };
                    resolved += bulk_count(&bulk);
                    // since the scan before: what acted on each grantee in between resolved its drift
                    let since = sorted[..i]
                        .iter()
                        .rev()
                        .find(|o| o.kind == EventKind::ScanCompleted && o.chain == e.chain)
                        .map_or(DateTime::<Utc>::MIN_UTC, |o| o.at);
                    let mut attributed = 0;
                    for (grantee, n) in bulk.by_grantee.iter().flatten() {
                        let how = resolution_of(&sorted[..i], e, since, grantee, None);
                        *resolved_by.entry(how).or_insert(0) += n;
                        attributed += n;
                    }
                    // an event from before grantees were counted: nothing tells more
                    let rest = bulk_count(&bulk).saturating_sub(attributed);
                    if rest > 0 {
                        *resolved_by.entry(Resolution::ChangedOutside).or_insert(0) += rest;
                    }
                }
                EventKind::FindingClosed => {
                    let Some(finding) = drift_of(e) else { continue };
                    resolved += 1;
                    let opened_at = sorted[..i]
                        .iter()
                        .rev()
                        .find(|o| o.kind == EventKind::FindingOpened && o.subject == e.subject && o.chain == e.chain)
                        .map(|o| o.at);
                    let since = opened_at.unwrap_or(DateTime::<Utc>::MIN_UTC);
                    let how = resolution_of(&sorted[..i], e, since, &finding.grantee, Some(&finding));
                    *resolved_by.entry(how).or_insert(0) += 1;
                    if let Some(at) = opened_at {
                        durations.push(seconds(e.at - at));
                    }
                }
                _ => {}
            }
        }
        let mut open: Vec<OpenItem> = open
            .iter()
            .filter(|(f, _)| f.kind.is_drift())
            .map(|(f, age)| OpenItem {
                finding: f.clone(),
                first_seen: age.first_seen,
                age_days: (seconds(now - age.first_seen) / 86_400.0 * 100.0).round() / 100.0,
            })
            .collect();
        open.sort_by_key(|o| o.first_seen);
        Self { window, opened, resolved, resolved_by, time_to_resolution: Durations::of(durations), open, basis }
    }
}

/// One exception that applies to a person, with its category's rules.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppliedException {
    /// The ticket.
    pub ticket: TicketLine,
    /// The category as the registry in force defines it (absent if it no longer does).
    pub category: Option<Category>,
    /// The registry version the ticket was routed under.
    pub routed_under: String,
}

/// One person's evidence bundle.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    /// The person (as tickets and the journal name them).
    pub user: String,
    /// The window of the trail.
    pub window: Window,
    /// Database roles they were given access through.
    pub roles: Vec<String>,
    /// Their exception tickets with the policy that applies.
    pub exceptions: Vec<AppliedException>,
    /// Privileges those roles hold now, per target scanned.
    pub grants: BTreeMap<String, Vec<Grant>>,
    /// Every journal event they caused or that concerns them, oldest first.
    pub trail: Vec<AuditEvent>,
    /// What it was built from.
    pub basis: Basis,
}

/// Whether `value` holds the string `needle` anywhere (a person's id in an event's detail).
pub fn mentions(value: &serde_json::Value, needle: &str) -> bool {
    match value {
        serde_json::Value::String(s) => s == needle,
        serde_json::Value::Array(items) => items.iter().any(|v| mentions(v, needle)),
        serde_json::Value::Object(map) => map.values().any(|v| mentions(v, needle)),
        _ => false,
    }
}

/// Whether any string in `value` is `needle`, ignoring ASCII case (identities:
/// `Alice@Example.com` is the person `alice@example.com`).
fn mentions_person(value: &serde_json::Value, needle: &str) -> bool {
    match value {
        serde_json::Value::String(s) => s.eq_ignore_ascii_case(needle),
        serde_json::Value::Array(items) => items.iter().any(|v| mentions_person(v, needle)),
        serde_json::Value::Object(map) => map.values().any(|v| mentions_person(v, needle)),
        _ => false,
    }
}

/// The events `user` caused or that concern them (actor, subject, target, or any
/// string of the detail, ignoring case), in `window`, oldest first.
pub fn trail_of<'e>(events: &'e [AuditEvent], user: &str, window: Window) -> Vec<&'e AuditEvent> {
    let is = |s: &str| s.eq_ignore_ascii_case(user);
    let mut trail: Vec<&AuditEvent> = events
        .iter()
        .filter(|e| is(&e.actor) || is(&e.subject) || is(&e.target) || mentions_person(&e.detail, user))
        .filter(|e| window.contains(e.at))
        .collect();
    trail.sort_by(|a, b| (a.at, &a.chain, a.seq).cmp(&(b.at, &b.chain, b.seq)));
    trail
}

impl Evidence {
    #[allow(clippy::too_many_arguments)]
    /// The bundle of `user` from the tickets, the registry in force, the held
    /// privileges of each scanned target and the journal.
    pub fn new(
        user: &str,
        tickets: &[Ticket],
        registry: Option<&PolicyRegistry>,
        held: &BTreeMap<String, Vec<Grant>>,
        events: &[AuditEvent],
        window: Window,
        now: DateTime<Utc>,
        basis: Basis,
    ) -> Self {
        // the tickets that gave this person access; ones they asked for on someone
        // else's behalf are in their trail, not among their roles
        let theirs: Vec<&Ticket> =
            tickets.iter().filter(|t| t.request().principal.eq_ignore_ascii_case(user)).collect();
        let mut roles: Vec<RoleName> = theirs.iter().map(|t| t.request().role.clone()).collect();
        roles.sort();
        roles.dedup();
        let grants = held
            .iter()
            .map(|(target, grants)| {
                let mine: Vec<Grant> = grants
                    .iter()
                    .filter(|g| matches!(&g.grantee, Grantee::Role(r) if roles.contains(r)))
                    .cloned()
                    .collect();
                (target.clone(), mine)
            })
            .collect();
        Self {
            user: user.to_owned(),
            window,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            exceptions: theirs
                .iter()
                .map(|t| AppliedException {
                    ticket: ticket_line(t, now),
                    category: registry.and_then(|r| t.category_of(r)).cloned(),
                    routed_under: t.registry().version.clone(),
                })
                .collect(),
            grants,
            trail: evidence_trail(events, user, &theirs, window),
            basis,
        }
    }
}

/// The person's trail, and what the journal says about the roles their tickets
/// gave them while those tickets lasted (findings on the role, its
/// revocation), up to a day after each ended: the scan that closed its findings.
fn evidence_trail(events: &[AuditEvent], user: &str, theirs: &[&Ticket], window: Window) -> Vec<AuditEvent> {
    let mut trail = trail_of(events, user, window);
    for t in theirs {
        let until = t.revocation().map_or(t.ends_at(), |r| r.at.max(t.ends_at())) + Duration::days(1);
        let role = t.request().role.as_str();
        trail.extend(
            events
                .iter()
                .filter(|e| window.contains(e.at) && e.at >= t.starts_at() && e.at <= until)
                .filter(|e| e.subject == role || mentions(&e.detail, role)),
        );
    }
    trail.sort_by(|a, b| (a.at, &a.chain, a.seq).cmp(&(b.at, &b.chain, b.seq)));
    trail.dedup_by(|a, b| a.chain == b.chain && a.seq == b.seq);
    trail.into_iter().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::NewEvent;
    use crate::finding::FindingKind;
    use crate::report::{FindingObject, ObjectType};
    use crate::scoring::Severity;
    use crate::ticket::Revocation;

    fn at(h: i64) -> DateTime<Utc> {
        "2026-11-22T12:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::hours(h)
    }

    fn ticket(id: &str, who: &str, approvals: u8, requested: i64, activated: Option<i64>, expires: i64) -> Ticket {
        let mut history = vec![serde_json::json!({ "at": at(requested), "what": "requested", "actor": who })];
        if let Some(a) = activated {
            history.push(serde_json::json!({ "at": at(a), "what": "activated", "actor": "grantwarden" }));
        }
        serde_json::from_value(serde_json::json!({
            "id": id, "request_sha256": "", "category": if approvals > 0 { "soc2-ops" } else { "read-only" }, "tag": "",
            "approvals_required": approvals, "weight_factor": 0.25, "registry": { "version": "2.1", "sha256": "" },
            "status": if activated.is_some() { "active" } else { "pending_approval" },
            "starts_at": at(requested), "expires_at": at(expires), "history": history,
            "request": { "delivery_id": id, "input": "webhook", "source": "okta", "action": "grant",
                "target": "orders-prod", "principal": who, "role": format!("{}_tmp", &who[..3]), "privileges": ["SELECT"],
                "object": { "on": "schema", "name": "billing" }, "expires_at": at(expires),
                "requested_by": who, "observed_at": at(requested) }
        }))
        .unwrap()
    }

    fn revoked(mut t: Ticket, trigger: Trigger, latency_s: i64) -> Ticket {
        let end = t.ends_at();
        t.record_revoked(
            Revocation {
                trigger,
                at: end + Duration::seconds(latency_s),
                latency_ms: latency_s * 1000,
                attempts: 1,
                statements: 2,
                kept: 0,
                sessions_terminated: 0,
                error: None,
            },
            "grantwarden",
        );
        t
    }

    fn basis() -> Basis {
        Basis { generated_at: at(48), registry_version: Some("2.1".into()), chain_heads: BTreeMap::new() }
    }

    #[test]
    fn access_changes_count_a_prepared_week() {
        let mut early = ticket("t4", "dave@x.io", 0, 3, Some(3), 30);
        assert!(early.request_revoke("ciso@x.io", at(5), "left"));
        let tickets = vec![
            revoked(ticket("t1", "alice@x.io", 0, 0, Some(0), 2), Trigger::Schedule, 4),
            revoked(ticket("t2", "bob@x.io", 1, 1, Some(3), 9), Trigger::Sweeper, 50),
            ticket("t3", "carol@x.io", 1, 2, None, 40),
            revoked(early, Trigger::Request, 1),
            ticket("t5", "erin@x.io", 0, -30, Some(-30), -20),
        ];
        let window = Window { from: Some(at(0)), to: Some(at(24)) };
        let c = AccessChanges::new(&tickets, window, at(24), basis());
        assert_eq!((c.requested, c.granted, c.pending), (4, 3, 1), "t5 was requested before the window");
        assert_eq!((c.expired, c.revoked, c.ended_early, c.revocation_failed), (2, 3, 1, 0));
        assert_eq!(c.auto_revoked_percent, Some(66.67), "schedule and sweeper, not the request");
        assert_eq!(c.approval_time.count, 1);
        assert_eq!(c.approval_time.mean_seconds, Some(7200.0), "bob waited two hours");
        assert_eq!((c.revocation_latency.count, c.revocation_latency.max_seconds), (3, Some(50.0)));
        assert_eq!(c.by_category.get("read-only"), Some(&2));
    }

    /// `events` sealed into one chain, in order.
    fn chained(events: Vec<NewEvent>) -> Vec<AuditEvent> {
        let mut out: Vec<AuditEvent> = Vec::new();
        for e in events {
            let head = out.last().map(|p| (p.seq, p.hash.clone()));
            out.push(crate::audit::seal(e, head.as_ref().map(|(seq, hash)| (*seq, hash.as_str()))));
        }
        out
    }

    fn finding(grantee: &str, kind: FindingKind) -> Finding {
        Finding {
            kind,
            severity: Severity::High,
            score: 1.0,
            grantee: Grantee::Role(RoleName::new(grantee).unwrap()),
            privilege: FindingPrivilege::One(crate::model::Privilege::Insert),
            grantable: false,
            object: FindingObject::of(
                ObjectType::Table,
                &crate::model::ObjectRef::in_schema(crate::model::ObjectClass::Table, "billing", "invoices"),
            ),
            exception_id: None,
            detail: String::new(),
        }
    }

    #[test]
    fn remediation_tells_how_each_finding_was_resolved_and_how_long_it_took() {
        use crate::audit::event::{
            FindingChange, FindingsBulk, OnTicket, RemediationRun, RemediationStep, Revoked, ScanFinding,
        };
        use crate::model::{ObjectClass, ObjectRef, Privilege};
        use FindingChange::{Closed, Opened};
        use FindingKind::{Excepted, ExpiredException, Unauthorized};
        const T: &str = "orders-prod";
        let f = |change: FindingChange, h: i64, grantee: &str, kind: FindingKind| {
            let detail =
                ScanFinding { finding: finding(grantee, kind), scan_id: "scan-1".into(), registry_version: None };
            NewEvent::scan_finding(T, change, &detail, at(h))
        };
        let change = |grantee: &str, privilege: Privilege, table: &str| Change::Revoke {
            grant: Grant {
                object: ObjectRef::in_schema(ObjectClass::Table, "billing", table),
                grantee: Grantee::Role(RoleName::new(grantee).unwrap()),
                privilege,
                grantable: false,
            },
            cascade: false,
            option_only: false,
        };
        let applied = |h: i64, scan: &str, changes: Vec<Change>| {
            let run = RemediationRun {
                mode: crate::remediate::Mode::RevokeUnauthorized,
                changes,
                held_back: Vec::new(),
                sql: Vec::new(),
                not_found: Vec::new(),
                error: None,
                snapshot_sha256: String::new(),
                skipped: None,
                attempts: None,
                dry_run: Some(false),
            };
            NewEvent::remediation(T, scan, RemediationStep::Applied, &Remediation::Run(run), "grantwarden", at(h))
        };
        let bulk = |change: FindingChange,
                    h: i64,
                    scan: &str,
                    count: usize,
                    by_kind: Option<Vec<(FindingKind, usize)>>,
                    by_grantee: Option<Vec<(&str, usize)>>| {
            let detail = FindingsBulk {
                count,
                by_kind: by_kind.map(|k| k.into_iter().collect()),
                by_grantee: by_grantee.map(|g| {
                    g.into_iter().map(|(grantee, n)| (Grantee::Role(RoleName::new(grantee).unwrap()), n)).collect()
                }),
                keys_sha256: String::new(),
                scan_id: scan.into(),
                registry_version: None,
            };
            NewEvent::scan_findings_bulk(T, change, &detail, at(h))
        };
        let mut alice = ticket("t1", "alice@x.io", 0, 0, Some(0), 2);
        alice.request_mut().role = RoleName::new("alice_tmp").unwrap();
        let plan = crate::revocation::RevocationPlan {
            ticket: "t1".into(),
            role: alice.request().role.clone(),
            lifecycle: alice.role_lifecycle(),
            transaction: Vec::new(),
            after_commit: Vec::new(),
            kept: Vec::new(),
            kept_mysql: Vec::new(),
            nothing_because: None,
            created: Vec::new(),
        };
        let revoked =
            Revoked { trigger: Trigger::Schedule, latency_ms: 0, plan, sql: Vec::new(), sessions_terminated: 0 };
        let alice_revoked = NewEvent::for_ticket(&alice, OnTicket::Revoked(revoked), "grantwarden", at(3));
        let events = chained(vec![
            f(Opened, 0, "app_ro", Unauthorized),
            f(Opened, 0, "alice_tmp", ExpiredException),
            f(Opened, 0, "x", Unauthorized),
            // an excepted grant is not drift: its ticket ending is not a remediation
            f(Opened, 0, "bob_tmp", Excepted),
            applied(
                1,
                "scan-2",
                vec![change("app_ro", Privilege::Insert, "invoices"), change("x", Privilege::Insert, "ledger")],
            ),
            f(Closed, 2, "app_ro", Unauthorized),
            alice_revoked,
            f(Closed, 4, "alice_tmp", ExpiredException),
            f(Closed, 4, "bob_tmp", Excepted),
            bulk(Opened, 5, "scan-9", 150, Some(vec![(Unauthorized, 100), (Excepted, 50)]), None),
            // written before bulk events said which kinds they held: all of it counts
            bulk(Opened, 5, "scan-8", 7, None, None),
            // a converge of many grants: the bulk closing tells grantees apart
            NewEvent {
                chain: T.into(),
                at: at(5),
                kind: EventKind::ScanCompleted,
                actor: "grantwarden".into(),
                subject: "scan-9".into(),
                target: T.into(),
                detail: serde_json::json!({}),
            },
            applied(5, "scan-9", vec![change("etl", Privilege::Select, "a")]),
            bulk(
                Closed,
                6,
                "scan-10",
                130,
                Some(vec![(Unauthorized, 120), (Excepted, 10)]),
                Some(vec![("etl", 100), ("legacy", 20)]),
            ),
        ]);
        let open = |grantee: &str, kind: FindingKind, since: i64| {
            (finding(grantee, kind), FindingAge { first_seen: at(since), last_seen: at(5) })
        };
        let still_open = [open("x", FindingKind::Unauthorized, 0), open("bob_tmp", FindingKind::Excepted, 0)];
        let r = RemediationReport::new(&events, &still_open, Window::default(), at(6), basis());
        assert_eq!((r.opened, r.resolved), (3 + 100 + 7, 2 + 120));
        assert_eq!(r.resolved_by.get(&Resolution::Remediated), Some(&(1 + 100)), "app_ro's INSERT, and etl's");
        assert_eq!(r.resolved_by.get(&Resolution::Revoked), Some(&1), "the revoked ticket's role");
        assert_eq!(
            r.resolved_by.get(&Resolution::ChangedOutside),
            Some(&20),
            "nothing of grantwarden's acted on legacy"
        );
        assert_eq!(r.time_to_resolution.mean_seconds, Some(3.0 * 3600.0), "2 h and 4 h");
        assert_eq!(r.open.len(), 1, "only drift is an open item");
        assert_eq!((r.open[0].finding.grantee.as_str(), r.open[0].age_days), ("x", 0.25), "6 h old");
    }
}
