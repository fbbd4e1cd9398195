//! What an issued credential's sessions are held to: pgaudit's logging of
//! its statements and the export limits (`access.session` in the registry).
//!
//! ```yaml
//! access:
//!   session:
//!     audit: [read, write, function, role, ddl]   # pgaudit.log for the credential (the default); [] for none
//!     statement_timeout: 15m                      # default: not set
//!     idle_in_transaction_session_timeout: 5m     # default: not set
//!     temp_file_limit: 1GB                        # default: not set
//! ```
//!
//! Each becomes `ALTER ROLE <credential> SET ...` when the credential is
//! issued ([`RoleSetting`]), and goes with the role when it is dropped. The
//! pgaudit settings and `temp_file_limit` are superuser-only parameters: the
//! credential cannot lift them, and only a superuser (`rds_superuser` on RDS)
//! may set them; the two timeouts the credential's own session can change
//! (`SET statement_timeout = 0`), so they are defaults against accidents, not
//! a control. Layer 0: it imports `error` only.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::FieldError;

/// A pgaudit statement class, as `pgaudit.log` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditClass {
    /// SELECT and COPY TO.
    Read,
    /// INSERT, UPDATE, DELETE, TRUNCATE, COPY FROM.
    Write,
    /// Function calls and DO blocks.
    Function,
    /// GRANT, REVOKE, CREATE/ALTER/DROP ROLE.
    Role,
    /// Other DDL.
    Ddl,
    /// DISCARD, FETCH, CHECKPOINT, VACUUM, SET.
    Misc,
    /// SET.
    MiscSet,
}

impl AuditClass {
    /// Its spelling in `pgaudit.log`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditClass::Read => "read",
            AuditClass::Write => "write",
            AuditClass::Function => "function",
            AuditClass::Role => "role",
            AuditClass::Ddl => "ddl",
            AuditClass::Misc => "misc",
            AuditClass::MiscSet => "misc_set",
        }
    }
}

/// The classes an issued credential is audited for when the registry does not say.
pub const DEFAULT_AUDIT: &[AuditClass] =
    &[AuditClass::Read, AuditClass::Write, AuditClass::Function, AuditClass::Role, AuditClass::Ddl];

/// `access.session` as written.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionFile {
    /// pgaudit classes logged for each credential (default read, write, function, role, ddl; `[]`: none).
    #[serde(default)]
    audit: Option<Vec<AuditClass>>,
    /// Longest statement (a duration); default: not set.
    #[schemars(schema_with = "crate::schema_format::duration")]
    #[serde(default)]
    statement_timeout: Option<String>,
    /// Longest idle time inside a transaction (a duration); default: not set.
    #[schemars(schema_with = "crate::schema_format::duration")]
    #[serde(default)]
    idle_in_transaction_session_timeout: Option<String>,
    /// Most temporary file space per session (`500MB`, `2GB`; kB, MB, GB, TB); default: not set.
    #[serde(default)]
    temp_file_limit: Option<String>,
}

/// What a credential's sessions are held to, as a ticket carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSettings {
    /// pgaudit classes logged (with rows and one entry per relation).
    #[serde(default)]
    pub audit: Vec<AuditClass>,
    /// `statement_timeout`, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_timeout_ms: Option<u64>,
    /// `idle_in_transaction_session_timeout`, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_in_transaction_ms: Option<u64>,
    /// `temp_file_limit`, in kilobytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temp_file_limit_kb: Option<u64>,
}

impl Default for SessionSettings {
    /// A ticket written before sessions were held to anything: nothing set.
    fn default() -> Self {
        SessionSettings {
            audit: Vec::new(),
            statement_timeout_ms: None,
            idle_in_transaction_ms: None,
            temp_file_limit_kb: None,
        }
    }
}

fn millis(field: &str, text: &Option<String>) -> Result<Option<u64>, FieldError> {
    let Some(text) = text else { return Ok(None) };
    let d: Duration = humantime::parse_duration(text)
        .map_err(|e| FieldError::new(field, format!("cannot read {text:?} as a duration: {e}")))?;
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    // PostgreSQL's limit for both: an int of milliseconds
    if ms == 0 || ms > i32::MAX as u64 {
        return Err(FieldError::new(field, format!("{text:?}: give 1ms to 24 days (0 would mean no limit)")));
    }
    Ok(Some(ms))
}

fn kilobytes(field: &str, text: &Option<String>) -> Result<Option<u64>, FieldError> {
    let Some(text) = text else { return Ok(None) };
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let factor = match unit.trim() {
        "kB" => 1,
        "MB" => 1 << 10,
        "GB" => 1 << 20,
        "TB" => 1 << 30,
        other => {
            return Err(FieldError::new(field, format!("{text:?}: unit {other:?} is not kB, MB, GB or TB")));
        }
    };
    let kb = n.parse::<u64>().ok().and_then(|n| n.checked_mul(factor)).filter(|kb| (1..=i32::MAX as u64).contains(kb));
    kb.map(Some).ok_or_else(|| FieldError::new(field, format!("{text:?}: give 1kB to 2TB")))
}

impl SessionSettings {
    /// Checks the section as written (absent: the default audit, no limits); errors name the field.
    pub fn from_file(f: Option<&SessionFile>) -> Result<Self, FieldError> {
        let Some(f) = f else {
            return Ok(SessionSettings { audit: DEFAULT_AUDIT.to_vec(), ..SessionSettings::default() });
        };
        let mut audit = f.audit.clone().unwrap_or_else(|| DEFAULT_AUDIT.to_vec());
        audit.sort();
        audit.dedup();
        Ok(SessionSettings {
            audit,
            statement_timeout_ms: millis("access.session.statement_timeout", &f.statement_timeout)?,
            idle_in_transaction_ms: millis(
                "access.session.idle_in_transaction_session_timeout",
                &f.idle_in_transaction_session_timeout,
            )?,
            temp_file_limit_kb: kilobytes("access.session.temp_file_limit", &f.temp_file_limit)?,
        })
    }

    /// The role settings that carry them out, in a fixed order.
    pub fn role_settings(&self) -> Vec<RoleSetting> {
        let mut out = Vec::new();
        if !self.audit.is_empty() {
            out.push(RoleSetting::PgauditLog(self.audit.clone()));
            out.push(RoleSetting::PgauditLogRows);
            out.push(RoleSetting::PgauditLogRelation);
        }
        out.extend(self.statement_timeout_ms.map(RoleSetting::StatementTimeout));
        out.extend(self.idle_in_transaction_ms.map(RoleSetting::IdleInTransactionSessionTimeout));
        out.extend(self.temp_file_limit_kb.map(RoleSetting::TempFileLimit));
        out
    }
}

/// One `ALTER ROLE ... SET`: a parameter from a fixed list, and its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "parameter", content = "value", rename_all = "snake_case")]
pub enum RoleSetting {
    /// `pgaudit.log`.
    PgauditLog(Vec<AuditClass>),
    /// `pgaudit.log_rows = on`: rows read or written (pgaudit 1.7 and later).
    PgauditLogRows,
    /// `pgaudit.log_relation = on`: one entry per relation.
    PgauditLogRelation,
    /// `statement_timeout`, in milliseconds.
    StatementTimeout(u64),
    /// `idle_in_transaction_session_timeout`, in milliseconds.
    IdleInTransactionSessionTimeout(u64),
    /// `temp_file_limit`, in kilobytes.
    TempFileLimit(u64),
}

impl RoleSetting {
    /// Every parameter a setting names: what issuing reads the server for.
    pub const PARAMETERS: &'static [&'static str] = &[
        "pgaudit.log",
        "pgaudit.log_rows",
        "pgaudit.log_relation",
        "statement_timeout",
        "idle_in_transaction_session_timeout",
        "temp_file_limit",
    ];

    /// The parameter's name.
    pub fn name(&self) -> &'static str {
        match self {
            RoleSetting::PgauditLog(_) => "pgaudit.log",
            RoleSetting::PgauditLogRows => "pgaudit.log_rows",
            RoleSetting::PgauditLogRelation => "pgaudit.log_relation",
            RoleSetting::StatementTimeout(_) => "statement_timeout",
            RoleSetting::IdleInTransactionSessionTimeout(_) => "idle_in_transaction_session_timeout",
            RoleSetting::TempFileLimit(_) => "temp_file_limit",
        }
    }

    /// The value as PostgreSQL reads it (to be quoted as a literal).
    pub fn value(&self) -> String {
        match self {
            RoleSetting::PgauditLog(classes) => classes.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", "),
            RoleSetting::PgauditLogRows | RoleSetting::PgauditLogRelation => "on".to_owned(),
            RoleSetting::StatementTimeout(ms) | RoleSetting::IdleInTransactionSessionTimeout(ms) => format!("{ms}ms"),
            RoleSetting::TempFileLimit(kb) => format!("{kb}kB"),
        }
    }

    /// What is lost when it cannot be set.
    pub fn lost(&self) -> &'static str {
        match self {
            RoleSetting::PgauditLog(_) => {
                "the credential's statements are not audited (unless pgaudit.log is set for the whole server)"
            }
            RoleSetting::PgauditLogRows => {
                "its audit entries carry no row counts, so large reads are not seen as exports"
            }
            RoleSetting::PgauditLogRelation => "its audit entries name no table for statements that read several",
            RoleSetting::StatementTimeout(_) => "its statements run as long as the server allows",
            RoleSetting::IdleInTransactionSessionTimeout(_) => {
                "an idle transaction of its holds its locks as long as the server allows"
            }
            RoleSetting::TempFileLimit(_) => "its sessions may fill the server's disk with temporary files",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(yaml: &str) -> SessionFile {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn without_the_section_credentials_are_audited_and_unlimited() {
        let s = SessionSettings::from_file(None).unwrap();
        let names: Vec<_> = s.role_settings().iter().map(|r| (r.name(), r.value())).collect();
        assert_eq!(
            names,
            [
                ("pgaudit.log", "read, write, function, role, ddl".to_owned()),
                ("pgaudit.log_rows", "on".to_owned()),
                ("pgaudit.log_relation", "on".to_owned())
            ]
        );
    }

    #[test]
    fn limits_read_as_postgresql_units_and_bad_ones_name_their_field() {
        let s = SessionSettings::from_file(Some(&file(
            "{audit: [], statement_timeout: 15m, idle_in_transaction_session_timeout: 30s, temp_file_limit: 2GB}",
        )))
        .unwrap();
        let values: Vec<_> = s.role_settings().iter().map(|r| format!("{}={}", r.name(), r.value())).collect();
        assert_eq!(
            values,
            ["statement_timeout=900000ms", "idle_in_transaction_session_timeout=30000ms", "temp_file_limit=2097152kB"]
        );
        let e = SessionSettings::from_file(Some(&file("{temp_file_limit: 2 GiB}"))).unwrap_err();
        assert_eq!(e.field, "access.session.temp_file_limit");
        let e = SessionSettings::from_file(Some(&file("{statement_timeout: 0s}"))).unwrap_err();
        assert_eq!(e.field, "access.session.statement_timeout");
        let e = SessionSettings::from_file(Some(&file("{temp_file_limit: 3TB}"))).unwrap_err();
        assert!(e.reason.contains("2TB"), "{}", e.reason);
    }

    #[test]
    fn every_setting_names_a_listed_parameter() {
        let all = SessionSettings {
            audit: vec![AuditClass::Read],
            statement_timeout_ms: Some(1),
            idle_in_transaction_ms: Some(1),
            temp_file_limit_kb: Some(1),
        };
        let names: Vec<_> = all.role_settings().iter().map(RoleSetting::name).collect();
        assert_eq!(names, RoleSetting::PARAMETERS);
    }

    #[test]
    fn an_old_ticket_without_settings_reads_as_none() {
        let s: SessionSettings = serde_json::from_str("{}").unwrap();
        assert!(s.role_settings().is_empty());
    }
}
