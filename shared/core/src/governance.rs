//! The governance rules: the ticket metrics, standing credentials,
//! break-glass use against the registry's monthly threshold, over-privileged
//! credentials, which alerts are new on a target's chain, and the query
//! activity journaled on it.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use crate::audit::AuditEvent;
use crate::audit::event::{AlertRaised, EventKind, QueriesIngested, ScanEnded};
use crate::governance_alert::GovernanceAlert;
use crate::metrics::{ActivityCounts, Durations, Governance, Metrics, OverPrivileged, QueryFigures, ScorePoint};
use crate::ticket::{Ticket, TicketStatus};

/// Score history from a chain's `scan.completed` events.
pub fn score_history(events: &[AuditEvent]) -> Vec<ScorePoint> {
    let mut out: Vec<ScorePoint> = events
        .iter()
        .filter(|e| e.kind == EventKind::ScanCompleted)
        .filter_map(|e| Some(ScorePoint { at: e.at, score: e.detail_as::<ScanEnded>().ok()?.summary.score }))
        .collect();
    out.sort_by_key(|p| p.at);
    out
}

/// Query activity of the batches ingested on the chain (`events`) whose last
/// record is at or after `from`: their journaled counts added up; `None` when
/// none was (no query events ingested, or only before they were counted).
pub fn query_figures(events: &[AuditEvent], from: DateTime<Utc>) -> Option<QueryFigures> {
    let mut sum = ActivityCounts::default();
    for e in events.iter().filter(|e| e.kind == EventKind::QueriesIngested) {
        let Ok(batch) = e.detail_as::<QueriesIngested>() else { continue };
        if batch.last_at.unwrap_or(e.at) >= from {
            sum.add(&batch.activity);
        }
    }
    (!sum.is_empty()).then(|| sum.figures(Some(from)))
}

/// The governance metrics of `tickets` at `now`.
pub fn metrics(tickets: &[Ticket], now: DateTime<Utc>) -> Metrics {
    let activated = |t: &Ticket| t.history().iter().find(|e| e.what == "activated").map(|e| e.at);
    let requested = |t: &Ticket| t.history().iter().find(|e| e.what == "requested").map_or(t.starts_at(), |e| e.at);
    // a just-in-time ticket gives access when its credential is issued, not when it is approved
    let accessed = |t: &Ticket| t.history().iter().find(|e| e.what == "issued").map(|e| e.at).or_else(|| activated(t));
    let granted: Vec<&Ticket> = tickets.iter().filter(|t| activated(t).is_some()).collect();
    let hours: Vec<f64> = granted
        .iter()
        .map(|t| (t.ends_at() - activated(t).unwrap_or(t.starts_at())).num_seconds().max(0) as f64 / 3600.0)
        .collect();
    Metrics {
        active_exceptions: tickets.iter().filter(|t| t.is_active_at(now)).count(),
        mean_access_hours: (!hours.is_empty())
            .then(|| (hours.iter().sum::<f64>() / hours.len() as f64 * 100.0).round() / 100.0),
        time_to_access: Durations::of(
            granted
                .iter()
                .filter(|t| t.approvals_required() > 0)
                .filter_map(|t| accessed(t).map(|a| (a - requested(t)).num_milliseconds() as f64 / 1000.0))
                .collect(),
        ),
        break_glass_30d: tickets.iter().filter(|t| t.break_glass() && requested(t) >= now - Duration::days(30)).count(),
        revocation_latency: Durations::of(
            tickets
                .iter()
                .filter_map(|t| t.revocation().filter(|r| r.error.is_none()))
                .map(|r| r.latency_ms as f64 / 1000.0)
                .collect(),
        ),
        revocation_failed: tickets.iter().filter(|t| t.status() == TicketStatus::RevocationFailed).count(),
    }
}

/// Access credentials with write access whose audited sessions only read (or
/// never ran a statement): given more than they needed. `sessions` are
/// `(user, class)` of pgaudit SESSION lines.
pub fn over_privileged(tickets: &[Ticket], sessions: &[(String, String)]) -> Vec<OverPrivileged> {
    tickets
        .iter()
        .filter_map(|t| {
            let access = t.access()?;
            if access.path == crate::access_policy::AccessPath::ReadOnly
                || !t.history().iter().any(|e| e.what == "issued")
            {
                return None;
            }
            let role = t.request().role.as_str();
            let mut used: Vec<String> = sessions.iter().filter(|(u, _)| u == role).map(|(_, c)| c.clone()).collect();
            used.sort();
            used.dedup();
            let wrote = used.iter().any(|c| c == "WRITE" || c == "DDL");
            (!wrote).then(|| OverPrivileged {
                ticket: t.id().to_owned(),
                role: role.to_owned(),
                path: access.path.to_string(),
                used,
            })
        })
        .collect()
}

/// Governance of a target: its tickets, the login roles of its scan, the registry's threshold.
pub fn governance(
    tickets: &[Ticket],
    login_roles: &[String],
    break_glass_threshold: Option<u32>,
    now: DateTime<Utc>,
) -> Governance {
    let issued: Vec<&str> = tickets
        .iter()
        .filter(|t| t.access().is_some() && t.is_active_at(now))
        .map(|t| t.request().role.as_str())
        .collect();
    let standing: Vec<String> = login_roles.iter().filter(|r| !issued.contains(&r.as_str())).cloned().collect();
    let mut by_month: BTreeMap<String, usize> = BTreeMap::new();
    for t in tickets.iter().filter(|t| t.break_glass()) {
        let at = t.history().iter().find(|e| e.what == "requested").map_or(t.starts_at(), |e| e.at);
        *by_month.entry(at.format("%Y-%m").to_string()).or_insert(0) += 1;
    }
    let mut alerts = Vec::new();
    if let Some(limit) = break_glass_threshold {
        for (month, n) in &by_month {
            if *n > limit as usize {
                // the month names the alert, not the count: a further use that month raises nothing new
                alerts.push(GovernanceAlert::BreakGlassOverLimit { limit, month: month.clone() });
            }
        }
    }
    let metrics = metrics(tickets, now);
    if metrics.revocation_failed > 0 {
        alerts.push(GovernanceAlert::RevocationsFailed { count: metrics.revocation_failed });
    }
    Governance {
        metrics,
        standing_credentials: standing,
        break_glass_by_month: by_month,
        break_glass_threshold,
        alerts,
        over_privileged: None,
    }
}

/// The governance alerts of `g` not yet raised on the target's chain (no
/// `governance.alert` event of `events` carries the same alert): a month past the
/// break-glass limit is raised once, not after every scan.
pub fn new_alerts<'g>(g: &'g Governance, events: &[AuditEvent]) -> Vec<&'g GovernanceAlert> {
    let raised: Vec<GovernanceAlert> = events
        .iter()
        .filter(|e| e.kind == EventKind::GovernanceAlert)
        .filter_map(|e| e.detail_as::<AlertRaised>().ok().map(|r| r.alert))
        .collect();
    g.alerts.iter().filter(|a| !raised.contains(a)).collect()
}

/// Adds what the audited sessions show to `g`: the credentials given write
/// access that wrote nothing ([`over_privileged`]), alerted when there is any.
/// `sessions` are `(user, class)` of pgaudit SESSION lines.
pub fn note_sessions(g: &mut Governance, tickets: &[Ticket], sessions: &[(String, String)]) {
    let over = over_privileged(tickets, sessions);
    if !over.is_empty() {
        g.alerts.push(GovernanceAlert::UnusedWriteAccess { count: over.len() });
    }
    g.over_privileged = Some(over);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{NewEvent, seal};

    fn ingested(sha256: &str, last_at: DateTime<Utc>, activity: ActivityCounts) -> QueriesIngested {
        QueriesIngested {
            sha256: sha256.to_owned(),
            source: "postgresql.csv".into(),
            format: "csvlog".into(),
            records: 3,
            events: 3,
            new_events: 3,
            rejected: 0,
            skipped: 0,
            first_at: Some(last_at),
            last_at: Some(last_at),
            activity,
        }
    }

    #[test]
    fn the_query_figures_add_up_the_batches_of_the_window_journaled_with_their_counts() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z").unwrap().to_utc();
        let counts = |person: &str, reads: u64| ActivityCounts {
            by_class: BTreeMap::from([("READ".to_owned(), reads)]),
            by_person: BTreeMap::from([(person.to_owned(), reads)]),
            exports: 1,
            destructive: 0,
        };
        let batches = [
            ingested("old", now - Duration::days(40), counts("alice@example.com", 5)),
            ingested("before-counts", now - Duration::days(1), ActivityCounts::default()),
            ingested("a", now - Duration::days(2), counts("alice@example.com", 2)),
            ingested("b", now - Duration::hours(1), counts("bob@example.com", 3)),
        ];
        let mut chain = Vec::new();
        for b in &batches {
            let head = chain.last().map(|e: &AuditEvent| (e.seq, e.hash.clone()));
            let event = NewEvent::queries_ingested("orders-prod", "grantwarden", b, now);
            chain.push(seal(event, head.as_ref().map(|(s, h)| (*s, h.as_str()))));
        }
        let from = now - Duration::days(30);
        let f = query_figures(&chain, from).expect("batches of the window were counted");
        assert_eq!(f.by_class, BTreeMap::from([("READ".to_owned(), 5)]), "the 40-day-old batch is out");
        assert_eq!(f.top_people, [("bob@example.com".to_owned(), 3), ("alice@example.com".to_owned(), 2)]);
        assert_eq!((f.exports, f.from), (2, Some(from)));
        // a batch journaled before batches were counted reads, and counts nothing
        assert_eq!(chain[1].detail_as::<QueriesIngested>().unwrap().activity, ActivityCounts::default());
        assert!(query_figures(&chain[..2], from).is_none());
    }
}
