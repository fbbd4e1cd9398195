//! Normalization: every kind of grant event becomes one canonical
//! [`GrantRequest`].
//!
//! Three inputs: the grant webhook JSON (docs/CONTRACTS.md#grant-webhook), pgaudit log lines (class
//! ROLE, GRANT and REVOKE, the logged SQL parsed by [`crate::grant_sql`]), and a minimal generic
//! JSON for other provisioning systems. Failures say which field and why
//! ([`NormalizeError`]); the caller records them as untagged drift, never as
//! a silent pass.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::error::FieldError;
use crate::grant_sql::parse_grant_sql;
use crate::manifest::On;
use crate::model::{ObjectClass, Privilege, RoleName};
use crate::names::split_qualified;
use crate::request::{Action, GrantRequest, InputKind, RequestObject};
use crate::snapshot::TargetId;

/// Why an input could not be normalized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input} {}: {field}: {reason}", .delivery_id.as_deref().unwrap_or("(no delivery id)"))]
pub struct NormalizeError {
    /// Which kind of input.
    pub input: InputKind,
    /// Its delivery id, when it had one.
    pub delivery_id: Option<String>,
    /// The failing field (JSON path, or pgaudit part).
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

/// What normalization checks against.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// Known targets; a request for another is refused. Empty: any target.
    pub targets: &'a BTreeSet<TargetId>,
    /// Now, for expiry checks.
    pub now: DateTime<Utc>,
    /// Target for pgaudit lines, which do not name one.
    pub audit_target: Option<&'a TargetId>,
}

/// The grant webhook body (docs/CONTRACTS.md#grant-webhook).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Webhook {
    delivery_id: String,
    source: String,
    target: String,
    principal: String,
    role: String,
    privileges: Vec<String>,
    object: WebhookObject,
    #[serde(default)]
    justification: Option<String>,
    requested_by: String,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    incident_id: Option<String>,
    #[serde(default)]
    action: Option<Action>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookObject {
    #[serde(rename = "type")]
    kind: On,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    schema: Option<String>,
    #[serde(default)]
    columns: Vec<String>,
}

/// The generic payload: the least a provisioning system can send.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Generic {
    id: String,
    system: String,
    target: String,
    user: String,
    role: String,
    grant: Vec<String>,
    /// `database`, `schema:NAME`, `table:SCHEMA.NAME` or `all_tables_in_schema:NAME`.
    on: String,
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    incident: Option<String>,
}

fn fail(input: InputKind, id: Option<&str>, field: impl Into<String>, reason: impl Into<String>) -> NormalizeError {
    NormalizeError { input, delivery_id: id.map(str::to_owned), field: field.into(), reason: reason.into() }
}

/// Parses JSON into `T`, naming the failing path.
fn from_json<T: serde::de::DeserializeOwned>(body: &[u8], input: InputKind) -> Result<T, NormalizeError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let FieldError { field, reason } = FieldError::from_json(e);
        // a delivery id is worth reporting even when the body is otherwise bad
        let id = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("delivery_id").or_else(|| v.get("id")).and_then(|d| d.as_str().map(str::to_owned)));
        fail(input, id.as_deref(), field, reason)
    })
}

/// A principal is an email-like identity or an ARN.
fn check_principal(p: &str) -> Result<String, String> {
    let p = p.trim();
    if p.starts_with("arn:") && p.split(':').count() >= 6 && !p.contains(char::is_whitespace) {
        return Ok(p.to_owned());
    }
    let (local, domain) =
        p.split_once('@').ok_or_else(|| format!("{p:?} is not an identity (name@domain or an ARN)"))?;
    let bad = local.is_empty()
        || domain.is_empty()
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains('@')
        || p.chars().any(|c| c.is_whitespace() || c.is_control());
    if bad { Err(format!("{p:?} is not an identity (name@domain or an ARN)")) } else { Ok(p.to_owned()) }
}

/// Object classes whose privileges a request on `on` may carry. A request on a
/// schema may carry table privileges: access to a schema's data, as in the
/// documented webhook (`SELECT` on `schema billing`), means its tables.
fn classes_for(on: On) -> &'static [ObjectClass] {
    match on {
        On::Database => &[ObjectClass::Database],
        On::Schema => &[ObjectClass::Schema, ObjectClass::Table],
        On::Sequence | On::AllSequencesInSchema => &[ObjectClass::Sequence],
        On::Function | On::AllFunctionsInSchema => &[ObjectClass::Function],
        On::Column => &[ObjectClass::Column],
        _ => &[ObjectClass::Table],
    }
}

fn privileges(
    input: InputKind,
    id: &str,
    field: &str,
    list: &[String],
    on: On,
) -> Result<Vec<Privilege>, NormalizeError> {
    if list.is_empty() {
        return Err(fail(input, Some(id), field, "at least one privilege is required"));
    }
    let classes = classes_for(on);
    let mut out = BTreeSet::new();
    for (i, p) in list.iter().enumerate() {
        let upper = p.trim().to_ascii_uppercase();
        if upper == "ALL" || upper == "ALL PRIVILEGES" {
            out.extend(classes[0].acl_privileges(u32::MAX));
            continue;
        }
        let privilege: Privilege = p.parse().map_err(|e: crate::model::UnknownPrivilege| {
            fail(input, Some(id), format!("{field}[{i}]"), e.to_string())
        })?;
        if !classes.iter().any(|c| c.accepts(privilege)) {
            let on_name = on.keyword();
            return Err(fail(
                input,
                Some(id),
                format!("{field}[{i}]"),
                format!("{privilege} cannot be granted on {on_name}"),
            ));
        }
        out.insert(privilege);
    }
    Ok(out.into_iter().collect())
}

fn object(
    input: InputKind,
    id: &str,
    on: On,
    name: Option<&str>,
    schema: Option<&str>,
    columns: Vec<String>,
) -> Result<RequestObject, NormalizeError> {
    let need = |v: Option<&str>, f: &str| {
        v.map(str::to_owned)
            .ok_or_else(|| fail(input, Some(id), f, format!("required for object type {on:?}").to_lowercase()))
    };
    Ok(match on {
        On::Database => RequestObject { on, schema: None, name: name.map(str::to_owned), columns },
        On::Schema => RequestObject { on, schema: None, name: Some(need(name, "object.name")?), columns },
        On::AllTablesInSchema | On::AllSequencesInSchema | On::AllFunctionsInSchema => {
            RequestObject { on, schema: Some(need(schema.or(name), "object.schema")?), name: None, columns }
        }
        On::Table | On::Sequence | On::Column | On::Function => {
            let n = need(name, "object.name")?;
            let (s, n) = match schema {
                Some(s) => (s.to_owned(), n),
                None => split_qualified(&n).ok_or_else(|| {
                    fail(input, Some(id), "object.name", format!("{n:?} must be schema-qualified (schema.name)"))
                })?,
            };
            if on == On::Column && columns.is_empty() {
                return Err(fail(input, Some(id), "object.columns", "column privileges need columns"));
            }
            if on == On::Function && crate::names::parse_function(&n).is_none_or(|f| f.schema.is_some()) {
                return Err(fail(
                    input,
                    Some(id),
                    "object.name",
                    format!(
                        "{n:?} must be schema.name(argtypes), the name double-quoted when it holds '(', '.' or '\"'"
                    ),
                ));
            }
            RequestObject { on, schema: Some(s), name: Some(n), columns }
        }
        _ => return Err(fail(input, Some(id), "object.type", "default privileges cannot be requested as a grant")),
    })
}

fn target(input: InputKind, id: &str, t: &str, ctx: &Context) -> Result<TargetId, NormalizeError> {
    let target = TargetId::new(t).ok_or_else(|| fail(input, Some(id), "target", "empty"))?;
    if !ctx.targets.is_empty() && !ctx.targets.contains(&target) {
        return Err(fail(input, Some(id), "target", format!("unknown target {t:?}")));
    }
    Ok(target)
}

fn expiry(
    input: InputKind,
    id: &str,
    field: &str,
    v: Option<&str>,
    action: Action,
    ctx: &Context,
) -> Result<Option<DateTime<Utc>>, NormalizeError> {
    let Some(v) = v else {
        return match action {
            Action::Revoke => Ok(None),
            Action::Grant => Err(fail(input, Some(id), field, "missing: every grant needs an expiry")),
        };
    };
    let at = DateTime::parse_from_rfc3339(v.trim())
        .map_err(|e| fail(input, Some(id), field, format!("cannot read {v:?} as an RFC 3339 time: {e}")))?
        .with_timezone(&Utc);
    if action == Action::Grant && at <= ctx.now {
        return Err(fail(input, Some(id), field, format!("{} is in the past", at.to_rfc3339())));
    }
    Ok(Some(at))
}

fn role(input: InputKind, id: &str, field: &str, r: &str) -> Result<RoleName, NormalizeError> {
    RoleName::new(r).map_err(|e| fail(input, Some(id), field, e.to_string()))
}

/// Normalizes the grant webhook body.
pub fn from_webhook(body: &[u8], ctx: &Context) -> Result<GrantRequest, NormalizeError> {
    const I: InputKind = InputKind::Webhook;
    let w: Webhook = from_json(body, I)?;
    let id = w.delivery_id.trim().to_owned();
    if id.is_empty() {
        return Err(fail(I, None, "delivery_id", "empty"));
    }
    let action = w.action.unwrap_or(Action::Grant);
    let object = object(I, &id, w.object.kind, w.object.name.as_deref(), w.object.schema.as_deref(), w.object.columns)?;
    Ok(GrantRequest {
        input: I,
        source: w.source,
        action,
        target: target(I, &id, &w.target, ctx)?,
        principal: check_principal(&w.principal).map_err(|r| fail(I, Some(&id), "principal", r))?,
        role: role(I, &id, "role", &w.role)?,
        privileges: privileges(I, &id, "privileges", &w.privileges, object.on)?,
        object,
        expires_at: expiry(I, &id, "expires_at", w.expires_at.as_deref(), action, ctx)?,
        justification: w.justification.filter(|j| !j.trim().is_empty()),
        requested_by: w.requested_by,
        incident_id: w.incident_id.filter(|i| !i.trim().is_empty()),
        observed_at: ctx.now,
        delivery_id: id,
    })
}

/// Normalizes the generic payload.
pub fn from_generic(body: &[u8], ctx: &Context) -> Result<GrantRequest, NormalizeError> {
    const I: InputKind = InputKind::Generic;
    let g: Generic = from_json(body, I)?;
    let id = g.id.trim().to_owned();
    let (kind, rest) = g.on.split_once(':').map(|(k, r)| (k, Some(r))).unwrap_or((g.on.as_str(), None));
    let on: On = serde_json::from_value(serde_json::Value::String(kind.to_owned()))
        .map_err(|_| fail(I, Some(&id), "on", format!("unknown object type {kind:?}")))?;
    let object = object(I, &id, on, rest, None, Vec::new())?;
    Ok(GrantRequest {
        input: I,
        source: g.system,
        action: Action::Grant,
        target: target(I, &id, &g.target, ctx)?,
        principal: check_principal(&g.user).map_err(|r| fail(I, Some(&id), "user", r))?,
        role: role(I, &id, "role", &g.role)?,
        privileges: privileges(I, &id, "grant", &g.grant, object.on)?,
        object,
        expires_at: expiry(I, &id, "until", g.until.as_deref(), Action::Grant, ctx)?,
        justification: g.reason,
        requested_by: g.user.clone(),
        incident_id: g.incident,
        observed_at: ctx.now,
        delivery_id: id,
    })
}

/// The session user and statement class (READ, WRITE, DDL, ROLE, ...) of a
/// pgaudit SESSION line, when the log line prefix names the user (`%u@%d`).
pub fn pgaudit_session(line: &str) -> Option<(String, String)> {
    let pos = line.find("AUDIT: ")?;
    let entry = crate::pglog::audit_entry(&line[pos..])?.ok()?;
    if entry.audit_type != crate::pglog::AuditType::Session {
        return None;
    }
    Some((prefix_user(&line[..pos])?, entry.class))
}

/// One pgaudit log line: either a GRANT/REVOKE request, or `Ok(None)` for an
/// audit line of another class or command (nothing to route).
pub fn from_pgaudit_line(
    line: &str,
    line_no: usize,
    ctx: &Context,
) -> Result<Option<Vec<GrantRequest>>, NormalizeError> {
    let id = format!("pgaudit:{line_no}");
    let Some(pos) = line.find("AUDIT: ") else { return Ok(None) };
    let prefix = &line[..pos];
    let entry = match crate::pglog::audit_entry(&line[pos..]) {
        Some(Ok(entry)) => entry,
        Some(Err(reason)) => return Err(fail(InputKind::Pgaudit, Some(&id), "AUDIT", reason)),
        None => return Ok(None),
    };
    from_audit_entry(&entry, leading_timestamp(prefix), prefix_user(prefix), &id, ctx)
}

/// One pgaudit entry, logged at `at` by `user` (from the log record, whatever
/// its layout): a GRANT/REVOKE request per grantee with delivery id `id` (or
/// `<id>.<n>`), or `Ok(None)` for an entry of another class or command.
pub fn from_audit_entry(
    entry: &crate::pglog::AuditEntry,
    at: Option<DateTime<Utc>>,
    user: Option<String>,
    id: &str,
    ctx: &Context,
) -> Result<Option<Vec<GrantRequest>>, NormalizeError> {
    const I: InputKind = InputKind::Pgaudit;
    let command = entry.command.to_ascii_uppercase();
    if entry.class != "ROLE" || (command != "GRANT" && command != "REVOKE") {
        return Ok(None);
    }
    let target = ctx
        .audit_target
        .cloned()
        .ok_or_else(|| fail(I, Some(id), "target", "pgaudit lines do not name a target: give one"))?;
    let statement = parse_grant_sql(&entry.statement).map_err(|r| fail(I, Some(id), "statement", r))?;
    let Some(statement) = statement else { return Ok(None) }; // GRANT role TO role: membership, not routed here
    let observed_at = at.unwrap_or(ctx.now);
    let requested_by = user.unwrap_or_else(|| "unknown".to_owned());
    let mut out = Vec::new();
    for (n, grantee) in statement.grantees.iter().enumerate() {
        let role = role(I, id, "statement.grantee", grantee)?;
        out.push(GrantRequest {
            delivery_id: if statement.grantees.len() == 1 { id.to_owned() } else { format!("{id}.{n}") },
            input: I,
            source: "pgaudit".to_owned(),
            action: statement.action,
            target: target.clone(),
            principal: format!("role:{grantee}"),
            role,
            privileges: privileges(I, id, "statement.privileges", &statement.privileges, statement.object.on)?,
            object: statement.object.clone(),
            expires_at: None,
            justification: None,
            requested_by: requested_by.clone(),
            incident_id: None,
            observed_at,
        });
    }
    Ok(Some(out))
}

/// `2026-11-22 10:00:01.123 UTC ...` at the start of a log line.
fn leading_timestamp(prefix: &str) -> Option<DateTime<Utc>> {
    let mut parts = prefix.split_whitespace();
    let (date, time, zone) = (parts.next()?, parts.next()?, parts.next()?);
    if zone != "UTC" && zone != "GMT" {
        return None;
    }
    let naive = chrono::NaiveDateTime::parse_from_str(&format!("{date} {time}"), "%Y-%m-%d %H:%M:%S%.f").ok()?;
    Some(naive.and_utc())
}

/// `user@db` in a log_line_prefix such as `... [123] admin@orders LOG:`.
fn prefix_user(prefix: &str) -> Option<String> {
    prefix
        .split_whitespace()
        .find(|w| w.contains('@') && !w.starts_with('['))
        .and_then(|w| w.split('@').next())
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx_targets() -> BTreeSet<TargetId> {
        ["orders-prod"].iter().map(|t| TargetId::new(*t).unwrap()).collect()
    }

    fn ctx(targets: &BTreeSet<TargetId>) -> Context<'_> {
        Context { targets, now: "2026-11-22T12:00:00Z".parse().unwrap(), audit_target: None }
    }

    const WEBHOOK: &str = r#"{ "delivery_id": "d-123", "source": "okta-workflows", "target": "orders-prod",
  "principal": "alice@example.com", "role": "alice_tmp",
  "privileges": ["SELECT"], "object": { "type": "schema", "name": "billing" },
  "justification": "INC-4411 debugging", "requested_by": "alice@example.com",
  "expires_at": "2026-11-22T18:00:00Z" }"#;

    #[test]
    fn the_design_webhook_normalizes() {
        let t = ctx_targets();
        let r = from_webhook(WEBHOOK.as_bytes(), &ctx(&t)).unwrap();
        assert_eq!(r.delivery_id, "d-123");
        assert_eq!(r.role.as_str(), "alice_tmp");
        assert_eq!(r.privileges, vec![Privilege::Select]);
        assert_eq!(
            r.object,
            RequestObject { on: On::Schema, schema: None, name: Some("billing".into()), columns: vec![] }
        );
        assert_eq!(r.object.route_schema(), Some("billing"));
        assert_eq!(r.expires_at.unwrap().to_rfc3339(), "2026-11-22T18:00:00+00:00");
    }

    #[test]
    fn webhook_failures_name_the_field() {
        let t = ctx_targets();
        let cases = [
            (
                WEBHOOK.replace(r#","expires_at": "2026-11-22T18:00:00Z""#, "").replace(
                    r#""requested_by": "alice@example.com",
  "expires_at": "2026-11-22T18:00:00Z""#,
                    r#""requested_by": "alice@example.com""#,
                ),
                "expires_at: missing",
            ),
            (WEBHOOK.replace("2026-11-22T18:00:00Z", "tomorrow"), "expires_at: cannot read \"tomorrow\""),
            (
                WEBHOOK.replace("2026-11-22T18:00:00Z", "2026-11-22T11:00:00Z"),
                "expires_at: 2026-11-22T11:00:00+00:00 is in the past",
            ),
            (
                WEBHOOK.replace(r#""principal": "alice@example.com""#, r#""principal": "alice""#),
                "principal: \"alice\" is not an identity",
            ),
            (
                WEBHOOK.replace(r#""principal": "alice@example.com""#, r#""principal": "al ice@example.com""#),
                "principal:",
            ),
            (
                WEBHOOK.replace(r#""target": "orders-prod""#, r#""target": "orders-staging""#),
                "target: unknown target \"orders-staging\"",
            ),
            (WEBHOOK.replace(r#"["SELECT"]"#, r#"["SELEC"]"#), "privileges[0]: unknown privilege \"SELEC\""),
            (WEBHOOK.replace(r#"["SELECT"]"#, r#"["EXECUTE"]"#), "privileges[0]: EXECUTE cannot be granted on schema"),
            (WEBHOOK.replace(r#""type": "schema""#, r#""type": "galaxy""#), "object.type: unknown variant"),
            (WEBHOOK.replace(r#""role": "alice_tmp""#, r#""role": """#), "role: name is empty"),
            (WEBHOOK.replace(r#""role": "alice_tmp","#, ""), "role: missing field `role`"),
            ("{ not json".to_owned(), "body:"),
        ];
        for (body, want) in cases {
            let e = from_webhook(body.as_bytes(), &ctx(&t)).unwrap_err();
            let got = format!("{}: {}", e.field, e.reason);
            assert!(got.starts_with(want) || got.contains(want), "\n got: {got}\nwant: {want}");
        }
    }

    #[test]
    fn a_table_object_must_be_qualified() {
        let t = ctx_targets();
        let body =
            WEBHOOK.replace(r#"{ "type": "schema", "name": "billing" }"#, r#"{ "type": "table", "name": "invoices" }"#);
        let e = from_webhook(body.as_bytes(), &ctx(&t)).unwrap_err();
        assert_eq!(e.field, "object.name");
        let body = WEBHOOK.replace(
            r#"{ "type": "schema", "name": "billing" }"#,
            r#"{ "type": "table", "name": "billing.invoices" }"#,
        );
        let r = from_webhook(body.as_bytes(), &ctx(&t)).unwrap();
        assert_eq!((r.object.schema.as_deref(), r.object.name.as_deref()), (Some("billing"), Some("invoices")));
    }

    #[test]
    fn generic_payload_normalizes() {
        let t = ctx_targets();
        let body = r#"{ "id": "g-1", "system": "servicenow", "target": "orders-prod", "user": "bob@example.com",
            "role": "bob_tmp", "grant": ["select", "insert"], "on": "table:billing.invoices", "until": "2026-11-23T00:00:00Z" }"#;
        let r = from_generic(body.as_bytes(), &ctx(&t)).unwrap();
        assert_eq!(r.privileges, vec![Privilege::Select, Privilege::Insert]);
        assert_eq!(r.object.on, On::Table);
        let e = from_generic(body.replace("table:", "galaxy:").as_bytes(), &ctx(&t)).unwrap_err();
        assert_eq!((e.field.as_str(), e.delivery_id.as_deref()), ("on", Some("g-1")));
        let e =
            from_generic(body.replace(r#", "until": "2026-11-23T00:00:00Z""#, "").as_bytes(), &ctx(&t)).unwrap_err();
        assert_eq!(e.to_string(), "generic payload g-1: until: missing: every grant needs an expiry");
    }

    #[test]
    fn pgaudit_grant_and_revoke_lines_are_parsed() {
        let t = ctx_targets();
        let target = TargetId::new("orders-prod").unwrap();
        let c = Context { audit_target: Some(&target), ..ctx(&t) };
        let line = r#"2026-11-22 10:00:01.123 UTC [4242] admin@orders LOG:  AUDIT: SESSION,7,1,ROLE,GRANT,,,"GRANT SELECT, UPDATE (email) ON TABLE billing.""Invoices"" TO alice_tmp, ""Bob Tmp""",<not logged>"#;
        let rs = from_pgaudit_line(line, 3, &c).unwrap().unwrap();
        assert_eq!(rs.len(), 2);
        assert_eq!(
            rs[0].object,
            RequestObject {
                on: On::Column,
                schema: Some("billing".into()),
                name: Some("Invoices".into()),
                columns: vec!["email".into()]
            }
        );
        assert_eq!((rs[0].role.as_str(), rs[1].role.as_str()), ("alice_tmp", "Bob Tmp"));
        assert_eq!(rs[0].observed_at.to_rfc3339(), "2026-11-22T10:00:01.123+00:00");
        assert_eq!(rs[0].requested_by, "admin");
        assert_eq!(rs[0].expires_at, None, "audit lines carry no expiry: routing fails secure");
        let line = r#"AUDIT: SESSION,8,1,ROLE,REVOKE,,,"REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA billing FROM alice_tmp",<none>"#;
        let r = &from_pgaudit_line(line, 4, &c).unwrap().unwrap()[0];
        assert_eq!(
            (r.action, r.object.on, r.object.schema.as_deref()),
            (Action::Revoke, On::AllTablesInSchema, Some("billing"))
        );
        let line = r#"AUDIT: SESSION,9,1,ROLE,GRANT,,,"GRANT CONNECT ON DATABASE orders TO Alice_Tmp",<none>"#;
        let r = &from_pgaudit_line(line, 5, &c).unwrap().unwrap()[0];
        assert_eq!((r.object.on, r.role.as_str()), (On::Database, "alice_tmp"), "unquoted names fold to lower case");
        let read = r#"AUDIT: SESSION,1,1,READ,SELECT,,,"SELECT 1",<none>"#;
        assert_eq!(from_pgaudit_line(read, 6, &c).unwrap(), None);
        assert_eq!(from_pgaudit_line("LOG:  checkpoint complete", 7, &c).unwrap(), None);
        let membership = r#"AUDIT: SESSION,2,1,ROLE,GRANT,,,"GRANT app_ro TO alice_tmp",<none>"#;
        assert_eq!(from_pgaudit_line(membership, 8, &c).unwrap(), None);
        let bad = r#"AUDIT: SESSION,3,1,ROLE,GRANT,,,"GRANT SELECT ON invoices TO x",<none>"#;
        let e = from_pgaudit_line(bad, 9, &c).unwrap_err();
        assert_eq!(
            e.to_string(),
            "pgaudit line pgaudit:9: statement: \"invoices\" is not schema-qualified; the search_path at the time is unknown"
        );
    }

    #[test]
    fn principals() {
        assert!(check_principal("alice@example.com").is_ok());
        assert!(check_principal("arn:aws:iam::123456789012:user/alice").is_ok());
        for bad in ["alice", "@example.com", "alice@", "alice@localhost", "a@b@c.com", "alice @x.com", ""] {
            assert!(check_principal(bad).is_err(), "{bad}");
        }
    }
}
