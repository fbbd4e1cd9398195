//! The audit event catalogue (docs/CONTRACTS.md#audit-events): every kind of
//! event the journal records, the detail each carries, and the constructors
//! that build them. A writer names a kind by [`EventKind`] and hands its
//! detail as a typed value; a reader asks for the detail by type
//! ([`AuditEvent::detail_as`]), which checks the kind first.
//!
//! The journal keeps `detail` as the JSON it was hashed from, not as these
//! types: an event is verified by its bytes, so a field added or dropped
//! since (or a kind this build does not know, kept as [`EventKind::Other`])
//! never breaks an old chain. The types only read what they need and ignore
//! the rest.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{AuditEvent, Disagreement, NewEvent};
use crate::change::Change;
use crate::finding::FindingKind;
use crate::metrics::ActivityCounts;
use crate::model::{Grantee, Privilege, RoleName};
use crate::remediate::Mode;
use crate::report::{Finding, Report, Summary};
use crate::request::{AccessRequest, RequestObject};
use crate::revocation::RevocationPlan;
use crate::ticket::{Ticket, TicketStatus, Trigger};

/// Declares [`EventKind`] with the one spelling of each kind on the wire.
macro_rules! event_kinds {
    ($($(#[doc = $doc:literal])* $variant:ident => $wire:literal,)*) => {
        /// What happened: the `type` of a journal event.
        ///
        /// Serialized as its wire spelling (`ticket.requested`, ...). A kind
        /// this build does not know reads as [`EventKind::Other`] with its
        /// spelling kept, so the event still verifies and is written back as it was.
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum EventKind {
            $($(#[doc = $doc])* $variant,)*
            /// A kind this build does not write (an older or newer grantwarden's).
            Other(UnknownKind),
        }

        impl EventKind {
            /// Every kind this build writes, in catalogue order.
            pub const KNOWN: &'static [EventKind] = &[$(EventKind::$variant,)*];

            /// The wire spelling, e.g. `ticket.requested`.
            pub fn as_str(&self) -> &str {
                match self {
                    $(EventKind::$variant => $wire,)*
                    EventKind::Other(kind) => &kind.0,
                }
            }

            fn known(wire: &str) -> Option<EventKind> {
                match wire {
                    $($wire => Some(EventKind::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

event_kinds! {
    /// A ticket was created from a request ([`TicketDetail`]).
    TicketRequested => "ticket.requested",
    /// A ticket came into force: no approval needed, or the last one given ([`TicketDetail`]).
    TicketActivated => "ticket.activated",
    /// An approver approved a ticket ([`TicketDetail`]).
    TicketApproved => "ticket.approved",
    /// A known delivery id came with another payload; the stored ticket stands ([`TicketDetail`]).
    TicketConflict => "ticket.conflict",
    /// Intake refused a request by its category's rules ([`Finding`]: the untagged finding).
    TicketRefused => "ticket.refused",
    /// Someone asked for a ticket to end early ([`TicketDetail`] and [`RevokeRequested`]).
    TicketRevokeRequested => "ticket.revoke_requested",
    /// A pending request was not approved in time and ended unissued ([`TicketDetail`]).
    TicketExpired => "ticket.expired",
    /// An approver turned a pending access request down; nothing was issued ([`TicketDetail`] and [`Denied`]).
    TicketDenied => "ticket.denied",
    /// A dry-run revocation: what would run ([`TicketDetail`] and [`RevocationPlanned`]).
    RevocationPlanned => "revocation.planned",
    /// A revocation ran while another trigger recorded the end first ([`TicketDetail`] and [`RevocationExecuted`]).
    RevocationExecuted => "revocation.executed",
    /// A ticket's access was revoked ([`TicketDetail`] and [`Revoked`]).
    TicketRevoked => "ticket.revoked",
    /// A revocation failed for good and waits for a person ([`TicketDetail`] and [`RevocationFailed`]).
    TicketRevocationFailed => "ticket.revocation_failed",
    /// The access policy refused an access request ([`AccessTurnedDown`]).
    AccessRefused => "access.refused",
    /// No access policy routes an access request ([`AccessTurnedDown`]).
    AccessUnroutable => "access.unroutable",
    /// A ticket's credential was issued ([`TicketDetail`] and [`Issued`]).
    AccessIssued => "access.issued",
    /// A ticket's credential, delivered into its secret, was shown to its requester once ([`TicketDetail`]).
    AccessShown => "access.shown",
    /// A ticket's credential could not be issued into its secret ([`TicketDetail`] and [`IssueRefused`]).
    AccessIssueRefused => "access.issue_refused",
    /// A break-glass ticket was renewed while its incident stays open ([`TicketDetail`]).
    AccessRenewed => "access.renewed",
    /// A finding was first seen ([`FindingOpenedOrClosed`]: a scan's, or intake's untagged finding).
    FindingOpened => "finding.opened",
    /// A complete scan no longer reports an open finding ([`FindingOpenedOrClosed`]).
    FindingClosed => "finding.closed",
    /// More findings opened in one scan than are journaled one by one ([`FindingsBulk`]).
    FindingsOpenedBulk => "finding.opened.bulk",
    /// More findings closed in one scan than are journaled one by one ([`FindingsBulk`]).
    FindingsClosedBulk => "finding.closed.bulk",
    /// A scheduled scan was fanned out into chunks ([`ScanStarted`]).
    ScanStarted => "scan.started",
    /// A scan was assessed, every chunk read ([`ScanEnded`]).
    ScanCompleted => "scan.completed",
    /// A scan was assessed with chunks missing ([`ScanEnded`]).
    ScanIncomplete => "scan.incomplete",
    /// Corrective changes were planned, not run ([`Remediation`]).
    RemediationPlanned => "remediation.planned",
    /// Corrective changes ran ([`Remediation`]).
    RemediationApplied => "remediation.applied",
    /// Corrective changes failed for good ([`Remediation`]).
    RemediationFailed => "remediation.failed",
    /// A governance alert was raised ([`AlertRaised`]).
    GovernanceAlert => "governance.alert",
    /// The journal and its archive disagree: the digest was refused ([`Disagreement`]).
    DigestRefused => "audit.digest_refused",
    /// A policy registry version was put in force ([`RegistryLoaded`]).
    RegistryLoaded => "registry.loaded",
    /// A batch of database log lines was ingested into query events ([`QueriesIngested`]).
    QueriesIngested => "queries.ingested",
    /// A ticket's credential exported data or ran a statement outside its path, or a GRANT no ticket covers was logged ([`QueryAlerted`]).
    QueryAlert => "queries.alert",
}

/// The spelling of a kind this build does not know. Only reading an event
/// makes one, so a known kind is never [`EventKind::Other`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnknownKind(String);

impl From<&str> for EventKind {
    fn from(wire: &str) -> Self {
        EventKind::known(wire).unwrap_or_else(|| EventKind::Other(UnknownKind(wire.to_owned())))
    }
}

impl From<String> for EventKind {
    fn from(wire: String) -> Self {
        EventKind::known(&wire).unwrap_or(EventKind::Other(UnknownKind(wire)))
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // pad, not write: `{:<20}` lines kinds up in `grantwarden audit export`
        f.pad(self.as_str())
    }
}

impl fmt::Debug for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventKind({})", self.as_str())
    }
}

impl Serialize for EventKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(EventKind::from)
    }
}

/// The detail of some kinds of event: what [`AuditEvent::detail_as`] reads.
pub trait EventDetail: Serialize + DeserializeOwned {
    /// Whether events of `kind` carry this detail.
    fn is_detail_of(kind: &EventKind) -> bool;
}

/// Why an event's detail could not be read as the type asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DetailError {
    /// The event is of a kind that does not carry this detail.
    #[error("event {event} is {kind}, whose detail is not a {wanted}")]
    OtherKind {
        /// The event (`<chain>:<seq>`, or the subject of an unsealed event).
        event: String,
        /// Its kind.
        kind: EventKind,
        /// The detail type asked for.
        wanted: &'static str,
    },
    /// The detail does not have the fields the type needs.
    #[error("event {event} ({kind}): detail is not a {wanted}: {reason}")]
    Unreadable {
        /// The event.
        event: String,
        /// Its kind.
        kind: EventKind,
        /// The detail type asked for.
        wanted: &'static str,
        /// What serde found wrong.
        reason: String,
    },
}

fn read_detail<D: EventDetail>(kind: &EventKind, detail: &serde_json::Value, event: &str) -> Result<D, DetailError> {
    let wanted = std::any::type_name::<D>().rsplit("::").next().unwrap_or_default();
    if !D::is_detail_of(kind) {
        return Err(DetailError::OtherKind { event: event.to_owned(), kind: kind.clone(), wanted });
    }
    D::deserialize(detail).map_err(|e| DetailError::Unreadable {
        event: event.to_owned(),
        kind: kind.clone(),
        wanted,
        reason: e.to_string(),
    })
}

impl AuditEvent {
    /// The event's detail as `D`, when events of this kind carry one.
    pub fn detail_as<D: EventDetail>(&self) -> Result<D, DetailError> {
        read_detail(&self.kind, &self.detail, &self.id)
    }
}

impl NewEvent {
    /// The event's detail as `D`, when events of this kind carry one.
    pub fn detail_as<D: EventDetail>(&self) -> Result<D, DetailError> {
        read_detail(&self.kind, &self.detail, &self.subject)
    }

    /// Records what established the actor's identity (`vouched_by` in the
    /// detail): a sender asserting a person is journaled as that sender's word.
    pub fn vouched_by(mut self, voucher: &crate::identity::Voucher) -> Self {
        if let serde_json::Value::Object(detail) = &mut self.detail {
            detail.insert("vouched_by".to_owned(), to_detail(voucher));
        }
        self
    }
}

impl AuditEvent {
    /// What established the actor's identity, when the event records it.
    pub fn vouched_by(&self) -> Option<crate::identity::Voucher> {
        self.detail.get("vouched_by").and_then(|v| serde_json::from_value(v.clone()).ok())
    }
}

fn to_detail(detail: &impl Serialize) -> serde_json::Value {
    serde_json::to_value(detail).expect("an event's detail always serializes")
}

/// The parts of an event that are not its detail.
struct Head<'a> {
    chain: &'a str,
    target: &'a str,
    actor: &'a str,
    subject: &'a str,
    at: DateTime<Utc>,
}

impl NewEvent {
    fn typed(head: Head<'_>, kind: EventKind, detail: serde_json::Value) -> Self {
        NewEvent {
            chain: head.chain.to_owned(),
            at: head.at,
            kind,
            actor: head.actor.to_owned(),
            subject: head.subject.to_owned(),
            target: head.target.to_owned(),
            detail,
        }
    }
}

// ---- tickets --------------------------------------------------------------

/// What every event about a ticket records of it, taken as the ticket stands
/// after the step; the detail of `ticket.requested`, `ticket.activated`,
/// `ticket.approved`, `ticket.conflict` and `access.renewed`, and the part
/// every other ticket event starts with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketDetail {
    /// The registry version the ticket was routed under.
    pub registry_version: String,
    /// That registry's sha256.
    pub registry_sha256: String,
    /// Its category.
    pub category: String,
    /// Its recorded status.
    pub status: TicketStatus,
    /// The role it gives access through.
    pub role: RoleName,
    /// The person it is for.
    pub principal: String,
    /// The privileges requested.
    pub privileges: Vec<Privilege>,
    /// The object requested.
    pub object: RequestObject,
    /// When it ends.
    pub expires_at: DateTime<Utc>,
    /// The request's delivery id.
    pub delivery_id: String,
}

impl TicketDetail {
    /// What `t` records in its events.
    pub fn of(t: &Ticket) -> Self {
        TicketDetail {
            registry_version: t.registry().version.clone(),
            registry_sha256: t.registry().sha256.clone(),
            category: t.category().to_owned(),
            status: t.status(),
            role: t.request().role.clone(),
            principal: t.request().principal.clone(),
            privileges: t.request().privileges.clone(),
            object: t.request().object.clone(),
            expires_at: t.expires_at(),
            delivery_id: t.request().delivery_id.clone(),
        }
    }
}

impl EventDetail for TicketDetail {
    fn is_detail_of(kind: &EventKind) -> bool {
        use EventKind::*;
        matches!(
            kind,
            TicketRequested
                | TicketActivated
                | TicketApproved
                | TicketConflict
                | TicketRevokeRequested
                | TicketExpired
                | TicketDenied
                | RevocationPlanned
                | RevocationExecuted
                | TicketRevoked
                | TicketRevocationFailed
                | AccessIssued
                | AccessShown
                | AccessIssueRefused
                | AccessRenewed
        )
    }
}

/// `ticket.revoke_requested`, beyond the ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeRequested {
    /// Why, as given (may be empty).
    pub reason: String,
}

/// `revocation.planned`, beyond the ticket: a dry run's plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationPlanned {
    /// What started the revocation.
    pub trigger: Trigger,
    /// The plan.
    pub plan: RevocationPlan,
    /// The SQL it would run.
    pub sql: Vec<String>,
    /// Always true: only a dry run plans without running.
    pub dry_run: bool,
}

/// `revocation.executed`, beyond the ticket: what a revocation ran after
/// another trigger had recorded the ticket's end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationExecuted {
    /// What started this revocation.
    pub trigger: Trigger,
    /// The plan it ran.
    pub plan: RevocationPlan,
    /// The SQL as run.
    pub sql: Vec<String>,
    /// Sessions ended after the commit.
    pub sessions_terminated: u64,
    /// The end the other trigger recorded.
    pub ticket_status: TicketStatus,
}

/// `ticket.revoked`, beyond the ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    /// What started the revocation.
    pub trigger: Trigger,
    /// From the ticket's end to the commit.
    pub latency_ms: i64,
    /// The plan it ran.
    pub plan: RevocationPlan,
    /// The SQL as run.
    pub sql: Vec<String>,
    /// Sessions ended after the commit.
    pub sessions_terminated: u64,
}

/// `ticket.revocation_failed`, beyond the ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationFailed {
    /// What started the revocation.
    pub trigger: Trigger,
    /// What failed.
    pub error: String,
    /// Attempts made.
    pub attempts: u32,
}

/// `access.issued`, beyond the ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issued {
    /// The statements as printed (never the password).
    pub sql: Vec<String>,
    /// The secret the credential was delivered in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// `access.issue_refused`, beyond the ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueRefused {
    /// Why the credential was not issued.
    pub error: String,
}

/// `ticket.denied`, beyond the ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denied {
    /// Why, as given (may be empty).
    pub reason: String,
}

macro_rules! ticket_extra {
    ($($ty:ident => $kind:ident),* $(,)?) => {$(
        impl EventDetail for $ty {
            fn is_detail_of(kind: &EventKind) -> bool {
                *kind == EventKind::$kind
            }
        }
    )*};
}

ticket_extra! {
    RevokeRequested => TicketRevokeRequested,
    Denied => TicketDenied,
    RevocationPlanned => RevocationPlanned,
    RevocationExecuted => RevocationExecuted,
    Revoked => TicketRevoked,
    RevocationFailed => TicketRevocationFailed,
    Issued => AccessIssued,
    IssueRefused => AccessIssueRefused,
}

/// What happened to a ticket, with what each kind records beyond the ticket.
#[derive(Debug, Clone, PartialEq)]
pub enum OnTicket {
    /// `ticket.requested`.
    Requested,
    /// `ticket.activated`.
    Activated,
    /// `ticket.approved`.
    Approved,
    /// `ticket.conflict`.
    Conflict,
    /// `access.renewed`.
    Renewed,
    /// `ticket.revoke_requested`.
    RevokeRequested(RevokeRequested),
    /// `ticket.expired`.
    Expired,
    /// `ticket.denied`.
    Denied(Denied),
    /// `access.shown`.
    Shown,
    /// `revocation.planned`.
    RevocationPlanned(RevocationPlanned),
    /// `revocation.executed`.
    RevocationExecuted(RevocationExecuted),
    /// `ticket.revoked`.
    Revoked(Revoked),
    /// `ticket.revocation_failed`.
    RevocationFailed(RevocationFailed),
    /// `access.issued`.
    Issued(Issued),
    /// `access.issue_refused`.
    IssueRefused(IssueRefused),
}

impl OnTicket {
    /// The event kind.
    pub fn kind(&self) -> EventKind {
        match self {
            OnTicket::Requested => EventKind::TicketRequested,
            OnTicket::Activated => EventKind::TicketActivated,
            OnTicket::Approved => EventKind::TicketApproved,
            OnTicket::Conflict => EventKind::TicketConflict,
            OnTicket::Renewed => EventKind::AccessRenewed,
            OnTicket::RevokeRequested(_) => EventKind::TicketRevokeRequested,
            OnTicket::Expired => EventKind::TicketExpired,
            OnTicket::Denied(_) => EventKind::TicketDenied,
            OnTicket::Shown => EventKind::AccessShown,
            OnTicket::RevocationPlanned(_) => EventKind::RevocationPlanned,
            OnTicket::RevocationExecuted(_) => EventKind::RevocationExecuted,
            OnTicket::Revoked(_) => EventKind::TicketRevoked,
            OnTicket::RevocationFailed(_) => EventKind::TicketRevocationFailed,
            OnTicket::Issued(_) => EventKind::AccessIssued,
            OnTicket::IssueRefused(_) => EventKind::AccessIssueRefused,
        }
    }

    /// What the kind records beyond the ticket.
    fn extra(&self) -> Option<serde_json::Value> {
        Some(match self {
            OnTicket::Requested
            | OnTicket::Activated
            | OnTicket::Approved
            | OnTicket::Conflict
            | OnTicket::Renewed
            | OnTicket::Expired
            | OnTicket::Shown => {
                return None;
            }
            OnTicket::RevokeRequested(x) => to_detail(x),
            OnTicket::Denied(x) => to_detail(x),
            OnTicket::RevocationPlanned(x) => to_detail(x),
            OnTicket::RevocationExecuted(x) => to_detail(x),
            OnTicket::Revoked(x) => to_detail(x),
            OnTicket::RevocationFailed(x) => to_detail(x),
            OnTicket::Issued(x) => to_detail(x),
            OnTicket::IssueRefused(x) => to_detail(x),
        })
    }
}

impl NewEvent {
    /// An event about ticket `t`, on its target's chain, subject its id: the
    /// ticket's [`TicketDetail`] with what `what` records beyond it.
    pub fn for_ticket(t: &Ticket, what: OnTicket, actor: &str, at: DateTime<Utc>) -> Self {
        let mut detail = to_detail(&TicketDetail::of(t));
        if let (serde_json::Value::Object(detail), Some(serde_json::Value::Object(extra))) = (&mut detail, what.extra())
        {
            detail.extend(extra);
        }
        let target = t.request().target.as_str();
        NewEvent::typed(Head { chain: target, target, actor, subject: t.id(), at }, what.kind(), detail)
    }
}

// ---- findings and scans ---------------------------------------------------

impl EventDetail for Finding {
    fn is_detail_of(kind: &EventKind) -> bool {
        *kind == EventKind::TicketRefused
    }
}

/// A finding a scan opened or closed, with the scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanFinding {
    /// The finding.
    pub finding: Finding,
    /// The scan.
    pub scan_id: String,
    /// The registry version in force, if one was read.
    pub registry_version: Option<String>,
}

/// The detail of `finding.opened` and `finding.closed`: from a scan, the
/// finding with its scan; from intake (untagged input), the finding alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FindingOpenedOrClosed {
    /// Assessed in a scan.
    Scan(ScanFinding),
    /// Recorded at intake.
    Intake(Finding),
}

impl FindingOpenedOrClosed {
    /// The finding.
    pub fn finding(&self) -> &Finding {
        match self {
            FindingOpenedOrClosed::Scan(s) => &s.finding,
            FindingOpenedOrClosed::Intake(f) => f,
        }
    }

    /// The finding, taken out.
    pub fn into_finding(self) -> Finding {
        match self {
            FindingOpenedOrClosed::Scan(s) => s.finding,
            FindingOpenedOrClosed::Intake(f) => f,
        }
    }
}

impl EventDetail for FindingOpenedOrClosed {
    fn is_detail_of(kind: &EventKind) -> bool {
        matches!(kind, EventKind::FindingOpened | EventKind::FindingClosed)
    }
}

/// Which way findings went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingChange {
    /// First seen.
    Opened,
    /// No longer reported by a complete scan.
    Closed,
}

/// Findings of one scan summed up in one event, past the number journaled one by one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingsBulk {
    /// How many.
    pub count: usize,
    /// How many of each kind (absent from events written before it was counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_kind: Option<BTreeMap<FindingKind, usize>>,
    /// Drift findings per grantee (absent from events written before it was counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_grantee: Option<BTreeMap<Grantee, usize>>,
    /// sha256 of the sorted finding keys joined by newlines.
    pub keys_sha256: String,
    /// The scan.
    pub scan_id: String,
    /// The registry version in force, if one was read.
    pub registry_version: Option<String>,
}

impl EventDetail for FindingsBulk {
    fn is_detail_of(kind: &EventKind) -> bool {
        matches!(kind, EventKind::FindingsOpenedBulk | EventKind::FindingsClosedBulk)
    }
}

/// `scan.started`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanStarted {
    /// The scan window's start.
    pub window_start: DateTime<Utc>,
    /// Its length.
    pub window_seconds: u32,
    /// Chunks the scan was split into.
    pub chunks: usize,
    /// `server_version_num` seen when planning.
    pub server_version_num: u32,
}

impl EventDetail for ScanStarted {
    fn is_detail_of(kind: &EventKind) -> bool {
        *kind == EventKind::ScanStarted
    }
}

/// `scan.completed` and `scan.incomplete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanEnded {
    /// The registry version in force, if one was read.
    pub registry_version: Option<String>,
    /// The snapshot's sha256.
    pub snapshot_sha256: String,
    /// The report's summary.
    pub summary: Summary,
}

impl EventDetail for ScanEnded {
    fn is_detail_of(kind: &EventKind) -> bool {
        matches!(kind, EventKind::ScanCompleted | EventKind::ScanIncomplete)
    }
}

impl NewEvent {
    /// `ticket.refused`: the untagged finding of a request its category refused, filed under `target`.
    pub fn ticket_refused(target: &str, finding: &Finding, actor: &str, at: DateTime<Utc>) -> Self {
        let key = crate::report::finding_key(finding);
        let head = Head { chain: target, target, actor, subject: &key, at };
        NewEvent::typed(head, EventKind::TicketRefused, to_detail(finding))
    }

    /// Intake's `finding.opened`: the untagged finding of input no route takes, filed under `target`.
    pub fn untagged_opened(target: &str, finding: &Finding, actor: &str, at: DateTime<Utc>) -> Self {
        let key = crate::report::finding_key(finding);
        let head = Head { chain: target, target, actor, subject: &key, at };
        NewEvent::typed(head, EventKind::FindingOpened, to_detail(finding))
    }

    /// `finding.opened` or `finding.closed` of a scan of `target`.
    pub fn scan_finding(target: &str, change: FindingChange, detail: &ScanFinding, at: DateTime<Utc>) -> Self {
        let key = crate::report::finding_key(&detail.finding);
        let kind = match change {
            FindingChange::Opened => EventKind::FindingOpened,
            FindingChange::Closed => EventKind::FindingClosed,
        };
        NewEvent::typed(
            Head { chain: target, target, actor: "grantwarden", subject: &key, at },
            kind,
            to_detail(detail),
        )
    }

    /// `finding.opened.bulk` or `finding.closed.bulk` of a scan of `target`.
    pub fn scan_findings_bulk(target: &str, change: FindingChange, detail: &FindingsBulk, at: DateTime<Utc>) -> Self {
        let kind = match change {
            FindingChange::Opened => EventKind::FindingsOpenedBulk,
            FindingChange::Closed => EventKind::FindingsClosedBulk,
        };
        let head = Head { chain: target, target, actor: "grantwarden", subject: &detail.scan_id, at };
        NewEvent::typed(head, kind, to_detail(detail))
    }

    /// `scan.started`: scan `scan_id` of `target` fanned out.
    pub fn scan_started(target: &str, scan_id: &str, detail: &ScanStarted, at: DateTime<Utc>) -> Self {
        let head = Head { chain: target, target, actor: "grantwarden", subject: scan_id, at };
        NewEvent::typed(head, EventKind::ScanStarted, to_detail(detail))
    }

    /// The end of a scan: `scan.completed` or `scan.incomplete`, with the summary.
    pub fn for_scan(report: &Report, registry_version: Option<&str>, at: DateTime<Utc>) -> Self {
        let kind = if report.summary.complete { EventKind::ScanCompleted } else { EventKind::ScanIncomplete };
        let detail = ScanEnded {
            registry_version: registry_version.map(str::to_owned),
            snapshot_sha256: report.snapshot_sha256.clone(),
            summary: report.summary.clone(),
        };
        let target = report.target.as_str();
        let head = Head { chain: target, target, actor: "grantwarden", subject: &report.scan_id, at };
        NewEvent::typed(head, kind, to_detail(&detail))
    }
}

// ---- access requests ------------------------------------------------------

/// `access.refused` and `access.unroutable`: an access request turned down
/// before any ticket (nothing was granted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTurnedDown {
    /// The request as sent.
    pub request: AccessRequest,
    /// The path's category (`access:<path>`), for a refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Why.
    pub reason: String,
    /// The registry version that decided.
    pub registry_version: String,
}

impl EventDetail for AccessTurnedDown {
    fn is_detail_of(kind: &EventKind) -> bool {
        matches!(kind, EventKind::AccessRefused | EventKind::AccessUnroutable)
    }
}

impl NewEvent {
    /// `access.refused` (with a category) or `access.unroutable` (without), on
    /// the request's target, subject its id, by the person who asked.
    pub fn access_turned_down(detail: &AccessTurnedDown, at: DateTime<Utc>) -> Self {
        let r = &detail.request;
        let kind = if detail.category.is_some() { EventKind::AccessRefused } else { EventKind::AccessUnroutable };
        let target = r.target.as_str();
        NewEvent::typed(Head { chain: target, target, actor: &r.identity, subject: &r.id, at }, kind, to_detail(detail))
    }
}

// ---- remediation and governance -------------------------------------------

/// The diff's `remediation.planned`: the changes it handed to the remediation queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemediationQueued {
    /// The mode planned under.
    pub mode: Mode,
    /// Every part's changes.
    pub changes: Vec<Change>,
    /// Findings left for a person.
    pub skipped: usize,
    /// How many requests the changes were split into.
    pub parts: usize,
    /// The scan's snapshot sha256.
    pub snapshot_sha256: String,
}

/// `remediation.planned`, `.applied` or `.failed` by whoever ran the changes
/// (`grantwarden apply`, the revoke function); each writes a few fields of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemediationRun {
    /// The mode.
    pub mode: Mode,
    /// The changes run (or planned).
    pub changes: Vec<Change>,
    /// Revokes held back: a ticket in force covers them.
    pub held_back: Vec<Change>,
    /// The SQL as run (or as it would run); empty on failure.
    pub sql: Vec<String>,
    /// Changes left out because their object no longer exists.
    pub not_found: Vec<String>,
    /// Why it failed, for `remediation.failed`.
    pub error: Option<String>,
    /// The scan's snapshot sha256.
    pub snapshot_sha256: String,
    /// The findings left for a person: each with why where the plan was at
    /// hand (`grantwarden apply`), their number from a queued request. Absent
    /// from events written before both doors journaled the same detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<crate::remediate::SkippedFindings>,
    /// Attempts made (absent from the revoke function's events before W2-E).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Whether nothing was run (absent from `grantwarden apply`'s events before W2-E).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}

/// The detail of a remediation event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Remediation {
    /// Planned by the diff and queued.
    Queued(RemediationQueued),
    /// Planned, run or failed where it runs.
    Run(RemediationRun),
}

impl Remediation {
    /// The changes planned or run.
    pub fn changes(&self) -> &[Change] {
        match self {
            Remediation::Queued(q) => &q.changes,
            Remediation::Run(r) => &r.changes,
        }
    }
}

impl EventDetail for Remediation {
    fn is_detail_of(kind: &EventKind) -> bool {
        matches!(kind, EventKind::RemediationPlanned | EventKind::RemediationApplied | EventKind::RemediationFailed)
    }
}

/// Where a remediation got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemediationStep {
    /// Planned, nothing run.
    Planned,
    /// Run.
    Applied,
    /// Failed for good.
    Failed,
}

/// `governance.alert`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRaised {
    /// The alert (its sentence on the wire; raised once each).
    pub alert: crate::governance_alert::GovernanceAlert,
    /// Whether it was published (an alert topic was configured).
    #[serde(default)]
    pub published: bool,
}

impl EventDetail for AlertRaised {
    fn is_detail_of(kind: &EventKind) -> bool {
        *kind == EventKind::GovernanceAlert
    }
}

impl RemediationStep {
    /// The event kind of the step.
    pub fn kind(self) -> EventKind {
        match self {
            RemediationStep::Planned => EventKind::RemediationPlanned,
            RemediationStep::Applied => EventKind::RemediationApplied,
            RemediationStep::Failed => EventKind::RemediationFailed,
        }
    }
}

impl NewEvent {
    /// A remediation event of scan `scan_id` on `target`.
    pub fn remediation(
        target: &str,
        scan_id: &str,
        step: RemediationStep,
        detail: &Remediation,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Self {
        NewEvent::typed(Head { chain: target, target, actor, subject: scan_id, at }, step.kind(), to_detail(detail))
    }

    /// `governance.alert` raised on `target` after scan `scan_id`.
    pub fn governance_alert(target: &str, scan_id: &str, detail: &AlertRaised, actor: &str, at: DateTime<Utc>) -> Self {
        let head = Head { chain: target, target, actor, subject: scan_id, at };
        NewEvent::typed(head, EventKind::GovernanceAlert, to_detail(detail))
    }
}

// ---- the registry and the journal itself ----------------------------------

/// `registry.loaded`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryLoaded {
    /// The version put in force.
    pub registry_version: String,
    /// Its content's sha256.
    pub sha256: String,
    /// Who owns it.
    pub owner: String,
    /// Who approves changes to it.
    pub approver: String,
}

impl EventDetail for RegistryLoaded {
    fn is_detail_of(kind: &EventKind) -> bool {
        *kind == EventKind::RegistryLoaded
    }
}

/// The detail of `queries.ingested`: one log batch, by digest. The lines stay
/// in the query store; this event makes them tamper-evident, since the
/// batch's sha256 is on the target's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueriesIngested {
    /// sha256 of the batch's bytes (a file's, or its log events' messages each followed by a newline).
    pub sha256: String,
    /// Where it came from (a file name, or `log group/log stream`).
    pub source: String,
    /// Its layout (`csvlog`, `stderr`, `rds`).
    pub format: String,
    /// Records read.
    pub records: u64,
    /// Query events it holds (pgaudit entries of the target's database).
    pub events: u64,
    /// Of those, events not already stored (delivered before in another batch).
    pub new_events: u64,
    /// Records that could not be read: kept with their reason.
    pub rejected: u64,
    /// Records of other databases, and records that are not pgaudit entries.
    pub skipped: u64,
    /// Time of the first and last record read, when any was.
    pub first_at: Option<DateTime<Utc>>,
    /// See `first_at`.
    pub last_at: Option<DateTime<Utc>>,
    /// Its events counted for the dashboard (absent from batches journaled before it was counted).
    #[serde(default, skip_serializing_if = "ActivityCounts::is_empty")]
    pub activity: ActivityCounts,
}

/// The detail of `queries.alert`: what a ticket's credential did, as one
/// sentence and as the alert (its kind and the query event), and what was done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryAlerted {
    /// The alert as one sentence.
    pub alert: String,
    /// The alert: `alert` (`export`, `outside_path`) with its kind's fields and `event` (the query event), or `untagged_grant` with the finding.
    pub detail: serde_json::Value,
    /// Whether it was published (SNS on AWS).
    pub published: bool,
    /// Whether the ticket was ended early for it (`queries.on_export: revoke`).
    pub ticket_ended: bool,
}

impl EventDetail for QueryAlerted {
    fn is_detail_of(kind: &EventKind) -> bool {
        *kind == EventKind::QueryAlert
    }
}

impl EventDetail for QueriesIngested {
    fn is_detail_of(kind: &EventKind) -> bool {
        *kind == EventKind::QueriesIngested
    }
}

impl EventDetail for Disagreement {
    fn is_detail_of(kind: &EventKind) -> bool {
        *kind == EventKind::DigestRefused
    }
}

impl NewEvent {
    /// `registry.loaded` on the registry chain.
    pub fn registry_loaded(detail: &RegistryLoaded, actor: &str, at: DateTime<Utc>) -> Self {
        let subject = format!("registry {}", detail.registry_version);
        let head = Head { chain: super::REGISTRY_CHAIN, target: "", actor, subject: &subject, at };
        NewEvent::typed(head, EventKind::RegistryLoaded, to_detail(detail))
    }

    /// `queries.ingested` on the target's chain.
    pub fn queries_ingested(target: &str, actor: &str, detail: &QueriesIngested, at: DateTime<Utc>) -> Self {
        let subject = format!("queries {}", detail.sha256);
        let head = Head { chain: target, target, actor, subject: &subject, at };
        NewEvent::typed(head, EventKind::QueriesIngested, to_detail(detail))
    }

    /// `queries.alert` on the target's chain, about one query event (`key`).
    pub fn query_alert(target: &str, actor: &str, key: &str, detail: &QueryAlerted, at: DateTime<Utc>) -> Self {
        let subject = format!("query {key}");
        let head = Head { chain: target, target, actor, subject: &subject, at };
        NewEvent::typed(head, EventKind::QueryAlert, to_detail(detail))
    }

    /// `audit.digest_refused` on the refused chain, with both sides' hashes.
    pub fn digest_refused(refusal: &Disagreement, at: DateTime<Utc>) -> Self {
        let subject = format!("{}:{}", refusal.chain, refusal.seq);
        let head = Head { chain: &refusal.chain, target: &refusal.chain, actor: "grantwarden", subject: &subject, at };
        NewEvent::typed(head, EventKind::DigestRefused, to_detail(refusal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_spelling_and_an_unknown_one_keeps_it() {
        for kind in EventKind::KNOWN {
            assert_eq!(EventKind::from(kind.as_str()), *kind);
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
            assert_eq!(serde_json::from_value::<EventKind>(serde_json::json!(kind.as_str())).unwrap(), *kind);
        }
        assert_eq!(EventKind::KNOWN.len(), 33);
        let other: EventKind = serde_json::from_str("\"retired.kind\"").unwrap();
        assert!(matches!(other, EventKind::Other(_)));
        assert_eq!(
            (other.as_str(), serde_json::to_string(&other).unwrap().as_str()),
            ("retired.kind", "\"retired.kind\"")
        );
        assert_eq!(format!("[{:<18}]", EventKind::ScanStarted), "[scan.started      ]");
    }

    fn ticket() -> Ticket {
        serde_json::from_value(serde_json::json!({
            "id": "tkt-1", "request_sha256": "", "category": "read-only", "tag": "", "approvals_required": 0,
            "weight_factor": 0.1, "registry": { "version": "2.1", "sha256": "ab12" }, "status": "active",
            "starts_at": "2026-11-22T12:00:00Z", "expires_at": "2026-11-22T18:00:00Z", "history": [],
            "request": { "delivery_id": "d-1", "input": "webhook", "source": "okta", "action": "grant",
                "target": "orders-prod", "principal": "alice@example.com", "role": "alice_tmp",
                "privileges": ["SELECT", "USAGE"], "object": { "on": "schema", "name": "billing" },
                "expires_at": "2026-11-22T18:00:00Z", "requested_by": "bob@example.com",
                "observed_at": "2026-11-22T12:00:00Z" }
        }))
        .unwrap()
    }

    #[test]
    fn a_ticket_event_is_the_ticket_detail_with_what_its_kind_adds() {
        let t = ticket();
        let at = "2026-11-22T13:00:00Z".parse().unwrap();
        // the detail every ticket event has always carried (docs/CONTRACTS.md#audit-events)
        let base = serde_json::json!({
            "registry_version": "2.1", "registry_sha256": "ab12", "category": "read-only", "status": "active",
            "role": "alice_tmp", "principal": "alice@example.com", "privileges": ["SELECT", "USAGE"],
            "object": { "on": "schema", "name": "billing" }, "expires_at": "2026-11-22T18:00:00Z",
            "delivery_id": "d-1",
        });
        let approved = NewEvent::for_ticket(&t, OnTicket::Approved, "carol@example.com", at);
        assert_eq!(
            (approved.kind.as_str(), approved.chain.as_str(), approved.target.as_str(), approved.subject.as_str()),
            ("ticket.approved", "orders-prod", "orders-prod", "tkt-1")
        );
        assert_eq!((approved.actor.as_str(), approved.at, &approved.detail), ("carol@example.com", at, &base));
        let issued = OnTicket::Issued(Issued { sql: vec!["GRANT x".into()], secret: None });
        let issued = NewEvent::for_ticket(&t, issued, "grantwarden", at);
        let mut want = base.clone();
        want["sql"] = serde_json::json!(["GRANT x"]);
        assert_eq!((issued.kind, issued.detail), (EventKind::AccessIssued, want), "no secret: no `secret` field");
        let asked = OnTicket::RevokeRequested(RevokeRequested { reason: "left".into() });
        let asked = NewEvent::for_ticket(&t, asked, "ciso@example.com", at);
        assert_eq!(asked.detail_as::<TicketDetail>(), Ok(TicketDetail::of(&t)));
        assert_eq!(asked.detail_as::<RevokeRequested>().map(|r| r.reason), Ok("left".to_owned()));
    }

    #[test]
    fn a_detail_is_read_only_from_the_kinds_that_carry_it() {
        let alert = AlertRaised { alert: "too many".into(), published: true };
        let event = NewEvent::governance_alert("orders-prod", "scan-1", &alert, "grantwarden:diff", Utc::now());
        assert_eq!(event.detail_as::<AlertRaised>(), Ok(alert));
        let wrong = event.detail_as::<RegistryLoaded>().unwrap_err();
        assert!(matches!(wrong, DetailError::OtherKind { .. }), "{wrong}");
        assert!(wrong.to_string().contains("governance.alert, whose detail is not a RegistryLoaded"), "{wrong}");
        let mut broken = event.clone();
        broken.detail = serde_json::json!({ "published": true });
        let e = broken.detail_as::<AlertRaised>().unwrap_err();
        assert!(matches!(e, DetailError::Unreadable { .. }) && e.to_string().contains("alert"), "{e}");
    }
}
