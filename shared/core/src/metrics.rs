//! The governance figures as data: durations, the ticket metrics, the
//! governance state of a target. A leaf module: the report carries these, the
//! governance rules (`crate::governance`) compute them, the dashboard and the
//! compliance reports show them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Count, mean and percentiles of durations, in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Durations {
    /// How many.
    pub count: usize,
    /// Mean.
    pub mean_seconds: Option<f64>,
    /// Median.
    pub p50_seconds: Option<f64>,
    /// 99th percentile.
    pub p99_seconds: Option<f64>,
    /// Longest.
    pub max_seconds: Option<f64>,
}

impl Durations {
    /// Statistics of `values` (seconds).
    pub fn of(mut values: Vec<f64>) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_by(f64::total_cmp);
        let at = |p: f64| values[((values.len() - 1) as f64 * p).round() as usize];
        let round = |v: f64| (v * 1000.0).round() / 1000.0;
        Self {
            count: values.len(),
            mean_seconds: Some(round(values.iter().sum::<f64>() / values.len() as f64)),
            p50_seconds: Some(round(at(0.5))),
            p99_seconds: Some(round(at(0.99))),
            max_seconds: values.last().copied().map(round),
        }
    }
}

/// One point of the drift score history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScorePoint {
    /// When the scan ended.
    pub at: DateTime<Utc>,
    /// Its total score.
    pub score: f64,
}

/// The governance metrics shown as figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Exception tickets in force now.
    pub active_exceptions: usize,
    /// Mean length of the access windows granted, in hours.
    pub mean_access_hours: Option<f64>,
    /// Request to access for tickets that needed approval: to activation, or for a
    /// just-in-time ticket to its credential's issuance.
    pub time_to_access: Durations,
    /// Break-glass tickets requested in the last 30 days.
    pub break_glass_30d: usize,
    /// End of window to committed revocation.
    pub revocation_latency: Durations,
    /// Revocations that failed and wait for a person.
    pub revocation_failed: usize,
}

/// The governance metrics with what only a scan and the registry can tell:
/// standing credentials and break-glass use against its monthly threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Governance {
    /// The figures of the tickets.
    pub metrics: Metrics,
    /// Roles that can log in and are not a credential issued for a ticket in force.
    pub standing_credentials: Vec<String>,
    /// Break-glass tickets by month (`YYYY-MM`).
    pub break_glass_by_month: BTreeMap<String, usize>,
    /// The registry's monthly threshold.
    pub break_glass_threshold: Option<u32>,
    /// What is past a threshold (each one a sentence on the wire).
    pub alerts: Vec<crate::governance_alert::GovernanceAlert>,
    /// Credentials that used less than they were given (from pgaudit session lines),
    /// when audit logs were read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub over_privileged: Option<Vec<OverPrivileged>>,
}

/// A credential given more than its sessions used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverPrivileged {
    /// The ticket.
    pub ticket: String,
    /// Its role.
    pub role: String,
    /// The path it was given.
    pub path: String,
    /// Statement classes its sessions ran (READ, WRITE, ...), empty when it never logged in.
    pub used: Vec<String>,
}

/// The names the figures go by, the same in the terminal, the dashboard and
/// the reports.
pub mod label {
    /// Exception tickets in force now.
    pub const ACTIVE_EXCEPTIONS: &str = "Exceptions in force";
    /// The same count where access tickets are counted with the exceptions.
    pub const ACTIVE_EXCEPTIONS_AND_ACCESS: &str = "Exceptions and access tickets in force";
    /// Login roles that are not a credential issued for a ticket in force.
    pub const STANDING_LOGIN_ROLES: &str = "Standing login roles";
    /// The same, spelled out where the figure stands alone.
    pub const STANDING_CREDENTIALS: &str = "Standing credentials (login roles not issued for a ticket in force)";
    /// Mean length of the windows granted.
    pub const MEAN_ACCESS_WINDOW: &str = "Mean access window";
    /// Request to access, as a mean.
    pub const TIME_TO_ACCESS_MEAN: &str = "Time to access (approved tickets, mean)";
    /// Request to access, as count, mean and percentiles.
    pub const TIME_TO_ACCESS: &str = "Time to access (approved tickets)";
    /// Break-glass use in the latest month on record.
    pub const BREAK_GLASS_LATEST_MONTH: &str = "Break-glass uses, latest month";
    /// Break-glass tickets requested in the last 30 days.
    pub const BREAK_GLASS_30D: &str = "Break-glass tickets, last 30 days";
    /// The same, counted as uses.
    pub const BREAK_GLASS_USES_30D: &str = "Break-glass uses, last 30 days";
    /// End of window to committed revocation, median and 99th percentile.
    pub const REVOCATION_LATENCY_P50_P99: &str = "Revocation latency p50 / p99";
    /// End of window to committed revocation, as count, mean and percentiles.
    pub const REVOCATION_LATENCY: &str = "Revocation latency";
    /// Revocations that failed and wait for a person.
    pub const REVOCATIONS_WAITING: &str = "Revocations waiting for a person";
    /// Credentials whose sessions used less than they were given.
    pub const OVER_PRIVILEGED: &str = "Over-privileged credentials (pgaudit)";
}

/// Query activity of a target over a window, for the dashboard (from the
/// counts journaled with each ingested batch: [`ActivityCounts::figures`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryFigures {
    /// From.
    pub from: Option<DateTime<Utc>>,
    /// Statements by pgaudit class.
    pub by_class: BTreeMap<String, u64>,
    /// Statements by person, most first (at most 10).
    pub top_people: Vec<(String, u64)>,
    /// Exports (COPY TO, large and paged reads).
    pub exports: u64,
    /// DELETE, UPDATE and TRUNCATE statements.
    pub destructive: u64,
}

/// Query activity counted so that the counts of separate batches add up:
/// each ingested batch's are journaled with it (`queries.ingested`), and the
/// dashboard shows their sum over its window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityCounts {
    /// Statements (each once, however many relations it touched) by pgaudit class.
    pub by_class: BTreeMap<String, u64>,
    /// Statements by person.
    pub by_person: BTreeMap<String, u64>,
    /// Exports (`crate::queries::ExportWatch`: COPY TO, large and paged reads).
    pub exports: u64,
    /// DELETE, UPDATE and TRUNCATE (`crate::queries::DESTRUCTIVE`) statements, each relation once.
    pub destructive: u64,
}

impl ActivityCounts {
    /// Adds `other`'s counts.
    pub fn add(&mut self, other: &ActivityCounts) {
        for (class, n) in &other.by_class {
            *self.by_class.entry(class.clone()).or_default() += n;
        }
        for (person, n) in &other.by_person {
            *self.by_person.entry(person.clone()).or_default() += n;
        }
        self.exports += other.exports;
        self.destructive += other.destructive;
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.by_class.is_empty() && self.exports == 0 && self.destructive == 0
    }

    /// The dashboard's figures: the ten people who ran most.
    pub fn figures(&self, from: Option<DateTime<Utc>>) -> QueryFigures {
        let mut top_people: Vec<(String, u64)> = self.by_person.iter().map(|(p, n)| (p.clone(), *n)).collect();
        top_people.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top_people.truncate(10);
        QueryFigures {
            from,
            by_class: self.by_class.clone(),
            top_people,
            exports: self.exports,
            destructive: self.destructive,
        }
    }
}

/// A duration in seconds as people read it: `-` when there is none, seconds
/// below two minutes, minutes below two hours, hours beyond (one decimal).
pub fn seconds(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(s) if s < 120.0 => format!("{s:.1} s"),
        Some(s) if s < 7200.0 => format!("{:.1} min", s / 60.0),
        Some(s) => format!("{:.1} h", s / 3600.0),
    }
}

/// A mean window in hours, or `-`.
pub fn hours(v: Option<f64>) -> String {
    v.map_or("-".into(), |h| format!("{h} h"))
}

impl Durations {
    /// `count (mean, median, p99, max)`, or `none`: seconds as measured (to
    /// the millisecond, no trailing `.0`), minutes and hours with one decimal.
    pub fn summary(&self) -> String {
        let at = |v: Option<f64>| match v {
            None => "-".into(),
            Some(s) if s < 120.0 => format!("{s} s"),
            Some(_) => seconds(v),
        };
        if self.count == 0 {
            return "none".into();
        }
        format!(
            "{} (mean {}, median {}, p99 {}, max {})",
            self.count,
            at(self.mean_seconds),
            at(self.p50_seconds),
            at(self.p99_seconds),
            at(self.max_seconds)
        )
    }
}
