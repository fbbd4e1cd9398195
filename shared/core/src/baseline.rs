//! The baseline (contract: docs/CONTRACTS.md#baseline): the desired state,
//! resolved and typed.
//!
//! Parsing has two steps. Serde reads the YAML into a
//! [`Manifest`]; then [`Baseline::resolve`] checks
//! what serde cannot (a table name must be schema-qualified, a privilege must
//! apply to its object) and builds the typed [`Baseline`] the diff consumes.
//! Every error names the file and the path inside it.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::manifest::{
    BuiltinDefaults, GrantSpec, MANIFEST_VERSION, Manifest, On, PrivilegeSpec, RoleFilter, parse_manifest,
};
use crate::model::{DefaultObjectType, Name, ObjectClass, ObjectRef, Privilege, PrivilegeSet, RoleName};
use crate::names::{parse_function, split_qualified, unquote};
pub use crate::yaml::{FileError, parse_yaml};

/// A resolved object reference in a baseline. Schema, relation and column
/// names are [`Name`]s, one copy of each per baseline: a large baseline names
/// the same schemas, tables and columns a million times (`names:` lists).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// The database (`None`: the target database, whatever its name).
    Database(Option<String>),
    /// A schema.
    Schema(Name),
    /// A relation of class table or sequence, by schema and name.
    Relation(ObjectClass, Name, Name),
    /// Columns of a table.
    Columns(Name, Name, Arc<[Name]>),
    /// A function by schema, name and argument types (as `oidvectortypes` spells them).
    Function(String, String, String),
    /// Every object of the class in a schema, resolved against the live catalog at diff time.
    AllInSchema(ObjectClass, Name),
    /// Default privileges.
    Default {
        /// Object type.
        on: DefaultObjectType,
        /// Schema or global.
        schema: Option<String>,
        /// Creating role.
        for_role: RoleName,
    },
}

impl Target {
    /// The class of the objects this names.
    pub fn class(&self) -> Option<ObjectClass> {
        Some(match self {
            Target::Database(_) => ObjectClass::Database,
            Target::Schema(_) => ObjectClass::Schema,
            Target::Relation(c, _, _) | Target::AllInSchema(c, _) => *c,
            Target::Columns(..) => ObjectClass::Column,
            Target::Function(..) => ObjectClass::Function,
            Target::Default { .. } => return None,
        })
    }
}

/// A privilege set of a desired grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privileges {
    /// ALL: expanded per object class and server version.
    All,
    /// Exactly these.
    Some(PrivilegeSet),
}

impl Privileges {
    /// The privileges meant: these, or for `ALL` what `all()` gives (the
    /// object class's ACL privileges on the server's version).
    pub fn expand(&self, all: impl FnOnce() -> Vec<Privilege>) -> PrivilegeSet {
        match self {
            Privileges::All => all().into_iter().collect(),
            Privileges::Some(p) => *p,
        }
    }
}

/// One desired grant after validation: one entry of a role's `grants`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredGrant {
    /// Privileges.
    pub privileges: Privileges,
    /// The object(s).
    pub objects: Objects,
    /// WITH GRANT OPTION.
    pub grantable: bool,
    /// Where it was declared, e.g. `roles.app_rw.grants[1]`; for a `names:`
    /// list, its first name's (`roles.app_rw.grants[1].names[0]`: each name's
    /// is [`DesiredGrant::origin_of`]).
    pub origin: Origin,
}

/// What a grant entry names: one target, or the objects of a `names:` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Objects {
    /// `name:` (or a schema, for `all_*_in_schema` and default privileges).
    One(Target),
    /// `names:`, kept as one declaration that holds its names: a generated
    /// baseline of a large catalog lists a million of them, which took 112
    /// bytes apiece as declarations of their own.
    Listed(Listed),
}

/// The objects of a `names:` list, in the order written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed {
    /// Schemas.
    Schemas(Arc<[Name]>),
    /// Relations of class table or sequence in a schema.
    Relations(ObjectClass, Name, Arc<[Name]>),
    /// The same columns of tables in a schema: schema, tables, columns.
    Columns(Name, Arc<[Name]>, Arc<[Name]>),
    /// Functions in a schema, by name and argument types.
    Functions(String, Arc<[(String, String)]>),
}

impl Listed {
    /// How many objects it names.
    pub fn len(&self) -> usize {
        match self {
            Listed::Schemas(n) => n.len(),
            Listed::Relations(_, _, n) | Listed::Columns(_, n, _) => n.len(),
            Listed::Functions(_, f) => f.len(),
        }
    }

    /// Whether it names none (never, once resolved).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `index`-th object, as a target of its own.
    pub fn target(&self, index: usize) -> Target {
        match self {
            Listed::Schemas(n) => Target::Schema(n[index].clone()),
            Listed::Relations(c, s, n) => Target::Relation(*c, s.clone(), n[index].clone()),
            Listed::Columns(s, t, cols) => Target::Columns(s.clone(), t[index].clone(), cols.clone()),
            Listed::Functions(s, f) => Target::Function(s.clone(), f[index].0.clone(), f[index].1.clone()),
        }
    }

    /// The list of `targets`: one schema's relations, columns or functions,
    /// or schemas (a run [`same_run`] groups).
    fn of(targets: &[Target]) -> Self {
        let names = || targets.iter().filter_map(listed_name).cloned().collect();
        match &targets[0] {
            Target::Relation(class, s, _) => Listed::Relations(*class, s.clone(), names()),
            Target::Columns(s, _, cols) => Listed::Columns(s.clone(), names(), cols.clone()),
            Target::Function(s, ..) => Listed::Functions(
                s.clone(),
                targets
                    .iter()
                    .filter_map(|t| match t {
                        Target::Function(_, n, args) => Some((n.clone(), args.clone())),
                        _ => None,
                    })
                    .collect(),
            ),
            _ => Listed::Schemas(names()),
        }
    }

    /// The class of the objects it names.
    pub fn class(&self) -> ObjectClass {
        match self {
            Listed::Schemas(_) => ObjectClass::Schema,
            Listed::Relations(c, ..) => *c,
            Listed::Columns(..) => ObjectClass::Column,
            Listed::Functions(..) => ObjectClass::Function,
        }
    }
}

impl DesiredGrant {
    /// The class of the objects it names (`None`: default privileges).
    pub fn class(&self) -> Option<ObjectClass> {
        match &self.objects {
            Objects::One(t) => t.class(),
            Objects::Listed(l) => Some(l.class()),
        }
    }

    /// The one target it names, when it is not a `names:` list.
    pub fn target(&self) -> Option<&Target> {
        match &self.objects {
            Objects::One(t) => Some(t),
            Objects::Listed(_) => None,
        }
    }

    /// Each object it names with where it is declared: itself, or each name
    /// of its `names:` list (`roles.a.grants[0].names[7]`).
    pub fn targets(&self) -> impl Iterator<Item = (Target, Origin)> + '_ {
        let (one, listed) = match &self.objects {
            Objects::One(t) => (Some((t.clone(), self.origin.clone())), None),
            Objects::Listed(l) => (None, Some(l)),
        };
        let listed = listed
            .into_iter()
            .flat_map(move |l| (0..l.len()).map(move |j| (l.target(j), self.origin_of(Some(j as u32)))));
        one.into_iter().chain(listed)
    }

    /// Where the object it names is declared: the entry, or the `index`-th
    /// name it holds (a list's declaration's own origin is its first name's).
    pub fn origin_of(&self, index: Option<u32>) -> Origin {
        match (index, self.origin.name) {
            (Some(j), first) => Origin { path: self.origin.path.clone(), name: Some(first.unwrap_or(0) + j) },
            (None, _) => self.origin.clone(),
        }
    }
}

/// Where in the baseline a grant is declared: `roles.app_rw.grants[1]`, or
/// `roles.app_rw.grants[1].names[7]` for one of an entry's `names`. The
/// entries of a `names:` list share their path (a large baseline lists
/// millions of names); it is spelled out when shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    path: std::sync::Arc<str>,
    name: Option<u32>,
}

impl Origin {
    /// The entry at `path`.
    pub fn new(path: &str) -> Self {
        Self { path: path.into(), name: None }
    }

    /// The `index`-th of the `names` of the entry at `entry`.
    pub fn listed(entry: &Origin, index: usize) -> Self {
        Self { path: entry.path.clone(), name: Some(index as u32) }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)?;
        match self.name {
            Some(j) => write!(f, ".names[{j}]"),
            None => Ok(()),
        }
    }
}

/// In the order of the paths as written out.
impl Ord for Origin {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if self.path == other.path {
            return match (self.name, other.name) {
                (Some(a), Some(b)) => a.to_string().cmp(&b.to_string()),
                (a, b) => a.is_some().cmp(&b.is_some()),
            };
        }
        self.to_string().cmp(&other.to_string())
    }
}

impl PartialOrd for Origin {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Membership options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MembershipOptions {
    /// WITH ADMIN OPTION.
    pub admin: bool,
    /// INHERIT.
    pub inherit: bool,
    /// SET.
    pub set: bool,
}

/// A declared role after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredRole {
    /// The boolean attributes, in [`crate::model::RoleAttributes::flags`] order.
    pub flags: [(Privilege, bool); 6],
    /// VALID UNTIL, when declared.
    pub valid_until: Option<DateTime<Utc>>,
    /// Memberships by parent role.
    pub member_of: BTreeMap<RoleName, MembershipOptions>,
    /// Objects it must own.
    pub owns: Vec<Target>,
    /// Grants.
    pub grants: Vec<DesiredGrant>,
}

/// The validated baseline.
#[derive(Debug, Clone)]
pub struct Baseline {
    /// The file it came from.
    pub source: String,
    /// Declared roles.
    pub roles: BTreeMap<RoleName, DesiredRole>,
    /// Grants PUBLIC may hold beyond the built-in defaults.
    pub public_grants: Vec<DesiredGrant>,
    /// Whether PUBLIC's built-in defaults must be revoked.
    pub builtin_defaults: BuiltinDefaults,
    /// Roles left alone.
    pub ignore: RoleFilter,
}

impl Baseline {
    /// Where the baseline declares `privilege` on `object` for `role`, if it
    /// does (`roles.<role>.grants[i]`): standing access, which no ticket's end
    /// takes away. Read without the catalog: `all_*_in_schema` matches any
    /// object of its class in the schema, `ALL` any privilege of the class.
    pub fn declares(&self, role: &RoleName, privilege: Privilege, object: &ObjectRef) -> Option<Origin> {
        self.roles.get(role)?.grants.iter().find_map(|g| {
            let index = match &g.objects {
                Objects::Listed(l) => Some(listed_index(l, object)? as u32),
                Objects::One(t) => target_names(t, object).then_some(None)?,
            };
            // ALL as the newest server knows it: a privilege the class can hold at all
            let privileges = g.privileges.expand(|| object.class.acl_privileges(u32::MAX));
            privileges.contains(privilege).then(|| g.origin_of(index))
        })
    }

    /// Who the baseline says owns the objects of `class` in `schema`: the role
    /// that `owns` them all (`all_tables_in_schema`, `all_sequences_in_schema`),
    /// else the schema's declared owner.
    pub fn declared_owner(&self, class: ObjectClass, schema: &str) -> Option<&RoleName> {
        let owning = |wanted: &dyn Fn(&Target) -> bool| {
            self.roles.iter().find(|(_, r)| r.owns.iter().any(wanted)).map(|(name, _)| name)
        };
        owning(&|t| matches!(t, Target::AllInSchema(c, s) if *c == class && s == schema))
            .or_else(|| owning(&|t| matches!(t, Target::Schema(s) if s == schema)))
    }

    /// Parses and validates YAML; `file` labels errors.
    pub fn from_yaml(text: &str, file: &str) -> Result<Self, FileError> {
        let manifest = parse_manifest(text, file)?;
        Self::resolve(&manifest, file)
    }

    /// Validates a parsed manifest.
    pub fn resolve(m: &Manifest, file: &str) -> Result<Self, FileError> {
        let err = |path: String, message: String| FileError::at(file, path, message);
        if m.version != MANIFEST_VERSION {
            return Err(err(
                "version".into(),
                format!("unsupported version {}; this grantwarden reads version {MANIFEST_VERSION}", m.version),
            ));
        }
        let ignore = RoleFilter::new(&m.ignore_roles).map_err(|(i, msg)| err(format!("ignore_roles[{i}]"), msg))?;
        let mut roles = BTreeMap::new();
        let mut names = Names::default();
        for (name, spec) in &m.roles {
            let base = format!("roles.{}", path_key(name));
            let role = RoleName::new(name.clone()).map_err(|e| err(base.clone(), e.to_string()))?;
            if name == "PUBLIC" {
                return Err(err(base, "PUBLIC is not a role; declare its grants under `public:`".into()));
            }
            let mut member_of = BTreeMap::new();
            for (i, mo) in spec.member_of.iter().enumerate() {
                let p = format!("{base}.member_of[{i}]");
                let parent = RoleName::new(mo.role.clone()).map_err(|e| err(p.clone(), e.to_string()))?;
                if parent == role {
                    return Err(err(p, format!("role {name:?} cannot be a member of itself")));
                }
                let opts = MembershipOptions { admin: mo.admin, inherit: mo.inherit, set: mo.set };
                if member_of.insert(parent, opts).is_some() {
                    return Err(err(p, format!("role {:?} is listed twice", mo.role)));
                }
            }
            let mut owns = Vec::new();
            for (i, o) in spec.owns.iter().enumerate() {
                let p = format!("{base}.owns[{i}]");
                let t =
                    resolve_target(o.on, o.name.as_deref(), o.schema.as_deref(), None, None, &p, &mut names, &|| {
                        format!("{p}.name")
                    })
                    .map_err(|(path, msg)| err(path, msg))?;
                if matches!(t, Target::Columns(..) | Target::Default { .. }) {
                    return Err(err(
                        format!("{p}.on"),
                        "ownership applies to database, schema, table, sequence, function or all_*_in_schema".into(),
                    ));
                }
                owns.push(t);
            }
            let grants =
                resolve_grants(&spec.grants, &format!("{base}.grants"), &mut names).map_err(|(p, msg)| err(p, msg))?;
            roles.insert(
                role,
                DesiredRole {
                    flags: [
                        (Privilege::Superuser, spec.superuser),
                        (Privilege::CreateRole, spec.createrole),
                        (Privilege::CreateDb, spec.createdb),
                        (Privilege::Login, spec.login),
                        (Privilege::Replication, spec.replication),
                        (Privilege::BypassRls, spec.bypassrls),
                    ],
                    valid_until: spec.valid_until,
                    member_of,
                    owns,
                    grants,
                },
            );
        }
        let public_grants =
            resolve_grants(&m.public.grants, "public.grants", &mut names).map_err(|(p, msg)| err(p, msg))?;
        Ok(Baseline {
            source: file.to_owned(),
            roles,
            public_grants,
            builtin_defaults: m.public.builtin_defaults,
            ignore,
        })
    }
}

/// Whether `target` names `object` (read without the catalog: `all_*_in_schema`
/// names any object of its class in the schema).
fn target_names(target: &Target, object: &ObjectRef) -> bool {
    let same_schema = |s: &str| object.schema.as_deref() == Some(s);
    match target {
        Target::Database(name) => {
            object.class == ObjectClass::Database && name.as_ref().is_none_or(|n| *n == object.name)
        }
        Target::Schema(s) => object.class == ObjectClass::Schema && object.name == *s,
        Target::Relation(class, s, n) => object.class == *class && same_schema(s) && object.name == *n,
        Target::Columns(s, t, cols) => {
            object.class == ObjectClass::Column
                && same_schema(s)
                && object.name == *t
                && object.column.as_ref().is_some_and(|c| cols.iter().any(|k| k == c))
        }
        Target::Function(s, n, args) => {
            object.class == ObjectClass::Function
                && same_schema(s)
                && object.name == *n
                && object.args.as_deref() == Some(args.as_str())
        }
        Target::AllInSchema(class, s) => object.class == *class && same_schema(s),
        Target::Default { .. } => false,
    }
}

/// Which of a `names:` list's objects `object` is, if any.
fn listed_index(listed: &Listed, object: &ObjectRef) -> Option<usize> {
    let same_schema = |s: &str| object.schema.as_deref() == Some(s);
    match listed {
        Listed::Schemas(names) if object.class == ObjectClass::Schema => names.iter().position(|n| object.name == *n),
        Listed::Relations(class, s, names) if object.class == *class && same_schema(s) => {
            names.iter().position(|n| object.name == *n)
        }
        Listed::Columns(s, tables, cols)
            if object.class == ObjectClass::Column
                && same_schema(s)
                && object.column.as_ref().is_some_and(|c| cols.iter().any(|k| k == c)) =>
        {
            tables.iter().position(|t| object.name == *t)
        }
        Listed::Functions(s, functions) if object.class == ObjectClass::Function && same_schema(s) => {
            functions.iter().position(|(n, args)| object.name == *n && object.args.as_deref() == Some(args.as_str()))
        }
        _ => None,
    }
}

/// A map key as it appears in a path: bare when simple, quoted otherwise.
fn path_key(k: &str) -> String {
    if !k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') {
        k.to_owned()
    } else {
        format!("{k:?}")
    }
}

/// One copy of each name a baseline resolves (see [`Name`]).
#[derive(Default)]
struct Names(HashSet<Name, foldhash::fast::RandomState>);

impl Names {
    fn get(&mut self, name: &str) -> Name {
        if let Some(kept) = self.0.get(name) {
            return kept.clone();
        }
        let kept: Name = name.into();
        self.0.insert(kept.clone());
        kept
    }
}

fn resolve_grants(
    specs: &[GrantSpec],
    base: &str,
    names_seen: &mut Names,
) -> Result<Vec<DesiredGrant>, (String, String)> {
    let mut out = Vec::with_capacity(specs.len());
    for (i, g) in specs.iter().enumerate() {
        let p = format!("{base}[{i}]");
        if g.privileges.is_empty() {
            return Err((format!("{p}.privileges"), "at least one privilege is required".into()));
        }
        let (schema, for_role) = (g.schema.as_deref(), g.for_role.as_deref());
        let origin = Origin::new(&p);
        // the columns are the entry's, shared by its names
        let columns: Option<Arc<[Name]>> =
            (!g.columns.is_empty()).then(|| g.columns.iter().map(|c| names_seen.get(c)).collect());
        if g.names.is_empty() {
            let target =
                resolve_target(g.on, g.name.as_deref(), schema, columns.as_ref(), for_role, &p, names_seen, &|| {
                    format!("{p}.name")
                })?;
            let privileges = checked_privileges(&g.privileges, &target, g.on, &p)?;
            out.push(DesiredGrant {
                privileges,
                objects: Objects::One(target),
                grantable: g.with_grant_option,
                origin,
            });
            continue;
        }
        // `names: [a, b]` is `name: a` and `name: b`, each with its own origin,
        // kept as one declaration
        if g.name.is_some() {
            return Err((format!("{p}.names"), "give `name` or `names`, not both".into()));
        }
        if !matches!(g.on, On::Schema | On::Table | On::Sequence | On::Function | On::Column) {
            return Err((
                format!("{p}.names"),
                format!("`names` applies to on: schema, table, sequence, function or column, not {}", g.on.keyword()),
            ));
        }
        // the privileges are the entry's, checked once against the class its `on` names
        let mut privileges: Option<Privileges> = None;
        let mut targets = Vec::with_capacity(g.names.len());
        for (j, name) in g.names.iter().enumerate() {
            // an error about one of `names` points at it; one about `schema` or `columns` at the grant's key
            let target = resolve_target(g.on, Some(name), schema, columns.as_ref(), for_role, &p, names_seen, &|| {
                Origin::listed(&origin, j).to_string()
            })?;
            if privileges.is_none() {
                privileges = Some(checked_privileges(&g.privileges, &target, g.on, &p)?);
            }
            targets.push(target);
        }
        let privileges = privileges.expect("`names` is not empty here");
        // one declaration per run of names in one schema (a generated baseline
        // gives `schema:`, so one for the entry), from its first name's index
        let mut start = 0;
        for run in targets.chunk_by(same_run) {
            out.push(DesiredGrant {
                privileges,
                objects: Objects::Listed(Listed::of(run)),
                grantable: g.with_grant_option,
                origin: Origin::listed(&origin, start),
            });
            start += run.len();
        }
    }
    Ok(out)
}

/// The name a `names:` entry gives a schema, relation or table of columns.
fn listed_name(target: &Target) -> Option<&Name> {
    match target {
        Target::Schema(n) | Target::Relation(_, _, n) | Target::Columns(_, n, _) => Some(n),
        _ => None,
    }
}

/// Whether two targets of one `names:` entry can share a [`Listed`]: the same schema.
fn same_run(a: &Target, b: &Target) -> bool {
    match (a, b) {
        (Target::Relation(_, s, _), Target::Relation(_, t, _)) | (Target::Columns(s, ..), Target::Columns(t, ..)) => {
            s == t
        }
        (Target::Function(s, ..), Target::Function(t, ..)) => s == t,
        (Target::Schema(_), Target::Schema(_)) => true,
        _ => false,
    }
}

/// The privileges of a grant entry, each checked against what its target accepts.
fn checked_privileges(
    specs: &[PrivilegeSpec],
    target: &Target,
    on: On,
    p: &str,
) -> Result<Privileges, (String, String)> {
    if specs.contains(&PrivilegeSpec::All) {
        return Ok(Privileges::All);
    }
    let mut set = PrivilegeSet::EMPTY;
    for (j, spec) in specs.iter().enumerate() {
        let PrivilegeSpec::One(privilege) = *spec else { unreachable!("ALL handled above") };
        let accepted = match target {
            Target::Default { on, .. } => on.acl_privileges(u32::MAX).contains(&privilege),
            t => t.class().is_some_and(|c| c.accepts(privilege)),
        };
        if !accepted {
            return Err((format!("{p}.privileges[{j}]"), format!("{privilege} cannot be granted on {}", on.keyword())));
        }
        set.insert(privilege);
    }
    Ok(Privileges::Some(set))
}

/// Resolves one object of a grant or ownership entry at `p`; `name_path` is
/// where its name is (written out only for an error).
#[allow(clippy::too_many_arguments)]
fn resolve_target(
    on: On,
    name: Option<&str>,
    schema: Option<&str>,
    columns: Option<&Arc<[Name]>>,
    for_role: Option<&str>,
    p: &str,
    names: &mut Names,
    name_path: &dyn Fn() -> String,
) -> Result<Target, (String, String)> {
    let need_name = || name.ok_or_else(|| (name_path(), format!("`name` is required for on: {}", on.keyword())));
    let need_schema =
        || schema.ok_or_else(|| (format!("{p}.schema"), format!("`schema` is required for on: {}", on.keyword())));
    let no_columns = || {
        if columns.is_none() {
            Ok(())
        } else {
            Err((format!("{p}.columns"), "`columns` only applies to on: column".to_owned()))
        }
    };
    let no_for_role = || {
        if for_role.is_none() {
            Ok(())
        } else {
            Err((format!("{p}.for_role"), "`for_role` only applies to on: default_*".to_owned()))
        }
    };
    if let Some(t) = on.default_type() {
        no_columns()?;
        if name.is_some() {
            return Err((name_path(), "default privileges take `schema` and `for_role`, not `name`".into()));
        }
        let fr = for_role.ok_or_else(|| {
            (
                format!("{p}.for_role"),
                "`for_role` (the role that creates the objects) is required for default privileges".to_owned(),
            )
        })?;
        let for_role = RoleName::new(fr).map_err(|e| (format!("{p}.for_role"), e.to_string()))?;
        if t == DefaultObjectType::Schemas && schema.is_some() {
            return Err((format!("{p}.schema"), "default privileges on schemas cannot be limited to a schema".into()));
        }
        return Ok(Target::Default { on: t, schema: schema.map(str::to_owned), for_role });
    }
    no_for_role()?;
    if on != On::Column {
        no_columns()?;
    }
    let qualified = |class_name: &str| -> Result<(String, String), (String, String)> {
        let n = need_name()?;
        match schema {
            Some(s) => Ok((s.to_owned(), unquote(n))),
            None => split_qualified(n).ok_or_else(|| {
                (
                    name_path(),
                    format!("{class_name} name {n:?} must be schema-qualified (schema.name) or come with `schema`"),
                )
            }),
        }
    };
    Ok(match on {
        On::Database => {
            if schema.is_some() {
                return Err((format!("{p}.schema"), "a database has no schema".into()));
            }
            Target::Database(name.map(str::to_owned))
        }
        On::Schema => {
            if schema.is_some() {
                return Err((format!("{p}.schema"), "use `name` for a schema".into()));
            }
            Target::Schema(names.get(&unquote(need_name()?)))
        }
        On::Table => {
            let (s, n) = qualified("table")?;
            Target::Relation(ObjectClass::Table, names.get(&s), names.get(&n))
        }
        On::Sequence => {
            let (s, n) = qualified("sequence")?;
            Target::Relation(ObjectClass::Sequence, names.get(&s), names.get(&n))
        }
        On::Column => {
            let (s, n) = qualified("table")?;
            let Some(columns) = columns else {
                return Err((format!("{p}.columns"), "`columns` is required for on: column".into()));
            };
            Target::Columns(names.get(&s), names.get(&n), columns.clone())
        }
        On::Function => {
            let n = need_name()?;
            let parsed = parse_function(n).ok_or_else(|| {
                (
                    name_path(),
                    format!(
                        "function {n:?} needs its argument types in parentheses, e.g. billing.total(integer, text) \
                         (double-quote a name that holds '(', '.' or '\"')"
                    ),
                )
            })?;
            let s = match (schema, parsed.schema) {
                (Some(s), None) => s.to_owned(),
                (None, Some(s)) => s,
                (Some(_), Some(_)) => {
                    return Err((name_path(), format!("function {n:?} names a schema and so does `schema`")));
                }
                (None, None) => {
                    return Err((
                        name_path(),
                        format!("function {n:?} must be written schema.name(argtypes), e.g. billing.total(integer)"),
                    ));
                }
            };
            Target::Function(s, parsed.name, parsed.args)
        }
        On::AllTablesInSchema | On::AllSequencesInSchema | On::AllFunctionsInSchema => {
            if name.is_some() {
                return Err((name_path(), format!("on: {} takes `schema`, not `name`", on.keyword())));
            }
            let class = match on {
                On::AllTablesInSchema => ObjectClass::Table,
                On::AllSequencesInSchema => ObjectClass::Sequence,
                _ => ObjectClass::Function,
            };
            Target::AllInSchema(class, names.get(need_schema()?))
        }
        _ => unreachable!("default_* handled above"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
version: 1
roles:
  app_ro:
    login: false
    grants:
      - { privileges: [USAGE], on: schema, name: orders }
      - { privileges: [SELECT], on: all_tables_in_schema, schema: orders }
  app_rw:
    login: true
    member_of: [app_ro]
    grants:
      - { privileges: [SELECT, INSERT, UPDATE, DELETE], on: table, name: orders.line_items }
      - { privileges: [SELECT], on: column, name: orders.customers, columns: [id, created_at] }
ignore_roles: ["pg_*", "rds*"]
"#;

    fn error_of(yaml: &str) -> String {
        Baseline::from_yaml(yaml, "baseline.yaml").unwrap_err().to_string()
    }

    #[test]
    fn names_list_objects_that_hold_the_same_privileges() {
        let yaml = "version: 1\nroles:\n  a:\n    grants:\n      - { privileges: [INSERT, UPDATE], on: table, schema: s, names: [t1, \"T 2\"] }\n";
        let b = Baseline::from_yaml(yaml, "baseline.yaml").unwrap();
        let grants = &b.roles[&RoleName::new("a").unwrap()].grants;
        assert_eq!(grants.len(), 1, "a list is one declaration");
        let got: Vec<(Target, String)> = grants[0].targets().map(|(t, o)| (t, o.to_string())).collect();
        assert_eq!(
            got,
            [
                (Target::Relation(ObjectClass::Table, "s".into(), "t1".into()), "roles.a.grants[0].names[0]".into()),
                (Target::Relation(ObjectClass::Table, "s".into(), "T 2".into()), "roles.a.grants[0].names[1]".into()),
            ]
        );
        assert_eq!(
            b.declares(
                &RoleName::new("a").unwrap(),
                Privilege::Update,
                &ObjectRef::in_schema(ObjectClass::Table, "s", "T 2")
            )
            .map(|o| o.to_string())
            .as_deref(),
            Some("roles.a.grants[0].names[1]")
        );
    }

    #[test]
    fn names_qualified_with_their_own_schemas_keep_their_origins() {
        let yaml = "version: 1\nroles:\n  a:\n    grants:\n      - { privileges: [SELECT], on: table, names: [s.t1, s.t2, u.t3, s.t4] }\n";
        let b = Baseline::from_yaml(yaml, "baseline.yaml").unwrap();
        let grants = &b.roles[&RoleName::new("a").unwrap()].grants;
        assert_eq!(grants.len(), 3, "one declaration per run of names in one schema");
        let got: Vec<(String, String)> = grants
            .iter()
            .flat_map(|g| g.targets())
            .map(|(t, o)| match t {
                Target::Relation(_, s, n) => (format!("{s}.{n}"), o.to_string()),
                other => panic!("a relation, not {other:?}"),
            })
            .collect();
        let want = ["s.t1", "s.t2", "u.t3", "s.t4"];
        assert_eq!(
            got,
            want.iter()
                .enumerate()
                .map(|(j, n)| (n.to_string(), format!("roles.a.grants[0].names[{j}]")))
                .collect::<Vec<_>>()
        );
        let at = |s: &str, n: &str| {
            b.declares(&RoleName::new("a").unwrap(), Privilege::Select, &ObjectRef::in_schema(ObjectClass::Table, s, n))
                .map(|o| o.to_string())
        };
        assert_eq!(at("u", "t3").as_deref(), Some("roles.a.grants[0].names[2]"));
        assert_eq!(at("s", "t4").as_deref(), Some("roles.a.grants[0].names[3]"));
        assert_eq!(at("u", "t1"), None);
    }

    #[test]
    fn origins_of_listed_names_sort_as_written_out() {
        let entry = Origin::new("roles.a.grants[3]");
        let (n2, n10) = (Origin::listed(&entry, 2), Origin::listed(&entry, 10));
        assert_eq!(n10.to_string(), "roles.a.grants[3].names[10]");
        assert!(entry < n10 && n10 < n2, "as strings: names[10] before names[2]");
        assert!(Origin::new("roles.a.grants[10]") < entry);
    }

    #[test]
    fn names_list_tables_whose_same_columns_hold_the_same_privileges() {
        let yaml = "version: 1\nroles:\n  a:\n    grants:\n      - { privileges: [SELECT], on: column, schema: s, names: [t1, t2], columns: [id, name] }\n";
        let b = Baseline::from_yaml(yaml, "baseline.yaml").unwrap();
        let grants = &b.roles[&RoleName::new("a").unwrap()].grants;
        let columns = || -> Arc<[Name]> { ["id".into(), "name".into()].into() };
        let got: Vec<(Target, String)> =
            grants.iter().flat_map(|g| g.targets()).map(|(t, o)| (t, o.to_string())).collect();
        assert_eq!(
            got,
            [
                (Target::Columns("s".into(), "t1".into(), columns()), "roles.a.grants[0].names[0]".into()),
                (Target::Columns("s".into(), "t2".into(), columns()), "roles.a.grants[0].names[1]".into()),
            ]
        );
        // one declaration holding the schema and the columns once
        assert!(
            matches!(&grants[..], [g] if matches!(&g.objects, Objects::Listed(Listed::Columns(_, t, c)) if t.len() == 2 && c.len() == 2))
        );
        let e = error_of(
            "version: 1\nroles:\n  a:\n    grants:\n      - { privileges: [SELECT], on: column, schema: s, names: [t1] }\n",
        );
        assert!(e.starts_with("baseline.yaml: roles.a.grants[0].columns: `columns` is required"), "{e}");
    }

    #[test]
    fn declared_grants_are_found_by_role_privilege_and_object() {
        let b = Baseline::from_yaml(EXAMPLE, "baseline.yaml").unwrap();
        let (ro, rw) = (RoleName::new("app_ro").unwrap(), RoleName::new("app_rw").unwrap());
        let table = |s: &str, n: &str| ObjectRef::in_schema(ObjectClass::Table, s, n);
        let at = |r: &RoleName, p: Privilege, o: ObjectRef| b.declares(r, p, &o).map(|o| o.to_string());
        assert_eq!(at(&ro, Privilege::Usage, ObjectRef::schema("orders")).as_deref(), Some("roles.app_ro.grants[0]"));
        assert_eq!(at(&ro, Privilege::Select, table("orders", "anything")).as_deref(), Some("roles.app_ro.grants[1]"));
        assert_eq!(at(&ro, Privilege::Insert, table("orders", "anything")), None);
        assert_eq!(at(&ro, Privilege::Select, table("billing", "invoices")), None);
        assert_eq!(
            at(&rw, Privilege::Delete, table("orders", "line_items")).as_deref(),
            Some("roles.app_rw.grants[0]")
        );
        assert!(at(&rw, Privilege::Select, ObjectRef::column("orders", "customers", "id")).is_some());
        assert_eq!(at(&rw, Privilege::Select, ObjectRef::column("orders", "customers", "ssn")), None);
        assert_eq!(at(&RoleName::new("nobody").unwrap(), Privilege::Usage, ObjectRef::schema("orders")), None);
    }

    #[test]
    fn design_example_parses() {
        let b = Baseline::from_yaml(EXAMPLE, "baseline.yaml").unwrap();
        assert_eq!(b.roles.len(), 2);
        let rw = &b.roles[&RoleName::new("app_rw").unwrap()];
        assert!(rw.flags.contains(&(Privilege::Login, true)));
        assert_eq!(rw.member_of.len(), 1);
        assert_eq!(
            rw.grants[1].target().cloned().unwrap(),
            Target::Columns("orders".into(), "customers".into(), ["id".into(), "created_at".into()].into())
        );
        assert!(b.ignore.ignores(&RoleName::new("pg_monitor").unwrap()));
        assert!(!b.ignore.ignores(&RoleName::new("app_rw").unwrap()));
    }

    #[test]
    fn unknown_privilege_names_file_and_path() {
        let yaml = EXAMPLE.replace("[SELECT, INSERT, UPDATE, DELETE]", "[SELEC]");
        let e = error_of(&yaml);
        assert!(
            e.starts_with(r#"baseline.yaml: roles.app_rw.grants[0].privileges[0]: unknown privilege "SELEC""#),
            "{e}"
        );
        assert!(e.contains("line 13"), "{e}");
    }

    #[test]
    fn unknown_key_is_an_error() {
        let e = error_of("version: 1\nroles:\n  a:\n    logn: true\n");
        assert!(e.starts_with("baseline.yaml: roles.a"), "{e}");
        assert!(e.contains("logn"), "{e}");
    }

    #[test]
    fn semantic_errors_name_their_path() {
        let cases = [
            ("version: 2\n", "baseline.yaml: version: unsupported version 2"),
            (
                "version: 1\nroles:\n  a:\n    grants:\n      - { privileges: [SELECT], on: table, name: line_items }\n",
                "baseline.yaml: roles.a.grants[0].name: table name \"line_items\" must be schema-qualified",
            ),
            (
                "version: 1\nroles:\n  a:\n    grants:\n      - { privileges: [INSERT], on: schema, name: s }\n",
                "baseline.yaml: roles.a.grants[0].privileges[0]: INSERT cannot be granted on schema",
            ),
            (
                "version: 1\nroles:\n  a:\n    grants:\n      - { privileges: [SELECT], on: all_tables_in_schema }\n",
                "baseline.yaml: roles.a.grants[0].schema: `schema` is required",
            ),
            (
                "version: 1\nroles:\n  a:\n    grants:\n      - { privileges: [SUPERUSER], on: database }\n",
                "baseline.yaml: roles.a.grants[0].privileges[0]: SUPERUSER is not a grantable privilege",
            ),
            (
                "version: 1\nroles:\n  a:\n    grants:\n      - { privileges: [SELECT], on: default_tables, schema: s }\n",
                "baseline.yaml: roles.a.grants[0].for_role: `for_role`",
            ),
            (
                "version: 1\nroles:\n  a:\n    member_of: [b, b]\n",
                "baseline.yaml: roles.a.member_of[1]: role \"b\" is listed twice",
            ),
            (
                "version: 1\nroles:\n  a:\n    grants:\n      - { privileges: [SELECT], on: table, names: [s.x, y] }\n",
                "baseline.yaml: roles.a.grants[0].names[1]: table name \"y\" must be schema-qualified",
            ),
            (
                "version: 1\nroles:\n  a:\n    grants:\n      - { privileges: [SELECT], on: table, name: s.x, names: [s.y] }\n",
                "baseline.yaml: roles.a.grants[0].names: give `name` or `names`, not both",
            ),
            (
                "version: 1\nroles:\n  a:\n    grants:\n      - { privileges: [USAGE], on: schema, schema: s, names: [a] }\n",
                "baseline.yaml: roles.a.grants[0].schema: use `name` for a schema",
            ),
            ("version: 1\nignore_roles: [\"[a\"]\n", "baseline.yaml: ignore_roles[0]: invalid glob"),
            ("version: 1\nroles:\n  PUBLIC: {}\n", "baseline.yaml: roles.PUBLIC: PUBLIC is not a role"),
            (
                "version: 1\nroles:\n  a:\n    owns:\n      - { on: column, name: s.t }\n",
                "baseline.yaml: roles.a.owns[0]",
            ),
        ];
        for (yaml, want) in cases {
            let e = error_of(yaml);
            assert!(e.starts_with(want), "for {yaml:?}\n got: {e}\nwant: {want}");
        }
    }

    #[test]
    fn empty_roles_means_none() {
        let b = Baseline::from_yaml("version: 1\nroles:\nignore_roles: [x]\n", "b.yaml").unwrap();
        assert!(b.roles.is_empty());
    }

    #[test]
    fn yaml_syntax_error_has_a_location() {
        let e = Baseline::from_yaml("version: 1\nroles: [\n", "b.yaml").unwrap_err();
        assert_eq!(e.file, "b.yaml");
        assert!(e.line.is_some(), "{e}");
    }

    #[test]
    fn ignore_filter_negation_last_match_wins() {
        let f = RoleFilter::new(&["*".into(), "!app_*".into(), "app_tmp*".into()]).unwrap();
        let r = |n: &str| RoleName::new(n).unwrap();
        assert!(f.ignores(&r("postgres")));
        assert!(!f.ignores(&r("app_rw")));
        assert!(f.ignores(&r("app_tmp_1")));
    }

    #[test]
    fn member_of_accepts_name_or_options_and_round_trips() {
        let b = Baseline::from_yaml(
            "version: 1\nroles:\n  a:\n    member_of: [x, { role: y, admin: true, set: false }]\n",
            "b.yaml",
        )
        .unwrap();
        let a = &b.roles[&RoleName::new("a").unwrap()];
        let y = a.member_of[&RoleName::new("y").unwrap()];
        assert_eq!(y, MembershipOptions { admin: true, inherit: true, set: false });
        let m =
            parse_manifest("version: 1\nroles:\n  a:\n    member_of: [x, { role: y, admin: true }]\n", "b").unwrap();
        let text = serde_saphyr::to_string(&m).unwrap();
        assert_eq!(parse_manifest(&text, "b").unwrap(), m);
    }
}
