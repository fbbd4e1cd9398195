//! Extraction errors and which of them are worth retrying.

use std::io;

use tokio_postgres::error::SqlState;

/// Whether trying again can help.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The connection dropped, the server restarted, a serialization failure or timeout: retry.
    Transient,
    /// Permission denied, bad credentials, unknown database, bad data: retrying repeats it.
    Permanent,
}

/// Classifies a driver error.
pub fn classify(e: &tokio_postgres::Error) -> ErrorClass {
    // concurrent GRANT/REVOKE on one object: the catalog row changed under us; a retry reads it anew
    if e.as_db_error()
        .is_some_and(|d| d.code() == &SqlState::INTERNAL_ERROR && d.message() == "tuple concurrently updated")
    {
        return ErrorClass::Transient;
    }
    if let Some(code) = e.code() {
        return classify_code(code);
    }
    if e.is_closed() {
        return ErrorClass::Transient;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            return match io.kind() {
                io::ErrorKind::ConnectionRefused
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::NotConnected
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::TimedOut
                | io::ErrorKind::UnexpectedEof
                | io::ErrorKind::Interrupted => ErrorClass::Transient,
                _ => ErrorClass::Permanent,
            };
        }
        source = s.source();
    }
    // tokio-postgres reports a connect timeout without a source
    if e.to_string().contains("timeout") { ErrorClass::Transient } else { ErrorClass::Permanent }
}

fn classify_code(code: &SqlState) -> ErrorClass {
    let c = code.code();
    let transient = c.starts_with("08") // connection exception
        || c.starts_with("53") // insufficient resources (too many connections, out of memory)
        || c.starts_with("40") // serialization failure, deadlock
        || [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::LOCK_NOT_AVAILABLE,
            SqlState::QUERY_CANCELED,
            SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
        ]
        .contains(code);
    if transient { ErrorClass::Transient } else { ErrorClass::Permanent }
}

/// Why a chunk or a scan failed.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The connection string does not parse.
    #[error("invalid database URL: {0}")]
    Config(String),
    /// A query or connection failed.
    #[error("{context}: {}", describe(.source))]
    Database {
        /// What was being done.
        context: String,
        /// Driver error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A catalog row held something this code cannot read.
    #[error("catalog row from {query}: {field}: {message}")]
    Row {
        /// Which query.
        query: &'static str,
        /// Which column.
        field: &'static str,
        /// What was wrong.
        message: String,
    },
}

impl ExtractError {
    /// Retryable or not.
    pub fn class(&self) -> ErrorClass {
        match self {
            ExtractError::Database { source, .. } => classify(source),
            _ => ErrorClass::Permanent,
        }
    }

    pub(crate) fn db(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> ExtractError {
        let context = context.into();
        move |source| ExtractError::Database { context, source }
    }
}

/// The server's message and SQLSTATE when there is one, else the driver's text.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => {
            let mut s = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(inner) = source {
                s.push_str(&format!(": {inner}"));
                source = inner.source();
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified() {
        assert_eq!(classify_code(&SqlState::ADMIN_SHUTDOWN), ErrorClass::Transient);
        assert_eq!(classify_code(&SqlState::T_R_SERIALIZATION_FAILURE), ErrorClass::Transient);
        assert_eq!(classify_code(&SqlState::CONNECTION_FAILURE), ErrorClass::Transient);
        assert_eq!(classify_code(&SqlState::TOO_MANY_CONNECTIONS), ErrorClass::Transient);
        assert_eq!(classify_code(&SqlState::LOCK_NOT_AVAILABLE), ErrorClass::Transient);
        assert_eq!(classify_code(&SqlState::INSUFFICIENT_PRIVILEGE), ErrorClass::Permanent);
        assert_eq!(classify_code(&SqlState::INVALID_PASSWORD), ErrorClass::Permanent);
        assert_eq!(classify_code(&SqlState::UNDEFINED_DATABASE), ErrorClass::Permanent);
    }
}
