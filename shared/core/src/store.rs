//! Ports: what the domain needs from a state store. shared/local implements
//! them on SQLite; the DynamoDB adapter will implement the same traits, and one
//! contract test suite should run against both.

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::report::Finding;
use crate::snapshot::TargetId;
use crate::ticket::Ticket;

/// A store that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or opened (fail secure: nothing is suppressed).
    #[error("state store unavailable: {0}")]
    Unavailable(String),
    /// A record could not be read back.
    #[error("state store record {id} is unreadable: {reason}")]
    Corrupt {
        /// Record id.
        id: String,
        /// Why.
        reason: String,
    },
    /// Someone else changed the record first (optimistic concurrency).
    #[error("ticket {0} was changed by someone else; read it again and retry")]
    Stale(String),
    /// No such record.
    #[error("no ticket {0}")]
    NotFound(String),
}

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

/// Tickets: never deleted, updated only conditionally.
pub trait TicketStore {
    /// Stores a new ticket unless one with its id exists.
    fn put_ticket(&self, ticket: &Ticket) -> impl Future<Output = Result<PutOutcome, StoreError>> + Send;
    /// One ticket with its version.
    fn ticket(&self, id: &str) -> impl Future<Output = Result<Option<Versioned<Ticket>>, StoreError>> + Send;
    /// All tickets, or those of one target, oldest first.
    fn tickets(&self, target: Option<&TargetId>) -> impl Future<Output = Result<Vec<Ticket>, StoreError>> + Send;
    /// Replaces a ticket if its version is still `expected`.
    fn update_ticket(&self, ticket: &Ticket, expected: u64) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// When a finding was first and last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingAge {
    /// First scan that reported it (since it was last closed).
    pub first_seen: DateTime<Utc>,
    /// Latest scan that reported it.
    pub last_seen: DateTime<Utc>,
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

/// The identity of a finding across scans: kind, grantee, privilege and object.
pub fn finding_key(f: &Finding) -> String {
    serde_json::to_string(&(f.kind, &f.grantee, &f.privilege, &f.object)).expect("a finding always serializes")
}
