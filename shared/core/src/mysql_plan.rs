//! The plan of a MySQL or MariaDB server: what it holds against what its
//! baseline declares, as the same report PostgreSQL's plan writes
//! (docs/CONTRACTS.md#report), scored on the same scale.
//!
//! - Drift, as for PostgreSQL: a privilege, role grant or proxy held but not
//!   declared is `unauthorized` (`orphaned` when its account is not declared
//!   at all), one declared but not held `missing`. An account's GRANT OPTION
//!   at a scope is one finding (`GRANT OPTION`), as MySQL keeps one flag per
//!   scope; each MySQL 8 dynamic privilege keeps its own.
//! - Exposures, whatever the baseline says (kind `exposure`, scored, not
//!   drift): an anonymous account, an account that logs in with no password,
//!   an account that holds administrative global privileges (itself or
//!   through its roles) and logs in from any host, a stored object that runs
//!   with such an account's rights (`SQL SECURITY DEFINER` views and
//!   routines, triggers, events), a definer that does not exist, and a
//!   database grant whose `_` wildcard sits beside a database of that very
//!   name (meant for `app_db`, it covers `appxdb` too).
//! - MySQL 8's partial revokes of declared accounts: one held and not
//!   declared is `missing` (the account lacks in that database what `*.*`
//!   grants), one declared and gone `unauthorized`.
//!
//! Scopes map onto the scoring's: `*.*` is the cluster, a database pattern a
//! database (it names many), a database a schema, a table or routine an
//! object, a column a column. FILE, SUPER, PROCESS, SHUTDOWN, CREATE USER and
//! every dynamic privilege are administrative, so held globally they are
//! critical, as is GRANT OPTION on `*.*`.
//!
//! What a failed chunk did not read is not judged: the `cluster` chunk holds
//! accounts, roles, proxies, global and database privileges; a database
//! chunk its databases' table, column and routine privileges and definers.

use std::collections::{BTreeMap, BTreeSet};

use crate::exception::{Exceptions, Overlay};
use crate::finding::FindingKind;
use crate::model::{Grantee, ObjectRef, Privilege as Pg, PrivilegeClass};
use crate::mysql::catalog::{Account, AccountInfo, Catalog, Definer, PrivilegeGrant, Scope, StoredKind};
use crate::mysql::privilege::Privilege;
use crate::mysql_baseline::{Accepted, Baseline, Desired, DesiredAccount, Engine, is_system_account};
use crate::mysql_scan::Scan;
use crate::report::{Coverage, Finding, FindingObject, FindingPrivilege, ObjectType, Report};
use crate::scoring::{Facts, Scope as Reach, ScoringConfig, round2};
use crate::snapshot::{ChunkSpec, TargetId};

/// A baseline of one engine planned against the other's server.
#[derive(Debug, thiserror::Error)]
#[error("the baseline is for {baseline}, and {target} is {server}: plan it with a {server} baseline")]
pub struct EngineMismatch {
    baseline: &'static str,
    target: String,
    server: &'static str,
}

/// Whether `baseline` is for the engine of `scan`'s server.
pub fn check_engine(baseline: &Baseline, scan: &Scan) -> Result<(), EngineMismatch> {
    let engine = Engine::of(scan.server.flavor);
    if engine != baseline.engine {
        return Err(EngineMismatch {
            baseline: baseline.engine.as_str(),
            target: scan.target.to_string(),
            server: engine.as_str(),
        });
    }
    Ok(())
}

/// The report of `scan` against `baseline`, with no exception.
pub fn plan(baseline: &Baseline, scan: &Scan, scoring: &ScoringConfig) -> Result<Report, EngineMismatch> {
    plan_with_exceptions(baseline, scan, scoring, &Exceptions::none(scan.taken_at))
}

/// The report of `scan` against `baseline`, the `exceptions`' tickets laid
/// over the privileges held and not declared, and their untagged findings added.
pub fn plan_with_exceptions(
    baseline: &Baseline,
    scan: &Scan,
    scoring: &ScoringConfig,
    exceptions: &Exceptions,
) -> Result<Report, EngineMismatch> {
    check_engine(baseline, scan)?;
    let mut p = Planner::new(baseline, &scan.catalog, scan, scoring, *exceptions);
    p.accounts();
    p.privileges();
    p.exposures();
    p.definers();
    p.findings.extend(exceptions.untagged.iter().cloned());
    let coverage = p.coverage;
    Ok(Report::of_scan(scan.facts(), p.findings, p.observations, scoring).with_coverage(coverage))
}

/// What the scan read, so that nothing it missed is reported.
struct Judged {
    /// The cluster chunk was read: accounts, roles, proxies, global and database privileges.
    cluster: bool,
    /// Databases whose chunk failed.
    unread: BTreeSet<String>,
}

impl Judged {
    fn of(scan: &Scan) -> Self {
        let mut judged = Judged { cluster: true, unread: BTreeSet::new() };
        for c in scan.chunks.iter().filter(|c| c.error.is_some()) {
            match &c.chunk {
                ChunkSpec::Cluster => judged.cluster = false,
                ChunkSpec::Schemas { schemas } => judged.unread.extend(schemas.iter().cloned()),
                ChunkSpec::SchemaPart { schema, .. } => {
                    judged.unread.insert(schema.clone());
                }
            }
        }
        judged
    }

    fn scope(&self, scope: &Scope) -> bool {
        match scope {
            Scope::Global | Scope::Database { .. } => self.cluster,
            Scope::Table { database, .. } | Scope::Column { database, .. } | Scope::Routine { database, .. } => {
                !self.unread.contains(database)
            }
        }
    }
}

/// Whose grants a plan judges.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// Declared by the baseline.
    Declared,
    /// Neither declared nor ignored.
    Undeclared,
    /// Ignored, or one of the engine's own accounts.
    LeftAlone,
}

struct Planner<'a> {
    baseline: &'a Baseline,
    catalog: &'a Catalog,
    /// The accounts and roles that exist.
    present: BTreeSet<&'a Account>,
    judged: Judged,
    scoring: &'a ScoringConfig,
    target: &'a TargetId,
    exceptions: Exceptions<'a>,
    findings: Vec<Finding>,
    observations: Vec<Finding>,
    coverage: Coverage,
}

/// The scoring's reach of a scope.
fn reach(scope: &Scope) -> Reach {
    match scope {
        Scope::Global => Reach::Cluster,
        Scope::Database { pattern: true, .. } => Reach::Database,
        Scope::Database { pattern: false, .. } => Reach::Schema,
        Scope::Table { .. } | Scope::Routine { .. } => Reach::Object,
        Scope::Column { .. } => Reach::Column,
    }
}

fn object(kind: ObjectType, schema: Option<&str>, name: &str, column: Option<&str>) -> FindingObject {
    let object = ObjectRef {
        class: kind.class(),
        schema: schema.map(Into::into),
        name: name.into(),
        column: column.map(Into::into),
        args: None,
    };
    FindingObject::of(kind, &object)
}

/// The report's grantee an account or role is.
fn grantee_of(a: &Account) -> Grantee {
    Grantee::account(&a.user, &a.host)
}

/// The report's object of an account or role.
pub fn account_object(account: &Account) -> FindingObject {
    object(ObjectType::Account, None, &account.to_string(), None)
}

fn stored_object(d: &Definer) -> FindingObject {
    let kind = match d.kind {
        StoredKind::View => ObjectType::View,
        StoredKind::Procedure => ObjectType::Procedure,
        StoredKind::Function => ObjectType::Function,
        StoredKind::Trigger => ObjectType::Trigger,
        StoredKind::Event => ObjectType::Event,
    };
    object(kind, Some(&d.database), &d.name, None)
}

/// The words of a list of privileges: `FILE, SUPER`.
fn words<'p>(ps: impl IntoIterator<Item = &'p Privilege>) -> String {
    ps.into_iter().map(Privilege::keyword).collect::<Vec<_>>().join(", ")
}

/// One pair of accounts of a relation, held against declared (see `Planner::edges`).
struct Edge<'a> {
    grantee: &'a Account,
    other: &'a Account,
    held: Option<bool>,
    declared: Option<bool>,
    standing: Standing,
}

/// What one account holds at one scope, and what it should.
type Pair<'a> = (Option<&'a PrivilegeGrant>, Option<&'a Desired>);

/// One finding's facts before it is scored.
struct Raw {
    kind: FindingKind,
    grantee: Grantee,
    privilege: FindingPrivilege,
    class: PrivilegeClass,
    reach: Reach,
    grantable: bool,
    object: FindingObject,
    detail: String,
}

impl<'a> Planner<'a> {
    fn new(
        baseline: &'a Baseline,
        catalog: &'a Catalog,
        scan: &'a Scan,
        scoring: &'a ScoringConfig,
        exceptions: Exceptions<'a>,
    ) -> Self {
        Planner {
            baseline,
            catalog,
            present: catalog.accounts.iter().map(|i| &i.account).collect(),
            judged: Judged::of(scan),
            scoring,
            target: &scan.target,
            exceptions,
            findings: Vec::new(),
            observations: Vec::new(),
            coverage: Coverage::default(),
        }
    }

    fn standing(&self, a: &Account) -> Standing {
        if is_system_account(a) || self.baseline.ignore.ignores_name(&a.user_at_host()) {
            Standing::LeftAlone
        } else if self.baseline.accounts.contains_key(a) {
            Standing::Declared
        } else {
            Standing::Undeclared
        }
    }

    fn push(&mut self, mut r: Raw) {
        if r.kind == FindingKind::Exposure
            && let Some(accepted) = self.accepted(&r)
        {
            r.kind = FindingKind::Observed;
            r.detail = format!("{} (accepted at {}: {})", r.detail, accepted.origin, accepted.reason);
        }
        let facts = Facts { kind: r.kind, class: r.class, scope: r.reach, grantable: r.grantable, public: false };
        let finding = Finding {
            kind: r.kind,
            severity: self.scoring.severity(facts),
            score: self.scoring.score(facts),
            grantee: r.grantee,
            privilege: r.privilege,
            grantable: r.grantable,
            object: r.object,
            exception_id: None,
            detail: r.detail,
        };
        if r.kind == FindingKind::Observed {
            self.observations.push(finding);
        } else {
            self.findings.push(finding);
        }
    }

    /// The baseline's entry that accepts exposure `r`: by its account and its
    /// object (`database.name`, a database pattern), or the account's own.
    fn accepted(&self, r: &Raw) -> Option<&'a Accepted> {
        let Grantee::Account(a) = &r.grantee else { return None };
        let object = match &r.object {
            FindingObject::Object { kind: ObjectType::Account, .. } => None,
            FindingObject::Object { object, .. } => Some(match &object.schema {
                Some(schema) => format!("{}.{}", schema.as_str(), object.name.as_str()),
                None => object.name.as_str().to_owned(),
            }),
            _ => return None,
        };
        self.baseline.accepted(&Account::new(a.user(), a.host()), object.as_deref())
    }

    /// Counts one held privilege (a role grant, a proxy) in the coverage.
    fn count(&mut self, declared: bool) {
        self.coverage.held += 1;
        if declared {
            self.coverage.baseline += 1;
        } else {
            self.coverage.drift += 1;
        }
    }

    /// Existence, login, roles and proxies of every account; the engine's own accounts are observed.
    fn accounts(&mut self) {
        if !self.judged.cluster {
            return;
        }
        let catalog = self.catalog;
        for info in &catalog.accounts {
            let a = &info.account;
            let grantee = grantee_of(a);
            match self.standing(a) {
                Standing::LeftAlone => {
                    if is_system_account(a) {
                        self.push(Raw {
                            kind: FindingKind::Observed,
                            grantee,
                            privilege: FindingPrivilege::One(Pg::Role),
                            class: PrivilegeClass::Read,
                            reach: Reach::Cluster,
                            grantable: false,
                            object: account_object(a),
                            detail: "the engine's own account (it owns system views and routines); its grants are \
                                     not judged"
                                .into(),
                        });
                    }
                    continue;
                }
                Standing::Undeclared => self.push(Raw {
                    kind: FindingKind::Orphaned,
                    grantee,
                    privilege: FindingPrivilege::One(Pg::Role),
                    class: if logs_in(info) { PrivilegeClass::Write } else { PrivilegeClass::Read },
                    reach: Reach::Cluster,
                    grantable: false,
                    object: account_object(a),
                    detail: format!(
                        "{} the baseline neither declares nor ignores",
                        if info.is_role { "a role" } else { "an account" }
                    ),
                }),
                Standing::Declared => {
                    let desired = &self.baseline.accounts[a];
                    let expected = !desired.role && !desired.locked;
                    let held = logs_in(info);
                    if held != expected {
                        let kind = if held { FindingKind::Unauthorized } else { FindingKind::Missing };
                        let detail = match (held, desired.role, info.is_role) {
                            (true, true, _) => "can log in; the baseline declares a role".to_owned(),
                            (true, false, _) => "is unlocked; the baseline declares it locked".to_owned(),
                            (false, _, true) => "is a role; the baseline declares an account that logs in".to_owned(),
                            (false, _, false) => "is locked; the baseline declares it unlocked".to_owned(),
                        };
                        self.push(Raw {
                            kind,
                            grantee,
                            privilege: FindingPrivilege::One(Pg::Login),
                            class: PrivilegeClass::Write,
                            reach: Reach::Cluster,
                            grantable: false,
                            object: account_object(a),
                            detail,
                        });
                    }
                }
            }
        }
        // declared, not there
        for (a, desired) in &self.baseline.accounts {
            if self.standing(a) == Standing::Declared && !self.present.contains(a) {
                self.push(Raw {
                    kind: FindingKind::Missing,
                    grantee: grantee_of(a),
                    privilege: FindingPrivilege::One(Pg::Role),
                    class: PrivilegeClass::Write,
                    reach: Reach::Cluster,
                    grantable: false,
                    object: account_object(a),
                    detail: format!("declared at {}, and does not exist", desired.origin),
                });
            }
        }
        self.role_grants();
        self.proxies();
        self.partial_revokes();
    }

    /// MySQL 8's partial revokes of declared accounts, held against declared:
    /// one held and not declared takes away what the baseline grants there
    /// (`missing`); one declared and not held leaves the database open
    /// through `*.*` (`unauthorized`). An undeclared account's are not judged:
    /// it is orphaned whole.
    fn partial_revokes(&mut self) {
        let catalog = self.catalog;
        type Revoked<'p> = BTreeSet<&'p Privilege>;
        let mut pairs: BTreeMap<(&Account, &str), (Revoked, Revoked)> = BTreeMap::new();
        for r in &catalog.partial_revokes {
            pairs.entry((&r.account, &r.database)).or_default().0.extend(&r.privileges);
        }
        for (a, d) in &self.baseline.accounts {
            for (database, privileges) in &d.revokes {
                pairs.entry((a, database)).or_default().1.extend(privileges);
            }
        }
        for ((account, database), (held, declared)) in pairs {
            if self.standing(account) != Standing::Declared {
                continue;
            }
            let scope = Scope::Database { database: database.to_owned(), pattern: false };
            let findings: Vec<Raw> = held
                .difference(&declared)
                .map(|p| {
                    let detail =
                        format!("lacks {p} in {database}: a partial revoke of its `*.*` grant the baseline does not declare");
                    (FindingKind::Missing, *p, detail)
                })
                .chain(declared.difference(&held).map(|p| {
                    let detail = format!(
                        "holds {p} in {database} through `*.*`: the baseline declares a partial revoke there, and it is gone"
                    );
                    (FindingKind::Unauthorized, *p, detail)
                }))
                .map(|(kind, p, detail)| Raw {
                    kind,
                    grantee: grantee_of(account),
                    privilege: FindingPrivilege::Mysql(p.clone()),
                    class: p.class(),
                    reach: reach(&scope),
                    grantable: false,
                    object: FindingObject::of_mysql_scope(&scope),
                    detail,
                })
                .collect();
            for r in findings {
                self.push(r);
            }
        }
    }

    /// A relation between two accounts (a role grant and its admin option, a
    /// proxy and its grant option), held against declared: each pair with
    /// what is held and declared and its grantee's standing, counted in the
    /// coverage; the pairs of accounts left alone are left out.
    fn edges(
        &mut self,
        held: BTreeMap<(&'a Account, &'a Account), bool>,
        declared: impl Fn(&'a DesiredAccount) -> &'a BTreeMap<Account, bool>,
    ) -> Vec<Edge<'a>> {
        let baseline = self.baseline;
        let declared: BTreeMap<(&Account, &Account), bool> = baseline
            .accounts
            .iter()
            .flat_map(|(a, d)| declared(d).iter().map(move |(other, option)| ((a, other), *option)))
            .collect();
        let keys: BTreeSet<(&Account, &Account)> = held.keys().chain(declared.keys()).copied().collect();
        let mut out = Vec::new();
        for (grantee, other) in keys {
            let standing = self.standing(grantee);
            if standing == Standing::LeftAlone {
                continue;
            }
            let (held, declared) = (held.get(&(grantee, other)).copied(), declared.get(&(grantee, other)).copied());
            if held.is_some() {
                self.count(declared.is_some());
            }
            out.push(Edge { grantee, other, held, declared, standing });
        }
        out
    }

    fn role_grants(&mut self) {
        let held = self.catalog.roles.iter().map(|r| ((&r.grantee, &r.role), r.admin)).collect();
        for Edge { grantee, other: role, held: h, declared: d, standing } in self.edges(held, |d| &d.roles) {
            let finding = |kind, grantable, detail: String| Raw {
                kind,
                grantee: grantee_of(grantee),
                privilege: FindingPrivilege::One(Pg::Member),
                class: if grantable { PrivilegeClass::Admin } else { PrivilegeClass::Write },
                reach: Reach::Object,
                grantable,
                object: account_object(role),
                detail,
            };
            let raw = match (h, d) {
                (Some(admin), None) => Some(finding(
                    if standing == Standing::Undeclared { FindingKind::Orphaned } else { FindingKind::Unauthorized },
                    admin,
                    format!("holds role {role}{}", if admin { " WITH ADMIN OPTION" } else { "" }),
                )),
                (None, Some(admin)) => Some(finding(FindingKind::Missing, admin, format!("lacks role {role}"))),
                (Some(true), Some(false)) => Some(finding(
                    FindingKind::Unauthorized,
                    true,
                    format!("holds role {role} WITH ADMIN OPTION; the baseline declares it without"),
                )),
                (Some(false), Some(true)) => Some(finding(
                    FindingKind::Missing,
                    true,
                    format!("holds role {role} without the ADMIN OPTION the baseline declares"),
                )),
                _ => None,
            };
            if let Some(r) = raw {
                self.push(r);
            }
        }
    }

    fn proxies(&mut self) {
        let held = self.catalog.proxies.iter().map(|p| ((&p.grantee, &p.proxied), p.grantable)).collect();
        for Edge { grantee, other: proxied, held: h, declared: d, standing } in self.edges(held, |d| &d.proxies) {
            let kind = match (h, d) {
                (Some(_), None) if standing == Standing::Undeclared => FindingKind::Orphaned,
                (Some(_), None) => FindingKind::Unauthorized,
                (None, Some(_)) => FindingKind::Missing,
                (Some(true), Some(false)) => FindingKind::Unauthorized,
                (Some(false), Some(true)) => FindingKind::Missing,
                _ => continue,
            };
            let grantable = h.unwrap_or(false) || d.unwrap_or(false);
            let detail = match (h, d) {
                (Some(true), Some(false)) => {
                    format!("may log in as {proxied} WITH GRANT OPTION; the baseline declares it without")
                }
                (Some(false), Some(true)) => {
                    format!("may log in as {proxied} without the GRANT OPTION the baseline declares")
                }
                _ => format!("may log in as {proxied}"),
            };
            self.push(Raw {
                kind,
                grantee: grantee_of(grantee),
                privilege: FindingPrivilege::Mysql(Privilege::Proxy),
                class: PrivilegeClass::Admin,
                // an empty user proxies every user at the host
                reach: if proxied.user.is_empty() { Reach::Cluster } else { Reach::Object },
                grantable,
                object: account_object(proxied),
                detail,
            });
        }
    }

    /// Privileges at every scope, held against declared.
    fn privileges(&mut self) {
        let none = Desired::default();
        let mut pairs: BTreeMap<(&Account, &Scope), Pair> = BTreeMap::new();
        for g in &self.catalog.privileges {
            pairs.entry((&g.grantee, &g.scope)).or_default().0 = Some(g);
        }
        for (a, d) in &self.baseline.accounts {
            for (scope, desired) in &d.grants {
                pairs.entry((a, scope)).or_default().1 = Some(desired);
            }
        }
        for ((account, scope), (held, desired)) in pairs {
            let standing = self.standing(account);
            if standing == Standing::LeftAlone || !self.judged.scope(scope) {
                continue;
            }
            let empty = PrivilegeGrant {
                grantee: account.clone(),
                scope: scope.clone(),
                privileges: BTreeSet::new(),
                grantable: false,
                dynamic_grantable: BTreeSet::new(),
            };
            let held = held.unwrap_or(&empty);
            let declared = desired.unwrap_or(&none);
            let extra =
                if standing == Standing::Undeclared { FindingKind::Orphaned } else { FindingKind::Unauthorized };
            let grantee = grantee_of(account);
            let at = desired.map(|d| format!(" (declared at {})", d.origin)).unwrap_or_default();
            // what the tickets make of each privilege held and not declared
            let target = self.target;
            let overlays: BTreeMap<&Privilege, Overlay> = held
                .privileges
                .difference(&declared.privileges)
                .filter_map(|p| Some((p, self.exceptions.overlay(|t| t.covers_mysql(target, account, p, scope))?)))
                .collect();
            for p in &held.privileges {
                self.coverage.held += 1;
                match overlays.get(p) {
                    _ if declared.privileges.contains(p) => self.coverage.baseline += 1,
                    Some(o) if o.kind == FindingKind::Excepted => self.coverage.exceptions += 1,
                    _ => self.coverage.drift += 1,
                }
            }
            let changes = held
                .privileges
                .difference(&declared.privileges)
                .map(|p| match overlays.get(p) {
                    Some(o) => (o.kind, p, held.dynamic_grantable.contains(p), o.detail.clone()),
                    None => {
                        (extra, p, held.dynamic_grantable.contains(p), format!("holds {p} on {}", scope_text(scope)))
                    }
                })
                .chain(declared.privileges.difference(&held.privileges).map(|p| {
                    (FindingKind::Missing, p, declared.dynamic_grantable.contains(p), format!("lacks {p}{at}"))
                }))
                // a dynamic privilege held by both, with its own grant option on one side only
                .chain(held.dynamic_grantable.symmetric_difference(&declared.dynamic_grantable).filter_map(|p| {
                    let both = held.privileges.contains(p) && declared.privileges.contains(p);
                    let kind = if held.dynamic_grantable.contains(p) { extra } else { FindingKind::Missing };
                    both.then(|| (kind, p, true, format!("{p} WITH GRANT OPTION differs from the baseline{at}")))
                }))
                .map(|(kind, p, grantable, detail)| Raw {
                    kind,
                    grantee: grantee.clone(),
                    privilege: FindingPrivilege::Mysql(p.clone()),
                    class: p.class(),
                    reach: reach(scope),
                    grantable,
                    object: FindingObject::of_mysql_scope(scope),
                    detail,
                })
                .collect::<Vec<_>>();
            for r in changes {
                let overlay = match (&r.privilege, r.kind) {
                    (FindingPrivilege::Mysql(p), FindingKind::Excepted | FindingKind::ExpiredException) => {
                        overlays.get(p).map(|o| (o.ticket.id().to_owned(), o.factor))
                    }
                    _ => None,
                };
                self.push(r);
                if let (Some((ticket, factor)), Some(f)) = (overlay, self.findings.last_mut()) {
                    f.exception_id = Some(ticket);
                    f.score = round2(f.score * factor);
                }
            }
            // a column's grant option is its table's, judged there
            let column = matches!(scope, Scope::Column { .. });
            if held.grantable != declared.grantable && !column {
                let (kind, detail) = if held.grantable {
                    (extra, format!("may grant what it holds on {}", scope_text(scope)))
                } else {
                    (FindingKind::Missing, format!("lacks GRANT OPTION{at}"))
                };
                self.push(Raw {
                    kind,
                    grantee,
                    privilege: FindingPrivilege::Mysql(Privilege::GrantOption),
                    class: PrivilegeClass::Admin,
                    reach: reach(scope),
                    grantable: false,
                    object: FindingObject::of_mysql_scope(scope),
                    detail,
                });
            }
        }
    }

    /// The administrative global privileges `a` holds, itself or through the roles granted to it (any of
    /// which it may `SET ROLE` to), with GRANT OPTION on `*.*` among them.
    fn admin_privileges(&self, a: &Account) -> BTreeSet<Privilege> {
        let mut seen = BTreeSet::from([a]);
        let mut queue = vec![a];
        let mut out = BTreeSet::new();
        while let Some(next) = queue.pop() {
            if let Some(g) = self.catalog.privileges_at(next, &Scope::Global) {
                out.extend(g.privileges.iter().filter(|p| p.class() == PrivilegeClass::Admin).cloned());
                if g.grantable {
                    out.insert(Privilege::GrantOption);
                }
            }
            for r in self.catalog.roles_of(next) {
                if seen.insert(&r.role) {
                    queue.push(&r.role);
                }
            }
        }
        out
    }

    /// Anonymous and passwordless accounts, and administrators reachable from any host.
    fn exposures(&mut self) {
        if !self.judged.cluster {
            return;
        }
        for info in &self.catalog.accounts {
            let a = &info.account;
            if self.standing(a) == Standing::LeftAlone {
                continue;
            }
            let exposure = |privilege, class, detail: String| Raw {
                kind: FindingKind::Exposure,
                grantee: grantee_of(a),
                privilege: FindingPrivilege::One(privilege),
                class,
                reach: Reach::Cluster,
                grantable: false,
                object: account_object(a),
                detail,
            };
            let mut raws = Vec::new();
            if info.anonymous() && !info.locked {
                raws.push(exposure(
                    Pg::Role,
                    PrivilegeClass::Write,
                    format!(
                        "an anonymous account: any user name that matches no other account logs in from {} as it",
                        host_text(a)
                    ),
                ));
            }
            if info.passwordless() {
                raws.push(exposure(Pg::Login, PrivilegeClass::Write, "logs in with no password".into()));
            }
            if a.any_host() && logs_in(info) {
                let admin = self.admin_privileges(a);
                if !admin.is_empty() {
                    raws.push(exposure(
                        Pg::Login,
                        PrivilegeClass::Admin,
                        format!("holds {} on *.* and logs in from any host (`%`)", words(&admin)),
                    ));
                }
            }
            for r in raws {
                self.push(r);
            }
        }
        self.patterns_that_look_literal();
    }

    /// A database grant whose name holds an unescaped `_` (and no `%`) next
    /// to a database of that very name: meant for that database, it covers
    /// every database that name matches with `_` as any one character
    /// (`app_db` also covers `appxdb`, which anyone who may create a
    /// database can make).
    fn patterns_that_look_literal(&mut self) {
        let catalog = self.catalog;
        for g in &catalog.privileges {
            let Scope::Database { database, pattern: true } = &g.scope else { continue };
            let literal = crate::mysql::catalog::unescape(database);
            if literal.contains('%') || !catalog.databases.contains(&literal) {
                continue;
            }
            if self.standing(&g.grantee) == Standing::LeftAlone {
                continue;
            }
            let worst = g.privileges.iter().max_by_key(|p| p.class()).cloned();
            let privilege = worst.unwrap_or(Privilege::GrantOption);
            self.push(Raw {
                kind: FindingKind::Exposure,
                grantee: grantee_of(&g.grantee),
                class: privilege.class(),
                privilege: FindingPrivilege::Mysql(privilege),
                reach: Reach::Database,
                grantable: g.grantable,
                object: FindingObject::of_mysql_scope(&g.scope),
                detail: format!(
                    "a grant on {} is a pattern: its `_` matches any character, so beside {literal} it covers \
                     every database named like it; {} names {literal} alone",
                    scope_text(&g.scope),
                    crate::mysql::quote::ident(&literal.replace('_', "\\_")),
                ),
            });
        }
    }

    /// Stored objects that lend an administrator's rights to whoever runs
    /// them, and definers that do not exist.
    fn definers(&mut self) {
        for d in &self.catalog.definers {
            if self.judged.unread.contains(&d.database) || !d.runs_as_definer {
                continue;
            }
            let what = match d.kind {
                StoredKind::View => "a SQL SECURITY DEFINER view",
                StoredKind::Procedure => "a SQL SECURITY DEFINER procedure",
                StoredKind::Function => "a SQL SECURITY DEFINER function",
                StoredKind::Trigger => "a trigger (triggers run as their definer)",
                StoredKind::Event => "an event (events run as their definer)",
            };
            let exposure = |class, detail: String| Raw {
                kind: FindingKind::Exposure,
                grantee: grantee_of(&d.definer),
                privilege: FindingPrivilege::One(Pg::Owner),
                class,
                reach: Reach::Object,
                grantable: false,
                object: stored_object(d),
                detail,
            };
            let raw = if self.judged.cluster && !self.present.contains(&d.definer) {
                // a MariaDB role definer has no host; roles are accounts in the catalog too
                Some(exposure(
                    PrivilegeClass::Ddl,
                    format!(
                        "{what} whose definer {} does not exist: whoever creates that account gets its rights",
                        d.definer
                    ),
                ))
            } else if is_system_account(&d.definer) {
                None
            } else {
                let admin = self.admin_privileges(&d.definer);
                (!admin.is_empty()).then(|| {
                    exposure(
                        PrivilegeClass::Admin,
                        format!(
                            "{what} that runs with the rights of {}, who holds {} on *.*",
                            d.definer,
                            words(&admin)
                        ),
                    )
                })
            };
            if let Some(r) = raw {
                self.push(r);
            }
        }
    }
}

/// Whether anyone may log in as the account: not a role, not locked.
fn logs_in(info: &AccountInfo) -> bool {
    !info.is_role && !info.locked
}

fn host_text(a: &Account) -> String {
    if a.any_host() { "any host".into() } else { format!("host {}", crate::mysql::quote::string(&a.host)) }
}

/// A scope as `SHOW GRANTS` writes it, for details.
fn scope_text(scope: &Scope) -> String {
    use crate::mysql::quote::ident;
    match scope {
        Scope::Global => "*.*".into(),
        Scope::Database { database, .. } => format!("{}.*", ident(database)),
        Scope::Table { database, table } => format!("{}.{}", ident(database), ident(table)),
        Scope::Column { database, table, column } => {
            format!("{}.{} ({})", ident(database), ident(table), ident(column))
        }
        Scope::Routine { database, name, kind } => format!("{kind} {}.{}", ident(database), ident(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql::catalog::{Authentication, Flavor, RoleGrant, Server};
    use crate::mysql_baseline::generate;
    use crate::scoring::Severity;
    use crate::snapshot::{ChunkOutcome, TargetId};
    use crate::ticket::Ticket;
    use chrono::{DateTime, Utc};

    fn info(user: &str, host: &str, auth: Authentication) -> AccountInfo {
        AccountInfo {
            account: Account::new(user, host),
            is_role: matches!(auth, Authentication::None),
            authentication: vec![auth],
            locked: false,
            password_expired: false,
            password_lifetime_days: None,
            max_user_connections: 0,
        }
    }

    fn password() -> Authentication {
        Authentication::Password { plugin: "mysql_native_password".into(), set: true }
    }

    fn scan_of(catalog: Catalog, failed: &[ChunkSpec]) -> Scan {
        let chunks = [ChunkSpec::Cluster, ChunkSpec::Schemas { schemas: vec!["shop".into()] }]
            .into_iter()
            .map(|chunk| ChunkOutcome {
                batch_id: "b".into(),
                error: failed.contains(&chunk).then(|| "connection lost".to_owned()),
                chunk,
                attempts: 1,
            })
            .collect();
        Scan {
            target: TargetId::new("maria").unwrap(),
            scan_id: "s".into(),
            taken_at: "2026-12-07T00:00:00Z".parse().unwrap(),
            server: Server { flavor: Flavor::Mariadb, version: "10.11.19-MariaDB".into() },
            complete: failed.is_empty(),
            consistent: false,
            chunks,
            sha256: catalog.sha256(),
            catalog,
        }
    }

    /// A server: an application account, a reporting role, an administrator,
    /// and a view that runs as the administrator.
    fn server() -> Catalog {
        let app = Account::new("app", "10.0.%");
        let mut c = Catalog {
            accounts: vec![
                info("app", "10.0.%", password()),
                info("reporting", "", Authentication::None),
                info("dba", "localhost", Authentication::Socket { plugin: "unix_socket".into() }),
                info("mariadb.sys", "localhost", password()),
            ],
            ..Catalog::default()
        };
        let shop = Scope::Database { database: "shop".into(), pattern: false };
        c.add_privileges(app.clone(), shop, vec![Privilege::Select, Privilege::Insert], false);
        let orders = Scope::Table { database: "shop".into(), table: "orders".into() };
        c.add_privileges(Account::new("reporting", ""), orders, vec![Privilege::Select], false);
        c.add_privileges(Account::new("dba", "localhost"), Scope::Global, vec![Privilege::Super], true);
        c.roles.insert(RoleGrant { grantee: app, role: Account::new("reporting", ""), admin: false });
        c.definers.insert(Definer {
            kind: StoredKind::View,
            database: "shop".into(),
            name: "totals".into(),
            definer: Account::new("dba", "localhost"),
            runs_as_definer: true,
        });
        c
    }

    fn baseline_of(catalog: &Catalog) -> Baseline {
        let manifest = generate(catalog, Engine::Mariadb, &crate::manifest::RoleFilter::default());
        let yaml = serde_saphyr::to_string(&manifest).unwrap();
        Baseline::from_yaml(&yaml, "generated.yaml").unwrap_or_else(|e| panic!("{e}\n{yaml}"))
    }

    fn summary(r: &Report) -> Vec<(FindingKind, Severity, String, String, String)> {
        r.findings
            .iter()
            .map(|f| (f.kind, f.severity, f.grantee.to_string(), f.privilege.text().into_owned(), f.object.to_string()))
            .collect()
    }

    #[test]
    fn a_generated_baseline_plans_with_no_drift_and_exposures_stay() {
        let catalog = server();
        let report = plan(&baseline_of(&catalog), &scan_of(catalog, &[]), &ScoringConfig::standard()).unwrap();
        assert!(!report.has_drift(), "{:#?}", summary(&report));
        // SUPER and GRANT OPTION on *.*, lent by a view: an exposure whatever the baseline says
        assert_eq!(
            summary(&report),
            [(
                FindingKind::Exposure,
                Severity::Critical,
                "'dba'@'localhost'".into(),
                "OWNER".into(),
                "view shop.totals".into()
            )]
        );
        assert_eq!(report.summary.exposure, 1);
        // a critical exposure alerts as critical drift does, though it is no drift
        assert_eq!(report.summary.status, crate::report::Status::Alert);
        assert_eq!(report.observations.len(), 1, "mariadb.sys is observed, not judged");
        assert_eq!(report.summary.coverage.drift, 0);
        assert_eq!(report.summary.coverage.held, report.summary.coverage.baseline);
    }

    #[test]
    fn mysql_8_partial_revokes_round_trip_and_either_change_is_drift_left_to_a_person() {
        use crate::mysql::catalog::PartialRevoke;
        use crate::remediate::{Mode, remediate};
        let ops = Account::new("ops", "%");
        let mut before = Catalog { accounts: vec![info("ops", "%", password())], ..Catalog::default() };
        before.add_privileges(ops.clone(), Scope::Global, vec![Privilege::Select, Privilege::Insert], false);
        let revoke = |database: &str, ps: &[Privilege]| PartialRevoke {
            account: ops.clone(),
            database: database.into(),
            privileges: ps.iter().cloned().collect(),
        };
        before.partial_revokes.insert(revoke("mysql", &[Privilege::Select, Privilege::Insert]));
        let generated = generate(&before, Engine::Mysql, &crate::manifest::RoleFilter::default());
        let yaml = serde_saphyr::to_string(&generated).unwrap();
        assert!(yaml.contains("revokes: [{database: mysql, privileges: [SELECT, INSERT]}]"), "{yaml}");
        let baseline = Baseline::from_yaml(&yaml, "generated.yaml").unwrap();
        let mysql8 = |catalog: Catalog| {
            let mut scan = scan_of(catalog, &[]);
            scan.server = Server { flavor: Flavor::Mysql, version: "8.0.36".into() };
            scan
        };
        let report = plan(&baseline, &mysql8(before.clone()), &ScoringConfig::standard()).unwrap();
        assert!(!report.has_drift(), "{:#?}", summary(&report));

        // the revoke of INSERT lifted, another added in `hr`
        let mut after = before.clone();
        after.partial_revokes = [revoke("mysql", &[Privilege::Select]), revoke("hr", &[Privilege::Select])].into();
        let report = plan(&baseline, &mysql8(after), &ScoringConfig::standard()).unwrap();
        let found = summary(&report);
        assert_eq!(found.len(), 2, "{found:#?}");
        let ops_at = |kind, severity, privilege: &str, object: &str| {
            (kind, severity, "'ops'@'%'".to_owned(), privilege.to_owned(), object.to_owned())
        };
        // the report puts the worse first
        assert_eq!(found[0], ops_at(FindingKind::Unauthorized, Severity::Medium, "INSERT", "database mysql"));
        assert_eq!(found[1], ops_at(FindingKind::Missing, Severity::Low, "SELECT", "database hr"));
        let fix = remediate(&report.findings, Mode::Converge);
        assert!(fix.changes.is_empty(), "{:#?}", fix.changes);
        assert!(fix.skipped.iter().all(|s| s.reason.starts_with("a MySQL 8 partial revoke differs")));

        // declared only where the engine has them, and only of what `*.*` grants
        let mariadb = yaml.replace("engine: mysql", "engine: mariadb");
        let e = Baseline::from_yaml(&mariadb, "b.yaml").unwrap_err();
        assert_eq!(
            (e.path.as_str(), e.message.as_str()),
            ("accounts[0].revokes[0]", "partial revokes are MySQL 8's; MariaDB has none")
        );
        let e = Baseline::from_yaml(&yaml.replace("[SELECT, INSERT]}]", "[SELECT, DELETE]}]"), "b.yaml").unwrap_err();
        assert_eq!(e.path, "accounts[0].revokes[0].privileges[1]", "{e}");
    }

    #[test]
    fn an_accepted_exposure_stays_in_the_report_as_an_observation_with_its_reason() {
        let catalog = server();
        let generated = generate(&catalog, Engine::Mariadb, &crate::manifest::RoleFilter::default());
        let yaml = serde_saphyr::to_string(&generated).unwrap();
        let with = |entries: &str| {
            let text = format!("{yaml}accepted_exposures:\n{entries}");
            Baseline::from_yaml(&text, "b.yaml").unwrap_or_else(|e| panic!("{e}\n{text}"))
        };
        let scan = scan_of(catalog, &[]);
        // the view's definer and database match: observed with the reason, no longer scored
        let accepted = with("  - { account: 'dba@*', objects: ['shop.tot*'], reason: reviewed in CHG-42 }\n");
        let report = plan(&accepted, &scan, &ScoringConfig::standard()).unwrap();
        assert!(summary(&report).is_empty(), "{:#?}", summary(&report));
        assert_eq!(report.summary.exposure, 0);
        assert_ne!(report.summary.status, crate::report::Status::Alert);
        let observed = report.observations.iter().find(|f| f.object.to_string() == "view shop.totals").unwrap();
        assert!(
            observed.detail.ends_with("(accepted at accepted_exposures[0]: reviewed in CHG-42)"),
            "{}",
            observed.detail
        );
        // another object, or the account's own exposures only: still an exposure
        for entries in [
            "  - { account: 'dba@*', objects: ['billing.*'], reason: other views }\n",
            "  - { account: 'dba@localhost', reason: the account itself }\n",
            "  - { account: 'app@*', objects: ['shop.*'], reason: another definer }\n",
        ] {
            let report = plan(&with(entries), &scan, &ScoringConfig::standard()).unwrap();
            assert_eq!(report.summary.exposure, 1, "{entries}");
        }
        // each entry says why, and its globs accept
        for (entries, path, message) in [
            ("  - { account: 'dba@*', reason: ' ' }\n", "accepted_exposures[0].reason", "say why"),
            ("  - { account: '!dba@*', reason: x }\n", "accepted_exposures[0].account", "`!` means nothing"),
            (
                "  - { account: 'dba@*', objects: ['a', 'b[' ], reason: x }\n",
                "accepted_exposures[0].objects[1]",
                "invalid glob",
            ),
        ] {
            let text = format!("{yaml}accepted_exposures:\n{entries}");
            let e = Baseline::from_yaml(&text, "b.yaml").unwrap_err();
            assert_eq!(e.path, path, "{e}");
            assert!(e.message.contains(message), "{e}");
        }
    }

    #[test]
    fn remediation_of_drift_is_what_the_baseline_holds_and_option_differences_are_left_to_a_person() {
        use crate::mysql::catalog::ProxyGrant;
        use crate::mysql::change::MysqlChange;
        use crate::remediate::{Mode, remediate};
        let mut before = server();
        let (app, reporting) = (Account::new("app", "10.0.%"), Account::new("reporting", ""));
        let package = Scope::Routine { database: "shop".into(), name: "billing".into(), kind: "PACKAGE BODY".into() };
        before.add_privileges(app.clone(), package.clone(), vec![Privilege::Execute], false);
        before.accounts.push(AccountInfo { locked: true, ..info("ops", "localhost", password()) });
        before.proxies.insert(ProxyGrant {
            grantee: app.clone(),
            proxied: Account::new("ops", "localhost"),
            grantable: false,
        });
        let baseline = baseline_of(&before);
        let mut after = before.clone();
        let column = Scope::Column { database: "shop".into(), table: "orders".into(), column: "email".into() };
        after.add_privileges(app.clone(), Scope::Global, vec![Privilege::File], true);
        after.add_privileges(app.clone(), column, vec![Privilege::Update], false);
        after.privileges.retain(|g| !(g.grantee == reporting || g.scope == package));
        after.roles.clear();
        after.roles.insert(RoleGrant {
            grantee: Account::new("dba", "localhost"),
            role: reporting.clone(),
            admin: false,
        });
        after.proxies =
            [ProxyGrant { grantee: app.clone(), proxied: Account::new("ops", "localhost"), grantable: true }].into();
        after.accounts.iter_mut().filter(|a| a.account.user == "ops").for_each(|a| a.locked = false);
        after.accounts.push(info("stray", "%", password()));
        let report = plan(&baseline, &scan_of(after.clone(), &[]), &ScoringConfig::standard()).unwrap();
        let fix = remediate(&report.findings, Mode::Converge);
        let changes: Vec<&MysqlChange> = fix
            .changes
            .iter()
            .map(|c| match c {
                crate::change::Change::Mysql { mysql } => mysql,
                other => panic!("{other:?}"),
            })
            .collect();
        // each change is needed now and holds on the server the baseline was generated from
        for c in &changes {
            assert!(!c.holds_in(&after), "{c} is needed");
            assert!(c.holds_in(&before), "{c} is what the baseline holds");
        }
        let words: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            words,
            [
                // an account's column revokes first, then what else takes away; grants last
                "revoke UPDATE on column shop.orders.email from 'app'@'10.0.%'",
                "revoke FILE on *.* from 'app'@'10.0.%'",
                "revoke GRANT OPTION on *.* from 'app'@'10.0.%'",
                "revoke role 'reporting'@'' from 'dba'@'localhost'",
                "lock 'ops'@'localhost'",
                "grant EXECUTE on package body shop.billing to 'app'@'10.0.%'",
                "grant role 'reporting'@'' to 'app'@'10.0.%'",
                "grant SELECT on table shop.orders to 'reporting'@''",
            ]
            .map(String::from),
            "{:#?}",
            fix.skipped
        );
        // as a journal or a queue reads them back (`SELECT` then names PostgreSQL's): the same changes
        let read_back: Vec<Finding> = serde_json::from_str(&serde_json::to_string(&report.findings).unwrap()).unwrap();
        assert_eq!(remediate(&read_back, Mode::Converge).changes, fix.changes);
        let reasons: Vec<&str> = fix.skipped.iter().map(|s| s.reason.as_str()).collect();
        assert!(reasons.iter().any(|r| r.starts_with("the proxy's GRANT OPTION differs")), "{reasons:#?}");
        assert!(reasons.iter().any(|r| r.contains("DROP USER by hand")), "{reasons:#?}");
        assert!(reasons.iter().any(|r| r.starts_with("an exposure")), "{reasons:#?}");
    }

    #[test]
    fn administrative_drift_is_critical_and_exposures_are_found() {
        let before = server();
        let baseline = baseline_of(&before);
        let mut after = before;
        let app = Account::new("app", "10.0.%");
        after.add_privileges(app.clone(), Scope::Global, vec![Privilege::File], true);
        after.privileges.retain(|g| g.grantee.user != "reporting");
        after.roles.insert(RoleGrant { grantee: app, role: Account::new("reporting", ""), admin: true });
        after.accounts.push(info("", "localhost", password()));
        after.accounts.push(info("ops", "%", Authentication::Password { plugin: "ed25519".into(), set: false }));
        after.roles.insert(RoleGrant {
            grantee: Account::new("ops", "%"),
            role: Account::new("dba", "localhost"),
            admin: false,
        });
        let report = plan(&baseline, &scan_of(after, &[]), &ScoringConfig::standard()).unwrap();
        let found = summary(&report);
        let has = |kind, severity: Severity, grantee: &str, privilege: &str, object: &str| {
            assert!(
                found.iter().any(|f| f == &(kind, severity, grantee.into(), privilege.into(), object.into())),
                "{kind:?} {severity} {grantee} {privilege} {object} in {found:#?}"
            );
        };
        use FindingKind::*;
        has(Unauthorized, Severity::Critical, "'app'@'10.0.%'", "FILE", "global *.*");
        has(Unauthorized, Severity::Critical, "'app'@'10.0.%'", "GRANT OPTION", "global *.*");
        has(Unauthorized, Severity::Critical, "'app'@'10.0.%'", "MEMBER", "account 'reporting'@''");
        has(Missing, Severity::Low, "'reporting'@''", "SELECT", "table shop.orders");
        has(Orphaned, Severity::High, "''@'localhost'", "ROLE", "account ''@'localhost'");
        has(Exposure, Severity::High, "''@'localhost'", "ROLE", "account ''@'localhost'");
        has(Exposure, Severity::High, "'ops'@'%'", "LOGIN", "account 'ops'@'%'");
        // through its role: SUPER and GRANT OPTION from anywhere
        has(Exposure, Severity::Critical, "'ops'@'%'", "LOGIN", "account 'ops'@'%'");
        let any_host = report.findings.iter().find(|f| f.detail.contains("from any host")).unwrap();
        assert_eq!(any_host.detail, "holds SUPER, GRANT OPTION on *.* and logs in from any host (`%`)");
        assert_eq!(report.summary.status, crate::report::Status::Alert);
        // a report of a MySQL plan reads back as the same JSON
        let json = serde_json::to_string(&report).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
        assert!(matches!(back.findings[0].grantee, Grantee::Account(_)));
    }

    #[test]
    fn what_a_failed_chunk_held_is_not_judged() {
        let catalog = server();
        let baseline = baseline_of(&catalog);
        // the database chunk failed: shop's table privileges and definers were not read
        let mut partial = catalog.clone();
        partial.privileges.retain(|g| g.scope.database() != Some("shop") || matches!(g.scope, Scope::Database { .. }));
        partial.definers.clear();
        let failed = ChunkSpec::Schemas { schemas: vec!["shop".into()] };
        let report = plan(&baseline, &scan_of(partial, &[failed]), &ScoringConfig::standard()).unwrap();
        assert!(report.findings.is_empty(), "{:#?}", summary(&report));
        assert!(!report.summary.complete);
        assert!(report.summary.not_judged.iter().any(|n| n.contains("shop")), "{:?}", report.summary.not_judged);
        // the cluster chunk failed: no account, role or global privilege was read
        let mut partial = catalog;
        partial.accounts.clear();
        partial.roles.clear();
        partial.privileges.retain(|g| matches!(g.scope, Scope::Table { .. }));
        let report = plan(&baseline, &scan_of(partial, &[ChunkSpec::Cluster]), &ScoringConfig::standard()).unwrap();
        let judged: Vec<_> = summary(&report).into_iter().filter(|f| f.0 != FindingKind::Exposure).collect();
        assert!(judged.is_empty(), "{judged:#?}");
    }

    #[test]
    fn hostile_names_round_trip_through_a_generated_baseline() {
        let names = ["o'k", "a`b", "back\\slash", "per%cent", "under_score", "ünï", "sp ace", "yes", "null", "*"];
        let mut c = Catalog::default();
        for (i, n) in names.iter().enumerate() {
            let host = if i % 2 == 0 { "10.0.%" } else { n };
            c.accounts.push(info(n, host, password()));
            let account = Account::new(n, host);
            c.add_privileges(
                account.clone(),
                Scope::Database { database: n.to_string(), pattern: false },
                vec![Privilege::Select],
                false,
            );
            c.add_privileges(
                account.clone(),
                Scope::Database { database: format!("{n}\\_x%"), pattern: true },
                vec![Privilege::Insert],
                i % 3 == 0,
            );
            c.add_privileges(
                account.clone(),
                Scope::Table { database: n.to_string(), table: n.to_string() },
                vec![Privilege::Update],
                true,
            );
            let column = Scope::Column { database: n.to_string(), table: n.to_string(), column: n.to_string() };
            c.add_privileges(account.clone(), column, vec![Privilege::Select, Privilege::References], false);
            let routine = Scope::Routine { database: n.to_string(), name: n.to_string(), kind: "FUNCTION".into() };
            c.add_privileges(account.clone(), routine, vec![Privilege::Execute], false);
            c.proxies.insert(crate::mysql::catalog::ProxyGrant {
                grantee: account,
                proxied: Account::new(n, "%"),
                grantable: false,
            });
        }
        let baseline = baseline_of(&c);
        let report = plan(&baseline, &scan_of(c.clone(), &[]), &ScoringConfig::standard()).unwrap();
        assert!(!report.has_drift(), "{:#?}", summary(&report));

        // every grant gone, then every grant undeclared: remediation names each object and account back,
        // as a journal reads the findings back
        use crate::mysql::change::MysqlChange;
        use crate::remediate::{Mode, remediate};
        let bare = Catalog { accounts: c.accounts.clone(), ..Catalog::default() };
        let changes = |baseline: &Baseline, held: &Catalog| -> Vec<MysqlChange> {
            let report = plan(baseline, &scan_of(held.clone(), &[]), &ScoringConfig::standard()).unwrap();
            let read_back: Vec<Finding> =
                serde_json::from_str(&serde_json::to_string(&report.findings).unwrap()).unwrap();
            let fix = remediate(&read_back, Mode::Converge);
            assert!(fix.skipped.is_empty(), "{:#?}", fix.skipped);
            fix.changes
                .into_iter()
                .map(|c| match c {
                    crate::change::Change::Mysql { mysql } => mysql,
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        let grants = changes(&baseline, &bare);
        assert!(grants.len() >= names.len() * 5, "{grants:#?}");
        for g in &grants {
            assert!(!g.holds_in(&bare) && g.holds_in(&c), "{g}");
        }
        let accounts_only = baseline_of(&bare);
        let revokes = changes(&accounts_only, &c);
        assert!(revokes.len() >= names.len() * 5, "{revokes:#?}");
        for r in &revokes {
            assert!(r.takes_away() && !r.holds_in(&c) && r.holds_in(&bare), "{r}");
        }
    }

    #[test]
    fn mysql_dynamic_privileges_keep_their_own_grant_option_through_a_baseline() {
        let mut c = Catalog { accounts: vec![info("ops", "10.%", password())], ..Catalog::default() };
        let ops = Account::new("ops", "10.%");
        c.add_privileges(ops.clone(), Scope::Global, vec![Privilege::Process], false);
        c.add_dynamic(ops.clone(), Privilege::Dynamic("BACKUP_ADMIN".into()), true);
        c.add_dynamic(ops.clone(), Privilege::Dynamic("XA_RECOVER_ADMIN".into()), false);
        let manifest = generate(&c, Engine::Mysql, &crate::manifest::RoleFilter::default());
        let yaml = serde_saphyr::to_string(&manifest).unwrap();
        let baseline = Baseline::from_yaml(&yaml, "mysql.yaml").unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        let mut scan = scan_of(c.clone(), &[]);
        scan.server.flavor = Flavor::Mysql;
        let report = plan(&baseline, &scan, &ScoringConfig::standard()).unwrap();
        assert!(!report.has_drift(), "{:#?}\n{yaml}", summary(&report));
        // the grant option of one dynamic privilege is its own: taking it is drift on that privilege alone
        let mut without = c;
        without.privileges.clear();
        without.add_privileges(ops.clone(), Scope::Global, vec![Privilege::Process], false);
        without.add_dynamic(ops.clone(), Privilege::Dynamic("BACKUP_ADMIN".into()), false);
        without.add_dynamic(ops, Privilege::Dynamic("XA_RECOVER_ADMIN".into()), false);
        scan.catalog = without;
        let report = plan(&baseline, &scan, &ScoringConfig::standard()).unwrap();
        let found: Vec<_> =
            report.findings.iter().map(|f| (f.kind, f.privilege.text().into_owned(), f.grantable)).collect();
        assert_eq!(found, [(FindingKind::Missing, "BACKUP_ADMIN".to_owned(), true)]);
    }

    #[test]
    fn a_pattern_beside_a_database_of_its_name_is_an_exposure_even_when_declared() {
        let mut c = server();
        c.databases.extend(["app_db".to_owned(), "shop".to_owned()]);
        let app = Account::new("app", "10.0.%");
        let pattern = |database: &str| Scope::Database { database: database.into(), pattern: true };
        // meant for app_db, covers appxdb too; `app\_%` and `tmp_%` are patterns meant as such
        c.add_privileges(app.clone(), pattern("app_db"), vec![Privilege::Select, Privilege::Delete], false);
        c.add_privileges(app.clone(), pattern("app\\_%"), vec![Privilege::Select], false);
        c.add_privileges(app, pattern("tmp_"), vec![Privilege::Select], false);
        let report = plan(&baseline_of(&c), &scan_of(c, &[]), &ScoringConfig::standard()).unwrap();
        let patterns: Vec<_> = report
            .findings
            .iter()
            .filter(|f| f.object.type_name() == "database_pattern")
            .map(|f| (f.kind, f.severity, f.privilege.text().into_owned(), f.object.to_string()))
            .collect();
        assert_eq!(
            patterns,
            [(FindingKind::Exposure, Severity::High, "DELETE".into(), "database_pattern app_db".into())],
            "{:#?}",
            report.findings
        );
        let detail = &report.findings.iter().find(|f| f.object.type_name() == "database_pattern").unwrap().detail;
        assert!(detail.ends_with("`app\\_db` names app_db alone"), "{detail}");
    }

    #[test]
    fn a_baseline_of_the_other_engine_is_refused() {
        let catalog = server();
        let mut scan = scan_of(catalog.clone(), &[]);
        scan.server.flavor = Flavor::Mysql;
        let e = plan(&baseline_of(&catalog), &scan, &ScoringConfig::standard()).unwrap_err();
        assert_eq!(e.to_string(), "the baseline is for mariadb, and maria is mysql: plan it with a mysql baseline");
    }

    /// A ticket of target `maria` for `role` (an account as people write it) holding
    /// `privileges` on `on` `schema`.`name`, from `start` for `hours` hours.
    fn ticket(role: &str, privileges: &[Pg], object: (crate::manifest::On, Option<&str>, &str), hours: i64) -> Ticket {
        use crate::request::{Action, GrantRequest, InputKind, RequestObject};
        let registry = crate::policy::PolicyRegistry::load(&[(
            "r.yaml".into(),
            "version: \"1\"\nowner: a@x.io\napprover: b@x.io\ncategories:\n  ops: { framework: SOC2, max_ttl: 24h, approvals: 0, weight_factor: 0.25 }\nroutes:\n  - { match: {}, category: ops }\n".into(),
        )])
        .unwrap();
        let start: DateTime<Utc> = "2026-12-06T22:00:00Z".parse().unwrap();
        let (on, schema, name) = object;
        let req = GrantRequest {
            delivery_id: format!("d-{role}-{name}-{hours}"),
            input: InputKind::Webhook,
            source: "okta".into(),
            action: Action::Grant,
            target: TargetId::new("maria").unwrap(),
            principal: "alice@example.com".into(),
            role: crate::model::RoleName::new(role).unwrap(),
            privileges: privileges.to_vec(),
            object: RequestObject { on, schema: schema.map(str::to_owned), name: Some(name.into()), columns: vec![] },
            expires_at: Some(start + chrono::Duration::hours(hours)),
            justification: None,
            requested_by: "alice@example.com".into(),
            incident_id: None,
            observed_at: start,
        };
        match crate::ticket::route(&req, &registry, &crate::incident::KnownIncidents(vec![]), start) {
            crate::ticket::Decision::Ticket(t) => *t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tickets_naming_an_account_except_what_they_cover_and_an_ended_one_is_a_ttl_breach() {
        use crate::manifest::On;
        let catalog = server();
        let baseline = baseline_of(&catalog);
        let mut drifted = catalog.clone();
        let shop = |table: &str| Scope::Table { database: "shop".into(), table: table.into() };
        let app = Account::new("app", "10.0.%");
        drifted.add_privileges(app.clone(), shop("orders"), vec![Privilege::Update, Privilege::Delete], false);
        drifted.add_privileges(app.clone(), shop("refunds"), vec![Privilege::Select], false);
        drifted.add_privileges(app.clone(), Scope::Global, vec![Privilege::Select], false);
        let scan = scan_of(drifted, &[]);
        let active = ticket("'app'@'10.0.%'", &[Pg::Update], (On::Table, Some("shop"), "orders"), 4);
        let ended = ticket("app@10.0.%", &[Pg::Select], (On::Schema, None, "shop"), 1);
        let stranger = ticket("app@%", &[Pg::Delete], (On::Table, Some("shop"), "orders"), 4);
        let tickets = [active.clone(), ended.clone(), stranger];
        let now = scan.taken_at;
        let exceptions = Exceptions { tickets: &tickets, now, untagged: &[] };
        let report = plan_with_exceptions(&baseline, &scan, &ScoringConfig::standard(), &exceptions).unwrap();
        let of = |privilege: &str, object: &str| {
            report
                .findings
                .iter()
                .find(|f| f.privilege.text() == privilege && f.object.to_string() == object)
                .map(|f| (f.kind, f.exception_id.clone(), f.detail.clone()))
                .unwrap_or_else(|| panic!("{privilege} on {object}: {:#?}", summary(&report)))
        };
        let (kind, id, detail) = of("UPDATE", "table shop.orders");
        assert_eq!((kind, id.as_deref()), (FindingKind::Excepted, Some(active.id())), "{detail}");
        assert!(detail.starts_with("authorized exception: ticket"), "{detail}");
        let (kind, id, detail) = of("SELECT", "table shop.refunds");
        assert_eq!((kind, id.as_deref()), (FindingKind::ExpiredException, Some(ended.id())), "{detail}");
        assert!(detail.starts_with("TTL breach"), "{detail}");
        // another account's ticket, and a global privilege (which no ticket covers), stay drift
        assert_eq!(of("DELETE", "table shop.orders").0, FindingKind::Unauthorized);
        assert_eq!(of("SELECT", "global *.*").0, FindingKind::Unauthorized);
        let excepted = report.findings.iter().find(|f| f.kind == FindingKind::Excepted).unwrap();
        assert!(excepted.score > 0.0 && report.summary.coverage.exceptions == 1, "{:?}", report.summary.coverage);

        // remediation leaves the excepted grant alone, and holds back a revoke a ticket in force covers
        use crate::remediate::{Mode, remediate, without_excepted};
        let planned = remediate(&report.findings, Mode::RevokeUnauthorized);
        let revokes: Vec<String> = planned.changes.iter().map(|c| format!("{c:?}")).collect();
        assert!(!revokes.iter().any(|c| c.contains("Update")), "{revokes:#?}");
        let mut update = drifted_revoke(&app, shop("orders"), Privilege::Update);
        let (run, held) = without_excepted(vec![update.clone()], &scan.target, &tickets, now);
        assert_eq!((run.len(), held.len()), (0, 1));
        update = drifted_revoke(&app, shop("orders"), Privilege::Delete);
        let (run, _) = without_excepted(vec![update], &scan.target, &tickets, now);
        assert_eq!(run.len(), 1, "another account's ticket holds nothing back");
    }

    fn drifted_revoke(account: &Account, scope: Scope, p: Privilege) -> crate::change::Change {
        let grant = PrivilegeGrant {
            grantee: account.clone(),
            scope,
            privileges: [p].into(),
            grantable: false,
            dynamic_grantable: BTreeSet::new(),
        };
        crate::change::Change::Mysql { mysql: crate::mysql::change::MysqlChange::Revoke { grant } }
    }
}
