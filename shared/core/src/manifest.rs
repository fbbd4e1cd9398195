//! The baseline file as written (contract: docs/CONTRACTS.md#baseline): the
//! YAML format, read by serde into [`Manifest`] (through
//! `serde_path_to_error`, so a type error names its path, such as
//! `roles.app_rw.grants[1].privileges[0]`) and written back by `generate`.
//! What serde cannot check, and the typed model the diff reads, is
//! `crate::baseline`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use globset::{Glob, GlobMatcher};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use std::fmt;

use crate::model::{DefaultObjectType, Privilege, RoleName};
use crate::yaml::{FileError, parse_yaml};

/// The manifest version this code reads.
pub const MANIFEST_VERSION: u32 = 1;

/// The baseline file as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Format version; must be 1.
    #[schemars(extend("const" = 1))]
    pub version: u32,
    /// Declared roles, by name (an empty `roles:` means none).
    #[schemars(with = "Option<BTreeMap<String, RoleSpec>>")]
    #[serde(default, deserialize_with = "null_is_default", skip_serializing_if = "BTreeMap::is_empty")]
    pub roles: BTreeMap<String, RoleSpec>,
    /// What PUBLIC may hold beyond PostgreSQL's built-in defaults.
    #[serde(default, skip_serializing_if = "PublicSpec::is_empty")]
    pub public: PublicSpec,
    /// Globs of roles to leave alone; `!pattern` re-includes (last match wins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_roles: Vec<String>,
}

/// Reads an empty (null) YAML value as the type's default.
fn null_is_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

/// Writes a list in YAML's flow style (`[a, b]`); other formats see a plain list.
pub(crate) fn flow_seq<S: Serializer, T: Serialize>(list: &[T], s: S) -> Result<S::Ok, S::Error> {
    serde_saphyr::FlowSeq(list).serialize(s)
}

/// Writes each entry of a list in flow style, a line each, as the examples
/// are written: `- { privileges: [USAGE], on: schema, name: orders }`. A
/// generated baseline of a large catalog stays a fraction of the size (and
/// of the parsing) it takes in block style.
pub(crate) fn flow_maps<S: Serializer, T: Serialize>(list: &[T], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(list.iter().map(serde_saphyr::FlowMap))
}

/// A declared role.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleSpec {
    /// LOGIN.
    #[serde(default, skip_serializing_if = "is_false")]
    pub login: bool,
    /// SUPERUSER.
    #[serde(default, skip_serializing_if = "is_false")]
    pub superuser: bool,
    /// CREATEROLE.
    #[serde(default, skip_serializing_if = "is_false")]
    pub createrole: bool,
    /// CREATEDB.
    #[serde(default, skip_serializing_if = "is_false")]
    pub createdb: bool,
    /// REPLICATION.
    #[serde(default, skip_serializing_if = "is_false")]
    pub replication: bool,
    /// BYPASSRLS.
    #[serde(default, skip_serializing_if = "is_false")]
    pub bypassrls: bool,
    /// VALID UNTIL; checked only when given.
    #[schemars(schema_with = "crate::schema_format::timestamp")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<DateTime<Utc>>,
    /// Roles this role is a member of.
    #[serde(default, skip_serializing_if = "Vec::is_empty", serialize_with = "flow_seq")]
    pub member_of: Vec<MemberOf>,
    /// Objects this role must own.
    #[serde(default, skip_serializing_if = "Vec::is_empty", serialize_with = "flow_maps")]
    pub owns: Vec<OwnsSpec>,
    /// Privileges this role must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty", serialize_with = "flow_maps")]
    pub grants: Vec<GrantSpec>,
}

/// A membership: either a bare role name or `{ role, admin, inherit, set }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberOf {
    /// The role to be a member of.
    pub role: String,
    /// WITH ADMIN OPTION (default false).
    pub admin: bool,
    /// INHERIT option (default true).
    pub inherit: bool,
    /// SET option (default true).
    pub set: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberOfMap {
    role: String,
    #[serde(default)]
    admin: bool,
    #[serde(default = "yes")]
    inherit: bool,
    #[serde(default = "yes")]
    set: bool,
}

fn yes() -> bool {
    true
}

impl<'de> Deserialize<'de> for MemberOf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MemberOf;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a role name or a map { role, admin, inherit, set }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MemberOf, E> {
                Ok(MemberOf { role: v.to_owned(), admin: false, inherit: true, set: true })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<MemberOf, A::Error> {
                let m = MemberOfMap::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(MemberOf { role: m.role, admin: m.admin, inherit: m.inherit, set: m.set })
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for MemberOf {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if !self.admin && self.inherit && self.set {
            return s.serialize_str(&self.role);
        }
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("role", &self.role)?;
        if self.admin {
            m.serialize_entry("admin", &true)?;
        }
        if !self.inherit {
            m.serialize_entry("inherit", &false)?;
        }
        if !self.set {
            m.serialize_entry("set", &false)?;
        }
        m.end()
    }
}

/// What a grant or ownership entry applies to (`on:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum On {
    /// The target database (`name` optional).
    Database,
    /// A schema (`name`).
    Schema,
    /// A table, view, materialized view, foreign or partitioned table (`name: schema.table`).
    Table,
    /// A sequence (`name: schema.sequence`).
    Sequence,
    /// Columns of a table (`name: schema.table`, `columns`).
    Column,
    /// A function (`name: schema.fn(argtypes)`).
    Function,
    /// Every table-like relation in `schema`, including ones created after the baseline.
    AllTablesInSchema,
    /// Every sequence in `schema`.
    AllSequencesInSchema,
    /// Every function in `schema`.
    AllFunctionsInSchema,
    /// Default privileges on tables created by `for_role` (in `schema`, or anywhere).
    DefaultTables,
    /// Default privileges on sequences.
    DefaultSequences,
    /// Default privileges on functions.
    DefaultFunctions,
    /// Default privileges on types.
    DefaultTypes,
    /// Default privileges on schemas.
    DefaultSchemas,
}

impl On {
    /// The `on:` keyword as written in YAML, e.g. `all_tables_in_schema`.
    pub fn keyword(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }

    pub(crate) fn default_type(self) -> Option<DefaultObjectType> {
        Some(match self {
            On::DefaultTables => DefaultObjectType::Tables,
            On::DefaultSequences => DefaultObjectType::Sequences,
            On::DefaultFunctions => DefaultObjectType::Functions,
            On::DefaultTypes => DefaultObjectType::Types,
            On::DefaultSchemas => DefaultObjectType::Schemas,
            _ => return None,
        })
    }

    /// The `on:` keyword for a default object type.
    pub fn for_default(t: DefaultObjectType) -> On {
        match t {
            DefaultObjectType::Tables => On::DefaultTables,
            DefaultObjectType::Sequences => On::DefaultSequences,
            DefaultObjectType::Functions => On::DefaultFunctions,
            DefaultObjectType::Types => On::DefaultTypes,
            DefaultObjectType::Schemas => On::DefaultSchemas,
        }
    }
}

/// A privilege in a baseline: a named ACL privilege or `ALL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivilegeSpec {
    /// `ALL [PRIVILEGES]`: whatever the object class accepts on the server's version.
    All,
    /// One ACL privilege.
    One(Privilege),
}

impl<'de> Deserialize<'de> for PrivilegeSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let upper = s.trim().to_ascii_uppercase();
        if upper == "ALL" || upper == "ALL PRIVILEGES" {
            return Ok(PrivilegeSpec::All);
        }
        let p: Privilege = s.parse().map_err(de::Error::custom)?;
        if !p.is_acl() {
            return Err(de::Error::custom(format!(
                "{p} is not a grantable privilege (role attributes are keys of the role, memberships go in member_of, owners in owns)"
            )));
        }
        Ok(PrivilegeSpec::One(p))
    }
}

impl Serialize for PrivilegeSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PrivilegeSpec::All => s.serialize_str("ALL"),
            PrivilegeSpec::One(p) => p.serialize(s),
        }
    }
}

/// One `grants:` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantSpec {
    /// Privileges granted.
    #[serde(serialize_with = "flow_seq")]
    pub privileges: Vec<PrivilegeSpec>,
    /// Object class.
    pub on: On,
    /// Object name (`schema.name` for schema-qualified objects unless `schema` is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Several objects holding the same privileges, each written as `name` would be
    /// (for on: schema, table, sequence, function, or column with the same
    /// `columns` of each table; instead of `name`).
    #[serde(default, skip_serializing_if = "Vec::is_empty", serialize_with = "flow_seq")]
    pub names: Vec<String>,
    /// Schema, for `all_*_in_schema`, `default_*` or to qualify `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Columns, for `on: column`.
    #[serde(default, skip_serializing_if = "Vec::is_empty", serialize_with = "flow_seq")]
    pub columns: Vec<String>,
    /// For `default_*`: the role whose new objects get the privileges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_role: Option<String>,
    /// WITH GRANT OPTION.
    #[serde(default, skip_serializing_if = "is_false")]
    pub with_grant_option: bool,
}

/// One `owns:` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnsSpec {
    /// database, schema, table, sequence, function or all_*_in_schema.
    pub on: On,
    /// Object name, as in grants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Schema, for all_*_in_schema or to qualify `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
}

/// Whether PUBLIC keeps PostgreSQL's built-in defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BuiltinDefaults {
    /// CONNECT and TEMPORARY on the database and EXECUTE on functions are shown, not scored.
    #[default]
    Keep,
    /// They must be revoked: holding one is unauthorized.
    Revoke,
}

/// The `public:` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublicSpec {
    /// Grants PUBLIC may hold beyond the built-in defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty", serialize_with = "flow_maps")]
    pub grants: Vec<GrantSpec>,
    /// keep (default) or revoke.
    #[serde(default, skip_serializing_if = "is_keep")]
    pub builtin_defaults: BuiltinDefaults,
}

fn is_keep(b: &BuiltinDefaults) -> bool {
    *b == BuiltinDefaults::Keep
}

impl PublicSpec {
    fn is_empty(&self) -> bool {
        self.grants.is_empty() && self.builtin_defaults == BuiltinDefaults::Keep
    }
}

/// Roles to leave out of the diff: ordered globs, `!glob` re-includes, last match wins.
#[derive(Debug, Clone, Default)]
pub struct RoleFilter {
    patterns: Vec<(bool, GlobMatcher)>,
    sources: Vec<String>,
}

impl RoleFilter {
    /// Compiles the patterns; the error names the index of the bad one.
    pub fn new(patterns: &[String]) -> Result<Self, (usize, String)> {
        let mut out = Vec::with_capacity(patterns.len());
        for (i, p) in patterns.iter().enumerate() {
            let (negate, glob) = match p.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, p.as_str()),
            };
            let m = Glob::new(glob).map_err(|e| (i, format!("invalid glob {p:?}: {}", e.kind())))?.compile_matcher();
            out.push((negate, m));
        }
        Ok(Self { patterns: out, sources: patterns.to_vec() })
    }

    /// Whether the role is ignored.
    pub fn ignores(&self, role: &RoleName) -> bool {
        self.ignores_name(role.as_str())
    }

    /// Whether a name is ignored (a MySQL account's as `user@host`).
    pub fn ignores_name(&self, name: &str) -> bool {
        let mut ignored = false;
        for (negate, m) in &self.patterns {
            if m.is_match(name) {
                ignored = !negate;
            }
        }
        ignored
    }

    /// The patterns as written.
    pub fn patterns(&self) -> &[String] {
        &self.sources
    }
}

/// Reads the YAML into a [`Manifest`], with file, path and line in any error.
pub fn parse_manifest(text: &str, file: &str) -> Result<Manifest, FileError> {
    parse_yaml(text, file)
}
