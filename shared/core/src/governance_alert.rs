//! A governance alert: a figure of the tickets past what the registry allows,
//! as a typed value. A leaf: the metrics raise it ([`crate::governance::governance`]),
//! the raising use case ([`crate::raise_alerts`]) journals it once as
//! `governance.alert`, and the reports show it.
//!
//! On the wire (the report's `governance.alerts`, the journal event's
//! `detail.alert`) an alert is its sentence, exactly as it always was, so
//! reports and journals written before it was typed read back as the same
//! alert: a month past the break-glass limit raised then is not raised again.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What is past a threshold.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GovernanceAlert {
    /// Break-glass was used more often in `month` than the registry's monthly `limit`.
    /// The month names the alert, not the count: a further use that month raises nothing new.
    BreakGlassOverLimit {
        /// The registry's `break_glass_alert_per_month`.
        limit: u32,
        /// `YYYY-MM`.
        month: String,
    },
    /// Revocations failed for good and wait for a person.
    RevocationsFailed {
        /// How many.
        count: usize,
    },
    /// Credentials given write access whose audited sessions wrote nothing.
    UnusedWriteAccess {
        /// How many.
        count: usize,
    },
    /// An alert sentence this version does not know (from a newer writer): kept as read.
    Unrecognized(String),
}

impl std::fmt::Display for GovernanceAlert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GovernanceAlert::BreakGlassOverLimit { limit, month } => {
                write!(f, "break-glass used more than the registry's {limit} times in {month}")
            }
            GovernanceAlert::RevocationsFailed { count } => {
                write!(f, "{count} revocation(s) failed and wait for a person")
            }
            GovernanceAlert::UnusedWriteAccess { count } => {
                write!(f, "{count} credential(s) given write access used none")
            }
            GovernanceAlert::Unrecognized(text) => f.write_str(text),
        }
    }
}

impl GovernanceAlert {
    /// The alert a sentence on the wire stands for (the inverse of `Display`).
    pub fn from_sentence(text: &str) -> Self {
        let count = |rest: &str| rest.parse::<usize>().ok();
        if let Some(rest) = text.strip_prefix("break-glass used more than the registry's ")
            && let Some((limit, month)) = rest.split_once(" times in ")
            && let Ok(limit) = limit.parse()
        {
            return GovernanceAlert::BreakGlassOverLimit { limit, month: month.to_owned() };
        }
        if let Some(n) = text.strip_suffix(" revocation(s) failed and wait for a person").and_then(count) {
            return GovernanceAlert::RevocationsFailed { count: n };
        }
        if let Some(n) = text.strip_suffix(" credential(s) given write access used none").and_then(count) {
            return GovernanceAlert::UnusedWriteAccess { count: n };
        }
        GovernanceAlert::Unrecognized(text.to_owned())
    }
}

impl From<&str> for GovernanceAlert {
    fn from(text: &str) -> Self {
        Self::from_sentence(text)
    }
}

/// Compares with a sentence as written on the wire.
impl PartialEq<&str> for GovernanceAlert {
    fn eq(&self, other: &&str) -> bool {
        *self == Self::from_sentence(other)
    }
}

impl Serialize for GovernanceAlert {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GovernanceAlert {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        Ok(Self::from_sentence(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alert_is_its_sentence_on_the_wire_and_reads_back_as_itself() {
        let alerts = [
            GovernanceAlert::BreakGlassOverLimit { limit: 3, month: "2026-11".into() },
            GovernanceAlert::RevocationsFailed { count: 2 },
            GovernanceAlert::UnusedWriteAccess { count: 1 },
            GovernanceAlert::Unrecognized("something new".into()),
        ];
        let wire = serde_json::to_value(&alerts).unwrap();
        assert_eq!(
            wire,
            serde_json::json!([
                "break-glass used more than the registry's 3 times in 2026-11",
                "2 revocation(s) failed and wait for a person",
                "1 credential(s) given write access used none",
                "something new"
            ])
        );
        assert_eq!(serde_json::from_value::<Vec<GovernanceAlert>>(wire).unwrap(), alerts);
    }
}
