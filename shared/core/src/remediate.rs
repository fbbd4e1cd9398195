//! Remediation: the findings of a plan turned into corrective changes.
//!
//! `report` changes nothing; `revoke-unauthorized` takes away what is held and
//! not wanted (unauthorized, orphaned, expired exceptions); `converge` also
//! grants what the baseline declares and is missing. A grant excepted by an
//! active ticket is never touched, and what cannot be put right by a GRANT or
//! REVOKE (ownership, a role that should not exist, VALID UNTIL, membership
//! options) is listed for a person, with the reason.
//!
//! A MySQL or MariaDB finding (its grantee an account) becomes a
//! [`Change::Mysql`]: a privilege at its scope granted or revoked, GRANT
//! OPTION at a scope, a role or proxy granted or revoked, an account locked
//! (or unlocked, in `converge`). Accounts are neither created nor dropped,
//! and an admin or grant option that differs on a role or proxy is for a
//! person, as on PostgreSQL.

use serde::{Deserialize, Serialize};

use chrono::{DateTime, Utc};

use crate::change::Change;
use crate::finding::FindingKind;
use crate::model::{AccountGrantee, Grant, Grantee, ObjectClass, ObjectRef, Privilege, RoleName};
use crate::mysql::catalog::{Account, PrivilegeGrant, ProxyGrant, RoleGrant, Scope};
use crate::mysql::change::MysqlChange;
use crate::mysql::privilege::Privilege as MysqlPrivilege;
use crate::report::{Finding, FindingObject, FindingPrivilege, Report};
use crate::snapshot::TargetId;
use crate::ticket::Ticket;

/// How far remediation goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// List what would be done; change nothing.
    #[default]
    Report,
    /// Revoke what is held and not wanted.
    RevokeUnauthorized,
    /// Also grant what is missing.
    Converge,
}

/// A finding remediation leaves alone, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    /// The finding.
    pub finding: Finding,
    /// Why.
    pub reason: String,
}

/// The corrective changes for one report.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Remediation {
    /// Changes, revokes first, in one transaction.
    pub changes: Vec<Change>,
    /// Findings left alone.
    pub skipped: Vec<Skipped>,
}

/// The changes that put `findings` right under `mode` (in `report` mode: what
/// `converge` would do, for reading).
pub fn remediate(findings: &[Finding], mode: Mode) -> Remediation {
    let mut out = Remediation::default();
    let mut grants = Vec::new();
    for f in findings {
        let wanted = match f.kind {
            FindingKind::Unauthorized | FindingKind::Orphaned | FindingKind::ExpiredException => false,
            FindingKind::Missing => true,
            FindingKind::Excepted => {
                let ticket = f.exception_id.as_deref().unwrap_or("?");
                out.skip(f, format!("excepted by active ticket {ticket}: never touched while it is in force"));
                continue;
            }
            FindingKind::Untagged => {
                out.skip(f, "untagged input: names a request, not a held grant; route or reject it".into());
                continue;
            }
            FindingKind::Exposure => {
                out.skip(
                    f,
                    "an exposure of the account or object itself, not a grant to change: fix it by hand".into(),
                );
                continue;
            }
            FindingKind::Observed => continue,
        };
        if wanted && mode == Mode::RevokeUnauthorized {
            out.skip(f, "missing: granted only in converge mode".into());
            continue;
        }
        match change_for(f, wanted) {
            Ok(c) if wanted => grants.push(c),
            Ok(c) => out.changes.push(c),
            Err(reason) => out.skip(f, reason),
        }
    }
    out.changes.sort_by_key(order);
    out.changes.dedup();
    grants.sort_by_key(order);
    grants.dedup();
    out.changes.extend(grants);
    out
}

/// One scan's remediation, as the diff hands it to the executor (the AWS
/// remediation queue's message body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemediationRequest {
    /// The target.
    pub target: TargetId,
    /// The scan the findings came from.
    pub scan_id: String,
    /// Its snapshot's sha256.
    pub snapshot_sha256: String,
    /// The mode it was planned under.
    pub mode: Mode,
    /// The changes, in order.
    pub changes: Vec<Change>,
    /// Findings left for a person.
    pub skipped: usize,
    /// This request's number among the scan's, from 1.
    #[serde(default = "one")]
    pub part: usize,
    /// How many requests the scan's changes were split into.
    #[serde(default = "one")]
    pub parts: usize,
}

fn one() -> usize {
    1
}

/// Most changes in one request: a queue message stays far below SQS's 256 KiB
/// (a change is a few hundred bytes of JSON), and each part runs in its own transaction.
pub const CHANGES_PER_REQUEST: usize = 250;

impl RemediationRequest {
    /// The requests for `report` under `mode`, at most [`CHANGES_PER_REQUEST`] changes
    /// each; none in report mode, for a partial scan (nothing is changed from a
    /// partial view), or when nothing needs changing.
    pub fn for_report(report: &Report, mode: Mode) -> Vec<Self> {
        if mode == Mode::Report || !report.summary.complete {
            return Vec::new();
        }
        let plan = remediate(&report.findings, mode);
        let parts = plan.changes.len().div_ceil(CHANGES_PER_REQUEST);
        plan.changes
            .chunks(CHANGES_PER_REQUEST)
            .enumerate()
            .map(|(i, changes)| Self {
                target: report.target.clone(),
                scan_id: report.scan_id.clone(),
                snapshot_sha256: report.snapshot_sha256.clone(),
                mode,
                changes: changes.to_vec(),
                skipped: plan.skipped.len(),
                part: i + 1,
                parts,
            })
            .collect()
    }
}

/// Splits `changes` into those still to run and the revokes a ticket active at
/// `now` covers: a ticket may have started since the scan the changes came
/// from, and an excepted grant is never touched while its ticket is in force.
pub fn without_excepted(
    changes: Vec<Change>,
    target: &TargetId,
    tickets: &[Ticket],
    now: DateTime<Utc>,
) -> (Vec<Change>, Vec<Change>) {
    changes.into_iter().partition(|c| match c {
        Change::Revoke { grant, .. } => match &grant.grantee {
            Grantee::Role(role) => {
                !tickets.iter().any(|t| t.is_active_at(now) && t.covers(target, role, grant.privilege, &grant.object))
            }
            Grantee::Public | Grantee::Account(_) => true,
        },
        Change::Mysql { mysql: MysqlChange::Revoke { grant } } => !grant.privileges.iter().any(|p| {
            tickets.iter().any(|t| t.is_active_at(now) && t.covers_mysql(target, &grant.grantee, p, &grant.scope))
        }),
        _ => true,
    })
}

impl Remediation {
    fn skip(&mut self, finding: &Finding, reason: String) {
        self.skipped.push(Skipped { finding: finding.clone(), reason });
    }
}

/// Stable order: by role (a MySQL change: by account, column revokes first), then change.
fn order(c: &Change) -> String {
    let json = serde_json::to_string(c).unwrap_or_default();
    match c {
        Change::Mysql { mysql } => format!("{}\u{0}{}\u{0}{json}", mysql.account(), mysql.rank()),
        c => format!("{}\u{0}{json}", c.role().map(RoleName::as_str).unwrap_or("PUBLIC")),
    }
}

fn role_of(f: &Finding) -> Result<RoleName, String> {
    match &f.grantee {
        Grantee::Role(r) => Ok(r.clone()),
        Grantee::Public => Err("PUBLIC is not a role".into()),
        Grantee::Account(a) => {
            Err(format!("{} is a MySQL or MariaDB account: apply changes PostgreSQL only", a.as_str()))
        }
    }
}

/// The change for one finding: a GRANT when `wanted`, else a REVOKE.
fn change_for(f: &Finding, wanted: bool) -> Result<Change, String> {
    if let Grantee::Account(account) = &f.grantee {
        return mysql_change_for(f, account, wanted).map(|mysql| Change::Mysql { mysql });
    }
    let privilege = match &f.privilege {
        FindingPrivilege::One(p) => *p,
        // untagged input and failed revocations name a request's privileges: never a change
        other => return Err(format!("unknown privilege {:?}", other.text())),
    };
    let o = &f.object;
    match privilege {
        Privilege::Owner => return Err("ownership: change it by hand with ALTER ... OWNER TO".into()),
        Privilege::Role => {
            return Err(if wanted {
                "the role does not exist: create it by hand (passwords and attributes are not grantwarden's to choose)"
                    .into()
            } else {
                "a role the baseline does not know: review it, then DROP ROLE by hand".into()
            });
        }
        Privilege::ValidUntil => return Err("VALID UNTIL differs: set it by hand with ALTER ROLE".into()),
        Privilege::RowLevelSecurity => return Err("row-level security: not a grant".into()),
        Privilege::Member => {
            if f.detail.contains(" option") {
                return Err("a membership option differs, not the membership: change it by hand".into());
            }
            let role = o.role().ok_or_else(|| format!("role {:?}: the object is a {}", o.name(), o.type_name()))?;
            let member = role_of(f)?;
            return Ok(if wanted {
                Change::GrantMembership { role, member, admin: f.grantable }
            } else {
                Change::RevokeMembership { role, member }
            });
        }
        Privilege::Superuser
        | Privilege::CreateRole
        | Privilege::CreateDb
        | Privilege::Login
        | Privilege::Replication
        | Privilege::BypassRls => {
            return Ok(Change::SetAttribute { role: role_of(f)?, attribute: privilege, enabled: wanted });
        }
        _ => {}
    }
    let grantee = f.grantee.clone();
    let (kind, object) = match o {
        FindingObject::DefaultPrivileges { for_role, schema, on } => {
            if f.detail.contains("grant option") {
                return Err("the grant option of a default privilege differs: change it by hand".into());
            }
            return Ok(Change::DefaultPrivilege {
                grant: wanted,
                for_role: for_role.clone(),
                schema: schema.clone(),
                object_type: *on,
                privilege,
                grantee,
            });
        }
        FindingObject::Object { kind, object } if object.class != ObjectClass::Role => (kind, object),
        other => return Err(format!("no GRANT or REVOKE for objects of type {:?}", other.type_name())),
    };
    let class = object.class;
    if !class.accepts(privilege) {
        return Err(format!("{privilege} does not apply to a {kind}"));
    }
    if matches!(class, ObjectClass::Table | ObjectClass::Sequence | ObjectClass::Column | ObjectClass::Function)
        && object.schema.is_none()
    {
        return Err(format!("{kind} {:?} without its schema", object.name.as_str()));
    }
    if class == ObjectClass::Function && object.args.is_none() {
        return Err(format!("{kind} {:?} without its argument types", object.name.as_str()));
    }
    let object = ObjectRef { args: object.args.clone().filter(|_| class == ObjectClass::Function), ..object.clone() };
    let option_only = f.detail.starts_with("held WITH GRANT OPTION");
    let grant = Grant { object, grantee, privilege, grantable: f.grantable };
    Ok(if wanted { Change::Grant { grant } } else { Change::Revoke { cascade: f.grantable, option_only, grant } })
}

/// The change that puts a MySQL or MariaDB finding right (`wanted`: what it
/// names should be held), or why there is none.
pub fn mysql_change_for(f: &Finding, grantee: &AccountGrantee, wanted: bool) -> Result<MysqlChange, String> {
    let grantee = Account::new(grantee.user(), grantee.host());
    let other = || {
        let name = f.object.name();
        AccountGrantee::parse(name)
            .map(|a| Account::new(a.user(), a.host()))
            .ok_or_else(|| format!("{name:?} names no account"))
    };
    let scope = || {
        f.object
            .mysql_scope()
            .ok_or_else(|| format!("no GRANT or REVOKE for objects of type {:?}", f.object.type_name()))
    };
    let privilege = match &f.privilege {
        FindingPrivilege::Mysql(p) => p.clone(),
        FindingPrivilege::One(Privilege::Role) => {
            return Err(if wanted {
                "the account does not exist: create it by hand (its password and authentication are not \
                 grantwarden's to choose)"
                    .into()
            } else {
                "an account the baseline does not know: review it, then DROP USER by hand".into()
            });
        }
        FindingPrivilege::One(Privilege::Login) => {
            return match (wanted, f.detail.starts_with("is unlocked"), f.detail.starts_with("is locked")) {
                (false, true, _) => Ok(MysqlChange::Lock { account: grantee }),
                (true, _, true) => Ok(MysqlChange::Unlock { account: grantee }),
                _ => Err("an account where the baseline declares a role, or the reverse: change it by hand".into()),
            };
        }
        FindingPrivilege::One(Privilege::Member) => {
            if f.detail.contains("; the baseline declares it without") {
                return Err("the ADMIN OPTION differs, not the role grant: change it by hand".into());
            }
            let grant = RoleGrant { grantee, role: other()?, admin: wanted && f.grantable };
            return Ok(if wanted { MysqlChange::GrantRole { grant } } else { MysqlChange::RevokeRole { grant } });
        }
        // a finding read back from JSON names a privilege both engines spell alike
        // (`SELECT`, `EXECUTE`) as PostgreSQL's: the word is the same
        other => {
            MysqlPrivilege::from_report(&other.text()).ok_or_else(|| format!("unknown privilege {:?}", other.text()))?
        }
    };
    if f.detail.contains("a partial revoke") {
        return Err(format!(
            "a MySQL 8 partial revoke differs: with partial_revokes=ON, REVOKE {privilege} ON the database (or GRANT it, \
             to lift the revoke) by hand"
        ));
    }
    if privilege == MysqlPrivilege::Proxy {
        if f.detail.contains("; the baseline declares it without") {
            return Err("the proxy's GRANT OPTION differs, not the proxy: change it by hand".into());
        }
        let grant = ProxyGrant { grantee, proxied: other()?, grantable: wanted && f.grantable };
        return Ok(if wanted { MysqlChange::GrantProxy { grant } } else { MysqlChange::RevokeProxy { grant } });
    }
    let scope = scope()?;
    let option_only = privilege == MysqlPrivilege::GrantOption;
    if option_only && matches!(scope, Scope::Column { .. }) {
        return Err("a column's GRANT OPTION is its table's: judged and changed there".into());
    }
    let dynamic_option = f.detail.contains("WITH GRANT OPTION differs");
    if dynamic_option && !wanted {
        return Err(format!("{privilege}'s own GRANT OPTION: REVOKE {privilege} and grant it again without, by hand"));
    }
    let mut grant = PrivilegeGrant {
        grantee,
        scope,
        privileges: if option_only { Default::default() } else { [privilege.clone()].into() },
        grantable: option_only,
        dynamic_grantable: Default::default(),
    };
    if wanted && f.grantable && matches!(privilege, MysqlPrivilege::Dynamic(_)) {
        grant.dynamic_grantable.insert(privilege);
    }
    Ok(if wanted { MysqlChange::Grant { grant } } else { MysqlChange::Revoke { grant } })
}

/// The findings remediation left for a person, as the caller knows them: each
/// with its reason where the plan is at hand (the CLI), their number where only
/// that travelled (a queued request). Journaled as a list or a number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SkippedFindings {
    /// Each finding with the reason.
    Listed(Vec<Skipped>),
    /// How many.
    Counted(usize),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::Severity;

    fn finding(
        kind: FindingKind,
        grantee: &str,
        privilege: &str,
        type_: &str,
        schema: Option<&str>,
        name: &str,
    ) -> Finding {
        // read as the report's JSON would be
        fn read<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
            serde_json::from_value(v).unwrap()
        }
        Finding {
            kind,
            severity: Severity::High,
            score: 1.0,
            grantee: read(serde_json::json!(grantee)),
            privilege: read(serde_json::json!(privilege)),
            grantable: false,
            object: read(serde_json::json!({ "type": type_, "schema": schema, "name": name, "column": null })),
            exception_id: None,
            detail: String::new(),
        }
    }

    fn scenario() -> Vec<Finding> {
        let mut excepted = finding(FindingKind::Excepted, "alice_tmp", "SELECT", "table", Some("billing"), "invoices");
        excepted.exception_id = Some("tkt-1".into());
        vec![
            finding(FindingKind::Unauthorized, "app_ro", "INSERT", "table", Some("orders"), "line_items"),
            finding(FindingKind::Orphaned, "intruder", "USAGE", "schema", None, "orders"),
            finding(FindingKind::ExpiredException, "bob_tmp", "DELETE", "view", Some("orders"), "recent"),
            finding(FindingKind::Missing, "app_ro", "SELECT", "table", Some("orders"), "line_items"),
            finding(FindingKind::Missing, "app_rw", "MEMBER", "role", None, "app_ro"),
            finding(FindingKind::Unauthorized, "app_rw", "SUPERUSER", "role", None, "app_rw"),
            finding(FindingKind::Missing, "migrator", "OWNER", "schema", None, "orders"),
            excepted,
        ]
    }

    #[test]
    fn modes_go_further_in_order_and_exceptions_are_never_touched() {
        let f = scenario();
        let revoke = remediate(&f, Mode::RevokeUnauthorized);
        let kinds: Vec<String> =
            revoke.changes.iter().map(|c| serde_json::to_value(c).unwrap()["change"].to_string()).collect();
        assert_eq!(
            kinds,
            ["\"revoke\"", "\"set_attribute\"", "\"revoke\"", "\"revoke\""],
            "by role: app_ro, app_rw, bob_tmp, intruder"
        );
        assert!(revoke.skipped.iter().any(|s| s.reason.contains("ticket tkt-1")));
        assert_eq!(revoke.skipped.iter().filter(|s| s.reason.contains("converge")).count(), 3);
        let converge = remediate(&f, Mode::Converge);
        assert_eq!(converge.changes.len(), 6, "{:#?}", converge.changes);
        assert!(matches!(converge.changes[4], Change::GrantMembership { .. } | Change::Grant { .. }));
        assert!(converge.skipped.iter().any(|s| s.reason.contains("OWNER TO")));
        for c in &converge.changes {
            assert_ne!(c.role().map(RoleName::as_str), Some("alice_tmp"), "the excepted grant stays");
        }
    }

    #[test]
    fn a_large_remediation_is_split_into_parts_and_none_comes_from_a_partial_scan() {
        let findings: Vec<Finding> = (0..CHANGES_PER_REQUEST + 1)
            .map(|i| finding(FindingKind::Unauthorized, "app_ro", "SELECT", "table", Some("orders"), &format!("t{i}")))
            .collect();
        let snapshot = crate::snapshot::Snapshot {
            target: TargetId::new("orders-prod").unwrap(),
            scan_id: "scan-1".into(),
            taken_at: "2026-11-22T12:00:00Z".parse().unwrap(),
            server_version_num: 170_000,
            complete: true,
            consistent: true,
            chunks: vec![],
            sha256: String::new(),
            state: Default::default(),
        };
        let mut report = Report::build(&snapshot, findings, vec![], &crate::scoring::ScoringConfig::standard());
        let parts = RemediationRequest::for_report(&report, Mode::RevokeUnauthorized);
        let sizes: Vec<(usize, usize, usize)> = parts.iter().map(|p| (p.part, p.parts, p.changes.len())).collect();
        assert_eq!(sizes, [(1, 2, CHANGES_PER_REQUEST), (2, 2, 1)]);
        assert!(RemediationRequest::for_report(&report, Mode::Report).is_empty());
        report.summary.complete = false;
        assert!(RemediationRequest::for_report(&report, Mode::Converge).is_empty());
    }

    #[test]
    fn a_revoke_a_ticket_now_covers_is_held_back() {
        let f = vec![finding(FindingKind::Unauthorized, "alice_tmp", "SELECT", "table", Some("billing"), "invoices")];
        let plan = remediate(&f, Mode::RevokeUnauthorized);
        let target = TargetId::new("orders-prod").unwrap();
        let now: DateTime<Utc> = "2026-11-22T12:00:00Z".parse().unwrap();
        let mut t: Ticket = serde_json::from_value(serde_json::json!({
            "id": "tkt-1", "request_sha256": "", "category": "ops", "tag": "", "approvals_required": 0,
            "weight_factor": 0.25, "registry": { "version": "1", "sha256": "" }, "status": "active",
            "starts_at": "2026-11-22T11:00:00Z", "expires_at": "2026-11-22T13:00:00Z", "history": [],
            "request": { "delivery_id": "d", "input": "webhook", "source": "okta", "action": "grant",
                "target": "orders-prod", "principal": "a@x.io", "role": "alice_tmp", "privileges": ["SELECT"],
                "object": { "on": "schema", "name": "billing" }, "expires_at": "2026-11-22T13:00:00Z",
                "requested_by": "a@x.io", "observed_at": "2026-11-22T11:00:00Z" }
        }))
        .unwrap();
        let (run, held) = without_excepted(plan.changes.clone(), &target, std::slice::from_ref(&t), now);
        assert!(run.is_empty() && held.len() == 1, "the ticket started after the scan: hands off");
        t.set_status(crate::ticket::TicketStatus::Revoked);
        let (run, held) = without_excepted(plan.changes, &target, &[t], now);
        assert_eq!((run.len(), held.len()), (1, 0));
    }

    #[test]
    fn a_grant_option_held_but_not_declared_revokes_only_the_option() {
        let mut f = finding(FindingKind::Unauthorized, "app_ro", "SELECT", "table", Some("orders"), "line_items");
        f.grantable = true;
        f.detail = "held WITH GRANT OPTION; role app_ro declares it without".into();
        let r = remediate(&[f], Mode::RevokeUnauthorized);
        assert!(matches!(&r.changes[0], Change::Revoke { option_only: true, cascade: true, .. }));
    }

    #[test]
    fn findings_that_cannot_name_a_grant_are_skipped_with_a_reason() {
        let bad = vec![
            // no single privilege (a finding about unreadable input, should one get here)
            finding(FindingKind::Unauthorized, "app_ro", "unknown", "table", Some("orders"), "t"),
            finding(FindingKind::Unauthorized, "app_ro", "SELECT", "table", None, "t"),
            finding(FindingKind::Unauthorized, "app_ro", "EXECUTE", "schema", None, "orders"),
            finding(FindingKind::Orphaned, "ghost", "ROLE", "role", None, "ghost"),
        ];
        let r = remediate(&bad, Mode::Converge);
        assert!(r.changes.is_empty());
        assert_eq!(r.skipped.len(), 4);
    }
}
