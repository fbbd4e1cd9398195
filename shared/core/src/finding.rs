//! What a finding is, before any report holds it: its kind (the contract's
//! classification of reality against the baseline) and its age in the store.
//! A leaf module: scoring weighs kinds, the report counts them, the stores
//! keep ages.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a finding says about reality versus the baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// Held by a declared role (or PUBLIC) but not declared.
    Unauthorized,
    /// Declared but not held.
    Missing,
    /// Held by a role the baseline neither declares nor ignores.
    Orphaned,
    /// Held and covered by an active exception ticket.
    Excepted,
    /// Held and covered only by an expired ticket.
    ExpiredException,
    /// Could not be routed to any policy.
    Untagged,
    /// Held as declared (or as nothing declares), but dangerous as it stands:
    /// on MySQL and MariaDB an anonymous or passwordless account, a privileged
    /// account reachable from any host, a definer's rights lent to callers.
    /// Scored, but not drift: the baseline cannot make it safe.
    Exposure,
    /// Shown for context, never scored (PUBLIC's built-in defaults, superusers).
    Observed,
}

impl FindingKind {
    /// The kinds counted in the summary, in contract order.
    pub const COUNTED: [FindingKind; 7] = [
        FindingKind::Unauthorized,
        FindingKind::Missing,
        FindingKind::Orphaned,
        FindingKind::Excepted,
        FindingKind::ExpiredException,
        FindingKind::Untagged,
        FindingKind::Exposure,
    ];

    /// The contract spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Unauthorized => "unauthorized",
            FindingKind::Missing => "missing",
            FindingKind::Orphaned => "orphaned",
            FindingKind::Excepted => "excepted",
            FindingKind::ExpiredException => "expired_exception",
            FindingKind::Untagged => "untagged",
            FindingKind::Exposure => "exposure",
            FindingKind::Observed => "observed",
        }
    }

    /// Whether this kind is drift (plan exits 2).
    pub fn is_drift(self) -> bool {
        !matches!(self, FindingKind::Excepted | FindingKind::Exposure | FindingKind::Observed)
    }
}

/// When a finding was first and last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingAge {
    /// First scan that reported it (since it was last closed).
    pub first_seen: DateTime<Utc>,
    /// Latest scan that reported it.
    pub last_seen: DateTime<Utc>,
}
