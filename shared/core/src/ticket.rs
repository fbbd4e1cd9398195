//! Routing a grant request to a decision, and the exception ticket it opens.
//!
//! A request that routes becomes a ticket: `active` when its category needs
//! no approval, else `pending_approval` until enough distinct approvers, none
//! of them the requester, have approved. A request that cannot be routed is
//! `Untagged` (the caller records a high-severity finding; nothing is
//! suppressed); one that breaks a rule of its category is `Refused`.
//!
//! Tickets are keyed by source and delivery id, so the same delivery twice is
//! the same ticket; the same delivery id with a different payload is a
//! conflict. A ticket is never deleted: its history records every step.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::manifest::On;
use crate::model::{ObjectClass, ObjectRef, Privilege, RoleName};
use crate::mysql::catalog::{Account as MysqlAccount, Scope as MysqlScope};
use crate::mysql::privilege::Privilege as MysqlPrivilege;
use crate::policy::{Category, ExcessTtl, PolicyRegistry, RegistryRef, RouteInput};
use crate::request::{Action, GrantRequest};
use crate::snapshot::TargetId;

/// Where a ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// Waiting for approvals.
    PendingApproval,
    /// In force until `expires_at`.
    Active,
    /// Its window ended.
    Expired,
    /// Someone asked to end it before its expiry; the revoke function takes it from here.
    RevokeRequested,
    /// Ended early, or revoked at expiry: the revoking transaction committed.
    Revoked,
    /// Revocation failed for a reason retrying cannot fix (dead-lettered with the reason).
    RevocationFailed,
    /// An approver turned the access request down before anything was issued.
    Denied,
}

impl std::fmt::Display for TicketStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TicketStatus::PendingApproval => "pending_approval",
            TicketStatus::Active => "active",
            TicketStatus::Expired => "expired",
            TicketStatus::RevokeRequested => "revoke_requested",
            TicketStatus::Revoked => "revoked",
            TicketStatus::RevocationFailed => "revocation_failed",
            TicketStatus::Denied => "denied",
        })
    }
}

/// One approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Who approved.
    pub approver: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The approver's identity-provider groups that made them a privileged
    /// approver of this ticket, as their token said when they approved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// What established the approver's identity (absent on approvals recorded
    /// before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vouched_by: Option<crate::identity::Voucher>,
}

/// One step of a ticket's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// requested, approved, activated, expired, revoked.
    pub what: String,
    /// Who caused it.
    pub actor: String,
    /// Anything worth keeping.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// Who made the ticket's role, which decides what revocation removes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleLifecycle {
    /// The role existed before the ticket and outlives it: only the ticket's privileges go.
    #[default]
    Standing,
    /// grantwarden created the role for this ticket alone: at the end it loses LOGIN,
    /// its sessions are ended, what it owns is reassigned and dropped, and the role is dropped.
    ShortLived,
}

/// What ended the ticket's access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The lease item's TTL deletion (DynamoDB stream).
    Lease,
    /// The one-time schedule at the expiry.
    Schedule,
    /// The periodic sweep for anything the other two missed.
    Sweeper,
    /// An explicit request to end it early.
    Request,
    /// An operator running revoke by hand.
    Operator,
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Trigger::Lease => "lease",
            Trigger::Schedule => "schedule",
            Trigger::Sweeper => "sweeper",
            Trigger::Request => "request",
            Trigger::Operator => "operator",
        })
    }
}

/// How a ticket's revocation went, kept on the ticket as evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revocation {
    /// What ran it (the first trigger that got there).
    pub trigger: Trigger,
    /// When the revoking transaction committed, or when it failed for good.
    pub at: DateTime<Utc>,
    /// From the end of the window (expiry, or the revoke request) to `at`, in milliseconds.
    pub latency_ms: i64,
    /// Attempts made by the invocation that finished it.
    pub attempts: u32,
    /// Changes run (REVOKEs, membership removals, role cleanup), not counting
    /// the statements that frame them (BEGIN, SET, locks, COMMIT).
    pub statements: usize,
    /// Privileges left in place because another active ticket still covers them.
    pub kept: usize,
    /// Sessions ended after the commit.
    #[serde(default)]
    pub sessions_terminated: u64,
    /// Why it failed, for `revocation_failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An exception ticket: a documented, time-boxed grant.
///
/// Its fields are read through accessors and change only through its methods
/// (approve, activate, ask to end early, renew, record revoked or failed), so
/// every change leaves its step in the history. A store reads it back with
/// serde, which sees the fields as they are: the wire format is the fields'.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    /// `tkt-` + 20 hex digits of sha256(source, delivery id).
    id: String,
    /// The normalized request.
    request: GrantRequest,
    /// sha256 of the canonical request (with its observed time left out): a
    /// redelivery with the same id but another hash is a conflict.
    request_sha256: String,
    /// Category it was routed to.
    category: String,
    /// Routing tag of the matching route.
    tag: String,
    /// Approvals the category needs.
    approvals_required: u8,
    /// Multiplies the score of the findings it excepts.
    weight_factor: f64,
    /// Registry version in force when it was routed.
    registry: RegistryRef,
    /// Status as last recorded (see [`Ticket::status_at`] for the effective one).
    status: TicketStatus,
    /// Window start.
    starts_at: DateTime<Utc>,
    /// Window end (clamped to max_ttl when the category says so).
    expires_at: DateTime<Utc>,
    /// Approvals received.
    #[serde(default)]
    approvals: Vec<Approval>,
    /// Everything that happened to it.
    history: Vec<TicketEvent>,
    /// Whether the role is grantwarden's own for this ticket (absent in older tickets: standing).
    #[serde(default)]
    role_lifecycle: RoleLifecycle,
    /// When the ticket was asked to end early, the time of that request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoke_requested_at: Option<DateTime<Utc>>,
    /// The outcome of revocation, once it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revocation: Option<Revocation>,
    /// For just-in-time access: the path, scope and masking the issued role gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access: Option<crate::access_policy::AccessGrant>,
    /// Break-glass: routed to a category that needs an open incident, or an access
    /// request on the break-glass path. Counted against the registry's monthly limit.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    break_glass: bool,
}

/// What routing decides about a ticket before its life begins: everything but
/// its state, which [`Ticket::open`] starts.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTicket {
    /// `tkt-` + 20 hex digits of sha256(source, delivery id).
    pub id: String,
    /// The normalized request.
    pub request: GrantRequest,
    /// sha256 of what a redelivery must repeat exactly.
    pub request_sha256: String,
    /// Category it was routed to.
    pub category: String,
    /// Routing tag of the matching route.
    pub tag: String,
    /// Approvals the category needs.
    pub approvals_required: u8,
    /// Multiplies the score of the findings it excepts.
    pub weight_factor: f64,
    /// Registry version in force.
    pub registry: RegistryRef,
    /// Window start.
    pub starts_at: DateTime<Utc>,
    /// Window end.
    pub expires_at: DateTime<Utc>,
    /// The steps of its routing (requested, clamped), in order.
    pub history: Vec<TicketEvent>,
    /// Whether the role is grantwarden's own for this ticket.
    pub role_lifecycle: RoleLifecycle,
    /// For just-in-time access: the path, scope and masking the issued role gets.
    pub access: Option<crate::access_policy::AccessGrant>,
    /// Break-glass: counted against the registry's monthly limit.
    pub break_glass: bool,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Refusal {
    /// Longer than the category allows.
    TtlExceeded {
        /// Requested window.
        requested_seconds: u64,
        /// Category limit.
        max_seconds: u64,
    },
    /// The category needs an incident id.
    IncidentRequired,
    /// The incident named is not open (break-glass only during an open incident).
    IncidentNotOpen {
        /// The incident.
        incident_id: String,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::TtlExceeded { requested_seconds, max_seconds } => {
                write!(f, "requested {requested_seconds}s exceeds the category's max_ttl of {max_seconds}s")
            }
            Refusal::IncidentRequired => f.write_str("the category requires an incident id"),
            Refusal::IncidentNotOpen { incident_id } => {
                write!(f, "incident {incident_id} is not open: break-glass is only granted during an open incident")
            }
        }
    }
}

/// What routing decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// A ticket opens.
    Ticket(Box<Ticket>),
    /// The request breaks a rule of its category.
    Refused {
        /// The category.
        category: String,
        /// Why.
        refusal: Refusal,
        /// Registry in force.
        registry: RegistryRef,
    },
    /// Nothing matched, or the request cannot be routed: fail secure.
    Untagged {
        /// Why.
        reason: String,
        /// Registry in force, if one was loaded.
        registry: Option<RegistryRef>,
    },
}

/// The ticket id of a delivery.
pub fn ticket_id(source: &str, delivery_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(source.as_bytes());
    h.update([0]);
    h.update(delivery_id.as_bytes());
    format!("tkt-{}", &hex::encode(h.finalize())[..20])
}

/// sha256 of what a redelivery must repeat exactly.
pub fn request_sha256(r: &GrantRequest) -> String {
    let mut canonical = r.clone();
    canonical.observed_at = DateTime::<Utc>::UNIX_EPOCH;
    hex::encode(Sha256::digest(serde_json::to_vec(&canonical).expect("a request always serializes")))
}

/// Routes a request at `now`. A category that requires an incident (break-glass)
/// takes one that `incidents` knows to be open: an id alone is not enough.
pub fn route(
    request: &GrantRequest,
    registry: &PolicyRegistry,
    incidents: &dyn crate::access_policy::Incidents,
    now: DateTime<Utc>,
) -> Decision {
    let reg = registry.id.clone();
    if request.action == Action::Revoke {
        return Decision::Untagged { reason: "a revoke is not an exception request".into(), registry: Some(reg) };
    }
    let Some(expires_at) = request.expires_at else {
        return Decision::Untagged { reason: "no expiry: an exception must end".into(), registry: Some(reg) };
    };
    let privileges = request.privileges.clone();
    let input = RouteInput {
        target: request.target.as_str(),
        schema: request.object.route_schema(),
        object_type: request.object.on,
        privileges: &privileges,
        grantee: request.role.as_str(),
        source: &request.source,
    };
    let Some((route, category)) = registry.route(&input) else {
        return Decision::Untagged { reason: "no route of the policy registry matches".into(), registry: Some(reg) };
    };
    if category.incident_required {
        let refusal = match &request.incident_id {
            None => Some(Refusal::IncidentRequired),
            Some(id) if !incidents.is_open(id, now) => Some(Refusal::IncidentNotOpen { incident_id: id.clone() }),
            Some(_) => None,
        };
        if let Some(refusal) = refusal {
            return Decision::Refused { category: category.id.clone(), refusal, registry: reg };
        }
    }
    let starts_at = now;
    let requested = expires_at - starts_at;
    let max = chrono::Duration::from_std(category.max_ttl).unwrap_or(chrono::Duration::MAX);
    let mut history = vec![TicketEvent {
        at: now,
        what: "requested".into(),
        actor: request.requested_by.clone(),
        detail: format!("routed by {} to {} under registry {}", route.origin, category.id, reg),
    }];
    let expires_at = if requested > max {
        match category.on_excess_ttl {
            ExcessTtl::Refuse => {
                return Decision::Refused {
                    category: category.id.clone(),
                    refusal: Refusal::TtlExceeded {
                        requested_seconds: requested.num_seconds().max(0) as u64,
                        max_seconds: category.max_ttl.as_secs(),
                    },
                    registry: reg,
                };
            }
            ExcessTtl::Clamp => {
                history.push(TicketEvent {
                    at: now,
                    what: "clamped".into(),
                    actor: "grantwarden".into(),
                    detail: format!("expiry {} shortened to the category's max_ttl", expires_at.to_rfc3339()),
                });
                starts_at + max
            }
        }
    } else {
        expires_at
    };
    let ticket = Ticket::open(
        NewTicket {
            id: ticket_id(&request.source, &request.delivery_id),
            request_sha256: request_sha256(request),
            request: request.clone(),
            category: category.id.clone(),
            tag: route.tag.clone(),
            approvals_required: category.approvals,
            weight_factor: category.weight_factor,
            registry: reg,
            starts_at,
            expires_at,
            history,
            role_lifecycle: RoleLifecycle::Standing,
            access: None,
            break_glass: category.incident_required,
        },
        now,
    );
    Decision::Ticket(Box::new(ticket))
}

/// Why an approval did not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    /// Requesters cannot approve their own access.
    #[error("{0} requested this access and cannot approve it")]
    Requester(String),
    /// Each approver counts once.
    #[error("{0} has already approved this ticket")]
    Duplicate(String),
    /// Only pending tickets take approvals.
    #[error("ticket is {0}, not pending approval")]
    NotPending(TicketStatus),
    /// One of two approvals needs a recent sign-in.
    #[error("one of two approvals: {0}")]
    SignIn(crate::identity::IdentityRefusal),
    /// Only an access request is denied: a grant exception's grant is in
    /// place already, so it is ended (revoked), not denied.
    #[error("ticket {0} excepts a grant made already: end it rather than deny it")]
    NotAnAccessRequest(String),
}

impl Ticket {
    /// Opens a routed ticket: pending approval, and active at once when its
    /// category needs none.
    pub fn open(new: NewTicket, now: DateTime<Utc>) -> Ticket {
        let mut ticket = Ticket {
            id: new.id,
            request: new.request,
            request_sha256: new.request_sha256,
            category: new.category,
            tag: new.tag,
            approvals_required: new.approvals_required,
            weight_factor: new.weight_factor,
            registry: new.registry,
            status: TicketStatus::PendingApproval,
            starts_at: new.starts_at,
            expires_at: new.expires_at,
            approvals: Vec::new(),
            history: new.history,
            role_lifecycle: new.role_lifecycle,
            revoke_requested_at: None,
            revocation: None,
            access: new.access,
            break_glass: new.break_glass,
        };
        ticket.activate_if_approved(now);
        ticket
    }

    /// `tkt-` + 20 hex digits of sha256(source, delivery id).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The normalized request.
    pub fn request(&self) -> &GrantRequest {
        &self.request
    }

    /// sha256 of the canonical request: a redelivery with another hash is a conflict.
    pub fn request_sha256(&self) -> &str {
        &self.request_sha256
    }

    /// The category it was routed to.
    pub fn category(&self) -> &str {
        &self.category
    }

    /// The routing tag of the matching route.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Approvals the category needs.
    pub fn approvals_required(&self) -> u8 {
        self.approvals_required
    }

    /// Multiplies the score of the findings it excepts.
    pub fn weight_factor(&self) -> f64 {
        self.weight_factor
    }

    /// The registry version in force when it was routed.
    pub fn registry(&self) -> &RegistryRef {
        &self.registry
    }

    /// The status as last recorded (see [`Ticket::status_at`] for the effective one).
    pub fn status(&self) -> TicketStatus {
        self.status
    }

    /// Window start.
    pub fn starts_at(&self) -> DateTime<Utc> {
        self.starts_at
    }

    /// Window end.
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
    }

    /// Approvals received.
    pub fn approvals(&self) -> &[Approval] {
        &self.approvals
    }

    /// Everything that happened to it, in order.
    pub fn history(&self) -> &[TicketEvent] {
        &self.history
    }

    /// Whether the role is grantwarden's own for this ticket.
    pub fn role_lifecycle(&self) -> RoleLifecycle {
        self.role_lifecycle
    }

    /// When the ticket was asked to end early.
    pub fn revoke_requested_at(&self) -> Option<DateTime<Utc>> {
        self.revoke_requested_at
    }

    /// The outcome of revocation, once it ran.
    pub fn revocation(&self) -> Option<&Revocation> {
        self.revocation.as_ref()
    }

    /// For just-in-time access: the path, scope and masking the issued role gets.
    pub fn access(&self) -> Option<&crate::access_policy::AccessGrant> {
        self.access.as_ref()
    }

    /// Break-glass: counted against the registry's monthly limit.
    pub fn break_glass(&self) -> bool {
        self.break_glass
    }

    /// The status at `now`: an active ticket past its window is expired.
    pub fn status_at(&self, now: DateTime<Utc>) -> TicketStatus {
        match self.status {
            TicketStatus::Active | TicketStatus::PendingApproval if now >= self.expires_at => TicketStatus::Expired,
            TicketStatus::PendingApproval if self.pending_expired(now) => TicketStatus::Expired,
            s => s,
        }
    }

    /// Whether an access request still waiting for approvals at `now` is past
    /// its `pending_until`: nothing was issued, and it is to end unissued.
    pub fn pending_expired(&self, now: DateTime<Utc>) -> bool {
        self.status == TicketStatus::PendingApproval
            && self.access.as_ref().is_some_and(|a| now >= a.pending_until.unwrap_or(self.expires_at))
    }

    /// Ends an access request that was not approved in time: `expired`, with
    /// the reason in its history. False when it is not [`Ticket::pending_expired`].
    pub fn expire_pending(&mut self, now: DateTime<Utc>) -> bool {
        if !self.pending_expired(now) {
            return false;
        }
        let approvals = self.approvals.len();
        self.status = TicketStatus::Expired;
        self.history.push(TicketEvent {
            at: now,
            what: "expired".into(),
            actor: "grantwarden".into(),
            detail: format!(
                "not approved in time: {approvals} of {} approval(s) by the registry's pending_ttl",
                self.approvals_required
            ),
        });
        true
    }

    /// Whether the ticket's window has ended at `now` by any road (expiry, revocation,
    /// an early-end request, failed revocation): a grant it covered and still held is a TTL breach.
    pub fn has_ended_at(&self, now: DateTime<Utc>) -> bool {
        !matches!(self.status_at(now), TicketStatus::Active | TicketStatus::PendingApproval)
    }

    /// Whether the ticket was in force at `now`.
    pub fn is_active_at(&self, now: DateTime<Utc>) -> bool {
        self.status_at(now) == TicketStatus::Active && now >= self.starts_at
    }

    /// Records an approval; activates the ticket when enough distinct approvers agree.
    ///
    /// The requester never approves their own ticket, each person counts once,
    /// and an approval that is one of two needs a sign-in of the last
    /// [`crate::identity::RECENT_SIGN_IN`].
    pub fn approve(&mut self, approver: &crate::identity::Actor, now: DateTime<Utc>) -> Result<(), ApprovalError> {
        let status = self.status_at(now);
        if status != TicketStatus::PendingApproval {
            return Err(ApprovalError::NotPending(status));
        }
        let id = approver.id.as_str();
        if self.is_requester(id) {
            return Err(ApprovalError::Requester(id.to_owned()));
        }
        if self.approvals.iter().any(|a| a.approver.eq_ignore_ascii_case(id)) {
            return Err(ApprovalError::Duplicate(id.to_owned()));
        }
        if self.approvals_required >= 2 {
            approver.recent_sign_in(now).map_err(ApprovalError::SignIn)?;
        }
        let groups = match &self.access {
            Some(a) => a.privileged_groups.iter().filter(|g| approver.groups.contains(*g)).cloned().collect(),
            None => Vec::new(),
        };
        self.approvals.push(Approval {
            approver: id.to_owned(),
            at: now,
            groups,
            vouched_by: Some(approver.vouched_by.clone()),
        });
        self.history.push(TicketEvent {
            at: now,
            what: "approved".into(),
            actor: id.to_owned(),
            detail: String::new(),
        });
        self.activate_if_approved(now);
        Ok(())
    }

    /// Turns a pending access request down: `denied`, nothing issued, with
    /// `reason` in its history. The requester withdraws their own request by
    /// ending it instead; anyone else who could approve it may deny it.
    pub fn deny(&mut self, by: &crate::identity::Actor, now: DateTime<Utc>, reason: &str) -> Result<(), ApprovalError> {
        let status = self.status_at(now);
        if status != TicketStatus::PendingApproval {
            return Err(ApprovalError::NotPending(status));
        }
        if self.access.is_none() {
            return Err(ApprovalError::NotAnAccessRequest(self.id.clone()));
        }
        let id = by.id.as_str();
        if self.is_requester(id) {
            return Err(ApprovalError::Requester(id.to_owned()));
        }
        self.status = TicketStatus::Denied;
        self.history.push(TicketEvent {
            at: now,
            what: "denied".into(),
            actor: id.to_owned(),
            detail: reason.to_owned(),
        });
        Ok(())
    }

    /// Whether `person` asked for the ticket or is the one it is for (case-insensitive):
    /// never its approver.
    pub fn is_requester(&self, person: &str) -> bool {
        person.eq_ignore_ascii_case(&self.request.requested_by) || person.eq_ignore_ascii_case(&self.request.principal)
    }

    /// Whether `person` may approve the ticket at `now` (what [`Ticket::approve`]
    /// checks, but the sign-in's age): pending, not theirs, not approved by them yet.
    pub fn may_approve(&self, person: &str, now: DateTime<Utc>) -> bool {
        self.status_at(now) == TicketStatus::PendingApproval
            && !self.is_requester(person)
            && !self.approvals.iter().any(|a| a.approver.eq_ignore_ascii_case(person))
    }

    /// Whether the approvals received satisfy the ticket: enough distinct approvers and,
    /// for a dual approval of access, at least one privileged (security or manager) approver.
    pub fn approvals_satisfied(&self) -> bool {
        let enough = self.approvals.len() >= usize::from(self.approvals_required);
        let privileged = match &self.access {
            Some(a) if !a.privileged_approvers.is_empty() || !a.privileged_groups.is_empty() => self
                .approvals
                .iter()
                .any(|x| a.privileged_approvers.contains(&x.approver.to_ascii_lowercase()) || !x.groups.is_empty()),
            _ => true,
        };
        enough && privileged
    }

    fn activate_if_approved(&mut self, now: DateTime<Utc>) {
        if self.status == TicketStatus::PendingApproval && self.approvals_satisfied() {
            self.status = TicketStatus::Active;
            let detail = match (self.approvals_required, self.access.as_ref().filter(|a| a.review_required)) {
                // break-glass access: on during an open incident, looked at afterwards
                (0, Some(glass)) => format!(
                    "break-glass during open incident {}; review required",
                    glass.incident_id.as_deref().unwrap_or("")
                ),
                (0, None) => "no approval required".to_owned(),
                (n, _) => format!("{n} approval(s) received"),
            };
            self.history.push(TicketEvent { at: now, what: "activated".into(), actor: "grantwarden".into(), detail });
        }
    }

    /// Marks the ticket revoked, for tests of what follows a revocation. The real
    /// path is [`Ticket::record_revoked`], by a conditional update after the commit.
    #[cfg(test)]
    pub(crate) fn revoke(&mut self, actor: &str, now: DateTime<Utc>, why: &str) {
        if self.status != TicketStatus::Revoked {
            self.status = TicketStatus::Revoked;
            self.history.push(TicketEvent {
                at: now,
                what: "revoked".into(),
                actor: actor.to_owned(),
                detail: why.to_owned(),
            });
        }
    }

    /// Asks for the ticket to end before its expiry. False when it has already ended
    /// (revoked, or failed revocation: that one needs an operator, not a second request).
    pub fn request_revoke(&mut self, actor: &str, now: DateTime<Utc>, why: &str) -> bool {
        if !matches!(self.status, TicketStatus::Active | TicketStatus::PendingApproval) {
            return false;
        }
        self.status = TicketStatus::RevokeRequested;
        self.revoke_requested_at = Some(now);
        self.history.push(TicketEvent {
            at: now,
            what: "revoke_requested".into(),
            actor: actor.to_owned(),
            detail: why.to_owned(),
        });
        true
    }

    /// Moves the window's end to `until` (a break-glass renewal; the caller checked
    /// that it may), recorded as `renewed` with `why`.
    pub fn renew(&mut self, until: DateTime<Utc>, now: DateTime<Utc>, why: String) {
        self.expires_at = until;
        self.request.expires_at = Some(until);
        self.history.push(TicketEvent { at: now, what: "renewed".into(), actor: "grantwarden".into(), detail: why });
    }

    /// Records that the credential of an access ticket was issued (`issued`, with `detail`:
    /// never the password).
    pub fn record_issued(&mut self, detail: String, now: DateTime<Utc>) {
        self.history.push(TicketEvent { at: now, what: "issued".into(), actor: "grantwarden".into(), detail });
    }

    /// Records that the credential delivered into its secret was shown to `person` (once).
    pub fn record_shown(&mut self, person: &str, now: DateTime<Utc>) {
        self.history.push(TicketEvent {
            at: now,
            what: "credential_shown".into(),
            actor: person.to_owned(),
            detail: String::new(),
        });
    }

    /// Whether the delivered credential was shown already.
    pub fn credential_shown(&self) -> bool {
        self.history.iter().any(|e| e.what == "credential_shown")
    }

    /// When its access had to end: the expiry, or an earlier revoke request.
    pub fn ends_at(&self) -> DateTime<Utc> {
        self.revoke_requested_at.map_or(self.expires_at, |r| r.min(self.expires_at))
    }

    /// Whether revocation has to run now: the window ended (or an early end was
    /// asked) and nothing has revoked it yet. A pending ticket counts too: its grant
    /// may have been made before approval, and it must not outlive the window.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        match self.status {
            // an access request never approved issued nothing: it expires, it is not revoked
            TicketStatus::PendingApproval if self.access.is_some() => false,
            TicketStatus::Active | TicketStatus::PendingApproval => now >= self.expires_at,
            TicketStatus::RevokeRequested => true,
            TicketStatus::Expired | TicketStatus::Revoked | TicketStatus::RevocationFailed | TicketStatus::Denied => {
                false
            }
        }
    }

    /// Records a committed revocation: status `revoked`, with its latency and trigger.
    pub fn record_revoked(&mut self, revocation: Revocation, actor: &str) {
        let detail = format!(
            "{} statement(s) committed by the {} trigger, {} kept, {} ms after the window ended",
            revocation.statements, revocation.trigger, revocation.kept, revocation.latency_ms
        );
        self.status = TicketStatus::Revoked;
        self.history.push(TicketEvent { at: revocation.at, what: "revoked".into(), actor: actor.to_owned(), detail });
        self.revocation = Some(revocation);
    }

    /// Records a revocation that cannot succeed without a person: `revocation_failed`.
    pub fn record_revocation_failed(&mut self, revocation: Revocation, actor: &str) {
        let detail = revocation.error.clone().unwrap_or_default();
        self.status = TicketStatus::RevocationFailed;
        self.history.push(TicketEvent {
            at: revocation.at,
            what: "revocation_failed".into(),
            actor: actor.to_owned(),
            detail,
        });
        self.revocation = Some(revocation);
    }

    /// Whether this ticket's request covers `privilege` held by `role` on `object` in `target`.
    /// A request on a schema covers the schema's own privileges on it and table privileges
    /// on its tables and their columns; a request on a table covers its columns too.
    pub fn covers(&self, target: &TargetId, role: &RoleName, privilege: Privilege, object: &ObjectRef) -> bool {
        let r = &self.request;
        if &r.target != target || !r.privileges.contains(&privilege) {
            return false;
        }
        // an access ticket's views: the credential reads them, their owner reads the scope for them
        if let Some(access) = &self.access {
            let in_views = match object.class {
                ObjectClass::Schema => object.name == access.views_schema,
                _ => object.schema.as_deref() == Some(access.views_schema.as_str()),
            };
            if &r.role == role && in_views {
                return true;
            }
            // a cheap test first: this runs for every grant a scan finds held and not declared
            if role.as_str().ends_with("_views") && *role == crate::access_policy::views_owner_for(&r.role) {
                return self.covers(target, &r.role, privilege, object);
            }
        }
        if &r.role != role {
            return false;
        }
        let o = &r.object;
        let same_schema = |s: &Option<String>| object.schema.is_some() && object.schema.as_deref() == s.as_deref();
        let same_relation =
            object.schema.as_deref() == o.schema.as_deref() && o.name.as_deref() == Some(object.name.as_str());
        match o.on {
            On::Database => object.class == ObjectClass::Database && o.name.as_ref().is_none_or(|n| *n == object.name),
            On::Schema => match object.class {
                ObjectClass::Schema => o.name.as_deref() == Some(object.name.as_str()),
                ObjectClass::Table | ObjectClass::Column => object.schema.as_deref() == o.name.as_deref(),
                _ => false,
            },
            On::Table | On::Sequence => {
                matches!(object.class, ObjectClass::Table | ObjectClass::Sequence | ObjectClass::Column)
                    && same_relation
            }
            On::Column => {
                object.class == ObjectClass::Column
                    && same_relation
                    && object.column.as_ref().is_some_and(|c| o.columns.iter().any(|k| k == c))
            }
            On::Function => {
                // the request's `name(argtypes)`, as written (normalize checked it parses)
                let wanted = o.name.as_deref().and_then(crate::names::parse_function);
                object.class == ObjectClass::Function
                    && object.schema.as_deref() == o.schema.as_deref()
                    && wanted.is_some_and(|f| {
                        f.schema.is_none() && object.name == f.name && object.args.as_deref() == Some(f.args.as_str())
                    })
            }
            On::AllTablesInSchema => {
                matches!(object.class, ObjectClass::Table | ObjectClass::Column) && same_schema(&o.schema)
            }
            On::AllSequencesInSchema => object.class == ObjectClass::Sequence && same_schema(&o.schema),
            On::AllFunctionsInSchema => object.class == ObjectClass::Function && same_schema(&o.schema),
            _ => false,
        }
    }

    /// The MySQL or MariaDB account the request names ([`MysqlAccount::parse`]:
    /// `user@host`, or `'user'@'host'` as a report writes it).
    pub fn mysql_account(&self) -> MysqlAccount {
        MysqlAccount::parse(self.request.role.as_str())
    }

    /// Whether this ticket covers `privilege` held by the MySQL or MariaDB
    /// `account` at `scope` of `target`. The request names the account as
    /// its role ([`Ticket::mysql_account`]), the privilege by its keyword
    /// (SELECT, INSERT, UPDATE, DELETE, REFERENCES, TRIGGER, EXECUTE, CREATE:
    /// the privileges both engines name alike), and the scope as its object,
    /// a MySQL database being a schema: `database` or `schema` NAME covers
    /// that database's own privileges (`ON name.*`, never a pattern), and
    /// `schema` also its tables, columns and routines; `table` (`db.table`)
    /// the table and its columns; `column` those columns; `function`
    /// (`db.name()`) that routine; `all_tables_in_schema` every table and
    /// column of the database. A global privilege is never covered.
    pub fn covers_mysql(
        &self,
        target: &TargetId,
        account: &MysqlAccount,
        privilege: &MysqlPrivilege,
        scope: &MysqlScope,
    ) -> bool {
        let r = &self.request;
        if &r.target != target
            || !r.privileges.iter().any(|p| p.keyword().eq_ignore_ascii_case(privilege.keyword()))
            || &self.mysql_account() != account
        {
            return false;
        }
        let o = &r.object;
        let name = o.name.as_deref();
        let in_database = |db: &str| match o.on {
            On::Schema => name == Some(db),
            On::AllTablesInSchema => o.schema.as_deref() == Some(db),
            _ => false,
        };
        let same_table = |db: &str, table: &str| o.schema.as_deref() == Some(db) && name == Some(table);
        match scope {
            MysqlScope::Global => false,
            MysqlScope::Database { database, pattern } => {
                !pattern && matches!(o.on, On::Database | On::Schema) && name == Some(database.as_str())
            }
            MysqlScope::Table { database, table } => {
                (o.on == On::Table && same_table(database, table)) || in_database(database)
            }
            MysqlScope::Column { database, table, column } => {
                (o.on == On::Table && same_table(database, table))
                    || (o.on == On::Column && same_table(database, table) && o.columns.iter().any(|c| c == column))
                    || in_database(database)
            }
            MysqlScope::Routine { database, name: routine, .. } => {
                let wanted = name.and_then(crate::names::parse_function);
                (o.on == On::Function
                    && o.schema.as_deref() == Some(database.as_str())
                    && wanted.is_some_and(|f| f.schema.is_none() && f.name == *routine && f.args.is_empty()))
                    || (o.on == On::Schema && name == Some(database.as_str()))
            }
        }
    }

    /// The category's data, for scoring.
    pub fn category_of<'r>(&self, registry: &'r PolicyRegistry) -> Option<&'r Category> {
        registry.categories.get(&self.category)
    }
}

/// For tests of other modules: a state set directly that the methods would
/// reach only through a longer story (an edited access grant, a status).
#[cfg(test)]
impl Ticket {
    pub(crate) fn set_status(&mut self, status: TicketStatus) {
        self.status = status;
    }

    pub(crate) fn set_role_lifecycle(&mut self, lifecycle: RoleLifecycle) {
        self.role_lifecycle = lifecycle;
    }

    pub(crate) fn set_approvals_required(&mut self, n: u8) {
        self.approvals_required = n;
    }

    pub(crate) fn set_break_glass(&mut self, break_glass: bool) {
        self.break_glass = break_glass;
    }

    pub(crate) fn set_access(&mut self, access: Option<crate::access_policy::AccessGrant>) {
        self.access = access;
    }

    pub(crate) fn access_mut(&mut self) -> Option<&mut crate::access_policy::AccessGrant> {
        self.access.as_mut()
    }

    pub(crate) fn request_mut(&mut self) -> &mut GrantRequest {
        &mut self.request
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{InputKind, RequestObject};
    use proptest::prelude::*;

    const REGISTRY: &str = r#"
version: "2.1"
owner: security@example.com
approver: ciso@example.com
categories:
  hipaa-phi:   { framework: HIPAA, max_ttl: 4h,  approvals: 2, weight_factor: 0.5 }
  soc2-ops:    { framework: SOC2,  max_ttl: 24h, approvals: 1, weight_factor: 0.25, on_excess_ttl: clamp }
  read-only:   { framework: SOC2,  max_ttl: 8h,  approvals: 0, weight_factor: 0.1 }
  break-glass: { framework: SOC2,  max_ttl: 30m, approvals: 0, incident_required: true, weight_factor: 1.0 }
routes:
  - { match: { schema: "phi_*" }, category: hipaa-phi }
  - { match: { source: "pagerduty" }, category: break-glass }
  - { match: { privileges: [SELECT, USAGE] }, category: read-only }
  - { match: { target: "orders-*" }, category: soc2-ops }
"#;

    fn registry() -> PolicyRegistry {
        PolicyRegistry::load(&[("r.yaml".into(), REGISTRY.into())]).unwrap()
    }

    fn now() -> DateTime<Utc> {
        "2026-11-22T12:00:00Z".parse().unwrap()
    }

    fn request(schema: &str, privileges: &[Privilege], hours: i64) -> GrantRequest {
        GrantRequest {
            delivery_id: "d-1".into(),
            input: InputKind::Webhook,
            source: "okta".into(),
            action: Action::Grant,
            target: TargetId::new("orders-prod").unwrap(),
            principal: "alice@example.com".into(),
            role: RoleName::new("alice_tmp").unwrap(),
            privileges: privileges.to_vec(),
            object: RequestObject { on: On::Schema, schema: None, name: Some(schema.into()), columns: vec![] },
            expires_at: Some(now() + chrono::Duration::hours(hours)),
            justification: Some("INC-1".into()),
            requested_by: "alice@example.com".into(),
            incident_id: None,
            observed_at: now(),
        }
    }

    /// The incidents the incident webhook reported open.
    struct Open(&'static [&'static str]);
    impl crate::access_policy::Incidents for Open {
        fn is_open(&self, id: &str, _: DateTime<Utc>) -> bool {
            self.0.contains(&id)
        }
    }
    const OPEN: Open = Open(&["INC-9"]);

    fn ticket(d: Decision) -> Ticket {
        match d {
            Decision::Ticket(t) => *t,
            other => panic!("expected a ticket, got {other:?}"),
        }
    }

    #[test]
    fn routing_rules_table() {
        let r = registry();
        struct Case {
            name: &'static str,
            req: GrantRequest,
            want: &'static str,
        }
        let mut unrouted = request("billing", &[Privilege::Insert], 2);
        unrouted.target = TargetId::new("crm-prod").unwrap();
        let mut no_expiry = request("billing", &[Privilege::Select], 2);
        no_expiry.expires_at = None;
        let mut glass = request("billing", &[Privilege::Delete], 0);
        glass.source = "pagerduty".into();
        glass.expires_at = Some(now() + chrono::Duration::minutes(20));
        let mut glass_with_incident = glass.clone();
        glass_with_incident.incident_id = Some("INC-9".into());
        let mut glass_with_closed_incident = glass.clone();
        glass_with_closed_incident.incident_id = Some("INC-1".into());
        let mut revoke = request("billing", &[Privilege::Select], 2);
        revoke.action = Action::Revoke;
        let cases = vec![
            Case {
                name: "phi schema needs two approvals",
                req: request("phi_claims", &[Privilege::Select], 2),
                want: "ticket hipaa-phi pending_approval",
            },
            Case {
                name: "read-only is auto-approved",
                req: request("billing", &[Privilege::Select, Privilege::Usage], 2),
                want: "ticket read-only active",
            },
            Case {
                name: "write goes to ops with one approval",
                req: request("billing", &[Privilege::Insert], 2),
                want: "ticket soc2-ops pending_approval",
            },
            Case {
                name: "too long for hipaa is refused",
                req: request("phi_claims", &[Privilege::Select], 5),
                want: "refused hipaa-phi ttl",
            },
            Case {
                name: "too long for ops is clamped",
                req: request("billing", &[Privilege::Insert], 48),
                want: "ticket soc2-ops pending_approval clamped",
            },
            Case { name: "no route is untagged", req: unrouted, want: "untagged" },
            Case { name: "no expiry is untagged", req: no_expiry, want: "untagged" },
            Case { name: "break-glass without incident is refused", req: glass, want: "refused break-glass incident" },
            Case {
                name: "break-glass with an open incident is active",
                req: glass_with_incident,
                want: "ticket break-glass active",
            },
            Case {
                name: "break-glass naming an incident that is not open is refused",
                req: glass_with_closed_incident,
                want: "refused break-glass incident",
            },
            Case { name: "a revoke is not an exception", req: revoke, want: "untagged" },
        ];
        for c in cases {
            let got = match route(&c.req, &r, &OPEN, now()) {
                Decision::Ticket(t) => {
                    let clamped = if t.history.iter().any(|e| e.what == "clamped") { " clamped" } else { "" };
                    format!("ticket {} {}{clamped}", t.category, t.status)
                }
                Decision::Refused { category, refusal: Refusal::TtlExceeded { .. }, .. } => {
                    format!("refused {category} ttl")
                }
                Decision::Refused {
                    category,
                    refusal: Refusal::IncidentRequired | Refusal::IncidentNotOpen { .. },
                    ..
                } => {
                    format!("refused {category} incident")
                }
                Decision::Untagged { .. } => "untagged".into(),
            };
            assert_eq!(got, c.want, "{}", c.name);
        }
    }

    #[test]
    fn clamping_shortens_to_max_ttl() {
        let t = ticket(route(&request("billing", &[Privilege::Insert], 48), &registry(), &OPEN, now()));
        assert_eq!(t.expires_at, now() + chrono::Duration::hours(24));
    }

    #[test]
    fn approvals_must_be_distinct_and_not_the_requester() {
        let mut t = ticket(route(&request("phi_claims", &[Privilege::Select], 2), &registry(), &OPEN, now()));
        assert_eq!(
            t.approve(&crate::identity::Actor::operator("alice@example.com"), now()),
            Err(ApprovalError::Requester("alice@example.com".into()))
        );
        t.approve(&crate::identity::Actor::operator("bob@example.com"), now()).unwrap();
        assert_eq!(
            t.approve(&crate::identity::Actor::operator("BOB@example.com"), now()),
            Err(ApprovalError::Duplicate("bob@example.com".into()))
        );
        assert_eq!(t.status, TicketStatus::PendingApproval);
        t.approve(&crate::identity::Actor::operator("carol@example.com"), now()).unwrap();
        assert_eq!(t.status, TicketStatus::Active);
        let whats: Vec<&str> = t.history.iter().map(|e| e.what.as_str()).collect();
        assert_eq!(whats, ["requested", "approved", "approved", "activated"]);
        assert!(matches!(
            t.approve(&crate::identity::Actor::operator("dave@example.com"), now()),
            Err(ApprovalError::NotPending(TicketStatus::Active))
        ));
    }

    #[test]
    fn tickets_expire_by_time_and_keep_their_history() {
        let t = ticket(route(&request("billing", &[Privilege::Select], 2), &registry(), &OPEN, now()));
        assert!(t.is_active_at(now() + chrono::Duration::hours(1)));
        assert_eq!(t.status_at(now() + chrono::Duration::hours(2)), TicketStatus::Expired);
        let mut revoked = t.clone();
        revoked.revoke("ciso@example.com", now(), "left the team");
        assert_eq!(revoked.status_at(now()), TicketStatus::Revoked);
        assert!(!revoked.is_active_at(now()));
        assert_eq!(revoked.history.last().unwrap().what, "revoked");
    }

    #[test]
    fn the_same_delivery_is_the_same_ticket_and_a_changed_payload_is_detectable() {
        let a = request("billing", &[Privilege::Select], 2);
        let mut later = a.clone();
        later.observed_at = now() + chrono::Duration::minutes(5);
        assert_eq!(ticket_id(&a.source, &a.delivery_id), ticket_id(&later.source, &later.delivery_id));
        assert_eq!(request_sha256(&a), request_sha256(&later), "a redelivery later is the same request");
        let mut changed = a.clone();
        changed.privileges = vec![Privilege::Delete];
        assert_ne!(request_sha256(&a), request_sha256(&changed));
    }

    #[test]
    fn coverage_follows_the_requested_object() {
        let t =
            ticket(route(&request("billing", &[Privilege::Select, Privilege::Usage], 2), &registry(), &OPEN, now()));
        let target = TargetId::new("orders-prod").unwrap();
        let alice = RoleName::new("alice_tmp").unwrap();
        let table = ObjectRef::in_schema(ObjectClass::Table, "billing", "invoices");
        assert!(t.covers(&target, &alice, Privilege::Select, &table), "schema request covers its tables");
        assert!(t.covers(&target, &alice, Privilege::Usage, &ObjectRef::schema("billing")));
        assert!(t.covers(&target, &alice, Privilege::Select, &ObjectRef::column("billing", "invoices", "total")));
        assert!(!t.covers(&target, &alice, Privilege::Insert, &table), "not a requested privilege");
        assert!(!t.covers(&target, &alice, Privilege::Select, &ObjectRef::in_schema(ObjectClass::Table, "hr", "pay")));
        assert!(!t.covers(&target, &RoleName::new("bob").unwrap(), Privilege::Select, &table), "another role");
        assert!(!t.covers(&TargetId::new("crm").unwrap(), &alice, Privilege::Select, &table), "another target");
    }

    proptest! {
        /// Routing depends only on the request, registry and time; and nothing
        /// becomes active without the approvals its category demands.
        #[test]
        fn routing_is_deterministic_and_never_skips_approvals(
            schema in "(phi_|)[a-z]{1,6}", p in 0usize..4, hours in 1i64..60, src in prop::sample::select(vec!["okta", "pagerduty"]),
            incident in proptest::option::of(prop::sample::select(vec!["INC-9", "INC-1", "ABC-42"])),
        ) {
            let privs = [Privilege::Select, Privilege::Usage, Privilege::Insert, Privilege::Delete];
            let mut req = request(&schema, &privs[..=p], hours);
            req.source = src.into();
            req.incident_id = incident.map(Into::into);
            let reg = registry();
            let a = route(&req, &reg, &OPEN, now());
            let b = route(&req, &reg, &OPEN, now());
            prop_assert_eq!(&a, &b);
            if let Decision::Ticket(t) = a {
                let cat = &reg.categories[&t.category];
                prop_assert_eq!(t.status == TicketStatus::Active, cat.approvals == 0);
                prop_assert!(t.expires_at - t.starts_at <= chrono::Duration::from_std(cat.max_ttl).unwrap());
                prop_assert!(!cat.incident_required || t.request.incident_id.as_deref() == Some("INC-9"));
            }
        }
    }
}
