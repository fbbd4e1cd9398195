//! Just-in-time access: a person asks for a path (read-only, migration,
//! break-glass) on a scope (a database, a schema, tables, or rows of one
//! table), the registry's access policy decides the approvals, and activation
//! gives them a role of their own that reaches exactly that scope, for the
//! window and no longer (revocation drops it, see [`crate::revoke`]).
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
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit::{AuditJournal, NewEvent};
use crate::baseline::On;
use crate::change::Change;
use crate::model::{Grant, Grantee, ObjectClass, ObjectRef, Privilege, RoleName};
use crate::normalize::{Action, GrantRequest, InputKind, RequestObject};
use crate::policy::PolicyRegistry;
use crate::snapshot::TargetId;
use crate::store::{PutOutcome, StoreError, TicketStore, Versioned};
use crate::ticket::{Decision, NewTicket, Refusal, RoleLifecycle, Ticket, TicketEvent, TicketStatus};

/// Which kind of access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mask {
    /// The first two characters, the rest as `*`.
    Partial,
    /// The sha256 of the value, hex.
    Hash,
}

/// How many approvals a path needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PathFile {
    max_ttl: String,
    #[serde(default)]
    approvals: Option<Approvals>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SensitiveFile {
    #[serde(default)]
    schemas: Vec<String>,
    #[serde(default)]
    tables: Vec<String>,
}

/// The `access` section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessFile {
    #[serde(default)]
    approver_roles: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    paths: BTreeMap<AccessPath, PathFile>,
    #[serde(default)]
    sensitive: SensitiveFile,
    #[serde(default)]
    masking: BTreeMap<String, BTreeMap<String, Mask>>,
    #[serde(default)]
    connection_limit: Option<u32>,
    #[serde(default)]
    break_glass_alert_per_month: Option<u32>,
    #[serde(default)]
    allow_public_create: Vec<String>,
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
    pub approver_roles: BTreeMap<String, Vec<String>>,
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
}

impl AccessPolicy {
    /// Validates the section; errors name the path inside it.
    pub fn from_file(f: &AccessFile) -> Result<Self, (String, String)> {
        let mut paths = BTreeMap::new();
        for (path, rule) in &f.paths {
            let at = format!("access.paths.{path}");
            let max_ttl = humantime::parse_duration(&rule.max_ttl)
                .map_err(|e| (format!("{at}.max_ttl"), format!("cannot read {:?} as a duration: {e}", rule.max_ttl)))?;
            if max_ttl.is_zero() {
                return Err((format!("{at}.max_ttl"), "must be longer than zero".into()));
            }
            let approvals = rule.approvals.unwrap_or(match path {
                AccessPath::Migration => Approvals::Dual,
                _ => Approvals::Auto,
            });
            if *path == AccessPath::BreakGlass && approvals != Approvals::Auto {
                return Err((format!("{at}.approvals"), "break-glass is approved by its open incident".into()));
            }
            paths.insert(*path, PathRule { max_ttl, approvals });
        }
        // the privileged approver of a dual approval holds a security or a manager role
        if let Some(other) = f.approver_roles.keys().find(|k| !matches!(k.as_str(), "security" | "manager")) {
            return Err((
                format!("access.approver_roles.{other}"),
                "approver roles are security and manager: they are the ones a dual approval needs".into(),
            ));
        }
        let dual = paths.values().any(|p| p.approvals == Approvals::Dual);
        if dual && f.approver_roles.values().all(Vec::is_empty) {
            return Err((
                "access.approver_roles".into(),
                "a dual approval needs at least one security or manager approver".into(),
            ));
        }
        let sensitive_schemas = f
            .sensitive
            .schemas
            .iter()
            .map(|g| {
                Glob::new(g)
                    .map(|g| g.compile_matcher())
                    .map_err(|e| ("access.sensitive.schemas".to_owned(), format!("invalid glob {g:?}: {}", e.kind())))
            })
            .collect::<Result<Vec<_>, _>>()?;
        for t in f.sensitive.tables.iter().chain(f.masking.keys()) {
            if t.split('.').count() != 2 {
                return Err(("access".into(), format!("{t:?} is not `schema.table`")));
            }
        }
        for g in &f.allow_public_create {
            Glob::new(g)
                .map_err(|e| ("access.allow_public_create".to_owned(), format!("invalid glob {g:?}: {}", e.kind())))?;
        }
        Ok(Self {
            approver_roles: f.approver_roles.clone(),
            paths,
            sensitive_schemas,
            allow_public_create: f.allow_public_create.clone(),
            sensitive_tables: f.sensitive.tables.clone(),
            masking: f.masking.clone(),
            connection_limit: f.connection_limit.unwrap_or(2),
            break_glass_alert_per_month: f.break_glass_alert_per_month.unwrap_or(3),
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
        let mut out: Vec<String> = self.approver_roles.values().flatten().map(|a| a.to_ascii_lowercase()).collect();
        out.sort();
        out.dedup();
        out
    }
}

/// A request for just-in-time access, as received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRequest {
    /// The sender's id of this request (idempotency key).
    pub id: String,
    /// Who asks: the person the credential is for.
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
    /// Approvers of whom at least one must approve (dual approval), lower-cased.
    #[serde(default)]
    pub privileged_approvers: Vec<String>,
    /// A break-glass ticket is reviewed after the fact.
    #[serde(default)]
    pub review_required: bool,
    /// Its incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
}

/// The role issued for a ticket: `gw_` + the person's name (letters and digits,
/// at most 24) + `_` + 10 hex digits of the ticket id. Unique per ticket, a
/// valid unquoted identifier, within PostgreSQL's 63 bytes.
pub fn role_for(identity: &str, ticket_id: &str) -> RoleName {
    let person: String = identity
        .split('@')
        .next()
        .unwrap_or_default()
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .filter(|c| c.is_ascii_alphanumeric())
        .take(24)
        .collect();
    let digest = hex::encode(Sha256::digest(ticket_id.as_bytes()));
    RoleName::new(format!("gw_{person}_{}", &digest[..10])).expect("never empty")
}

/// A fresh schema name for a ticket's views: `gw_access_` and 16 random hex
/// digits. Not derived from the ticket id (which the requester knows): a role
/// that could create it beforehand would own the schema the views go in.
/// Creating it fails when it exists all the same ([`Change::CreateSchema`]).
pub fn new_views_schema() -> String {
    let bytes: [u8; 8] = rand::random();
    format!("gw_access_{}", hex::encode(bytes))
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

/// Parses a request body (JSON) and checks it; errors name the field.
pub fn parse_request(body: &[u8]) -> Result<AccessRequest, (String, String)> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let r: AccessRequest = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        (if path == "." { "body".into() } else { path }, e.inner().to_string())
    })?;
    let duration = humantime::parse_duration(&r.duration)
        .map_err(|e| ("duration".to_owned(), format!("{:?}: {e}", r.duration)))?;
    if duration.is_zero() {
        return Err(("duration".into(), "must be longer than zero".into()));
    }
    if r.identity.trim().is_empty() || r.identity.chars().any(char::is_control) {
        return Err(("identity".into(), "a non-empty identity without control characters".into()));
    }
    if r.justification.trim().is_empty() {
        return Err(("justification".into(), "say why".into()));
    }
    if let AccessScope::Tables { tables, .. } = &r.scope
        && tables.is_empty()
    {
        return Err(("scope.tables".into(), "name at least one table".into()));
    }
    Ok(r)
}

/// The request's duration (validated by [`parse_request`]).
pub fn duration_of(r: &AccessRequest) -> Duration {
    humantime::parse_duration(&r.duration).unwrap_or_default()
}

/// Routes an access request: the access policy of `registry` decides the
/// approvals and the window; the ticket it opens issues a role of its own
/// (short-lived: revocation drops it) for exactly the scope.
pub fn route_access(
    request: &AccessRequest,
    registry: &PolicyRegistry,
    incidents: &dyn Incidents,
    now: DateTime<Utc>,
) -> Decision {
    let reg = registry.id.clone();
    let Some(policy) = &registry.access else {
        return Decision::Untagged { reason: "the policy registry has no access section".into(), registry: Some(reg) };
    };
    let Some(rule) = policy.paths.get(&request.path) else {
        return Decision::Untagged {
            reason: format!("the access policy offers no {} path", request.path),
            registry: Some(reg),
        };
    };
    let category = format!("access:{}", request.path);
    let refused = |refusal| Decision::Refused { category: category.clone(), refusal, registry: reg.clone() };
    if request.path == AccessPath::BreakGlass {
        match &request.incident_id {
            None => return refused(Refusal::IncidentRequired),
            Some(id) if !incidents.is_open(id, now) => {
                return refused(Refusal::IncidentNotOpen { incident_id: id.clone() });
            }
            Some(_) => {}
        }
    }
    let requested = duration_of(request);
    if requested > rule.max_ttl {
        return refused(Refusal::TtlExceeded {
            requested_seconds: requested.as_secs(),
            max_seconds: rule.max_ttl.as_secs(),
        });
    }
    let approvals = match (rule.approvals, request.path) {
        (Approvals::Auto, AccessPath::ReadOnly) if policy.is_sensitive(&request.scope) => Approvals::Single,
        (a, _) => a,
    };
    let id = crate::ticket::ticket_id("access", &request.id);
    let (privileges, object) = grant_of(request);
    let expires_at = now + chrono::Duration::from_std(requested).unwrap_or(chrono::Duration::MAX);
    let grant_request = GrantRequest {
        delivery_id: request.id.clone(),
        input: InputKind::AccessRequest,
        source: "access".into(),
        action: Action::Grant,
        target: request.target.clone(),
        principal: request.identity.clone(),
        role: role_for(&request.identity, &id),
        privileges,
        object,
        expires_at: Some(expires_at),
        justification: Some(request.justification.clone()),
        requested_by: request.identity.clone(),
        incident_id: request.incident_id.clone(),
        observed_at: now,
    };
    // all of them, not only the scope's: a view in scope may read a masked table elsewhere
    let masking = policy.masking.clone();
    let new = NewTicket {
        id: id.clone(),
        // the request as sent: a redelivery later (a later `now`, so a later expiry) is the same request
        request_sha256: hex::encode(Sha256::digest(serde_json::to_vec(request).expect("a request always serializes"))),
        request: grant_request,
        category: category.clone(),
        tag: format!("access-{}", request.path),
        approvals_required: match approvals {
            Approvals::Auto => 0,
            Approvals::Single => 1,
            Approvals::Dual => 2,
        },
        weight_factor: if request.path == AccessPath::BreakGlass { 1.0 } else { 0.25 },
        registry: reg.clone(),
        starts_at: now,
        expires_at,
        history: vec![TicketEvent {
            at: now,
            what: "requested".into(),
            actor: request.identity.clone(),
            detail: format!(
                "{} access to {} under registry {reg}: {}",
                request.path,
                describe(&request.scope),
                request.justification
            ),
        }],
        role_lifecycle: RoleLifecycle::ShortLived,
        break_glass: request.path == AccessPath::BreakGlass,
        access: Some(AccessGrant {
            path: request.path,
            scope: request.scope.clone(),
            masking,
            views_schema: new_views_schema(),
            sensitive_schemas: policy.sensitive_schemas.iter().map(|m| m.glob().glob().to_owned()).collect(),
            sensitive_tables: policy.sensitive_tables.clone(),
            allow_public_create: policy.allow_public_create.clone(),
            connection_limit: policy.connection_limit,
            privileged_approvers: if approvals == Approvals::Dual { policy.privileged_approvers() } else { Vec::new() },
            review_required: request.path == AccessPath::BreakGlass,
            incident_id: request.incident_id.clone(),
        }),
    };
    // active at once when the path needs no approval (break-glass: review required)
    let ticket = Ticket::open(new, now);
    Decision::Ticket(Box::new(ticket))
}

/// Extends a break-glass ticket in force while its incident stays open: a new
/// window of the path's max_ttl from `now` (never shorter than what is left).
/// Returns the new expiry; the ticket records the renewal.
pub fn renew(
    ticket: &mut Ticket,
    registry: &PolicyRegistry,
    incidents: &dyn Incidents,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, String> {
    let grant = ticket.access().ok_or("not an access ticket")?;
    if grant.path != AccessPath::BreakGlass {
        return Err(format!("only break-glass is renewed; this is {}", grant.path));
    }
    if !ticket.is_active_at(now) {
        return Err(format!("the ticket is {}", ticket.status_at(now)));
    }
    let incident = grant.incident_id.clone().unwrap_or_default();
    if !incidents.is_open(&incident, now) {
        return Err(format!("incident {incident} is not open: break-glass ends with its window"));
    }
    let rule = registry
        .access
        .as_ref()
        .and_then(|a| a.paths.get(&AccessPath::BreakGlass))
        .ok_or("the registry no longer offers break-glass")?;
    let until = (now + chrono::Duration::from_std(rule.max_ttl).unwrap_or_default()).max(ticket.expires_at());
    ticket.renew(until, now, format!("incident {incident} still open; window until {}", until.to_rfc3339()));
    Ok(until)
}

/// What an access request became.
#[derive(Debug, Clone, PartialEq)]
pub enum AccessOutcome {
    /// A new ticket (active at once when no approval is needed).
    Created(Ticket),
    /// The same request again: the stored ticket, nothing recorded.
    Existing(Ticket),
    /// The request id is known with another request: refused.
    Conflict(Ticket),
    /// The access policy refuses it (e.g. break-glass without an open incident).
    Refused {
        /// The path's category.
        category: String,
        /// Why.
        refusal: Refusal,
    },
    /// No access policy can route it.
    Unroutable(String),
}

/// Routes an access request with the incidents on record (the one it names, read
/// from `store`) and records what it leaves: the ticket with `ticket.requested`
/// (and `ticket.activated`), or `access.refused` / `access.unroutable` on the
/// target's chain. Nothing was granted for a request turned down (grantwarden
/// issues the credential itself), so it is journaled, not raised as drift. No
/// credential is issued here.
pub async fn request_access<S>(
    store: &S,
    request: &AccessRequest,
    registry: &PolicyRegistry,
    now: DateTime<Utc>,
) -> Result<AccessOutcome, StoreError>
where
    S: TicketStore + AuditJournal + crate::incident::IncidentStore + Sync,
{
    let incidents = crate::incident::known_incidents(store, request.incident_id.as_deref()).await?;
    let turned_down = |kind: &str, detail: serde_json::Value| NewEvent {
        chain: request.target.as_str().to_owned(),
        at: now,
        kind: kind.to_owned(),
        actor: request.identity.clone(),
        subject: request.id.clone(),
        target: request.target.as_str().to_owned(),
        detail,
    };
    match route_access(request, registry, &incidents, now) {
        Decision::Ticket(ticket) => Ok(match store.put_ticket(&ticket).await? {
            PutOutcome::Created(t) => {
                store.append(NewEvent::for_ticket(&t, "ticket.requested", &request.identity, now)).await?;
                if t.status() == TicketStatus::Active {
                    store.append(NewEvent::for_ticket(&t, "ticket.activated", "grantwarden", now)).await?;
                }
                AccessOutcome::Created(t)
            }
            PutOutcome::Existing(t) => AccessOutcome::Existing(t),
            PutOutcome::Conflict(t) => {
                store.append(NewEvent::for_ticket(&t, "ticket.conflict", "grantwarden", now)).await?;
                AccessOutcome::Conflict(t)
            }
        }),
        Decision::Refused { category, refusal, .. } => {
            let detail = serde_json::json!({ "request": request, "category": category,
                "reason": refusal.to_string(), "registry_version": registry.id.version });
            store.append(turned_down("access.refused", detail)).await?;
            Ok(AccessOutcome::Refused { category, refusal })
        }
        Decision::Untagged { reason, .. } => {
            let detail = serde_json::json!({ "request": request, "reason": reason,
                "registry_version": registry.id.version });
            store.append(turned_down("access.unroutable", detail)).await?;
            Ok(AccessOutcome::Unroutable(reason))
        }
    }
}

/// Whether `ticket`'s credential was issued (its history says so).
pub fn is_issued(ticket: &Ticket) -> bool {
    ticket.history().iter().any(|e| e.what == "issued")
}

/// Records that ticket `id`'s credential was issued: `issued` in its history (a
/// conditional update, read again when another write came first) and
/// `access.issued` in the journal with the SQL as printed, never the password.
/// `delivered_in` names where the password went (a secret), if anywhere.
pub async fn record_issued<S>(
    store: &S,
    id: &str,
    role: &str,
    sql: &[String],
    delivered_in: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Ticket, StoreError>
where
    S: TicketStore + AuditJournal + Sync,
{
    for _ in 0..5 {
        let Some(Versioned { value: mut ticket, version }) = store.ticket(id).await? else {
            return Err(StoreError::NotFound(id.to_owned()));
        };
        let into = delivered_in.map(|s| format!("; credential in secret {s}")).unwrap_or_default();
        ticket.record_issued(format!("role {role} until {}{into}", ticket.expires_at().to_rfc3339()), now);
        match store.update_ticket(&ticket, version).await {
            Ok(_) => {
                let mut event = NewEvent::for_ticket(&ticket, "access.issued", "grantwarden", now);
                event.detail["sql"] = serde_json::json!(sql);
                if let Some(secret) = delivered_in {
                    event.detail["secret"] = serde_json::json!(secret);
                }
                store.append(event).await?;
                return Ok(ticket);
            }
            Err(StoreError::Stale(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Stale(id.to_owned()))
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

/// The privileges and object a request stands for, in the ticket's terms.
fn grant_of(r: &AccessRequest) -> (Vec<Privilege>, RequestObject) {
    let mut privileges = match r.path {
        AccessPath::ReadOnly => vec![Privilege::Select, Privilege::Usage],
        AccessPath::Migration | AccessPath::BreakGlass => {
            vec![Privilege::Select, Privilege::Insert, Privilege::Update, Privilege::Delete, Privilege::Usage]
        }
    };
    privileges.sort();
    let object = match &r.scope {
        AccessScope::Database => RequestObject { on: On::Database, schema: None, name: None, columns: vec![] },
        AccessScope::Schema { schema } | AccessScope::Tables { schema, .. } | AccessScope::Rows { schema, .. } => {
            RequestObject { on: On::Schema, schema: None, name: Some(schema.clone()), columns: vec![] }
        }
    };
    (privileges, object)
}

/// A column as the catalog has it: name and type, (schema, `typname`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CatalogColumn {
    /// Its name.
    pub name: String,
    /// Its type: schema and `typname` (`pg_catalog`, `varchar`).
    pub type_name: (String, String),
}

/// Each table of a scope with its columns in order, as the catalog has them.
pub type ScopeCatalog = BTreeMap<(String, String), Vec<CatalogColumn>>;

/// The sequences each table owns (serial and identity columns), `(schema, sequence)`.
pub type OwnedSequences = BTreeMap<(String, String), Vec<(String, String)>>;

/// The relations each view or materialized view reads, directly or through other views.
pub type ViewSources = BTreeMap<(String, String), Vec<(String, String)>>;

/// The parents of each partition or inheritance child (`pg_inherits`), `(schema, table)`.
pub type Parents = BTreeMap<(String, String), Vec<(String, String)>>;

/// What issuing a credential reads of the target database before it plans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivationCatalog {
    /// The database's name.
    pub database: String,
    /// The tables of the scope (all of them for a database scope).
    pub tables: ScopeCatalog,
    /// Sequences the tables own.
    pub sequences: OwnedSequences,
    /// What each view reads.
    pub views: ViewSources,
    /// Partitions' and inheritance children's parents.
    pub parents: Parents,
    /// Schemas of the database on which PUBLIC holds CREATE.
    pub public_create_schemas: Vec<String>,
    /// PUBLIC holds CREATE on the database itself (it may create schemas).
    pub public_create_database: bool,
}

/// A credential's plan: the changes, in one transaction, and what a wide scope left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    /// The changes, in order.
    pub changes: Vec<Change>,
    /// Relations of a schema or database scope not granted, with the reason.
    pub left_out: Vec<String>,
}

type Relation = (String, String);

/// How sensitivity and masking follow the data: a partition or inheritance
/// child holds its parent's rows, a parent shows its children's rows, and a
/// view (or materialized view) shows what it reads. Sensitive and masked
/// tables, as the registry names them, pass that on through all three.
struct DataFlow<'a> {
    grant: &'a AccessGrant,
    catalog: &'a ActivationCatalog,
    /// Direct children of each relation.
    children: BTreeMap<&'a Relation, Vec<&'a Relation>>,
    /// The ticket's sensitive schema globs, compiled once.
    sensitive_schemas: Vec<GlobMatcher>,
}

impl<'a> DataFlow<'a> {
    fn new(grant: &'a AccessGrant, catalog: &'a ActivationCatalog) -> Self {
        let mut children: BTreeMap<&Relation, Vec<&Relation>> = BTreeMap::new();
        for (child, parents) in &catalog.parents {
            for p in parents {
                children.entry(p).or_default().push(child);
            }
        }
        // the globs were checked when the registry was loaded; one that no longer compiles matches nothing
        let sensitive_schemas =
            grant.sensitive_schemas.iter().filter_map(|g| Glob::new(g).ok()).map(|g| g.compile_matcher()).collect();
        Self { grant, catalog, children, sensitive_schemas }
    }

    /// The relation, its ancestors and its descendants: whose rows it shows or holds.
    fn lineage(&self, r: &Relation) -> Vec<Relation> {
        let mut seen = std::collections::BTreeSet::new();
        let mut up = vec![r.clone()];
        while let Some(x) = up.pop() {
            if seen.insert(x.clone()) {
                up.extend(self.catalog.parents.get(&x).into_iter().flatten().cloned());
            }
        }
        let mut down = vec![r.clone()];
        let mut below = std::collections::BTreeSet::new();
        while let Some(x) = down.pop() {
            if below.insert(x.clone()) {
                down.extend(self.children.get(&x).into_iter().flatten().map(|c| (*c).clone()));
            }
        }
        seen.extend(below);
        seen.into_iter().collect()
    }

    /// The masks that apply to `r`'s columns: the registry's for it and for every
    /// table of its lineage, where `r` has the column.
    fn masks(&self, r: &Relation) -> BTreeMap<String, Mask> {
        let columns = self.catalog.tables.get(r);
        let mut out = BTreeMap::new();
        for l in self.lineage(r) {
            let Some(m) = self.grant.masking.get(&format!("{}.{}", l.0, l.1)) else { continue };
            for (column, mask) in m {
                // the relation's own masks name its columns (checked apart); a relative's may not
                let has = columns.is_none_or(|c| c.iter().any(|k| k.name == *column));
                if has || l == *r {
                    out.entry(column.clone()).or_insert(*mask);
                }
            }
        }
        out
    }

    /// Whether the registry names `r` sensitive, by table or by schema.
    fn named_sensitive(&self, r: &Relation) -> bool {
        let name = format!("{}.{}", r.0, r.1);
        self.grant.sensitive_tables.contains(&name) || self.sensitive_schemas.iter().any(|g| g.is_match(&r.0))
    }

    /// Why `r` is sensitive through another relation: a parent, a child, or what a view reads.
    fn sensitive_through(&self, r: &Relation) -> Option<String> {
        if let Some(l) = self.lineage(r).into_iter().find(|l| l != r && self.named_sensitive(l)) {
            return Some(format!("it shares rows with the sensitive table {}.{} (partition or inheritance)", l.0, l.1));
        }
        for source in self.catalog.views.get(r).into_iter().flatten() {
            if let Some(l) = self.lineage(source).into_iter().find(|l| self.named_sensitive(l)) {
                return Some(format!("it is a view over the sensitive table {}.{}", l.0, l.1));
            }
        }
        None
    }

    /// The masked relation a view reads, if any (through its lineage too).
    fn masked_source(&self, r: &Relation) -> Option<Relation> {
        self.catalog.views.get(r).into_iter().flatten().find(|source| !self.masks(source).is_empty()).cloned()
    }
}

/// The changes that issue a ticket's credential, in one transaction (a write
/// path also gets USAGE on the sequences its tables own): the role (LOGIN,
/// VALID UNTIL the expiry, a connection limit, NOINHERIT), CONNECT on the
/// database, and exactly the scope: plain tables by GRANT, row scope and
/// masked tables through security-barrier views in the ticket's own schema,
/// owned by a role of their own that holds only what they read (nobody
/// else's access changes; row-level security is never switched on, and
/// still applies to what the views read).
///
/// Masking and sensitivity follow the data ([`DataFlow`]): a partition, an
/// inheritance child or a parent of a masked table is masked too, and of a
/// sensitive table sensitive too. A view reading a masked relation is left
/// out of a schema or database scope and refused when named; one reading a
/// sensitive relation likewise unless a person approved the ticket (a scope
/// the registry names sensitive already needs one). A mask naming a column
/// the table lacks is refused (a renamed column would show unmasked).
///
/// Issuing refuses where PUBLIC holds CREATE on a schema (any role, the
/// credential included, could create there functions and operators that run
/// as whoever calls them) unless the registry allows that schema, and where
/// PUBLIC may create schemas in the database.
pub fn plan_activation(ticket: &Ticket, catalog: &ActivationCatalog) -> Result<Activation, String> {
    let grant = ticket.access().ok_or_else(|| format!("ticket {} is not an access ticket", ticket.id()))?;
    let database = &catalog.database;
    if catalog.public_create_database {
        return Err(format!(
            "PUBLIC may create schemas in database {database}: any credential issued here could create objects \
             that outlive it or shadow another role's schema on its search_path. Revoke it first \
             (REVOKE CREATE ON DATABASE {} FROM PUBLIC)",
            crate::model::display_ident(database)
        ));
    }
    let allowed = |schema: &str| {
        grant.allow_public_create.iter().any(|g| Glob::new(g).is_ok_and(|g| g.compile_matcher().is_match(schema)))
    };
    if let Some(schema) = catalog.public_create_schemas.iter().find(|s| !allowed(s)) {
        return Err(format!(
            "PUBLIC holds CREATE on schema {schema} of database {database} (the default before PostgreSQL 15): \
             any credential issued here could create functions or operators there that run with the rights of \
             whoever calls them. Revoke it (REVOKE CREATE ON SCHEMA {} FROM PUBLIC), or allow it in the registry \
             (access.allow_public_create: [{schema}]) if you accept that",
            crate::model::display_ident(schema)
        ));
    }
    let flow = DataFlow::new(grant, catalog);
    let role = ticket.request().role.clone();
    let who = Grantee::Role(role.clone());
    let owner = views_owner_for(&role);
    let mut out = vec![
        Change::CreateRole {
            role: role.clone(),
            valid_until: ticket.expires_at(),
            connection_limit: grant.connection_limit,
        },
        Change::Grant {
            grant: Grant {
                object: ObjectRef::database(database),
                grantee: who.clone(),
                privilege: Privilege::Connect,
                grantable: false,
            },
        },
    ];
    let wide = matches!(grant.scope, AccessScope::Database | AccessScope::Schema { .. });
    let mut tables: Vec<Relation> = match &grant.scope {
        AccessScope::Database => catalog.tables.keys().cloned().collect(),
        AccessScope::Schema { schema } => catalog.tables.keys().filter(|(s, _)| s == schema).cloned().collect(),
        AccessScope::Tables { schema, tables } => tables.iter().map(|t| (schema.clone(), t.clone())).collect(),
        AccessScope::Rows { schema, table, .. } => vec![(schema.clone(), table.clone())],
    };
    // a person approved it, or an open incident did: a sensitive scope is what they agreed to
    let vouched = ticket.approvals_required() > 0 || grant.path == AccessPath::BreakGlass;
    let mut left_out = Vec::new();
    let mut refused = None;
    tables.retain(|r| {
        let why = match flow.masked_source(r) {
            Some((s, t)) => Some(format!(
                "it is a view over the masked table {s}.{t}: it would show the masked columns as they are \
                 (ask for {s}.{t}, whose view masks them)"
            )),
            None if !vouched => flow.sensitive_through(r).map(|why| {
                format!(
                    "{why}, and nobody approved this ticket (ask for it by name: a sensitive scope needs an approver)"
                )
            }),
            None => None,
        };
        match why {
            None => true,
            Some(why) => {
                let line = format!("{}.{}: {why}", r.0, r.1);
                if wide {
                    left_out.push(line);
                } else if refused.is_none() {
                    refused = Some(line);
                }
                false
            }
        }
    });
    if let Some(line) = refused {
        return Err(line);
    }
    if tables.is_empty() {
        let why = if left_out.is_empty() { String::new() } else { format!(": {}", left_out.join("; ")) };
        return Err(format!("{} holds no table grantwarden may grant{why}", describe(&grant.scope)));
    }
    // one views schema for the whole ticket: a database scope may hold two tables of one name
    let view_name = |schema: &str, table: &str| {
        let clash = tables.iter().filter(|(_, t)| t == table).count() > 1;
        if clash { format!("{schema}__{table}") } else { table.to_owned() }
    };
    let write = grant.path != AccessPath::ReadOnly;
    let mut usage = std::collections::BTreeSet::new();
    // what the views' owner must hold, and what runs as it
    let mut owner_reads = Vec::new();
    let mut owner_usage = std::collections::BTreeSet::new();
    let mut views = Vec::new();
    for (schema, table) in &tables {
        let relation = (schema.clone(), table.clone());
        let columns = catalog.tables.get(&relation).ok_or_else(|| format!("no table {schema}.{table}"))?;
        if let Some(unknown) = grant
            .masking
            .get(&format!("{schema}.{table}"))
            .and_then(|m| m.keys().find(|c| !columns.iter().any(|k| k.name == **c)))
        {
            return Err(format!(
                "the masking of {schema}.{table} names column {unknown:?}, which the table does not have: \
                 refusing to issue rather than show a column unmasked (correct the registry's access.masking)"
            ));
        }
        let masks = flow.masks(&relation);
        let predicate = match &grant.scope {
            AccessScope::Rows { predicate, .. } => {
                let column = columns
                    .iter()
                    .find(|c| c.name == predicate.column)
                    .ok_or_else(|| format!("{schema}.{table} has no column {}", predicate.column))?;
                Some((predicate.clone(), column.type_name.clone()))
            }
            _ => None,
        };
        let mut privileges = vec![Privilege::Select];
        if write && masks.is_empty() {
            privileges.extend([Privilege::Insert, Privilege::Update, Privilege::Delete]);
        }
        if !masks.is_empty() || predicate.is_some() {
            let name = view_name(schema, table);
            if views.iter().any(|v| matches!(v, Change::CreateView { name: n, .. } if *n == name)) {
                return Err(format!("two tables of the scope would share the view name {name:?}"));
            }
            owner_usage.insert(schema.clone());
            for p in privileges.iter().copied() {
                owner_reads.push(Change::Grant {
                    grant: Grant {
                        object: ObjectRef::in_schema(ObjectClass::Table, schema, table),
                        grantee: Grantee::Role(owner.clone()),
                        privilege: p,
                        grantable: false,
                    },
                });
            }
            views.push(Change::CreateView {
                schema: grant.views_schema.clone(),
                name: name.clone(),
                source_schema: schema.clone(),
                source_table: table.clone(),
                columns: columns.iter().map(|c| (c.name.clone(), masks.get(&c.name).copied())).collect(),
                predicate_type: predicate.as_ref().map(|(_, t)| t.clone()),
                predicate: predicate.map(|(p, _)| p),
            });
            for p in privileges {
                views.push(Change::Grant {
                    grant: Grant {
                        object: ObjectRef::in_schema(ObjectClass::Table, &grant.views_schema, &name),
                        grantee: who.clone(),
                        privilege: p,
                        grantable: false,
                    },
                });
            }
        } else {
            usage.insert(schema.clone());
            for p in privileges.iter().copied() {
                out.push(Change::Grant {
                    grant: Grant {
                        object: ObjectRef::in_schema(ObjectClass::Table, schema, table),
                        grantee: who.clone(),
                        privilege: p,
                        grantable: false,
                    },
                });
            }
            // an INSERT that takes a serial or identity default needs its sequence
            if privileges.contains(&Privilege::Insert) {
                for (seq_schema, seq) in catalog.sequences.get(&relation).into_iter().flatten() {
                    usage.insert(seq_schema.clone());
                    out.push(Change::Grant {
                        grant: Grant {
                            object: ObjectRef::in_schema(ObjectClass::Sequence, seq_schema, seq),
                            grantee: who.clone(),
                            privilege: Privilege::Usage,
                            grantable: false,
                        },
                    });
                }
            }
        }
    }
    let usage_of = |schema: &str, to: &Grantee| Change::Grant {
        grant: Grant {
            object: ObjectRef::schema(schema),
            grantee: to.clone(),
            privilege: Privilege::Usage,
            grantable: false,
        },
    };
    for schema in usage {
        out.push(usage_of(&schema, &who));
    }
    if !views.is_empty() {
        out.push(Change::CreateViewOwner { role: owner.clone() });
        out.extend(owner_usage.iter().map(|s| usage_of(s, &Grantee::Role(owner.clone()))));
        out.extend(owner_reads);
        out.push(Change::CreateSchema { schema: grant.views_schema.clone(), owner: owner.clone() });
        // the owner creates its views and hands them out: nothing of the admin's is in them
        out.push(Change::SetRole { role: Some(owner.clone()) });
        out.extend(views);
        out.push(usage_of(&grant.views_schema, &who));
        out.push(Change::SetRole { role: None });
    }
    Ok(Activation { changes: out, left_out })
}

/// Incidents known to be open (from the incident webhook).
pub trait Incidents {
    /// Whether `id` is open at `now`.
    fn is_open(&self, id: &str, now: DateTime<Utc>) -> bool;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ticket::ApprovalError;

    const REGISTRY: &str = r#"
version: "3.0"
owner: security@example.com
approver: ciso@example.com
categories:
  ops: { framework: SOC2, max_ttl: 24h, approvals: 1, weight_factor: 0.25 }
routes:
  - { match: {}, category: ops }
access:
  approver_roles: { security: [ciso@example.com], manager: [lead@example.com] }
  paths:
    read-only:   { max_ttl: 8h }
    migration:   { max_ttl: 4h, approvals: dual }
    break-glass: { max_ttl: 30m }
  sensitive: { schemas: ["phi_*"], tables: [billing.customers] }
  masking: { billing.customers: { email: partial, ssn: hash } }
  connection_limit: 3
"#;

    struct Open(&'static [&'static str]);
    impl Incidents for Open {
        fn is_open(&self, id: &str, _: DateTime<Utc>) -> bool {
            self.0.contains(&id)
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-11-22T12:00:00Z".parse().unwrap()
    }

    fn request(path: AccessPath, scope: AccessScope, duration: &str, incident: Option<&str>) -> AccessRequest {
        AccessRequest {
            id: "req-1".into(),
            identity: "alice@example.com".into(),
            target: TargetId::new("orders-prod").unwrap(),
            path,
            scope,
            duration: duration.into(),
            justification: "CHG-1".into(),
            incident_id: incident.map(Into::into),
        }
    }

    fn decide(r: &AccessRequest) -> Decision {
        let registry = PolicyRegistry::load(&[("r.yaml".into(), REGISTRY.into())]).unwrap();
        route_access(r, &registry, &Open(&["INC-7"]), now())
    }

    fn ticket(d: Decision) -> Ticket {
        match d {
            Decision::Ticket(t) => *t,
            other => panic!("a ticket: {other:?}"),
        }
    }

    fn tables(t: &[&str]) -> AccessScope {
        AccessScope::Tables { schema: "billing".into(), tables: t.iter().map(|s| s.to_string()).collect() }
    }

    /// The relations and views a database scope sees: billing.customers is masked.
    fn scope_catalog() -> ActivationCatalog {
        let cols = |c: &[&str]| {
            c.iter()
                .map(|s| CatalogColumn { name: s.to_string(), type_name: ("pg_catalog".into(), "text".into()) })
                .collect::<Vec<_>>()
        };
        let key = |s: &str, t: &str| (s.to_owned(), t.to_owned());
        let tables: ScopeCatalog = [
            (key("billing", "customers"), cols(&["id", "email", "ssn"])),
            (key("billing", "invoices"), cols(&["id", "customer_id"])),
            (key("reports", "customer_list"), cols(&["id", "email"])),
            (key("reports", "invoices"), cols(&["id", "total"])),
            (key("reports", "totals"), cols(&["total"])),
        ]
        .into();
        let views: ViewSources = [
            (key("reports", "customer_list"), vec![key("billing", "customers")]),
            (key("reports", "totals"), vec![key("billing", "invoices")]),
        ]
        .into();
        ActivationCatalog { database: "orders".into(), tables, views, ..ActivationCatalog::default() }
    }

    /// What the credential itself is granted (not the views' owner), and the views made.
    fn granted(changes: &[Change]) -> Vec<String> {
        let owner = |g: &Grant| g.grantee.role().is_some_and(|r| r.as_str().ends_with("_views"));
        changes
            .iter()
            .filter_map(|c| match c {
                Change::Grant { grant } if grant.privilege == Privilege::Select && !owner(grant) => {
                    Some(grant.object.to_string())
                }
                Change::CreateView { schema, name, source_schema, source_table, .. } => {
                    Some(format!("view {schema}.{name} of {source_schema}.{source_table}"))
                }
                _ => None,
            })
            .collect()
    }

    fn columns_of_view(changes: &[Change], view: &str) -> Vec<(String, Option<Mask>)> {
        changes
            .iter()
            .find_map(|c| match c {
                Change::CreateView { name, columns, .. } if name == view => Some(columns.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no view {view}: {changes:?}"))
    }

    #[test]
    fn activation_masks_through_views_and_leaves_out_a_view_that_reads_a_masked_table() {
        let catalog = scope_catalog();
        let mut t = ticket(decide(&request(AccessPath::ReadOnly, AccessScope::Database, "1h", None)));
        t.set_status(TicketStatus::Active);
        let schema = t.access().unwrap().views_schema.clone();
        let plan = plan_activation(&t, &catalog).unwrap();
        let got = granted(&plan.changes);
        assert!(got.contains(&format!("view {schema}.customers of billing.customers")), "{got:?}");
        assert!(got.contains(&format!("{schema}.customers")), "read through its masking view: {got:?}");
        assert!(!got.contains(&"billing.customers".to_owned()), "never the masked table itself: {got:?}");
        assert!(!got.iter().any(|g| g.contains("customer_list")), "a view over the masked table is left out");
        assert!(plan.left_out.iter().any(|l| l.starts_with("reports.customer_list: it is a view over the masked")));
        assert!(got.contains(&"reports.totals".to_owned()), "a view over unmasked tables is granted: {got:?}");
        assert!(got.contains(&"billing.invoices".to_owned()) && got.contains(&"reports.invoices".to_owned()));
        assert_eq!(
            columns_of_view(&plan.changes, "customers"),
            [("id".into(), None), ("email".into(), Some(Mask::Partial)), ("ssn".into(), Some(Mask::Hash))]
        );

        // named outright, such a view is refused with the reason
        let reports = AccessScope::Tables { schema: "reports".into(), tables: vec!["customer_list".into()] };
        let named = ticket(decide(&request(AccessPath::ReadOnly, reports, "1h", None)));
        let err = plan_activation(&named, &catalog).unwrap_err();
        assert!(err.contains("view over the masked table billing.customers"), "{err}");
    }

    #[test]
    fn views_are_made_and_handed_out_by_an_owner_that_holds_only_what_they_read() {
        let catalog = scope_catalog();
        let t = ticket(decide(&request(AccessPath::ReadOnly, AccessScope::Database, "1h", None)));
        let plan = plan_activation(&t, &catalog).unwrap().changes;
        let owner = views_owner_for(&t.request().role);
        let schema = t.access().unwrap().views_schema.clone();
        let at = |wanted: &Change| plan.iter().position(|c| c == wanted).unwrap_or_else(|| panic!("{wanted:?}"));
        let create = at(&Change::CreateViewOwner { role: owner.clone() });
        let made = at(&Change::CreateSchema { schema: schema.clone(), owner: owner.clone() });
        let (set, reset) = (at(&Change::SetRole { role: Some(owner.clone()) }), at(&Change::SetRole { role: None }));
        assert!(create < made && made < set && set < reset, "{plan:?}");
        for (i, c) in plan.iter().enumerate() {
            if matches!(c, Change::CreateView { .. }) {
                assert!(set < i && i < reset, "views are created as their owner");
            }
        }
        let owner_holds: Vec<String> = plan
            .iter()
            .filter_map(|c| match c {
                Change::Grant { grant } if grant.grantee == Grantee::Role(owner.clone()) => {
                    Some(format!("{} {}", grant.privilege, grant.object))
                }
                _ => None,
            })
            .collect();
        assert_eq!(owner_holds, ["USAGE billing", "SELECT billing.customers"], "only what its one view reads");
        assert!(schema.starts_with("gw_access_") && schema.len() == "gw_access_".len() + 16, "{schema}");
        let again = ticket(decide(&request(AccessPath::ReadOnly, AccessScope::Database, "1h", None)));
        assert_ne!(again.access().unwrap().views_schema, schema, "drawn, not derived from the request");
    }

    #[test]
    fn masking_and_sensitivity_follow_partitions_inheritance_and_views() {
        let mut catalog = scope_catalog();
        let key = |s: &str, t: &str| (s.to_owned(), t.to_owned());
        let cols = |c: &[&str]| {
            c.iter()
                .map(|s| CatalogColumn { name: s.to_string(), type_name: ("pg_catalog".into(), "text".into()) })
                .collect::<Vec<_>>()
        };
        // billing.customers has a partition; app.ledger inherits from billing.invoices2, which
        // has a masked child; reports.copy is a view over the partition of a sensitive table
        catalog.tables.insert(key("billing", "customers_2024"), cols(&["id", "email", "ssn"]));
        catalog.tables.insert(key("app", "ledger_parent"), cols(&["id", "card"]));
        catalog.tables.insert(key("app", "ledger_child"), cols(&["id", "card", "note"]));
        catalog.tables.insert(key("app", "by_partition"), cols(&["id", "email"]));
        catalog.parents.insert(key("billing", "customers_2024"), vec![key("billing", "customers")]);
        catalog.parents.insert(key("app", "ledger_child"), vec![key("app", "ledger_parent")]);
        catalog.views.insert(key("app", "by_partition"), vec![key("billing", "customers_2024")]);
        let mut t = ticket(decide(&request(AccessPath::ReadOnly, tables(&["customers_2024"]), "1h", None)));
        t.access_mut().unwrap().masking.insert("app.ledger_child".into(), [("card".into(), Mask::Hash)].into());
        let masked = |t: &Ticket| plan_activation(t, &catalog).map(|a| a.changes);
        // the partition of a sensitive table is sensitive: not without an approver...
        let err = masked(&t).unwrap_err();
        assert!(err.contains("shares rows with the sensitive table billing.customers"), "{err}");
        // ...and approved, masked as its parent is
        t.set_approvals_required(1);

        // a partition of the masked table is read through a masking view, never granted bare
        let plan = masked(&t).unwrap();
        assert_eq!(
            columns_of_view(&plan, "customers_2024"),
            [("id".into(), None), ("email".into(), Some(Mask::Partial)), ("ssn".into(), Some(Mask::Hash))]
        );
        assert!(!granted(&plan).contains(&"billing.customers_2024".to_owned()));

        // the parent of a masked child shows the child's rows: masked as well
        let mut parent = t.clone();
        parent.access_mut().unwrap().scope =
            AccessScope::Tables { schema: "app".into(), tables: vec!["ledger_parent".into()] };
        assert_eq!(
            columns_of_view(&masked(&parent).unwrap(), "ledger_parent"),
            [("id".into(), None), ("card".into(), Some(Mask::Hash))]
        );

        // a view over that partition reads a masked relation: refused when named...
        let mut view = t.clone();
        view.access_mut().unwrap().scope =
            AccessScope::Tables { schema: "app".into(), tables: vec!["by_partition".into()] };
        let err = masked(&view).unwrap_err();
        assert!(err.contains("view over the masked table billing.customers_2024"), "{err}");
        // ...and left out of the schema
        let mut schema = t.clone();
        schema.access_mut().unwrap().scope = AccessScope::Schema { schema: "app".into() };
        let a = plan_activation(&schema, &catalog).unwrap();
        assert!(a.left_out.iter().any(|l| l.starts_with("app.by_partition")), "{:?}", a.left_out);

        // sensitivity without masking: a view over a sensitive table, issued with no approval
        let mut unmasked = t.clone();
        unmasked.set_approvals_required(0);
        unmasked.access_mut().unwrap().masking.clear();
        unmasked.access_mut().unwrap().scope =
            AccessScope::Tables { schema: "app".into(), tables: vec!["by_partition".into()] };
        assert_eq!(unmasked.approvals_required(), 0);
        let err = plan_activation(&unmasked, &catalog).unwrap_err();
        assert!(err.contains("sensitive table billing.customers") && err.contains("nobody approved"), "{err}");
        // a person approved it: what they approved is issued
        unmasked.set_approvals_required(1);
        assert!(plan_activation(&unmasked, &catalog).is_ok());
    }

    #[test]
    fn a_tickets_views_and_what_their_owner_reads_are_its_own_not_drift() {
        let t = ticket(decide(&request(AccessPath::ReadOnly, tables(&["invoices"]), "1h", None)));
        let (target, role) = (t.request().target.clone(), t.request().role.clone());
        let views = t.access().unwrap().views_schema.clone();
        let owner = views_owner_for(&role);
        let invoices = ObjectRef::in_schema(ObjectClass::Table, "billing", "invoices");
        assert!(t.covers(&target, &role, Privilege::Usage, &ObjectRef::schema(&views)));
        assert!(t.covers(&target, &role, Privilege::Select, &ObjectRef::in_schema(ObjectClass::Table, &views, "x")));
        assert!(t.covers(&target, &owner, Privilege::Select, &invoices), "the owner reads the scope for the views");
        assert!(!t.covers(&target, &owner, Privilege::Delete, &invoices), "no more than the ticket gives");
        let other = RoleName::new("mallory").unwrap();
        assert!(!t.covers(&target, &other, Privilege::Select, &ObjectRef::in_schema(ObjectClass::Table, &views, "x")));
    }

    #[test]
    fn issuing_refuses_where_public_may_create_unless_the_registry_allows_the_schema() {
        let mut catalog = scope_catalog();
        catalog.public_create_schemas = vec!["public".into()];
        let mut t = ticket(decide(&request(AccessPath::ReadOnly, tables(&["invoices"]), "1h", None)));
        let err = plan_activation(&t, &catalog).unwrap_err();
        assert!(err.contains("PUBLIC holds CREATE on schema public"), "{err}");
        assert!(err.contains("REVOKE CREATE ON SCHEMA public FROM PUBLIC"), "says how to fix it: {err}");
        assert!(err.contains("access.allow_public_create"), "{err}");
        t.access_mut().unwrap().allow_public_create = vec!["pub*".into()];
        assert!(plan_activation(&t, &catalog).is_ok());
        catalog.public_create_database = true;
        let err = plan_activation(&t, &catalog).unwrap_err();
        assert!(err.contains("PUBLIC may create schemas in database orders"), "{err}");
    }

    #[test]
    fn a_mask_on_a_column_the_table_lacks_refuses_and_same_named_tables_get_distinct_views() {
        let mut catalog = scope_catalog();
        let mut t = ticket(decide(&request(AccessPath::ReadOnly, AccessScope::Database, "1h", None)));
        let schema = t.access().unwrap().views_schema.clone();
        // two masked tables called invoices, in two schemas
        let grant = t.access_mut().unwrap();
        grant.masking.insert("billing.invoices".into(), [("customer_id".to_owned(), Mask::Hash)].into());
        grant.masking.insert("reports.invoices".into(), [("total".to_owned(), Mask::Partial)].into());
        let plan = plan_activation(&t, &catalog).unwrap();
        let got = granted(&plan.changes);
        assert!(got.contains(&format!("view {schema}.billing__invoices of billing.invoices")), "{got:?}");
        assert!(got.contains(&format!("view {schema}.reports__invoices of reports.invoices")), "{got:?}");
        assert!(got.contains(&format!("view {schema}.customers of billing.customers")), "no clash, no prefix");
        // a renamed column: the mask would silently not apply
        let renamed = ["id", "e_mail", "ssn"]
            .iter()
            .map(|c| CatalogColumn { name: c.to_string(), type_name: ("pg_catalog".into(), "text".into()) })
            .collect();
        catalog.tables.insert(("billing".into(), "customers".into()), renamed);
        let err = plan_activation(&t, &catalog).unwrap_err();
        assert!(err.contains("names column \"email\", which the table does not have"), "{err}");
    }

    #[test]
    fn an_approver_role_other_than_security_or_manager_is_refused_at_load() {
        let yaml = REGISTRY.replace("manager: [lead@example.com]", "friends: [pal@example.com]");
        let err = PolicyRegistry::load(&[("r.yaml".into(), yaml)]).unwrap_err().to_string();
        assert!(err.contains("access.approver_roles.friends"), "{err}");
    }

    #[test]
    fn read_only_is_automatic_unless_the_scope_is_sensitive() {
        let t = ticket(decide(&request(AccessPath::ReadOnly, tables(&["invoices"]), "2h", None)));
        assert_eq!((t.status(), t.approvals_required()), (TicketStatus::Active, 0));
        assert_eq!(t.role_lifecycle(), RoleLifecycle::ShortLived);
        assert!(t.request().role.as_str().starts_with("gw_alice_"));
        assert_eq!(t.expires_at(), now() + chrono::Duration::hours(2));
        let grant = t.access().unwrap();
        assert_eq!((grant.connection_limit, grant.masking.len()), (3, 1), "the registry's masks, for views in scope");
        let t = ticket(decide(&request(AccessPath::ReadOnly, tables(&["customers"]), "2h", None)));
        assert_eq!((t.status(), t.approvals_required()), (TicketStatus::PendingApproval, 1));
        assert_eq!(t.access().unwrap().masking["billing.customers"]["email"], Mask::Partial);
        let phi = AccessScope::Schema { schema: "phi_claims".into() };
        assert_eq!(ticket(decide(&request(AccessPath::ReadOnly, phi, "1h", None))).approvals_required(), 1);
        assert!(matches!(
            decide(&request(AccessPath::ReadOnly, tables(&["invoices"]), "9h", None)),
            Decision::Refused { refusal: Refusal::TtlExceeded { .. }, .. }
        ));
    }

    #[test]
    fn dual_approval_needs_two_distinct_approvers_one_privileged_and_never_the_requester() {
        let mut t = ticket(decide(&request(AccessPath::Migration, tables(&["invoices"]), "1h", None)));
        assert_eq!((t.status(), t.approvals_required()), (TicketStatus::PendingApproval, 2));
        assert_eq!(t.approve("alice@example.com", now()), Err(ApprovalError::Requester("alice@example.com".into())));
        t.approve("bob@example.com", now()).unwrap();
        assert_eq!(t.approve("Bob@example.com", now()), Err(ApprovalError::Duplicate("Bob@example.com".into())));
        t.approve("carol@example.com", now()).unwrap();
        assert_eq!(t.status(), TicketStatus::PendingApproval, "two approvals, neither security nor manager");
        t.approve("lead@example.com", now()).unwrap();
        assert_eq!(t.status(), TicketStatus::Active, "a manager among them");
    }

    #[test]
    fn break_glass_only_during_an_open_incident_and_for_at_most_its_window() {
        let scope = || tables(&["invoices"]);
        assert!(matches!(
            decide(&request(AccessPath::BreakGlass, scope(), "20m", None)),
            Decision::Refused { refusal: Refusal::IncidentRequired, .. }
        ));
        assert!(matches!(
            decide(&request(AccessPath::BreakGlass, scope(), "20m", Some("INC-1"))),
            Decision::Refused { refusal: Refusal::IncidentNotOpen { .. }, .. }
        ));
        assert!(matches!(
            decide(&request(AccessPath::BreakGlass, scope(), "1h", Some("INC-7"))),
            Decision::Refused { refusal: Refusal::TtlExceeded { .. }, .. }
        ));
        let t = ticket(decide(&request(AccessPath::BreakGlass, scope(), "30m", Some("INC-7"))));
        assert_eq!(t.status(), TicketStatus::Active);
        assert!(t.access().unwrap().review_required);
        assert_eq!(t.weight_factor(), 1.0);
    }

    #[test]
    fn the_same_request_later_is_the_same_ticket() {
        let r = request(AccessPath::ReadOnly, tables(&["invoices"]), "2h", None);
        let registry = PolicyRegistry::load(&[("r.yaml".into(), REGISTRY.into())]).unwrap();
        let a = ticket(route_access(&r, &registry, &Open(&[]), now()));
        let b = ticket(route_access(&r, &registry, &Open(&[]), now() + chrono::Duration::minutes(5)));
        assert_eq!((a.id(), a.request_sha256()), (b.id(), b.request_sha256()), "a redelivery, not a conflict");
        let mut changed = r.clone();
        changed.duration = "3h".into();
        assert_ne!(ticket(route_access(&changed, &registry, &Open(&[]), now())).request_sha256(), a.request_sha256());
    }

    #[test]
    fn without_an_access_section_nothing_routes() {
        let registry =
            PolicyRegistry::load(&[("r.yaml".into(), REGISTRY.split("access:").next().unwrap().into())]).unwrap();
        let r = request(AccessPath::ReadOnly, tables(&["invoices"]), "1h", None);
        assert!(matches!(route_access(&r, &registry, &Open(&[]), now()), Decision::Untagged { .. }));
    }

    #[test]
    fn predicates_parse_only_as_column_and_literals() {
        let p = RowPredicate::parse("customer_id = 42").unwrap();
        assert_eq!((p.column.as_str(), p.values.clone()), ("customer_id", vec![Literal::Int(42)]));
        let p = RowPredicate::parse("region IN ('eu', 'o''hara')").unwrap();
        assert_eq!(p.values, vec![Literal::Text("eu".into()), Literal::Text("o'hara".into())]);
        for bad in [
            "customer_id = 42 or 1=1",
            "customer_id = 42; drop table x",
            "id = '1",
            "(id) = 1",
            "id > 3",
            "id in ()",
            "id = '1' || 'x'",
        ] {
            assert!(RowPredicate::parse(bad).is_err(), "{bad}");
        }
        // JSON: text or parts, checked either way
        let p: RowPredicate = serde_json::from_str(r#""region in ('eu')""#).unwrap();
        assert_eq!(p.values, vec![Literal::Text("eu".into())]);
        let p: RowPredicate = serde_json::from_str(r#"{"column":"customer_id","values":[42,"x"]}"#).unwrap();
        assert_eq!(p.values, vec![Literal::Int(42), Literal::Text("x".into())]);
        for bad in [r#"{"column":"id","values":[]}"#, r#"{"column":"id = 1 or true","values":[1]}"#, r#""id > 3""#] {
            assert!(serde_json::from_str::<RowPredicate>(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn a_predicate_of_any_text_parses_or_is_refused_without_a_panic(text in "\\PC{0,40}") {
            if let Ok(p) = RowPredicate::parse(&text) {
                proptest::prop_assert!(p.column.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
                proptest::prop_assert!(!p.values.is_empty());
            }
        }
    }

    #[test]
    fn issued_role_names_are_unique_per_ticket_and_plain() {
        let a = role_for("Alice.O'Hara@example.com", "tkt-1");
        let b = role_for("Alice.O'Hara@example.com", "tkt-2");
        assert_ne!(a, b);
        assert!(a.as_str().starts_with("gw_aliceohara_"), "{a}");
        assert!(a.as_str().chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
        assert!(role_for(&"x".repeat(300), "t").as_str().len() <= 63);
    }

    #[test]
    fn a_request_names_the_field_that_is_wrong() {
        let ok = br#"{"id":"r1","identity":"alice@example.com","target":"orders-prod","path":"read-only",
            "scope":{"on":"rows","schema":"billing","table":"invoices","predicate":{"column":"customer_id","values":[42]}},
            "duration":"2h","justification":"ticket 77"}"#;
        assert!(parse_request(ok).is_ok());
        let bad = br#"{"id":"r1","identity":"alice@example.com","target":"orders-prod","path":"root",
            "scope":{"on":"database"},"duration":"2h","justification":"x"}"#;
        assert_eq!(parse_request(bad).unwrap_err().0, "path");
        let bad = br#"{"id":"r1","identity":"alice@example.com","target":"orders-prod","path":"read-only",
            "scope":{"on":"database"},"duration":"forever","justification":"x"}"#;
        assert_eq!(parse_request(bad).unwrap_err().0, "duration");
    }
}
