//! The registry's `queries:` section: what query-level audit keeps and
//! what it calls an export.
//!
//! ```yaml
//! queries:
//!   keep_literals: false          # statement text is stored with literals as `?` (the default)
//!   sensitive: ["billing.*", "public.customers"]   # tables whose readers the sensitive-access report lists
//!   export_rows: 10000            # a read of more rows than this is an export (default 10000)
//!   on_export: alert              # or `revoke`: an export during a ticket ends the ticket early
//! ```
//!
//! Layer 1 (it imports `error`).

use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Serialize};

use crate::error::FieldError;

/// What an export during a ticket sets off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnExport {
    /// An alert (SNS and the journal).
    #[default]
    Alert,
    /// An alert, and the ticket ends early through the revocation path.
    Revoke,
}

/// The section as written.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueriesFile {
    /// Keep statement literals as logged (default false: each becomes `?`).
    #[serde(default)]
    keep_literals: bool,
    /// Tables (`schema.table` globs) whose reads the sensitive-access report lists.
    #[serde(default)]
    sensitive: Vec<String>,
    /// A read of more rows than this is an export (default 10000).
    #[serde(default)]
    export_rows: Option<u64>,
    /// What an export during a ticket sets off (default `alert`).
    #[serde(default)]
    on_export: OnExport,
}

/// The default of `export_rows`.
pub const EXPORT_ROWS: u64 = 10_000;

/// The section, checked.
#[derive(Debug, Clone)]
pub struct QueryPolicy {
    /// Keep statement literals.
    pub keep_literals: bool,
    /// Sensitive tables: each glob as written, and compiled.
    pub sensitive: Vec<(String, GlobMatcher)>,
    /// Rows past which a read is an export.
    pub export_rows: u64,
    /// What an export during a ticket sets off.
    pub on_export: OnExport,
}

impl Default for QueryPolicy {
    fn default() -> Self {
        QueryPolicy {
            keep_literals: false,
            sensitive: Vec::new(),
            export_rows: EXPORT_ROWS,
            on_export: OnExport::Alert,
        }
    }
}

impl QueryPolicy {
    /// Checks the section as written; errors name the field.
    pub fn from_file(f: &QueriesFile) -> Result<Self, FieldError> {
        let sensitive = f
            .sensitive
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let field = format!("queries.sensitive[{i}]");
                if !g.contains('.') {
                    return Err(FieldError::new(
                        field,
                        format!("{g:?} names no schema: write `schema.table` (globs allowed)"),
                    ));
                }
                Glob::new(g)
                    .map(|m| (g.clone(), m.compile_matcher()))
                    .map_err(|e| FieldError::new(field, e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        if f.export_rows == Some(0) {
            return Err(FieldError::new("queries.export_rows", "0 would make every read an export: give at least 1"));
        }
        Ok(QueryPolicy {
            keep_literals: f.keep_literals,
            sensitive,
            export_rows: f.export_rows.unwrap_or(EXPORT_ROWS),
            on_export: f.on_export,
        })
    }

    /// Whether `object` (`schema.table` as pgaudit logs it) is sensitive.
    pub fn is_sensitive(&self, object: &str) -> bool {
        self.sensitive.iter().any(|(_, m)| m.is_match(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(yaml: &str) -> QueriesFile {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn defaults_redact_and_alert() {
        let p = QueryPolicy::from_file(&file("{}")).unwrap();
        assert_eq!((p.keep_literals, p.export_rows, p.on_export), (false, EXPORT_ROWS, OnExport::Alert));
        assert!(!p.is_sensitive("billing.invoices"));
    }

    #[test]
    fn sensitive_globs_match_schema_and_table() {
        let p =
            QueryPolicy::from_file(&file("{sensitive: [\"billing.*\", public.customers], on_export: revoke}")).unwrap();
        assert!(p.is_sensitive("billing.invoices") && p.is_sensitive("public.customers"));
        assert!(!p.is_sensitive("public.orders"));
        assert_eq!(p.on_export, OnExport::Revoke);
        let e = QueryPolicy::from_file(&file("{sensitive: [customers]}")).unwrap_err();
        assert_eq!(e.field, "queries.sensitive[0]");
        assert_eq!(QueryPolicy::from_file(&file("{export_rows: 0}")).unwrap_err().field, "queries.export_rows");
    }
}
