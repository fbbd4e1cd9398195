//! The grants of a state, object by object.
//!
//! A large catalog holds millions of grants but few distinct ACLs: `GRANT ...
//! ON ALL TABLES IN SCHEMA` and default privileges give the tables of a schema
//! one ACL between them. So a state keeps, for each object, a shared [`Acl`]
//! (one entry per grantee with its privileges and grant options as bit sets)
//! rather than a record per grant: extraction decodes each distinct ACL once,
//! the diff compares one ACL with what the baseline wants once, and memory
//! holds a pointer per object, not a copy of its names per grant.
//!
//! Seen from outside, [`Grants`] is still a set of [`Grant`]s keyed by object,
//! grantee and privilege, iterated in [`Grant`] order, and it serializes
//! exactly as that set would (a JSON array of grants). Stored and hashed, it is
//! grouped by ACL ([`by_acl`]), canonically: equal ACLs are listed once
//! however they are shared, so a state's sha256 does not depend on how it is held.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::{Grant, Grantee, ObjectRef, Privilege, PrivilegeSet, is_builtin_public};

/// One grantee's privileges on an object and which of them it may pass on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AclEntry {
    /// Who holds them.
    pub grantee: Grantee,
    /// What it may do.
    pub privileges: PrivilegeSet,
    /// Which of `privileges` it holds WITH GRANT OPTION.
    pub grantable: PrivilegeSet,
}

impl AclEntry {
    /// `grantee`'s entry holding each `(privilege, grantable)` of `held`.
    pub fn new(grantee: Grantee, held: impl IntoIterator<Item = (Privilege, bool)>) -> Self {
        let mut entry = AclEntry { grantee, privileges: PrivilegeSet::EMPTY, grantable: PrivilegeSet::EMPTY };
        for (privilege, grantable) in held {
            entry.privileges.insert(privilege);
            if grantable {
                entry.grantable.insert(privilege);
            }
        }
        entry
    }
}

/// An object's ACL: one entry per grantee, sorted by grantee, none empty.
/// Cloning shares it: objects with the same ACL hold one copy.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Acl(Arc<[AclEntry]>);

impl Default for Acl {
    fn default() -> Self {
        Self(Arc::from(Vec::new()))
    }
}

impl Acl {
    /// An ACL from entries in any order. Entries of one grantee (several
    /// grantors in PostgreSQL's ACL) are united, and a privilege held both with
    /// and without grant option is grantable; empty entries are dropped.
    pub fn new(mut entries: Vec<AclEntry>) -> Self {
        entries.retain(|e| !e.privileges.is_empty());
        for e in &mut entries {
            e.grantable = e.grantable & e.privileges;
        }
        if !entries.is_sorted_by(|a, b| a.grantee < b.grantee) {
            entries.sort_by(|a, b| a.grantee.cmp(&b.grantee));
            entries.dedup_by(|next, kept| {
                let same = next.grantee == kept.grantee;
                if same {
                    kept.privileges |= next.privileges;
                    kept.grantable |= next.grantable;
                }
                same
            });
        }
        Self(entries.into())
    }

    /// The entries, by grantee.
    pub fn entries(&self) -> &[AclEntry] {
        &self.0
    }

    /// Whether it grants nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many grants it holds (privileges, summed over grantees).
    pub fn grant_count(&self) -> usize {
        self.0.iter().map(|e| e.privileges.len()).sum()
    }

    /// The entry of `grantee`.
    pub fn get(&self, grantee: &Grantee) -> Option<&AclEntry> {
        self.0.binary_search_by(|e| e.grantee.cmp(grantee)).ok().map(|i| &self.0[i])
    }

    /// An identity for this copy: equal for clones of one ACL (the diff
    /// compares a shared ACL with what the baseline wants once).
    pub fn id(&self) -> usize {
        Arc::as_ptr(&self.0) as *const AclEntry as usize
    }

    fn union(&self, other: &Acl) -> Acl {
        Acl::new(self.0.iter().chain(other.0.iter()).cloned().collect())
    }
}

/// One grant seen through [`Grants`]: borrowed object and grantee.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct GrantRef<'a> {
    /// The object.
    pub object: &'a ObjectRef,
    /// Who holds it.
    pub grantee: &'a Grantee,
    /// What they may do.
    pub privilege: Privilege,
    /// WITH GRANT OPTION.
    pub grantable: bool,
}

impl GrantRef<'_> {
    /// The grant, owned.
    pub fn to_grant(self) -> Grant {
        Grant {
            object: self.object.clone(),
            grantee: self.grantee.clone(),
            privilege: self.privilege,
            grantable: self.grantable,
        }
    }

    /// See [`Grant::is_builtin_public`].
    pub fn is_builtin_public(self) -> bool {
        is_builtin_public(self.grantee, self.object.class, self.privilege)
    }
}

/// Every ACL grant of a state: objects in order, each with its [`Acl`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    /// Sorted by object, one per object, no empty ACL.
    objects: Vec<(ObjectRef, Acl)>,
    /// Grants held, summed over objects.
    len: usize,
}

impl Grants {
    /// From objects and their ACLs in any order; an object listed twice holds
    /// the union of its ACLs, and one with an empty ACL holds nothing.
    pub fn from_objects(mut objects: Vec<(ObjectRef, Acl)>) -> Self {
        objects.retain(|(_, acl)| !acl.is_empty());
        // extraction gives them nearly in order: a sorted input costs one pass
        if !objects.is_sorted_by(|a, b| a.0 < b.0) {
            objects.sort_by(|a, b| a.0.cmp(&b.0));
            objects.dedup_by(|next, kept| {
                let same = next.0 == kept.0;
                if same {
                    kept.1 = kept.1.union(&next.1);
                }
                same
            });
        }
        let len = objects.iter().map(|(_, acl)| acl.grant_count()).sum();
        Self { objects, len }
    }

    /// The objects that hold grants, in order, with their ACLs.
    pub fn objects(&self) -> &[(ObjectRef, Acl)] {
        &self.objects
    }

    /// Takes the objects out (to merge the grants of several chunks).
    pub fn into_objects(self) -> Vec<(ObjectRef, Acl)> {
        self.objects
    }

    /// How many grants there are.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The ACL of `object`, when it holds any grant.
    pub fn acl(&self, object: &ObjectRef) -> Option<&Acl> {
        self.position(object).ok().map(|i| &self.objects[i].1)
    }

    fn position(&self, object: &ObjectRef) -> Result<usize, usize> {
        self.objects.binary_search_by(|(o, _)| o.cmp(object))
    }

    /// Every grant, in [`Grant`] order.
    pub fn iter(&self) -> Iter<'_> {
        Iter { objects: self.objects.iter(), object: None, entries: [].iter(), entry: None, left: PrivilegeSet::EMPTY }
    }

    /// Whether `grant` is held, grant option included.
    pub fn contains(&self, grant: &Grant) -> bool {
        self.acl(&grant.object).and_then(|acl| acl.get(&grant.grantee)).is_some_and(|e| {
            e.privileges.contains(grant.privilege) && e.grantable.contains(grant.privilege) == grant.grantable
        })
    }

    /// Adds a grant; a privilege already held keeps its grant option if either
    /// has it. Whether anything changed. Rebuilds the object's ACL: for tests
    /// and small states, not for extraction (see [`Grants::from_objects`]).
    pub fn insert(&mut self, grant: Grant) -> bool {
        let entry = AclEntry::new(grant.grantee, [(grant.privilege, grant.grantable)]);
        match self.position(&grant.object) {
            Ok(i) => {
                let acl = &self.objects[i].1;
                if acl.get(&entry.grantee).is_some_and(|e| {
                    e.privileges.contains(grant.privilege)
                        && (e.grantable.contains(grant.privilege) || !grant.grantable)
                }) {
                    return false;
                }
                let had = acl.get(&entry.grantee).is_some_and(|e| e.privileges.contains(grant.privilege));
                self.objects[i].1 = acl.union(&Acl::new(vec![entry]));
                if !had {
                    self.len += 1;
                }
            }
            Err(i) => {
                self.objects.insert(i, (grant.object, Acl::new(vec![entry])));
                self.len += 1;
            }
        }
        true
    }

    /// Takes a grant away (only as held: with its grant option or without).
    /// Whether it was there.
    pub fn remove(&mut self, grant: &Grant) -> bool {
        if !self.contains(grant) {
            return false;
        }
        let i = self.position(&grant.object).expect("a contained grant's object is there");
        let entries = self.objects[i]
            .1
            .entries()
            .iter()
            .cloned()
            .map(|mut e| {
                if e.grantee == grant.grantee {
                    e.privileges.remove(grant.privilege);
                    e.grantable.remove(grant.privilege);
                }
                e
            })
            .collect();
        let acl = Acl::new(entries);
        if acl.is_empty() {
            self.objects.remove(i);
        } else {
            self.objects[i].1 = acl;
        }
        self.len -= 1;
        true
    }
}

/// The grants of [`Grants::iter`].
pub struct Iter<'a> {
    objects: std::slice::Iter<'a, (ObjectRef, Acl)>,
    object: Option<&'a ObjectRef>,
    entries: std::slice::Iter<'a, AclEntry>,
    entry: Option<&'a AclEntry>,
    left: PrivilegeSet,
}

impl<'a> Iterator for Iter<'a> {
    type Item = GrantRef<'a>;

    fn next(&mut self) -> Option<GrantRef<'a>> {
        loop {
            if let (Some(object), Some(entry)) = (self.object, self.entry)
                && let Some(privilege) = self.left.iter().next()
            {
                self.left.remove(privilege);
                return Some(GrantRef {
                    object,
                    grantee: &entry.grantee,
                    privilege,
                    grantable: entry.grantable.contains(privilege),
                });
            }
            if let Some(entry) = self.entries.next() {
                self.entry = Some(entry);
                self.left = entry.privileges;
                continue;
            }
            let (object, acl) = self.objects.next()?;
            self.object = Some(object);
            self.entries = acl.entries().iter();
            self.entry = None;
        }
    }
}

impl<'a> IntoIterator for &'a Grants {
    type Item = GrantRef<'a>;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Groups grants by object and grantee; identical ACLs are shared.
impl FromIterator<Grant> for Grants {
    fn from_iter<I: IntoIterator<Item = Grant>>(iter: I) -> Self {
        let mut grants: Vec<Grant> = iter.into_iter().collect();
        if !grants.is_sorted() {
            grants.sort_unstable();
        }
        let mut objects: Vec<(ObjectRef, Acl)> = Vec::new();
        let mut interned: HashMap<Arc<[AclEntry]>, Acl, foldhash::fast::RandomState> = HashMap::default();
        let mut entries: Vec<AclEntry> = Vec::new();
        let mut grants = grants.into_iter().peekable();
        while let Some(g) = grants.next() {
            let entry = AclEntry::new(g.grantee, [(g.privilege, g.grantable)]);
            match entries.last_mut() {
                Some(last) if last.grantee == entry.grantee => {
                    last.privileges |= entry.privileges;
                    last.grantable |= entry.grantable;
                }
                _ => entries.push(entry),
            }
            if grants.peek().is_none_or(|next| next.object != g.object) {
                let acl = Acl::new(std::mem::take(&mut entries));
                let acl = interned.entry(acl.0.clone()).or_insert(acl).clone();
                objects.push((g.object, acl));
            }
        }
        Grants::from_objects(objects)
    }
}

impl Serialize for Grants {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Grants {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<Grant>::deserialize(d)?.into_iter().collect())
    }
}

/// [`Grants`] grouped by ACL: each distinct ACL once, then each object with the
/// index of its ACL. The canonical form (a JSON array of grants) repeats every
/// object for every grant it holds: 9.5M grant records for a catalog of 100k
/// tables, gigabytes of JSON to write and, read back one record at a time, a
/// gigabyte of memory. This form is what the ACLs themselves are, a few
/// hundred, beside one short record per object; a scan's batches are stored
/// in it (`#[serde(with = "grantwarden_core::grants::by_acl")]`).
pub mod by_acl {
    use std::collections::HashMap;

    use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
    use serde::de::{MapAccess, SeqAccess, Visitor};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{Acl, AclEntry, Grants};
    use crate::model::{Grantee, ObjectRef, Privilege};

    #[derive(Serialize)]
    struct EntryOut<'a> {
        grantee: &'a Grantee,
        privileges: Vec<Privilege>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        grantable: Vec<Privilege>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct EntryIn {
        grantee: Grantee,
        privileges: Vec<Privilege>,
        #[serde(default)]
        grantable: Vec<Privilege>,
    }

    #[derive(Serialize)]
    struct Out<'a> {
        acls: Vec<Vec<EntryOut<'a>>>,
        objects: Vec<(&'a ObjectRef, usize)>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct In {
        acls: Vec<Vec<EntryIn>>,
        objects: Vec<(ObjectRef, usize)>,
    }

    /// Writes `grants` grouped by ACL, canonically: each distinct ACL once (by
    /// content, however its copies are shared), numbered in the order the
    /// objects (sorted) first hold it. The same grants give the same bytes.
    pub fn serialize<S: Serializer>(grants: &Grants, s: S) -> Result<S::Ok, S::Error> {
        type Fast = foldhash::fast::RandomState;
        // by copy first: most objects share their ACL's copy, and a copy's
        // identity is cheaper to look up than its entries
        let mut by_copy: HashMap<usize, usize, Fast> = HashMap::default();
        let mut by_content: HashMap<&Acl, usize, Fast> = HashMap::default();
        let mut acls = Vec::new();
        let mut objects = Vec::with_capacity(grants.objects.len());
        for (object, acl) in &grants.objects {
            let i = *by_copy.entry(acl.id()).or_insert_with(|| {
                *by_content.entry(acl).or_insert_with(|| {
                    acls.push(
                        acl.entries()
                            .iter()
                            .map(|e| EntryOut {
                                grantee: &e.grantee,
                                privileges: e.privileges.iter().collect(),
                                grantable: e.grantable.iter().collect(),
                            })
                            .collect(),
                    );
                    acls.len() - 1
                })
            });
            objects.push((object, i));
        }
        Out { acls, objects }.serialize(s)
    }

    /// Reads grants grouped by ACL; objects of one ACL share it again. The
    /// canonical form (an array of grants) is read too: batches written before
    /// this form (by an extract of an earlier release, for a scan in flight
    /// across a deploy) still decode.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Grants, D::Error> {
        struct Either;
        impl<'de> Visitor<'de> for Either {
            type Value = Grants;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("grants grouped by ACL ({\"acls\": ..., \"objects\": ...}) or an array of grants")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Grants, A::Error> {
                grouped(In::deserialize(MapAccessDeserializer::new(map))?)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Grants, A::Error> {
                Grants::deserialize(SeqAccessDeserializer::new(seq))
            }
        }
        d.deserialize_any(Either)
    }

    fn grouped<E: serde::de::Error>(In { acls, objects }: In) -> Result<Grants, E> {
        let acls: Vec<Acl> = acls
            .into_iter()
            .map(|entries| {
                Acl::new(
                    entries
                        .into_iter()
                        .map(|e| {
                            let grantable = e.grantable;
                            let held = e.privileges.into_iter().map(|p| (p, grantable.contains(&p)));
                            AclEntry::new(e.grantee, held)
                        })
                        .collect(),
                )
            })
            .collect();
        let mut out = Vec::with_capacity(objects.len());
        for (n, (object, i)) in objects.into_iter().enumerate() {
            let acl = acls
                .get(i)
                .ok_or_else(|| E::custom(format!("objects[{n}] names ACL {i}, of {} listed in acls", acls.len())))?;
            out.push((object, acl.clone()));
        }
        Ok(Grants::from_objects(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ObjectClass, RoleName};
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    const PRIVILEGES: [Privilege; 5] =
        [Privilege::Select, Privilege::Insert, Privilege::Update, Privilege::Usage, Privilege::Execute];

    fn grant((o, g, p, grantable): (usize, usize, usize, bool)) -> Grant {
        let objects = [
            ObjectRef::schema("s"),
            ObjectRef::in_schema(ObjectClass::Table, "s", "t"),
            ObjectRef::in_schema(ObjectClass::Table, "s", "we\"ird\\\n"),
            ObjectRef::column("s", "t", "c"),
        ];
        let grantees = [
            Grantee::Public,
            Grantee::Role(RoleName::new("a").unwrap()),
            Grantee::Role(RoleName::new("b\u{1}\"é").unwrap()),
        ];
        Grant { object: objects[o].clone(), grantee: grantees[g].clone(), privilege: PRIVILEGES[p], grantable }
    }

    fn grants() -> impl Strategy<Value = Vec<Grant>> {
        proptest::collection::vec((0usize..4, 0usize..3, 0usize..5, any::<bool>()).prop_map(grant), 0..40)
    }

    /// What a set of grants means: one per (object, grantee, privilege), grantable if any is.
    fn meaning(gs: &[Grant]) -> BTreeSet<Grant> {
        let mut out: BTreeSet<Grant> = BTreeSet::new();
        for g in gs {
            let plain = Grant { grantable: false, ..g.clone() };
            let granting = Grant { grantable: true, ..g.clone() };
            if g.grantable || out.contains(&granting) {
                out.remove(&plain);
                out.insert(granting);
            } else {
                out.insert(plain);
            }
        }
        out
    }

    #[test]
    fn an_object_naming_an_acl_not_listed_is_an_error_not_a_panic() {
        #[derive(Debug, Deserialize)]
        struct Wrapped(
            #[serde(with = "by_acl")]
            #[allow(dead_code)]
            Grants,
        );
        let json = r#"{"acls": [], "objects": [[{"class": "schema", "name": "s"}, 0]]}"#;
        let err = serde_json::from_str::<Wrapped>(json).unwrap_err();
        assert!(err.to_string().contains("objects[0] names ACL 0, of 0 listed"), "{err}");
        let err = serde_json::from_str::<Wrapped>(r#""grants""#).unwrap_err();
        assert!(err.to_string().contains("grouped by ACL") && err.to_string().contains("array of grants"), "{err}");
    }

    proptest! {
        #[test]
        fn grants_iterate_serialize_and_hash_like_the_set_they_mean(gs in grants()) {
            let set = meaning(&gs);
            let collected: Grants = gs.iter().cloned().collect();
            let mut inserted = Grants::default();
            for g in &gs {
                inserted.insert(g.clone());
            }
            prop_assert_eq!(&collected, &inserted);
            let listed: Vec<Grant> = collected.iter().map(GrantRef::to_grant).collect();
            prop_assert_eq!(&listed, &set.iter().cloned().collect::<Vec<_>>());
            prop_assert_eq!(collected.len(), set.len());
            for g in &set {
                prop_assert!(collected.contains(g));
            }
            let json = serde_json::to_vec(&set).unwrap();
            prop_assert_eq!(&serde_json::to_vec(&collected).unwrap(), &json);
            let back: Grants = serde_json::from_slice(&json).unwrap();
            prop_assert_eq!(back, collected);
        }

        #[test]
        fn the_form_grouped_by_acl_reads_back_the_same_grants(gs in grants()) {
            #[derive(Serialize, Deserialize)]
            struct Wrapped(#[serde(with = "by_acl")] Grants);
            let grants: Grants = gs.iter().cloned().collect();
            let json = serde_json::to_string(&Wrapped(grants.clone())).unwrap();
            let Wrapped(back) = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(&back, &grants);
            prop_assert_eq!(serde_json::to_vec(&back).unwrap(), serde_json::to_vec(&grants).unwrap());
            // the canonical form, as batches were stored before this one, reads back the same
            let Wrapped(listed) = serde_json::from_slice(&serde_json::to_vec(&grants).unwrap()).unwrap();
            prop_assert_eq!(&listed, &grants);
        }

        #[test]
        fn removing_takes_away_exactly_one_grant(gs in grants(), pick in any::<proptest::sample::Index>()) {
            let set = meaning(&gs);
            let mut grants: Grants = gs.iter().cloned().collect();
            prop_assume!(!set.is_empty());
            let gone = pick.get(&set.iter().cloned().collect::<Vec<_>>()).clone();
            let other_option = Grant { grantable: !gone.grantable, ..gone.clone() };
            prop_assert!(!grants.remove(&other_option));
            prop_assert!(grants.remove(&gone));
            let mut expected = set.clone();
            expected.remove(&gone);
            prop_assert_eq!(grants.iter().map(GrantRef::to_grant).collect::<BTreeSet<_>>(), expected.clone());
            prop_assert_eq!(grants.len(), expected.len());
        }
    }

    #[test]
    fn objects_with_one_acl_share_it_and_write_it_once_per_grant() {
        let role = |n: &str| Grantee::Role(RoleName::new(n).unwrap());
        let acl = Acl::new(vec![
            AclEntry {
                grantee: role("b"),
                privileges: PrivilegeSet::of(Privilege::Select),
                grantable: PrivilegeSet::EMPTY,
            },
            AclEntry {
                grantee: role("a"),
                privileges: PrivilegeSet::of(Privilege::Insert) | PrivilegeSet::of(Privilege::Select),
                grantable: PrivilegeSet::of(Privilege::Insert),
            },
            AclEntry {
                grantee: role("a"),
                privileges: PrivilegeSet::of(Privilege::Update),
                grantable: PrivilegeSet::EMPTY,
            },
        ]);
        assert_eq!(acl.entries().len(), 2, "one entry per grantee");
        assert_eq!(acl.grant_count(), 4);
        let objects: Vec<(ObjectRef, Acl)> =
            ["u", "t"].iter().map(|t| (ObjectRef::in_schema(ObjectClass::Table, "s", t), acl.clone())).collect();
        let grants = Grants::from_objects(objects);
        assert_eq!(grants.objects()[0].0.name, "t", "in object order");
        assert_eq!(grants.objects()[0].1.id(), grants.objects()[1].1.id());
        assert_eq!(grants.len(), 8);
        let first = grants.iter().next().unwrap();
        assert_eq!(
            (first.grantee, first.privilege, first.grantable),
            (&role("a"), Privilege::Select, false),
            "SELECT before INSERT"
        );
    }
}
