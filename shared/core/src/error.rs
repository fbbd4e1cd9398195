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

    /// A JSON body that did not deserialize, named by the field at fault: the
    /// path serde_path_to_error reports, and for a missing field that field
    /// under its parent (serde reports the parent: the root for a top-level
    /// field); `body` where no field applies (a syntax error, a wrong shape).
    pub fn from_json(e: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = e.path().to_string();
        let reason = e.inner().to_string();
        let missing = reason.strip_prefix("missing field `").and_then(|rest| rest.split_once('`')).map(|(f, _)| f);
        let field = match (path.as_str(), missing) {
            ("." | "?", Some(field)) => field.to_owned(),
            (parent, Some(field)) => format!("{parent}.{field}"),
            ("." | "?", None) => "body".to_owned(),
            (path, None) => path.to_owned(),
        };
        Self { field, reason }
    }
}

#[cfg(test)]
mod tests {
    use super::FieldError;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        role: String,
        object: Inner,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        name: String,
    }

    fn field(body: &str) -> String {
        let mut de = serde_json::Deserializer::from_str(body);
        FieldError::from_json(serde_path_to_error::deserialize::<_, Outer>(&mut de).unwrap_err()).field
    }

    #[test]
    fn a_missing_field_is_named_itself_not_its_parent() {
        assert_eq!(field(r#"{"object": {"name": "x"}}"#), "role");
        assert_eq!(field(r#"{"role": "r", "object": {}}"#), "object.name");
        assert_eq!(field(r#"{"role": 7, "object": {"name": "x"}}"#), "role");
        assert_eq!(field(r#"{"role": "r""#), "body");
        assert_eq!(field(r#""a string""#), "body");
    }
}
