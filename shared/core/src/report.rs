//! The plan report (output contract: docs/CONTRACTS.md#report): shared by `grantwarden plan
//! --format json` and the diff Lambda's S3 report. Human formats render this.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::finding::{FindingAge, FindingKind};
use crate::scoring::{ScoringConfig, Severity, round2};
use crate::snapshot::{Snapshot, TargetId};

/// The object of a finding, as in the contract: `{ type, schema, name, column }`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FindingObject {
    /// database, schema, table, view, materialized_view, foreign_table,
    /// partitioned_table, sequence, column, function, procedure, aggregate,
    /// role or default_privileges.
    #[serde(rename = "type")]
    pub kind: String,
    /// Schema, for schema-qualified objects.
    pub schema: Option<String>,
    /// Name (a function's name alone; the object type for default privileges).
    pub name: String,
    /// Column, for column privileges.
    pub column: Option<String>,
    /// For default privileges: the role whose new objects they apply to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_role: Option<String>,
    /// For a function, procedure or aggregate: its argument types (`integer, text`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

impl std::fmt::Display for FindingObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::model::display_ident;
        write!(f, "{} ", self.kind)?;
        if let Some(s) = &self.schema {
            write!(f, "{}.", display_ident(s))?;
        }
        if self.kind == "default_privileges" {
            f.write_str(&self.name)?;
        } else {
            f.write_str(&display_ident(&self.name))?;
        }
        if let Some(args) = &self.arguments {
            write!(f, "({args})")?;
        }
        if let Some(c) = &self.column {
            write!(f, ".{}", display_ident(c))?;
        }
        if let Some(r) = &self.for_role {
            write!(f, " for role {}", display_ident(r))?;
        }
        Ok(())
    }
}

/// One difference between reality and the baseline (or an observation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Kind.
    pub kind: FindingKind,
    /// Severity.
    pub severity: Severity,
    /// Score contribution.
    pub score: f64,
    /// Role name or PUBLIC.
    pub grantee: String,
    /// Privilege, attribute, MEMBER, OWNER or ROLE.
    pub privilege: String,
    /// WITH GRANT OPTION / WITH ADMIN OPTION held or declared.
    pub grantable: bool,
    /// The object.
    pub object: FindingObject,
    /// The exception ticket covering it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception_id: Option<String>,
    /// Why, in words.
    pub detail: String,
}

/// Overall state of a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// No drift.
    Ok,
    /// Drift below the alert threshold.
    Warn,
    /// The scan missed chunks: the result is partial, never clean.
    Incomplete,
    /// Past a threshold.
    Alert,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Incomplete => "incomplete",
            Status::Alert => "alert",
        })
    }
}

/// Counts by kind, score and status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// unauthorized count.
    pub unauthorized: usize,
    /// missing count.
    pub missing: usize,
    /// orphaned count.
    pub orphaned: usize,
    /// excepted count.
    pub excepted: usize,
    /// expired_exception count.
    pub expired_exception: usize,
    /// untagged count.
    pub untagged: usize,
    /// Sum of finding scores.
    pub score: f64,
    /// Sum of the scores of excepted findings.
    pub exception_weight: f64,
    /// ok, warn, incomplete or alert.
    pub status: Status,
    /// False when the scan missed chunks.
    pub complete: bool,
    /// The chunks that failed, with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_chunks: Vec<String>,
    /// How the privileges held (ACL grants, memberships, default privileges; not
    /// an owner's own) are accounted for.
    #[serde(default)]
    pub coverage: Coverage,
}

/// How the privileges held are accounted for: declared by the baseline,
/// covered by an active exception ticket, or drift (unauthorized, orphaned,
/// expired exception). Grants of ignored roles and PostgreSQL's kept built-in
/// defaults are not counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    /// Counted privileges held.
    pub held: usize,
    /// Declared by the baseline.
    pub baseline: usize,
    /// Covered by an active exception ticket.
    pub exceptions: usize,
    /// Neither.
    pub drift: usize,
}

impl Coverage {
    /// `part` as a percentage of what is held (100 when nothing is).
    pub fn percent(&self, part: usize) -> f64 {
        if self.held == 0 { 100.0 } else { round2(part as f64 * 100.0 / self.held as f64) }
    }
}

/// A plan report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Target.
    pub target: TargetId,
    /// Scan id.
    pub scan_id: String,
    /// When the scan started.
    pub taken_at: DateTime<Utc>,
    /// sha256 of the snapshot state.
    pub snapshot_sha256: String,
    /// Summary.
    pub summary: Summary,
    /// Drift and exceptions, most severe first.
    pub findings: Vec<Finding>,
    /// Context that is shown, not scored.
    #[serde(default)]
    pub observations: Vec<Finding>,
    /// Governance metrics of the target (with a state store: tickets and the login roles of the scan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub governance: Option<crate::metrics::Governance>,
}

impl Report {
    /// The report with the diff's accounting of what is held.
    pub fn with_coverage(mut self, coverage: Coverage) -> Self {
        self.summary.coverage = coverage;
        self
    }

    /// Assembles a report: sorts findings, counts, sums and sets the status.
    pub fn build(
        snapshot: &Snapshot,
        mut findings: Vec<Finding>,
        mut observations: Vec<Finding>,
        scoring: &ScoringConfig,
    ) -> Self {
        sort_findings(&mut findings);
        sort_findings(&mut observations);
        let summary = summarize(&findings, snapshot.complete, snapshot.failed_chunks(), scoring);
        Report {
            target: snapshot.target.clone(),
            scan_id: snapshot.scan_id.clone(),
            taken_at: snapshot.taken_at,
            snapshot_sha256: snapshot.sha256.clone(),
            summary,
            findings,
            observations,
            governance: None,
        }
    }

    /// Weighs each finding by how long it has been open (`ages[i]` belongs to
    /// `findings[i]`) and recomputes the summary.
    pub fn weigh_by_age(&mut self, ages: &[FindingAge], now: DateTime<Utc>, scoring: &ScoringConfig) {
        for (f, age) in self.findings.iter_mut().zip(ages) {
            f.score = round2(f.score * scoring.age_factor(now - age.first_seen));
        }
        let failed = std::mem::take(&mut self.summary.failed_chunks);
        let coverage = self.summary.coverage;
        self.summary = summarize(&self.findings, self.summary.complete, failed, scoring);
        self.summary.coverage = coverage;
    }

    /// Whether any finding is drift.
    pub fn has_drift(&self) -> bool {
        self.findings.iter().any(|f| f.kind.is_drift())
    }
}

/// Counts by kind, sums and the status of a set of findings.
fn summarize(findings: &[Finding], complete: bool, failed_chunks: Vec<String>, scoring: &ScoringConfig) -> Summary {
    let count = |k: FindingKind| findings.iter().filter(|f| f.kind == k).count();
    let score = round2(findings.iter().map(|f| f.score).sum());
    let exception_weight = round2(findings.iter().filter(|f| f.kind == FindingKind::Excepted).map(|f| f.score).sum());
    let drift: Vec<&Finding> = findings.iter().filter(|f| f.kind.is_drift()).collect();
    let t = &scoring.thresholds;
    let alert = score >= t.alert_score
        || exception_weight >= t.alert_exception_weight
        || drift.iter().any(|f| f.severity >= t.alert_severity)
        || findings.iter().any(|f| f.kind == FindingKind::ExpiredException);
    let status = if alert {
        Status::Alert
    } else if !complete {
        Status::Incomplete
    } else if !drift.is_empty() || score >= t.warn_score {
        Status::Warn
    } else {
        Status::Ok
    };
    Summary {
        unauthorized: count(FindingKind::Unauthorized),
        missing: count(FindingKind::Missing),
        orphaned: count(FindingKind::Orphaned),
        excepted: count(FindingKind::Excepted),
        expired_exception: count(FindingKind::ExpiredException),
        untagged: count(FindingKind::Untagged),
        score,
        exception_weight,
        status,
        complete,
        failed_chunks,
        coverage: Coverage::default(),
    }
}

/// Most severe first, then by grantee, object and privilege: a total order, so output is stable.
fn sort_findings(f: &mut [Finding]) {
    f.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.kind.cmp(&b.kind))
            .then_with(|| a.grantee.cmp(&b.grantee))
            .then_with(|| a.object.cmp(&b.object))
            .then_with(|| a.privilege.cmp(&b.privilege))
            .then_with(|| a.grantable.cmp(&b.grantable))
            .then_with(|| a.detail.cmp(&b.detail))
    });
}
