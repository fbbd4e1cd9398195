//! Reality versus the baseline: every held privilege, attribute, membership
//! and declared ownership is classified.
//!
//! - `unauthorized`: held by a declared role (or PUBLIC) but not declared.
//! - `missing`: declared but not held.
//! - `orphaned`: held by a role the baseline neither declares nor ignores.
//!
//! What an owner holds by owning is not drift; PUBLIC's built-in defaults are
//! observations unless the baseline says they must be revoked. `all_*_in_schema`
//! entries expand against the live catalog here, so objects created after the
//! baseline was written are covered.
//!
//! A partial scan (chunks failed) is compared only where it was read: what
//! the failed chunks cover ([`Unread`]) is unknown, so a declaration on it is
//! neither held nor missing and is counted as not judged. An `all_*_in_schema`
//! declaration of a schema read only in part still covers the relations that
//! were read. With the cluster chunk unread, roles and memberships are not
//! judged at all; a grant held by a declared role or PUBLIC on an object that
//! was read is judged as usual (a declared grant not held there is missing,
//! whether or not its role exists), and one held by any other role is not
//! judged (as for any role the scan did not read).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::baseline::{Baseline, DesiredGrant, Listed, Objects, Origin, Privileges, Target};
pub use crate::exception::Exceptions;
use crate::finding::FindingKind;
use crate::grants::{AclEntry, GrantRef};
use crate::manifest::BuiltinDefaults;
use crate::model::is_builtin_public;
use crate::model::{
    DefaultObjectType, Grantee, Name, ObjectClass, ObjectRef, Privilege, PrivilegeClass, PrivilegeSet, RoleName,
};
use crate::report::{Coverage, Finding, FindingObject, FindingPrivilege, ObjectType, Report};
use crate::scoring::{Facts, Scope, ScoringConfig, round2};
use crate::snapshot::{Snapshot, State, StateIndex, TargetId, Unread};

/// Compares a snapshot with a baseline and builds the report.
pub fn diff(baseline: &Baseline, snapshot: &Snapshot, scoring: &ScoringConfig) -> Report {
    diff_with_exceptions(baseline, snapshot, scoring, &Exceptions::none(snapshot.taken_at))
}

/// [`diff`] with exceptions: a grant the baseline does not allow is `excepted`
/// while an active ticket covers it (scored with the category's weight factor,
/// never zero, not alerted), and `expired_exception` when only ended tickets do
/// (a TTL breach: the report alerts).
pub fn diff_with_exceptions(
    baseline: &Baseline,
    snapshot: &Snapshot,
    scoring: &ScoringConfig,
    exceptions: &Exceptions,
) -> Report {
    let mut d = Differ {
        baseline,
        state: &snapshot.state,
        index: StateIndex::new(&snapshot.state),
        server_version: snapshot.server_version_num,
        scoring,
        target: &snapshot.target,
        exceptions: *exceptions,
        unread: snapshot.unread(),
        not_judged: 0,
        findings: Vec::new(),
        observations: Vec::new(),
        coverage: Coverage::default(),
    };
    d.roles();
    d.memberships();
    d.grants();
    d.default_privileges();
    d.ownership();
    d.rls();
    d.findings.extend(exceptions.untagged.iter().cloned());
    let mut coverage = d.coverage;
    coverage.held = coverage.baseline + coverage.exceptions + coverage.drift;
    let mut report = Report::build(snapshot, d.findings, d.observations, scoring).with_coverage(coverage);
    report.summary.declarations_not_judged = d.not_judged;
    report
}

/// The contract's `object` for an object reference, with the real relation or function kind.
fn finding_object(index: &StateIndex, o: &ObjectRef) -> FindingObject {
    let schema = o.schema.as_deref().unwrap_or("");
    let kind = match o.class {
        ObjectClass::Table | ObjectClass::Sequence => {
            index.relation(schema, &o.name).map_or(ObjectType::of_class(o.class), |r| ObjectType::of_relation(r.kind))
        }
        ObjectClass::Function => match index.function(schema, &o.name, o.args.as_deref().unwrap_or("")) {
            Some(f) if f.kind == "procedure" => ObjectType::Procedure,
            Some(f) if f.kind == "aggregate" => ObjectType::Aggregate,
            // a window function is granted as a function, and shown as one
            _ => ObjectType::Function,
        },
        class => ObjectType::of_class(class),
    };
    FindingObject::of(kind, o)
}

fn scope_of(class: ObjectClass) -> Scope {
    match class {
        ObjectClass::Column => Scope::Column,
        ObjectClass::Table | ObjectClass::Sequence | ObjectClass::Function | ObjectClass::Role => Scope::Object,
        ObjectClass::Schema => Scope::Schema,
        ObjectClass::Database => Scope::Database,
    }
}

/// One desired privilege, resolved to a concrete object.
#[derive(Clone, Copy, Debug)]
struct Want<'a> {
    grantable: bool,
    origin: Declared<'a>,
}

/// Where a wanted grant is declared: a declaration and, for a `names:`
/// list, which of its names (the origin is spelled out only when shown).
#[derive(Clone, Copy, Debug)]
struct Declared<'a> {
    declaration: &'a DesiredGrant,
    name: Option<u32>,
}

impl Declared<'_> {
    fn origin(&self) -> Origin {
        self.declaration.origin_of(self.name)
    }
}

impl std::fmt::Display for Declared<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.origin().fmt(f)
    }
}

/// An object as the baseline and the state both name it: class, schema,
/// name, and a column or a function's argument types (no object has both),
/// borrowed.
type ObjectKey<'a> = (ObjectClass, Option<&'a str>, &'a str, Option<&'a str>);

/// The object a key names (the inverse of [`key_of`], up to a sequence's class).
fn object_of(class: ObjectClass, schema: Option<&str>, name: &str, sub: Option<&str>) -> ObjectRef {
    let (column, args) = if class == ObjectClass::Function { (None, sub) } else { (sub, None) };
    ObjectRef {
        class,
        schema: schema.map(Name::from),
        name: name.into(),
        column: column.map(Name::from),
        args: args.map(Name::from),
    }
}

/// What one declaration wants one grantee (`None`: PUBLIC) to hold on an object.
#[derive(Clone, Copy, Debug)]
struct WantEntry<'a> {
    grantee: Option<&'a RoleName>,
    declaration: &'a DesiredGrant,
    /// Which of the declaration's `names` (`None`: it names one object).
    name: Option<u32>,
}

impl<'a> WantEntry<'a> {
    /// The privileges it wants on an object of `class` (`ALL` depends on the class).
    fn privileges(&self, class: ObjectClass, server_version: u32) -> PrivilegeSet {
        match self.declaration.privileges {
            Privileges::All => class.acl_privilege_set(server_version),
            Privileges::Some(set) => set,
        }
    }

    fn want(&self) -> Want<'a> {
        Want { grantable: self.declaration.grantable, origin: self.declared() }
    }

    fn declared(&self) -> Declared<'a> {
        Declared { declaration: self.declaration, name: self.name }
    }
}

/// How the wanted grants name an object: tables and sequences share
/// pg_class's names, so a relation is named as a table whatever its kind
/// (a declaration `on: table` of a sequence names the sequence).
fn key_of(object: &ObjectRef) -> ObjectKey<'_> {
    (
        keyed_class(object.class),
        object.schema.as_deref(),
        &object.name,
        object.column.as_deref().or(object.args.as_deref()),
    )
}

/// The class [`key_of`] keys an object of `class` by: a sequence's is a table's.
fn keyed_class(class: ObjectClass) -> ObjectClass {
    if class == ObjectClass::Sequence { ObjectClass::Table } else { class }
}

/// The baseline's grants, indexed the way the state holds grants: by object.
///
/// `all_*_in_schema` declarations apply to every object of their class in
/// the schema and are kept once per (class, schema), not copied to each
/// object: the tables of a schema usually share their ACL too, so an object
/// whose wants are only schema-wide is compared once per distinct ACL.
/// Declarations of one object are kept by class and schema, then by name and
/// column: a `names:` list declares the objects of one schema in a row, which
/// then find their schema's map once and keep it in cache. Each list is
/// sorted by grantee (PUBLIC first, as in an [`Acl`](crate::grants::Acl)).
#[derive(Default)]
struct Wanted<'a> {
    schema_wide: HashMap<(ObjectClass, &'a str), Vec<WantEntry<'a>>, foldhash::fast::RandomState>,
    /// Per class and schema, the id of each object declared by name.
    per_object: Vec<ObjectsOfSchema<'a>>,
    schemas: HashMap<SchemaKey<'a>, usize, foldhash::fast::RandomState>,
    /// The schema of the last object pushed or looked up, and its slot in `per_object`.
    last: Option<(SchemaKey<'a>, Option<usize>)>,
    /// Each declaration of one object with the object's id, as pushed.
    pending: Vec<(u32, WantEntry<'a>)>,
    /// After [`Wanted::sort`], the same grouped by object (not a list per
    /// object: millions of small lists cost their allocations)...
    grouped: Vec<WantEntry<'a>>,
    /// ...each object's starting where `starts[id]` says.
    starts: Vec<u32>,
}

/// The class and schema of objects.
type SchemaKey<'a> = (ObjectClass, Option<&'a str>);

/// The objects of one class and schema declared by name, by name and column: their ids.
type ObjectsOfSchema<'a> = HashMap<(&'a str, Option<&'a str>), u32, foldhash::fast::RandomState>;

impl<'a> Wanted<'a> {
    fn slot(&mut self, schema: SchemaKey<'a>, create: bool) -> Option<usize> {
        if let Some((last, slot)) = self.last
            && last == schema
            && (slot.is_some() || !create)
        {
            return slot;
        }
        let slot = match self.schemas.get(&schema) {
            Some(&slot) => Some(slot),
            None if create => {
                self.per_object.push(HashMap::default());
                self.schemas.insert(schema, self.per_object.len() - 1);
                Some(self.per_object.len() - 1)
            }
            None => None,
        };
        self.last = Some((schema, slot));
        slot
    }

    fn push(&mut self, key: ObjectKey<'a>, entry: WantEntry<'a>) {
        let slot = self.slot((key.0, key.1), true).expect("created on demand");
        let next = self.starts.len() as u32;
        let id = *self.per_object[slot].entry((key.2, key.3)).or_insert(next);
        if id == next {
            self.starts.push(0); // one per object until `sort` makes them offsets
        }
        self.pending.push((id, entry));
    }

    /// Groups the declarations by object (a counting sort on the ids), each
    /// object's and each schema-wide list by grantee (PUBLIC first, as in an
    /// [`Acl`](crate::grants::Acl)).
    fn sort(&mut self) {
        let objects = self.starts.len();
        let mut at = vec![0u32; objects + 1];
        for (id, _) in &self.pending {
            at[*id as usize + 1] += 1;
        }
        for i in 1..=objects {
            at[i] += at[i - 1];
        }
        self.starts = at.clone();
        // each entry swapped into its object's place (an American flag sort):
        // a million entries for a large baseline are grouped where they are,
        // not copied into a second list
        let pending = &mut self.pending;
        for object in 0..objects {
            let end = self.starts[object + 1];
            while at[object] < end {
                let id = pending[at[object] as usize].0 as usize;
                if id == object {
                    at[object] += 1;
                } else {
                    pending.swap(at[object] as usize, at[id] as usize);
                    at[id] += 1;
                }
            }
        }
        // the ids dropped in place (the list keeps its buffer)
        self.grouped = std::mem::take(&mut self.pending).into_iter().map(|(_, entry)| entry).collect();
        for id in 0..objects {
            let (start, end) = (self.starts[id] as usize, self.starts[id + 1] as usize);
            self.grouped[start..end].sort_by(|a, b| a.grantee.cmp(&b.grantee));
        }
        for list in self.schema_wide.values_mut() {
            list.sort_by(|a, b| a.grantee.cmp(&b.grantee));
        }
    }

    /// The declarations of one object.
    fn declared(&self, id: u32) -> &[WantEntry<'a>] {
        &self.grouped[self.starts[id as usize] as usize..self.starts[id as usize + 1] as usize]
    }

    /// The id of the object `key` when the baseline declares it alone.
    fn id(&mut self, key: &ObjectKey<'a>) -> Option<u32> {
        let slot = self.slot((key.0, key.1), false)?;
        self.per_object[slot].get(&(key.2, key.3)).copied()
    }

    /// Every object declared alone, with its id.
    fn objects(&self) -> impl Iterator<Item = (ObjectKey<'a>, u32)> + '_ {
        self.schemas.iter().flat_map(move |(&(class, schema), &slot)| {
            self.per_object[slot].iter().map(move |(&(name, column), &id)| ((class, schema, name, column), id))
        })
    }

    /// The schema-wide wants that apply to an object of `class` in `schema`.
    fn schema_wide_for(&self, class: ObjectClass, schema: Option<&'a str>) -> &[WantEntry<'a>] {
        match (class, schema) {
            (ObjectClass::Table | ObjectClass::Sequence | ObjectClass::Function, Some(schema)) => {
                self.schema_wide.get(&(class, schema)).map_or(&[], Vec::as_slice)
            }
            _ => &[],
        }
    }
}

/// What comparing one object's ACL with what the baseline wants of it found,
/// before it is told as findings about that object.
#[derive(Default)]
struct ObjectVerdict<'a> {
    /// Grants held as declared.
    matched: usize,
    events: Vec<Event<'a>>,
}

/// One difference between an ACL and the baseline.
enum Event<'a> {
    /// Held and declared, with another grant option.
    GrantOption { grantee: &'a Grantee, privilege: Privilege, held: bool, origin: Declared<'a> },
    /// One of PostgreSQL's built-in grants to PUBLIC, not declared.
    BuiltinPublic { privilege: Privilege, grantable: bool },
    /// Held, not declared.
    Unwanted { grantee: &'a Grantee, privilege: Privilege, grantable: bool },
    /// Declared, not held.
    Missing { grantee: Option<&'a RoleName>, privilege: Privilege, want: Want<'a> },
}

/// The declaration that names a grant first (by origin), grantable if any of
/// the declarations of `privilege` asks for it.
fn want_of<'a>(
    wants: &[&[WantEntry<'a>]; 2],
    class: ObjectClass,
    server_version: u32,
    privilege: Privilege,
) -> Want<'a> {
    let mut out: Option<Want<'a>> = None;
    let declaring =
        wants.iter().flat_map(|l| l.iter()).filter(|w| w.privileges(class, server_version).contains(privilege));
    for w in declaring {
        let o = out.get_or_insert(w.want());
        o.grantable |= w.declaration.grantable;
        if w.declared().origin() < o.origin.origin() {
            o.origin = w.declared();
        }
    }
    out.expect("a wanted privilege has a declaration")
}

/// Compares an object's ACL with what the baseline wants of it (the
/// schema-wide wants and the object's own, each sorted by grantee), grantee by
/// grantee. What an owner holds comes with ownership: neither drift nor missing.
fn compare<'a>(
    class: ObjectClass,
    acl: &'a [AclEntry],
    wants: [&[WantEntry<'a>]; 2],
    owner: Option<&RoleName>,
    server_version: u32,
) -> ObjectVerdict<'a> {
    let mut out = ObjectVerdict::default();
    let (mut i, mut at) = (0, [0usize; 2]);
    loop {
        let heads = [
            acl.get(i).map(|e| e.grantee.role()),
            wants[0].get(at[0]).map(|w| w.grantee),
            wants[1].get(at[1]).map(|w| w.grantee),
        ];
        // PUBLIC (None) first, then roles by name: the order of an ACL
        let Some(grantee) = heads.into_iter().flatten().min() else { break };
        let held = acl.get(i).filter(|e| e.grantee.role() == grantee);
        i += usize::from(held.is_some());
        let mut mine: [&[WantEntry<'a>]; 2] = [&[], &[]];
        for k in 0..2 {
            let start = at[k];
            while wants[k].get(at[k]).is_some_and(|w| w.grantee == grantee) {
                at[k] += 1;
            }
            mine[k] = &wants[k][start..at[k]];
        }
        if grantee.is_some() && grantee == owner {
            continue;
        }
        let (mut want_p, mut want_g) = (PrivilegeSet::EMPTY, PrivilegeSet::EMPTY);
        for w in mine.iter().flat_map(|l| l.iter()) {
            let privileges = w.privileges(class, server_version);
            want_p |= privileges;
            if w.declaration.grantable {
                want_g |= privileges;
            }
        }
        let held_p = held.map_or(PrivilegeSet::EMPTY, |e| e.privileges);
        let matched = held_p & want_p;
        out.matched += matched.len();
        if let Some(e) = held {
            for p in matched.iter().filter(|&p| e.grantable.contains(p) != want_g.contains(p)) {
                let origin = want_of(&mine, class, server_version, p).origin;
                out.events.push(Event::GrantOption {
                    grantee: &e.grantee,
                    privilege: p,
                    held: e.grantable.contains(p),
                    origin,
                });
            }
            for p in held_p.minus(want_p).iter() {
                let grantable = e.grantable.contains(p);
                out.events.push(if is_builtin_public(&e.grantee, class, p) {
                    Event::BuiltinPublic { privilege: p, grantable }
                } else {
                    Event::Unwanted { grantee: &e.grantee, privilege: p, grantable }
                });
            }
        }
        for p in want_p.minus(held_p).iter() {
            out.events.push(Event::Missing { grantee, privilege: p, want: want_of(&mine, class, server_version, p) });
        }
    }
    out
}

type DefaultKey = (Grantee, RoleName, Option<String>, DefaultObjectType, Privilege);

struct Differ<'a> {
    baseline: &'a Baseline,
    state: &'a State,
    index: StateIndex<'a>,
    server_version: u32,
    scoring: &'a ScoringConfig,
    target: &'a TargetId,
    exceptions: Exceptions<'a>,
    /// What the scan did not read (empty when it is complete).
    unread: Unread,
    /// Declarations naming what was not read, left unjudged.
    not_judged: usize,
    findings: Vec<Finding>,
    observations: Vec<Finding>,
    coverage: Coverage,
}

/// What the classifier decided about something held by `grantee`.
enum Verdict {
    Skip,
    Finding(FindingKind),
}

impl<'a> Differ<'a> {
    /// A finding with its severity and score.
    #[allow(clippy::too_many_arguments)]
    fn finding(
        &self,
        kind: FindingKind,
        grantee: &Grantee,
        privilege: Privilege,
        grantable: bool,
        object: FindingObject,
        scope: Scope,
        detail: String,
    ) -> Finding {
        let class = if privilege == Privilege::Member && grantable { PrivilegeClass::Admin } else { privilege.class() };
        let facts = Facts { kind, class, scope, grantable, public: *grantee == Grantee::Public };
        Finding {
            kind,
            severity: self.scoring.severity(facts),
            score: self.scoring.score(facts),
            grantee: grantee.clone(),
            privilege: FindingPrivilege::One(privilege),
            grantable,
            object,
            exception_id: None,
            detail,
        }
    }

    /// Records a finding, or an observation.
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        kind: FindingKind,
        grantee: &Grantee,
        privilege: Privilege,
        grantable: bool,
        object: FindingObject,
        scope: Scope,
        detail: String,
    ) {
        let finding = self.finding(kind, grantee, privilege, grantable, object, scope, detail);
        if kind == FindingKind::Observed {
            self.observations.push(finding);
        } else {
            self.findings.push(finding);
        }
    }

    fn declared(&self, r: &RoleName) -> bool {
        self.baseline.roles.contains_key(r)
    }

    /// Held but not wanted: unauthorized for declared roles and PUBLIC, orphaned for
    /// undeclared ones, nothing for ignored ones.
    fn classify_unwanted(&self, grantee: &Grantee) -> Verdict {
        match grantee {
            Grantee::Public => Verdict::Finding(FindingKind::Unauthorized),
            Grantee::Role(r) if self.declared(r) => Verdict::Finding(FindingKind::Unauthorized),
            Grantee::Role(r) if self.baseline.ignore.ignores(r) => Verdict::Skip,
            Grantee::Role(r) if !self.state.roles.contains_key(r) => Verdict::Skip,
            Grantee::Role(_) => Verdict::Finding(FindingKind::Orphaned),
            // a PostgreSQL state holds no MySQL account
            Grantee::Account(_) => Verdict::Skip,
        }
    }

    fn role_object(r: &RoleName) -> FindingObject {
        FindingObject::of(ObjectType::Role, &ObjectRef::role(r))
    }

    fn roles(&mut self) {
        if self.unread.cluster() {
            // neither the roles nor their memberships were read
            self.not_judged += self.baseline.roles.len();
            return;
        }
        let state = self.state;
        for (name, want) in &self.baseline.roles {
            let Some(have) = state.roles.get(name) else {
                let n = want.grants.len();
                self.push(
                    FindingKind::Missing,
                    &Grantee::Role(name.clone()),
                    Privilege::Role,
                    false,
                    Self::role_object(name),
                    Scope::Cluster,
                    format!("role does not exist; its {n} declared grant entries cannot be held"),
                );
                continue;
            };
            for ((privilege, held), (_, wanted)) in have.flags().into_iter().zip(want.flags) {
                if held == wanted {
                    continue;
                }
                let (kind, detail) = if held {
                    (FindingKind::Unauthorized, format!("role has {privilege}; the baseline does not grant it"))
                } else {
                    (FindingKind::Missing, format!("the baseline declares {privilege}; the role does not have it"))
                };
                self.push(
                    kind,
                    &Grantee::Role(name.clone()),
                    privilege,
                    false,
                    Self::role_object(name),
                    Scope::Cluster,
                    detail,
                );
            }
            if let Some(wanted) = want.valid_until
                && have.valid_until != Some(wanted)
            {
                let later = have.valid_until.is_none_or(|h| h > wanted);
                let shown = have.valid_until.map(|h| h.to_rfc3339()).unwrap_or_else(|| "never".into());
                self.push(
                    if later { FindingKind::Unauthorized } else { FindingKind::Missing },
                    &Grantee::Role(name.clone()),
                    Privilege::ValidUntil,
                    false,
                    Self::role_object(name),
                    Scope::Cluster,
                    format!("VALID UNTIL is {shown}; the baseline says {}", wanted.to_rfc3339()),
                );
            }
        }
        for (name, have) in &state.roles {
            if have.superuser {
                self.push(
                    FindingKind::Observed,
                    &Grantee::Role(name.clone()),
                    Privilege::Superuser,
                    false,
                    Self::role_object(name),
                    Scope::Cluster,
                    "superuser: bypasses every privilege check and row-level security".into(),
                );
            }
            if self.declared(name) || self.baseline.ignore.ignores(name) {
                continue;
            }
            for (privilege, held) in have.flags() {
                if held {
                    self.push(
                        FindingKind::Orphaned,
                        &Grantee::Role(name.clone()),
                        privilege,
                        false,
                        Self::role_object(name),
                        Scope::Cluster,
                        format!("role {name} is not in the baseline and has {privilege}"),
                    );
                }
            }
        }
    }

    fn memberships(&mut self) {
        if self.unread.cluster() {
            return; // counted as not judged with the roles
        }
        let state = self.state;
        let mut seen = BTreeSet::new();
        for m in &state.memberships {
            let member = Grantee::Role(m.member.clone());
            let object = Self::role_object(&m.role);
            let declared = self.baseline.roles.get(&m.member).map(|r| r.member_of.get(&m.role).copied());
            match declared {
                Some(Some(want)) => {
                    self.coverage.baseline += 1;
                    seen.insert((m.member.clone(), m.role.clone()));
                    let options = [
                        ("ADMIN", m.admin, want.admin),
                        ("INHERIT", m.inherit, want.inherit),
                        ("SET", m.set, want.set),
                    ];
                    for (option, held, wanted) in options {
                        if held == wanted {
                            continue;
                        }
                        let (kind, detail) = if held {
                            (
                                FindingKind::Unauthorized,
                                format!("membership in {} has the {option} option; the baseline does not", m.role),
                            )
                        } else {
                            (
                                FindingKind::Missing,
                                format!("the baseline declares the {option} option on membership in {}", m.role),
                            )
                        };
                        self.push(
                            kind,
                            &member,
                            Privilege::Member,
                            option == "ADMIN" && held,
                            object.clone(),
                            Scope::Object,
                            detail,
                        );
                    }
                }
                Some(None) => {
                    self.coverage.drift += 1;
                    self.push(
                        FindingKind::Unauthorized,
                        &member,
                        Privilege::Member,
                        m.admin,
                        object,
                        Scope::Object,
                        format!("member of {} (admin: {}); the baseline does not declare it", m.role, m.admin),
                    )
                }
                None => {
                    if let Verdict::Finding(kind) = self.classify_unwanted(&member) {
                        self.coverage.drift += 1;
                        self.push(
                            kind,
                            &member,
                            Privilege::Member,
                            m.admin,
                            object,
                            Scope::Object,
                            format!("member of {} (admin: {}); the role is not in the baseline", m.role, m.admin),
                        );
                    }
                }
            }
        }
        for (name, want) in &self.baseline.roles {
            if !state.roles.contains_key(name) {
                continue;
            }
            for (parent, opts) in &want.member_of {
                if !seen.contains(&(name.clone(), parent.clone())) {
                    self.push(
                        FindingKind::Missing,
                        &Grantee::Role(name.clone()),
                        Privilege::Member,
                        opts.admin,
                        Self::role_object(parent),
                        Scope::Object,
                        format!("the baseline declares membership in {parent}; the role is not a member"),
                    );
                }
            }
        }
    }

    /// Indexes a desired grant by the objects it names into `out`. Whether a
    /// named relation or column exists is looked up only for those no grant
    /// of the state matched (see [`Differ::grants`]): a `names:` list of a
    /// large baseline names millions, and the catalog's own lookups are what
    /// cost. Other objects that do not exist become missing findings here.
    fn expand(&mut self, grantee: Option<&'a RoleName>, g: &'a DesiredGrant, out: &mut Wanted<'a>) {
        let listed = match &g.objects {
            Objects::One(target) => {
                return self.expand_one(WantEntry { grantee, declaration: g, name: None }, target, out);
            }
            Objects::Listed(listed) => listed,
        };
        // each name as if declared on its own
        for j in 0..listed.len() {
            let entry = WantEntry { grantee, declaration: g, name: Some(j as u32) };
            if !self.unread.is_empty() && self.unread_target(&listed.target(j)) {
                self.not_judged += 1;
                continue;
            }
            match listed {
                Listed::Schemas(names) => self.want_schema(entry, &names[j], out),
                Listed::Relations(_, s, names) => out.push((ObjectClass::Table, Some(s), &names[j], None), entry),
                Listed::Columns(s, tables, cols) => {
                    for c in cols.iter() {
                        out.push((ObjectClass::Column, Some(s), &tables[j], Some(c)), entry);
                    }
                }
                Listed::Functions(s, functions) => {
                    let (n, args) = &functions[j];
                    self.want_function(entry, s, n, args, out);
                }
            }
        }
    }

    /// [`Differ::expand`] of a declaration that names one target.
    fn expand_one(&mut self, entry: WantEntry<'a>, target: &'a Target, out: &mut Wanted<'a>) {
        // default privileges are compared (and counted) by `default_privileges`
        if !matches!(target, Target::Default { .. }) && self.unread_target(target) {
            self.not_judged += 1;
            if !matches!(target, Target::AllInSchema(..)) {
                return;
            }
        }
        match target {
            Target::Database(name) => match (name.as_deref(), self.index.database()) {
                (Some(n), Some(db)) if n != db => {} // another database: not this scan's business
                (_, Some(db)) => out.push((ObjectClass::Database, None, db, None), entry),
                (_, None) => {}
            },
            Target::Schema(s) => self.want_schema(entry, s, out),
            // a relation is keyed as a table whatever its kind (see `key_of`)
            Target::Relation(_, s, n) => out.push((ObjectClass::Table, Some(s), n, None), entry),
            Target::Columns(s, t, cols) => {
                for c in cols.iter() {
                    out.push((ObjectClass::Column, Some(s), t, Some(c)), entry);
                }
            }
            Target::Function(s, n, args) => self.want_function(entry, s, n, args, out),
            Target::AllInSchema(class, s) => {
                // a schema whose own chunk failed may exist: its relations that were read are covered
                if !self.state.schemas.contains_key(&**s) && !self.unread.schema(s) {
                    return self.missing_schema(entry, s);
                }
                out.schema_wide.entry((*class, s)).or_default().push(entry);
            }
            Target::Default { .. } => {}
        }
    }

    /// A declaration on schema `s`, or a missing finding when it does not exist.
    fn want_schema(&mut self, entry: WantEntry<'a>, s: &'a str, out: &mut Wanted<'a>) {
        if !self.state.schemas.contains_key(s) {
            return self.missing_schema(entry, s);
        }
        out.push((ObjectClass::Schema, None, s, None), entry);
    }

    fn missing_schema(&mut self, entry: WantEntry<'a>, s: &str) {
        let who = Grantee::of_role(entry.grantee);
        self.missing_object(&who, entry.declared(), &ObjectRef::schema(s), ObjectType::Schema, "schema does not exist");
    }

    /// A declaration on a function, or a missing finding when it does not exist.
    fn want_function(&mut self, entry: WantEntry<'a>, s: &'a str, n: &'a str, args: &'a str, out: &mut Wanted<'a>) {
        if self.index.function(s, n, args).is_none() {
            let function = object_of(ObjectClass::Function, Some(s), n, Some(args));
            let who = Grantee::of_role(entry.grantee);
            return self.missing_object(
                &who,
                entry.declared(),
                &function,
                ObjectType::Function,
                "function does not exist",
            );
        }
        out.push((ObjectClass::Function, Some(s), n, Some(args)), entry);
    }

    /// Whether a declaration on `target` names what the scan did not read
    /// (for `all_*_in_schema`: any of the schema's objects of its class).
    fn unread_target(&self, target: &Target) -> bool {
        let unread = &self.unread;
        if unread.is_empty() {
            return false;
        }
        match target {
            Target::Database(_) => unread.cluster(),
            Target::Schema(s) => unread.schema(s),
            Target::Function(s, ..) => unread.schema(s),
            Target::AllInSchema(ObjectClass::Function, s) => unread.schema(s),
            Target::AllInSchema(_, s) => unread.any_of_schema(s),
            Target::Relation(_, s, n) | Target::Columns(s, n, _) => unread.relation(s, n),
            Target::Default { schema: None, .. } => unread.cluster(),
            Target::Default { schema: Some(s), .. } => unread.schema(s),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn missing_object(
        &mut self,
        grantee: &Grantee,
        declared: Declared<'_>,
        missing: &ObjectRef,
        kind: ObjectType,
        why: &str,
    ) {
        let g = declared.declaration;
        let object = FindingObject::of(kind, missing);
        let class = g.class().unwrap_or(ObjectClass::Table);
        let privileges = g.privileges.expand(|| class.acl_privileges(self.server_version));
        for p in privileges {
            self.push(
                FindingKind::Missing,
                grantee,
                p,
                g.grantable,
                object.clone(),
                scope_of(class),
                format!("declared at {declared}: {why}"),
            );
        }
    }

    /// Every grant the baseline wants, by object.
    fn wanted(&mut self) -> Wanted<'a> {
        let mut want = Wanted::default();
        let baseline = self.baseline;
        for (name, role) in &baseline.roles {
            if !self.unread.cluster() && !self.state.roles.contains_key(name) {
                continue; // reported once as a missing role
            }
            for g in &role.grants {
                self.expand(Some(name), g, &mut want);
            }
        }
        for g in &baseline.public_grants {
            self.expand(None, g, &mut want);
        }
        want.sort();
        want
    }

    /// Held grants against wanted ones, object by object: the state's objects
    /// in order, then the objects the baseline names that hold no grant.
    fn grants(&mut self) {
        let mut wanted = self.wanted();
        let state: &'a State = self.state;
        let version = self.server_version;
        // objects whose wants are only schema-wide and that share their ACL and
        // owner compare alike: compared once, told for each
        type MemoKey<'k> = (usize, usize, Option<&'k RoleName>, ObjectClass);
        let mut memo: HashMap<MemoKey<'a>, ObjectVerdict<'a>, foldhash::fast::RandomState> = HashMap::default();
        let mut seen: HashSet<ObjectKey<'a>, foldhash::fast::RandomState> = HashSet::default();
        let mut matched = vec![false; wanted.starts.len().saturating_sub(1)];
        for (object, acl) in state.grants.objects() {
            let key = key_of(object);
            seen.insert(key);
            let id = wanted.id(&key);
            let wide = wanted.schema_wide_for(object.class, object.schema.as_deref());
            let owner = self.index.owner_of(object);
            match id {
                None => {
                    let memo_key = (acl.id(), wide.as_ptr() as usize, owner, object.class);
                    let verdict = memo
                        .entry(memo_key)
                        .or_insert_with(|| compare(object.class, acl.entries(), [wide, &[]], owner, version));
                    self.tell(object, verdict);
                }
                Some(id) => {
                    matched[id as usize] = true;
                    let verdict = compare(object.class, acl.entries(), [wide, wanted.declared(id)], owner, version);
                    self.tell(object, &verdict);
                }
            }
        }
        // what the baseline wants of objects that hold no grant at all is missing
        let mut bare: Vec<(ObjectKey<'a>, Option<u32>)> =
            wanted.objects().filter(|(_, id)| !matched[*id as usize]).map(|(k, id)| (k, Some(id))).collect();
        seen.extend(bare.iter().map(|(k, _)| *k));
        for &(class, schema) in wanted.schema_wide.keys() {
            let keyed = keyed_class(class);
            for (s, n, args) in self.index.names_in_schema(class, schema) {
                if seen.insert((keyed, Some(s), n, args)) {
                    bare.push(((keyed, Some(s), n, args), None));
                }
            }
        }
        for ((class, schema, name, column), id) in bare {
            let own = id.map_or(&[][..], |id| wanted.declared(id));
            // relations and columns named by the baseline were not looked up yet
            let class = match (class, schema) {
                (ObjectClass::Table, Some(s)) => self.index.relation(s, name).map(|r| r.kind.class()),
                (ObjectClass::Column, Some(s)) => self.index.relation(s, name).map(|_| class),
                _ => Some(class),
            };
            let Some(class) = class else {
                // the relation the baseline names (or whose columns it names) does not exist
                for w in own {
                    let (kind, why) = match (column, w.declaration.class()) {
                        (Some(_), _) => (ObjectType::Column, "table does not exist"),
                        (None, Some(ObjectClass::Sequence)) => (ObjectType::Sequence, "object does not exist"),
                        (None, _) => (ObjectType::Table, "object does not exist"),
                    };
                    let keyed = if column.is_some() { ObjectClass::Column } else { ObjectClass::Table };
                    let missing = object_of(keyed, schema, name, column);
                    self.missing_object(&Grantee::of_role(w.grantee), w.declared(), &missing, kind, why);
                }
                continue;
            };
            let object = object_of(class, schema, name, column);
            let wide = wanted.schema_wide_for(class, schema);
            let verdict = compare(class, &[], [wide, own], self.index.owner_of(&object), version);
            self.tell(&object, &verdict);
        }
    }

    /// Tells what comparing `object`'s ACL found as findings about it.
    fn tell(&mut self, object: &ObjectRef, verdict: &ObjectVerdict<'a>) {
        self.coverage.baseline += verdict.matched;
        if verdict.events.is_empty() {
            return;
        }
        let scope = scope_of(object.class);
        let at = finding_object(&self.index, object);
        for event in &verdict.events {
            match *event {
                Event::GrantOption { grantee, privilege, held, origin } => {
                    let (kind, detail) = if held {
                        (FindingKind::Unauthorized, format!("held WITH GRANT OPTION; {origin} declares it without"))
                    } else {
                        (FindingKind::Missing, format!("{origin} declares WITH GRANT OPTION; it is held without"))
                    };
                    self.push(kind, grantee, privilege, true, at.clone(), scope, detail);
                }
                Event::BuiltinPublic { privilege, grantable } => {
                    let (kind, detail) = match self.baseline.builtin_defaults {
                        BuiltinDefaults::Keep => (FindingKind::Observed, "PostgreSQL's built-in default for PUBLIC"),
                        BuiltinDefaults::Revoke => (
                            FindingKind::Unauthorized,
                            "PostgreSQL's built-in default for PUBLIC; the baseline says built-in defaults must be revoked",
                        ),
                    };
                    if kind != FindingKind::Observed {
                        self.coverage.drift += 1;
                    }
                    self.push(kind, &Grantee::Public, privilege, grantable, at.clone(), scope, detail.into());
                }
                Event::Unwanted { grantee, privilege, grantable } => {
                    self.unwanted_grant(GrantRef { object, grantee, privilege, grantable }, scope)
                }
                Event::Missing { grantee, privilege, want } => {
                    let grantee = Grantee::of_role(grantee);
                    let detail = format!("declared at {}; not held", want.origin);
                    self.push(FindingKind::Missing, &grantee, privilege, want.grantable, at.clone(), scope, detail);
                }
            }
        }
    }

    fn unwanted_grant(&mut self, g: GrantRef, scope: Scope) {
        if let Verdict::Finding(kind) = self.classify_unwanted(g.grantee) {
            let object = finding_object(&self.index, g.object);
            if let Some(role) = g.grantee.role()
                && self.overlay(g, role, &object, scope)
            {
                match self.findings.last().map(|f| f.kind) {
                    Some(FindingKind::Excepted) => self.coverage.exceptions += 1,
                    _ => self.coverage.drift += 1,
                }
                return;
            }
            self.coverage.drift += 1;

            let detail = match (g.grantee, kind) {
                (Grantee::Public, _) => "granted to PUBLIC (every role); the baseline does not allow it".to_owned(),
                (_, FindingKind::Orphaned) => "held by a role that is not in the baseline".to_owned(),
                _ => "not declared in the baseline".to_owned(),
            };
            self.push(kind, g.grantee, g.privilege, g.grantable, object, scope, detail);
        }
    }

    /// Lays the exception tickets over an unwanted grant; true when one covers it.
    fn overlay(&mut self, g: GrantRef, role: &RoleName, object: &FindingObject, scope: Scope) -> bool {
        let target = self.target;
        let Some(o) = self.exceptions.overlay(|t| t.covers(target, role, g.privilege, g.object)) else { return false };
        let (kind, t, factor, detail) = (o.kind, o.ticket, o.factor, o.detail);
        let mut finding = self.finding(kind, g.grantee, g.privilege, g.grantable, object.clone(), scope, detail);
        finding.score = round2(finding.score * factor);
        finding.exception_id = Some(t.id().to_owned());
        self.findings.push(finding);
        true
    }

    fn default_object(dp_schema: Option<&String>, on: DefaultObjectType, for_role: &RoleName) -> FindingObject {
        FindingObject::DefaultPrivileges { for_role: for_role.clone(), schema: dp_schema.cloned(), on }
    }

    fn default_privileges(&mut self) {
        let mut want: BTreeMap<DefaultKey, Want<'a>> = BTreeMap::new();
        let baseline = self.baseline;
        let mut add = |grantee: Grantee, g: &'a DesiredGrant| {
            if let Some(Target::Default { on, schema, for_role }) = g.target() {
                for p in g.privileges.expand(|| on.acl_privileges(self.server_version)) {
                    let w = want
                        .entry((grantee.clone(), for_role.clone(), schema.clone(), *on, p))
                        .or_insert(Want { grantable: false, origin: Declared { declaration: g, name: None } });
                    w.grantable |= g.grantable;
                }
            }
        };
        for (name, role) in &baseline.roles {
            for g in &role.grants {
                add(Grantee::Role(name.clone()), g);
            }
        }
        for g in &baseline.public_grants {
            add(Grantee::Public, g);
        }
        let mut held = BTreeSet::new();
        for dp in &self.state.default_privileges {
            if dp.is_creators_own() {
                continue; // the creator's own privileges on what it creates
            }
            let key: DefaultKey = (dp.grantee.clone(), dp.for_role.clone(), dp.schema.clone(), dp.on, dp.privilege);
            let object = Self::default_object(dp.schema.as_ref(), dp.on, &dp.for_role);
            let scope = if dp.schema.is_some() { Scope::Schema } else { Scope::Database };
            if let Some(w) = want.get(&key) {
                held.insert(key);
                self.coverage.baseline += 1;
                if dp.grantable != w.grantable {
                    let kind = if dp.grantable { FindingKind::Unauthorized } else { FindingKind::Missing };
                    self.push(
                        kind,
                        &dp.grantee,
                        dp.privilege,
                        true,
                        object,
                        scope,
                        format!("grant option differs from {}", w.origin),
                    );
                }
                continue;
            }
            if dp.is_builtin_public() {
                if baseline.builtin_defaults == BuiltinDefaults::Revoke {
                    self.coverage.drift += 1;
                    self.push(
                        FindingKind::Unauthorized,
                        &dp.grantee,
                        dp.privilege,
                        dp.grantable,
                        object,
                        scope,
                        "built-in default for PUBLIC kept in this role's default privileges; the baseline says revoke"
                            .into(),
                    );
                }
                continue;
            }
            if let Verdict::Finding(kind) = self.classify_unwanted(&dp.grantee) {
                self.coverage.drift += 1;
                self.push(
                    kind,
                    &dp.grantee,
                    dp.privilege,
                    dp.grantable,
                    object,
                    scope,
                    "default privilege: every new object will carry this grant; the baseline does not declare it"
                        .into(),
                );
            }
        }
        for (key, w) in want {
            if held.contains(&key) {
                continue;
            }
            let (grantee, for_role, schema, on, privilege) = key;
            let unread = match &schema {
                None => self.unread.cluster(),
                Some(s) => self.unread.schema(s),
            };
            if unread {
                self.not_judged += 1;
                continue;
            }
            if !self.unread.cluster() && matches!(&grantee, Grantee::Role(r) if !self.state.roles.contains_key(r)) {
                continue;
            }
            let scope = if schema.is_some() { Scope::Schema } else { Scope::Database };
            self.push(
                FindingKind::Missing,
                &grantee,
                privilege,
                w.grantable,
                Self::default_object(schema.as_ref(), on, &for_role),
                scope,
                format!("declared at {}; no such default privilege", w.origin),
            );
        }
    }

    fn ownership(&mut self) {
        let baseline = self.baseline;
        for (name, role) in &baseline.roles {
            let me = Grantee::Role(name.clone());
            for target in &role.owns {
                if self.unread_target(target) {
                    self.not_judged += 1;
                    if !matches!(target, Target::AllInSchema(..)) {
                        continue;
                    }
                }
                let objects: Vec<ObjectRef> = match target {
                    Target::Database(n) => match (n.as_deref(), self.index.database()) {
                        (Some(n), Some(db)) if n != db => continue,
                        (_, Some(db)) => vec![ObjectRef::database(db)],
                        (_, None) => continue,
                    },
                    Target::Schema(s) => vec![ObjectRef::schema(s)],
                    Target::Relation(c, s, n) => vec![ObjectRef::in_schema(*c, s, n)],
                    Target::Function(s, n, args) => vec![ObjectRef::function(s, n, args)],
                    Target::AllInSchema(c, s) => self.index.all_in_schema(*c, s),
                    Target::Columns(..) | Target::Default { .. } => continue,
                };
                for o in objects {
                    let fo = finding_object(&self.index, &o);
                    let scope = scope_of(o.class);
                    match self.index.owner_of(&o) {
                        None => self.push(
                            FindingKind::Missing,
                            &me,
                            Privilege::Owner,
                            false,
                            fo,
                            scope,
                            "the baseline declares this owner; the object does not exist".into(),
                        ),
                        Some(owner) if owner == name => {}
                        Some(owner) => {
                            self.push(
                                FindingKind::Missing,
                                &me,
                                Privilege::Owner,
                                false,
                                fo.clone(),
                                scope,
                                format!("the baseline declares {name} as owner; {owner} owns it"),
                            );
                            let holder = Grantee::Role(owner.clone());
                            if let Verdict::Finding(kind) = self.classify_unwanted(&holder) {
                                self.push(
                                    kind,
                                    &holder,
                                    Privilege::Owner,
                                    false,
                                    fo,
                                    scope,
                                    format!("owns it; the baseline declares {name} as owner"),
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// Policies on a table without row-level security enabled are not enforced: say so.
    fn rls(&mut self) {
        let state = self.state;
        let mut tables: BTreeSet<(&str, &str)> = BTreeSet::new();
        for p in &state.policies {
            tables.insert((&p.schema, &p.table));
        }
        for (s, t) in tables {
            if let Some(r) = self.index.relation(s, t)
                && !r.rls_enabled
            {
                let object = finding_object(&self.index, &ObjectRef::in_schema(ObjectClass::Table, s, t));
                self.push(
                    FindingKind::Observed,
                    &Grantee::Role(r.owner.clone()),
                    Privilege::RowLevelSecurity,
                    false,
                    object,
                    Scope::Object,
                    "row-level security policies exist but ROW LEVEL SECURITY is disabled: they are not enforced"
                        .into(),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod model_tests;

#[cfg(test)]
mod overlay_tests;

#[cfg(test)]
mod partial_tests;
