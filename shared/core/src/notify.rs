//! Telling people in chat (Slack): a request's card in its channels and in
//! its approvers' direct messages, kept up to date after each decision; the
//! requester told of each step and warned before access ends; drift and
//! break-glass alerts in the security channel; approvals and denials given
//! from the card's buttons.
//!
//! Notices are derived from the audit journal ([`notices_of`]): every ticket
//! step is journaled in the same write as the ticket ([`crate::outbox`]), so a
//! notice can never be lost by a chat outage, nor block a request or an
//! approval. They wait in a [`NoticeQueue`] (locally a table of the state
//! file, on AWS an SQS queue) and are delivered by [`deliver`]: a failure that
//! retrying can fix is retried with growing delays ([`RETRY`]), one that cannot
//! (a channel that does not exist, a revoked token) or that outlived its
//! retries is dead-lettered with its reason.
//!
//! The rules of who may act from chat are here too ([`decide_in_chat`]): the
//! Slack user is the one Slack vouches for (a signed interaction and the email
//! Slack verified), must be an approver the registry names, and a button
//! approves only a request that one approval of an ordinary path completes
//! ([`approvable_in_chat`]); two approvals and break-glass are decided in the
//! portal, where a recent sign-in is checked.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::audit::event::EventKind;
use crate::audit::{AuditEvent, AuditJournal};
use crate::backoff::RetryPolicy;
use crate::error::StoreError;
use crate::identity::Actor;
use crate::notify_policy::NotifyPolicy;
use crate::policy::PolicyRegistry;
use crate::store::TicketStore;
use crate::ticket::{Ticket, TicketStatus};
use crate::ticket_flow::{self, TicketFlowError};

/// How undelivered notices are retried: 12 attempts, from 30 s apart up to
/// 30 min apart (about three and a half hours in all), then dead-lettered.
pub const RETRY: RetryPolicy =
    RetryPolicy { max_attempts: 12, base: Duration::from_secs(30), cap: Duration::from_secs(30 * 60) };

/// What a requester is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "news")]
pub enum RequesterNews {
    /// The request got its approvals and is in force.
    Approved,
    /// The credential was issued.
    Issued,
    /// The credential could not be issued.
    IssueRefused {
        /// Why.
        reason: String,
    },
    /// An approver turned the request down.
    Denied {
        /// Who.
        by: String,
        /// Why, as given.
        reason: String,
    },
    /// Nobody approved it in time.
    Expired,
    /// Access ends soon.
    ExpiresSoon {
        /// When it ends.
        at: DateTime<Utc>,
    },
    /// Access was revoked.
    Revoked,
}

/// One thing to tell someone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "notice")]
pub enum Notice {
    /// Post the request's card to its channels, or bring the cards posted
    /// (channels and direct messages) up to date.
    Card {
        /// The ticket.
        ticket: String,
    },
    /// Send the request's card to each eligible approver directly.
    ApproverDms {
        /// The ticket.
        ticket: String,
    },
    /// Tell the requester.
    Requester {
        /// The ticket.
        ticket: String,
        /// What.
        #[serde(flatten)]
        news: RequesterNews,
    },
    /// An alert for the security channel.
    Security {
        /// The target it is about.
        target: String,
        /// One line.
        title: String,
        /// Details.
        text: String,
    },
}

/// A notice with the key that makes enqueueing it idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keyed {
    /// `<event id>#<n>` for a notice of a journal event, `expiring:<ticket>:<end>` for a warning.
    pub key: String,
    /// The notice.
    pub notice: Notice,
}

/// A notice waiting in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// Its key.
    pub key: String,
    /// The notice.
    pub notice: Notice,
    /// Attempts made so far.
    pub attempts: u32,
}

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Delivered: done.
    Delivered,
    /// Try again at `at`; `reason` is why this attempt failed.
    Retry {
        /// When.
        at: DateTime<Utc>,
        /// Why this attempt failed.
        reason: String,
    },
    /// Given up: kept with its reason for a person to look at.
    Dead {
        /// Why.
        reason: String,
    },
}

/// A message posted to a channel or a direct message, to update later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posted {
    /// The channel (or direct message channel) id.
    pub channel: String,
    /// The message's timestamp id (`ts`).
    pub ts: String,
    /// For a direct message, the user it went to (its channel is theirs with the app).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// Where notices wait, and what was posted (a state store implements it).
pub trait NoticeQueue {
    /// Adds `notices`, each once: a key already queued (delivered or not) is
    /// left as it is. Returns how many were new.
    fn enqueue(&self, notices: &[Keyed], now: DateTime<Utc>) -> impl Future<Output = Result<usize, StoreError>> + Send;
    /// Up to `limit` notices due at `now`, oldest first.
    fn due(&self, now: DateTime<Utc>, limit: usize) -> impl Future<Output = Result<Vec<Queued>, StoreError>> + Send;
    /// Records how an attempt at `key` ended.
    fn settle(
        &self,
        key: &str,
        outcome: &Settled,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The last journal seq of `chain` turned into notices; `None` before the first pump.
    fn cursor(&self, chain: &str) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;
    /// Moves `chain`'s cursor to `seq`.
    fn advance(&self, chain: &str, seq: u64) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The cards posted for `ticket`.
    fn posted(&self, ticket: &str) -> impl Future<Output = Result<Vec<Posted>, StoreError>> + Send;
    /// Remembers a card posted for `ticket`.
    fn record_posted(&self, ticket: &str, posted: &Posted) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Why a chat call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    /// Retrying may work (the service is down, rate limited, timed out).
    #[error("{0}")]
    Transient(String),
    /// Retrying will not (no such channel, the token was revoked, not in the channel).
    #[error("{0}")]
    Permanent(String),
}

/// The chat service (Slack's Web API).
pub trait Chat {
    /// Posts `message` to `channel` (a channel id, or a user id for a direct message).
    fn post(&self, channel: &str, message: &Message) -> impl Future<Output = Result<Posted, ChatError>> + Send;
    /// Replaces a posted message.
    fn update(&self, posted: &Posted, message: &Message) -> impl Future<Output = Result<(), ChatError>> + Send;
    /// The chat user with this email, if any.
    fn user_by_email(&self, email: &str) -> impl Future<Output = Result<Option<String>, ChatError>> + Send;
}

/// A message, as the chat adapter renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The plain text (notifications, and clients that show no blocks).
    pub text: String,
    /// A request's card, when the message is one.
    pub card: Option<Card>,
}

/// A request's card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    /// The ticket.
    pub ticket: String,
    /// The headline.
    pub title: String,
    /// Label and value, in order.
    pub fields: Vec<(String, String)>,
    /// Where it stands now (approved by X, waiting for one more, denied, expired).
    pub status: String,
    /// Whether it offers an Approve button.
    pub approve: bool,
    /// Whether it offers a Deny button.
    pub deny: bool,
    /// Why there is no Approve button on a pending request.
    pub approve_elsewhere: Option<String>,
    /// The request's page in the portal.
    pub link: Option<String>,
}

/// The action ids of the card's buttons (their value is the ticket id).
pub const APPROVE_ACTION: &str = "grantwarden_approve";
/// See [`APPROVE_ACTION`].
pub const DENY_ACTION: &str = "grantwarden_deny";

// ---- from the journal to notices -------------------------------------------

/// The notices a journal event calls for under `policy`.
pub fn notices_of(event: &AuditEvent, policy: &NotifyPolicy) -> Vec<Keyed> {
    let ticket = || event.subject.clone();
    let detail = &event.detail;
    // tickets of access requests carry their path (grant exceptions do not)
    let access = detail.get("category").and_then(|c| c.as_str()).is_some_and(|c| c.starts_with("access:"));
    let break_glass = detail.get("category").and_then(|c| c.as_str()) == Some("access:break-glass");
    let requester = |news| Notice::Requester { ticket: ticket(), news };
    let mut out = Vec::new();
    match &event.kind {
        EventKind::TicketRequested if access => {
            out.push(Notice::Card { ticket: ticket() });
            if policy.dm_approvers {
                out.push(Notice::ApproverDms { ticket: ticket() });
            }
        }
        EventKind::TicketApproved | EventKind::TicketRevokeRequested | EventKind::AccessRenewed if access => {
            out.push(Notice::Card { ticket: ticket() });
        }
        EventKind::TicketActivated if access => {
            out.push(Notice::Card { ticket: ticket() });
            if event.actor == "grantwarden" && detail_text(detail, "status") == "active" {
                out.push(requester(RequesterNews::Approved));
            }
        }
        EventKind::AccessIssued => out.push(requester(RequesterNews::Issued)),
        EventKind::AccessIssueRefused => {
            out.push(requester(RequesterNews::IssueRefused { reason: detail_text(detail, "error") }));
        }
        EventKind::TicketDenied => {
            out.push(Notice::Card { ticket: ticket() });
            out.push(requester(RequesterNews::Denied {
                by: event.actor.clone(),
                reason: detail_text(detail, "reason"),
            }));
        }
        EventKind::TicketExpired => {
            out.push(Notice::Card { ticket: ticket() });
            out.push(requester(RequesterNews::Expired));
        }
        EventKind::TicketRevoked if access => {
            out.push(Notice::Card { ticket: ticket() });
            out.push(requester(RequesterNews::Revoked));
        }
        EventKind::ScanCompleted if detail.pointer("/summary/status").and_then(|s| s.as_str()) == Some("alert") => {
            let summary = &detail["summary"];
            let count = |k: &str| summary.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
            out.push(Notice::Security {
                target: event.target.clone(),
                title: format!("Drift alert on {}", event.target),
                text: format!(
                    "scan {}: {} unauthorized, {} untagged, {} missing, {} expired exception(s); score {}",
                    event.subject,
                    count("unauthorized"),
                    count("untagged"),
                    count("missing"),
                    count("expired_exception"),
                    summary.get("score").and_then(|v| v.as_f64()).unwrap_or(0.0)
                ),
            });
        }
        EventKind::GovernanceAlert => out.push(Notice::Security {
            target: event.target.clone(),
            title: format!("Governance alert on {}", event.target),
            text: detail_text(detail, "alert"),
        }),
        _ => {}
    }
    // break-glass is announced to security when it comes into force and when renewed
    if break_glass && matches!(event.kind, EventKind::TicketActivated | EventKind::AccessRenewed) {
        let what = if event.kind == EventKind::AccessRenewed { "renewed" } else { "in force" };
        out.push(Notice::Security {
            target: event.target.clone(),
            title: format!("Break-glass access {what} on {}", event.target),
            text: format!(
                "{} for {} until {} (ticket {})",
                what,
                detail_text(detail, "principal"),
                detail_text(detail, "expires_at"),
                event.subject
            ),
        });
    }
    out.into_iter().enumerate().map(|(n, notice)| Keyed { key: format!("{}#{n}", event.id), notice }).collect()
}

fn detail_text(detail: &serde_json::Value, field: &str) -> String {
    match detail.get(field) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Turns the journal's new events into queued notices: for each chain, the
/// events after its cursor, then the cursor moved past them. The very first
/// pump starts every chain at its head (history is not announced); a chain
/// that appears after that (a new target) is read from its start. Returns
/// the number of notices queued.
pub async fn pump<J, Q>(
    journal: &J,
    queue: &Q,
    registry: &PolicyRegistry,
    now: DateTime<Utc>,
) -> Result<usize, StoreError>
where
    J: AuditJournal + Sync,
    Q: NoticeQueue + Sync,
{
    let Some(policy) = &registry.notify else { return Ok(0) };
    let started = queue.cursor(STARTED).await?.is_some();
    let mut queued = 0;
    for chain in journal.chains().await? {
        let cursor = match queue.cursor(&chain).await? {
            Some(seq) => seq,
            None if started => 0,
            None => {
                let head = journal.head(&chain).await?.map_or(0, |(seq, _)| seq);
                queue.advance(&chain, head).await?;
                continue;
            }
        };
        let events = journal.events_after(&chain, cursor).await?;
        let Some(last) = events.last().map(|e| e.seq) else { continue };
        let notices: Vec<Keyed> = events.iter().flat_map(|e| notices_of(e, policy)).collect();
        queued += queue.enqueue(&notices, now).await?;
        queue.advance(&chain, last).await?;
    }
    if !started {
        queue.advance(STARTED, 0).await?;
    }
    Ok(queued)
}

/// The cursor that says the pump ran before (no chain has this name: chains are target names).
const STARTED: &str = "*";

/// Queues the warning of each ticket among `tickets` whose access ends within
/// the policy's `expiry_warning` of `now` (once per ticket and end: a renewal
/// warns again). Run by the sweep.
pub async fn warn_expiring<Q: NoticeQueue + Sync>(
    queue: &Q,
    tickets: &[Ticket],
    registry: &PolicyRegistry,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let Some(policy) = &registry.notify else { return Ok(0) };
    if !policy.dm_requester {
        return Ok(0);
    }
    let warning = chrono::TimeDelta::from_std(policy.expiry_warning).unwrap_or(chrono::TimeDelta::MAX);
    let notices: Vec<Keyed> = tickets
        .iter()
        .filter(|t| t.access().is_some() && t.is_active_at(now) && t.ends_at() - now <= warning)
        .map(|t| Keyed {
            key: format!("expiring:{}:{}", t.id(), t.ends_at().timestamp()),
            notice: Notice::Requester {
                ticket: t.id().to_owned(),
                news: RequesterNews::ExpiresSoon { at: t.ends_at() },
            },
        })
        .collect();
    queue.enqueue(&notices, now).await
}

// ---- what a card says -------------------------------------------------------

/// Whether a button may approve `ticket`: a request one approval completes,
/// on a path the registry lets be approved in chat, not break-glass.
pub fn approvable_in_chat(ticket: &Ticket, policy: &NotifyPolicy) -> Result<(), String> {
    let Some(access) = ticket.access() else {
        return Err("it excepts a grant, not an access request".into());
    };
    if ticket.break_glass() {
        return Err("break-glass is decided in the portal".into());
    }
    if ticket.approvals_required() >= 2 {
        return Err("it needs two approvals, each with a recent sign-in: approve it in the portal".into());
    }
    let path = access.path.to_string();
    if !policy.approve_in_slack.contains(&path) {
        return Err(format!(
            "the registry does not let {path} requests be approved in Slack: approve it in the portal"
        ));
    }
    Ok(())
}

/// The people who may decide `ticket` in chat: the registry's approver roles'
/// emails and `notify.slack_approvers`, never its requester.
pub fn chat_approvers(ticket: &Ticket, registry: &PolicyRegistry) -> Vec<String> {
    let mut out: Vec<String> = registry.access.as_ref().map(|a| a.privileged_approvers()).unwrap_or_default();
    if let Some(n) = &registry.notify {
        out.extend(n.slack_approvers.iter().cloned());
    }
    out.sort();
    out.dedup();
    out.retain(|e| !ticket.is_requester(e));
    out
}

fn approvers_line(ticket: &Ticket) -> String {
    ticket.approvals().iter().map(|a| a.approver.as_str()).collect::<Vec<_>>().join(", ")
}

fn history_of<'a>(ticket: &'a Ticket, what: &str) -> Option<&'a crate::ticket::TicketEvent> {
    ticket.history().iter().rev().find(|e| e.what == what)
}

/// Where `ticket` stands, in words, at `now`.
pub fn status_line(ticket: &Ticket, now: DateTime<Utc>) -> String {
    let approved = approvers_line(ticket);
    match ticket.status_at(now) {
        TicketStatus::PendingApproval => {
            let missing = usize::from(ticket.approvals_required()).saturating_sub(ticket.approvals().len()).max(1);
            let more = if missing == 1 { "one more approval".to_owned() } else { format!("{missing} approvals") };
            if approved.is_empty() {
                format!("Waiting for {more}")
            } else {
                format!("Approved by {approved}, waiting for {more}")
            }
        }
        TicketStatus::Active if approved.is_empty() => {
            format!("In force without approval until {}", ticket.ends_at().format("%H:%M UTC"))
        }
        TicketStatus::Active => {
            format!("Approved by {approved}; in force until {}", ticket.ends_at().format("%H:%M UTC"))
        }
        TicketStatus::Denied => match history_of(ticket, "denied") {
            Some(e) if e.detail.is_empty() => format!("Denied by {}", e.actor),
            Some(e) => format!("Denied by {}: {}", e.actor, e.detail),
            None => "Denied".into(),
        },
        TicketStatus::Expired if ticket.approvals().len() < usize::from(ticket.approvals_required()) => {
            "Expired: not approved in time".into()
        }
        TicketStatus::Expired => "Ended: its window is over".into(),
        TicketStatus::RevokeRequested => match history_of(ticket, "revoke_requested") {
            Some(e) => format!("Being ended early, asked by {}", e.actor),
            None => "Being ended early".into(),
        },
        TicketStatus::Revoked => "Ended: access revoked".into(),
        TicketStatus::RevocationFailed => "Revocation failed: an operator is needed".into(),
    }
}

/// The card of access ticket `ticket` at `now`.
pub fn card(ticket: &Ticket, policy: &NotifyPolicy, portal_url: Option<&str>, now: DateTime<Utc>) -> Message {
    let r = ticket.request();
    let (path, scope, sensitive) = match ticket.access() {
        Some(a) => (
            a.path.to_string(),
            crate::access_policy::describe(&a.scope),
            a.sensitive_tables.iter().chain(&a.sensitive_schemas).cloned().collect::<Vec<_>>(),
        ),
        None => (ticket.category().to_owned(), String::new(), Vec::new()),
    };
    let window = ticket.expires_at() - ticket.starts_at();
    let decision = match ticket.approvals_required() {
        0 if ticket.break_glass() => "break-glass during an open incident: no approval, reviewed afterwards".to_owned(),
        0 => "approved automatically".to_owned(),
        1 => format!("one approval ({})", ticket.category()),
        n => format!("{n} approvals, one of them security or manager ({})", ticket.category()),
    };
    let mut fields = vec![
        ("Requester".to_owned(), r.requested_by.clone()),
        ("Database".to_owned(), r.target.to_string()),
        ("Path".to_owned(), path.clone()),
        ("Scope".to_owned(), scope),
        (
            "Window".to_owned(),
            format!("{} min, until {}", window.num_minutes(), ticket.expires_at().format("%Y-%m-%d %H:%M UTC")),
        ),
        ("Justification".to_owned(), r.justification.clone().unwrap_or_else(|| "(none)".into())),
        (
            "Sensitive".to_owned(),
            if sensitive.is_empty() { "no".into() } else { format!("yes: {}", sensitive.join(", ")) },
        ),
        ("Policy".to_owned(), decision),
    ];
    if let Some(incident) = &r.incident_id {
        fields.push(("Incident".to_owned(), incident.clone()));
    }
    let pending = ticket.status_at(now) == TicketStatus::PendingApproval;
    let in_chat = approvable_in_chat(ticket, policy);
    let status = status_line(ticket, now);
    let title = format!("{} asks for {path} access to {}", r.requested_by, r.target);
    Message {
        text: format!("{title}: {status}"),
        card: Some(Card {
            ticket: ticket.id().to_owned(),
            title,
            fields,
            status,
            approve: pending && in_chat.is_ok(),
            deny: pending,
            approve_elsewhere: if pending { in_chat.err() } else { None },
            link: portal_url.map(|base| format!("{}/requests/{}", base.trim_end_matches('/'), ticket.id())),
        }),
    }
}

/// The direct message telling the requester of `ticket` the `news`.
pub fn requester_message(ticket: &Ticket, news: &RequesterNews, portal_url: Option<&str>) -> Message {
    let r = ticket.request();
    let what = format!(
        "your {} access to {} ({})",
        ticket.access().map_or(ticket.category().to_owned(), |a| a.path.to_string()),
        r.target,
        ticket.id()
    );
    let text = match news {
        RequesterNews::Approved if ticket.approvals().is_empty() => {
            format!("In force: {what}, approved automatically.")
        }
        RequesterNews::Approved => format!("Approved: {what} by {}.", approvers_line(ticket)),
        RequesterNews::Issued => format!("Issued: the credential of {what} is ready to be shown once in the portal."),
        RequesterNews::IssueRefused { reason } => format!("Refused: {what} could not be issued: {reason}"),
        RequesterNews::Denied { by, reason } if reason.is_empty() => format!("Denied: {what}, by {by}."),
        RequesterNews::Denied { by, reason } => format!("Denied: {what}, by {by}: {reason}"),
        RequesterNews::Expired => format!("Expired: {what} was not approved in time; nothing was issued."),
        RequesterNews::ExpiresSoon { at } => format!("Ends soon: {what} ends at {}.", at.format("%H:%M UTC")),
        RequesterNews::Revoked => format!("Revoked: {what} has ended."),
    };
    let text = match portal_url {
        Some(base) => format!("{text} {}/requests/{}", base.trim_end_matches('/'), ticket.id()),
        None => text,
    };
    Message { text, card: None }
}

// ---- delivery ----------------------------------------------------------------

/// What one [`deliver`] run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Notices delivered.
    pub delivered: usize,
    /// Notices that failed and wait for a retry.
    pub retrying: usize,
    /// Notices given up, with their reason.
    pub dead: usize,
}

/// Delivers up to `limit` notices due at `now` through `chat`, reading each
/// ticket as it now is: cards posted once per channel and updated after,
/// direct messages to the requester and approvers, alerts to the security
/// channel. Each attempt is settled in the queue: delivered, retried later
/// ([`RETRY`]), or dead-lettered with its reason.
pub async fn deliver<Q, S, C>(
    queue: &Q,
    store: &S,
    chat: &C,
    registry: &PolicyRegistry,
    portal_url: Option<&str>,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Delivery, StoreError>
where
    Q: NoticeQueue + Sync,
    S: TicketStore + Sync,
    C: Chat + Sync,
{
    let mut done = Delivery::default();
    let Some(policy) = &registry.notify else { return Ok(done) };
    for item in queue.due(now, limit).await? {
        let attempt = send(queue, store, chat, registry, policy, portal_url, &item.notice, now).await;
        let outcome = match attempt {
            Ok(()) => Settled::Delivered,
            Err(Failure::Store(e)) => return Err(e),
            Err(Failure::Chat(ChatError::Permanent(reason))) => Settled::Dead { reason },
            Err(Failure::Chat(ChatError::Transient(reason))) if item.attempts + 1 >= RETRY.max_attempts => {
                Settled::Dead { reason: format!("{} attempts failed, the last: {reason}", item.attempts + 1) }
            }
            Err(Failure::Chat(ChatError::Transient(reason))) => {
                let delay = chrono::TimeDelta::from_std(RETRY.ceiling(item.attempts)).unwrap_or(chrono::TimeDelta::MAX);
                Settled::Retry { at: now + delay, reason }
            }
        };
        match &outcome {
            Settled::Delivered => done.delivered += 1,
            Settled::Retry { reason, at } => {
                tracing::warn!(notice = %item.key, attempts = item.attempts + 1, retry_at = %at, error = %reason, "notice not delivered; retried later");
                done.retrying += 1;
            }
            Settled::Dead { reason } => {
                tracing::error!(notice = %item.key, error = %reason, "notice dead-lettered");
                done.dead += 1;
            }
        }
        queue.settle(&item.key, &outcome, now).await?;
    }
    Ok(done)
}

enum Failure {
    Store(StoreError),
    Chat(ChatError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl From<ChatError> for Failure {
    fn from(e: ChatError) -> Self {
        Failure::Chat(e)
    }
}

#[allow(clippy::too_many_arguments)]
async fn send<Q, S, C>(
    queue: &Q,
    store: &S,
    chat: &C,
    registry: &PolicyRegistry,
    policy: &NotifyPolicy,
    portal_url: Option<&str>,
    notice: &Notice,
    now: DateTime<Utc>,
) -> Result<(), Failure>
where
    Q: NoticeQueue + Sync,
    S: TicketStore + Sync,
    C: Chat + Sync,
{
    let ticket_of = |id: &str| {
        let id = id.to_owned();
        async move {
            match store.ticket(&id).await? {
                Some(t) => Ok(t.value),
                None => Err(Failure::Chat(ChatError::Permanent(format!("no ticket {id}")))),
            }
        }
    };
    match notice {
        Notice::Card { ticket } => {
            let t = ticket_of(ticket).await?;
            let message = card(&t, policy, portal_url, now);
            let posted = queue.posted(ticket).await?;
            let path = t.access().map(|a| a.path.to_string()).unwrap_or_default();
            for channel in policy.channels_for(t.request().target.as_str(), &path) {
                if !posted.iter().any(|p| p.channel == channel) {
                    let p = chat.post(channel, &message).await?;
                    queue.record_posted(ticket, &p).await?;
                }
            }
            for p in &posted {
                chat.update(p, &message).await?;
            }
        }
        Notice::ApproverDms { ticket } => {
            let t = ticket_of(ticket).await?;
            if t.status_at(now) != TicketStatus::PendingApproval {
                return Ok(());
            }
            let message = card(&t, policy, portal_url, now);
            let posted = queue.posted(ticket).await?;
            for email in chat_approvers(&t, registry) {
                let Some(user) = chat.user_by_email(&email).await? else {
                    tracing::warn!(ticket = %ticket, approver = %email, "no Slack user has this approver's email");
                    continue;
                };
                // once per approver, whatever the retries
                if posted.iter().any(|p| p.to.as_deref() == Some(user.as_str())) {
                    continue;
                }
                let p = Posted { to: Some(user.clone()), ..chat.post(&user, &message).await? };
                queue.record_posted(ticket, &p).await?;
            }
        }
        Notice::Requester { ticket, news } => {
            if !policy.dm_requester {
                return Ok(());
            }
            let t = ticket_of(ticket).await?;
            let email = t.request().requested_by.clone();
            let user = chat
                .user_by_email(&email)
                .await?
                .ok_or_else(|| ChatError::Permanent(format!("no Slack user has the requester's email {email}")))?;
            chat.post(&user, &requester_message(&t, news, portal_url)).await?;
        }
        Notice::Security { title, text, .. } => {
            let Some(channel) = &policy.security_channel else { return Ok(()) };
            chat.post(channel, &Message { text: format!("{title}: {text}"), card: None }).await?;
        }
    }
    Ok(())
}

// ---- deciding from chat --------------------------------------------------------

/// What a button asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatDecision {
    /// Approve.
    Approve,
    /// Deny.
    Deny,
}

/// Why a decision from chat was not taken; each is said to the person who clicked.
#[derive(Debug, thiserror::Error)]
pub enum ChatRefusal {
    /// The registry has no `notify` section.
    #[error("approvals in Slack are not configured (the registry has no notify section)")]
    NotConfigured,
    /// The clicker is not an approver the registry names.
    #[error(
        "{person} is not an approver of this request in Slack (the registry's approver roles and notify.slack_approvers)"
    )]
    NotEligible {
        /// Who clicked.
        person: String,
    },
    /// The request is not approved in chat.
    #[error("ticket {ticket} is not approved in Slack: {reason}{}", link.as_deref().map(|l| format!(" ({l})")).unwrap_or_default())]
    NotInChat {
        /// The ticket.
        ticket: String,
        /// Why.
        reason: String,
        /// Its page in the portal.
        link: Option<String>,
    },
    /// The step itself was refused (the requester, a second time, not pending) or failed.
    #[error(transparent)]
    Flow(#[from] TicketFlowError),
}

/// Takes `decision` on ticket `id` for `by`, a person chat vouches for: only
/// an approver the registry names, and an approval only where
/// [`approvable_in_chat`] allows; the step and its journal events are
/// [`ticket_flow`]'s, as from the portal or the API.
pub async fn decide_in_chat<S>(
    store: &S,
    registry: &PolicyRegistry,
    id: &str,
    by: &Actor,
    decision: ChatDecision,
    portal_url: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Ticket, ChatRefusal>
where
    S: TicketStore + AuditJournal + Sync,
{
    let Some(policy) = &registry.notify else { return Err(ChatRefusal::NotConfigured) };
    let ticket = store
        .ticket(id)
        .await
        .map_err(TicketFlowError::from)?
        .ok_or_else(|| TicketFlowError::UnknownTicket(id.to_owned()))?
        .value;
    let eligible = chat_approvers(&ticket, registry).iter().any(|e| e.eq_ignore_ascii_case(&by.id));
    if !eligible && !ticket.is_requester(&by.id) {
        return Err(ChatRefusal::NotEligible { person: by.id.clone() });
    }
    match decision {
        ChatDecision::Approve => {
            if let Err(reason) = approvable_in_chat(&ticket, policy) {
                let link = portal_url.map(|base| format!("{}/requests/{id}", base.trim_end_matches('/')));
                return Err(ChatRefusal::NotInChat { ticket: id.to_owned(), reason, link });
            }
            Ok(ticket_flow::approve_ticket(store, id, by, now).await?)
        }
        ChatDecision::Deny => Ok(ticket_flow::deny_ticket(store, id, by, "denied in Slack", now).await?),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::access_policy::AccessPath;
    use crate::identity::Voucher;
    use crate::memory_store::{MemoryStore, access_request as request, at, opened_under, ready};

    const REGISTRY: &str = r#"
version: "3.0"
owner: security@example.com
approver: ciso@example.com
categories:
  ops: { framework: SOC2, max_ttl: 24h, approvals: 1, weight_factor: 0.25 }
routes:
  - { match: {}, category: ops }
access:
  approver_roles: { security: [ciso@example.com] }
  paths:
    read-only:   { max_ttl: 8h, approvals: single }
    migration:   { max_ttl: 4h, approvals: dual }
    break-glass: { max_ttl: 30m }
notify:
  channels:
    - { channel: C0ORDERS, targets: ["orders-*"] }
  security_channel: C0SEC
  slack_approvers: [dba@example.com]
  dm_approvers: true
"#;

    fn registry() -> PolicyRegistry {
        PolicyRegistry::load(&[("r.yaml".into(), REGISTRY.into())]).expect("the test registry loads")
    }

    fn slack(email: &str) -> Actor {
        Actor {
            id: email.into(),
            groups: Default::default(),
            signed_in_at: None,
            vouched_by: Voucher::Slack { team: "T1".into(), user: "U1".into() },
        }
    }

    fn open(store: &MemoryStore, id: &str, path: AccessPath) -> Ticket {
        opened_under(store, &request(id, path, "1h", None), &registry())
    }

    /// `email`'s `decision` on ticket `id` from Slack at `now`.
    fn decide(
        store: &MemoryStore,
        id: &str,
        email: &str,
        decision: ChatDecision,
        now: DateTime<Utc>,
    ) -> Result<Ticket, ChatRefusal> {
        ready(decide_in_chat(store, &registry(), id, &slack(email), decision, None, now))
    }

    /// Slack as the tests see it: every call recorded; down when told.
    #[derive(Default)]
    struct FakeChat {
        calls: Mutex<Vec<String>>,
        down: Mutex<Option<ChatError>>,
    }

    impl FakeChat {
        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
        fn answer(&self, call: String) -> Result<(), ChatError> {
            if let Some(e) = self.down.lock().unwrap().clone() {
                return Err(e);
            }
            self.calls.lock().unwrap().push(call);
            Ok(())
        }
    }

    impl Chat for FakeChat {
        async fn post(&self, channel: &str, message: &Message) -> Result<Posted, ChatError> {
            let n = self.calls.lock().unwrap().len();
            self.answer(format!("post {channel}: {}", message.text))?;
            let channel = channel.replace('U', "D");
            Ok(Posted { channel, ts: format!("1.{n}"), to: None })
        }
        async fn update(&self, posted: &Posted, message: &Message) -> Result<(), ChatError> {
            self.answer(format!("update {}: {}", posted.channel, message.text))
        }
        async fn user_by_email(&self, email: &str) -> Result<Option<String>, ChatError> {
            if let Some(e) = self.down.lock().unwrap().clone() {
                return Err(e);
            }
            Ok(match email {
                "alice@example.com" => Some("UALICE".into()),
                "dba@example.com" => Some("UDBA".into()),
                _ => None,
            })
        }
    }

    fn run(store: &MemoryStore, chat: &FakeChat, now: DateTime<Utc>) -> Delivery {
        let registry = registry();
        ready(pump(store, store, &registry, now)).unwrap();
        ready(deliver(store, store, chat, &registry, Some("https://portal.example.com"), now, 50)).unwrap()
    }

    #[test]
    fn the_registry_never_lets_two_approvals_or_break_glass_be_given_in_slack() {
        for path in ["migration", "break-glass"] {
            let text =
                REGISTRY.replace("dm_approvers: true", &format!("dm_approvers: true\n  approve_in_slack: [{path}]"));
            let e = PolicyRegistry::load(&[("r.yaml".into(), text)]).unwrap_err();
            assert_eq!(e.path, "notify.approve_in_slack", "{e}");
        }
        let text = REGISTRY.replace("dm_approvers: true", "dm_approvers: true\n  approve_in_slack: [read-write]");
        let e = PolicyRegistry::load(&[("r.yaml".into(), text)]).unwrap_err();
        assert!(e.message.contains("unknown access path"), "{e}");
    }

    #[test]
    fn a_request_posts_its_card_once_and_each_decision_updates_it_and_tells_the_requester() {
        let store = MemoryStore::default();
        let chat = FakeChat::default();
        // the first pump starts at the journal's head: history is not announced
        open(&store, "old", AccessPath::ReadOnly);
        assert_eq!(run(&store, &chat, at(0)), Delivery::default());

        let t = open(&store, "r1", AccessPath::ReadOnly);
        let done = run(&store, &chat, at(1));
        assert_eq!(done.delivered, 2, "{:?}", chat.calls());
        let calls = chat.calls();
        assert!(
            calls[0].starts_with(
                "post C0ORDERS: alice@example.com asks for read-only access to orders-prod: Waiting for one more approval"
            ),
            "{calls:?}"
        );
        // the approvers' DMs: ciso has no Slack user, dba does
        assert!(calls[1].starts_with("post UDBA: "), "{calls:?}");
        let card =
            card(&t, registry().notify.as_ref().unwrap(), Some("https://portal.example.com"), at(1)).card.unwrap();
        assert!(card.approve && card.deny, "a single approval of read-only is given in Slack");
        assert_eq!(card.link.as_deref(), Some(format!("https://portal.example.com/requests/{}", t.id()).as_str()));

        let approved = decide(&store, t.id(), "dba@example.com", ChatDecision::Approve, at(2)).unwrap();
        assert_eq!(approved.status(), TicketStatus::Active);
        assert_eq!(approved.approvals()[0].vouched_by, Some(Voucher::Slack { team: "T1".into(), user: "U1".into() }));
        run(&store, &chat, at(2));
        let calls = chat.calls();
        let updates: Vec<&String> = calls.iter().filter(|c| c.starts_with("update")).collect();
        assert_eq!(updates.len(), 4, "both cards, after the approval and the activation: {calls:?}");
        assert!(updates.iter().all(|u| u.contains("Approved by dba@example.com")), "{updates:?}");
        assert!(calls.iter().any(|c| c.starts_with("post UALICE: Approved: your read-only access")), "{calls:?}");
        assert_eq!(calls.iter().filter(|c| c.starts_with("post C0ORDERS")).count(), 1, "posted once");
    }

    #[test]
    fn a_second_click_changes_nothing_and_says_why() {
        let store = MemoryStore::default();
        let t = open(&store, "r1", AccessPath::ReadOnly);
        decide(&store, t.id(), "dba@example.com", ChatDecision::Approve, at(1)).unwrap();
        let again = decide(&store, t.id(), "dba@example.com", ChatDecision::Approve, at(1));
        assert!(
            matches!(
                again,
                Err(ChatRefusal::Flow(TicketFlowError::Approval(crate::ticket::ApprovalError::NotPending(
                    TicketStatus::Active
                ))))
            ),
            "{again:?}"
        );
        assert_eq!(store.kinds("orders-prod").iter().filter(|k| *k == "ticket.approved").count(), 1);
    }

    #[test]
    fn refusals_from_chat_name_their_reason() {
        let store = MemoryStore::default();
        let t = open(&store, "r1", AccessPath::ReadOnly);
        let stranger = decide(&store, t.id(), "mallory@example.com", ChatDecision::Approve, at(1));
        assert!(matches!(stranger, Err(ChatRefusal::NotEligible { .. })), "{stranger:?}");
        let own = decide(&store, t.id(), "alice@example.com", ChatDecision::Approve, at(1));
        assert!(own.unwrap_err().to_string().contains("cannot approve"));

        let dual = open(&store, "r2", AccessPath::Migration);
        let e = ready(decide_in_chat(
            &store,
            &registry(),
            dual.id(),
            &slack("ciso@example.com"),
            ChatDecision::Approve,
            Some("https://portal.example.com"),
            at(1),
        ))
        .unwrap_err();
        let said = e.to_string();
        assert!(
            said.contains("two approvals")
                && said.contains(&format!("https://portal.example.com/requests/{}", dual.id())),
            "{said}"
        );
        assert_eq!(ready(store.ticket(dual.id())).unwrap().unwrap().value.approvals().len(), 0);

        // denying is never an escalation: an eligible approver may deny a dual request
        let denied = decide(&store, dual.id(), "ciso@example.com", ChatDecision::Deny, at(2)).unwrap();
        assert_eq!(denied.status(), TicketStatus::Denied);
        assert_eq!(status_line(&denied, at(2)), "Denied by ciso@example.com: denied in Slack");
        assert!(store.kinds("orders-prod").contains(&"ticket.denied".to_owned()));
    }

    #[test]
    fn slack_down_keeps_notices_queued_and_retries_them_later_then_dead_letters_what_cannot_go() {
        let store = MemoryStore::default();
        let chat = FakeChat::default();
        run(&store, &chat, at(0));
        open(&store, "r1", AccessPath::ReadOnly);
        *chat.down.lock().unwrap() = Some(ChatError::Transient("503 from slack.com".into()));
        let down = run(&store, &chat, at(1));
        assert_eq!((down.delivered, down.retrying), (0, 2));
        assert_eq!(run(&store, &chat, at(1)), Delivery::default(), "not due before the delay");

        *chat.down.lock().unwrap() = None;
        let back = run(&store, &chat, at(2));
        assert_eq!(back.delivered, 2, "{:?}", chat.calls());
        assert_eq!(chat.calls().iter().filter(|c| c.starts_with("post C0ORDERS")).count(), 1);

        // a permanent failure is not retried
        *chat.down.lock().unwrap() = Some(ChatError::Permanent("channel_not_found".into()));
        let t = ready(store.tickets(None)).unwrap().into_iter().find(|t| t.id().contains("")).unwrap();
        decide(&store, t.id(), "dba@example.com", ChatDecision::Deny, at(3)).unwrap();
        let dead = run(&store, &chat, at(3));
        assert_eq!(dead.dead, 2, "{dead:?}");
        let held = store.0.lock().unwrap();
        assert!(
            held.notices
                .iter()
                .any(|(_, _, s)| matches!(s, Some(Settled::Dead { reason }) if reason == "channel_not_found"))
        );
    }

    #[test]
    fn the_requester_is_warned_before_access_ends_once_per_end() {
        let store = MemoryStore::default();
        let chat = FakeChat::default();
        run(&store, &chat, at(0));
        let t = open(&store, "r1", AccessPath::ReadOnly);
        decide(&store, t.id(), "dba@example.com", ChatDecision::Approve, at(1)).unwrap();
        let tickets = ready(store.tickets(None)).unwrap();
        assert_eq!(ready(warn_expiring(&store, &tickets, &registry(), at(30))).unwrap(), 0, "too early");
        assert_eq!(ready(warn_expiring(&store, &tickets, &registry(), at(51))).unwrap(), 1);
        assert_eq!(ready(warn_expiring(&store, &tickets, &registry(), at(52))).unwrap(), 0, "once");
        run(&store, &chat, at(52));
        assert!(
            chat.calls().iter().any(|c| c.starts_with("post UALICE: Ends soon: your read-only access")),
            "{:?}",
            chat.calls()
        );
    }

    #[test]
    fn drift_and_break_glass_go_to_the_security_channel() {
        let policy = registry().notify.unwrap();
        let event = |kind: &str, detail: serde_json::Value| AuditEvent {
            chain: "orders-prod".into(),
            seq: 7,
            id: "orders-prod:7".into(),
            at: at(0),
            kind: kind.into(),
            actor: "grantwarden".into(),
            subject: "scan-1".into(),
            target: "orders-prod".into(),
            detail,
            prev_hash: String::new(),
            hash: String::new(),
        };
        let drift = notices_of(
            &event(
                "scan.completed",
                serde_json::json!({ "summary": { "status": "alert", "unauthorized": 2, "score": 12.0 } }),
            ),
            &policy,
        );
        assert!(
            matches!(&drift[..], [Keyed { notice: Notice::Security { title, .. }, .. }] if title == "Drift alert on orders-prod"),
            "{drift:?}"
        );
        let quiet = notices_of(&event("scan.completed", serde_json::json!({ "summary": { "status": "ok" } })), &policy);
        assert!(quiet.is_empty());
        let glass = notices_of(
            &event(
                "ticket.activated",
                serde_json::json!({ "category": "access:break-glass", "status": "active", "principal": "alice@example.com" }),
            ),
            &policy,
        );
        assert!(
            glass.iter().any(
                |k| matches!(&k.notice, Notice::Security { title, .. } if title.starts_with("Break-glass access in force"))
            ),
            "{glass:?}"
        );
    }
}
