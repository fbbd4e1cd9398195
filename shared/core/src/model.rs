//! The canonical privilege model: what a role may do on what object.
//!
//! A grant is `(object, grantee, privilege, grantable)`. Objects are compared by
//! class (every table-like relation is a `Table`: `GRANT ... ON TABLE` works on
//! views and foreign tables alike); the relation's real kind is kept in the
//! snapshot for display.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A name that is not a valid PostgreSQL identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("name is empty")]
    Empty,
    /// PostgreSQL truncates names to 63 bytes; a longer one would silently name another role.
    #[error("name {0:?} is longer than 63 bytes")]
    TooLong(String),
    /// NUL cannot appear in a PostgreSQL name.
    #[error("name {0:?} contains a NUL character")]
    Nul(String),
}

/// Longest name PostgreSQL keeps (NAMEDATALEN - 1).
pub const MAX_NAME_BYTES: usize = 63;

fn check_name(s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    if s.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong(s.to_owned()));
    }
    if s.contains('\0') {
        return Err(NameError::Nul(s.to_owned()));
    }
    Ok(())
}

/// An immutable, shared string: a catalog name that millions of grants repeat
/// (a schema, a table, a grantee) is stored once and each grant holds a
/// reference to it. A clone is a reference count, not a copy; equal names that
/// share their storage compare without reading it. Ordered, hashed, shown and
/// serialized as the string itself.
#[derive(Clone, Eq)]
pub struct Name(std::sync::Arc<str>);

impl Name {
    /// The string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if std::sync::Arc::ptr_eq(&self.0, &other.0) {
            return std::cmp::Ordering::Equal;
        }
        self.0.cmp(&other.0)
    }
}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::hash::Hash for Name {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Self {
        Self(s.into())
    }
}

impl From<String> for Name {
    fn from(s: String) -> Self {
        Self(s.into())
    }
}

impl From<&String> for Name {
    fn from(s: &String) -> Self {
        Self(s.as_str().into())
    }
}

impl From<Name> for String {
    fn from(n: Name) -> Self {
        n.0.as_ref().to_owned()
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, other: &String) -> bool {
        &*self.0 == other.as_str()
    }
}

impl PartialEq<Name> for String {
    fn eq(&self, other: &Name) -> bool {
        self.as_str() == &*other.0
    }
}

impl PartialEq<Name> for str {
    fn eq(&self, other: &Name) -> bool {
        self == &*other.0
    }
}

impl PartialEq<Name> for &str {
    fn eq(&self, other: &Name) -> bool {
        *self == &*other.0
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Name::from)
    }
}

/// Hands out one [`Name`] per distinct string: extraction reads the same schema,
/// table and grantee names over and over, and each is kept once.
#[derive(Default)]
pub struct Names(std::collections::HashSet<Name, foldhash::fast::RandomState>);

impl Names {
    /// The shared name for `s`.
    pub fn get(&mut self, s: &str) -> Name {
        if let Some(n) = self.0.get(s) {
            return n.clone();
        }
        let n = Name::from(s);
        self.0.insert(n.clone());
        n
    }
}

/// A role name exactly as PostgreSQL stores it (case, spaces and quotes included).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct RoleName(Name);

impl RoleName {
    /// Validates a role name: non-empty, at most 63 bytes, no NUL.
    pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
        let name = name.into();
        check_name(&name)?;
        Ok(Self(name.into()))
    }

    /// Validates a role name kept in `names` (one copy per distinct role).
    pub fn shared(name: &str, names: &mut Names) -> Result<Self, NameError> {
        check_name(name)?;
        Ok(Self(names.get(name)))
    }

    /// The name as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RoleName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RoleName::new(s).map_err(serde::de::Error::custom)
    }
}

/// Who holds a privilege: a role, or every role (`PUBLIC`, grantee oid 0);
/// on MySQL and MariaDB, an account or role (`'user'@'host'`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Grantee {
    /// The PUBLIC pseudo-role.
    Public,
    /// A real role.
    Role(RoleName),
    /// A MySQL or MariaDB account or role.
    Account(AccountGrantee),
}

/// A MySQL or MariaDB account or role as a grantee: its user and host, and
/// how SQL writes it (`'app'@'10.0.%'`, a MariaDB role `'reporting'@''`),
/// which is how a report spells it and reads it back.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountGrantee {
    text: Name,
    user: Name,
    host: Name,
}

impl AccountGrantee {
    /// The account `user`@`host`.
    pub fn new(user: &str, host: &str) -> Self {
        let text = format!("{}@{}", mysql_string(user), mysql_string(host));
        Self { text: text.into(), user: user.into(), host: host.into() }
    }

    /// The account `text` writes as [`AccountGrantee::as_str`] does, or none
    /// when it is anything else (a bare name, a missing quote, text after the host).
    pub fn parse(text: &str) -> Option<Self> {
        let (user, rest) = parse_mysql_string(text)?;
        let (host, rest) = parse_mysql_string(rest.strip_prefix('@')?)?;
        rest.is_empty().then(|| Self::new(&user, &host))
    }

    /// The user name (empty: an anonymous account).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The host or host pattern (empty: a MariaDB role).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// As SQL writes it: `'user'@'host'`.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// A MySQL or MariaDB string literal in single quotes: a quote doubled, a
/// backslash escaped, NUL written as `\0` (for a session whose `sql_mode`
/// holds no `NO_BACKSLASH_ESCAPES`, as grantwarden's sessions set it).
pub fn mysql_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// One literal as [`mysql_string`] writes it at the start of `text`: its value and what follows.
fn parse_mysql_string(text: &str) -> Option<(String, &str)> {
    let body = text.strip_prefix('\'')?;
    let mut chars = body.char_indices();
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '\'' if body[i + 1..].starts_with('\'') => {
                out.push('\'');
                chars.next();
            }
            '\'' => return Some((out, &body[i + 1..])),
            '\\' => match chars.next()?.1 {
                '\\' => out.push('\\'),
                '0' => out.push('\0'),
                _ => return None,
            },
            c => out.push(c),
        }
    }
    None
}

impl Grantee {
    /// The grantee `role` names, PUBLIC for none (the inverse of [`Grantee::role`]).
    pub fn of_role(role: Option<&RoleName>) -> Self {
        role.map_or(Grantee::Public, |r| Grantee::Role(r.clone()))
    }

    /// The grantee the MySQL or MariaDB account `user`@`host` is.
    pub fn account(user: &str, host: &str) -> Self {
        Grantee::Account(AccountGrantee::new(user, host))
    }

    /// The name as written: the role's, `PUBLIC`, or an account's `'user'@'host'`.
    pub fn as_str(&self) -> &str {
        match self {
            Grantee::Public => "PUBLIC",
            Grantee::Role(r) => r.as_str(),
            Grantee::Account(a) => a.as_str(),
        }
    }

    /// The PostgreSQL role, unless this is PUBLIC or a MySQL account.
    pub fn role(&self) -> Option<&RoleName> {
        match self {
            Grantee::Public | Grantee::Account(_) => None,
            Grantee::Role(r) => Some(r),
        }
    }
}

impl fmt::Display for Grantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Grantee {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Grantee {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "PUBLIC" {
            return Ok(Grantee::Public);
        }
        // only what SQL writes as an account reads as one: two quoted strings joined by `@`
        if let Some(account) = AccountGrantee::parse(&s) {
            return Ok(Grantee::Account(account));
        }
        RoleName::new(s).map(Grantee::Role).map_err(serde::de::Error::custom)
    }
}

/// Everything a finding can name as "privilege": ACL privileges, role
/// attributes, membership and ownership.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Privilege {
    /// SELECT on a table, column or sequence.
    Select,
    /// INSERT on a table or column.
    Insert,
    /// UPDATE on a table, column or sequence.
    Update,
    /// DELETE on a table.
    Delete,
    /// TRUNCATE on a table.
    Truncate,
    /// REFERENCES on a table or column.
    References,
    /// TRIGGER on a table.
    Trigger,
    /// MAINTAIN on a table (PostgreSQL 17).
    Maintain,
    /// USAGE on a schema, sequence, type or language.
    Usage,
    /// CREATE on a database or schema.
    Create,
    /// CONNECT on a database.
    Connect,
    /// TEMPORARY on a database.
    Temporary,
    /// EXECUTE on a function or procedure.
    Execute,
    /// Role attribute SUPERUSER.
    Superuser,
    /// Role attribute CREATEROLE.
    CreateRole,
    /// Role attribute CREATEDB.
    CreateDb,
    /// Role attribute LOGIN.
    Login,
    /// Role attribute REPLICATION.
    Replication,
    /// Role attribute BYPASSRLS.
    BypassRls,
    /// Role attribute VALID UNTIL (password expiry).
    ValidUntil,
    /// Membership in another role.
    Member,
    /// Ownership of an object.
    Owner,
    /// The role itself exists.
    Role,
    /// Row-level security on a table (for observations about policies).
    RowLevelSecurity,
}

/// How dangerous a privilege is, in increasing order (of either engine's
/// privileges: severity means the same for both).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrivilegeClass {
    /// Reads data or looks up objects.
    Read,
    /// Changes data or runs code.
    Write,
    /// Changes the schema (CREATE, TRIGGER, REFERENCES, ownership).
    Ddl,
    /// Hands out power: role attributes, admin options, grant options.
    Admin,
}

const ALL_PRIVILEGES: &[(Privilege, &str)] = &[
    (Privilege::Select, "SELECT"),
    (Privilege::Insert, "INSERT"),
    (Privilege::Update, "UPDATE"),
    (Privilege::Delete, "DELETE"),
    (Privilege::Truncate, "TRUNCATE"),
    (Privilege::References, "REFERENCES"),
    (Privilege::Trigger, "TRIGGER"),
    (Privilege::Maintain, "MAINTAIN"),
    (Privilege::Usage, "USAGE"),
    (Privilege::Create, "CREATE"),
    (Privilege::Connect, "CONNECT"),
    (Privilege::Temporary, "TEMPORARY"),
    (Privilege::Execute, "EXECUTE"),
    (Privilege::Superuser, "SUPERUSER"),
    (Privilege::CreateRole, "CREATEROLE"),
    (Privilege::CreateDb, "CREATEDB"),
    (Privilege::Login, "LOGIN"),
    (Privilege::Replication, "REPLICATION"),
    (Privilege::BypassRls, "BYPASSRLS"),
    (Privilege::ValidUntil, "VALID UNTIL"),
    (Privilege::Member, "MEMBER"),
    (Privilege::Owner, "OWNER"),
    (Privilege::Role, "ROLE"),
    (Privilege::RowLevelSecurity, "ROW LEVEL SECURITY"),
];

impl Privilege {
    /// The keyword PostgreSQL uses (`aclexplode` spelling for ACL privileges).
    pub fn keyword(self) -> &'static str {
        // ALL_PRIVILEGES is in declaration order (a unit test holds it there)
        ALL_PRIVILEGES[self as usize].1
    }

    /// Whether this privilege lives in an ACL (as opposed to an attribute,
    /// membership or ownership).
    pub fn is_acl(self) -> bool {
        self <= Privilege::Execute
    }

    /// Risk class used for severity and scoring.
    pub fn class(self) -> PrivilegeClass {
        use Privilege::*;
        match self {
            Select | Usage | Connect | ValidUntil | Role | RowLevelSecurity => PrivilegeClass::Read,
            Insert | Update | Delete | Truncate | Execute | Temporary | Login | Member => PrivilegeClass::Write,
            References | Trigger | Maintain | Create | Owner => PrivilegeClass::Ddl,
            Superuser | CreateRole | CreateDb | Replication | BypassRls => PrivilegeClass::Admin,
        }
    }
}

impl fmt::Display for Privilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// A set of privileges, one bit each (as PostgreSQL's `AclMode` keeps an ACL
/// entry's), iterated in [`Privilege`] order. An ACL entry holds one of these
/// for its privileges and one for their grant options, so comparing what a
/// grantee holds with what it should is a few bit operations.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PrivilegeSet(u32);

impl PrivilegeSet {
    /// No privilege.
    pub const EMPTY: PrivilegeSet = PrivilegeSet(0);

    /// The set holding `p` alone.
    pub const fn of(p: Privilege) -> Self {
        Self(1 << p as u32)
    }

    /// Whether `p` is in the set.
    pub const fn contains(self, p: Privilege) -> bool {
        self.0 & (1 << p as u32) != 0
    }

    /// Adds `p`.
    pub fn insert(&mut self, p: Privilege) {
        self.0 |= 1 << p as u32;
    }

    /// Takes `p` out.
    pub fn remove(&mut self, p: Privilege) {
        self.0 &= !(1 << p as u32);
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// How many privileges it holds.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// What `self` holds and `other` does not.
    pub const fn minus(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// The privileges, in [`Privilege`] order.
    pub fn iter(self) -> PrivilegeIter {
        PrivilegeIter(self.0)
    }
}

/// The privileges of a [`PrivilegeSet`], in [`Privilege`] order.
pub struct PrivilegeIter(u32);

impl Iterator for PrivilegeIter {
    type Item = Privilege;

    fn next(&mut self) -> Option<Privilege> {
        if self.0 == 0 {
            return None;
        }
        let i = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(ALL_PRIVILEGES[i].0)
    }
}

impl IntoIterator for PrivilegeSet {
    type Item = Privilege;
    type IntoIter = PrivilegeIter;
    fn into_iter(self) -> PrivilegeIter {
        self.iter()
    }
}

impl std::ops::BitOr for PrivilegeSet {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for PrivilegeSet {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

impl std::ops::BitAnd for PrivilegeSet {
    type Output = Self;
    fn bitand(self, rhs: Self) -> Self {
        Self(self.0 & rhs.0)
    }
}

impl FromIterator<Privilege> for PrivilegeSet {
    fn from_iter<I: IntoIterator<Item = Privilege>>(iter: I) -> Self {
        let mut set = Self::EMPTY;
        for p in iter {
            set.insert(p);
        }
        set
    }
}

impl fmt::Debug for PrivilegeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// A string that names no privilege.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown privilege {0:?}")]
pub struct UnknownPrivilege(pub String);

impl FromStr for Privilege {
    type Err = UnknownPrivilege;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        let upper = if upper == "TEMP" { "TEMPORARY".to_owned() } else { upper };
        ALL_PRIVILEGES.iter().find(|(_, k)| *k == upper).map(|(p, _)| *p).ok_or_else(|| UnknownPrivilege(s.to_owned()))
    }
}

impl Serialize for Privilege {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.keyword())
    }
}

impl<'de> Deserialize<'de> for Privilege {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The class of object a grant applies to; comparisons use this, not the relation kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectClass {
    /// The target database.
    Database,
    /// A schema (namespace).
    Schema,
    /// A table, view, materialized view, foreign or partitioned table.
    Table,
    /// A sequence.
    Sequence,
    /// One column of a table-like relation.
    Column,
    /// A function, procedure, aggregate or window function.
    Function,
    /// A role (for membership, attributes and existence).
    Role,
}

impl ObjectClass {
    /// ACL privileges PostgreSQL accepts on this class (what `ALL` expands to).
    /// `MAINTAIN` exists from PostgreSQL 17 on.
    pub fn acl_privileges(self, server_version_num: u32) -> Vec<Privilege> {
        self.acl_privilege_list(server_version_num).to_vec()
    }

    /// [`ObjectClass::acl_privileges`] as a set.
    pub fn acl_privilege_set(self, server_version_num: u32) -> PrivilegeSet {
        self.acl_privilege_list(server_version_num).iter().copied().collect()
    }

    /// Whether `privilege` can be granted on this class on any supported version.
    pub fn accepts(self, privilege: Privilege) -> bool {
        self.acl_privilege_list(u32::MAX).contains(&privilege)
    }

    /// The one table behind [`ObjectClass::acl_privileges`] and its kin, in
    /// the order `ALL` has always been expanded in.
    fn acl_privilege_list(self, server_version_num: u32) -> &'static [Privilege] {
        use Privilege::*;
        match self {
            ObjectClass::Database => &[Create, Connect, Temporary],
            ObjectClass::Schema => &[Usage, Create],
            ObjectClass::Table if server_version_num >= 170_000 => {
                &[Select, Insert, Update, Delete, Truncate, References, Trigger, Maintain]
            }
            ObjectClass::Table => &[Select, Insert, Update, Delete, Truncate, References, Trigger],
            ObjectClass::Sequence => &[Usage, Select, Update],
            ObjectClass::Column => &[Select, Insert, Update, References],
            ObjectClass::Function => &[Execute],
            ObjectClass::Role => &[],
        }
    }
}

/// An object a privilege applies to, by class and name.
///
/// A function is named by three fields as the catalog holds them: schema,
/// name (`proname`) and argument types (`oidvectortypes(proargtypes)`, read
/// with `search_path` pinned to `pg_catalog`, so every other type is
/// schema-qualified). They are never glued into one string and split again:
/// a function named `f(app."(" ), pg_catalog.lo_export(oid, text), app.g `
/// once turned one GRANT into three.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    /// What kind of object.
    pub class: ObjectClass,
    /// Schema for schema-qualified objects (tables, sequences, columns, functions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Name>,
    /// Object name (a function's name alone, without its arguments).
    pub name: Name,
    /// Column, for column privileges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<Name>,
    /// A function's argument types as `oidvectortypes` prints them (`integer, text`).
    #[serde(default, rename = "arguments", skip_serializing_if = "Option::is_none")]
    pub args: Option<Name>,
}

impl ObjectRef {
    /// The target database.
    pub fn database(name: &str) -> Self {
        Self { class: ObjectClass::Database, schema: None, name: name.into(), column: None, args: None }
    }
    /// A schema.
    pub fn schema(name: &str) -> Self {
        Self { class: ObjectClass::Schema, schema: None, name: name.into(), column: None, args: None }
    }
    /// A schema-qualified relation of `class` (a function is [`ObjectRef::function`]).
    pub fn in_schema(class: ObjectClass, schema: &str, name: &str) -> Self {
        Self { class, schema: Some(schema.into()), name: name.into(), column: None, args: None }
    }
    /// A function (procedure, aggregate) by schema, name and argument types.
    pub fn function(schema: &str, name: &str, args: &str) -> Self {
        Self {
            class: ObjectClass::Function,
            schema: Some(schema.into()),
            name: name.into(),
            column: None,
            args: Some(args.into()),
        }
    }
    /// A column of a table-like relation.
    pub fn column(schema: &str, table: &str, column: &str) -> Self {
        Self {
            class: ObjectClass::Column,
            schema: Some(schema.into()),
            name: table.into(),
            column: Some(column.into()),
            args: None,
        }
    }
    /// A role, as the object of membership or attributes.
    pub fn role(name: &RoleName) -> Self {
        Self { class: ObjectClass::Role, schema: None, name: name.0.clone(), column: None, args: None }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(schema) = &self.schema {
            write!(f, "{}.", display_ident(schema))?;
        }
        f.write_str(&display_ident(&self.name))?;
        if self.class == ObjectClass::Function {
            write!(f, "({})", self.args.as_deref().unwrap_or_default())?;
        }
        if let Some(column) = &self.column {
            write!(f, ".{}", display_ident(column))?;
        }
        Ok(())
    }
}

/// Shows an identifier bare when PostgreSQL would read it back unchanged, double-quoted otherwise.
pub fn display_ident(name: &str) -> String {
    let plain = !name.is_empty()
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if plain { name.to_owned() } else { format!("\"{}\"", name.replace('"', "\"\"")) }
}

/// One privilege held by one grantee on one object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Grant {
    /// The object.
    pub object: ObjectRef,
    /// Who holds it.
    pub grantee: Grantee,
    /// What they may do.
    pub privilege: Privilege,
    /// WITH GRANT OPTION: the grantee may pass it on.
    pub grantable: bool,
}

impl Grant {
    /// Whether this is one of PostgreSQL's built-in grants to PUBLIC (`acldefault`) on
    /// the classes we read: CONNECT and TEMPORARY on a database, EXECUTE on a function.
    pub fn is_builtin_public(&self) -> bool {
        is_builtin_public(&self.grantee, self.object.class, self.privilege)
    }
}

/// Role attributes as `pg_roles` shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleAttributes {
    /// SUPERUSER.
    pub superuser: bool,
    /// INHERIT (privileges of granted roles apply without SET ROLE).
    pub inherit: bool,
    /// CREATEROLE.
    pub createrole: bool,
    /// CREATEDB.
    pub createdb: bool,
    /// LOGIN.
    pub login: bool,
    /// REPLICATION.
    pub replication: bool,
    /// BYPASSRLS.
    pub bypassrls: bool,
    /// CONNECTION LIMIT (-1: none).
    pub connection_limit: i32,
    /// VALID UNTIL; `None` for never ('infinity' reads as `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<chrono::DateTime<chrono::Utc>>,
}

/// What `CREATE ROLE name` gives: NOLOGIN, INHERIT, no limit, no expiry.
impl Default for RoleAttributes {
    fn default() -> Self {
        Self {
            superuser: false,
            inherit: true,
            createrole: false,
            createdb: false,
            login: false,
            replication: false,
            bypassrls: false,
            connection_limit: -1,
            valid_until: None,
        }
    }
}

impl RoleAttributes {
    /// The boolean attributes that grant power, with their privilege names.
    pub fn flags(&self) -> [(Privilege, bool); 6] {
        [
            (Privilege::Superuser, self.superuser),
            (Privilege::CreateRole, self.createrole),
            (Privilege::CreateDb, self.createdb),
            (Privilege::Login, self.login),
            (Privilege::Replication, self.replication),
            (Privilege::BypassRls, self.bypassrls),
        ]
    }
}

/// `member` is a member of `role`, with the options of that membership.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Membership {
    /// The role granted.
    pub role: RoleName,
    /// The role that received it.
    pub member: RoleName,
    /// WITH ADMIN OPTION.
    pub admin: bool,
    /// Privileges apply without SET ROLE (PostgreSQL 16 option; before 16, the member's INHERIT).
    pub inherit: bool,
    /// SET ROLE is allowed (PostgreSQL 16 option; always true before 16).
    pub set: bool,
}

/// Kinds of object that default privileges apply to (`pg_default_acl.defaclobjtype`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultObjectType {
    /// `r`: tables and views.
    Tables,
    /// `S`: sequences.
    Sequences,
    /// `f`: functions and procedures.
    Functions,
    /// `T`: types and domains.
    Types,
    /// `n`: schemas.
    Schemas,
}

impl DefaultObjectType {
    /// Reads `pg_default_acl.defaclobjtype`.
    pub fn from_catalog(code: &str) -> Option<Self> {
        Some(match code {
            "r" => Self::Tables,
            "S" => Self::Sequences,
            "f" => Self::Functions,
            "T" => Self::Types,
            "n" => Self::Schemas,
            _ => return None,
        })
    }

    /// From the keyword without `default_` (as a finding's object name has it), e.g. `tables`.
    pub fn from_keyword(word: &str) -> Option<Self> {
        [Self::Tables, Self::Sequences, Self::Functions, Self::Types, Self::Schemas]
            .into_iter()
            .find(|t| t.baseline_keyword().trim_start_matches("default_") == word)
    }

    /// The SQL keyword of `ALTER DEFAULT PRIVILEGES ... ON <keyword>`.
    pub fn sql_keyword(self) -> &'static str {
        match self {
            Self::Tables => "TABLES",
            Self::Sequences => "SEQUENCES",
            Self::Functions => "FUNCTIONS",
            Self::Types => "TYPES",
            Self::Schemas => "SCHEMAS",
        }
    }

    /// The baseline keyword, e.g. `default_tables`.
    pub fn baseline_keyword(self) -> &'static str {
        match self {
            Self::Tables => "default_tables",
            Self::Sequences => "default_sequences",
            Self::Functions => "default_functions",
            Self::Types => "default_types",
            Self::Schemas => "default_schemas",
        }
    }

    /// Privileges that can be defaulted for this type.
    pub fn acl_privileges(self, server_version_num: u32) -> Vec<Privilege> {
        match self {
            Self::Tables => ObjectClass::Table.acl_privileges(server_version_num),
            Self::Sequences => ObjectClass::Sequence.acl_privileges(server_version_num),
            Self::Functions => vec![Privilege::Execute],
            Self::Types => vec![Privilege::Usage],
            Self::Schemas => ObjectClass::Schema.acl_privileges(server_version_num),
        }
    }
}

/// One entry of `ALTER DEFAULT PRIVILEGES`: objects `for_role` creates (in
/// `schema`, or anywhere) get `privilege` for `grantee`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DefaultPrivilege {
    /// The creating role the defaults apply to.
    pub for_role: RoleName,
    /// The schema, or `None` for the role's global defaults (which replace the built-in ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Object type.
    pub on: DefaultObjectType,
    /// Who receives the privilege.
    pub grantee: Grantee,
    /// The privilege.
    pub privilege: Privilege,
    /// WITH GRANT OPTION.
    pub grantable: bool,
}

impl DefaultPrivilege {
    /// Whether this restates a built-in default for PUBLIC (EXECUTE on functions, USAGE
    /// on types) in a role's global defaults, which list them once the role has any entry.
    pub fn is_builtin_public(&self) -> bool {
        self.grantee == Grantee::Public
            && self.schema.is_none()
            && matches!(
                (self.on, self.privilege),
                (DefaultObjectType::Functions, Privilege::Execute) | (DefaultObjectType::Types, Privilege::Usage)
            )
    }

    /// Whether the grantee is the creating role itself (its own privileges on what it creates).
    pub fn is_creators_own(&self) -> bool {
        self.grantee.role() == Some(&self.for_role)
    }
}

/// The kind of a table-like relation (`pg_class.relkind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelationKind {
    /// `r`
    Table,
    /// `p`
    PartitionedTable,
    /// `v`
    View,
    /// `m`
    MaterializedView,
    /// `f`
    ForeignTable,
    /// `S`
    Sequence,
}

impl RelationKind {
    /// Reads `pg_class.relkind`.
    pub fn from_catalog(code: &str) -> Option<Self> {
        Some(match code {
            "r" => Self::Table,
            "p" => Self::PartitionedTable,
            "v" => Self::View,
            "m" => Self::MaterializedView,
            "f" => Self::ForeignTable,
            "S" => Self::Sequence,
            _ => return None,
        })
    }

    /// The object class used to compare grants on it.
    pub fn class(self) -> ObjectClass {
        if self == Self::Sequence { ObjectClass::Sequence } else { ObjectClass::Table }
    }

    /// The contract's object type name.
    pub fn type_name(self) -> &'static str {
        match self {
            Self::Table => "table",
            Self::PartitionedTable => "partitioned_table",
            Self::View => "view",
            Self::MaterializedView => "materialized_view",
            Self::ForeignTable => "foreign_table",
            Self::Sequence => "sequence",
        }
    }
}

/// A table-like relation or sequence, with its owner and row-level security flags.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Relation {
    /// Schema.
    pub schema: String,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: RelationKind,
    /// Owner.
    pub owner: RoleName,
    /// ROW LEVEL SECURITY enabled.
    pub rls_enabled: bool,
    /// FORCE ROW LEVEL SECURITY (applies to the owner too).
    pub rls_forced: bool,
}

/// A function, procedure, aggregate or window function.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Function {
    /// Schema.
    pub schema: String,
    /// Name (`proname`).
    pub name: String,
    /// Argument types (`oidvectortypes`): with schema and name, the identity
    /// PostgreSQL resolves it by.
    pub arguments: String,
    /// `function`, `procedure`, `aggregate` or `window`.
    pub kind: String,
    /// Owner.
    pub owner: RoleName,
}

impl Function {
    /// The function as an object of grants.
    pub fn object(&self) -> ObjectRef {
        ObjectRef::function(&self.schema, &self.name, &self.arguments)
    }
}

/// A row-level security policy (`pg_policy`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RlsPolicy {
    /// Schema of the table.
    pub schema: String,
    /// The table.
    pub table: String,
    /// Policy name.
    pub name: String,
    /// ALL, SELECT, INSERT, UPDATE or DELETE.
    pub command: String,
    /// PERMISSIVE (true) or RESTRICTIVE.
    pub permissive: bool,
    /// Roles the policy applies to (PUBLIC for all).
    pub roles: Vec<Grantee>,
    /// USING expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub using: Option<String>,
    /// WITH CHECK expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_check: Option<String>,
}

/// Whether `privilege` on an object of `class` held by `grantee` is one of
/// PostgreSQL's built-in grants to PUBLIC (`acldefault`) on the classes we
/// read: CONNECT and TEMPORARY on a database, EXECUTE on a function.
pub fn is_builtin_public(grantee: &Grantee, class: ObjectClass, privilege: Privilege) -> bool {
    *grantee == Grantee::Public
        && matches!(
            (class, privilege),
            (ObjectClass::Database, Privilege::Connect | Privilege::Temporary)
                | (ObjectClass::Function, Privilege::Execute)
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privilege_keywords_round_trip() {
        for (p, k) in ALL_PRIVILEGES {
            assert_eq!(k.parse::<Privilege>().unwrap(), *p);
            assert_eq!(p.keyword(), *k);
        }
        assert_eq!("temp".parse::<Privilege>().unwrap(), Privilege::Temporary);
        assert_eq!("SELEC".parse::<Privilege>(), Err(UnknownPrivilege("SELEC".into())));
    }

    #[test]
    fn privilege_table_is_in_declaration_order() {
        for (i, (p, _)) in ALL_PRIVILEGES.iter().enumerate() {
            assert_eq!(*p as usize, i, "{p:?}");
        }
        assert!(ALL_PRIVILEGES.len() <= 32, "a PrivilegeSet holds 32 bits");
    }

    proptest::proptest! {
        #[test]
        fn a_privilege_set_iterates_what_it_holds_in_order(picks in proptest::collection::vec(0usize..24, 0..10)) {
            let mut wanted: Vec<Privilege> = picks.iter().map(|&i| ALL_PRIVILEGES[i].0).collect();
            let set: PrivilegeSet = wanted.iter().copied().collect();
            wanted.sort();
            wanted.dedup();
            proptest::prop_assert_eq!(set.iter().collect::<Vec<_>>(), wanted.clone());
            proptest::prop_assert_eq!(set.len(), wanted.len());
            for p in wanted {
                proptest::prop_assert!(set.contains(p));
                let mut without = set;
                without.remove(p);
                proptest::prop_assert!(!without.contains(p));
                proptest::prop_assert_eq!(set.minus(PrivilegeSet::of(p)), without);
            }
        }
    }

    const CLASSES: [ObjectClass; 7] = [
        ObjectClass::Database,
        ObjectClass::Schema,
        ObjectClass::Table,
        ObjectClass::Sequence,
        ObjectClass::Column,
        ObjectClass::Function,
        ObjectClass::Role,
    ];

    #[test]
    fn acl_privileges_are_the_first_block() {
        for (p, _) in ALL_PRIVILEGES {
            let in_some_class = CLASSES.iter().any(|c| c.accepts(*p));
            assert_eq!(p.is_acl(), in_some_class, "{p}");
        }
    }

    #[test]
    fn a_class_accepts_what_all_expands_to_on_the_newest_server() {
        for class in CLASSES {
            for (p, _) in ALL_PRIVILEGES {
                assert_eq!(class.accepts(*p), class.acl_privileges(u32::MAX).contains(p), "{class:?} {p}");
            }
            for version in [160_000, 170_000] {
                let set: PrivilegeSet = class.acl_privileges(version).into_iter().collect();
                assert_eq!(class.acl_privilege_set(version), set, "{class:?} {version}");
            }
        }
    }

    #[test]
    fn an_account_reads_back_as_written_and_nothing_else_reads_as_one() {
        for (user, host) in
            [("app", "10.0.%"), ("", "localhost"), ("reporting", ""), ("o'k\\@x", "h'@'"), ("a\0b", "%")]
        {
            let account = AccountGrantee::new(user, host);
            assert_eq!(AccountGrantee::parse(account.as_str()), Some(account.clone()));
            let json = serde_json::to_string(&Grantee::Account(account.clone())).unwrap();
            assert_eq!(serde_json::from_str::<Grantee>(&json).unwrap(), Grantee::Account(account));
        }
        assert_eq!(AccountGrantee::new("o'k", "%").as_str(), "'o''k'@'%'");
        for text in ["app", "'app'", "'app'@", "'app'@'%'x", "app@'%'", "'a\\q'@'%'", "'app'@'%"] {
            assert_eq!(AccountGrantee::parse(text), None, "{text}");
            assert!(!matches!(serde_json::from_value::<Grantee>(text.into()), Ok(Grantee::Account(_))), "{text}");
        }
    }

    #[test]
    fn role_names_keep_hostile_characters() {
        let r = RoleName::new("we\"ird role ✓").unwrap();
        assert_eq!(r.as_str(), "we\"ird role ✓");
        assert!(RoleName::new("").is_err());
        assert!(RoleName::new("a".repeat(64)).is_err());
        assert!(RoleName::new("a\0b").is_err());
    }

    #[test]
    fn identifiers_are_quoted_only_when_needed() {
        assert_eq!(display_ident("orders"), "orders");
        assert_eq!(display_ident("Orders"), "\"Orders\"");
        assert_eq!(display_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(display_ident("line items"), "\"line items\"");
    }
}
