//! Ports: what the domain needs from a state store. shared/local implements
//! them on SQLite and shared/aws on DynamoDB; one contract suite
//! (grantwarden-testkit's `contract`) runs against both. The store's other
//! ports sit beside the rules that use them: the journal in [`crate::audit`],
//! incidents in [`crate::incident`], digests in [`crate::digest`], the scan
//! record in [`crate::pipeline`] (docs/ARCHITECTURE.md lists every port).
//!
//! [`ReplayGuard`] is the one port that holds no evidence: it remembers which
//! signed requests were already accepted, for as long as their signature could
//! be accepted at all, so each is accepted once.

use std::future::Future;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::audit::NewEvent;
use crate::error::StoreError;
use crate::finding::FindingAge;
use crate::report::Finding;
use crate::snapshot::TargetId;
use crate::ticket::{Ticket, TicketStatus};

/// The result of putting a ticket, idempotent on its id.
#[derive(Debug, Clone, PartialEq)]
pub enum PutOutcome {
    /// New.
    Created(Ticket),
    /// The same delivery again: the stored ticket, unchanged.
    Existing(Ticket),
    /// The same delivery id with a different payload: refused.
    Conflict(Ticket),
}

/// A stored ticket and its version, for conditional updates.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// The record.
    pub value: T,
    /// Incremented on every write.
    pub version: u64,
}

/// Journal events stored with a ticket change and not yet on their chain:
/// the ticket's outbox. A ticket and the events that record its change are
/// written together, in one conditional write, so no change is ever stored
/// without them; [`crate::outbox`] then puts them on the chain and clears
/// them, and picks up what a writer that died in between left.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Unjournaled {
    /// The ticket.
    pub ticket: String,
    /// The ticket version whose write carried them.
    pub version: u64,
    /// When whoever holds the entry took it: its writer (the events' time),
    /// or the last recoverer to take it over. Nobody else acts on it until
    /// [`crate::outbox::CLAIM`] later.
    pub claimed_at: DateTime<Utc>,
    /// Set when a recoverer or the change-stream consumer took the entry over:
    /// the seq of its chain's head then. Whatever of its events is on the chain
    /// was appended after it.
    pub after: Option<u64>,
    /// The events, in the order they are to be appended.
    pub events: Vec<NewEvent>,
}

impl Unjournaled {
    /// The entry a write of version `version` of ticket `ticket` makes with
    /// `events`, claimed by its writer from the events' time.
    pub fn new(ticket: &str, version: u64, events: &[NewEvent]) -> Self {
        let claimed_at = Self::writers_claim(events);
        Self { ticket: ticket.to_owned(), version, claimed_at, after: None, events: events.to_vec() }
    }

    /// Whether nobody took it over since its writer wrote it.
    pub fn is_fresh(&self) -> bool {
        self.after.is_none() && self.claimed_at == Self::writers_claim(&self.events)
    }

    /// When a writer's claim on the entry of `events` starts: their time.
    fn writers_claim(events: &[NewEvent]) -> DateTime<Utc> {
        events.iter().map(|e| e.at).max().unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

/// Tickets: never deleted, updated only conditionally. Every write carries
/// the journal events that record it (see [`Unjournaled`]); use the
/// functions of [`crate::outbox`], which also put them on the chain.
pub trait TicketStore {
    /// Stores a new ticket, with `events` in its outbox, unless one with its
    /// id exists (then nothing is written).
    fn put_ticket(
        &self,
        ticket: &Ticket,
        events: &[NewEvent],
    ) -> impl Future<Output = Result<PutOutcome, StoreError>> + Send;
    /// One ticket with its version.
    fn ticket(&self, id: &str) -> impl Future<Output = Result<Option<Versioned<Ticket>>, StoreError>> + Send;
    /// All tickets, or those of one target, oldest first.
    fn tickets(&self, target: Option<&TargetId>) -> impl Future<Output = Result<Vec<Ticket>, StoreError>> + Send;
    /// Replaces a ticket if its version is still `expected`, adding `events`
    /// to its outbox under the new version, which it returns.
    fn update_ticket(
        &self,
        ticket: &Ticket,
        expected: u64,
        events: &[NewEvent],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// The outbox entries of the tickets of `target` not yet cleared, oldest
    /// version first per ticket.
    fn unjournaled(&self, target: &TargetId) -> impl Future<Output = Result<Vec<Unjournaled>, StoreError>> + Send;
    /// Takes `entry` over at `now` if it is still as read (claimed at
    /// `entry.claimed_at`), recording `after` (its chain's head seq): the entry
    /// as it now stands, or `None` when it was cleared or taken over by
    /// someone else first.
    fn reclaim(
        &self,
        entry: &Unjournaled,
        now: DateTime<Utc>,
        after: u64,
    ) -> impl Future<Output = Result<Option<Unjournaled>, StoreError>> + Send;
    /// Whether a consumer of this store's change stream journals new outbox
    /// entries ([`crate::outbox::journal_fresh`]; the tickets stream on AWS),
    /// so writers leave them to it: one appender per stream shard instead of
    /// every request racing for its chain's head. By default the writer does.
    fn journals_from_stream(&self) -> bool {
        false
    }
    /// Clears one outbox entry (by ticket and version) once its events are on
    /// the chain; a cleared or unknown entry: nothing to do.
    fn journaled(&self, entry: &Unjournaled) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The tickets of `target` that may still need revoking (pending, active,
    /// revoke requested): what a sweep looks at. This default reads every ticket
    /// of the target; a store with an index of the open ones answers from it.
    fn open_tickets(&self, target: &TargetId) -> impl Future<Output = Result<Vec<Ticket>, StoreError>> + Send
    where
        Self: Sync,
    {
        async move {
            let all = self.tickets(Some(target)).await?;
            Ok(all
                .into_iter()
                .filter(|t| {
                    matches!(
                        t.status(),
                        TicketStatus::PendingApproval | TicketStatus::Active | TicketStatus::RevokeRequested
                    )
                })
                .collect())
        }
    }
}

/// What recording one scan's findings did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Recorded {
    /// The ages, in the order of the findings recorded.
    pub ages: Vec<FindingAge>,
    /// Findings of the target this (complete) scan closed: no longer reported.
    pub closed: Vec<Finding>,
}

/// Findings with their age.
pub trait FindingStore {
    /// Records the findings of one scan of `target` at `at` and returns their ages
    /// in the same order. With `complete`, findings of the target that this scan
    /// no longer reports are closed (and returned); a partial scan closes nothing.
    fn record_findings(
        &self,
        target: &TargetId,
        scan_id: &str,
        findings: &[Finding],
        at: DateTime<Utc>,
        complete: bool,
    ) -> impl Future<Output = Result<Recorded, StoreError>> + Send;

    /// Every open finding of `target` with its age, oldest first (the remediation report).
    fn open_with_age(
        &self,
        target: &TargetId,
    ) -> impl Future<Output = Result<Vec<(Finding, FindingAge)>, StoreError>> + Send;

    /// Open untagged findings of `target` (unroutable input recorded at intake):
    /// they stay in every report until resolved.
    fn open_untagged(&self, target: &TargetId) -> impl Future<Output = Result<Vec<Finding>, StoreError>> + Send;
}

pub use crate::report::finding_key;

/// The identity of one accepted request: `<scheme>:<hex sha256 of the bytes that
/// were authenticated>` (for a grantwarden signature, its canonical signed string;
/// for a vendor webhook, the body). Two requests with the same key are the same
/// request; a signature can only be replayed under its own key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReplayKey(String);

impl ReplayKey {
    /// The key of `authenticated` under `scheme` (`v1`, `v2`, `pagerduty`...): the
    /// scheme keeps two schemes that authenticate the same bytes apart.
    pub fn new(scheme: &str, authenticated: &[u8]) -> Self {
        Self(format!("{scheme}:{}", hex::encode(Sha256::digest(authenticated))))
    }

    /// The key scoped to the registry sender whose key signed the request: the
    /// same request signed by two senders is two requests (one refused for its
    /// sender must not use up the other's). `webhook`'s keys read as before
    /// senders existed, so no record kept across an upgrade is missed.
    pub fn for_sender(self, sender: &str) -> Self {
        if sender == crate::identity::WEBHOOK_SENDER { self } else { Self(format!("sender:{sender}/{}", self.0)) }
    }

    /// The key as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ReplayKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Requests already accepted, each remembered until its signature expires.
pub trait ReplayGuard {
    /// Records `key` until `until` and says whether this is its first use: `false`
    /// when the key is on record and its record has not expired at `now`. Atomic:
    /// of concurrent calls with one key, one gets `true`. An expired record counts
    /// as absent (DynamoDB deletes expired items lazily, within days).
    fn first_use(
        &self,
        key: &ReplayKey,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Forgets `key`: the request it admitted failed on our side (a 5xx), so its
    /// sender's retry of the very same bytes must pass.
    fn forget(&self, key: &ReplayKey) -> impl Future<Output = Result<(), StoreError>> + Send;
}
