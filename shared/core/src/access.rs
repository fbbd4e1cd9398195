//! Just-in-time access: a person asks for a path (read-only, migration,
//! break-glass) on a scope (a database, a schema, tables, or rows of one
//! table), the registry's access policy decides the approvals, and activation
//! ([`crate::activation`]) gives them a role of their own that reaches exactly
//! that scope, for the window and no longer (revocation drops it, see
//! [`crate::revoke`]).
//!
//! The policy and scope types it applies are in [`crate::access_policy`];
//! renewing a break-glass ticket as a person asks it is
//! [`crate::ticket_flow::renew_break_glass`], which applies [`renew`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::access_policy::{AccessGrant, AccessPath, AccessScope, Approvals, ApprovedScript, Incidents, describe};
use crate::audit::event::{AccessTurnedDown, Issued, OnTicket};
use crate::audit::{AuditJournal, NewEvent};
use crate::error::{FieldError, StoreError};
use crate::identity::{Actor, IdentityRefusal};
use crate::manifest::On;
use crate::model::{Privilege, RoleName};
use crate::policy::PolicyRegistry;
use crate::request::{AccessRequest, Action, GrantRequest, InputKind, RequestObject};
use crate::store::{PutOutcome, TicketStore, Versioned};
use crate::ticket::{Decision, NewTicket, Refusal, RoleLifecycle, Ticket, TicketEvent, TicketStatus};

/// The role issued for a ticket: `gw_` + the person's name (letters and digits,
/// at most 24) + `_` + 10 hex digits of the ticket id. Unique per ticket, a
/// valid unquoted identifier, within PostgreSQL's 63 bytes.
pub fn role_for(identity: &str, ticket_id: &str) -> RoleName {
    let person: String = identity
        .split('@')
        .next()
        .unwrap_or_default()
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .filter(|c| c.is_ascii_alphanumeric())
        .take(24)
        .collect();
    let digest = hex::encode(Sha256::digest(ticket_id.as_bytes()));
    RoleName::new(format!("gw_{person}_{}", &digest[..10])).expect("never empty")
}

/// A fresh schema name for a ticket's views: `gw_access_` and 16 random hex
/// digits. Not derived from the ticket id (which the requester knows): a role
/// that could create it beforehand would own the schema the views go in.
/// Creating it fails when it exists all the same ([`crate::change::Change::CreateSchema`]).
pub fn new_views_schema() -> String {
    let bytes: [u8; 8] = rand::random();
    format!("gw_access_{}", hex::encode(bytes))
}

/// Parses a request body (JSON) and checks it; errors name the field.
pub fn parse_request(body: &[u8]) -> Result<AccessRequest, FieldError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let r: AccessRequest = serde_path_to_error::deserialize(&mut de).map_err(FieldError::from_json)?;
    let duration = humantime::parse_duration(&r.duration)
        .map_err(|e| FieldError::new("duration", format!("{:?}: {e}", r.duration)))?;
    if duration.is_zero() {
        return Err(FieldError::new("duration", "must be longer than zero"));
    }
    if r.identity.chars().any(char::is_control) {
        return Err(FieldError::new("identity", "an identity without control characters"));
    }
    if r.justification.trim().is_empty() {
        return Err(FieldError::new("justification", "say why"));
    }
    if let AccessScope::Tables { tables, .. } = &r.scope
        && tables.is_empty()
    {
        return Err(FieldError::new("scope.tables", "name at least one table"));
    }
    if let Some(script) = &r.script {
        approved_script(script)?;
    }
    Ok(r)
}

/// The largest script a request may carry; a larger one is named by its sha256.
pub const MAX_SCRIPT_BYTES: usize = 256 * 1024;

/// The script a request names, checked: its statements (none when only its
/// sha256 is given) and its sha256. Errors name the field.
pub fn approved_script(script: &crate::request::ScriptRef) -> Result<ApprovedScript, FieldError> {
    let statements = match &script.text {
        Some(text) if text.len() > MAX_SCRIPT_BYTES => {
            return Err(FieldError::new(
                "script.text",
                format!("{} bytes, more than {MAX_SCRIPT_BYTES}: give its sha256 instead", text.len()),
            ));
        }
        Some(text) => {
            let statements = crate::statement::split_script(text);
            if statements.is_empty() {
                return Err(FieldError::new("script.text", "holds no statement"));
            }
            statements
        }
        None => Vec::new(),
    };
    let sha256 = match (&script.sha256, statements.is_empty()) {
        (Some(h), _) if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) => {
            return Err(FieldError::new("script.sha256", "64 hexadecimal digits"));
        }
        (Some(h), false) if !h.eq_ignore_ascii_case(&crate::statement::script_sha256(&statements)) => {
            return Err(FieldError::new("script.sha256", "is not the sha256 of script.text"));
        }
        (Some(h), _) => h.to_ascii_lowercase(),
        (None, false) => crate::statement::script_sha256(&statements),
        (None, true) => return Err(FieldError::new("script", "give its text or its sha256")),
    };
    Ok(ApprovedScript { sha256, statements })
}

/// The request's duration (validated by [`parse_request`]).
pub fn duration_of(r: &AccessRequest) -> Duration {
    humantime::parse_duration(&r.duration).unwrap_or_default()
}

/// Routes an access request: the access policy of `registry` decides the
/// approvals and the window; the ticket it opens issues a role of its own
/// (short-lived: revocation drops it) for exactly the scope.
pub fn route_access(
    request: &AccessRequest,
    registry: &PolicyRegistry,
    incidents: &dyn Incidents,
    now: DateTime<Utc>,
) -> Decision {
    let reg = registry.id.clone();
    let Some(policy) = &registry.access else {
        return Decision::Untagged { reason: "the policy registry has no access section".into(), registry: Some(reg) };
    };
    let Some(rule) = policy.paths.get(&request.path) else {
        return Decision::Untagged {
            reason: format!("the access policy offers no {} path", request.path),
            registry: Some(reg),
        };
    };
    let category = format!("access:{}", request.path);
    let refused = |refusal| Decision::Refused { category: category.clone(), refusal, registry: reg.clone() };
    if request.path == AccessPath::BreakGlass {
        match &request.incident_id {
            None => return refused(Refusal::IncidentRequired),
            Some(id) if !incidents.is_open(id, now) => {
                return refused(Refusal::IncidentNotOpen { incident_id: id.clone() });
            }
            Some(_) => {}
        }
    }
    let requested = duration_of(request);
    if requested > rule.max_ttl {
        return refused(Refusal::TtlExceeded {
            requested_seconds: requested.as_secs(),
            max_seconds: rule.max_ttl.as_secs(),
        });
    }
    let approvals = match (rule.approvals, request.path) {
        (Approvals::Auto, AccessPath::ReadOnly) if policy.is_sensitive(&request.scope) => Approvals::Single,
        (a, _) => a,
    };
    let id = crate::ticket::ticket_id("access", &request.id);
    let (privileges, object) = grant_of(request);
    let expires_at = now + chrono::Duration::from_std(requested).unwrap_or(chrono::Duration::MAX);
    let grant_request = GrantRequest {
        delivery_id: request.id.clone(),
        input: InputKind::AccessRequest,
        source: "access".into(),
        action: Action::Grant,
        target: request.target.clone(),
        principal: request.identity.clone(),
        role: role_for(&request.identity, &id),
        privileges,
        object,
        expires_at: Some(expires_at),
        justification: Some(request.justification.clone()),
        requested_by: request.identity.clone(),
        incident_id: request.incident_id.clone(),
        observed_at: now,
    };
    // all of them, not only the scope's: a view in scope may read a masked table elsewhere
    let masking = policy.masking.clone();
    let new = NewTicket {
        id: id.clone(),
        // the request as sent: a redelivery later (a later `now`, so a later expiry) is the same request
        request_sha256: hex::encode(Sha256::digest(serde_json::to_vec(request).expect("a request always serializes"))),
        request: grant_request,
        category: category.clone(),
        tag: format!("access-{}", request.path),
        approvals_required: match approvals {
            Approvals::Auto => 0,
            Approvals::Single => 1,
            Approvals::Dual => 2,
        },
        weight_factor: if request.path == AccessPath::BreakGlass { 1.0 } else { 0.25 },
        registry: reg.clone(),
        starts_at: now,
        expires_at,
        history: vec![TicketEvent {
            at: now,
            what: "requested".into(),
            actor: request.identity.clone(),
            detail: format!(
                "{} access to {} under registry {reg}: {}",
                request.path,
                describe(&request.scope),
                request.justification
            ),
        }],
        role_lifecycle: RoleLifecycle::ShortLived,
        break_glass: request.path == AccessPath::BreakGlass,
        access: Some(AccessGrant {
            path: request.path,
            scope: request.scope.clone(),
            masking,
            views_schema: new_views_schema(),
            sensitive_schemas: policy.sensitive_schemas.iter().map(|m| m.glob().glob().to_owned()).collect(),
            sensitive_tables: policy.sensitive_tables.clone(),
            allow_public_create: policy.allow_public_create.clone(),
            connection_limit: policy.connection_limit,
            session: policy.session.clone(),
            script: request.script.as_ref().and_then(|s| approved_script(s).ok()),
            privileged_approvers: if approvals == Approvals::Dual { policy.privileged_approvers() } else { Vec::new() },
            privileged_groups: if approvals == Approvals::Dual { policy.privileged_groups() } else { Vec::new() },
            review_required: request.path == AccessPath::BreakGlass,
            incident_id: request.incident_id.clone(),
            // waiting for approvals has its own limit, within the window
            pending_until: (approvals != Approvals::Auto)
                .then(|| (now + chrono::Duration::from_std(policy.pending_ttl).unwrap_or_default()).min(expires_at)),
        }),
    };
    // active at once when the path needs no approval (break-glass: review required)
    let ticket = Ticket::open(new, now);
    Decision::Ticket(Box::new(ticket))
}

/// Why a break-glass ticket is not renewed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenewError {
    /// An exception ticket, not just-in-time access.
    #[error("not an access ticket")]
    NotAccess,
    /// Another path than break-glass.
    #[error("only break-glass is renewed; this is {0}")]
    NotBreakGlass(AccessPath),
    /// The ticket is no longer in force.
    #[error("the ticket is {0}")]
    NotInForce(TicketStatus),
    /// Its incident is resolved (or unknown).
    #[error("incident {0} is not open: break-glass ends with its window")]
    IncidentClosed(String),
    /// The registry in force no longer has a break-glass path.
    #[error("the registry no longer offers break-glass")]
    NoBreakGlassPath,
}

/// Extends a break-glass ticket in force while its incident stays open: a new
/// window of the path's max_ttl from `now` (never shorter than what is left).
/// Returns the new expiry; the ticket records the renewal.
pub fn renew(
    ticket: &mut Ticket,
    registry: &PolicyRegistry,
    incidents: &dyn Incidents,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, RenewError> {
    let grant = ticket.access().ok_or(RenewError::NotAccess)?;
    if grant.path != AccessPath::BreakGlass {
        return Err(RenewError::NotBreakGlass(grant.path));
    }
    if !ticket.is_active_at(now) {
        return Err(RenewError::NotInForce(ticket.status_at(now)));
    }
    let incident = grant.incident_id.clone().unwrap_or_default();
    if !incidents.is_open(&incident, now) {
        return Err(RenewError::IncidentClosed(incident));
    }
    let rule = registry
        .access
        .as_ref()
        .and_then(|a| a.paths.get(&AccessPath::BreakGlass))
        .ok_or(RenewError::NoBreakGlassPath)?;
    let until = (now + chrono::Duration::from_std(rule.max_ttl).unwrap_or_default()).max(ticket.expires_at());
    ticket.renew(until, now, format!("incident {incident} still open; window until {}", until.to_rfc3339()));
    Ok(until)
}

/// Why an access request was not recorded at all.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The body names another person than the one asking.
    #[error(transparent)]
    Identity(#[from] IdentityRefusal),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the access policy would decide of a request, before it is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum Verdict {
    /// Active at once, no approval.
    Automatic,
    /// One approver, not the requester.
    OneApprover,
    /// Two approvers, neither the requester, one of them privileged (by email or group).
    Dual {
        /// The privileged approvers by email.
        emails: Vec<String>,
        /// The privileged groups.
        groups: Vec<String>,
    },
    /// Refused, and why.
    Refused {
        /// Why.
        reason: String,
    },
    /// The policy does not offer it, and why.
    NotOffered {
        /// Why.
        reason: String,
    },
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Automatic => f.write_str("automatic: active as soon as it is requested"),
            Verdict::OneApprover => f.write_str("one approval, by someone other than you"),
            Verdict::Dual { emails, groups } => {
                let mut who: Vec<String> = emails.clone();
                who.extend(groups.iter().map(|g| format!("group {g}")));
                write!(f, "two approvals, neither yours, one of them by {}", who.join(", "))
            }
            Verdict::Refused { reason } => write!(f, "refused: {reason}"),
            Verdict::NotOffered { reason } => write!(f, "not offered: {reason}"),
        }
    }
}

/// What the policy would decide of `request` by `by` at `now`, with the
/// incidents on record; nothing is recorded.
pub async fn preview<S>(
    store: &S,
    request: &AccessRequest,
    by: &Actor,
    registry: &PolicyRegistry,
    now: DateTime<Utc>,
) -> Result<Verdict, AccessError>
where
    S: crate::incident::IncidentStore + Sync,
{
    by.check_named("identity", Some(&request.identity))?;
    let request = &AccessRequest { identity: by.id.clone(), ..request.clone() };
    let incidents = crate::incident::known_incidents(store, request.incident_id.as_deref()).await?;
    Ok(match route_access(request, registry, &incidents, now) {
        Decision::Ticket(t) if t.status() == TicketStatus::Active => Verdict::Automatic,
        Decision::Ticket(t) => match t.access() {
            Some(a) if t.approvals_required() >= 2 => {
                Verdict::Dual { emails: a.privileged_approvers.clone(), groups: a.privileged_groups.clone() }
            }
            _ => Verdict::OneApprover,
        },
        Decision::Refused { refusal, .. } => Verdict::Refused { reason: refusal.to_string() },
        Decision::Untagged { reason, .. } => Verdict::NotOffered { reason },
    })
}

/// What an access request became.
#[derive(Debug, Clone, PartialEq)]
pub enum AccessOutcome {
    /// A new ticket (active at once when no approval is needed).
    Created(Ticket),
    /// The same request again: the stored ticket, nothing recorded.
    Existing(Ticket),
    /// The request id is known with another request: refused.
    Conflict(Ticket),
    /// The access policy refuses it (e.g. break-glass without an open incident).
    Refused {
        /// The path's category.
        category: String,
        /// Why.
        refusal: Refusal,
    },
    /// No access policy can route it.
    Unroutable(String),
}

/// Routes an access request with the incidents on record (the one it names, read
/// from `store`) and records what it leaves: the ticket with `ticket.requested`
/// (and `ticket.activated`), or `access.refused` / `access.unroutable` on the
/// target's chain. Nothing was granted for a request turned down (grantwarden
/// issues the credential itself), so it is journaled, not raised as drift. No
/// credential is issued here.
pub async fn request_access<S>(
    store: &S,
    request: &AccessRequest,
    by: &Actor,
    registry: &PolicyRegistry,
    now: DateTime<Utc>,
) -> Result<AccessOutcome, AccessError>
where
    S: TicketStore + AuditJournal + crate::incident::IncidentStore + Sync,
{
    // the credential is for whoever the voucher says is asking, never for a name in the body
    by.check_named("identity", Some(&request.identity))?;
    let request = &AccessRequest { identity: by.id.clone(), ..request.clone() };
    let incidents = crate::incident::known_incidents(store, request.incident_id.as_deref()).await?;
    let turned_down = |category: Option<&str>, reason: String| {
        let detail = AccessTurnedDown {
            request: request.clone(),
            category: category.map(str::to_owned),
            reason,
            registry_version: registry.id.version.clone(),
        };
        NewEvent::access_turned_down(&detail, now)
    };
    match route_access(request, registry, &incidents, now) {
        Decision::Ticket(ticket) => {
            let requested = NewEvent::for_ticket(&ticket, OnTicket::Requested, &by.id, now).vouched_by(&by.vouched_by);
            let mut events = vec![requested];
            if ticket.status() == TicketStatus::Active {
                events.push(NewEvent::for_ticket(&ticket, OnTicket::Activated, "grantwarden", now));
            }
            Ok(match crate::outbox::create(store, &ticket, events).await? {
                PutOutcome::Created(t) => AccessOutcome::Created(t),
                PutOutcome::Existing(t) => AccessOutcome::Existing(t),
                PutOutcome::Conflict(t) => {
                    store.append(NewEvent::for_ticket(&t, OnTicket::Conflict, "grantwarden", now)).await?;
                    AccessOutcome::Conflict(t)
                }
            })
        }
        Decision::Refused { category, refusal, .. } => {
            store.append(turned_down(Some(&category), refusal.to_string())).await?;
            Ok(AccessOutcome::Refused { category, refusal })
        }
        Decision::Untagged { reason, .. } => {
            store.append(turned_down(None, reason.clone())).await?;
            Ok(AccessOutcome::Unroutable(reason))
        }
    }
}

/// Whether `ticket`'s credential was issued (its history says so).
pub fn is_issued(ticket: &Ticket) -> bool {
    ticket.history().iter().any(|e| e.what == "issued")
}

/// Why a ticket's credential is not issued now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotIssuable {
    /// An exception ticket, not just-in-time access.
    #[error("ticket {0} is not an access ticket")]
    NotAccess(String),
    /// Not in force (pending, ended, or not started).
    #[error("ticket {0} is {1}: only a ticket in force is issued")]
    NotInForce(String, TicketStatus),
    /// Issued already: a credential is shown once.
    #[error("the credential of {0} was issued already; it is shown once")]
    AlreadyIssued(String),
    /// Not issued yet where another function issues it (the revoke function, on AWS).
    #[error("the credential of {0} is being issued: try again in a few seconds")]
    NotYetIssued(String),
    /// Shown already.
    #[error("the credential of {0} was shown already; it is shown once")]
    AlreadyShown(String),
}

/// Whether `ticket`'s credential may be issued at `now`: an access ticket in
/// force whose credential was not issued yet (the CLI, the portal and the
/// revoke function ask the same).
pub fn issuable(ticket: &Ticket, now: DateTime<Utc>) -> Result<(), NotIssuable> {
    if ticket.access().is_none() {
        return Err(NotIssuable::NotAccess(ticket.id().to_owned()));
    }
    if !ticket.is_active_at(now) {
        return Err(NotIssuable::NotInForce(ticket.id().to_owned(), ticket.status_at(now)));
    }
    if is_issued(ticket) {
        return Err(NotIssuable::AlreadyIssued(ticket.id().to_owned()));
    }
    Ok(())
}

/// Whether the credential another function delivered into a secret (the revoke
/// function, on AWS) may be shown to its requester at `now`: an access ticket
/// in force, issued, not shown yet.
pub fn revealable(ticket: &Ticket, now: DateTime<Utc>) -> Result<(), NotIssuable> {
    match issuable(ticket, now) {
        Ok(()) => Err(NotIssuable::NotYetIssued(ticket.id().to_owned())),
        Err(NotIssuable::AlreadyIssued(_)) if ticket.credential_shown() => {
            Err(NotIssuable::AlreadyShown(ticket.id().to_owned()))
        }
        Err(NotIssuable::AlreadyIssued(_)) => Ok(()),
        Err(other) => Err(other),
    }
}

/// Records that the credential of `ticket` (as read, at `version`) was shown to
/// `by`: `credential_shown` in its history and `access.shown` in the journal, by
/// a conditional update, so of two showings at once one is refused
/// ([`StoreError::Stale`]) and its page must not show the credential.
pub async fn record_shown<S>(
    store: &S,
    ticket: Versioned<Ticket>,
    by: &Actor,
    now: DateTime<Utc>,
) -> Result<Ticket, StoreError>
where
    S: TicketStore + AuditJournal + Sync,
{
    let Versioned { value: mut ticket, version } = ticket;
    ticket.record_shown(&by.id, now);
    let shown = NewEvent::for_ticket(&ticket, OnTicket::Shown, &by.id, now).vouched_by(&by.vouched_by);
    crate::outbox::update(store, &ticket, version, vec![shown]).await?;
    Ok(ticket)
}

/// Records that ticket `id`'s credential was issued: `issued` in its history (a
/// conditional update, read again when another write came first) and
/// `access.issued` in the journal with the SQL as printed, never the password.
/// `delivered_in` names where the password went (a secret), if anywhere.
pub async fn record_issued<S>(
    store: &S,
    id: &str,
    role: &str,
    sql: &[String],
    delivered_in: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Ticket, StoreError>
where
    S: TicketStore + AuditJournal + Sync,
{
    for _ in 0..5 {
        let Some(Versioned { value: mut ticket, version }) = store.ticket(id).await? else {
            return Err(StoreError::NotFound(id.to_owned()));
        };
        let into = delivered_in.map(|s| format!("; credential in secret {s}")).unwrap_or_default();
        ticket.record_issued(format!("role {role} until {}{into}", ticket.expires_at().to_rfc3339()), now);
        let issued = Issued { sql: sql.to_vec(), secret: delivered_in.map(str::to_owned) };
        let events = vec![NewEvent::for_ticket(&ticket, OnTicket::Issued(issued), "grantwarden", now)];
        match crate::outbox::update(store, &ticket, version, events).await {
            Ok(_) => return Ok(ticket),
            Err(StoreError::Stale(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Stale(id.to_owned()))
}

/// The privileges and object a request stands for, in the ticket's terms.
fn grant_of(r: &AccessRequest) -> (Vec<Privilege>, RequestObject) {
    let mut privileges = match r.path {
        AccessPath::ReadOnly => vec![Privilege::Select, Privilege::Usage],
        AccessPath::Migration | AccessPath::BreakGlass => {
            vec![Privilege::Select, Privilege::Insert, Privilege::Update, Privilege::Delete, Privilege::Usage]
        }
    };
    privileges.sort();
    let object = match &r.scope {
        AccessScope::Database => RequestObject { on: On::Database, schema: None, name: None, columns: vec![] },
        AccessScope::Schema { schema } | AccessScope::Tables { schema, .. } | AccessScope::Rows { schema, .. } => {
            RequestObject { on: On::Schema, schema: None, name: Some(schema.clone()), columns: vec![] }
        }
    };
    (privileges, object)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::access_policy::{Literal, Mask, RowPredicate};
    use crate::snapshot::TargetId;
    use crate::ticket::ApprovalError;

    pub(crate) const REGISTRY: &str = r#"
version: "3.0"
owner: security@example.com
approver: ciso@example.com
categories:
  ops: { framework: SOC2, max_ttl: 24h, approvals: 1, weight_factor: 0.25 }
routes:
  - { match: {}, category: ops }
access:
  approver_roles: { security: [ciso@example.com], manager: [lead@example.com] }
  paths:
    read-only:   { max_ttl: 8h }
    migration:   { max_ttl: 4h, approvals: dual }
    break-glass: { max_ttl: 30m }
  sensitive: { schemas: ["phi_*"], tables: [billing.customers] }
  masking: { billing.customers: { email: partial, ssn: hash } }
  connection_limit: 3
"#;

    pub(crate) struct Open(pub(crate) &'static [&'static str]);
    impl Incidents for Open {
        fn is_open(&self, id: &str, _: DateTime<Utc>) -> bool {
            self.0.contains(&id)
        }
    }

    pub(crate) fn now() -> DateTime<Utc> {
        "2026-11-22T12:00:00Z".parse().unwrap()
    }

    pub(crate) fn request(
        path: AccessPath,
        scope: AccessScope,
        duration: &str,
        incident: Option<&str>,
    ) -> AccessRequest {
        AccessRequest {
            id: "req-1".into(),
            identity: "alice@example.com".into(),
            target: TargetId::new("orders-prod").unwrap(),
            path,
            scope,
            duration: duration.into(),
            justification: "CHG-1".into(),
            incident_id: incident.map(Into::into),
            script: None,
        }
    }

    pub(crate) fn decide(r: &AccessRequest) -> Decision {
        let registry = PolicyRegistry::load(&[("r.yaml".into(), REGISTRY.into())]).unwrap();
        route_access(r, &registry, &Open(&["INC-7"]), now())
    }

    pub(crate) fn ticket(d: Decision) -> Ticket {
        match d {
            Decision::Ticket(t) => *t,
            other => panic!("a ticket: {other:?}"),
        }
    }

    pub(crate) fn tables(t: &[&str]) -> AccessScope {
        AccessScope::Tables { schema: "billing".into(), tables: t.iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn an_approver_role_other_than_security_or_manager_is_refused_at_load() {
        let yaml = REGISTRY.replace("manager: [lead@example.com]", "friends: [pal@example.com]");
        let err = PolicyRegistry::load(&[("r.yaml".into(), yaml)]).unwrap_err().to_string();
        assert!(err.contains("access.approver_roles.friends"), "{err}");
    }

    #[test]
    fn read_only_is_automatic_unless_the_scope_is_sensitive() {
        let t = ticket(decide(&request(AccessPath::ReadOnly, tables(&["invoices"]), "2h", None)));
        assert_eq!((t.status(), t.approvals_required()), (TicketStatus::Active, 0));
        assert_eq!(t.role_lifecycle(), RoleLifecycle::ShortLived);
        assert!(t.request().role.as_str().starts_with("gw_alice_"));
        assert_eq!(t.expires_at(), now() + chrono::Duration::hours(2));
        let grant = t.access().unwrap();
        assert_eq!((grant.connection_limit, grant.masking.len()), (3, 1), "the registry's masks, for views in scope");
        let t = ticket(decide(&request(AccessPath::ReadOnly, tables(&["customers"]), "2h", None)));
        assert_eq!((t.status(), t.approvals_required()), (TicketStatus::PendingApproval, 1));
        assert_eq!(t.access().unwrap().masking["billing.customers"]["email"], Mask::Partial);
        let phi = AccessScope::Schema { schema: "phi_claims".into() };
        assert_eq!(ticket(decide(&request(AccessPath::ReadOnly, phi, "1h", None))).approvals_required(), 1);
        assert!(matches!(
            decide(&request(AccessPath::ReadOnly, tables(&["invoices"]), "9h", None)),
            Decision::Refused { refusal: Refusal::TtlExceeded { .. }, .. }
        ));
    }

    #[test]
    fn dual_approval_needs_two_distinct_approvers_one_privileged_and_never_the_requester() {
        let mut t = ticket(decide(&request(AccessPath::Migration, tables(&["invoices"]), "1h", None)));
        assert_eq!((t.status(), t.approvals_required()), (TicketStatus::PendingApproval, 2));
        assert_eq!(
            t.approve(&crate::identity::Actor::operator("alice@example.com"), now()),
            Err(ApprovalError::Requester("alice@example.com".into()))
        );
        t.approve(&crate::identity::Actor::operator("bob@example.com"), now()).unwrap();
        assert_eq!(
            t.approve(&crate::identity::Actor::operator("Bob@example.com"), now()),
            Err(ApprovalError::Duplicate("bob@example.com".into()))
        );
        t.approve(&crate::identity::Actor::operator("carol@example.com"), now()).unwrap();
        assert_eq!(t.status(), TicketStatus::PendingApproval, "two approvals, neither security nor manager");
        t.approve(&crate::identity::Actor::operator("lead@example.com"), now()).unwrap();
        assert_eq!(t.status(), TicketStatus::Active, "a manager among them");
    }

    #[test]
    fn break_glass_only_during_an_open_incident_and_for_at_most_its_window() {
        let scope = || tables(&["invoices"]);
        assert!(matches!(
            decide(&request(AccessPath::BreakGlass, scope(), "20m", None)),
            Decision::Refused { refusal: Refusal::IncidentRequired, .. }
        ));
        assert!(matches!(
            decide(&request(AccessPath::BreakGlass, scope(), "20m", Some("INC-1"))),
            Decision::Refused { refusal: Refusal::IncidentNotOpen { .. }, .. }
        ));
        assert!(matches!(
            decide(&request(AccessPath::BreakGlass, scope(), "1h", Some("INC-7"))),
            Decision::Refused { refusal: Refusal::TtlExceeded { .. }, .. }
        ));
        let t = ticket(decide(&request(AccessPath::BreakGlass, scope(), "30m", Some("INC-7"))));
        assert_eq!(t.status(), TicketStatus::Active);
        assert!(t.access().unwrap().review_required);
        assert_eq!(t.weight_factor(), 1.0);
    }

    #[test]
    fn the_same_request_later_is_the_same_ticket() {
        let r = request(AccessPath::ReadOnly, tables(&["invoices"]), "2h", None);
        let registry = PolicyRegistry::load(&[("r.yaml".into(), REGISTRY.into())]).unwrap();
        let a = ticket(route_access(&r, &registry, &Open(&[]), now()));
        let b = ticket(route_access(&r, &registry, &Open(&[]), now() + chrono::Duration::minutes(5)));
        assert_eq!((a.id(), a.request_sha256()), (b.id(), b.request_sha256()), "a redelivery, not a conflict");
        let mut changed = r.clone();
        changed.duration = "3h".into();
        assert_ne!(ticket(route_access(&changed, &registry, &Open(&[]), now())).request_sha256(), a.request_sha256());
    }

    #[test]
    fn without_an_access_section_nothing_routes() {
        let registry =
            PolicyRegistry::load(&[("r.yaml".into(), REGISTRY.split("access:").next().unwrap().into())]).unwrap();
        let r = request(AccessPath::ReadOnly, tables(&["invoices"]), "1h", None);
        assert!(matches!(route_access(&r, &registry, &Open(&[]), now()), Decision::Untagged { .. }));
    }

    #[test]
    fn predicates_parse_only_as_column_and_literals() {
        let p = RowPredicate::parse("customer_id = 42").unwrap();
        assert_eq!((p.column.as_str(), p.values.clone()), ("customer_id", vec![Literal::Int(42)]));
        let p = RowPredicate::parse("region IN ('eu', 'o''hara')").unwrap();
        assert_eq!(p.values, vec![Literal::Text("eu".into()), Literal::Text("o'hara".into())]);
        for bad in [
            "customer_id = 42 or 1=1",
            "customer_id = 42; drop table x",
            "id = '1",
            "(id) = 1",
            "id > 3",
            "id in ()",
            "id = '1' || 'x'",
        ] {
            assert!(RowPredicate::parse(bad).is_err(), "{bad}");
        }
        // JSON: text or parts, checked either way
        let p: RowPredicate = serde_json::from_str(r#""region in ('eu')""#).unwrap();
        assert_eq!(p.values, vec![Literal::Text("eu".into())]);
        let p: RowPredicate = serde_json::from_str(r#"{"column":"customer_id","values":[42,"x"]}"#).unwrap();
        assert_eq!(p.values, vec![Literal::Int(42), Literal::Text("x".into())]);
        for bad in [r#"{"column":"id","values":[]}"#, r#"{"column":"id = 1 or true","values":[1]}"#, r#""id > 3""#] {
            assert!(serde_json::from_str::<RowPredicate>(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn a_predicate_of_any_text_parses_or_is_refused_without_a_panic(text in "\\PC{0,40}") {
            if let Ok(p) = RowPredicate::parse(&text) {
                proptest::prop_assert!(p.column.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
                proptest::prop_assert!(!p.values.is_empty());
            }
        }
    }

    #[test]
    fn issued_role_names_are_unique_per_ticket_and_plain() {
        let a = role_for("Alice.O'Hara@example.com", "tkt-1");
        let b = role_for("Alice.O'Hara@example.com", "tkt-2");
        assert_ne!(a, b);
        assert!(a.as_str().starts_with("gw_aliceohara_"), "{a}");
        assert!(a.as_str().chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
        assert!(role_for(&"x".repeat(300), "t").as_str().len() <= 63);
    }

    #[test]
    fn a_request_names_the_field_that_is_wrong() {
        let ok = br#"{"id":"r1","identity":"alice@example.com","target":"orders-prod","path":"read-only",
            "scope":{"on":"rows","schema":"billing","table":"invoices","predicate":{"column":"customer_id","values":[42]}},
            "duration":"2h","justification":"ticket 77"}"#;
        assert!(parse_request(ok).is_ok());
        let bad = br#"{"id":"r1","identity":"alice@example.com","target":"orders-prod","path":"root",
            "scope":{"on":"database"},"duration":"2h","justification":"x"}"#;
        assert_eq!(parse_request(bad).unwrap_err().field, "path");
        let bad = br#"{"id":"r1","identity":"alice@example.com","target":"orders-prod","path":"read-only",
            "scope":{"on":"database"},"duration":"forever","justification":"x"}"#;
        assert_eq!(parse_request(bad).unwrap_err().field, "duration");
    }
}
