//! The privilege state of one target, as extracted, and the scan that produced it.
//!
//! A scan is split into chunks; each chunk yields a partial [`State`] (a batch)
//! and the batches merge into one. Every collection is sorted (a `BTreeMap`,
//! a `BTreeSet`, or [`Grants`]), so the same state always serializes to the
//! same bytes and the same sha256, whatever order the chunks finished in.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::grants::Grants;
use crate::model::{
    DefaultPrivilege, Function, Grantee, Membership, ObjectClass, ObjectRef, Relation, RlsPolicy, RoleAttributes,
    RoleName,
};

/// An identifier of the database being governed, e.g. `orders-prod` or `db.internal:5432/orders`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TargetId(String);

impl TargetId {
    /// Any non-empty string.
    pub fn new(id: impl Into<String>) -> Option<Self> {
        let id = id.into();
        (!id.trim().is_empty()).then_some(Self(id))
    }
    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TargetId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Limits every session a scan or a change opens is given, whatever the
/// engine: how long one statement may run (PostgreSQL's `statement_timeout`,
/// MySQL's `max_execution_time`, MariaDB's `max_statement_time`), how long it
/// waits for a lock held by DDL before it gives up and is retried
/// (`lock_timeout`; `lock_wait_timeout`), and how long connecting may take.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// No statement runs longer.
    pub statement: std::time::Duration,
    /// Never wait long behind DDL: give up and retry instead.
    pub lock: std::time::Duration,
    /// Connect timeout.
    pub connect: std::time::Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        use std::time::Duration;
        Self { statement: Duration::from_secs(60), lock: Duration::from_secs(2), connect: Duration::from_secs(10) }
    }
}

/// The database and its owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Database {
    /// `current_database()`.
    pub name: String,
    /// Its owner.
    pub owner: RoleName,
}

/// Everything PostgreSQL enforces about who may do what in one database.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The target database (from the cluster chunk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<Database>,
    /// Every role of the cluster with its attributes.
    #[serde(default)]
    pub roles: BTreeMap<RoleName, RoleAttributes>,
    /// Role memberships with their options.
    #[serde(default)]
    pub memberships: BTreeSet<Membership>,
    /// Schemas and their owners.
    #[serde(default)]
    pub schemas: BTreeMap<String, RoleName>,
    /// Tables, views, materialized views, foreign and partitioned tables, sequences.
    #[serde(default)]
    pub relations: BTreeSet<Relation>,
    /// Functions, procedures and aggregates.
    #[serde(default)]
    pub functions: BTreeSet<Function>,
    /// Every ACL entry, with NULL ACLs read as their built-in defaults.
    #[serde(default)]
    pub grants: Grants,
    /// `ALTER DEFAULT PRIVILEGES` entries.
    #[serde(default)]
    pub default_privileges: BTreeSet<DefaultPrivilege>,
    /// Row-level security policies.
    #[serde(default)]
    pub policies: BTreeSet<RlsPolicy>,
}

impl State {
    /// The union of a scan's batches, built once: each collection is gathered and
    /// then built in bulk, which is several times cheaper on a large catalog than
    /// inserting batch after batch. Chunks hold disjoint objects, so their
    /// grants mostly come out in order already (see [`Grants::from_objects`]).
    pub fn merge_all(batches: impl IntoIterator<Item = State>) -> State {
        let mut out = State::default();
        let (mut relations, mut functions, mut objects) = (Vec::new(), Vec::new(), Vec::new());
        let (mut defaults, mut policies, mut memberships) = (Vec::new(), Vec::new(), Vec::new());
        let mut batches: Vec<State> = batches.into_iter().collect();
        // in the order of their first objects, the batches' grants make one sorted run
        batches.sort_by(|a, b| a.grants.objects().first().map(|o| &o.0).cmp(&b.grants.objects().first().map(|o| &o.0)));
        for b in batches {
            if b.database.is_some() {
                out.database = b.database;
            }
            out.roles.extend(b.roles);
            out.schemas.extend(b.schemas);
            memberships.extend(b.memberships);
            relations.extend(b.relations);
            functions.extend(b.functions);
            objects.extend(b.grants.into_objects());
            defaults.extend(b.default_privileges);
            policies.extend(b.policies);
        }
        out.memberships = memberships.into_iter().collect();
        out.relations = relations.into_iter().collect();
        out.functions = functions.into_iter().collect();
        out.grants = Grants::from_objects(objects);
        out.default_privileges = defaults.into_iter().collect();
        out.policies = policies.into_iter().collect();
        out
    }

    /// Adds a batch. Chunks do not overlap, so this is a plain union.
    pub fn merge(&mut self, other: State) {
        *self = State::merge_all([std::mem::take(self), other]);
    }

    /// Hex sha256 of the canonical JSON of this state in its stored form
    /// ([`Grouped`]: its grants grouped by ACL). It depends only on what the
    /// state holds, not on how its ACLs happen to be shared.
    pub fn sha256(&self) -> String {
        struct Hashing(Sha256);
        impl std::io::Write for Hashing {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.update(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, Hashing(Sha256::new()));
        serde_json::to_writer(&mut out, &Stored(self)).expect("hashing never fails to write");
        let Ok(Hashing(hasher)) = out.into_inner() else { unreachable!("hashing never fails to write") };
        hex::encode(hasher.finalize())
    }
}

/// A [`State`] as batches store it and as its sha256 is taken: as the state
/// serializes, except its grants, grouped by ACL
/// ([`crate::grants::by_acl`]). The canonical form (an array of grants) repeats
/// every object for every grant it holds: 9.5M records, about a gigabyte of
/// JSON, for a catalog of 100k tables whose ACLs are a few hundred; grouped,
/// it is some 30 MB. Used as `#[serde(with = "grantwarden_core::snapshot::Grouped")]`.
#[derive(Serialize, Deserialize)]
#[serde(remote = "State")]
pub struct Grouped {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    database: Option<Database>,
    #[serde(default)]
    roles: BTreeMap<RoleName, RoleAttributes>,
    #[serde(default)]
    memberships: BTreeSet<Membership>,
    #[serde(default)]
    schemas: BTreeMap<String, RoleName>,
    #[serde(default)]
    relations: BTreeSet<Relation>,
    #[serde(default)]
    functions: BTreeSet<Function>,
    #[serde(with = "crate::grants::by_acl")]
    grants: Grants,
    #[serde(default)]
    default_privileges: BTreeSet<DefaultPrivilege>,
    #[serde(default)]
    policies: BTreeSet<RlsPolicy>,
}

/// Serializes a state in its [`Grouped`] form.
struct Stored<'a>(&'a State);

impl Serialize for Stored<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Grouped::serialize(self.0, s)
    }
}

/// Lookups over a [`State`] by name: relations, functions and owners.
pub struct StateIndex<'a> {
    state: &'a State,
    /// In name order, for the objects of one schema.
    relations: BTreeMap<(&'a str, &'a str), &'a Relation>,
    /// By schema, name and argument types.
    functions: BTreeMap<(&'a str, &'a str, &'a str), &'a Function>,
    /// By schema, then by name, for the lookups a diff makes per declared
    /// object: a baseline names the objects of one schema in a row, and one
    /// schema's map stays in cache where one map of every relation did not
    /// (foldhash: these keys are the catalog's own names, and SipHash was a
    /// fifth of a diff's time).
    relations_by_schema: HashMap<&'a str, RelationsByName<'a>, foldhash::fast::RandomState>,
}

/// The relations of one schema by name.
pub type RelationsByName<'a> = HashMap<&'a str, &'a Relation, foldhash::fast::RandomState>;

impl<'a> StateIndex<'a> {
    /// Indexes a state.
    pub fn new(state: &'a State) -> Self {
        Self {
            state,
            relations: state.relations.iter().map(|r| ((r.schema.as_str(), r.name.as_str()), r)).collect(),
            functions: state
                .functions
                .iter()
                .map(|f| ((f.schema.as_str(), f.name.as_str(), f.arguments.as_str()), f))
                .collect(),
            relations_by_schema: {
                let mut by_schema: HashMap<&str, RelationsByName, _> = HashMap::default();
                for r in &state.relations {
                    by_schema.entry(r.schema.as_str()).or_default().insert(r.name.as_str(), r);
                }
                by_schema
            },
        }
    }

    /// The relations of `schema` by name (none if it has none).
    pub fn relations_of(&self, schema: &str) -> Option<&RelationsByName<'a>> {
        self.relations_by_schema.get(schema)
    }

    /// The target database's name, when the cluster chunk was read.
    pub fn database(&self) -> Option<&'a str> {
        self.state.database.as_ref().map(|d| d.name.as_str())
    }

    /// A relation by schema and name.
    pub fn relation(&self, schema: &str, name: &str) -> Option<&'a Relation> {
        self.relations_of(schema)?.get(name).copied()
    }

    /// A function by schema, name and argument types.
    pub fn function(&self, schema: &str, name: &str, args: &str) -> Option<&'a Function> {
        self.functions.get(&(schema, name, args)).copied()
    }

    /// Who owns an object (a column: its table's owner); `None` if it is not in the state.
    pub fn owner_of(&self, o: &ObjectRef) -> Option<&'a RoleName> {
        let schema = o.schema.as_deref().unwrap_or("");
        match o.class {
            ObjectClass::Database => self.state.database.as_ref().filter(|d| d.name == o.name).map(|d| &d.owner),
            ObjectClass::Schema => self.state.schemas.get(o.name.as_str()),
            ObjectClass::Table | ObjectClass::Sequence | ObjectClass::Column => {
                self.relation(schema, &o.name).map(|r| &r.owner)
            }
            ObjectClass::Function => self.function(schema, &o.name, o.args.as_deref().unwrap_or("")).map(|f| &f.owner),
            ObjectClass::Role => None,
        }
    }

    /// Whether `grantee` holds privileges on `object` by owning it (not drift, and
    /// not worth declaring).
    pub fn is_owner(&self, grantee: &Grantee, object: &ObjectRef) -> bool {
        grantee.role().is_some_and(|r| self.owner_of(object) == Some(r))
    }

    /// `(schema, name, arguments)` of the objects of `class` in `schema`, in
    /// name order, borrowed from the state (tables include views, materialized
    /// views, foreign and partitioned tables; only functions have arguments).
    pub fn names_in_schema(&self, class: ObjectClass, schema: &'a str) -> Vec<(&'a str, &'a str, Option<&'a str>)> {
        if class == ObjectClass::Function {
            return self
                .functions
                .range((schema, "", "")..)
                .take_while(|((s, _, _), _)| *s == schema)
                .map(|(&(s, n, a), _)| (s, n, Some(a)))
                .collect();
        }
        self.relations
            .range((schema, "")..)
            .take_while(|((s, _), _)| *s == schema)
            .filter(|(_, r)| r.kind.class() == class)
            .map(|(&(s, n), _)| (s, n, None))
            .collect()
    }

    /// Objects of `class` in `schema`, in name order (tables include views,
    /// materialized views, foreign and partitioned tables).
    pub fn all_in_schema(&self, class: ObjectClass, schema: &str) -> Vec<ObjectRef> {
        match class {
            ObjectClass::Function => self
                .functions
                .range((schema, "", "")..)
                .take_while(|((s, _, _), _)| *s == schema)
                .map(|(_, f)| f.object())
                .collect(),
            _ => self
                .relations
                .range((schema, "")..)
                .take_while(|((s, _), _)| *s == schema)
                .filter(|(_, r)| r.kind.class() == class)
                .map(|((s, n), _)| ObjectRef::in_schema(class, s, n))
                .collect(),
        }
    }
}

/// Where a chunk's relations are in `pg_class`, as read when its scan was
/// planned: the range of their oids (a superset: a packed chunk's range spans
/// all its schemas'), so the chunk looks them up through `pg_class`'s oid
/// index instead of reading all of `pg_class`, once per chunk, to find them.
///
/// A chunk that reads the planner's own snapshot sees exactly the relations
/// planned. A chunk read later, in a snapshot of its own (a Lambda's), may
/// find relations created since: `newer_than` is the highest oid in
/// `pg_class` when planning, and the chunk also reads every relation of its
/// schemas above it, so a table created between the plan and the chunk is
/// read (and never reported missing) rather than skipped. Not covered: a
/// relation moved into the chunk's schemas from another (`ALTER ... SET
/// SCHEMA`) in that interval keeps its old oid and is read by the next scan,
/// and after the cluster's oid counter wraps (four billion objects made) new
/// oids can fall below `newer_than`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidRange {
    /// Lowest oid (inclusive).
    pub lo: u32,
    /// Highest oid (inclusive).
    pub hi: u32,
    /// The highest oid in `pg_class` at planning, for a chunk read in a later
    /// snapshot (none: the chunk reads the planner's snapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newer_than: Option<u32>,
}

/// One piece of a scan. Chunks never overlap: the cluster chunk holds the
/// cluster-wide facts, each schema belongs to exactly one chunk, and a large
/// schema is split by relation name into half-open ranges.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChunkSpec {
    /// Roles, memberships, the database itself and global default privileges.
    Cluster,
    /// Whole schemas: every object in them.
    Schemas {
        /// Schema names.
        schemas: Vec<String>,
    },
    /// Relations of one schema whose names (in C collation) are in `[from, to)`.
    /// The part with no `from` also carries the schema's own ACL, functions and
    /// default privileges.
    SchemaPart {
        /// Schema name.
        schema: String,
        /// Inclusive lower bound; `None` for the first part.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        /// Exclusive upper bound; `None` for the last part.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
    },
}

impl ChunkSpec {
    /// A short human label, e.g. `schema orders [m, t)`.
    pub fn label(&self) -> String {
        match self {
            ChunkSpec::Cluster => "cluster".to_owned(),
            ChunkSpec::Schemas { schemas } if schemas.len() == 1 => {
                format!("schema {}", schemas[0])
            }
            ChunkSpec::Schemas { schemas } => format!(
                "schemas {}..{} ({})",
                schemas.first().map(String::as_str).unwrap_or(""),
                schemas.last().map(String::as_str).unwrap_or(""),
                schemas.len()
            ),
            ChunkSpec::SchemaPart { schema, from, to } => {
                format!("schema {schema} [{}, {})", from.as_deref().unwrap_or("-"), to.as_deref().unwrap_or("-"))
            }
        }
    }

    /// What this chunk failing leaves unjudged, in words (a report of an
    /// incomplete scan says it for each failed chunk).
    pub fn not_judged(&self) -> String {
        match self {
            ChunkSpec::Cluster => "cluster: roles (their existence, attributes and memberships), the database \
                 (its privileges and owner), global default privileges, and grants held by roles the baseline \
                 does not declare"
                .to_owned(),
            ChunkSpec::Schemas { schemas } => format!(
                "{} {}: the schema itself, every object in it and its default privileges",
                if schemas.len() == 1 { "schema" } else { "schemas" },
                schemas.join(", ")
            ),
            ChunkSpec::SchemaPart { schema, from: None, to } => format!(
                "schema {schema} [-, {}): the schema itself (its privileges and owner), its functions and \
                 default privileges, and {}",
                to.as_deref().unwrap_or("-"),
                match to {
                    Some(to) => format!("its relations named before {to}"),
                    None => "all its relations".to_owned(),
                }
            ),
            ChunkSpec::SchemaPart { schema, from: Some(from), to } => format!(
                "schema {schema} [{from}, {}): its relations named from {from}{} (their privileges, columns, \
                 policies and owners)",
                to.as_deref().unwrap_or("-"),
                match to {
                    Some(to) => format!(" up to {to}"),
                    None => " on".to_owned(),
                }
            ),
        }
    }

    /// Canonical bytes, used in batch ids.
    fn canonical(&self) -> String {
        serde_json::to_string(self).expect("a ChunkSpec always serializes")
    }
}

/// What a scan did not read: what its failed chunks cover (see
/// [`ChunkSpec`]). Empty for a complete scan. The diff judges nothing that
/// lies here: an object there is unknown, neither held nor missing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unread {
    cluster: bool,
    schemas: BTreeMap<String, UnreadSchema>,
}

/// What was not read of one schema.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct UnreadSchema {
    /// The schema itself: its ACL and owner, functions and default
    /// privileges (what a whole-schema chunk and the first part of a split
    /// schema read).
    itself: bool,
    /// Half-open ranges of relation names (C collation, as the chunk planner
    /// splits them); `None` bounds are open.
    relations: Vec<(Option<String>, Option<String>)>,
}

impl Unread {
    /// What the failed chunks among `chunks` cover.
    pub fn of(chunks: &[ChunkOutcome]) -> Self {
        let mut out = Self::default();
        for c in chunks.iter().filter(|c| c.error.is_some()) {
            match &c.chunk {
                ChunkSpec::Cluster => out.cluster = true,
                ChunkSpec::Schemas { schemas } => {
                    for s in schemas {
                        let unread = out.schemas.entry(s.clone()).or_default();
                        unread.itself = true;
                        unread.relations.push((None, None));
                    }
                }
                ChunkSpec::SchemaPart { schema, from, to } => {
                    let unread = out.schemas.entry(schema.clone()).or_default();
                    unread.itself |= from.is_none();
                    unread.relations.push((from.clone(), to.clone()));
                }
            }
        }
        out
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        !self.cluster && self.schemas.is_empty()
    }

    /// Whether the cluster facts were not read: roles, memberships, the
    /// database and its privileges, global default privileges.
    pub fn cluster(&self) -> bool {
        self.cluster
    }

    /// Whether `schema` itself was not read: whether it exists, its
    /// privileges and owner, its functions and its default privileges.
    pub fn schema(&self, schema: &str) -> bool {
        !self.schemas.is_empty() && self.schemas.get(schema).is_some_and(|s| s.itself)
    }

    /// Whether any of `schema` was not read (itself, or some of its relations).
    pub fn any_of_schema(&self, schema: &str) -> bool {
        !self.schemas.is_empty() && self.schemas.contains_key(schema)
    }

    /// Whether the relation `schema.name` (its privileges, columns, policies
    /// and owner, and whether it exists) was not read.
    pub fn relation(&self, schema: &str, name: &str) -> bool {
        if self.schemas.is_empty() {
            return false;
        }
        // Rust compares strings byte by byte, as the C collation the ranges were planned in
        self.schemas.get(schema).is_some_and(|s| {
            s.relations
                .iter()
                .any(|(from, to)| from.as_deref().is_none_or(|f| name >= f) && to.as_deref().is_none_or(|t| name < t))
        })
    }
}

/// The time window a scan belongs to (a schedule period, or the minute a CLI run started).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanWindow {
    /// Window start.
    pub start: DateTime<Utc>,
    /// Window length in seconds.
    pub seconds: u32,
}

impl ScanWindow {
    /// The window of `seconds` that contains `at`.
    pub fn containing(at: DateTime<Utc>, seconds: u32) -> Self {
        let seconds = seconds.max(1);
        let ts = at.timestamp();
        let start = ts - ts.rem_euclid(i64::from(seconds));
        Self { start: DateTime::from_timestamp(start, 0).expect("a truncated timestamp stays in range"), seconds }
    }

    fn canonical(&self) -> String {
        format!("{}+{}s", self.start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), self.seconds)
    }
}

fn digest_hex(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}

/// Deterministic scan id: the same target and window always give the same id,
/// so a retried schedule does not start a second scan.
pub fn scan_id(target: &TargetId, window: &ScanWindow) -> String {
    format!("scan-{}", &digest_hex(&[target.as_str(), &window.canonical()])[..20])
}

/// Deterministic batch id: sha256 of target, chunk spec and window.
pub fn batch_id(target: &TargetId, chunk: &ChunkSpec, window: &ScanWindow) -> String {
    digest_hex(&[target.as_str(), &chunk.canonical(), &window.canonical()])
}

/// How one chunk of a scan ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkOutcome {
    /// Deterministic batch id.
    pub batch_id: String,
    /// The chunk.
    pub chunk: ChunkSpec,
    /// Attempts made (1 when it worked the first time).
    pub attempts: u32,
    /// Why it failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ChunkOutcome {
    /// `label: error` when the chunk failed.
    pub fn failure(&self) -> Option<String> {
        self.error.as_ref().map(|e| format!("{}: {e}", self.chunk.label()))
    }

    /// A chunk that failed after `attempts`: the error, and whether it was
    /// retried until the retries ran out (`transient`) or not retried at all.
    pub fn failed(
        batch_id: String,
        chunk: ChunkSpec,
        attempts: u32,
        error: &dyn std::fmt::Display,
        transient: bool,
    ) -> Self {
        let retried = if transient { "gave up" } else { "not retried" };
        ChunkOutcome {
            batch_id,
            chunk,
            attempts,
            error: Some(format!("{error} ({retried} after {attempts} attempts)")),
        }
    }
}

/// A complete or incomplete scan of one target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// What was scanned.
    pub target: TargetId,
    /// Deterministic scan id.
    pub scan_id: String,
    /// When the scan started.
    pub taken_at: DateTime<Utc>,
    /// `server_version_num`, e.g. 150020.
    pub server_version_num: u32,
    /// False when any chunk failed: the state is then partial and must never read as clean.
    pub complete: bool,
    /// True when every chunk read the same exported database snapshot.
    pub consistent: bool,
    /// Every chunk and how it ended, in chunk order.
    pub chunks: Vec<ChunkOutcome>,
    /// sha256 of `state` in its stored form ([`Grouped`]: see [`State::sha256`]).
    pub sha256: String,
    /// The privilege state.
    pub state: State,
}

impl Snapshot {
    /// Sets `sha256` from the state.
    pub fn seal(&mut self) {
        self.sha256 = self.state.sha256();
    }

    /// What the failed chunks did not read.
    pub fn unread(&self) -> Unread {
        Unread::of(&self.chunks)
    }

    /// What each failed chunk leaves unjudged, in words, in chunk order.
    pub fn not_judged(&self) -> Vec<String> {
        self.chunks.iter().filter(|c| c.error.is_some()).map(|c| c.chunk.not_judged()).collect()
    }

    /// Labels of the chunks that failed.
    pub fn failed_chunks(&self) -> Vec<String> {
        self.chunks.iter().filter_map(ChunkOutcome::failure).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Grant;
    use std::collections::BTreeSet;

    fn window() -> ScanWindow {
        ScanWindow::containing("2026-11-25T10:15:42Z".parse().unwrap(), 3600)
    }

    #[test]
    fn window_truncates_to_its_period() {
        assert_eq!(window().start.to_rfc3339(), "2026-11-25T10:00:00+00:00");
    }

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let t = TargetId::new("orders-prod").unwrap();
        let a = ChunkSpec::Schemas { schemas: vec!["a".into()] };
        let b = ChunkSpec::Schemas { schemas: vec!["b".into()] };
        assert_eq!(batch_id(&t, &a, &window()), batch_id(&t, &a, &window()));
        assert_ne!(batch_id(&t, &a, &window()), batch_id(&t, &b, &window()));
        assert_eq!(scan_id(&t, &window()), scan_id(&t, &window()));
        let later = ScanWindow::containing("2026-11-25T11:00:00Z".parse().unwrap(), 3600);
        assert_ne!(scan_id(&t, &window()), scan_id(&t, &later));
    }

    #[test]
    fn merge_order_does_not_change_the_hash() {
        let role = |n: &str| RoleName::new(n).unwrap();
        let mut a = State::default();
        a.schemas.insert("s1".into(), role("o"));
        let mut b = State::default();
        b.schemas.insert("s2".into(), role("o"));
        let mut ab = State::default();
        ab.merge(a.clone());
        ab.merge(b.clone());
        let mut ba = State::default();
        ba.merge(b.clone());
        ba.merge(a.clone());
        assert_eq!(ab.sha256(), ba.sha256());
        assert_eq!(State::merge_all([b, a]), ab, "built in bulk, the same state");
    }

    #[test]
    fn batches_whose_grants_interleave_still_merge_into_one_sorted_set() {
        let grant = |class, schema: &str, name: &str, grantee: &str| Grant {
            object: ObjectRef { class, schema: Some(schema.into()), name: name.into(), column: None, args: None },
            grantee: Grantee::Role(RoleName::new(grantee).unwrap()),
            privilege: crate::model::Privilege::Select,
            grantable: false,
        };
        // disjoint schemas (what chunks give) and, against that, runs that interleave
        let batches = [
            vec![grant(ObjectClass::Table, "a", "t", "r"), grant(ObjectClass::Column, "a", "t", "r")],
            vec![grant(ObjectClass::Table, "b", "t", "r"), grant(ObjectClass::Sequence, "b", "q", "r")],
            vec![grant(ObjectClass::Table, "a", "u", "r"), grant(ObjectClass::Table, "c", "t", "r")],
            vec![grant(ObjectClass::Table, "a", "t", "r")],
        ];
        let states = batches.iter().map(|gs| State { grants: gs.iter().cloned().collect(), ..State::default() });
        let merged = State::merge_all(states);
        let expected: BTreeSet<Grant> = batches.into_iter().flatten().collect();
        assert_eq!(merged.grants.iter().map(|g| g.to_grant()).collect::<Vec<_>>(), Vec::from_iter(expected));
        assert_eq!(merged.grants.len(), 6, "the grant two batches hold is kept once");
    }

    #[test]
    fn the_sha256_is_of_the_grouped_form_and_of_what_the_state_holds_only() {
        let role = |n: &str| RoleName::new(n).unwrap();
        let mut s = State { database: Some(Database { name: "shop".into(), owner: role("o") }), ..State::default() };
        s.schemas.insert("s".into(), role("o"));
        s.default_privileges.insert(DefaultPrivilege {
            for_role: role("o"),
            schema: Some("s".into()),
            on: crate::model::DefaultObjectType::Tables,
            grantee: Grantee::Role(role("a")),
            privilege: crate::model::Privilege::Select,
            grantable: true,
        });
        // two tables with equal ACLs, each its own copy (as two chunks read them)
        let acl = || {
            crate::grants::Acl::new(vec![crate::grants::AclEntry::new(
                Grantee::Role(role("a")),
                [(crate::model::Privilege::Select, false), (crate::model::Privilege::Insert, true)],
            )])
        };
        let table = |n: &str| ObjectRef::in_schema(ObjectClass::Table, "s", n);
        s.grants = Grants::from_objects(vec![(table("t\"x"), acl()), (table("u"), acl())]);
        assert_ne!(s.grants.objects()[0].1.id(), s.grants.objects()[1].1.id());
        let grouped = concat!(
            r#"{"database":{"name":"shop","owner":"o"},"roles":{},"#,
            r#""memberships":[],"schemas":{"s":"o"},"relations":[],"functions":[],"#,
            r#""grants":{"acls":[[{"grantee":"a","privileges":["SELECT","INSERT"],"grantable":["INSERT"]}]],"#,
            r#""objects":[[{"class":"table","schema":"s","name":"t\"x"},0],[{"class":"table","schema":"s","name":"u"},0]]},"#,
            r#""default_privileges":[{"for_role":"o","schema":"s","on":"tables","grantee":"a","privilege":"SELECT","grantable":true}],"#,
            r#""policies":[]}"#
        );
        assert_eq!(s.sha256(), hex::encode(Sha256::digest(grouped)), "the equal ACLs listed once");
        // the same grants, their ACL shared: the same sha256
        let shared = acl();
        let mut t = s.clone();
        t.grants = Grants::from_objects(vec![(table("t\"x"), shared.clone()), (table("u"), shared)]);
        assert_eq!(t.sha256(), s.sha256());
        // and read back from that form, the same state
        #[derive(Deserialize)]
        struct Stored(#[serde(with = "Grouped")] State);
        let Stored(back) = serde_json::from_str(grouped).unwrap();
        assert_eq!(back, s);
    }
}
