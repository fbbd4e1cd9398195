//! The grant request: the one shape every input (grant webhook, pgaudit
//! line, generic payload, access request) is normalized into before routing;
//! and the access request as received.
//! See docs/CONTRACTS.md#grant-request.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::access_policy::{AccessPath, AccessScope};
use crate::manifest::On;
use crate::model::{Privilege, RoleName};
use crate::snapshot::TargetId;

/// Where a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    /// The signed grant webhook.
    Webhook,
    /// A pgaudit log line.
    Pgaudit,
    /// The generic JSON payload.
    Generic,
    /// A just-in-time access request.
    AccessRequest,
}

impl fmt::Display for InputKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InputKind::Webhook => "webhook",
            InputKind::Pgaudit => "pgaudit line",
            InputKind::Generic => "generic payload",
            InputKind::AccessRequest => "access request",
        })
    }
}

/// Grant or revoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Privileges are given.
    Grant,
    /// Privileges are taken away.
    Revoke,
}

/// The object of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestObject {
    /// database, schema, table, sequence, function, column or all_*_in_schema.
    pub on: On,
    /// Schema, for schema-qualified objects and all_*_in_schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Object name (schema name for `on: schema`; none for all_*_in_schema).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Columns, for column privileges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
}

impl RequestObject {
    /// The schema a route's `schema` glob is matched against.
    pub fn route_schema(&self) -> Option<&str> {
        match self.on {
            On::Schema => self.name.as_deref(),
            _ => self.schema.as_deref(),
        }
    }
}

/// One grant request in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRequest {
    /// Idempotency key: the sender's delivery id.
    pub delivery_id: String,
    /// Where it came from.
    pub input: InputKind,
    /// Sending system (okta-workflows, pgaudit, ...).
    pub source: String,
    /// Grant or revoke.
    pub action: Action,
    /// Database.
    pub target: TargetId,
    /// The person or identity the access is for (e.g. alice@example.com).
    pub principal: String,
    /// The database role that receives the privileges.
    pub role: RoleName,
    /// Privileges, sorted and distinct.
    pub privileges: Vec<Privilege>,
    /// Object.
    pub object: RequestObject,
    /// When the access must end; `None` only for revokes and audit lines, which
    /// then cannot be routed (fail secure).
    pub expires_at: Option<DateTime<Utc>>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    /// Who asked.
    pub requested_by: String,
    /// Incident id, for break-glass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    /// When it was observed (the audit line's time, or receipt).
    pub observed_at: DateTime<Utc>,
}

/// A request for just-in-time access, as received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRequest {
    /// The sender's id of this request (idempotency key).
    pub id: String,
    /// Who asks: the person the credential is for. The verified caller, always:
    /// a body may leave it out, and one that names someone else is refused.
    #[serde(default)]
    pub identity: String,
    /// The database.
    pub target: TargetId,
    /// Which kind of access.
    pub path: AccessPath,
    /// What it reaches.
    pub scope: AccessScope,
    /// How long, e.g. `2h`.
    pub duration: String,
    /// Why.
    pub justification: String,
    /// Incident id (required for break-glass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    /// The script a migration is approved to run: its text, or its sha256
    /// (`grantwarden queries script-sha256 FILE`); what the credential ran is
    /// compared with it (`grantwarden report migration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<ScriptRef>,
}

/// An approved script, as a request names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptRef {
    /// The script itself (at most 256 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Its sha256 ([`crate::statement::script_sha256`]); checked against `text` when both are given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}
