//! The plan report (output contract: docs/CONTRACTS.md#report): shared by `grantwarden plan
//! --format json` and the diff Lambda's S3 report. Human formats render this.
//!
//! A finding holds its grantee, privilege and object as types ([`Grantee`],
//! [`FindingPrivilege`], [`FindingObject`]) that serialize to the contract's
//! strings, so whoever acts on a finding (remediation, reports) reads what
//! the diff built instead of parsing its text back.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::finding::{FindingAge, FindingKind};
use crate::manifest::On;
use crate::model::{DefaultObjectType, Grantee, Name, ObjectClass, ObjectRef, Privilege, RelationKind, RoleName};
use crate::mysql::catalog::Scope as MysqlScope;
use crate::request::RequestObject;
use crate::scoring::{ScoringConfig, Severity, round2};
use crate::snapshot::{Snapshot, TargetId};

/// What a report calls an object: its class, refined (a view is a `table`
/// to GRANT and a `view` to the reader; a procedure is a `function`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectType {
    /// The target database.
    Database,
    /// A schema.
    Schema,
    /// A table.
    Table,
    /// A view.
    View,
    /// A materialized view.
    MaterializedView,
    /// A foreign table.
    ForeignTable,
    /// A partitioned table.
    PartitionedTable,
    /// A sequence.
    Sequence,
    /// One column of a table-like relation.
    Column,
    /// A function (window functions included).
    Function,
    /// A procedure.
    Procedure,
    /// An aggregate.
    Aggregate,
    /// A role (for memberships, attributes and existence).
    Role,
    /// MySQL and MariaDB: the whole server (`ON *.*`).
    Global,
    /// MySQL and MariaDB: every database a wildcard pattern matches (`ON `app\_%`.*`).
    DatabasePattern,
    /// MySQL and MariaDB: an account or role (for role grants, proxies, attributes and existence).
    Account,
    /// MySQL and MariaDB: a trigger (runs as its definer).
    Trigger,
    /// MySQL and MariaDB: a scheduled event (runs as its definer).
    Event,
    /// MariaDB: a package (Oracle mode's `CREATE PACKAGE`).
    Package,
    /// MariaDB: a package's body.
    PackageBody,
}

const OBJECT_TYPES: [(ObjectType, &str); 20] = [
    (ObjectType::Database, "database"),
    (ObjectType::Schema, "schema"),
    (ObjectType::Table, "table"),
    (ObjectType::View, "view"),
    (ObjectType::MaterializedView, "materialized_view"),
    (ObjectType::ForeignTable, "foreign_table"),
    (ObjectType::PartitionedTable, "partitioned_table"),
    (ObjectType::Sequence, "sequence"),
    (ObjectType::Column, "column"),
    (ObjectType::Function, "function"),
    (ObjectType::Procedure, "procedure"),
    (ObjectType::Aggregate, "aggregate"),
    (ObjectType::Role, "role"),
    (ObjectType::Global, "global"),
    (ObjectType::DatabasePattern, "database_pattern"),
    (ObjectType::Account, "account"),
    (ObjectType::Trigger, "trigger"),
    (ObjectType::Event, "event"),
    (ObjectType::Package, "package"),
    (ObjectType::PackageBody, "package_body"),
];

impl ObjectType {
    /// The contract spelling, e.g. `materialized_view`.
    pub fn as_str(self) -> &'static str {
        // OBJECT_TYPES is in declaration order (a unit test holds it there)
        OBJECT_TYPES[self as usize].1
    }

    /// The type spelled `word`, if any.
    pub fn from_word(word: &str) -> Option<Self> {
        OBJECT_TYPES.iter().find(|(_, w)| *w == word).map(|(t, _)| *t)
    }

    /// The class GRANT and REVOKE name it by.
    pub fn class(self) -> ObjectClass {
        match self {
            ObjectType::Database | ObjectType::Global => ObjectClass::Database,
            ObjectType::Schema | ObjectType::DatabasePattern => ObjectClass::Schema,
            ObjectType::Table
            | ObjectType::View
            | ObjectType::MaterializedView
            | ObjectType::ForeignTable
            | ObjectType::PartitionedTable
            | ObjectType::Trigger => ObjectClass::Table,
            ObjectType::Sequence => ObjectClass::Sequence,
            ObjectType::Column => ObjectClass::Column,
            ObjectType::Function
            | ObjectType::Procedure
            | ObjectType::Aggregate
            | ObjectType::Event
            | ObjectType::Package
            | ObjectType::PackageBody => ObjectClass::Function,
            ObjectType::Role | ObjectType::Account => ObjectClass::Role,
        }
    }

    /// A relation's type.
    pub fn of_relation(kind: RelationKind) -> Self {
        match kind {
            RelationKind::Table => ObjectType::Table,
            RelationKind::PartitionedTable => ObjectType::PartitionedTable,
            RelationKind::View => ObjectType::View,
            RelationKind::MaterializedView => ObjectType::MaterializedView,
            RelationKind::ForeignTable => ObjectType::ForeignTable,
            RelationKind::Sequence => ObjectType::Sequence,
        }
    }

    /// The type of `class` when nothing more is known of the object.
    pub fn of_class(class: ObjectClass) -> Self {
        match class {
            ObjectClass::Database => ObjectType::Database,
            ObjectClass::Schema => ObjectType::Schema,
            ObjectClass::Table => ObjectType::Table,
            ObjectClass::Sequence => ObjectType::Sequence,
            ObjectClass::Column => ObjectType::Column,
            ObjectClass::Function => ObjectType::Function,
            ObjectClass::Role => ObjectType::Role,
        }
    }
}

impl std::fmt::Display for ObjectType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A MySQL or MariaDB routine's type and the word its grants name it by.
const ROUTINE_TYPES: [(ObjectType, &str); 4] = [
    (ObjectType::Procedure, "PROCEDURE"),
    (ObjectType::Function, "FUNCTION"),
    (ObjectType::Package, "PACKAGE"),
    (ObjectType::PackageBody, "PACKAGE BODY"),
];

/// The object of a finding. On the wire it is the contract's
/// `{ type, schema, name, column, for_role?, arguments? }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FindingObject {
    /// An object privileges are granted on (a role, for memberships and
    /// attributes), and the type the report shows for it. Build it with
    /// [`FindingObject::of`], which keeps the two in step.
    Object {
        /// As the report shows it.
        kind: ObjectType,
        /// As GRANT and REVOKE name it: its class is `kind`'s.
        object: ObjectRef,
    },
    /// Default privileges: what `for_role` creates of type `on` (in `schema`, or anywhere).
    DefaultPrivileges {
        /// Whose new objects.
        for_role: RoleName,
        /// The schema they are limited to.
        schema: Option<String>,
        /// Which kind of object.
        on: DefaultObjectType,
    },
    /// What a request named when it is not one object (`all_tables_in_schema`,
    /// `default_tables`...): untagged input, a failed revocation.
    Requested {
        /// The request's `on`.
        on: On,
        /// Its schema.
        schema: Option<String>,
        /// Its name, empty when it had none.
        name: String,
    },
    /// Input that could not be read names no object.
    Unknown,
}

impl FindingObject {
    /// `object` shown as `kind`, its class made `kind`'s (a sequence the
    /// baseline names but which does not exist is looked up as a relation,
    /// and is still a sequence).
    pub fn of(kind: ObjectType, object: &ObjectRef) -> Self {
        FindingObject::Object { kind, object: ObjectRef { class: kind.class(), ..object.clone() } }
    }

    /// The object of a MySQL or MariaDB scope: `global *.*`, `database shop`,
    /// `database_pattern app\_%`, `table shop.orders`, `column shop.orders.total`,
    /// `procedure shop.refund`...; [`FindingObject::mysql_scope`] reads it back.
    pub fn of_mysql_scope(scope: &MysqlScope) -> Self {
        let (kind, schema, name, column) = match scope {
            MysqlScope::Global => (ObjectType::Global, None, "*.*", None),
            MysqlScope::Database { database, pattern: false } => (ObjectType::Database, None, database.as_str(), None),
            MysqlScope::Database { database, pattern: true } => {
                (ObjectType::DatabasePattern, None, database.as_str(), None)
            }
            MysqlScope::Table { database, table } => (ObjectType::Table, Some(database), table.as_str(), None),
            MysqlScope::Column { database, table, column } => {
                (ObjectType::Column, Some(database), table.as_str(), Some(column))
            }
            MysqlScope::Routine { database, name, kind } => {
                let kind = ROUTINE_TYPES.iter().find(|(_, k)| k == kind).map_or(ObjectType::Procedure, |(t, _)| *t);
                (kind, Some(database), name.as_str(), None)
            }
        };
        let object = ObjectRef {
            class: kind.class(),
            schema: schema.map(|s| Name::from(s.as_str())),
            name: name.into(),
            column: column.map(|c| Name::from(c.as_str())),
            args: None,
        };
        FindingObject::Object { kind, object }
    }

    /// The MySQL or MariaDB scope this object is ([`FindingObject::of_mysql_scope`]), if it is one.
    pub fn mysql_scope(&self) -> Option<MysqlScope> {
        let FindingObject::Object { kind, object } = self else { return None };
        let name = object.name.as_str().to_owned();
        let database = || object.schema.as_ref().map(|s| s.as_str().to_owned());
        Some(match kind {
            ObjectType::Global if name == "*.*" => MysqlScope::Global,
            ObjectType::Database => MysqlScope::Database { database: name, pattern: false },
            ObjectType::DatabasePattern => MysqlScope::Database { database: name, pattern: true },
            ObjectType::Table => MysqlScope::Table { database: database()?, table: name },
            ObjectType::Column => MysqlScope::Column {
                database: database()?,
                table: name,
                column: object.column.as_ref()?.as_str().to_owned(),
            },
            routine => {
                let (_, kind) = ROUTINE_TYPES.iter().find(|(t, _)| t == routine)?;
                MysqlScope::Routine { database: database()?, name, kind: (*kind).to_owned() }
            }
        })
    }

    /// The object of a request (or a ticket's), as its `on` names it.
    pub fn requested(r: &RequestObject) -> Self {
        let name = r.name.clone().unwrap_or_default();
        let kind = match r.on {
            On::Database => ObjectType::Database,
            On::Schema => ObjectType::Schema,
            On::Table => ObjectType::Table,
            On::Sequence => ObjectType::Sequence,
            On::Column => ObjectType::Column,
            On::Function => ObjectType::Function,
            on => return FindingObject::Requested { on, schema: r.schema.clone(), name },
        };
        let object = ObjectRef {
            class: kind.class(),
            schema: r.schema.as_deref().map(Name::from),
            name: name.into(),
            column: None,
            args: None,
        };
        FindingObject::Object { kind, object }
    }

    /// The contract's `type`, e.g. `view`, `default_privileges`, `all_tables_in_schema`.
    pub fn type_name(&self) -> std::borrow::Cow<'static, str> {
        match self {
            FindingObject::Object { kind, .. } => kind.as_str().into(),
            FindingObject::DefaultPrivileges { .. } => "default_privileges".into(),
            FindingObject::Requested { on, .. } => on.keyword().into(),
            FindingObject::Unknown => "unknown".into(),
        }
    }

    /// The schema, for schema-qualified objects.
    pub fn schema(&self) -> Option<&str> {
        match self {
            FindingObject::Object { object, .. } => object.schema.as_deref(),
            FindingObject::DefaultPrivileges { schema, .. } | FindingObject::Requested { schema, .. } => {
                schema.as_deref()
            }
            FindingObject::Unknown => None,
        }
    }

    /// The name: a function's alone; the object type for default privileges (`tables`).
    pub fn name(&self) -> &str {
        match self {
            FindingObject::Object { object, .. } => &object.name,
            FindingObject::DefaultPrivileges { on, .. } => default_word(*on),
            FindingObject::Requested { name, .. } => name,
            FindingObject::Unknown => "",
        }
    }

    /// The role a role object is (memberships and attributes are on one).
    pub fn role(&self) -> Option<RoleName> {
        match self {
            // its name came from a role's (and is checked again when read): this never fails for a role object
            FindingObject::Object { kind: ObjectType::Role, object } => RoleName::new(object.name.as_str()).ok(),
            _ => None,
        }
    }

    /// The column, for column privileges.
    pub fn column(&self) -> Option<&str> {
        match self {
            FindingObject::Object { object, .. } => object.column.as_deref(),
            _ => None,
        }
    }

    /// As the contract has it.
    fn wire(&self) -> ObjectWire<'_> {
        let (kind, for_role, arguments) = match self {
            FindingObject::Object { kind, object } => (kind.as_str().into(), None, object.args.as_deref()),
            FindingObject::DefaultPrivileges { for_role, .. } => (self.type_name(), Some(for_role.as_str()), None),
            _ => (self.type_name(), None, None),
        };
        ObjectWire { kind, schema: self.schema(), name: self.name(), column: self.column(), for_role, arguments }
    }
}

/// `tables` for default privileges on tables: the object name a finding gives them.
fn default_word(on: DefaultObjectType) -> &'static str {
    on.baseline_keyword().trim_start_matches("default_")
}

/// A finding's object as the contract spells it, borrowed.
#[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
struct ObjectWire<'a> {
    #[serde(rename = "type")]
    kind: std::borrow::Cow<'static, str>,
    schema: Option<&'a str>,
    name: &'a str,
    column: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    for_role: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arguments: Option<&'a str>,
}

/// A finding's object as read from the contract, before its type says what it is.
#[derive(Deserialize)]
struct ObjectRead {
    #[serde(rename = "type")]
    kind: String,
    schema: Option<String>,
    name: String,
    column: Option<String>,
    #[serde(default)]
    for_role: Option<RoleName>,
    #[serde(default)]
    arguments: Option<String>,
}

impl TryFrom<ObjectRead> for FindingObject {
    type Error = String;

    fn try_from(w: ObjectRead) -> Result<Self, String> {
        if let Some(kind) = ObjectType::from_word(&w.kind) {
            if kind == ObjectType::Role {
                RoleName::new(w.name.as_str()).map_err(|e| format!("role {:?}: {e}", w.name))?;
            }
            let object = ObjectRef {
                class: kind.class(),
                schema: w.schema.map(Name::from),
                name: w.name.into(),
                column: w.column.map(Name::from),
                args: w.arguments.map(Name::from),
            };
            return Ok(FindingObject::Object { kind, object });
        }
        match w.kind.as_str() {
            "unknown" => Ok(FindingObject::Unknown),
            "default_privileges" => Ok(FindingObject::DefaultPrivileges {
                for_role: w.for_role.ok_or("default privileges without for_role")?,
                schema: w.schema,
                on: DefaultObjectType::from_keyword(&w.name)
                    .ok_or_else(|| format!("default privileges on {:?}", w.name))?,
            }),
            word => {
                let on = On::deserialize(serde::de::value::StrDeserializer::<serde::de::value::Error>::new(word))
                    .map_err(|_| format!("unknown object type {word:?}"))?;
                Ok(FindingObject::Requested { on, schema: w.schema, name: w.name })
            }
        }
    }
}

impl Serialize for FindingObject {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.wire().serialize(s)
    }
}

impl<'de> Deserialize<'de> for FindingObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        FindingObject::try_from(ObjectRead::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Ordered as the contract spells it (type, schema, name, column, for_role, arguments), so reports sort as before.
impl Ord for FindingObject {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.wire().cmp(&other.wire())
    }
}

impl PartialOrd for FindingObject {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for FindingObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::model::display_ident;
        let w = self.wire();
        write!(f, "{} ", w.kind)?;
        if let Some(s) = w.schema {
            write!(f, "{}.", display_ident(s))?;
        }
        // these names are written as they are: `tables`, `*.*`, a pattern, `'app'@'%'`
        let as_written = matches!(
            self,
            FindingObject::DefaultPrivileges { .. }
                | FindingObject::Object {
                    kind: ObjectType::Global | ObjectType::DatabasePattern | ObjectType::Account,
                    ..
                }
        );
        if as_written {
            f.write_str(w.name)?;
        } else {
            f.write_str(&display_ident(w.name))?;
        }
        if let Some(args) = w.arguments {
            write!(f, "({args})")?;
        }
        if let Some(c) = w.column {
            write!(f, ".{}", display_ident(c))?;
        }
        if let Some(r) = w.for_role {
            write!(f, " for role {}", display_ident(r))?;
        }
        Ok(())
    }
}

/// What a finding names as its privilege.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FindingPrivilege {
    /// One privilege, role attribute, membership (`MEMBER`), ownership
    /// (`OWNER`), the role itself (`ROLE`) or `ROW LEVEL SECURITY`.
    One(Privilege),
    /// What a request (or a failed revocation's ticket) named, when that is
    /// not exactly one: written joined by `,`. Build it with
    /// [`FindingPrivilege::requested`].
    Requested(Vec<Privilege>),
    /// A MySQL or MariaDB privilege (`FILE`, `SELECT`, a MySQL 8 dynamic one).
    /// Its keyword reads back as PostgreSQL's privilege where the two share
    /// one (`SELECT`): the text is the same.
    Mysql(crate::mysql::privilege::Privilege),
    /// Input that could not be read names none: `unknown`.
    Unknown,
}

impl FindingPrivilege {
    /// The privileges a request named: [`FindingPrivilege::One`] for one, as it reads back.
    pub fn requested(privileges: &[Privilege]) -> Self {
        match privileges {
            [one] => FindingPrivilege::One(*one),
            several => FindingPrivilege::Requested(several.to_vec()),
        }
    }

    /// As the contract spells it, e.g. `SELECT`, `SELECT,USAGE`, `unknown`.
    pub fn text(&self) -> std::borrow::Cow<'static, str> {
        match self {
            FindingPrivilege::One(p) => p.keyword().into(),
            FindingPrivilege::Requested(ps) => ps.iter().map(|p| p.keyword()).collect::<Vec<_>>().join(",").into(),
            FindingPrivilege::Mysql(p) => p.keyword().to_owned().into(),
            FindingPrivilege::Unknown => "unknown".into(),
        }
    }
}

impl std::fmt::Display for FindingPrivilege {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&self.text())
    }
}

impl Serialize for FindingPrivilege {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text())
    }
}

impl<'de> Deserialize<'de> for FindingPrivilege {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let parse = |word: &str| word.parse::<Privilege>().map_err(serde::de::Error::custom);
        match text.as_str() {
            "unknown" => Ok(FindingPrivilege::Unknown),
            "" => Ok(FindingPrivilege::Requested(Vec::new())),
            several if several.contains(',') => {
                several.split(',').map(parse).collect::<Result<_, _>>().map(FindingPrivilege::Requested)
            }
            one => match one.parse::<Privilege>() {
                Ok(p) => Ok(FindingPrivilege::One(p)),
                Err(e) => crate::mysql::privilege::Privilege::from_report(one)
                    .map(FindingPrivilege::Mysql)
                    .ok_or_else(|| serde::de::Error::custom(e)),
            },
        }
    }
}

/// One difference between reality and the baseline (or an observation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Kind.
    pub kind: FindingKind,
    /// Severity.
    pub severity: Severity,
    /// Score contribution.
    pub score: f64,
    /// A role, or PUBLIC (`unknown`: the placeholder role of unreadable input).
    pub grantee: Grantee,
    /// Privilege, attribute, MEMBER, OWNER or ROLE; what a request named.
    pub privilege: FindingPrivilege,
    /// WITH GRANT OPTION / WITH ADMIN OPTION held or declared.
    pub grantable: bool,
    /// The object.
    pub object: FindingObject,
    /// The exception ticket covering it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception_id: Option<String>,
    /// Why, in words.
    pub detail: String,
}

/// Overall state of a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// No drift.
    Ok,
    /// Drift below the alert threshold.
    Warn,
    /// The scan missed chunks: the result is partial, never clean, and never
    /// `alert` (whatever the part that was read holds).
    Incomplete,
    /// Past a threshold.
    Alert,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Incomplete => "incomplete",
            Status::Alert => "alert",
        })
    }
}

/// Counts by kind, score and status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// unauthorized count.
    pub unauthorized: usize,
    /// missing count.
    pub missing: usize,
    /// orphaned count.
    pub orphaned: usize,
    /// excepted count.
    pub excepted: usize,
    /// expired_exception count.
    pub expired_exception: usize,
    /// untagged count.
    pub untagged: usize,
    /// exposure count (MySQL and MariaDB).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub exposure: usize,
    /// Sum of finding scores.
    pub score: f64,
    /// Sum of the scores of excepted findings.
    pub exception_weight: f64,
    /// ok, warn, incomplete or alert.
    pub status: Status,
    /// False when the scan missed chunks.
    pub complete: bool,
    /// The chunks that failed, with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_chunks: Vec<String>,
    /// What the failed chunks leave unjudged, one sentence per failed chunk:
    /// nothing there is reported missing, unauthorized or orphaned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_judged: Vec<String>,
    /// How many declarations of the baseline (a grant on one object, an
    /// owner, a default privilege, a role's attributes and memberships) name
    /// what was not read, and were not judged.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub declarations_not_judged: usize,
    /// How the privileges held (ACL grants, memberships, default privileges; not
    /// an owner's own) are accounted for.
    #[serde(default)]
    pub coverage: Coverage,
}

/// How the privileges held are accounted for: declared by the baseline,
/// covered by an active exception ticket, or drift (unauthorized, orphaned,
/// expired exception). Grants of ignored roles and PostgreSQL's kept built-in
/// defaults are not counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    /// Counted privileges held.
    pub held: usize,
    /// Declared by the baseline.
    pub baseline: usize,
    /// Covered by an active exception ticket.
    pub exceptions: usize,
    /// Neither.
    pub drift: usize,
}

impl Coverage {
    /// `part` as a percentage of what is held (100 when nothing is).
    pub fn percent(&self, part: usize) -> f64 {
        if self.held == 0 { 100.0 } else { round2(part as f64 * 100.0 / self.held as f64) }
    }
}

/// What a report says of the scan it judged.
#[derive(Clone, Debug, PartialEq)]
pub struct ScanFacts {
    /// Target.
    pub target: TargetId,
    /// Scan id.
    pub scan_id: String,
    /// When the scan started.
    pub taken_at: DateTime<Utc>,
    /// sha256 of what was read.
    pub sha256: String,
    /// Every chunk was read.
    pub complete: bool,
    /// The chunks that failed, with why.
    pub failed_chunks: Vec<String>,
    /// What the failed chunks (or what could not be read) leave unjudged.
    pub not_judged: Vec<String>,
}

/// A plan report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Target.
    pub target: TargetId,
    /// Scan id.
    pub scan_id: String,
    /// When the scan started.
    pub taken_at: DateTime<Utc>,
    /// sha256 of the snapshot state.
    pub snapshot_sha256: String,
    /// Summary.
    pub summary: Summary,
    /// Drift and exceptions, most severe first.
    pub findings: Vec<Finding>,
    /// Context that is shown, not scored.
    #[serde(default)]
    pub observations: Vec<Finding>,
    /// Governance metrics of the target (with a state store: tickets and the login roles of the scan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub governance: Option<crate::metrics::Governance>,
}

impl Report {
    /// The report with the diff's accounting of what is held.
    pub fn with_coverage(mut self, coverage: Coverage) -> Self {
        self.summary.coverage = coverage;
        self
    }

    /// Assembles a report: sorts findings, counts, sums and sets the status.
    pub fn build(
        snapshot: &Snapshot,
        findings: Vec<Finding>,
        observations: Vec<Finding>,
        scoring: &ScoringConfig,
    ) -> Self {
        let scan = ScanFacts {
            target: snapshot.target.clone(),
            scan_id: snapshot.scan_id.clone(),
            taken_at: snapshot.taken_at,
            sha256: snapshot.sha256.clone(),
            complete: snapshot.complete,
            failed_chunks: snapshot.failed_chunks(),
            not_judged: snapshot.not_judged(),
        };
        Self::of_scan(scan, findings, observations, scoring)
    }

    /// [`Report::build`] for a scan described by its facts alone (a MySQL or
    /// MariaDB scan is no [`Snapshot`]).
    pub fn of_scan(
        scan: ScanFacts,
        mut findings: Vec<Finding>,
        mut observations: Vec<Finding>,
        scoring: &ScoringConfig,
    ) -> Self {
        sort_findings(&mut findings);
        sort_findings(&mut observations);
        let mut summary = summarize(&findings, scan.complete, scoring);
        summary.failed_chunks = scan.failed_chunks;
        summary.not_judged = scan.not_judged;
        Report {
            target: scan.target,
            scan_id: scan.scan_id,
            taken_at: scan.taken_at,
            snapshot_sha256: scan.sha256,
            summary,
            findings,
            observations,
            governance: None,
        }
    }

    /// Weighs each finding by how long it has been open (`ages[i]` belongs to
    /// `findings[i]`) and recomputes the summary.
    pub fn weigh_by_age(&mut self, ages: &[FindingAge], now: DateTime<Utc>, scoring: &ScoringConfig) {
        for (f, age) in self.findings.iter_mut().zip(ages) {
            f.score = round2(f.score * scoring.age_factor(now - age.first_seen));
        }
        let fresh = summarize(&self.findings, self.summary.complete, scoring);
        let s = &mut self.summary;
        *s = Summary {
            failed_chunks: std::mem::take(&mut s.failed_chunks),
            not_judged: std::mem::take(&mut s.not_judged),
            declarations_not_judged: s.declarations_not_judged,
            coverage: s.coverage,
            ..fresh
        };
    }

    /// The alert this report calls for, if any: an incomplete scan calls for
    /// the incomplete-scan alert and never a drift alert (what it did not read
    /// is not drift, and what it read is not the whole); a complete one for a
    /// drift alert when its status is `alert`.
    pub fn alert(&self) -> Option<ReportAlert> {
        if !self.summary.complete {
            Some(ReportAlert::Incomplete)
        } else if self.summary.status == Status::Alert {
            Some(ReportAlert::Drift)
        } else {
            None
        }
    }

    /// Whether any finding is drift.
    pub fn has_drift(&self) -> bool {
        self.findings.iter().any(|f| f.kind.is_drift())
    }
}

/// Which alert a scan's report raises (see [`Report::alert`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportAlert {
    /// The status is `alert`: drift past a threshold, on a complete scan.
    Drift,
    /// Chunks of the scan failed: the report is partial, and says what it could not judge.
    Incomplete,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Counts by kind, sums and the status of a set of findings; the fields that
/// describe the scan (failed chunks, what was not judged, coverage) are left
/// empty for the caller.
fn summarize(findings: &[Finding], complete: bool, scoring: &ScoringConfig) -> Summary {
    let count = |k: FindingKind| findings.iter().filter(|f| f.kind == k).count();
    let score = round2(findings.iter().map(|f| f.score).sum());
    let exception_weight = round2(findings.iter().filter(|f| f.kind == FindingKind::Excepted).map(|f| f.score).sum());
    // drift, and the exposures a baseline cannot make safe, raise the status alike
    let drift: Vec<&Finding> =
        findings.iter().filter(|f| f.kind.is_drift() || f.kind == FindingKind::Exposure).collect();
    let t = &scoring.thresholds;
    let alert = score >= t.alert_score
        || exception_weight >= t.alert_exception_weight
        || drift.iter().any(|f| f.severity >= t.alert_severity)
        || findings.iter().any(|f| f.kind == FindingKind::ExpiredException);
    // a partial scan is incomplete whatever it saw: what it did not read may
    // hold anything, and what it read is judged and listed, never alerted on
    let status = if !complete {
        Status::Incomplete
    } else if alert {
        Status::Alert
    } else if !drift.is_empty() || score >= t.warn_score {
        Status::Warn
    } else {
        Status::Ok
    };
    Summary {
        unauthorized: count(FindingKind::Unauthorized),
        missing: count(FindingKind::Missing),
        orphaned: count(FindingKind::Orphaned),
        excepted: count(FindingKind::Excepted),
        expired_exception: count(FindingKind::ExpiredException),
        untagged: count(FindingKind::Untagged),
        exposure: count(FindingKind::Exposure),
        score,
        exception_weight,
        status,
        complete,
        failed_chunks: Vec::new(),
        not_judged: Vec::new(),
        declarations_not_judged: 0,
        coverage: Coverage::default(),
    }
}

/// Most severe first, then by grantee, object and privilege: a total order, so output is stable.
fn sort_findings(f: &mut [Finding]) {
    f.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.kind.cmp(&b.kind))
            // as the contract spells them, as when these were strings: output stays in the same order
            .then_with(|| a.grantee.as_str().cmp(b.grantee.as_str()))
            .then_with(|| a.object.cmp(&b.object))
            .then_with(|| a.privilege.text().cmp(&b.privilege.text()))
            .then_with(|| a.grantable.cmp(&b.grantable))
            .then_with(|| a.detail.cmp(&b.detail))
    });
}

/// The identity of a finding across scans: kind, grantee, privilege and object.
pub fn finding_key(f: &Finding) -> String {
    serde_json::to_string(&(f.kind, &f.grantee, &f.privilege, &f.object)).expect("a finding always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_types_are_spelled_in_declaration_order() {
        for (i, (t, word)) in OBJECT_TYPES.iter().enumerate() {
            assert_eq!((*t as usize, t.as_str(), ObjectType::from_word(word)), (i, *word, Some(*t)));
        }
    }

    #[test]
    fn a_requested_privilege_list_of_one_is_that_privilege_as_it_reads_back() {
        use Privilege::{Select, Usage};
        for (privileges, text) in [(vec![Select], "SELECT"), (vec![Select, Usage], "SELECT,USAGE"), (vec![], "")] {
            let p = FindingPrivilege::requested(&privileges);
            assert_eq!(serde_json::to_value(&p).unwrap(), text);
            assert_eq!(serde_json::from_value::<FindingPrivilege>(text.into()).unwrap(), p);
        }
        assert!(serde_json::from_value::<FindingPrivilege>("FLY".into()).is_err());
    }

    #[test]
    fn every_kind_of_object_reads_back_as_it_was_built_with_the_same_json() {
        let role = RoleName::new("app_ro").unwrap();
        let on_table = |kind| FindingObject::of(kind, &ObjectRef::in_schema(ObjectClass::Table, "orders", "t"));
        let objects = [
            (on_table(ObjectType::View), r#"{"type":"view","schema":"orders","name":"t","column":null}"#),
            (on_table(ObjectType::Sequence), r#"{"type":"sequence","schema":"orders","name":"t","column":null}"#),
            (
                FindingObject::of(ObjectType::Procedure, &ObjectRef::function("app", "close", "integer")),
                r#"{"type":"procedure","schema":"app","name":"close","column":null,"arguments":"integer"}"#,
            ),
            (
                FindingObject::of(ObjectType::Role, &ObjectRef::role(&role)),
                r#"{"type":"role","schema":null,"name":"app_ro","column":null}"#,
            ),
            (
                FindingObject::DefaultPrivileges { for_role: role, schema: None, on: DefaultObjectType::Sequences },
                r#"{"type":"default_privileges","schema":null,"name":"sequences","column":null,"for_role":"app_ro"}"#,
            ),
            (
                FindingObject::Requested {
                    on: On::AllTablesInSchema,
                    schema: Some("orders".into()),
                    name: String::new(),
                },
                r#"{"type":"all_tables_in_schema","schema":"orders","name":"","column":null}"#,
            ),
            (FindingObject::Unknown, r#"{"type":"unknown","schema":null,"name":"","column":null}"#),
        ];
        for (object, json) in objects {
            assert_eq!(serde_json::to_string(&object).unwrap(), json);
            assert_eq!(serde_json::from_str::<FindingObject>(json).unwrap(), object, "{json}");
        }
        // a sequence the baseline names is looked up as a relation: it is still a sequence to GRANT
        let FindingObject::Object { object, .. } = on_table(ObjectType::Sequence) else { unreachable!() };
        assert_eq!(object.class, ObjectClass::Sequence);
        let unknown =
            serde_json::from_str::<FindingObject>(r#"{"type":"galaxy","schema":null,"name":"","column":null}"#);
        assert!(unknown.unwrap_err().to_string().contains("unknown object type \"galaxy\""));
    }
}
