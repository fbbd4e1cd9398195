//! Exception tickets laid over a plan: the one rule both engines' plans
//! follow. A held privilege the baseline does not allow is `excepted` while
//! an active ticket covers it (scored with the category's weight factor,
//! never zero, not alerted), and an `expired_exception` (a TTL breach: the
//! report alerts) when only ended tickets do. Which tickets cover what is
//! the ticket's to say (`Ticket::covers`, `Ticket::covers_mysql`).

use chrono::{DateTime, Utc};

use crate::finding::FindingKind;
use crate::report::Finding;
use crate::ticket::Ticket;

/// Exception tickets laid over a plan, at a point in time.
#[derive(Clone, Copy)]
pub struct Exceptions<'a> {
    /// Every ticket of the target, whatever its status.
    pub tickets: &'a [Ticket],
    /// When to judge them (normally the scan time).
    pub now: DateTime<Utc>,
    /// Open untagged findings recorded at intake: they stay in every report until resolved.
    pub untagged: &'a [Finding],
}

/// What the tickets covering one held privilege make of its finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Overlay<'t> {
    /// `excepted` or `expired_exception`.
    pub kind: FindingKind,
    /// The ticket it names (`exception_id`).
    pub ticket: &'t Ticket,
    /// What the finding's score is multiplied by.
    pub factor: f64,
    /// The finding's detail.
    pub detail: String,
}

impl<'a> Exceptions<'a> {
    /// None: nothing excepted, nothing untagged, judged at `now`.
    pub fn none(now: DateTime<Utc>) -> Self {
        Exceptions { tickets: &[], now, untagged: &[] }
    }

    /// The overlay of the tickets `covers` picks: the active one that runs
    /// longest, else the ended one that ended last; `None` when none covers.
    pub fn overlay(&self, covers: impl Fn(&Ticket) -> bool) -> Option<Overlay<'a>> {
        let now = self.now;
        let covering: Vec<&'a Ticket> = self.tickets.iter().filter(|t| covers(t)).collect();
        if let Some(t) = covering.iter().filter(|t| t.is_active_at(now)).max_by_key(|t| t.expires_at()) {
            let detail = format!(
                "authorized exception: ticket {} ({}, registry {}) until {}",
                t.id(),
                t.category(),
                t.registry().version,
                t.expires_at().to_rfc3339()
            );
            return Some(Overlay { kind: FindingKind::Excepted, ticket: t, factor: t.weight_factor(), detail });
        }
        let t = covering.iter().filter(|t| t.has_ended_at(now)).max_by_key(|t| t.expires_at())?;
        let detail = format!(
            "TTL breach: ticket {} {} at {} and the grant is still held",
            t.id(),
            t.status_at(now),
            t.expires_at().to_rfc3339()
        );
        Some(Overlay { kind: FindingKind::ExpiredException, ticket: t, factor: 1.0, detail })
    }
}
