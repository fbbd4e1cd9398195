//! JSON Schemas of the YAML files people write by hand: the baseline
//! manifest (PostgreSQL's, and MySQL's and MariaDB's), the policy registry
//! and the scoring config (their contracts are in docs/CONTRACTS.md).
//!
//! Each schema is generated from the types that file is deserialized into,
//! so it follows the parser: serde's attributes (`rename`, `default`,
//! `deny_unknown_fields`) carry over and doc comments become descriptions.
//! The few types whose `Deserialize` is written by hand get their
//! `JsonSchema` here, beside the functions that spell what their parser
//! accepts (cli/tests/schema.rs holds the schemas and the loaders to the
//! same samples). `grantwarden schema <kind>` prints a schema; copies are
//! checked in under docs/schemas/ for editors (`# yaml-language-server:
//! $schema=...` on a file's first line).
//!
//! A schema says what the parser reads; it lets through some files that
//! loading then refuses with the file and path in the error (a table name
//! that is not schema-qualified, a privilege the object cannot hold, a route
//! to a category nobody defined, a warn score above the alert score), since
//! those rules span fields or files. The other way round, the parser also
//! converts a quoted number or boolean (`'1'`, `'true'`) and reads a number
//! where text goes (`version: 2.1`); the schema asks for the plain spelling,
//! as an editor's YAML 1.2 reads it.
//!
//! Draft 7: the draft that editors' YAML language servers read best.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use crate::manifest::{Manifest, MemberOf, PrivilegeSpec};
use crate::model::{ObjectClass, PrivilegeSet};
use crate::policy::RegistryFile;
use crate::scoring::ScoringConfig;

/// A hand-written YAML input that has a schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SchemaKind {
    /// The baseline manifest (`plan --baseline`).
    Baseline,
    /// A policy registry file (`--policy`; one file or each file of a directory).
    Policy,
    /// The scoring config (`plan --scoring`).
    Scoring,
    /// The MySQL and MariaDB baseline (`plan --baseline` of a `mysql://` or `mariadb://` target).
    MysqlBaseline,
}

impl SchemaKind {
    /// Every kind, in the order the CLI lists them.
    pub const ALL: [SchemaKind; 4] =
        [SchemaKind::Baseline, SchemaKind::Policy, SchemaKind::Scoring, SchemaKind::MysqlBaseline];

    /// The kind's name, as `grantwarden schema <name>` takes it.
    pub fn name(self) -> &'static str {
        match self {
            SchemaKind::Baseline => "baseline",
            SchemaKind::Policy => "policy",
            SchemaKind::Scoring => "scoring",
            SchemaKind::MysqlBaseline => "mysql-baseline",
        }
    }

    /// The schema's file name in docs/schemas/, e.g. `baseline.schema.json`.
    pub fn file_name(self) -> String {
        format!("{}.schema.json", self.name())
    }

    fn title(self) -> &'static str {
        match self {
            SchemaKind::Baseline => "grantwarden baseline manifest",
            SchemaKind::Policy => "grantwarden policy registry file",
            SchemaKind::Scoring => "grantwarden scoring config",
            SchemaKind::MysqlBaseline => "grantwarden MySQL and MariaDB baseline",
        }
    }

    fn description(self) -> &'static str {
        match self {
            SchemaKind::Baseline => {
                "The desired privilege state of one database: declared roles with their attributes, memberships, \
                 owned objects and grants, what PUBLIC may hold, and roles to leave alone. \
                 Example: infra/baseline.example.yaml."
            }
            SchemaKind::Policy => {
                "A policy registry, or one file of a registry directory: exactly one file carries the header \
                 (version, owner, approver, change_history); categories are merged and routes concatenated in \
                 file-name order. Example: infra/policy.example.yaml."
            }
            SchemaKind::Scoring => {
                "Weights and thresholds of finding scores and report status; omitted keys keep the built-in \
                 defaults (infra/scoring.yaml)."
            }
            SchemaKind::MysqlBaseline => {
                "The desired privilege state of one MySQL 8 or MariaDB server: its engine, the accounts and roles \
                 with their roles, proxies and grants by level, and accounts to leave alone. \
                 Example: infra/mysql-baseline.example.yaml."
            }
        }
    }
}

impl fmt::Display for SchemaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is no [`SchemaKind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown schema kind {0:?}: expected baseline, policy, scoring or mysql-baseline")]
pub struct UnknownSchemaKind(pub String);

impl FromStr for SchemaKind {
    type Err = UnknownSchemaKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SchemaKind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| UnknownSchemaKind(s.to_owned()))
    }
}

/// The JSON Schema (draft 7) of a kind of file, with its title and description.
pub fn for_kind(kind: SchemaKind) -> serde_json::Value {
    let generator = SchemaSettings::draft07().into_generator();
    let mut schema = match kind {
        SchemaKind::Baseline => generator.into_root_schema_for::<Manifest>(),
        SchemaKind::Policy => generator.into_root_schema_for::<RegistryFile>(),
        SchemaKind::Scoring => generator.into_root_schema_for::<ScoringConfig>(),
        SchemaKind::MysqlBaseline => generator.into_root_schema_for::<crate::mysql_baseline::Manifest>(),
    };
    schema.insert("title".into(), kind.title().into());
    schema.insert("description".into(), kind.description().into());
    schema.to_value()
}

/// The privileges a grant can name, in [`crate::model::Privilege`] order:
/// every privilege some object class accepts.
fn acl_keywords() -> Vec<&'static str> {
    let classes = [
        ObjectClass::Database,
        ObjectClass::Schema,
        ObjectClass::Table,
        ObjectClass::Sequence,
        ObjectClass::Column,
        ObjectClass::Function,
    ];
    let set: PrivilegeSet = classes.into_iter().flat_map(|c| c.acl_privileges(u32::MAX)).collect();
    set.iter().map(|p| p.keyword()).collect()
}

/// A regular expression (ECMA 262, as JSON Schema's `pattern`) matching any
/// of `words` in any ASCII case, with white space around: what a parser that
/// trims and upper-cases accepts.
fn any_case(words: &[&str]) -> String {
    let alternatives: Vec<String> = words
        .iter()
        .map(|w| {
            w.chars()
                .map(|c| {
                    if c.is_ascii_alphabetic() {
                        format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())
                    } else {
                        c.to_string()
                    }
                })
                .collect()
        })
        .collect();
    format!(r"^\s*(?:{})\s*$", alternatives.join("|"))
}

/// [`PrivilegeSpec`]'s `Deserialize` trims, upper-cases and reads a keyword:
/// any ACL privilege, `TEMP` for `TEMPORARY`, `ALL` or `ALL PRIVILEGES`.
/// The enum lists the usual spellings for completion; the pattern accepts
/// every case the parser does.
impl JsonSchema for PrivilegeSpec {
    fn schema_name() -> Cow<'static, str> {
        "PrivilegeSpec".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let mut keywords = acl_keywords();
        keywords.push("ALL");
        let mut accepted = keywords.clone();
        accepted.extend(["TEMP", "ALL PRIVILEGES"]);
        json_schema!({
            "description": "A privilege: SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER, MAINTAIN, \
                USAGE, CREATE, CONNECT, TEMPORARY (TEMP), EXECUTE, or ALL (ALL PRIVILEGES: whatever the object \
                class accepts); any case. Role attributes are keys of the role, memberships go in member_of, \
                owners in owns.",
            "type": "string",
            "anyOf": [
                { "enum": keywords },
                { "pattern": any_case(&accepted) }
            ]
        })
    }
}

/// [`MemberOf`]'s `Deserialize` takes a bare role name or a map of the role
/// and its options (no other keys).
impl JsonSchema for MemberOf {
    fn schema_name() -> Cow<'static, str> {
        "MemberOf".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A membership: the name of the role to be a member of, or { role, admin, inherit, set } \
                to declare its options.",
            "anyOf": [
                {
                    "description": "The role to be a member of (admin false, inherit and set true).",
                    "type": "string"
                },
                {
                    "type": "object",
                    "properties": {
                        "role": { "description": "The role to be a member of.", "type": "string" },
                        "admin": { "description": "WITH ADMIN OPTION.", "type": "boolean", "default": false },
                        "inherit": { "description": "INHERIT option.", "type": "boolean", "default": true },
                        "set": { "description": "SET option (PostgreSQL 16).", "type": "boolean", "default": true }
                    },
                    "required": ["role"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Privilege;

    #[test]
    fn a_kind_reads_back_from_its_name() {
        for kind in SchemaKind::ALL {
            assert_eq!(kind.name().parse::<SchemaKind>(), Ok(kind));
        }
        assert_eq!("manifest".parse::<SchemaKind>(), Err(UnknownSchemaKind("manifest".into())));
        assert_eq!(SchemaKind::Policy.file_name(), "policy.schema.json");
    }

    #[test]
    fn the_privileges_listed_are_exactly_the_grantable_ones() {
        let listed = acl_keywords();
        // SELECT to EXECUTE are the 13 ACL privileges (`is_acl`), each listed once
        assert_eq!(listed.len(), 13, "{listed:?}");
        for keyword in &listed {
            let spec: PrivilegeSpec = serde_json::from_value(serde_json::json!(keyword)).unwrap();
            assert!(matches!(spec, PrivilegeSpec::One(p) if p.is_acl()), "{keyword} is grantable");
        }
        for other in ["SUPERUSER", "LOGIN", "MEMBER", "OWNER"] {
            assert!(other.parse::<Privilege>().is_ok() && !listed.contains(&other));
            assert!(serde_json::from_value::<PrivilegeSpec>(serde_json::json!(other)).is_err(), "{other}");
        }
    }

    #[test]
    fn each_schema_has_a_title_and_the_root_fields() {
        let fields = |kind| {
            let schema = for_kind(kind);
            assert!(schema["title"].as_str().unwrap().starts_with("grantwarden "));
            assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
            let mut keys: Vec<String> = schema["properties"].as_object().unwrap().keys().cloned().collect();
            keys.sort();
            keys
        };
        assert_eq!(fields(SchemaKind::Baseline), ["ignore_roles", "public", "roles", "version"]);
        assert_eq!(
            fields(SchemaKind::MysqlBaseline),
            ["accepted_exposures", "accounts", "engine", "ignore_accounts", "version"]
        );
        assert_eq!(
            fields(SchemaKind::Policy),
            [
                "access",
                "approver",
                "categories",
                "change_history",
                "notify",
                "owner",
                "queries",
                "routes",
                "senders",
                "version"
            ]
        );
        assert_eq!(
            fields(SchemaKind::Scoring),
            ["age", "class", "coverage", "grant_option_factor", "kind", "public_factor", "scope", "thresholds"]
        );
    }
}
