//! The policy registry (contract: docs/CONTRACTS.md#policy-registry): frameworks, exception
//! categories and the ordered routes that assign a grant request to one.
//!
//! A registry is one YAML file or several (a directory, read in file-name
//! order): exactly one file carries the header (`version`, `owner`,
//! `approver`, `change_history`); categories from all files are merged (a
//! category defined twice is an error naming both files) and routes are
//! concatenated in file order. Everything that can be wrong is caught here,
//! at load: an unknown category in a route, a duplicate category, a max_ttl
//! that does not parse, approvals outside 0..=2, a bad glob. The registry's
//! identity is its version plus the sha256 of its files (names and bytes).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::manifest::{On, PrivilegeSpec};
use crate::model::Privilege;
use crate::yaml::{FileError, parse_yaml};

/// What to do with a request whose TTL exceeds its category's max_ttl.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExcessTtl {
    /// Refuse the request.
    #[default]
    Refuse,
    /// Shorten it to max_ttl.
    Clamp,
}

/// An exception category as written: how long a ticket may last, how many approvals it needs.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct CategoryFile {
    /// Compliance framework (HIPAA, SOC2, ...).
    framework: String,
    /// Longest window a ticket of this category may have, e.g. `4h`, `30m`, `1h 30m`; longer than zero.
    #[schemars(schema_with = "crate::schema_format::duration")]
    max_ttl: String,
    /// Distinct approvers needed (0, 1 or 2), never the requester.
    #[schemars(range(max = 2))]
    approvals: u8,
    /// Only with an incident id (default false).
    #[serde(default)]
    incident_required: bool,
    /// Multiplies the score of findings this category excepts; above zero.
    #[schemars(extend("exclusiveMinimum" = 0))]
    weight_factor: f64,
    /// Refuse (default) or clamp a request whose TTL exceeds max_ttl.
    #[serde(default)]
    on_excess_ttl: ExcessTtl,
}

/// What a route matches; every given condition must hold (`{}` matches everything).
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct MatchFile {
    /// Target id glob.
    target: Option<String>,
    /// Schema glob (a request with no schema, e.g. on a database, never matches one).
    schema: Option<String>,
    /// Object type (`on:` keyword).
    object_type: Option<On>,
    /// The request's privileges must all be among these (`ALL`: any).
    privileges: Option<Vec<PrivilegeSpec>>,
    /// Database role glob.
    grantee: Option<String>,
    /// Source system glob.
    source: Option<String>,
}

/// One routing rule; the first route that matches assigns its category.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    /// Conditions (default: match everything).
    #[serde(rename = "match", default)]
    matches: MatchFile,
    /// The category it assigns (one of `categories`).
    category: String,
    /// Routing tag recorded on the ticket (default `route-<n>` by position).
    #[serde(default)]
    tag: Option<String>,
}

/// One entry of `change_history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// Registry version this change produced.
    pub version: String,
    /// When (free text, usually a date).
    #[serde(default)]
    pub date: Option<String>,
    /// Who made it.
    #[serde(default)]
    pub author: Option<String>,
    /// What changed.
    #[serde(default)]
    pub summary: Option<String>,
}

/// A policy registry file. A registry is one file or a directory of them: exactly one
/// file carries the header (`version`, `owner`, `approver`, `change_history`);
/// categories are merged and routes concatenated in file-name order.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegistryFile {
    /// The registry version (header; a string, e.g. "2.1").
    version: Option<String>,
    /// Who owns the registry (header).
    owner: Option<String>,
    /// Who approves changes to it (header).
    approver: Option<String>,
    /// Changes, newest last (header).
    #[serde(default)]
    change_history: Vec<Change>,
    /// Exception categories by name.
    #[serde(default)]
    categories: BTreeMap<String, CategoryFile>,
    /// Routes in order; the first match wins, no match is untagged (high-severity drift).
    #[serde(default)]
    routes: Vec<RouteFile>,
    /// Just-in-time access policy; without it no access request routes.
    #[serde(default)]
    access: Option<crate::access_policy::AccessFile>,
    /// Signed senders by name: the key each signs with, what it may send and
    /// whom it may name (`webhook`, the function's own key, sends grants only
    /// unless listed here).
    #[serde(default)]
    senders: BTreeMap<String, crate::identity::SenderFile>,
    /// Slack: where requests and alerts are posted, what may be approved there.
    #[serde(default)]
    notify: Option<crate::notify_policy::NotifyFile>,
    /// Query-level audit: literals kept or not, sensitive tables, what an export is.
    #[serde(default)]
    queries: Option<crate::query_policy::QueriesFile>,
}

/// An exception category.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Category {
    /// Its name.
    pub id: String,
    /// Compliance framework (HIPAA, SOC2, ...).
    pub framework: String,
    /// Longest window a ticket of this category may have.
    pub max_ttl: Duration,
    /// Distinct approvers needed (0, 1 or 2), never the requester.
    pub approvals: u8,
    /// Only with an incident id.
    pub incident_required: bool,
    /// Multiplies the score of findings this category excepts (never zero).
    pub weight_factor: f64,
    /// Refuse or clamp an over-long TTL.
    pub on_excess_ttl: ExcessTtl,
}

/// What a route matches; every given condition must hold.
#[derive(Debug, Clone)]
pub struct RouteMatch {
    /// Target id glob.
    pub target: Option<GlobMatcher>,
    /// Schema glob (a request with no schema, e.g. on a database, never matches one).
    pub schema: Option<GlobMatcher>,
    /// Object type (`on:` keyword).
    pub object_type: Option<On>,
    /// The request's privileges must all be among these.
    pub privileges: Option<Vec<Privilege>>,
    /// Database role glob.
    pub grantee: Option<GlobMatcher>,
    /// Source system glob.
    pub source: Option<GlobMatcher>,
}

/// One routing rule.
#[derive(Debug, Clone)]
pub struct Route {
    /// Conditions.
    pub matches: RouteMatch,
    /// Category it assigns.
    pub category: String,
    /// Routing tag recorded on the ticket (default `route-<n>` by position).
    pub tag: String,
    /// Where it was defined, e.g. `registry.yaml: routes[2]`.
    pub origin: String,
}

/// The identity of a registry version: what every routing decision records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryRef {
    /// The declared version.
    pub version: String,
    /// sha256 of the file names and contents.
    pub sha256: String,
}

/// A loaded, validated policy registry.
#[derive(Debug, Clone)]
pub struct PolicyRegistry {
    /// Version and content hash.
    pub id: RegistryRef,
    /// Who owns the registry.
    pub owner: String,
    /// Who approves changes to it.
    pub approver: String,
    /// Changes, as written.
    pub change_history: Vec<Change>,
    /// Categories by name.
    pub categories: BTreeMap<String, Category>,
    /// Routes in order; the first match wins.
    pub routes: Vec<Route>,
    /// Just-in-time access policy (`access:` section); without it no access request routes.
    pub access: Option<crate::access_policy::AccessPolicy>,
    /// Signed senders (`senders:` section); `webhook` is always there.
    pub senders: crate::identity::Senders,
    /// Slack notices and approvals (`notify:` section); without it nothing is posted.
    pub notify: Option<crate::notify_policy::NotifyPolicy>,
    /// Query-level audit (`queries:` section); its defaults without it.
    pub queries: crate::query_policy::QueryPolicy,
}

/// Something a route can be matched against.
#[derive(Debug, Clone, Copy)]
pub struct RouteInput<'a> {
    /// Target id.
    pub target: &'a str,
    /// Schema of the object, if it has one.
    pub schema: Option<&'a str>,
    /// Object type.
    pub object_type: On,
    /// Requested privileges.
    pub privileges: &'a [Privilege],
    /// Database role that receives them.
    pub grantee: &'a str,
    /// Source system.
    pub source: &'a str,
}

impl RouteMatch {
    /// Whether every condition holds for `input`.
    pub fn matches(&self, input: &RouteInput) -> bool {
        let glob = |g: &Option<GlobMatcher>, v: Option<&str>| match (g, v) {
            (None, _) => true,
            (Some(g), Some(v)) => g.is_match(v),
            (Some(_), None) => false,
        };
        glob(&self.target, Some(input.target))
            && glob(&self.schema, input.schema)
            && self.object_type.is_none_or(|t| t == input.object_type)
            && self.privileges.as_ref().is_none_or(|allowed| input.privileges.iter().all(|p| allowed.contains(p)))
            && glob(&self.grantee, Some(input.grantee))
            && glob(&self.source, Some(input.source))
    }
}

impl PolicyRegistry {
    /// The first route matching `input`, or `None` (untagged: fail secure).
    pub fn route(&self, input: &RouteInput) -> Option<(&Route, &Category)> {
        let route = self.routes.iter().find(|r| r.matches.matches(input))?;
        let category = self.categories.get(&route.category).expect("routes are checked against categories at load");
        Some((route, category))
    }

    /// Loads a registry from `(file name, text)` pairs; the caller reads the files
    /// (a directory: every `*.yaml`/`*.yml` in it).
    pub fn load(files: &[(String, String)]) -> Result<Self, FileError> {
        let err = |file: &str, path: String, message: String| FileError::at(file, path, message);
        let mut files: Vec<&(String, String)> = files.iter().collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        if files.is_empty() {
            return Err(err("policy registry", String::new(), "no registry files".into()));
        }
        let mut hasher = Sha256::new();
        let mut header: Option<(String, RegistryFile)> = None;
        let mut categories: BTreeMap<String, (String, Category)> = BTreeMap::new();
        let mut raw_routes: Vec<(String, usize, RouteFile)> = Vec::new();
        let mut access: Option<(String, crate::access_policy::AccessPolicy)> = None;
        let mut senders: BTreeMap<String, (String, crate::identity::SenderFile)> = BTreeMap::new();
        let mut notify: Option<(String, crate::notify_policy::NotifyPolicy)> = None;
        let mut queries: Option<(String, crate::query_policy::QueryPolicy)> = None;
        for (name, text) in files.iter().copied() {
            hasher.update((name.len() as u64).to_be_bytes());

            hasher.update(name.as_bytes());
            hasher.update((text.len() as u64).to_be_bytes());
            hasher.update(text.as_bytes());
            let parsed: RegistryFile = parse_yaml(text, name)?;
            for (id, c) in &parsed.categories {
                let p = format!("categories.{id}");
                if let Some((other, _)) = categories.get(id) {
                    return Err(err(name, p, format!("category {id:?} is already defined in {other}")));
                }
                let max_ttl = humantime::parse_duration(&c.max_ttl).map_err(|e| {
                    err(name, format!("{p}.max_ttl"), format!("cannot read {:?} as a duration: {e}", c.max_ttl))
                })?;
                if max_ttl.is_zero() {
                    return Err(err(name, format!("{p}.max_ttl"), "max_ttl must be longer than zero".into()));
                }
                if c.approvals > 2 {
                    return Err(err(
                        name,
                        format!("{p}.approvals"),
                        format!("approvals must be 0, 1 or 2, not {}", c.approvals),
                    ));
                }
                if !(c.weight_factor.is_finite() && c.weight_factor > 0.0) {
                    return Err(err(
                        name,
                        format!("{p}.weight_factor"),
                        "weight_factor must be above zero: an exception is never free".into(),
                    ));
                }
                let category = Category {
                    id: id.clone(),
                    framework: c.framework.clone(),
                    max_ttl,
                    approvals: c.approvals,
                    incident_required: c.incident_required,
                    weight_factor: c.weight_factor,
                    on_excess_ttl: c.on_excess_ttl,
                };
                categories.insert(id.clone(), (name.clone(), category));
            }
            for (i, r) in parsed.routes.iter().enumerate() {
                raw_routes.push((name.clone(), i, r.clone()));
            }
            if let Some(a) = &parsed.access {
                if let Some((other, _)) = &access {
                    return Err(err(name, "access".into(), format!("the access section is already in {other}")));
                }
                let policy =
                    crate::access_policy::AccessPolicy::from_file(a).map_err(|e| err(name, e.field, e.reason))?;
                access = Some((name.clone(), policy));
            }
            if let Some(n) = &parsed.notify {
                if let Some((other, _)) = &notify {
                    return Err(err(name, "notify".into(), format!("the notify section is already in {other}")));
                }
                let policy =
                    crate::notify_policy::NotifyPolicy::from_file(n).map_err(|e| err(name, e.field, e.reason))?;
                notify = Some((name.clone(), policy));
            }
            if let Some(q) = &parsed.queries {
                if let Some((other, _)) = &queries {
                    return Err(err(name, "queries".into(), format!("the queries section is already in {other}")));
                }
                let policy =
                    crate::query_policy::QueryPolicy::from_file(q).map_err(|e| err(name, e.field, e.reason))?;
                queries = Some((name.clone(), policy));
            }
            for (sender, f) in &parsed.senders {
                if let Some((other, _)) = senders.get(sender) {
                    return Err(err(
                        name,
                        format!("senders.{sender}"),
                        format!("sender {sender:?} is already in {other}"),
                    ));
                }
                crate::identity::SenderRule::from_file(sender, f).map_err(|e| err(name, e.field, e.reason))?;
                senders.insert(sender.clone(), (name.clone(), f.clone()));
            }
            if parsed.version.is_some() || parsed.owner.is_some() || parsed.approver.is_some() {
                if let Some((other, _)) = &header {
                    return Err(err(
                        name,
                        "version".into(),
                        format!("the registry header is already in {other}; only one file may carry it"),
                    ));
                }
                header = Some((name.clone(), parsed));
            }
        }
        let Some((header_file, header)) = header else {
            return Err(err(
                files[0].0.as_str(),
                "version".into(),
                "no file carries the registry header (version, owner, approver)".into(),
            ));
        };
        let need = |v: &Option<String>, field: &str| {
            v.clone()
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| err(&header_file, field.into(), format!("`{field}` is required")))
        };
        let version = need(&header.version, "version")?;
        let owner = need(&header.owner, "owner")?;
        let approver = need(&header.approver, "approver")?;
        let mut routes = Vec::with_capacity(raw_routes.len());
        for (n, (file, i, r)) in raw_routes.into_iter().enumerate() {
            let p = format!("routes[{i}]");
            if !categories.contains_key(&r.category) {
                return Err(err(&file, format!("{p}.category"), format!("unknown category {:?}", r.category)));
            }
            let glob = |v: &Option<String>, field: &str| -> Result<Option<GlobMatcher>, FileError> {
                v.as_ref()
                    .map(|g| {
                        Glob::new(g).map(|g| g.compile_matcher()).map_err(|e| {
                            err(&file, format!("{p}.match.{field}"), format!("invalid glob {g:?}: {}", e.kind()))
                        })
                    })
                    .transpose()
            };
            let privileges = match &r.matches.privileges {
                None => None,
                Some(list) if list.contains(&PrivilegeSpec::All) => None,
                Some(list) => Some(
                    list.iter()
                        .filter_map(|s| match s {
                            PrivilegeSpec::One(p) => Some(*p),
                            PrivilegeSpec::All => None,
                        })
                        .collect(),
                ),
            };
            routes.push(Route {
                matches: RouteMatch {
                    target: glob(&r.matches.target, "target")?,
                    schema: glob(&r.matches.schema, "schema")?,
                    object_type: r.matches.object_type,
                    privileges,
                    grantee: glob(&r.matches.grantee, "grantee")?,
                    source: glob(&r.matches.source, "source")?,
                },
                category: r.category,
                tag: r.tag.unwrap_or_else(|| format!("route-{n}")),
                origin: format!("{file}: {p}"),
            });
        }
        if let Some((file, n)) = &notify {
            check_notify_paths(n, access.as_ref().map(|(_, a)| a)).map_err(|e| err(file, e.field, e.reason))?;
        }
        Ok(PolicyRegistry {
            id: RegistryRef { version, sha256: hex::encode(hasher.finalize()) },
            owner,
            approver,
            change_history: header.change_history,
            categories: categories.into_iter().map(|(k, (_, c))| (k, c)).collect(),
            routes,
            access: access.map(|(_, a)| a),
            senders: crate::identity::Senders::from_file(&senders.into_iter().map(|(k, (_, f))| (k, f)).collect())
                .map_err(|e| err(&header_file, e.field, e.reason))?,
            notify: notify.map(|(_, n)| n),
            queries: queries.map(|(_, q)| q).unwrap_or_default(),
        })
    }
}

/// The `notify` section names real paths, and offers a Slack button only
/// where one approval of an ordinary request suffices: a path that needs two
/// approvals, and break-glass, are decided in the portal, where a recent
/// sign-in is checked.
fn check_notify_paths(
    notify: &crate::notify_policy::NotifyPolicy,
    access: Option<&crate::access_policy::AccessPolicy>,
) -> Result<(), crate::error::FieldError> {
    use crate::access_policy::{AccessPath, Approvals};
    for (field, name) in notify.path_names() {
        let path: AccessPath = serde_json::from_value(serde_json::Value::String(name.to_owned())).map_err(|_| {
            crate::error::FieldError::new(
                field.clone(),
                format!("unknown access path {name:?} (read-only, read-write, migration, break-glass)"),
            )
        })?;
        if field != "notify.approve_in_slack" {
            continue;
        }
        let dual = access.and_then(|a| a.paths.get(&path)).is_some_and(|r| r.approvals == Approvals::Dual);
        if path == AccessPath::BreakGlass || dual {
            return Err(crate::error::FieldError::new(
                field,
                format!(
                    "{name} is never approved in Slack: it needs two approvals or a renewal by its requester, \
                     with a recent sign-in that chat cannot check (the portal asks for one)"
                ),
            ));
        }
    }
    Ok(())
}

impl fmt::Display for RegistryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (sha256 {})", self.version, &self.sha256[..12.min(self.sha256.len())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTRY: &str = r#"
version: "2.1"
owner: security@example.com
approver: ciso@example.com
change_history:
  - { version: "2.1", date: "2026-11-01", author: ciso@example.com, summary: "break-glass 30m" }
categories:
  hipaa-phi:   { framework: HIPAA, max_ttl: 4h,  approvals: 2, weight_factor: 0.5 }
  soc2-ops:    { framework: SOC2,  max_ttl: 24h, approvals: 1, weight_factor: 0.25 }
  read-only:   { framework: SOC2,  max_ttl: 8h,  approvals: 0, weight_factor: 0.1 }
  break-glass: { framework: SOC2,  max_ttl: 30m, approvals: 0, incident_required: true, weight_factor: 1.0 }
routes:   # first match wins; no match -> untagged -> high-severity drift
  - { match: { schema: "phi_*" }, category: hipaa-phi }
  - { match: { privileges: [SELECT, USAGE] }, category: read-only }
  - { match: {}, category: soc2-ops }
"#;

    fn load(files: &[(&str, &str)]) -> Result<PolicyRegistry, FileError> {
        let files: Vec<(String, String)> = files.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        PolicyRegistry::load(&files)
    }

    fn input<'a>(schema: Option<&'a str>, privileges: &'a [Privilege]) -> RouteInput<'a> {
        RouteInput {
            target: "orders-prod",
            schema,
            object_type: On::Schema,
            privileges,
            grantee: "alice_tmp",
            source: "okta",
        }
    }

    #[test]
    fn design_example_loads_and_routes_first_match() {
        let r = load(&[("registry.yaml", REGISTRY)]).unwrap();
        assert_eq!(r.id.version, "2.1");
        assert_eq!(r.id.sha256.len(), 64);
        assert_eq!(r.categories["break-glass"].max_ttl, Duration::from_secs(1800));
        assert!(r.categories["break-glass"].incident_required);
        let cat = |schema, privs: &[Privilege]| r.route(&input(schema, privs)).map(|(_, c)| c.id.clone());
        assert_eq!(cat(Some("phi_claims"), &[Privilege::Select]).as_deref(), Some("hipaa-phi"));
        assert_eq!(cat(Some("billing"), &[Privilege::Select, Privilege::Usage]).as_deref(), Some("read-only"));
        assert_eq!(cat(Some("billing"), &[Privilege::Select, Privilege::Insert]).as_deref(), Some("soc2-ops"));
        assert_eq!(cat(None, &[Privilege::Insert]).as_deref(), Some("soc2-ops"), "a schema glob needs a schema");
        assert_eq!(r.route(&input(Some("x"), &[Privilege::Select])).unwrap().0.tag, "route-1");
    }

    #[test]
    fn no_route_means_untagged() {
        let r = load(&[("r.yaml", &REGISTRY.replace("  - { match: {}, category: soc2-ops }\n", ""))]).unwrap();
        assert!(r.route(&input(Some("billing"), &[Privilege::Delete])).is_none());
    }

    #[test]
    fn a_directory_merges_files_and_hashes_them_all() {
        let header = "version: \"3\"\nowner: a@x\napprover: b@x\ncategories:\n  ops: { framework: SOC2, max_ttl: 1h, approvals: 1, weight_factor: 0.2 }\n";
        let more = "categories:\n  phi: { framework: HIPAA, max_ttl: 2h, approvals: 2, weight_factor: 0.5 }\nroutes:\n  - { match: { schema: \"phi_*\" }, category: phi }\n  - { match: {}, category: ops }\n";
        let a = load(&[("10-more.yaml", more), ("00-registry.yaml", header)]).unwrap();
        let b = load(&[("00-registry.yaml", header), ("10-more.yaml", more)]).unwrap();
        assert_eq!(a.id, b.id, "file order given does not matter");
        assert_eq!(a.categories.len(), 2);
        assert_eq!(a.routes[0].origin, "10-more.yaml: routes[0]");
        let c = load(&[("00-registry.yaml", header), ("10-more.yaml", &more.replace("2h", "3h"))]).unwrap();
        assert_ne!(a.id.sha256, c.id.sha256, "any content change changes the hash");
    }

    #[test]
    fn load_errors_name_file_and_path() {
        let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
            (
                vec![("r.yaml", REGISTRY.replace("category: hipaa-phi", "category: hipaa"))],
                "r.yaml: routes[0].category: unknown category \"hipaa\"",
            ),
            (
                vec![("r.yaml", REGISTRY.replace("max_ttl: 4h", "max_ttl: 4 hourz"))],
                "r.yaml: categories.hipaa-phi.max_ttl: cannot read \"4 hourz\" as a duration",
            ),
            (
                vec![("r.yaml", REGISTRY.replace("approvals: 2", "approvals: 3"))],
                "r.yaml: categories.hipaa-phi.approvals: approvals must be 0, 1 or 2",
            ),
            (
                vec![("r.yaml", REGISTRY.replace("weight_factor: 0.1", "weight_factor: 0"))],
                "r.yaml: categories.read-only.weight_factor: weight_factor must be above zero",
            ),
            (
                vec![("r.yaml", REGISTRY.replace("schema: \"phi_*\"", "schema: \"[phi\""))],
                "r.yaml: routes[0].match.schema: invalid glob",
            ),
            (
                vec![("r.yaml", REGISTRY.replace("privileges: [SELECT, USAGE]", "privileges: [SELEC]"))],
                "r.yaml: routes[1].match.privileges[0]: unknown privilege \"SELEC\"",
            ),
            (
                vec![("r.yaml", REGISTRY.replace("owner: security@example.com\n", ""))],
                "r.yaml: owner: `owner` is required",
            ),
            (
                vec![
                    ("a.yaml", REGISTRY.to_owned()),
                    (
                        "b.yaml",
                        "categories:\n  soc2-ops: { framework: SOC2, max_ttl: 1h, approvals: 1, weight_factor: 0.3 }\n"
                            .to_owned(),
                    ),
                ],
                "b.yaml: categories.soc2-ops: category \"soc2-ops\" is already defined in a.yaml",
            ),
            (
                vec![("a.yaml", REGISTRY.to_owned()), ("b.yaml", "version: \"9\"\n".to_owned())],
                "b.yaml: version: the registry header is already in a.yaml",
            ),
            (vec![("r.yaml", "categories: {}\n".to_owned())], "r.yaml: version: no file carries the registry header"),
            (
                vec![("r.yaml", REGISTRY.replace("framework: HIPAA,", "framework: HIPAA, colour: red,"))],
                "r.yaml: categories.hipaa-phi",
            ),
        ];
        for (files, want) in cases {
            let files: Vec<(&str, &str)> = files.iter().map(|(a, b)| (*a, b.as_str())).collect();
            let got = load(&files).unwrap_err().to_string();
            assert!(got.starts_with(want), "\n got: {got}\nwant: {want}");
        }
    }
}

#[cfg(test)]
mod example {
    #[test]
    fn the_shipped_example_registry_loads() {
        let text = include_str!("../../../infra/policy.example.yaml");
        let r = super::PolicyRegistry::load(&[("policy.example.yaml".into(), text.into())]).unwrap();
        assert_eq!((r.id.version.as_str(), r.categories.len(), r.routes.len()), ("2.1", 4, 4));
        assert_eq!(r.change_history.len(), 2);
    }
}
