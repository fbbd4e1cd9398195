//! The errors many modules share, in a leaf: a store that failed, and an
//! input field that is wrong (a request body, a webhook, a registry section).

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

/// One field of an input that is wrong, and why: the error names the field
/// (a JSON path in a body, a dotted path in a registry file) so the sender can
/// correct it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    /// Where: the field's path (`body` for the whole of it).
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FieldError {
    /// The error of `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into() }
    }
}
