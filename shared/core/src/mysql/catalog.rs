//! What a MySQL or MariaDB server enforces about who may do what, as its
//! grant tables hold it: accounts, privileges at each level, roles, proxy
//! grants and the definers of stored objects. Names are the server's own
//! strings, compared as the grant tables compare them (byte for byte).

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::privilege::Privilege;

/// Which server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    /// MariaDB (10.4 and later: `mysql.global_priv`).
    Mariadb,
    /// MySQL 8 (and Aurora MySQL 3).
    Mysql,
}

/// The server: flavor and `VERSION()`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Server {
    /// MariaDB or MySQL.
    pub flavor: Flavor,
    /// `VERSION()`, e.g. `10.11.19-MariaDB-0+deb12u1`.
    pub version: String,
}

impl Server {
    /// The version as one number, `major * 10000 + minor * 100 + patch`, as
    /// the servers write it in versioned comments (`10.11.19` is 101119,
    /// `8.0.36` is 80036); 0 when `VERSION()` does not start with one.
    pub fn version_num(&self) -> u32 {
        let numbers = self.version.split(|c: char| !c.is_ascii_digit() && c != '.').next().unwrap_or_default();
        let mut parts = numbers.split('.').map(|p| p.parse::<u32>().ok());
        match (parts.next().flatten(), parts.next().flatten(), parts.next().flatten()) {
            (Some(major), Some(minor), patch) => major * 10_000 + minor.min(99) * 100 + patch.unwrap_or(0).min(99),
            _ => 0,
        }
    }
}

/// An account or a role: `'user'@'host'`. A MariaDB role has an empty host;
/// an anonymous account an empty user. The host is a pattern (`%`,
/// `10.0.%`, `app-_.example.com`) or a literal name or address.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Account {
    /// User name (empty: anonymous).
    pub user: String,
    /// Host or host pattern (empty: a MariaDB role).
    pub host: String,
}

impl Account {
    /// `user@host`.
    pub fn new(user: &str, host: &str) -> Self {
        Self { user: user.to_owned(), host: host.to_owned() }
    }

    /// Parses a definer as the server prints it (`user@host`; the user may itself
    /// hold `@`, the host never does). A definer without `@` is a MariaDB role.
    pub fn from_definer(definer: &str) -> Self {
        match definer.rsplit_once('@') {
            Some((user, host)) => Self::new(user, host),
            None => Self::new(definer, ""),
        }
    }

    /// An account as people write it: `user@host` (split at the last `@`, a
    /// MariaDB role without one), or quoted as MySQL prints it and a report
    /// names it (`'app'@'10.0.%'`, backticks or double quotes too, a doubled
    /// quote inside a quoted part being one).
    pub fn parse(text: &str) -> Self {
        /// A quoted part at the start of `s`: its text and what follows it.
        fn quoted(s: &str) -> Option<(String, &str)> {
            let q = s.chars().next().filter(|c| matches!(c, '\'' | '`' | '"'))?;
            let mut out = String::new();
            let mut chars = s[1..].char_indices().peekable();
            while let Some((i, c)) = chars.next() {
                if c != q {
                    out.push(c);
                } else if chars.peek().is_some_and(|(_, n)| *n == q) {
                    out.push(q);
                    chars.next();
                } else {
                    return Some((out, &s[1 + i + 1..]));
                }
            }
            None
        }
        if let Some((user, rest)) = quoted(text) {
            match rest.strip_prefix('@') {
                Some(host) => match quoted(host) {
                    Some((host, "")) => return Self::new(&user, &host),
                    None if !host.is_empty() => return Self::new(&user, host),
                    _ => {}
                },
                None if rest.is_empty() => return Self::new(&user, ""),
                None => {}
            }
        }
        Self::from_definer(text)
    }

    /// `user@host` unquoted, as `ignore_accounts` globs match it.
    pub fn user_at_host(&self) -> String {
        format!("{}@{}", self.user, self.host)
    }

    /// Whether the host matches any client (`%`): reachable from anywhere the
    /// server listens.
    pub fn any_host(&self) -> bool {
        self.host == "%"
    }
}

impl fmt::Display for Account {
    /// `'user'@'host'` with quotes doubled, as SQL names an account.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", super::quote::string(&self.user), super::quote::string(&self.host))
    }
}

/// How an account proves who it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Authentication {
    /// A password plugin (`mysql_native_password`, `caching_sha2_password`,
    /// `ed25519`...): `set` is false when its stored hash is empty, i.e. anyone
    /// may log in as the account with no password at all.
    Password {
        /// The plugin.
        plugin: String,
        /// Whether a password is set (the hash itself is never read).
        set: bool,
    },
    /// The operating system's user (`unix_socket`, `auth_socket`): no password exists.
    Socket {
        /// The plugin.
        plugin: String,
    },
    /// Any other plugin (PAM, LDAP, Kerberos, AWS IAM...).
    Plugin {
        /// The plugin.
        plugin: String,
    },
    /// A role: no login.
    None,
}

impl Authentication {
    /// Classifies `plugin` with whether its stored hash is non-empty.
    pub fn of(plugin: &str, hash_set: bool) -> Self {
        match plugin {
            ""
            | "mysql_native_password"
            | "mysql_old_password"
            | "caching_sha2_password"
            | "sha256_password"
            | "ed25519"
            | "parsec" => Authentication::Password {
                plugin: if plugin.is_empty() { "mysql_native_password".to_owned() } else { plugin.to_owned() },
                set: hash_set,
            },
            "unix_socket" | "auth_socket" => Authentication::Socket { plugin: plugin.to_owned() },
            other => Authentication::Plugin { plugin: other.to_owned() },
        }
    }

    /// Whether anyone who reaches the server may log in as the account without
    /// a secret: a password plugin with no password set.
    pub fn passwordless(&self) -> bool {
        matches!(self, Authentication::Password { set: false, .. })
    }
}

/// An account or role and its attributes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountInfo {
    /// Who.
    pub account: Account,
    /// A role (MariaDB `is_role`; on MySQL 8 an account that is granted to
    /// another in `role_edges`, or is locked with no password and named in one).
    pub is_role: bool,
    /// How it logs in; MariaDB's `OR`-ed methods (`IDENTIFIED VIA a OR b`) each appear.
    pub authentication: Vec<Authentication>,
    /// `ACCOUNT LOCK`.
    pub locked: bool,
    /// The password is expired (`PASSWORD EXPIRE`): the next login must change it.
    pub password_expired: bool,
    /// `PASSWORD EXPIRE INTERVAL n DAY` (none: the server's default; 0: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_lifetime_days: Option<u32>,
    /// `MAX_USER_CONNECTIONS` (0: unlimited, the server's `max_user_connections`).
    pub max_user_connections: u64,
}

impl AccountInfo {
    /// An anonymous account (empty user name): anyone whose user name matches nothing else.
    pub fn anonymous(&self) -> bool {
        self.account.user.is_empty() && !self.is_role
    }

    /// An account that may log in with no secret.
    pub fn passwordless(&self) -> bool {
        !self.is_role && !self.locked && self.authentication.iter().any(Authentication::passwordless)
    }
}

/// Where a privilege applies.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "level", rename_all = "snake_case")]
pub enum Scope {
    /// `ON *.*`.
    Global,
    /// `ON db.*`; `pattern` when the name holds unescaped `%` or `_` wildcards
    /// (then it names every database it matches, `\_` being a literal `_`).
    Database {
        /// The database's name (unescaped), or the pattern as stored.
        database: String,
        /// Whether it is a wildcard pattern.
        pattern: bool,
    },
    /// `ON db.table`.
    Table {
        /// Database.
        database: String,
        /// Table or view.
        table: String,
    },
    /// `(column) ON db.table`.
    Column {
        /// Database.
        database: String,
        /// Table or view.
        table: String,
        /// Column.
        column: String,
    },
    /// `ON PROCEDURE|FUNCTION|PACKAGE db.name`.
    Routine {
        /// Database.
        database: String,
        /// Routine name.
        name: String,
        /// `PROCEDURE`, `FUNCTION`, `PACKAGE` or `PACKAGE BODY`.
        kind: String,
    },
}

impl Scope {
    /// The database the scope lies in (none: global, or a pattern).
    pub fn database(&self) -> Option<&str> {
        match self {
            Scope::Global | Scope::Database { pattern: true, .. } => None,
            Scope::Database { database, .. }
            | Scope::Table { database, .. }
            | Scope::Column { database, .. }
            | Scope::Routine { database, .. } => Some(database),
        }
    }
}

/// Whether a `Db` column names a pattern: an unescaped `%` or `_`.
pub fn is_pattern(db: &str) -> bool {
    let mut escaped = false;
    for c in db.chars() {
        match c {
            '\\' if !escaped => escaped = true,
            '%' | '_' if !escaped => return true,
            _ => escaped = false,
        }
    }
    false
}

/// The database a `Db` column that is no pattern names: `\_`, `\%` and `\\`
/// unescaped.
pub fn unescape(db: &str) -> String {
    let mut out = String::with_capacity(db.len());
    let mut escaped = false;
    for c in db.chars() {
        if c == '\\' && !escaped {
            escaped = true;
            continue;
        }
        if escaped && !matches!(c, '_' | '%' | '\\') {
            out.push('\\');
        }
        escaped = false;
        out.push(c);
    }
    if escaped {
        out.push('\\');
    }
    out
}

/// Privileges one account holds at one scope.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PrivilegeGrant {
    /// Who holds them.
    pub grantee: Account,
    /// Where.
    pub scope: Scope,
    /// What (empty only when GRANT OPTION alone is held: `USAGE ... WITH GRANT OPTION`).
    pub privileges: BTreeSet<Privilege>,
    /// GRANT OPTION at this scope: the server keeps one flag per scope, which
    /// covers every static privilege the grantee holds there. A column grant
    /// shows its table's flag (the server keeps none per column).
    pub grantable: bool,
    /// MySQL 8's dynamic privileges held `WITH GRANT OPTION` (each has its own flag).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub dynamic_grantable: BTreeSet<Privilege>,
}

/// A role granted to an account or to another role.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RoleGrant {
    /// Who holds the role.
    pub grantee: Account,
    /// The role.
    pub role: Account,
    /// `WITH ADMIN OPTION`: the grantee may grant it on.
    pub admin: bool,
}

/// A role that is active at login without `SET ROLE`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DefaultRole {
    /// The account.
    pub account: Account,
    /// The role.
    pub role: Account,
}

/// `GRANT PROXY ON proxied TO grantee`: the grantee may log in as the proxied account.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProxyGrant {
    /// Who may proxy.
    pub grantee: Account,
    /// As whom (an empty user: any user at that host).
    pub proxied: Account,
    /// `WITH GRANT OPTION`.
    pub grantable: bool,
}

/// A MySQL 8 partial revoke (`partial_revokes=ON`): a global privilege held
/// everywhere except in one database (`User_attributes.Restrictions`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PartialRevoke {
    /// The account.
    pub account: Account,
    /// The database the privileges are revoked in.
    pub database: String,
    /// The revoked privileges.
    pub privileges: BTreeSet<Privilege>,
}

/// What kind of stored object runs with a definer's rights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoredKind {
    /// A view.
    View,
    /// A stored procedure.
    Procedure,
    /// A stored function.
    Function,
    /// A trigger (always runs as its definer).
    Trigger,
    /// A scheduled event (always runs as its definer).
    Event,
}

/// A view, routine, trigger or event and the account whose privileges it runs with.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Definer {
    /// Kind.
    pub kind: StoredKind,
    /// Database.
    pub database: String,
    /// Name.
    pub name: String,
    /// `DEFINER`.
    pub definer: Account,
    /// Runs with the definer's privileges (`SQL SECURITY DEFINER`, and every
    /// trigger and event) rather than the caller's.
    pub runs_as_definer: bool,
}

/// What a scan could not read, each with the privilege it lacked.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Unreadable {
    /// What was not read, e.g. `trigger definers`.
    pub what: String,
    /// Why, e.g. `the scanning account lacks TRIGGER on *.*`.
    pub why: String,
}

/// Everything one chunk or a whole scan read. Chunks hold disjoint parts,
/// so a scan's catalog is their union ([`Catalog::merge_all`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// Accounts and roles.
    #[serde(default)]
    pub accounts: Vec<AccountInfo>,
    /// Databases (schemata) that exist.
    #[serde(default)]
    pub databases: BTreeSet<String>,
    /// Privileges at every level.
    #[serde(default)]
    pub privileges: BTreeSet<PrivilegeGrant>,
    /// Role grants.
    #[serde(default)]
    pub roles: BTreeSet<RoleGrant>,
    /// Default roles.
    #[serde(default)]
    pub default_roles: BTreeSet<DefaultRole>,
    /// Proxy grants.
    #[serde(default)]
    pub proxies: BTreeSet<ProxyGrant>,
    /// MySQL 8 partial revokes.
    #[serde(default)]
    pub partial_revokes: BTreeSet<PartialRevoke>,
    /// Definers of views, routines, triggers and events.
    #[serde(default)]
    pub definers: BTreeSet<Definer>,
    /// What could not be read for want of a privilege (never silently empty).
    #[serde(default)]
    pub unreadable: BTreeSet<Unreadable>,
}

impl Catalog {
    /// The union of disjoint chunks.
    pub fn merge_all(parts: impl IntoIterator<Item = Catalog>) -> Catalog {
        let mut out = Catalog::default();
        for p in parts {
            out.accounts.extend(p.accounts);
            out.databases.extend(p.databases);
            out.privileges.extend(p.privileges);
            out.roles.extend(p.roles);
            out.default_roles.extend(p.default_roles);
            out.proxies.extend(p.proxies);
            out.partial_revokes.extend(p.partial_revokes);
            out.definers.extend(p.definers);
            out.unreadable.extend(p.unreadable);
        }
        out.accounts.sort_by(|a, b| a.account.cmp(&b.account));
        out
    }

    /// Hex sha256 of the catalog's JSON: it depends only on what the catalog
    /// holds (accounts are sorted, every other collection is a set).
    pub fn sha256(&self) -> String {
        use sha2::Digest;
        let json = serde_json::to_vec(self).expect("a catalog always serializes");
        hex::encode(sha2::Sha256::digest(json))
    }

    /// The account's attributes.
    pub fn account(&self, account: &Account) -> Option<&AccountInfo> {
        self.accounts.iter().find(|a| &a.account == account)
    }

    /// What `grantee` holds at `scope`, if anything.
    pub fn privileges_at(&self, grantee: &Account, scope: &Scope) -> Option<&PrivilegeGrant> {
        // grants sort by grantee, then scope: the least grant of this pair comes first
        let least = PrivilegeGrant {
            grantee: grantee.clone(),
            scope: scope.clone(),
            privileges: BTreeSet::new(),
            grantable: false,
            dynamic_grantable: BTreeSet::new(),
        };
        self.privileges.range(least..).next().filter(|g| &g.grantee == grantee && &g.scope == scope)
    }

    /// Every grant `grantee` holds, at every scope (grants sort by grantee first).
    pub fn privileges_of<'c>(&'c self, grantee: &'c Account) -> impl Iterator<Item = &'c PrivilegeGrant> + 'c {
        let least = PrivilegeGrant {
            grantee: grantee.clone(),
            scope: Scope::Global,
            privileges: BTreeSet::new(),
            grantable: false,
            dynamic_grantable: BTreeSet::new(),
        };
        self.privileges.range(least..).take_while(move |g| &g.grantee == grantee)
    }

    /// The roles granted to `grantee` (role grants sort by grantee first).
    pub fn roles_of<'c>(&'c self, grantee: &'c Account) -> impl Iterator<Item = &'c RoleGrant> + 'c {
        let least = RoleGrant { grantee: grantee.clone(), role: Account::new("", ""), admin: false };
        self.roles.range(least..).take_while(move |r| &r.grantee == grantee)
    }

    /// The accounts `grantee` may proxy (proxy grants sort by grantee first).
    pub fn proxies_of<'c>(&'c self, grantee: &'c Account) -> impl Iterator<Item = &'c ProxyGrant> + 'c {
        let least = ProxyGrant { grantee: grantee.clone(), proxied: Account::new("", ""), grantable: false };
        self.proxies.range(least..).take_while(move |p| &p.grantee == grantee)
    }

    /// Adds privileges at a scope, joining what the grantee already holds there
    /// (a global grant read from `global_priv` and MySQL 8's dynamic ones).
    pub fn add_privileges(&mut self, grantee: Account, scope: Scope, privileges: Vec<Privilege>, grantable: bool) {
        if privileges.is_empty() && !grantable {
            return;
        }
        let grant = PrivilegeGrant {
            grantee,
            scope,
            privileges: privileges.into_iter().collect(),
            grantable,
            dynamic_grantable: BTreeSet::new(),
        };
        self.merge_grant(grant);
    }

    /// Adds a MySQL 8 dynamic privilege (its own grant option) at the global scope.
    pub fn add_dynamic(&mut self, grantee: Account, privilege: Privilege, grantable: bool) {
        let grant = PrivilegeGrant {
            grantee,
            scope: Scope::Global,
            privileges: [privilege.clone()].into_iter().collect(),
            grantable: false,
            dynamic_grantable: if grantable { [privilege].into_iter().collect() } else { BTreeSet::new() },
        };
        self.merge_grant(grant);
    }

    fn merge_grant(&mut self, mut grant: PrivilegeGrant) {
        if let Some(old) = self.privileges_at(&grant.grantee, &grant.scope).cloned() {
            self.privileges.remove(&old);
            grant.privileges.extend(old.privileges);
            grant.grantable |= old.grantable;
            grant.dynamic_grantable.extend(old.dynamic_grantable);
        }
        self.privileges.insert(grant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_unescaped_wildcards() {
        assert!(is_pattern("app_%"));
        assert!(is_pattern("app_db"));
        assert!(!is_pattern("app\\_db"));
        assert!(!is_pattern("orders"));
        assert!(is_pattern("a\\\\_b"), "an escaped backslash leaves the _ a wildcard");
        assert_eq!(unescape("app\\_db"), "app_db");
        assert_eq!(unescape("a\\%b\\\\c\\d"), "a%b\\c\\d");
    }

    #[test]
    fn accounts_parse_as_people_write_them() {
        assert_eq!(Account::parse("app@10.0.%"), Account::new("app", "10.0.%"));
        assert_eq!(Account::parse("'app'@'10.0.%'"), Account::new("app", "10.0.%"));
        assert_eq!(Account::parse("`o``k`@\"%\""), Account::new("o`k", "%"));
        assert_eq!(Account::parse("'it''s'@localhost"), Account::new("it's", "localhost"));
        assert_eq!(Account::parse("'a@b'@'%'"), Account::new("a@b", "%"));
        assert_eq!(Account::parse("reporting"), Account::new("reporting", ""));
        assert_eq!(Account::parse("'reporting'"), Account::new("reporting", ""));
        assert_eq!(Account::parse("'unclosed@%"), Account::new("'unclosed", "%"), "not quoted: split as written");
    }

    #[test]
    fn a_version_is_one_number() {
        let num = |v: &str| Server { flavor: Flavor::Mariadb, version: v.into() }.version_num();
        assert_eq!(num("10.11.19-MariaDB-0+deb12u1"), 101_119);
        assert_eq!(num("8.0.36"), 80_036);
        assert_eq!(num("8.0.mysql_aurora.3.05.2"), 80_000);
        assert_eq!(num("11.4"), 110_400);
        assert_eq!(num("unknown"), 0);
    }

    #[test]
    fn definers_split_at_the_last_at_sign() {
        assert_eq!(Account::from_definer("root@localhost"), Account::new("root", "localhost"));
        assert_eq!(Account::from_definer("a@b@%"), Account::new("a@b", "%"));
        assert_eq!(Account::from_definer("admin_role"), Account::new("admin_role", ""));
        assert_eq!(Account::new("o'k", "%").to_string(), "'o''k'@'%'");
    }

    #[test]
    fn authentication_tells_passwordless_from_socket_and_roles() {
        assert!(Authentication::of("mysql_native_password", false).passwordless());
        assert!(Authentication::of("", false).passwordless());
        assert!(!Authentication::of("caching_sha2_password", true).passwordless());
        assert!(!Authentication::of("unix_socket", false).passwordless());
        assert!(!Authentication::of("pam", false).passwordless());
    }
}
