//! The registry's access policy and the scope of a grant: which paths
//! (read-only, migration, break-glass) are offered, their windows and
//! approvals, what is sensitive or masked, and the access a ticket stands for
//! ([`AccessGrant`]). A leaf below the policy registry, the tickets, the
//! changes and revocation, which all read these types; the request workflow
//! that applies them is `crate::access`.
//!
//! The registry's `access` section (optional; without it no access request
//! is routable, fail secure):
//!
//! ```yaml
//! access:
//!   approver_roles: { security: [ciso@example.com], manager: [eng-lead@example.com] }
//!   paths:
//!     read-only:   { max_ttl: 8h }                       # auto-approved unless the scope is sensitive (then 1)
//!     migration:   { max_ttl: 4h, approvals: dual }      # two approvers, one from approver_roles
//!     break-glass: { max_ttl: 30m }                      # only with an open incident
//!   sensitive: { schemas: ["phi_*"], tables: [billing.customers] }
//!   masking: { billing.customers: { email: partial, ssn: hash } }
//!   connection_limit: 2
//!   break_glass_alert_per_month: 3
//!   session: { statement_timeout: 15m, temp_file_limit: 1GB }   # crate::session_limits
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::model::RoleName;

/// Which kind of access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AccessPath {
    /// SELECT (and USAGE on the schemas it needs).
    ReadOnly,
    /// SELECT, INSERT, UPDATE, DELETE on the scope.
    Migration,
    /// Like migration, during an open incident, auto-approved and reviewed after.
    BreakGlass,
}

impl fmt::Display for AccessPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AccessPath::ReadOnly => "read-only",
            AccessPath::Migration => "migration",
            AccessPath::BreakGlass => "break-glass",
        })
    }
}

/// A literal of a row predicate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Literal {
    /// A whole number.
    Int(i64),
    /// Text.
    Text(String),
}

/// `column = value` or `column IN (value, ...)`: the only row filters accepted,
/// so a predicate can be rendered with quoted identifiers and literals, never raw.
/// Read from JSON as `{"column", "values"}` or as text (`"customer_id = 42"`),
/// checked either way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PredicateInput")]
pub struct RowPredicate {
    /// The column.
    pub column: String,
    /// Its allowed values (one for `=`).
    pub values: Vec<Literal>,
}

/// A row predicate as a request writes it.
#[derive(Deserialize)]
#[serde(untagged)]
enum PredicateInput {
    Text(String),
    Parts { column: String, values: Vec<Literal> },
}

impl TryFrom<PredicateInput> for RowPredicate {
    type Error = String;

    fn try_from(input: PredicateInput) -> Result<Self, String> {
        match input {
            PredicateInput::Text(text) => RowPredicate::parse(&text),
            PredicateInput::Parts { column, values } => {
                if column.is_empty() || !column.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(format!("{column:?} is not a plain column name"));
                }
                if values.is_empty() {
                    return Err("a predicate needs at least one value".into());
                }
                Ok(RowPredicate { column, values })
            }
        }
    }
}

impl RowPredicate {
    /// Parses `customer_id = 42`, `region = 'eu'` or `region in ('eu', 'us')`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (column, rest) = match text.find(|c: char| c == '=' || c.is_whitespace()) {
            Some(i) => (text[..i].trim(), text[i..].trim()),
            None => return Err(format!("{text:?}: expected `column = value` or `column in (values)`")),
        };
        if column.is_empty() || !column.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("{column:?} is not a plain column name"));
        }
        let values = if let Some(v) = rest.strip_prefix('=') {
            vec![literal(v.trim())?]
        } else if let Some(list) = rest.get(2..).filter(|_| rest.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("in")))
        {
            let list = list.trim();
            let inner = list
                .strip_prefix('(')
                .and_then(|l| l.strip_suffix(')'))
                .ok_or_else(|| format!("{list:?}: expected a parenthesized list"))?;
            split_list(inner)?.into_iter().map(|v| literal(&v)).collect::<Result<Vec<_>, _>>()?
        } else {
            return Err(format!("{text:?}: expected `column = value` or `column in (values)`"));
        };
        if values.is_empty() {
            return Err("the list of values is empty".into());
        }
        Ok(Self { column: column.to_owned(), values })
    }
}

fn split_list(inner: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if quoted && chars.peek() == Some(&'\'') => {
                cur.push_str("''");
                chars.next();
            }
            '\'' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => out.push(std::mem::take(&mut cur).trim().to_owned()),
            c => cur.push(c),
        }
    }
    if quoted {
        return Err("an unterminated string in the list".into());
    }
    out.push(cur.trim().to_owned());
    Ok(out)
}

fn literal(v: &str) -> Result<Literal, String> {
    if let Some(s) = v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
        if s.replace("''", "").contains('\'') {
            return Err(format!("{v:?}: a quote inside a string must be doubled"));
        }
        return Ok(Literal::Text(s.replace("''", "'")));
    }
    v.parse::<i64>().map(Literal::Int).map_err(|_| format!("{v:?}: a value is a whole number or a 'quoted string'"))
}

/// What a request reaches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "on", rename_all = "snake_case")]
pub enum AccessScope {
    /// Every table of every ordinary schema of the target database.
    Database,
    /// Every table of one schema.
    Schema {
        /// The schema.
        schema: String,
    },
    /// Some tables of one schema.
    Tables {
        /// The schema.
        schema: String,
        /// The tables.
        tables: Vec<String>,
    },
    /// The rows of one table that match a predicate (read through a view).
    Rows {
        /// The schema.
        schema: String,
        /// The table.
        table: String,
        /// Which rows.
        predicate: RowPredicate,
    },
}

impl AccessScope {
    /// The schema, if the scope is within one.
    pub fn schema(&self) -> Option<&str> {
        match self {
            AccessScope::Database => None,
            AccessScope::Schema { schema } | AccessScope::Tables { schema, .. } | AccessScope::Rows { schema, .. } => {
                Some(schema)
            }
        }
    }

    /// The tables named, `schema.table`.
    pub fn tables(&self) -> Vec<String> {
        match self {
            AccessScope::Tables { schema, tables } => tables.iter().map(|t| format!("{schema}.{t}")).collect(),
            AccessScope::Rows { schema, table, .. } => vec![format!("{schema}.{table}")],
            _ => Vec::new(),
        }
    }
}

/// How a sensitive column is shown through a view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mask {
    /// The first two characters, the rest as `*`.
    Partial,
    /// The sha256 of the value, hex.
    Hash,
}

/// How many approvals a path needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Approvals {
    /// None (read-only on a scope that is not sensitive; break-glass with an open incident).
    #[default]
    Auto,
    /// One approver, not the requester.
    Single,
    /// Two distinct approvers, neither the requester, at least one from `approver_roles`.
    Dual,
}

/// The rules of one access path as written.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct PathFile {
    /// Longest window, e.g. `8h`, `30m`; longer than zero.
    #[schemars(schema_with = "crate::schema_format::duration")]
    max_ttl: String,
    /// Approvals needed (default: dual for migration, else auto; break-glass is always auto).
    #[serde(default)]
    approvals: Option<Approvals>,
}

/// Sensitive data: read-only on it needs one approval; views reading it are left out.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct SensitiveFile {
    /// Sensitive schemas (globs).
    #[serde(default)]
    schemas: Vec<String>,
    /// Sensitive tables (`schema.table`).
    #[serde(default)]
    tables: Vec<String>,
}

/// The `access` section as written.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessFile {
    /// Privileged approvers of a dual approval, by role: `security` and `manager` only;
    /// each a list of emails, or `{ emails: [...], groups: [...] }` (the identity
    /// provider's `groups` claim).
    #[serde(default)]
    approver_roles: BTreeMap<String, ApproverRoleFile>,
    /// Rules per path; a path not listed is not offered.
    #[schemars(with = "BTreeMap<crate::schema_format::Keys<AccessPath>, PathFile>")]
    #[serde(default)]
    paths: BTreeMap<AccessPath, PathFile>,
    /// Sensitive schemas and tables.
    #[serde(default)]
    sensitive: SensitiveFile,
    /// Masked columns (`partial` or `hash`) by `schema.table`, then column.
    #[serde(default)]
    masking: BTreeMap<String, BTreeMap<String, Mask>>,
    /// Connection limit of each issued role (default 2).
    #[serde(default)]
    connection_limit: Option<u32>,
    /// Break-glass uses per month above which the metrics alert (default 3).
    #[serde(default)]
    break_glass_alert_per_month: Option<u32>,
    /// Schemas (globs) where issuing accepts that PUBLIC holds CREATE.
    #[serde(default)]
    allow_public_create: Vec<String>,
    /// How long a request may wait for its approvals before it expires unissued (default `1h`).
    #[schemars(schema_with = "crate::schema_format::duration")]
    #[serde(default)]
    pending_ttl: Option<String>,
    /// What each credential's sessions are held to: pgaudit classes logged, export limits.
    #[serde(default)]
    session: Option<crate::session_limits::SessionFile>,
}

/// A script a ticket is approved to run: its sha256 and, when the request
/// carried its text, its statements (normalized).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovedScript {
    /// `crate::statement::script_sha256` of its statements.
    pub sha256: String,
    /// Its statements; empty when only the sha256 was given (the report then takes the file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statements: Vec<String>,
}

/// The members of one approver role as written: emails, or emails and groups.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
enum ApproverRoleFile {
    /// Emails.
    Emails(Vec<String>),
    /// Emails and identity-provider groups.
    Members {
        /// Emails.
        #[serde(default)]
        emails: Vec<String>,
        /// Groups of the identity provider's `groups` claim.
        #[serde(default)]
        groups: Vec<String>,
    },
}

/// Who holds an approver role: by email, or by a group of the identity provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApproverRole {
    /// Emails, lower-cased.
    pub emails: Vec<String>,
    /// Groups (as the token's `groups` claim writes them).
    pub groups: Vec<String>,
}

/// The rules of one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathRule {
    /// Longest window.
    pub max_ttl: Duration,
    /// Approvals needed (read-only on a sensitive scope needs at least one).
    pub approvals: Approvals,
}

/// The registry's access policy, validated.
#[derive(Debug, Clone, Default)]
pub struct AccessPolicy {
    /// Approvers that may be the privileged one of a dual approval, by their role
    /// (`security`, `manager`).
    pub approver_roles: BTreeMap<String, ApproverRole>,
    /// Rules per path; a path not listed is not offered.
    pub paths: BTreeMap<AccessPath, PathRule>,
    /// Sensitive schemas (globs).
    pub sensitive_schemas: Vec<GlobMatcher>,
    /// Sensitive tables (`schema.table`).
    pub sensitive_tables: Vec<String>,
    /// Schemas (globs) where issuing accepts that PUBLIC holds CREATE.
    pub allow_public_create: Vec<String>,
    /// Masked columns by `schema.table`.
    pub masking: BTreeMap<String, BTreeMap<String, Mask>>,
    /// Connection limit of each issued role.
    pub connection_limit: u32,
    /// Break-glass uses per month above which the metrics alert.
    pub break_glass_alert_per_month: u32,
    /// How long a request may wait for its approvals.
    pub pending_ttl: Duration,
    /// What each credential's sessions are held to.
    pub session: crate::session_limits::SessionSettings,
}

impl AccessPolicy {
    /// Validates the section; errors name the path inside it.
    pub fn from_file(f: &AccessFile) -> Result<Self, FieldError> {
        let mut paths = BTreeMap::new();
        for (path, rule) in &f.paths {
            let at = format!("access.paths.{path}");
            let max_ttl = humantime::parse_duration(&rule.max_ttl).map_err(|e| {
                FieldError::new(format!("{at}.max_ttl"), format!("cannot read {:?} as a duration: {e}", rule.max_ttl))
            })?;
            if max_ttl.is_zero() {
                return Err(FieldError::new(format!("{at}.max_ttl"), "must be longer than zero"));
            }
            let approvals = rule.approvals.unwrap_or(match path {
                AccessPath::Migration => Approvals::Dual,
                _ => Approvals::Auto,
            });
            if *path == AccessPath::BreakGlass && approvals != Approvals::Auto {
                return Err(FieldError::new(format!("{at}.approvals"), "break-glass is approved by its open incident"));
            }
            paths.insert(*path, PathRule { max_ttl, approvals });
        }
        // the privileged approver of a dual approval holds a security or a manager role
        if let Some(other) = f.approver_roles.keys().find(|k| !matches!(k.as_str(), "security" | "manager")) {
            return Err(FieldError::new(
                format!("access.approver_roles.{other}"),
                "approver roles are security and manager: they are the ones a dual approval needs",
            ));
        }
        let pending_ttl = match &f.pending_ttl {
            None => Duration::from_secs(3600),
            Some(text) => humantime::parse_duration(text)
                .map_err(|e| FieldError::new("access.pending_ttl", format!("cannot read {text:?} as a duration: {e}")))
                .and_then(|d| {
                    if d.is_zero() {
                        Err(FieldError::new("access.pending_ttl", "must be longer than zero"))
                    } else {
                        Ok(d)
                    }
                })?,
        };
        let dual = paths.values().any(|p| p.approvals == Approvals::Dual);
        let approver_roles: BTreeMap<String, ApproverRole> = f
            .approver_roles
            .iter()
            .map(|(role, members)| {
                let (emails, groups) = match members {
                    ApproverRoleFile::Emails(emails) => (emails.clone(), Vec::new()),
                    ApproverRoleFile::Members { emails, groups } => (emails.clone(), groups.clone()),
                };
                let emails = emails.iter().map(|e| e.trim().to_ascii_lowercase()).collect();
                (role.clone(), ApproverRole { emails, groups })
            })
            .collect();
        if dual && approver_roles.values().all(|r| r.emails.is_empty() && r.groups.is_empty()) {
            return Err(FieldError::new(
                "access.approver_roles",
                "a dual approval needs at least one security or manager approver",
            ));
        }
        let sensitive_schemas = f
            .sensitive
            .schemas
            .iter()
            .map(|g| {
                Glob::new(g).map(|g| g.compile_matcher()).map_err(|e| {
                    FieldError::new("access.sensitive.schemas", format!("invalid glob {g:?}: {}", e.kind()))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for t in f.sensitive.tables.iter().chain(f.masking.keys()) {
            if t.split('.').count() != 2 {
                return Err(FieldError::new("access", format!("{t:?} is not `schema.table`")));
            }
        }
        for g in &f.allow_public_create {
            Glob::new(g).map_err(|e| {
                FieldError::new("access.allow_public_create", format!("invalid glob {g:?}: {}", e.kind()))
            })?;
        }
        Ok(Self {
            approver_roles,
            paths,
            sensitive_schemas,
            allow_public_create: f.allow_public_create.clone(),
            sensitive_tables: f.sensitive.tables.clone(),
            masking: f.masking.clone(),
            connection_limit: f.connection_limit.unwrap_or(2),
            break_glass_alert_per_month: f.break_glass_alert_per_month.unwrap_or(3),
            pending_ttl,
            session: crate::session_limits::SessionSettings::from_file(f.session.as_ref())?,
        })
    }

    /// Whether the scope touches a sensitive schema or table.
    pub fn is_sensitive(&self, scope: &AccessScope) -> bool {
        match scope {
            AccessScope::Database => !self.sensitive_schemas.is_empty() || !self.sensitive_tables.is_empty(),
            _ => {
                let schema = scope.schema().unwrap_or_default();
                self.sensitive_schemas.iter().any(|g| g.is_match(schema))
                    || self.sensitive_tables.iter().any(|t| t.split_once('.').is_some_and(|(s, _)| s == schema))
                        && match scope {
                            AccessScope::Schema { .. } => true,
                            _ => scope.tables().iter().any(|t| self.sensitive_tables.contains(t)),
                        }
            }
        }
    }

    /// Every privileged approver (any role), lower-cased.
    pub fn privileged_approvers(&self) -> Vec<String> {
        let mut out: Vec<String> = self.approver_roles.values().flat_map(|r| r.emails.iter().cloned()).collect();
        out.sort();
        out.dedup();
        out
    }

    /// Every group whose members are privileged approvers (any role).
    pub fn privileged_groups(&self) -> Vec<String> {
        let mut out: Vec<String> = self.approver_roles.values().flat_map(|r| r.groups.iter().cloned()).collect();
        out.sort();
        out.dedup();
        out
    }
}

/// The access a ticket stands for: kept on the ticket, used by activation and revocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessGrant {
    /// The path.
    pub path: AccessPath,
    /// The scope.
    pub scope: AccessScope,
    /// Masked columns per `schema.table`, every table the registry masks: the
    /// scope's own are read through masking views, and an existing view in
    /// scope that reads any of them is not granted.
    #[serde(default)]
    pub masking: BTreeMap<String, BTreeMap<String, Mask>>,
    /// The schema holding this ticket's views (row scope and masked tables).
    pub views_schema: String,
    /// Sensitive schemas (globs) and tables of the registry, when routed: what
    /// reads them (a view, a partition) is sensitive too.
    #[serde(default)]
    pub sensitive_schemas: Vec<String>,
    /// Sensitive tables, `schema.table`.
    #[serde(default)]
    pub sensitive_tables: Vec<String>,
    /// Schemas (globs) where the registry accepts that PUBLIC holds CREATE.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_public_create: Vec<String>,
    /// Connection limit of the role.
    pub connection_limit: u32,
    /// What its sessions are held to (none for a ticket written before they were).
    #[serde(default)]
    pub session: crate::session_limits::SessionSettings,
    /// The script it is approved to run (a migration's), when the request named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<ApprovedScript>,
    /// Approvers of whom at least one must approve (dual approval), lower-cased.
    #[serde(default)]
    pub privileged_approvers: Vec<String>,
    /// Groups (the identity provider's) whose members count as privileged approvers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub privileged_groups: Vec<String>,
    /// A break-glass ticket is reviewed after the fact.
    #[serde(default)]
    pub review_required: bool,
    /// When the request, still waiting for approvals, expires unissued (the registry's `pending_ttl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_until: Option<chrono::DateTime<chrono::Utc>>,
    /// Its incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
}

/// The role that owns a ticket's views (`<role>_views`): no LOGIN, no
/// SUPERUSER, no BYPASSRLS, holding only what its views read.
pub fn views_owner_for(role: &RoleName) -> RoleName {
    let mut base = String::new();
    for c in role.as_str().chars() {
        if base.len() + c.len_utf8() > crate::model::MAX_NAME_BYTES - "_views".len() {
            break;
        }
        base.push(c);
    }
    RoleName::new(format!("{base}_views")).expect("never empty, at most 63 bytes")
}

/// The scope in words.
pub fn describe(scope: &AccessScope) -> String {
    match scope {
        AccessScope::Database => "the whole database".into(),
        AccessScope::Schema { schema } => format!("schema {schema}"),
        AccessScope::Tables { schema, tables } => format!("{} in schema {schema}", tables.join(", ")),
        AccessScope::Rows { schema, table, predicate } => {
            format!("rows of {schema}.{table} where {} in {:?}", predicate.column, predicate.values)
        }
    }
}

/// Incidents known to be open (from the incident webhook).
pub trait Incidents {
    /// Whether `id` is open at `now`.
    fn is_open(&self, id: &str, now: DateTime<Utc>) -> bool;
}
