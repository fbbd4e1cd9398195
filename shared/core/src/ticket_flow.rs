//! The steps of a ticket's life that a person asks for, each once: approve,
//! ask to end early, renew break-glass. The CLI (`grantwarden tickets ...`,
//! `grantwarden access renew`) and the intake Lambda (`POST /requests/{id}/approvals`,
//! `/tickets/{id}/revoke`, `/tickets/{id}/renew`) both call these, so the same
//! request leaves the same ticket and the same journal events whichever door
//! it came through (docs/ARCHITECTURE.md).
//!
//! Each use case reads the ticket, lets the ticket's own method decide, writes
//! it back conditionally on the version it read (a concurrent change makes
//! this one [`StoreError::Stale`]: read again and retry), then journals what
//! happened. What happens outside the store (arming timers, moving the role's
//! VALID UNTIL in the database) stays with the caller, after the write.

use chrono::{DateTime, Utc};

use crate::audit::event::{OnTicket, RevokeRequested};
use crate::audit::{AuditJournal, NewEvent};
use crate::error::StoreError;
use crate::identity::{Actor, IdentityRefusal};
use crate::incident::{IncidentStore, known_incidents};
use crate::policy::PolicyRegistry;
use crate::store::{TicketStore, Versioned};
use crate::ticket::{ApprovalError, Ticket, TicketStatus};

/// Why a ticket step was not taken.
#[derive(Debug, thiserror::Error)]
pub enum TicketFlowError {
    /// No ticket has this id.
    #[error("no ticket {0}")]
    UnknownTicket(String),
    /// The approval does not count (the requester, a second time, not pending).
    #[error(transparent)]
    Approval(#[from] ApprovalError),
    /// The ticket has already ended (or is being revoked): nothing to end.
    #[error("ticket {0} is {1}: nothing to end")]
    NotOpen(String, TicketStatus),
    /// The renewal is not allowed (not break-glass, not in force, incident closed).
    #[error("ticket {ticket} is not renewed: {reason}")]
    NotRenewed {
        /// The ticket.
        ticket: String,
        /// Why, in words.
        reason: String,
    },
    /// The actor may not do this (a renewal without a recent sign-in).
    #[error(transparent)]
    Identity(#[from] IdentityRefusal),
    /// The store failed, or someone else changed the ticket first ([`StoreError::Stale`]).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a renewal did.
#[derive(Debug, Clone, PartialEq)]
pub struct Renewed {
    /// The ticket as stored, with its new window.
    pub ticket: Ticket,
    /// The new expiry (the role's VALID UNTIL follows it).
    pub until: DateTime<Utc>,
}

async fn read<S: TicketStore + Sync>(store: &S, id: &str) -> Result<Versioned<Ticket>, TicketFlowError> {
    store.ticket(id).await?.ok_or_else(|| TicketFlowError::UnknownTicket(id.to_owned()))
}

/// Writes `ticket` back if it is still at `version` (else [`StoreError::Stale`]:
/// someone changed it first) with `events`, then journals them: never an event
/// for a change that was not stored, nor a stored change without its events.
async fn record<S>(store: &S, ticket: &Ticket, version: u64, events: Vec<NewEvent>) -> Result<(), TicketFlowError>
where
    S: TicketStore + AuditJournal + Sync,
{
    crate::outbox::update(store, ticket, version, events).await?;
    Ok(())
}

/// Records `approver`'s approval of ticket `id`: `ticket.approved`, and
/// `ticket.activated` when it was the approval the ticket waited for. Returns
/// the ticket as stored; arming its revocation timers is the caller's.
pub async fn approve_ticket<S>(
    store: &S,
    id: &str,
    approver: &Actor,
    now: DateTime<Utc>,
) -> Result<Ticket, TicketFlowError>
where
    S: TicketStore + AuditJournal + Sync,
{
    let Versioned { value: mut ticket, version } = read(store, id).await?;
    ticket.approve(approver, now)?;
    // a concurrent approval makes this one stale
    record(store, &ticket, version, crate::intake::approval_events(&ticket, approver, now)).await?;
    Ok(ticket)
}

/// Records `by`'s refusal of pending access request `id`: `denied`, journaled
/// as `ticket.denied` with the reason. Nothing was issued, so nothing is
/// revoked; the requester may ask again.
pub async fn deny_ticket<S>(
    store: &S,
    id: &str,
    by: &Actor,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Ticket, TicketFlowError>
where
    S: TicketStore + AuditJournal + Sync,
{
    let Versioned { value: mut ticket, version } = read(store, id).await?;
    ticket.deny(by, now, reason)?;
    let denied = OnTicket::Denied(crate::audit::event::Denied { reason: reason.to_owned() });
    let event = NewEvent::for_ticket(&ticket, denied, &by.id, now).vouched_by(&by.vouched_by);
    record(store, &ticket, version, vec![event]).await?;
    Ok(ticket)
}

/// Asks for ticket `id` to end before its expiry: `revoke_requested`, journaled
/// as `ticket.revoke_requested` with the reason. Whatever revokes (the CLI's
/// `revoke`/`watch`, the revoke Lambda on the tickets stream) takes it from there.
pub async fn request_revoke<S>(
    store: &S,
    id: &str,
    by: &Actor,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Ticket, TicketFlowError>
where
    S: TicketStore + AuditJournal + Sync,
{
    let Versioned { value: mut ticket, version } = read(store, id).await?;
    if !ticket.request_revoke(&by.id, now, reason) {
        return Err(TicketFlowError::NotOpen(id.to_owned(), ticket.status()));
    }
    let requested = OnTicket::RevokeRequested(RevokeRequested { reason: reason.to_owned() });
    let event = NewEvent::for_ticket(&ticket, requested, &by.id, now).vouched_by(&by.vouched_by);
    record(store, &ticket, version, vec![event]).await?;
    Ok(ticket)
}

/// Ends ticket `id` early because one of grantwarden's own controls says so
/// (an export during the ticket, with the registry's `on_export: revoke`):
/// `revoke_requested` like [`request_revoke`], by `control` (`grantwarden:queries`),
/// vouched by nobody. `Ok(None)` when the ticket is no longer open: already
/// ending, ended, or revoked, so a control that fires twice changes nothing.
pub async fn end_by_control<S>(
    store: &S,
    id: &str,
    control: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Option<Ticket>, TicketFlowError>
where
    S: TicketStore + AuditJournal + Sync,
{
    let Versioned { value: mut ticket, version } = read(store, id).await?;
    if !ticket.request_revoke(control, now, reason) {
        return Ok(None);
    }
    let requested = OnTicket::RevokeRequested(RevokeRequested { reason: reason.to_owned() });
    let event = NewEvent::for_ticket(&ticket, requested, control, now);
    record(store, &ticket, version, vec![event]).await?;
    Ok(Some(ticket))
}

/// Renews break-glass ticket `id` for `by` (its requester, signed in within
/// the last 15 minutes, or the local operator) while the incident it names is open (as the incidents on record
/// say): a new window from `now`, journaled as `access.renewed` by `by`. The ticket is recorded first; moving the role's VALID
/// UNTIL (the CLI at once, the revoke Lambda on the tickets stream) and the
/// revocation timers follow it, so a failure there ends access early, never late.
pub async fn renew_break_glass<S>(
    store: &S,
    id: &str,
    by: &Actor,
    registry: &PolicyRegistry,
    now: DateTime<Utc>,
) -> Result<Renewed, TicketFlowError>
where
    S: TicketStore + AuditJournal + IncidentStore + Sync,
{
    by.recent_sign_in(now)?;
    let Versioned { value: mut ticket, version } = read(store, id).await?;
    // the person on call renews their own access; the local operator anyone's
    if by.vouched_by != crate::identity::Voucher::Operator
        && !by.id.eq_ignore_ascii_case(&ticket.request().requested_by)
    {
        return Err(TicketFlowError::NotRenewed {
            ticket: id.to_owned(),
            reason: format!("only its requester renews it, not {}", by.id),
        });
    }
    let incident = ticket.access().and_then(|a| a.incident_id.clone());
    let incidents = known_incidents(store, incident.as_deref()).await?;
    let until = crate::access::renew(&mut ticket, registry, &incidents, now)
        .map_err(|why| TicketFlowError::NotRenewed { ticket: id.to_owned(), reason: why.to_string() })?;
    let renewed = NewEvent::for_ticket(&ticket, OnTicket::Renewed, &by.id, now).vouched_by(&by.vouched_by);
    record(store, &ticket, version, vec![renewed]).await?;
    Ok(Renewed { ticket, until })
}

/// Ends every access request among `open` (the sweep's open tickets of a
/// target) still waiting for approvals past its `pending_until` (the
/// registry's `pending_ttl`): `expired`, journaled as `ticket.expired`. Nothing
/// was issued for them, so nothing is revoked. Run by the sweep (the revoke
/// function every minute, `grantwarden revoke --due` and `watch`); returns the
/// tickets it ended. A ticket approved meanwhile (a concurrent change) is left
/// as it now is.
pub async fn expire_pending<S>(store: &S, open: &[Ticket], now: DateTime<Utc>) -> Result<Vec<Ticket>, TicketFlowError>
where
    S: TicketStore + AuditJournal + Sync,
{
    let mut ended = Vec::new();
    for candidate in open {
        if !candidate.pending_expired(now) {
            continue;
        }
        let Versioned { value: mut ticket, version } = read(store, candidate.id()).await?;
        if !ticket.expire_pending(now) {
            continue;
        }
        let event = NewEvent::for_ticket(&ticket, OnTicket::Expired, "grantwarden", now);
        match record(store, &ticket, version, vec![event]).await {
            Ok(()) => ended.push(ticket),
            Err(TicketFlowError::Store(StoreError::Stale(_))) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{AccessOutcome, request_access};
    use crate::access_policy::AccessPath;
    use crate::incident::{IncidentStatus, IncidentUpdate};
    use crate::memory_store::{MemoryStore, access_request as request, at, opened, ready, registry};

    fn incident(store: &MemoryStore, status: IncidentStatus, minutes: i64) {
        let update = IncidentUpdate { id: "INC-7".into(), status, source: "pagerduty".into(), at: at(minutes) };
        ready(store.record_incident(&update)).unwrap();
    }

    #[test]
    fn an_approval_is_stored_and_journaled_with_the_activation_it_completes() {
        let store = MemoryStore::default();
        let t = opened(&store, &request("r1", AccessPath::Migration, "1h", None));
        assert_eq!(t.status(), TicketStatus::PendingApproval);
        let own = ready(approve_ticket(&store, t.id(), &Actor::operator("alice@example.com"), at(1)));
        assert!(matches!(own, Err(TicketFlowError::Approval(ApprovalError::Requester(_)))), "{own:?}");
        assert_eq!(store.kinds("orders-prod"), ["ticket.requested"], "a refused approval journals nothing");

        let approved = ready(approve_ticket(&store, t.id(), &Actor::operator("ciso@example.com"), at(1))).unwrap();
        assert_eq!(approved.status(), TicketStatus::Active);
        let stored = ready(store.ticket(t.id())).unwrap().unwrap();
        assert_eq!((stored.value, stored.version), (approved, 2));
        assert_eq!(store.kinds("orders-prod"), ["ticket.requested", "ticket.approved", "ticket.activated"]);
        let again = ready(approve_ticket(&store, t.id(), &Actor::operator("bob@example.com"), at(2)));
        assert!(matches!(again, Err(TicketFlowError::Approval(ApprovalError::NotPending(TicketStatus::Active)))));
        assert!(matches!(
            ready(approve_ticket(&store, "tkt-none", &Actor::operator("ciso@example.com"), at(2))),
            Err(TicketFlowError::UnknownTicket(id)) if id == "tkt-none"
        ));
    }

    #[test]
    fn a_request_not_approved_within_pending_ttl_expires_unissued_and_journaled_once() {
        let store = MemoryStore::default();
        // migration needs approval; the fixture registry's pending_ttl is the default hour
        let t = opened(&store, &request("r1", AccessPath::Migration, "4h", None));
        assert_eq!(t.status(), TicketStatus::PendingApproval);
        assert_eq!(t.access().unwrap().pending_until, Some(at(60)));
        assert!(
            ready(expire_pending(&store, &ready(store.tickets(None)).unwrap(), at(59))).unwrap().is_empty(),
            "not yet"
        );
        assert_eq!(t.status_at(at(60)), TicketStatus::Expired, "its status says so at once");
        assert!(!t.is_due(at(300)), "nothing was issued: nothing to revoke");

        let ended = ready(expire_pending(&store, &ready(store.tickets(None)).unwrap(), at(61))).unwrap();
        assert_eq!(ended.len(), 1);
        assert_eq!(ready(store.ticket(t.id())).unwrap().unwrap().value.status(), TicketStatus::Expired);
        assert_eq!(store.kinds("orders-prod"), ["ticket.requested", "ticket.expired"]);
        assert!(
            ready(expire_pending(&store, &ready(store.tickets(None)).unwrap(), at(62))).unwrap().is_empty(),
            "once"
        );
        let late = ready(approve_ticket(&store, t.id(), &Actor::operator("ciso@example.com"), at(61)));
        assert!(matches!(late, Err(TicketFlowError::Approval(ApprovalError::NotPending(TicketStatus::Expired)))));
    }

    #[test]
    fn asking_to_end_early_is_recorded_once_with_its_reason() {
        let store = MemoryStore::default();
        let t = opened(&store, &request("r1", AccessPath::ReadOnly, "1h", None));
        let ended = ready(request_revoke(&store, t.id(), &Actor::operator("ciso@example.com"), "left the team", at(5)))
            .unwrap();
        assert_eq!(ended.status(), TicketStatus::RevokeRequested);
        assert_eq!(ended.revoke_requested_at(), Some(at(5)));
        let events = store.chain("orders-prod");
        let asked = events.last().unwrap();
        assert_eq!((asked.kind.as_str(), asked.actor.as_str()), ("ticket.revoke_requested", "ciso@example.com"));
        assert_eq!(asked.detail["reason"], "left the team");
        let twice = ready(request_revoke(&store, t.id(), &Actor::operator("ciso@example.com"), "again", at(6)));
        assert!(
            matches!(twice, Err(TicketFlowError::NotOpen(_, TicketStatus::RevokeRequested))),
            "nothing to end: {twice:?}"
        );
        assert_eq!(store.chain("orders-prod").len(), events.len(), "nothing more journaled");
    }

    #[test]
    fn break_glass_is_requested_and_renewed_only_while_its_incident_is_open_on_record() {
        let store = MemoryStore::default();
        let glass = request("g1", AccessPath::BreakGlass, "30m", Some("INC-7"));
        // the incident is looked up in the store by the use case itself
        let refused =
            ready(request_access(&store, &glass, &Actor::operator(&glass.identity), &registry(), at(0))).unwrap();
        assert!(matches!(refused, AccessOutcome::Refused { .. }), "no incident on record: {refused:?}");
        incident(&store, IncidentStatus::Open, -10);
        let t = opened(&store, &glass);
        assert_eq!(t.status(), TicketStatus::Active);
        assert!(t.history().last().unwrap().detail.contains("review required"));

        let renewed =
            ready(renew_break_glass(&store, t.id(), &Actor::operator("oncall@example.com"), &registry(), at(20)))
                .unwrap();
        assert_eq!(renewed.until, at(50), "30 minutes from the renewal");
        assert_eq!(renewed.ticket.expires_at(), at(50));
        assert_eq!(ready(store.ticket(t.id())).unwrap().unwrap().value, renewed.ticket);
        assert_eq!(store.kinds("orders-prod").last().unwrap(), "access.renewed");

        incident(&store, IncidentStatus::Resolved, 25);
        let closed =
            ready(renew_break_glass(&store, t.id(), &Actor::operator("oncall@example.com"), &registry(), at(40)));
        assert!(
            matches!(&closed, Err(TicketFlowError::NotRenewed { reason, .. }) if reason.contains("INC-7 is not open")),
            "{closed:?}"
        );
        assert_eq!(ready(store.ticket(t.id())).unwrap().unwrap().value.expires_at(), at(50), "unchanged");
        let read_only = opened(&store, &request("r2", AccessPath::ReadOnly, "1h", None));
        let not_glass = ready(renew_break_glass(
            &store,
            read_only.id(),
            &Actor::operator("oncall@example.com"),
            &registry(),
            at(1),
        ));
        assert!(matches!(not_glass, Err(TicketFlowError::NotRenewed { .. })), "{not_glass:?}");
    }
}
