//! The MySQL and MariaDB baseline (contract: docs/CONTRACTS.md#mysql-and-mariadb-baseline):
//! the accounts and roles a server should have, and what each may do at
//! each level, as a YAML file that names its engine.
//!
//! ```yaml
//! version: 1
//! engine: mariadb            # or mysql (MySQL 8, Aurora MySQL 3)
//! accounts:
//!   - user: app
//!     host: 10.0.%
//!     roles: [{ role: reporting }]
//!     grants:
//!       - { on: database, database: shop, privileges: [SELECT, INSERT, UPDATE] }
//!       - { on: column, database: shop, table: customers, columns: [email], privileges: [SELECT] }
//!   - user: reporting
//!     role: true
//!     grants:
//!       - { on: table, database: shop, table: orders, privileges: [SELECT] }
//! ignore_accounts: ["monitor@*"]
//! ```
//!
//! As for PostgreSQL, parsing has two steps: serde reads the file into a
//! [`Manifest`] (every error names the file and the path in it), then
//! [`Baseline::resolve`] checks what serde cannot (a host for every account,
//! the fields each level needs, a privilege the level accepts) and builds the
//! typed [`Baseline`] the plan reads. [`generate`] writes the manifest of what
//! a server holds, which the plan reads back with no drift.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::manifest::{RoleFilter, flow_maps, flow_seq, is_false};
use crate::mysql::catalog::{Account, Catalog, Flavor, Scope};
use crate::mysql::privilege::Privilege;
use crate::yaml::{FileError, parse_yaml};

/// The format version this code reads.
pub const VERSION: u32 = 1;

/// Which engine a baseline is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// MariaDB 10.6 and later.
    Mariadb,
    /// MySQL 8 (and Aurora MySQL 3, `aurora-mysql`).
    #[serde(alias = "aurora-mysql")]
    #[schemars(rename = "mysql")]
    Mysql,
}

impl Engine {
    /// The engine a server of `flavor` is.
    pub fn of(flavor: Flavor) -> Self {
        match flavor {
            Flavor::Mariadb => Engine::Mariadb,
            Flavor::Mysql => Engine::Mysql,
        }
    }

    /// The host a role is named with when none is written: MariaDB's roles
    /// have none; MySQL 8 names `GRANT r TO u`'s role `'r'@'%'`.
    pub fn role_host(self) -> &'static str {
        match self {
            Engine::Mariadb => "",
            Engine::Mysql => "%",
        }
    }

    /// As the baseline writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Mariadb => "mariadb",
            Engine::Mysql => "mysql",
        }
    }
}

/// The baseline file as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Format version; must be 1.
    #[schemars(extend("const" = 1))]
    pub version: u32,
    /// `mariadb` or `mysql`: a baseline is for one engine, and a plan of the other's server is refused.
    pub engine: Engine,
    /// The accounts and roles, each once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<AccountSpec>,
    /// Globs of `user@host` to leave alone; `!glob` re-includes (last match wins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_accounts: Vec<String>,
    /// Exposures reviewed and accepted, each with its reason: the plan still
    /// lists them, as observations with the reason, neither scored nor raising
    /// the status.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accepted_exposures: Vec<AcceptedExposure>,
}

/// Exposures a person reviewed and accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptedExposure {
    /// The account the exposure is about, as a glob of `user@host`: the
    /// definer of a definer-rights object, else the account itself.
    pub account: String,
    /// Globs of `database.name`: the views, routines, triggers and events
    /// whose definer is `account` (or, for a `database_pattern` exposure, the
    /// pattern). Left out, the entry accepts the account's own exposures (an
    /// anonymous or passwordless account, an administrator reachable from any
    /// host) and no object's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<String>,
    /// Why it is accepted, as the report shows it (required).
    pub reason: String,
}

/// A declared account or role.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountSpec {
    /// User name (empty: an anonymous account, which the plan always reports).
    pub user: String,
    /// Host or host pattern; required for an account, and for a role the
    /// engine's role host when left out (MariaDB none, MySQL `%`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// A role: nobody logs in as it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub role: bool,
    /// `ACCOUNT LOCK`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub locked: bool,
    /// Roles granted to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty", serialize_with = "flow_maps")]
    pub roles: Vec<RoleSpec>,
    /// Accounts it may log in as (`GRANT PROXY`).
    #[serde(default, skip_serializing_if = "Vec::is_empty", serialize_with = "flow_maps")]
    pub proxies: Vec<ProxySpec>,
    /// What it may do, by level.
    #[serde(default, skip_serializing_if = "Vec::is_empty", serialize_with = "flow_maps")]
    pub grants: Vec<GrantSpec>,
    /// MySQL 8's partial revokes (`partial_revokes=ON`): privileges it holds
    /// `on: global` and not in these databases.
    #[serde(default, skip_serializing_if = "Vec::is_empty", serialize_with = "flow_maps")]
    pub revokes: Vec<RevokeSpec>,
}

/// A partial revoke: global privileges taken back in one database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeSpec {
    /// The database (its name, never a pattern).
    pub database: String,
    /// The privileges, each declared `on: global` for the account.
    #[serde(serialize_with = "flow_seq")]
    pub privileges: Vec<String>,
}

/// A role granted to an account or role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleSpec {
    /// The role's name.
    pub role: String,
    /// Its host, when not the engine's role host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `WITH ADMIN OPTION`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub admin: bool,
}

/// `GRANT PROXY ON 'user'@'host'`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxySpec {
    /// The proxied account's user (empty: any user at the host).
    pub user: String,
    /// Its host.
    pub host: String,
    /// `WITH GRANT OPTION`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub grant_option: bool,
}

/// The level a grant is at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum On {
    /// `ON *.*`.
    Global,
    /// `ON db.*`, one database by its name.
    Database,
    /// `ON pattern.*`: every database a `%`/`_` pattern matches (`\_` a literal `_`).
    DatabasePattern,
    /// `ON db.table`.
    Table,
    /// `(columns) ON db.table`.
    Column,
    /// `ON PROCEDURE db.name`.
    Procedure,
    /// `ON FUNCTION db.name`.
    Function,
    /// `ON PACKAGE db.name` (MariaDB).
    Package,
    /// `ON PACKAGE BODY db.name` (MariaDB).
    PackageBody,
}

/// The routine levels and the kind the grant tables spell each with.
const ROUTINES: [(On, &str); 4] = [
    (On::Procedure, "PROCEDURE"),
    (On::Function, "FUNCTION"),
    (On::Package, "PACKAGE"),
    (On::PackageBody, "PACKAGE BODY"),
];

impl On {
    /// The routine kind as the grant tables spell it, for routine levels.
    fn routine_kind(self) -> Option<&'static str> {
        ROUTINES.iter().find(|(on, _)| *on == self).map(|(_, kind)| *kind)
    }

    /// The routine level of a kind as the grant tables spell it (a kind
    /// this does not know is read as a procedure's).
    fn of_routine_kind(kind: &str) -> On {
        ROUTINES.iter().find(|(_, k)| *k == kind).map_or(On::Procedure, |(on, _)| *on)
    }
}

/// Privileges at one level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantSpec {
    /// The level.
    pub on: On,
    /// The database (its pattern for `database_pattern`); every level but `global`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// The table, for `table` and `column`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// The columns, for `column`.
    #[serde(default, skip_serializing_if = "Vec::is_empty", serialize_with = "flow_seq")]
    pub columns: Vec<String>,
    /// The routine, for `procedure`, `function`, `package` and `package_body`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routine: Option<String>,
    /// As `SHOW GRANTS` names them (`SELECT`, `CREATE TEMPORARY TABLES`, MySQL 8's `BACKUP_ADMIN`).
    #[serde(serialize_with = "flow_seq")]
    pub privileges: Vec<String>,
    /// `WITH GRANT OPTION` at this level (on a column, its table's).
    #[serde(default, skip_serializing_if = "is_false")]
    pub grant_option: bool,
}

/// What one account should hold at one scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// The privileges.
    pub privileges: BTreeSet<Privilege>,
    /// GRANT OPTION at the scope (MySQL 8 dynamic privileges: see `dynamic_grantable`).
    pub grantable: bool,
    /// Dynamic privileges declared with the grant option.
    pub dynamic_grantable: BTreeSet<Privilege>,
    /// Where it was declared, e.g. `accounts[2].grants[0]`.
    pub origin: String,
}

/// One declared account or role, resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredAccount {
    /// A role.
    pub role: bool,
    /// `ACCOUNT LOCK`.
    pub locked: bool,
    /// Roles granted to it, with the admin option.
    pub roles: BTreeMap<Account, bool>,
    /// Accounts it may proxy, with the grant option.
    pub proxies: BTreeMap<Account, bool>,
    /// Privileges by scope.
    pub grants: BTreeMap<Scope, Desired>,
    /// MySQL 8's partial revokes: by database, the global privileges it does not hold there.
    pub revokes: BTreeMap<String, BTreeSet<Privilege>>,
    /// Where it was declared, e.g. `accounts[2]`.
    pub origin: String,
}

/// A MySQL or MariaDB baseline, resolved.
#[derive(Debug, Clone)]
pub struct Baseline {
    /// The engine it is for.
    pub engine: Engine,
    /// The accounts and roles.
    pub accounts: BTreeMap<Account, DesiredAccount>,
    /// Accounts left alone.
    pub ignore: RoleFilter,
    /// Exposures accepted, in the order written.
    pub accepted: Vec<Accepted>,
}

/// One `accepted_exposures` entry, resolved.
#[derive(Debug, Clone)]
pub struct Accepted {
    account: RoleFilter,
    objects: Option<RoleFilter>,
    /// Why.
    pub reason: String,
    /// Where it was declared, e.g. `accepted_exposures[0]`.
    pub origin: String,
}

impl Accepted {
    /// Whether this entry accepts an exposure of `account`, about `object`
    /// (`database.name`, or a database pattern) or about the account itself (`None`).
    pub fn covers(&self, account: &Account, object: Option<&str>) -> bool {
        self.account.ignores_name(&account.user_at_host())
            && match (&self.objects, object) {
                (Some(globs), Some(object)) => globs.ignores_name(object),
                (None, None) => true,
                _ => false,
            }
    }
}

/// The first words of a baseline, read to tell which engine it is for.
#[derive(Deserialize)]
struct EngineOnly {
    #[serde(default)]
    engine: Option<String>,
}

/// The engine a baseline names, read before its format is known: a plan of
/// the other engine's server is refused with this rather than with the other
/// format's first error. `Ok(None)`: a map with no `engine:`, a PostgreSQL
/// baseline; `Err(())`: not such a map at all (its own parser says why).
#[allow(clippy::result_unit_err)]
pub fn engine_of(text: &str) -> Result<Option<String>, ()> {
    serde_saphyr::from_str::<EngineOnly>(text).map(|e| e.engine).map_err(drop)
}

/// Why the baseline file `file` (holding `text`) does not fit its target,
/// when it was written for the other engine: `target` names the target as
/// the caller knows it (`--database`, `target orders-prod`), `mysql_target`
/// says whether it is a MySQL or MariaDB server. `None` when the file names
/// the target's engine (or is no map at all): its own parser's error says
/// what is wrong with it then. Called only once a parse failed, so a large
/// PostgreSQL baseline is never read twice on the way to success.
pub fn for_other_engine(text: &str, file: &str, target: &str, mysql_target: bool) -> Option<String> {
    match (engine_of(text), mysql_target) {
        (Ok(None), true) => Some(format!(
            "{file}: names no `engine:`, so it is a PostgreSQL baseline, and {target} is a MySQL or MariaDB server: \
             plan it with a baseline of `engine: mariadb` or `engine: mysql` (grantwarden generate writes one)"
        )),
        (Ok(Some(engine)), false) if engine != "postgresql" => Some(format!(
            "{file}: is a baseline for `engine: {engine}`, and {target} is a PostgreSQL server: plan it with a \
             PostgreSQL baseline"
        )),
        _ => None,
    }
}

impl Baseline {
    /// Reads and resolves a baseline file; every error names `file` and the path in it.
    pub fn from_yaml(text: &str, file: &str) -> Result<Self, FileError> {
        let manifest: Manifest = parse_yaml(text, file)?;
        Self::resolve(&manifest, file)
    }

    /// Checks what serde cannot and builds the typed baseline.
    pub fn resolve(m: &Manifest, file: &str) -> Result<Self, FileError> {
        let err = |path: String, message: String| FileError::at(file, path, message);
        if m.version != VERSION {
            return Err(err("version".into(), format!("must be {VERSION}, not {}", m.version)));
        }
        let ignore =
            RoleFilter::new(&m.ignore_accounts).map_err(|(i, msg)| err(format!("ignore_accounts[{i}]"), msg))?;
        let mut accounts = BTreeMap::new();
        for (i, spec) in m.accounts.iter().enumerate() {
            let origin = format!("accounts[{i}]");
            let host = match (&spec.host, spec.role) {
                (Some(h), _) => h.clone(),
                (None, true) => m.engine.role_host().to_owned(),
                (None, false) => {
                    return Err(err(
                        format!("{origin}.host"),
                        "an account needs its host (`%` for any, as `CREATE USER` means by none)".into(),
                    ));
                }
            };
            let account = Account::new(&spec.user, &host);
            let mut desired =
                DesiredAccount { role: spec.role, locked: spec.locked, origin: origin.clone(), ..Default::default() };
            for (j, r) in spec.roles.iter().enumerate() {
                let role = Account::new(&r.role, r.host.as_deref().unwrap_or(m.engine.role_host()));
                if desired.roles.insert(role, r.admin).is_some() {
                    return Err(err(format!("{origin}.roles[{j}]"), format!("role {:?} is listed twice", r.role)));
                }
            }
            for (j, p) in spec.proxies.iter().enumerate() {
                if desired.proxies.insert(Account::new(&p.user, &p.host), p.grant_option).is_some() {
                    return Err(err(format!("{origin}.proxies[{j}]"), "this proxy is listed twice".into()));
                }
            }
            for (j, g) in spec.grants.iter().enumerate() {
                let at = format!("{origin}.grants[{j}]");
                for (scope, declared) in resolve_grant(g, m.engine, &at).map_err(|(path, msg)| err(path, msg))? {
                    let d = desired
                        .grants
                        .entry(scope)
                        .or_insert_with(|| Desired { origin: at.clone(), ..Default::default() });
                    d.privileges.extend(declared.privileges);
                    d.grantable |= declared.grantable;
                    d.dynamic_grantable.extend(declared.dynamic_grantable);
                }
            }
            for (j, r) in spec.revokes.iter().enumerate() {
                let at = format!("{origin}.revokes[{j}]");
                if m.engine != Engine::Mysql {
                    return Err(err(at, "partial revokes are MySQL 8's; MariaDB has none".into()));
                }
                if r.database.is_empty() {
                    return Err(err(format!("{at}.database"), "names no database".into()));
                }
                let global = desired.grants.get(&Scope::Global).map(|d| &d.privileges);
                let mut revoked = BTreeSet::new();
                for (k, word) in r.privileges.iter().enumerate() {
                    let path = format!("{at}.privileges[{k}]");
                    let p = Privilege::from_report(&word.trim().to_ascii_uppercase())
                        .ok_or_else(|| err(path.clone(), format!("unknown privilege {word:?}")))?;
                    if !global.is_some_and(|g| g.contains(&p)) {
                        return Err(err(
                            path,
                            format!(
                                "{p} is revoked in {:?} only from a grant `on: global`, which declares none",
                                r.database
                            ),
                        ));
                    }
                    revoked.insert(p);
                }
                if revoked.is_empty() {
                    return Err(err(format!("{at}.privileges"), "names no privilege".into()));
                }
                if desired.revokes.insert(r.database.clone(), revoked).is_some() {
                    return Err(err(format!("{at}.database"), format!("{:?} is listed twice", r.database)));
                }
            }
            if accounts.insert(account.clone(), desired).is_some() {
                return Err(err(origin, format!("account {account} is declared twice")));
            }
        }
        let mut accepted = Vec::with_capacity(m.accepted_exposures.len());
        for (i, a) in m.accepted_exposures.iter().enumerate() {
            let origin = format!("accepted_exposures[{i}]");
            if a.reason.trim().is_empty() {
                return Err(err(format!("{origin}.reason"), "say why the exposure is accepted".into()));
            }
            // globs that accept: a `!` (which re-includes in ignore_accounts) would mean nothing
            let globs = |patterns: &[String], path: &dyn Fn(usize) -> String| {
                if let Some(j) = patterns.iter().position(|p| p.starts_with('!')) {
                    let message = format!("{:?}: a glob of what to accept; `!` means nothing here", patterns[j]);
                    return Err(err(path(j), message));
                }
                RoleFilter::new(patterns).map_err(|(j, msg)| err(path(j), msg))
            };
            let account = globs(std::slice::from_ref(&a.account), &|_| format!("{origin}.account"))?;
            let objects = match a.objects.is_empty() {
                true => None,
                false => Some(globs(&a.objects, &|j| format!("{origin}.objects[{j}]"))?),
            };
            accepted.push(Accepted { account, objects, reason: a.reason.trim().to_owned(), origin });
        }
        Ok(Baseline { engine: m.engine, accounts, ignore, accepted })
    }

    /// The entry that accepts an exposure of `account` about `object` (see [`Accepted::covers`]), if any.
    pub fn accepted(&self, account: &Account, object: Option<&str>) -> Option<&Accepted> {
        self.accepted.iter().find(|a| a.covers(account, object))
    }
}

/// The scopes one grant entry names (a column entry names one per column), or the path and message of what is wrong.
fn resolve_grant(g: &GrantSpec, engine: Engine, at: &str) -> Result<Vec<(Scope, Desired)>, (String, String)> {
    let field = |name: &str| format!("{at}.{name}");
    let need = |value: &Option<String>, name: &str| {
        value.clone().ok_or_else(|| (field(name), format!("`on: {}` needs `{name}`", on_word(g.on))))
    };
    let refuse = |present: bool, name: &str| {
        if present { Err((field(name), format!("`on: {}` takes no `{name}`", on_word(g.on)))) } else { Ok(()) }
    };
    refuse(!g.columns.is_empty() && g.on != On::Column, "columns")?;
    refuse(g.table.is_some() && !matches!(g.on, On::Table | On::Column), "table")?;
    refuse(g.routine.is_some() && g.on.routine_kind().is_none(), "routine")?;
    let scopes = match g.on {
        On::Global => {
            refuse(g.database.is_some(), "database")?;
            vec![Scope::Global]
        }
        On::Database => vec![Scope::Database { database: need(&g.database, "database")?, pattern: false }],
        On::DatabasePattern => {
            let database = need(&g.database, "database")?;
            if !crate::mysql::catalog::is_pattern(&database) {
                return Err((
                    field("database"),
                    format!("{database:?} holds no unescaped `%` or `_`: it is `on: database`"),
                ));
            }
            vec![Scope::Database { database, pattern: true }]
        }
        On::Table => vec![Scope::Table { database: need(&g.database, "database")?, table: need(&g.table, "table")? }],
        On::Column => {
            let (database, table) = (need(&g.database, "database")?, need(&g.table, "table")?);
            if g.columns.is_empty() {
                return Err((field("columns"), "`on: column` needs at least one column".into()));
            }
            if g.grant_option {
                return Err((
                    field("grant_option"),
                    "a column's grant option is its table's: declare it `on: table` (with no privileges, if need be)"
                        .into(),
                ));
            }
            g.columns
                .iter()
                .map(|c| Scope::Column { database: database.clone(), table: table.clone(), column: c.clone() })
                .collect()
        }
        On::Procedure | On::Function | On::Package | On::PackageBody => {
            let kind = g.on.routine_kind().expect("a routine level").to_owned();
            vec![Scope::Routine { database: need(&g.database, "database")?, name: need(&g.routine, "routine")?, kind }]
        }
    };
    let mut privileges = BTreeSet::new();
    for (k, word) in g.privileges.iter().enumerate() {
        let path = format!("{at}.privileges[{k}]");
        let p = Privilege::from_report(&word.trim().to_ascii_uppercase())
            .filter(|p| *p != Privilege::GrantOption)
            .ok_or_else(|| {
                (path.clone(), format!("unknown privilege {word:?} (write GRANT OPTION as `grant_option: true`)"))
            })?;
        if matches!(p, Privilege::Dynamic(_)) && engine == Engine::Mariadb {
            return Err((path, format!("{word:?} is a MySQL 8 dynamic privilege; MariaDB has none")));
        }
        if !p.accepted_at(&scopes[0]) {
            return Err((path, format!("{p} cannot be granted `on: {}`", on_word(g.on))));
        }
        privileges.insert(p);
    }
    if privileges.is_empty() && !g.grant_option {
        return Err((field("privileges"), "names no privilege (and no grant_option)".into()));
    }
    // an entry's grant option is the scope's flag when it names a static privilege (or none:
    // `USAGE ... WITH GRANT OPTION`), and each MySQL 8 dynamic privilege's own
    let is_dynamic = |p: &&Privilege| matches!(p, Privilege::Dynamic(_));
    let statics = privileges.iter().any(|p| !is_dynamic(&p));
    let dynamic_grantable =
        if g.grant_option { privileges.iter().filter(is_dynamic).cloned().collect() } else { BTreeSet::new() };
    let grantable = g.grant_option && (statics || privileges.is_empty());
    let desired = Desired { privileges, grantable, dynamic_grantable, origin: at.to_owned() };
    Ok(scopes.into_iter().map(|s| (s, desired.clone())).collect())
}

fn on_word(on: On) -> &'static str {
    match on {
        On::Global => "global",
        On::Database => "database",
        On::DatabasePattern => "database_pattern",
        On::Table => "table",
        On::Column => "column",
        On::Procedure => "procedure",
        On::Function => "function",
        On::Package => "package",
        On::PackageBody => "package_body",
    }
}

/// The baseline of what `catalog` holds: every account and role with its
/// grants, roles and proxies, but those `ignore` leaves alone and the
/// engine's own system accounts. The plan reads it back with no drift.
pub fn generate(catalog: &Catalog, engine: Engine, ignore: &RoleFilter) -> Manifest {
    let kept = |a: &Account| !ignore.ignores_name(&a.user_at_host()) && !is_system_account(a);
    let mut accounts = Vec::new();
    for info in catalog.accounts.iter().filter(|i| kept(&i.account)) {
        let a = &info.account;
        let is_role_host = info.is_role && a.host == engine.role_host();
        let roles = catalog
            .roles_of(a)
            .map(|r| RoleSpec {
                role: r.role.user.clone(),
                host: (r.role.host != engine.role_host()).then(|| r.role.host.clone()),
                admin: r.admin,
            })
            .collect();
        let proxies = catalog
            .proxies_of(a)
            .map(|p| ProxySpec {
                user: p.proxied.user.clone(),
                host: p.proxied.host.clone(),
                grant_option: p.grantable,
            })
            .collect();
        let mut grants = Vec::new();
        // columns of one table with the same privileges: one entry
        let mut columns: BTreeMap<(String, String, Vec<Privilege>), Vec<String>> = BTreeMap::new();
        for g in catalog.privileges_of(a) {
            let privileges: Vec<Privilege> = g.privileges.iter().cloned().collect();
            let words = |ps: &[Privilege]| ps.iter().map(|p| p.keyword().to_owned()).collect::<Vec<_>>();
            let spec = |on, database: Option<&str>, table: Option<&str>, routine: Option<&str>| GrantSpec {
                on,
                database: database.map(str::to_owned),
                table: table.map(str::to_owned),
                columns: Vec::new(),
                routine: routine.map(str::to_owned),
                privileges: words(&privileges),
                grant_option: g.grantable,
            };
            match &g.scope {
                Scope::Global => {
                    // MySQL 8's dynamic privileges keep a grant option each: those held with it, and
                    // those without, get entries of their own beside the static ones and their flag
                    let dynamic = |p: &&Privilege| matches!(p, Privilege::Dynamic(_));
                    let statics: Vec<Privilege> = privileges.iter().filter(|p| !dynamic(p)).cloned().collect();
                    let (with, plain): (Vec<Privilege>, Vec<Privilege>) =
                        privileges.iter().filter(dynamic).cloned().partition(|p| g.dynamic_grantable.contains(p));
                    let mut global = |list: &[Privilege], grant_option| {
                        let spec = spec(On::Global, None, None, None);
                        grants.push(GrantSpec { privileges: words(list), grant_option, ..spec });
                    };
                    // the static entry also stands for the flag alone (`USAGE ... WITH GRANT OPTION`)
                    if !statics.is_empty() || g.grantable {
                        global(&statics, g.grantable);
                    }
                    for (list, grant_option) in [(plain, false), (with, true)] {
                        if !list.is_empty() {
                            global(&list, grant_option);
                        }
                    }
                }
                Scope::Database { database, pattern } => {
                    let on = if *pattern { On::DatabasePattern } else { On::Database };
                    grants.push(spec(on, Some(database), None, None));
                }
                Scope::Table { database, table } => grants.push(spec(On::Table, Some(database), Some(table), None)),
                Scope::Column { database, table, column } => {
                    columns.entry((database.clone(), table.clone(), privileges)).or_default().push(column.clone());
                }
                Scope::Routine { database, name, kind } => {
                    grants.push(spec(On::of_routine_kind(kind), Some(database), None, Some(name)));
                }
            }
        }
        for ((database, table, privileges), cols) in columns {
            grants.push(GrantSpec {
                on: On::Column,
                database: Some(database),
                table: Some(table),
                columns: cols,
                routine: None,
                privileges: privileges.iter().map(|p| p.keyword().to_owned()).collect(),
                // a column's grant option is its table's, declared on the table
                grant_option: false,
            });
        }
        let revokes = catalog
            .partial_revokes
            .iter()
            .filter(|r| r.account == *a)
            .map(|r| RevokeSpec {
                database: r.database.clone(),
                privileges: r.privileges.iter().map(|p| p.keyword().to_owned()).collect(),
            })
            .collect();
        accounts.push(AccountSpec {
            user: a.user.clone(),
            host: (!is_role_host).then(|| a.host.clone()),
            role: info.is_role,
            locked: info.locked,
            roles,
            proxies,
            grants,
            revokes,
        });
    }
    Manifest {
        version: VERSION,
        engine,
        accounts,
        ignore_accounts: ignore.patterns().to_vec(),
        accepted_exposures: Vec::new(),
    }
}

/// The engines' own accounts, which own their system views and routines and
/// which no one logs in as (they are locked): MariaDB's `mariadb.sys` and
/// MySQL 8's `mysql.sys`, `mysql.session` and `mysql.infoschema`, at `localhost`.
pub fn is_system_account(a: &Account) -> bool {
    a.host == "localhost"
        && matches!(a.user.as_str(), "mariadb.sys" | "mysql.sys" | "mysql.session" | "mysql.infoschema")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Baseline, FileError> {
        Baseline::from_yaml(text, "b.yaml")
    }

    #[test]
    fn every_level_resolves_to_its_scope() {
        let b = parse(
            "version: 1\nengine: mariadb\naccounts:\n  - user: app\n    host: '10.0.%'\n    roles: [{ role: r, admin: true }]\n    grants:\n      - { on: global, privileges: [process] }\n      - { on: database, database: shop, privileges: [SELECT, CREATE TEMPORARY TABLES], grant_option: true }\n      - { on: database_pattern, database: 'tmp\\_%', privileges: [ALL_NOT_A_THING] }\n",
        );
        let e = b.unwrap_err();
        assert_eq!(e.path, "accounts[0].grants[2].privileges[0]", "{e}");
        assert!(e.message.contains("MariaDB has none"), "{e}");
        let b = parse(
            "version: 1\nengine: mysql\naccounts:\n  - user: app\n    host: '10.0.%'\n    roles: [{ role: r, admin: true }]\n    grants:\n      - { on: global, privileges: [process, BACKUP_ADMIN], grant_option: true }\n      - { on: column, database: shop, table: t, columns: [a, b], privileges: [SELECT] }\n      - { on: procedure, database: shop, routine: close, privileges: [EXECUTE] }\n  - { user: r, role: true }\n",
        )
        .unwrap();
        let app = &b.accounts[&Account::new("app", "10.0.%")];
        assert_eq!(app.roles, BTreeMap::from([(Account::new("r", "%"), true)]));
        assert!(b.accounts.contains_key(&Account::new("r", "%")), "a MySQL role's host is %");
        let global = &app.grants[&Scope::Global];
        assert!(global.grantable && global.dynamic_grantable.contains(&Privilege::Dynamic("BACKUP_ADMIN".into())));
        assert_eq!(app.grants.len(), 4, "two columns, a routine and global: {:?}", app.grants.keys());
    }

    #[test]
    fn what_serde_cannot_check_is_refused_with_its_path() {
        let cases = [
            ("accounts:\n  - { user: app }\n", "accounts[0].host", "needs its host"),
            (
                "accounts:\n  - { user: a, host: h, grants: [{ on: database, privileges: [SELECT] }] }\n",
                "accounts[0].grants[0].database",
                "needs `database`",
            ),
            (
                "accounts:\n  - { user: a, host: h, grants: [{ on: table, database: d, table: t, privileges: [FILE] }] }\n",
                "accounts[0].grants[0].privileges[0]",
                "FILE cannot be granted `on: table`",
            ),
            (
                "accounts:\n  - { user: a, host: h, grants: [{ on: global, database: d, privileges: [FILE] }] }\n",
                "accounts[0].grants[0].database",
                "takes no `database`",
            ),
            (
                "accounts:\n  - { user: a, host: h, grants: [{ on: database_pattern, database: shop, privileges: [SELECT] }] }\n",
                "accounts[0].grants[0].database",
                "it is `on: database`",
            ),
            (
                "accounts:\n  - { user: a, host: h, grants: [{ on: global, privileges: [SELEC] }] }\n",
                "accounts[0].grants[0].privileges[0]",
                "unknown privilege",
            ),
            ("accounts:\n  - { user: a, host: h }\n  - { user: a, host: h }\n", "accounts[1]", "declared twice"),
            (
                "accounts:\n  - { user: a, host: h, grants: [{ on: column, database: d, table: t, columns: [c], privileges: [SELECT], grant_option: true }] }\n",
                "accounts[0].grants[0].grant_option",
                "its table's",
            ),
        ];
        for (body, path, message) in cases {
            let e = parse(&format!("version: 1\nengine: mariadb\n{body}")).unwrap_err();
            assert_eq!((e.file.as_str(), e.path.as_str()), ("b.yaml", path), "{e}");
            assert!(e.message.contains(message), "{e}");
        }
        assert_eq!(engine_of("version: 1\nroles: {}\n"), Ok(None));
        assert_eq!(engine_of("version: 1\nengine: mariadb\naccounts: 3\n"), Ok(Some("mariadb".into())));
        assert_eq!(engine_of("version: 1\nengine: [mariadb\n"), Err(()), "not YAML: its parser says why");
    }
}
