//! Intake: a normalized request (or the reason it could not be normalized)
//! through routing into the ticket store.
//!
//! Fail secure: input that cannot be normalized or routed, or a registry that
//! could not be loaded, becomes an `untagged` finding of high severity that
//! the caller records; nothing is ever suppressed without a ticket.

use chrono::{DateTime, Utc};

use crate::audit::NewEvent;
use crate::audit::event::OnTicket;

use crate::audit::AuditJournal;
use crate::error::StoreError;
use crate::finding::FindingKind;
use crate::model::{Grantee, RoleName};
use crate::normalize::NormalizeError;
use crate::policy::PolicyRegistry;
use crate::report::{Finding, FindingObject, FindingPrivilege};
use crate::request::GrantRequest;
use crate::scoring::{Facts, Scope, ScoringConfig, Severity};
use crate::snapshot::TargetId;
use crate::store::{FindingStore, PutOutcome, TicketStore};
use crate::ticket::{Decision, Refusal, Ticket, route};

/// What intake did with one input.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A new ticket.
    Created(Ticket),
    /// A redelivery: the stored ticket, no new event.
    Existing(Ticket),
    /// The delivery id is known with another payload: refused.
    Conflict(Ticket),
    /// The request breaks a rule of its category.
    Refused {
        /// Category.
        category: String,
        /// Why.
        refusal: Refusal,
        /// The untagged finding to record: the grant, if made, is not excepted.
        finding: Box<Finding>,
    },
    /// Not routable: record the finding.
    Untagged(Box<Finding>),
}

impl Outcome {
    /// The journal events this outcome records; a redelivery records none.
    pub fn events(&self, target: &str, at: DateTime<Utc>) -> Vec<NewEvent> {
        match self {
            // journaled with the ticket, in the same write (crate::outbox)
            Outcome::Created(_) | Outcome::Existing(_) => Vec::new(),
            Outcome::Conflict(t) => vec![NewEvent::for_ticket(t, OnTicket::Conflict, "grantwarden", at)],
            Outcome::Refused { finding, .. } => {
                vec![NewEvent::ticket_refused(target, finding, "grantwarden", at)]
            }
            Outcome::Untagged(finding) => {
                vec![NewEvent::untagged_opened(target, finding, "grantwarden", at)]
            }
        }
    }
}

/// The grantee of a finding about input that could not be read: a role
/// named `unknown`, as the contract has always spelled it.
fn unknown_grantee() -> Grantee {
    Grantee::Role(RoleName::new("unknown").expect("`unknown` is a valid role name"))
}

/// The untagged finding for something that could not become a ticket.
pub fn untagged_finding(request: Option<&GrantRequest>, reason: &str, scoring: &ScoringConfig) -> Finding {
    let facts = Facts {
        kind: FindingKind::Untagged,
        // unknown privileges (unreadable input) count as write: high, the floor for untagged
        class: request
            .and_then(|r| r.privileges.iter().map(|p| p.class()).max())
            .unwrap_or(crate::model::PrivilegeClass::Write),
        scope: Scope::Object,
        grantable: false,
        public: false,
    };
    let severity = scoring.severity(facts).max(Severity::High);
    let (grantee, privilege, object) = match request {
        Some(r) => (
            Grantee::Role(r.role.clone()),
            FindingPrivilege::requested(&r.privileges),
            FindingObject::requested(&r.object),
        ),
        None => (unknown_grantee(), FindingPrivilege::Unknown, FindingObject::Unknown),
    };
    let id = request.map(|r| format!("{} {}: ", r.input, r.delivery_id)).unwrap_or_default();
    Finding {
        kind: FindingKind::Untagged,
        severity,
        score: scoring.score(facts),
        grantee,
        privilege,
        grantable: false,
        object,
        exception_id: None,
        detail: format!("{id}{reason}"),
    }
}

/// The journal events of a new ticket: `ticket.requested`, and
/// `ticket.activated` when it needs no approval.
pub fn created_events(t: &Ticket, requester: &crate::identity::Voucher, at: DateTime<Utc>) -> Vec<NewEvent> {
    let requested = NewEvent::for_ticket(t, OnTicket::Requested, &t.request().requested_by, at).vouched_by(requester);
    let mut out = vec![requested];
    if t.status() == crate::ticket::TicketStatus::Active {
        out.push(NewEvent::for_ticket(t, OnTicket::Activated, "grantwarden", at));
    }
    out
}

/// Routes and stores one input (with the state of the incident it names, for
/// a category that requires an open one): a new ticket with its journal
/// events (see [`crate::outbox`]).
pub async fn intake<S: TicketStore + AuditJournal + crate::incident::IncidentStore + Sync>(
    store: &S,
    registry: Result<&PolicyRegistry, String>,
    request: Result<GrantRequest, NormalizeError>,
    requester: &crate::identity::Voucher,
    scoring: &ScoringConfig,
    now: DateTime<Utc>,
) -> Result<Outcome, StoreError> {
    let request = match request {
        Ok(r) => r,
        Err(e) => return Ok(Outcome::Untagged(Box::new(untagged_finding(None, &e.to_string(), scoring)))),
    };
    let registry = match registry {
        Ok(r) => r,
        Err(why) => {
            let reason = format!("policy registry unusable: {why}");
            return Ok(Outcome::Untagged(Box::new(untagged_finding(Some(&request), &reason, scoring))));
        }
    };
    let incidents = crate::incident::known_incidents(store, request.incident_id.as_deref()).await?;
    match route(&request, registry, &incidents, now) {
        Decision::Ticket(ticket) => {
            Ok(match crate::outbox::create(store, &ticket, created_events(&ticket, requester, now)).await? {
                PutOutcome::Created(t) => Outcome::Created(t),
                PutOutcome::Existing(t) => Outcome::Existing(t),
                PutOutcome::Conflict(t) => Outcome::Conflict(t),
            })
        }
        Decision::Refused { category, refusal, .. } => {
            let finding =
                untagged_finding(Some(&request), &format!("refused by category {category}: {refusal}"), scoring);
            Ok(Outcome::Refused { category, refusal, finding: Box::new(finding) })
        }
        Decision::Untagged { reason, .. } => {
            Ok(Outcome::Untagged(Box::new(untagged_finding(Some(&request), &reason, scoring))))
        }
    }
}

/// Records what an outcome leaves behind: the untagged finding of a refused
/// or unroutable input (filed under `target`, before the sender hears "no"),
/// then the outcome's journal events.
pub async fn record<S>(store: &S, target: &TargetId, outcome: &Outcome, now: DateTime<Utc>) -> Result<(), StoreError>
where
    S: FindingStore + AuditJournal + Sync,
{
    if let Outcome::Refused { finding, .. } | Outcome::Untagged(finding) = outcome {
        store.record_findings(target, "intake", std::slice::from_ref(finding), now, false).await?;
    }
    for event in outcome.events(target.as_str(), now) {
        store.append(event).await?;
    }
    Ok(())
}

/// The journal events of an approval: `ticket.approved`, and `ticket.activated`
/// when it was the approval the ticket waited for.
pub fn approval_events(ticket: &Ticket, approver: &crate::identity::Actor, now: DateTime<Utc>) -> Vec<NewEvent> {
    let approved = NewEvent::for_ticket(ticket, OnTicket::Approved, &approver.id, now).vouched_by(&approver.vouched_by);
    let mut out = vec![approved];
    if ticket.status() == crate::ticket::TicketStatus::Active {
        out.push(NewEvent::for_ticket(ticket, OnTicket::Activated, "grantwarden", now));
    }
    out
}
