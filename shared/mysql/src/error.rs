//! Errors of a MySQL or MariaDB scan, and which of them are worth a retry.

/// Whether an error may pass if the work is tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Connection lost, too many connections, a lock wait or statement timeout, a deadlock.
    Transient,
    /// Anything else: a missing privilege, a bad URL, a row we cannot decode.
    Permanent,
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The connection string cannot be used.
    #[error("connection string: {0}")]
    Config(String),
    /// The server or the connection failed while doing `what`.
    #[error("{what}: {source}")]
    Db {
        /// What was being done.
        what: String,
        /// The client's error.
        #[source]
        source: mysql_async::Error,
    },
    /// Connecting took longer than the connect timeout.
    #[error("connecting: no answer within {0:?}")]
    ConnectTimeout(std::time::Duration),
    /// A row the reader cannot decode: the query and the field.
    #[error("{query}: field {field}: {message}")]
    Row {
        /// Which query.
        query: &'static str,
        /// Which column.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// Not a server this reader supports.
    #[error("unsupported server: {0}")]
    Unsupported(String),
}

impl ScanError {
    /// A constructor for `map_err`: the client error while doing `what`.
    pub fn db(what: impl Into<String>) -> impl FnOnce(mysql_async::Error) -> ScanError {
        let what = what.into();
        move |source| ScanError::Db { what, source }
    }

    /// Whether a retry may help.
    pub fn class(&self) -> ErrorClass {
        match self {
            ScanError::ConnectTimeout(_) => ErrorClass::Transient,
            ScanError::Db { source, .. } => match source {
                mysql_async::Error::Io(_) => ErrorClass::Transient,
                mysql_async::Error::Server(e) => match e.code {
                    // too many connections, lock wait timeout, deadlock, query interrupted,
                    // shutdown in progress, MySQL's and MariaDB's statement time limits,
                    // connection killed, lost or gone away
                    1040 | 1203 | 1205 | 1213 | 1317 | 1053 | 3024 | 1969 | 1927 | 2006 | 2013 => ErrorClass::Transient,
                    _ => ErrorClass::Permanent,
                },
                mysql_async::Error::Driver(mysql_async::DriverError::ConnectionClosed) => ErrorClass::Transient,
                _ => ErrorClass::Permanent,
            },
            _ => ErrorClass::Permanent,
        }
    }
}
