//! Brownfield adoption: write a baseline manifest that describes a live state
//! exactly, so planning it against the same database reports no drift.
//!
//! Grants that cover every object of a class in a schema are folded into
//! `all_*_in_schema`; ownership likewise. What diff ignores (owners' implicit
//! privileges, PUBLIC's built-in defaults, ignored roles) is left out.

use std::collections::{BTreeMap, BTreeSet};

use crate::manifest::{GrantSpec, Manifest, MemberOf, On, OwnsSpec, PrivilegeSpec, PublicSpec, RoleFilter, RoleSpec};
use crate::model::{DefaultObjectType, Grantee, ObjectClass, ObjectRef, Privilege, RoleName, is_builtin_public};
use crate::names::function_signature;
use crate::snapshot::{State, StateIndex};

/// Builds a manifest from `state`, leaving out roles that `ignore` matches.
pub fn generate(state: &State, ignore: &RoleFilter) -> Manifest {
    let mut roles: BTreeMap<String, RoleSpec> = BTreeMap::new();
    for (name, a) in &state.roles {
        if ignore.ignores(name) {
            continue;
        }
        roles.insert(
            name.as_str().to_owned(),
            RoleSpec {
                login: a.login,
                superuser: a.superuser,
                createrole: a.createrole,
                createdb: a.createdb,
                replication: a.replication,
                bypassrls: a.bypassrls,
                valid_until: a.valid_until,
                ..RoleSpec::default()
            },
        );
    }
    for m in &state.memberships {
        if let Some(spec) = roles.get_mut(m.member.as_str()) {
            spec.member_of.push(MemberOf {
                role: m.role.as_str().to_owned(),
                admin: m.admin,
                inherit: m.inherit,
                set: m.set,
            });
        }
    }
    let signatures: Signatures = state
        .functions
        .iter()
        .map(|f| {
            ((f.schema.as_str(), f.name.as_str(), f.arguments.as_str()), function_signature(&f.name, &f.arguments))
        })
        .collect();
    let objects = Objects::new(state, &signatures);
    for (name, spec) in roles.iter_mut() {
        let role = RoleName::new(name.clone()).expect("names came from the state");
        spec.owns = objects.owned_by(state, &role);
    }
    let mut public = PublicSpec::default();
    for (grantee, grants) in grants_by_grantee(state, &objects) {
        let specs = objects.fold(&grants);
        match &grantee {
            Grantee::Public => public.grants.extend(specs),
            Grantee::Role(r) => {
                if let Some(spec) = roles.get_mut(r.as_str()) {
                    spec.grants.extend(specs);
                }
            }
            // a PostgreSQL state holds no MySQL account
            Grantee::Account(_) => {}
        }
    }
    for (grantee, specs) in default_privileges(state) {
        match &grantee {
            Grantee::Public => public.grants.extend(specs),
            Grantee::Role(r) => {
                if let Some(spec) = roles.get_mut(r.as_str()) {
                    spec.grants.extend(specs);
                }
            }
            // a PostgreSQL state holds no MySQL account
            Grantee::Account(_) => {}
        }
    }
    Manifest { version: crate::manifest::MANIFEST_VERSION, roles, public, ignore_roles: ignore.patterns().to_vec() }
}

/// (object, privilege, grantable) held by one grantee.
type Held = BTreeSet<(ObjectRef, Privilege, bool)>;

/// Explicit grants by grantee, without what owners hold by owning and PUBLIC's built-in defaults.
fn grants_by_grantee(state: &State, objects: &Objects) -> BTreeMap<Grantee, Held> {
    let mut out: BTreeMap<Grantee, Held> = BTreeMap::new();
    for (object, acl) in state.grants.objects() {
        let owner = objects.index.owner_of(object);
        for e in acl.entries() {
            if e.grantee.role().is_some_and(|r| Some(r) == owner) {
                continue; // what an owner holds by owning
            }
            let held = out.entry(e.grantee.clone()).or_default();
            for privilege in e.privileges {
                if !is_builtin_public(&e.grantee, object.class, privilege) {
                    held.insert((object.clone(), privilege, e.grantable.contains(privilege)));
                }
            }
        }
    }
    out.retain(|_, held| !held.is_empty());
    out
}

fn default_privileges(state: &State) -> BTreeMap<Grantee, Vec<GrantSpec>> {
    type Key = (Option<String>, DefaultObjectType, String, bool);
    let mut grouped: BTreeMap<Grantee, BTreeMap<Key, Vec<Privilege>>> = BTreeMap::new();
    for dp in &state.default_privileges {
        if dp.is_creators_own() || dp.is_builtin_public() {
            continue;
        }
        grouped
            .entry(dp.grantee.clone())
            .or_default()
            .entry((dp.schema.clone(), dp.on, dp.for_role.as_str().to_owned(), dp.grantable))
            .or_default()
            .push(dp.privilege);
    }
    grouped
        .into_iter()
        .map(|(g, entries)| {
            let specs = entries
                .into_iter()
                .map(|((schema, on, for_role, grantable), privileges)| GrantSpec {
                    privileges: privileges.into_iter().map(PrivilegeSpec::One).collect(),
                    on: On::for_default(on),
                    name: None,
                    names: Vec::new(),
                    schema,
                    columns: Vec::new(),
                    for_role: Some(for_role),
                    with_grant_option: grantable,
                })
                .collect();
            (g, specs)
        })
        .collect()
}

/// (privilege, grantable) -> names of the objects in one schema that hold it.
type HoldersByPrivilege<'a> = BTreeMap<(Privilege, bool), BTreeSet<&'a str>>;
/// (class, schema, name, grantable) of one object that does not fold into all_*_in_schema.
type ObjectKey<'a> = (ObjectClass, Option<&'a str>, &'a str, bool);
/// (schema, grantable, privileges, columns) of tables that fold into one `on: column` entry.
type ColumnsKey<'a> = (Option<&'a str>, bool, Vec<Privilege>, Vec<String>);
/// Column (None for the object itself) -> privileges.
type PrivilegesByColumn<'a> = BTreeMap<Option<&'a str>, Vec<Privilege>>;

/// Each function's `name(argtypes)` as a baseline writes it, by schema, name and arguments.
type Signatures<'a> = BTreeMap<(&'a str, &'a str, &'a str), String>;

/// The catalog, grouped the way a manifest names things.
struct Objects<'a> {
    /// Owners and lookups.
    index: StateIndex<'a>,
    /// How the manifest names each function.
    signatures: &'a Signatures<'a>,
    /// Objects of each class per schema, for folding into all_*_in_schema.
    by_schema: BTreeMap<(ObjectClass, &'a str), BTreeSet<&'a str>>,
    /// The same by owner: what each role owns, read once rather than looked up
    /// for every role and object.
    by_owner: BTreeMap<&'a RoleName, BTreeMap<(ObjectClass, &'a str), Vec<&'a str>>>,
}

impl<'a> Objects<'a> {
    fn new(state: &'a State, signatures: &'a Signatures<'a>) -> Self {
        let mut by_schema: BTreeMap<(ObjectClass, &str), BTreeSet<&str>> = BTreeMap::new();
        let mut by_owner: BTreeMap<&RoleName, BTreeMap<(ObjectClass, &str), Vec<&str>>> = BTreeMap::new();
        let relations = state.relations.iter().map(|r| (r.kind.class(), r.schema.as_str(), r.name.as_str(), &r.owner));
        let functions = state.functions.iter().map(|f| {
            let signature = &signatures[&(f.schema.as_str(), f.name.as_str(), f.arguments.as_str())];
            (ObjectClass::Function, f.schema.as_str(), signature.as_str(), &f.owner)
        });
        for (class, schema, name, owner) in relations.chain(functions) {
            by_schema.entry((class, schema)).or_default().insert(name);
            by_owner.entry(owner).or_default().entry((class, schema)).or_default().push(name);
        }
        Self { index: StateIndex::new(state), signatures, by_schema, by_owner }
    }

    /// How the manifest names `o` within its schema: a function by its signature.
    fn name_of<'b>(&'b self, o: &'b ObjectRef) -> &'b str {
        match (o.class, o.schema.as_deref(), o.args.as_deref()) {
            (ObjectClass::Function, Some(s), Some(a)) => {
                self.signatures.get(&(s, o.name.as_str(), a)).map_or(o.name.as_str(), String::as_str)
            }
            _ => o.name.as_str(),
        }
    }

    fn owned_by(&self, state: &State, role: &RoleName) -> Vec<OwnsSpec> {
        let mut out = Vec::new();
        if state.database.as_ref().is_some_and(|d| &d.owner == role) {
            out.push(OwnsSpec { on: On::Database, name: None, schema: None });
        }
        for (schema, owner) in &state.schemas {
            if owner == role {
                out.push(OwnsSpec { on: On::Schema, name: Some(quote_part(schema)), schema: None });
            }
        }
        for ((class, schema), mine) in self.by_owner.get(role).into_iter().flatten() {
            let names = &self.by_schema[&(*class, *schema)];
            if mine.len() == names.len() {
                out.push(OwnsSpec { on: all_on(*class), name: None, schema: Some((*schema).to_owned()) });
            } else {
                for &n in mine {
                    let name = if *class == ObjectClass::Function { n.to_owned() } else { quote_part(n) };
                    out.push(OwnsSpec { on: single_on(*class), name: Some(name), schema: Some((*schema).to_owned()) });
                }
            }
        }
        out
    }

    /// Folds one grantee's grants into manifest entries.
    fn fold(&self, held: &Held) -> Vec<GrantSpec> {
        // (class, schema) -> (privilege, grantable) -> objects holding it
        let mut per_schema: BTreeMap<(ObjectClass, &str), HoldersByPrivilege> = BTreeMap::new();
        let mut singles: Vec<(&ObjectRef, Privilege, bool)> = Vec::new();
        for (o, p, g) in held {
            match (o.class, o.schema.as_deref()) {
                (ObjectClass::Table | ObjectClass::Sequence | ObjectClass::Function, Some(s)) => {
                    per_schema.entry((o.class, s)).or_default().entry((*p, *g)).or_default().insert(self.name_of(o));
                }
                _ => singles.push((o, *p, *g)),
            }
        }
        // object -> grantable -> privileges, for what does not fold
        let mut by_object: BTreeMap<ObjectKey, PrivilegesByColumn> = BTreeMap::new();
        let mut out = Vec::new();
        let mut all_entries: BTreeMap<(ObjectClass, &str, bool), Vec<Privilege>> = BTreeMap::new();
        for ((class, schema), privs) in &per_schema {
            let everything = self.by_schema.get(&(*class, *schema));
            for ((p, g), names) in privs {
                if everything.is_some_and(|all| all == names) {
                    all_entries.entry((*class, schema, *g)).or_default().push(*p);
                } else {
                    for n in names {
                        by_object.entry((*class, Some(schema), n, *g)).or_default().entry(None).or_default().push(*p);
                    }
                }
            }
        }
        for ((class, schema, g), privileges) in all_entries {
            out.push(GrantSpec {
                privileges: privileges.into_iter().map(PrivilegeSpec::One).collect(),
                on: all_on(class),
                name: None,
                names: Vec::new(),
                schema: Some(schema.to_owned()),
                columns: Vec::new(),
                for_role: None,
                with_grant_option: g,
            });
        }
        for (o, p, g) in singles {
            by_object
                .entry((o.class, o.schema.as_deref(), o.name.as_str(), g))
                .or_default()
                .entry(o.column.as_deref())
                .or_default()
                .push(p);
        }
        let mut listed: BTreeMap<(ObjectClass, &str, bool, Vec<Privilege>), Vec<String>> = BTreeMap::new();
        // tables of one schema whose same columns hold the same privileges
        let mut listed_columns: BTreeMap<ColumnsKey, Vec<String>> = BTreeMap::new();
        for ((class, schema, name, g), by_column) in by_object {
            if class == ObjectClass::Column {
                // group columns that hold the same privileges
                let mut groups: BTreeMap<Vec<Privilege>, Vec<String>> = BTreeMap::new();
                for (col, mut privileges) in by_column {
                    privileges.sort();
                    groups.entry(privileges).or_default().push(col.unwrap_or_default().to_owned());
                }
                for (privileges, columns) in groups {
                    listed_columns.entry((schema, g, privileges, columns)).or_default().push(quote_part(name));
                }
                continue;
            }
            let privileges: Vec<Privilege> = by_column.into_values().flatten().collect();
            if let (ObjectClass::Table | ObjectClass::Sequence, Some(schema)) = (class, schema) {
                let mut sorted = privileges;
                sorted.sort();
                listed.entry((class, schema, g, sorted)).or_default().push(quote_part(name));
                continue;
            }
            let (name, schema) = match class {
                ObjectClass::Database => (None, None),
                ObjectClass::Schema => (Some(quote_part(name)), None),
                ObjectClass::Function => (Some(name.to_owned()), schema.map(str::to_owned)),
                _ => (Some(quote_part(name)), schema.map(str::to_owned)),
            };
            out.push(GrantSpec {
                privileges: privileges.into_iter().map(PrivilegeSpec::One).collect(),
                on: single_on(class),
                name,
                names: Vec::new(),
                schema,
                columns: Vec::new(),
                for_role: None,
                with_grant_option: g,
            });
        }
        for ((schema, g, privileges, columns), mut names) in listed_columns {
            let (name, names) = if names.len() == 1 { (names.pop(), Vec::new()) } else { (None, names) };
            out.push(GrantSpec {
                privileges: privileges.into_iter().map(PrivilegeSpec::One).collect(),
                on: On::Column,
                name,
                names,
                schema: schema.map(str::to_owned),
                columns,
                for_role: None,
                with_grant_option: g,
            });
        }
        // tables and sequences of one schema holding the same privileges: one entry with
        // `names` (a catalog of 100k tables granted one by one is otherwise a million entries)
        for ((class, schema, g, privileges), mut names) in listed {
            let (name, names) = if names.len() == 1 { (names.pop(), Vec::new()) } else { (None, names) };
            out.push(GrantSpec {
                privileges: privileges.into_iter().map(PrivilegeSpec::One).collect(),
                on: single_on(class),
                name,
                names,
                schema: Some(schema.to_owned()),
                columns: Vec::new(),
                for_role: None,
                with_grant_option: g,
            });
        }
        out
    }
}

fn all_on(class: ObjectClass) -> On {
    match class {
        ObjectClass::Sequence => On::AllSequencesInSchema,
        ObjectClass::Function => On::AllFunctionsInSchema,
        _ => On::AllTablesInSchema,
    }
}

fn single_on(class: ObjectClass) -> On {
    match class {
        ObjectClass::Database => On::Database,
        ObjectClass::Schema => On::Schema,
        ObjectClass::Sequence => On::Sequence,
        ObjectClass::Function => On::Function,
        ObjectClass::Column => On::Column,
        _ => On::Table,
    }
}

/// A name as `name:` must spell it: quoted when the parser would read it
/// otherwise, that is when it holds a double quote at both ends (one such
/// pair is stripped) or begins or ends with whitespace (trimmed).
fn quote_part(s: &str) -> String {
    let wrapped = s.len() >= 2 && s.starts_with('"') && s.ends_with('"');
    if wrapped || s.trim() != s { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::unquote;
    use proptest::prelude::*;

    #[test]
    fn names_with_surrounding_spaces_or_quotes_are_written_so_they_read_back() {
        for name in [" app", "app ", "\tapp\u{3000}", "\"app\"", " \"app\" ", "\"", "\"\"", "a\"b", "plain"] {
            assert_eq!(unquote(&quote_part(name)), name, "{name:?} is written {:?}", quote_part(name));
        }
        assert_eq!(quote_part("app"), "app", "a name the parser keeps is written as it is");
        assert_eq!(quote_part("app "), "\"app \"");
    }

    proptest! {
        #[test]
        fn every_name_reads_back_as_written(name in "\\PC{1,20}|[ \t\"a.]{1,6}") {
            prop_assert_eq!(unquote(&quote_part(&name)), name);
        }
    }
}
