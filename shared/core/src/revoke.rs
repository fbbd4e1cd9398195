//! Revocation: when a ticket's window ends, what comes away, what stays and why.
//!
//! The plan is built from what the role holds now (read in the revoking
//! transaction), not from what the ticket says was granted: a privilege that is
//! already gone needs no statement (idempotent), and a schema-wide request is
//! revoked object by object, so a privilege another still-active ticket of the
//! same grantee covers can stay (reference counting of overlapping windows).
//!
//! A standing role loses the privileges the ticket covers. A short-lived role
//! (one grantwarden created for the ticket) loses LOGIN and gets a VALID UNTIL
//! in the past first, then everything it holds; after the commit its sessions
//! are ended, what it owns is reassigned and dropped in every database it has
//! objects in, and the role is dropped.
//!
//! [`revoke_ticket`] drives one revocation through a [`PrivilegeExecutor`]
//! (shared/postgres) and records the outcome: `revoked` only by a conditional
//! update after the commit; a permanent failure leaves the ticket in
//! `revocation_failed` with a high-severity finding and an audit event.

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::access_policy::{AccessPath, views_owner_for};
use crate::audit::event::{EventKind, OnTicket, RevocationExecuted, RevocationFailed, RevocationPlanned, Revoked};
use crate::audit::{AuditJournal, NewEvent};
use crate::baseline::Baseline;
use crate::change::Change;
use crate::error::StoreError;
use crate::finding::FindingKind;
use crate::model::{Grant, Grantee, Name, ObjectClass, ObjectRef, Privilege, RoleName};
use crate::mysql::catalog::PrivilegeGrant as MysqlGrant;
use crate::mysql::change::MysqlChange;
use crate::mysql::privilege::Privilege as MysqlPrivilege;
use crate::mysql_baseline::Baseline as MysqlBaseline;
use crate::report::{Finding, FindingObject, FindingPrivilege, ObjectType};
use crate::revocation::{Kept, KeptMysql, Owned, OwnedKind, RevocationPlan};
use crate::scoring::Severity;
use crate::store::{FindingStore, TicketStore, Versioned};
use crate::ticket::{Revocation, RoleLifecycle, Ticket, TicketStatus, Trigger};

/// What a role holds in the target database, as the catalog says inside the
/// revoking transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// The role exists at all.
    pub exists: bool,
    /// It has LOGIN.
    pub login: bool,
    /// Privileges granted to it directly in this database (never via PUBLIC or
    /// membership; owners' implicit privileges are left out: the ticket never gave them).
    pub grants: Vec<Grant>,
    /// Roles it is a member of.
    pub member_of: Vec<RoleName>,
    /// Databases of the cluster where it owns objects or holds privileges
    /// (`pg_shdepend`), the target's own included when it does.
    pub databases: Vec<String>,
    /// What it owns in this database.
    #[serde(default)]
    pub owned: Vec<Owned>,
    /// On a MySQL or MariaDB server: the privileges the ticket's account holds,
    /// as the grant tables say when the revocation reads them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mysql: Option<Vec<MysqlGrant>>,
}

/// Whether open sessions of the role are ended after the commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionPolicy {
    /// Always: a revoked user must not keep working in a live connection.
    #[default]
    Always,
    /// Only for short-lived roles (for standing roles that applications share).
    ShortLived,
    /// Never.
    Never,
}

/// How revocation behaves.
#[derive(Debug, Clone, Default)]
pub struct RevokeOptions {
    /// Session termination.
    pub sessions: SessionPolicy,
    /// The target's baseline, when at hand: a standing role keeps what it declares
    /// (the ticket did not grant that), even where the ticket's scope covers it.
    pub baseline: Option<std::sync::Arc<Baseline>>,
    /// A MySQL or MariaDB target's baseline, kept to the same rule.
    pub mysql_baseline: Option<std::sync::Arc<MysqlBaseline>>,
}

/// Other tickets of the same target and role that are still in force at `now`.
pub fn overlapping<'t>(ticket: &Ticket, all: &'t [Ticket], now: DateTime<Utc>) -> Vec<&'t Ticket> {
    all.iter()
        .filter(|t| {
            t.id() != ticket.id()
                && t.request().target == ticket.request().target
                && t.request().role == ticket.request().role
                && t.is_active_at(now)
        })
        .collect()
}

/// The plan that ends `ticket`, given what its role holds and the other
/// tickets still in force for the same role.
pub fn plan_revocation(ticket: &Ticket, held: &Held, others: &[&Ticket], options: &RevokeOptions) -> RevocationPlan {
    let role = ticket.request().role.clone();
    let target = &ticket.request().target;
    let mut plan = RevocationPlan {
        ticket: ticket.id().to_owned(),
        role: role.clone(),
        lifecycle: ticket.role_lifecycle(),
        transaction: Vec::new(),
        after_commit: Vec::new(),
        kept: Vec::new(),
        kept_mysql: Vec::new(),
        nothing_because: None,
        created: Vec::new(),
    };
    if let Some(grants) = &held.mysql {
        return plan_mysql_revocation(ticket, held.exists, grants, others, options, plan);
    }
    if !held.exists {
        // an access ticket's views outlive a role dropped by hand: they go all the same
        if let Some(access) = &ticket.access()
            && ticket.role_lifecycle() == RoleLifecycle::ShortLived
        {
            plan.after_commit
                .push(Change::DropViews { owner: views_owner_for(&role), schema: access.views_schema.clone() });
        }
        plan.nothing_because = Some(format!("role {role} does not exist: nothing left to revoke"));
        return plan;
    }
    // a short-lived role shared by another live ticket stays; only this ticket's share goes
    let drop_role = ticket.role_lifecycle() == RoleLifecycle::ShortLived && others.is_empty();
    if drop_role {
        plan.transaction.push(Change::DisableLogin { role: role.clone() });
    }
    let mut grants: Vec<&Grant> = held.grants.iter().filter(|g| g.grantee == Grantee::Role(role.clone())).collect();
    grants.sort();
    for g in grants {
        let covered = ticket.covers(target, &role, g.privilege, &g.object);
        if !drop_role && !covered {
            continue; // not this ticket's to take
        }
        if let Some(origin) =
            options.baseline.as_ref().filter(|_| !drop_role).and_then(|b| b.declares(&role, g.privilege, &g.object))
        {
            let source = options.baseline.as_ref().map_or("", |b| b.source.as_str());
            plan.kept.push(Kept {
                grant: g.clone(),
                reason: format!("declared in the baseline ({source}: {origin}): standing access, not the ticket's"),
            });
            continue;
        }
        if let Some(other) = others.iter().find(|o| o.covers(target, &role, g.privilege, &g.object)) {
            plan.kept.push(Kept { grant: g.clone(), reason: still_covered(other) });
            continue;
        }
        // a column privilege also shows as the table's when granted on the table; both go
        plan.transaction.push(Change::Revoke { grant: g.clone(), cascade: g.grantable, option_only: false });
    }
    if drop_role {
        let mut member_of = held.member_of.clone();
        member_of.sort();
        member_of.dedup();
        for of in member_of {
            plan.transaction.push(Change::RevokeMembership { role: of, member: role.clone() });
        }
    }
    let terminate = match options.sessions {
        SessionPolicy::Always => !plan.transaction.is_empty(),
        SessionPolicy::ShortLived => drop_role,
        SessionPolicy::Never => false,
    };
    if terminate || drop_role {
        plan.after_commit.push(Change::TerminateSessions { role: role.clone() });
    }
    if drop_role {
        let migration = ticket.access().is_some_and(|a| a.path == AccessPath::Migration);
        let mut owned = held.owned.clone();
        owned.sort();
        for o in owned {
            match o.kind {
                // runs with its owner's rights: never handed on, always looked at
                OwnedKind::Function { security_definer: true } => plan.created.push(o),
                // what a migration made stays, owned by whom the baseline says owns the schema
                OwnedKind::Relation { kind } if migration => {
                    if let Some(schema) = &o.schema
                        && let Some(to) = options.baseline.as_ref().and_then(|b| b.declared_owner(kind.class(), schema))
                    {
                        let object = ObjectRef::in_schema(kind.class(), schema, &o.name);
                        plan.after_commit.push(Change::AlterOwner { object, kind, to: to.clone() });
                    }
                }
                _ => {}
            }
        }
        let mut databases = held.databases.clone();
        databases.sort();
        databases.dedup();
        for database in databases {
            plan.after_commit.push(Change::DropOwned { role: role.clone(), database });
        }
    }
    if let Some(access) = ticket.access().filter(|_| drop_role) {
        plan.after_commit
            .push(Change::DropViews { owner: views_owner_for(&role), schema: access.views_schema.clone() });
    }
    if drop_role {
        plan.after_commit.push(Change::DropRole { role: role.clone() });
    }
    explain_nothing(&mut plan, &role);
    plan
}

/// The plan that ends `ticket` on a MySQL or MariaDB server: of the
/// privileges its account holds (`grants`), each the ticket covers
/// ([`Ticket::covers_mysql`]) is revoked unless the baseline declares it for
/// the account (standing access) or another ticket in force covers it (kept,
/// with the reason). The account itself stays: grantwarden did not create it.
/// Its sessions are ended after the commit as `options.sessions` says (a
/// standing account: only with `always`, and only when something was revoked).
fn plan_mysql_revocation(
    ticket: &Ticket,
    exists: bool,
    grants: &[MysqlGrant],
    others: &[&Ticket],
    options: &RevokeOptions,
    mut plan: RevocationPlan,
) -> RevocationPlan {
    let account = ticket.mysql_account();
    let target = &ticket.request().target;
    if !exists {
        plan.nothing_because = Some(format!("account {account} does not exist: nothing left to revoke"));
        return plan;
    }
    let one = |g: &MysqlGrant, p: &MysqlPrivilege| MysqlGrant {
        grantee: g.grantee.clone(),
        scope: g.scope.clone(),
        privileges: [p.clone()].into(),
        grantable: false,
        dynamic_grantable: Default::default(),
    };
    for g in grants.iter().filter(|g| g.grantee == account) {
        let mut revoke = std::collections::BTreeSet::new();
        for p in g.privileges.iter().filter(|p| ticket.covers_mysql(target, &account, p, &g.scope)) {
            let declared = options.mysql_baseline.as_ref().and_then(|b| {
                b.accounts.get(&account)?.grants.get(&g.scope).filter(|d| d.privileges.contains(p)).map(|d| &d.origin)
            });
            if let Some(origin) = declared {
                let reason = format!("declared in the baseline ({origin}): standing access, not the ticket's");
                plan.kept_mysql.push(KeptMysql { grant: one(g, p), reason });
            } else if let Some(other) = others.iter().find(|o| o.covers_mysql(target, &account, p, &g.scope)) {
                plan.kept_mysql.push(KeptMysql { grant: one(g, p), reason: still_covered(other) });
            } else {
                revoke.insert(p.clone());
            }
        }
        if !revoke.is_empty() {
            let grant = MysqlGrant {
                grantee: g.grantee.clone(),
                scope: g.scope.clone(),
                privileges: revoke,
                grantable: false,
                dynamic_grantable: Default::default(),
            };
            plan.transaction.push(Change::Mysql { mysql: MysqlChange::Revoke { grant } });
        }
    }
    if options.sessions == SessionPolicy::Always && !plan.transaction.is_empty() {
        plan.after_commit.push(Change::TerminateSessions { role: plan.role.clone() });
    }
    explain_nothing(&mut plan, &account);
    plan
}

/// Says why a plan with nothing to run has nothing: `grantee` holds nothing
/// the ticket covers, or keeps all of it.
fn explain_nothing(plan: &mut RevocationPlan, grantee: &dyn std::fmt::Display) {
    if plan.is_empty() {
        plan.nothing_because = Some(if plan.kept_len() == 0 {
            format!("{grantee} holds nothing this ticket covers: already revoked")
        } else {
            format!("everything this ticket covers that {grantee} holds stays: see kept")
        });
    }
}

/// Why a privilege another ticket in force covers stays.
fn still_covered(other: &Ticket) -> String {
    format!("still covered by ticket {} ({}) until {}", other.id(), other.category(), other.expires_at().to_rfc3339())
}

/// Whether retrying can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// Connection, lock timeout, serialization, throttling: retry later.
    Transient,
    /// Permission or structure (insufficient privilege, the role owns objects
    /// grantwarden cannot reach): a person must act.
    Permanent,
}

/// A revocation that did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExecError {
    /// Retry or not.
    pub class: FailureClass,
    /// What failed, on what (SQLSTATE included when the server gave one).
    pub message: String,
    /// Attempts made before giving up.
    pub attempts: u32,
}

/// What the executor did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Executed {
    /// The plan, as built inside the transaction.
    pub plan: RevocationPlan,
    /// The SQL, exactly as run (or as it would run, on a dry run).
    pub sql: Vec<String>,
    /// Sessions ended after the commit.
    pub sessions_terminated: u64,
    /// Attempts it took.
    pub attempts: u32,
    /// Nothing was run: a dry run.
    pub dry_run: bool,
    /// When the revoking transaction committed, by the clock the executor was
    /// given (`None` on a dry run): revocation latency ends here, before
    /// sessions are ended and a short-lived role is cleaned up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed_at: Option<DateTime<Utc>>,
}

/// Runs plans against the target database (shared/postgres implements it).
pub trait PrivilegeExecutor {
    /// Reads what `role` holds, builds the plan with `planner` from it, and runs it: the
    /// transaction (checking afterwards that every revoked privilege is gone), then the
    /// after-commit changes. Transient failures are retried within the call. With
    /// `dry_run`, it only reads and renders. `clock` dates the commit.
    fn revoke(
        &self,
        role: &RoleName,
        planner: &(dyn Fn(&Held) -> RevocationPlan + Sync),
        dry_run: bool,
        clock: &(dyn Fn() -> DateTime<Utc> + Sync),
    ) -> impl Future<Output = Result<Executed, ExecError>> + Send;
}

/// What [`revoke_ticket`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum RevokeOutcome {
    /// The ticket is not due (still in force, or never activated and not expired).
    NotDue(TicketStatus),
    /// Another trigger already revoked it (or it failed for good before): nothing run.
    AlreadyEnded(TicketStatus),
    /// Revoked now: the ticket as stored.
    Revoked {
        /// The ticket.
        ticket: Box<Ticket>,
        /// What ran.
        executed: Box<Executed>,
    },
    /// A dry run: the plan and its SQL, nothing changed.
    DryRun(Box<Executed>),
    /// Failed for good: the ticket is `revocation_failed`; dead-letter it with this reason.
    Failed {
        /// The ticket.
        ticket: Box<Ticket>,
        /// Why.
        error: ExecError,
    },
}

/// Why [`revoke_ticket`] could not finish.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A dry run could not read or render the plan, for a reason retrying will
    /// not change (permission, structure); nothing was recorded on the ticket.
    #[error("dry run of ticket {ticket}: {error}")]
    DryRun {
        /// The ticket.
        ticket: String,
        /// What failed.
        error: ExecError,
    },
    /// A transient failure outlasted the retries of this invocation: try again later
    /// (the ticket stays due, so the queue or the sweeper will).
    #[error("revoking ticket {ticket}: {error} (after {} attempts; will be retried)", .error.attempts)]
    Transient {
        /// The ticket.
        ticket: String,
        /// The last error.
        error: ExecError,
    },
}

/// Revokes one ticket if it is due: reads what its role holds, plans, runs,
/// and records the outcome on the ticket, in the journal and (on permanent
/// failure) as a high-severity finding. Safe to call from several triggers at
/// once: the executor's work is idempotent and only one conditional update wins.
#[allow(clippy::too_many_arguments)]
pub async fn revoke_ticket<S, X, C>(
    store: &S,
    executor: &X,
    id: &str,
    trigger: Trigger,
    options: &RevokeOptions,
    dry_run: bool,
    clock: &C,
) -> Result<RevokeOutcome, RevokeError>
where
    S: TicketStore + FindingStore + AuditJournal + Sync,
    X: PrivilegeExecutor + Sync,
    C: Fn() -> DateTime<Utc> + Sync,
{
    let Some(Versioned { value: ticket, .. }) = store.ticket(id).await? else {
        return Err(StoreError::NotFound(id.to_owned()).into());
    };
    let started = clock();
    // a failed revocation waits for a person; the operator's run after the fix retries it
    let retry_failed = trigger == Trigger::Operator && ticket.status() == TicketStatus::RevocationFailed;
    if !ticket.is_due(started) && !retry_failed {
        return Ok(match ticket.status() {
            s @ (TicketStatus::Revoked | TicketStatus::RevocationFailed | TicketStatus::Expired) => {
                RevokeOutcome::AlreadyEnded(s)
            }
            _ => RevokeOutcome::NotDue(ticket.status_at(started)),
        });
    }
    let all = store.tickets(Some(&ticket.request().target)).await?;
    let others: Vec<Ticket> = overlapping(&ticket, &all, started).into_iter().cloned().collect();
    let planner = |held: &Held| {
        let others: Vec<&Ticket> = others.iter().collect();
        plan_revocation(&ticket, held, &others, options)
    };
    let result = executor.revoke(&ticket.request().role, &planner, dry_run, clock).await;
    let at = clock();
    // expiry to the commit: the cleanup after it (sessions, a role's objects) is not latency
    let at = result.as_ref().ok().and_then(|e| e.committed_at).unwrap_or(at);
    let latency_ms = (at - ticket.ends_at()).num_milliseconds().max(0);
    match result {
        Ok(executed) if dry_run => {
            // a sweep in dry-run mode plans the same revocation every round: journal it once
            if !planned_already(store, &ticket, &executed.sql).await? {
                let planned = RevocationPlanned {
                    trigger,
                    plan: executed.plan.clone(),
                    sql: executed.sql.clone(),
                    dry_run: true,
                };
                let event = NewEvent::for_ticket(&ticket, OnTicket::RevocationPlanned(planned), "grantwarden", at);
                store.append(event).await?;
            }
            Ok(RevokeOutcome::DryRun(Box::new(executed)))
        }
        Ok(executed) => {
            let revocation = Revocation {
                trigger,
                at,
                latency_ms,
                attempts: executed.attempts,
                statements: executed.plan.len(),
                kept: executed.plan.kept_len(),
                sessions_terminated: executed.sessions_terminated,
                error: None,
            };
            let actor = format!("grantwarden:{trigger}");
            let revoked = Revoked {
                trigger,
                latency_ms,
                plan: executed.plan.clone(),
                sql: executed.sql.clone(),
                sessions_terminated: executed.sessions_terminated,
            };
            let change = |t: &mut Ticket| t.record_revoked(revocation.clone(), &actor);
            let events = |t: &Ticket| vec![NewEvent::for_ticket(t, OnTicket::Revoked(revoked.clone()), &actor, at)];
            let stored = match finish(store, id, retry_failed, change, events).await? {
                Finished::Updated(t) => t,
                Finished::AlreadyEnded(s) => {
                    // Another trigger recorded the end first, perhaps one that found nothing left
                    // because this run had just revoked it: what ran here must still be on record.
                    if !executed.plan.is_empty() {
                        let ran = RevocationExecuted {
                            trigger,
                            plan: executed.plan.clone(),
                            sql: executed.sql.clone(),
                            sessions_terminated: executed.sessions_terminated,
                            ticket_status: s,
                        };
                        store
                            .append(NewEvent::for_ticket(&ticket, OnTicket::RevocationExecuted(ran), &actor, at))
                            .await?;
                    }
                    return Ok(RevokeOutcome::AlreadyEnded(s));
                }
            };
            if !executed.plan.created.is_empty() {
                let findings: Vec<Finding> =
                    executed.plan.created.iter().map(|o| created_finding(&stored, o)).collect();
                store.record_findings(&stored.request().target, "revoke", &findings, at, false).await?;
            }
            Ok(RevokeOutcome::Revoked { ticket: stored, executed: Box::new(executed) })
        }
        Err(error) if error.class == FailureClass::Transient => {
            Err(RevokeError::Transient { ticket: id.to_owned(), error })
        }
        // a dry run records nothing on the ticket, whatever went wrong
        Err(error) if dry_run => Err(RevokeError::DryRun { ticket: id.to_owned(), error }),
        Err(error) => {
            let revocation = Revocation {
                trigger,
                at,
                latency_ms,
                attempts: error.attempts,
                statements: 0,
                kept: 0,
                sessions_terminated: 0,
                error: Some(error.message.clone()),
            };
            let actor = format!("grantwarden:{trigger}");
            let failed = RevocationFailed { trigger, error: error.message.clone(), attempts: error.attempts };
            let change = |t: &mut Ticket| t.record_revocation_failed(revocation.clone(), &actor);
            let events =
                |t: &Ticket| vec![NewEvent::for_ticket(t, OnTicket::RevocationFailed(failed.clone()), &actor, at)];
            let stored = match finish(store, id, retry_failed, change, events).await? {
                Finished::Updated(t) => t,
                Finished::AlreadyEnded(s) => return Ok(RevokeOutcome::AlreadyEnded(s)),
            };
            let finding = failure_finding(&stored, &error);
            store
                .record_findings(&stored.request().target, "revoke", std::slice::from_ref(&finding), at, false)
                .await?;
            Ok(RevokeOutcome::Failed { ticket: stored, error })
        }
    }
}

/// How far back [`planned_already`] looks in the target's chain.
const PLANNED_LOOKBACK: u64 = 500;

/// Whether the latest `revocation.planned` of `ticket` among the chain's recent
/// events holds the same SQL.
async fn planned_already<S: AuditJournal + Sync>(
    store: &S,
    ticket: &Ticket,
    sql: &[String],
) -> Result<bool, StoreError> {
    let chain = ticket.request().target.as_str();
    let Some((head, _)) = store.head(chain).await? else { return Ok(false) };
    let recent = store.events_after(chain, head.saturating_sub(PLANNED_LOOKBACK)).await?;
    let last = recent.iter().rev().find(|e| e.kind == EventKind::RevocationPlanned && e.subject == ticket.id());
    Ok(last.and_then(|e| e.detail_as::<RevocationPlanned>().ok()).is_some_and(|planned| planned.sql == sql))
}

enum Finished {
    Updated(Box<Ticket>),
    AlreadyEnded(TicketStatus),
}

/// Applies `change` to the stored ticket by conditional update, with the
/// journal `events` of the changed ticket (see [`crate::outbox`]), reading it again
/// when someone else wrote first; stops when another trigger has already ended it
/// (a failed revocation counts as ended unless this run is the operator's retry of it).
async fn finish<S: TicketStore + AuditJournal + Sync>(
    store: &S,
    id: &str,
    retry_failed: bool,
    change: impl Fn(&mut Ticket),
    events: impl Fn(&Ticket) -> Vec<NewEvent>,
) -> Result<Finished, StoreError> {
    for _ in 0..5 {
        let Some(Versioned { value: mut ticket, version }) = store.ticket(id).await? else {
            return Err(StoreError::NotFound(id.to_owned()));
        };
        let failed_before = ticket.status() == TicketStatus::RevocationFailed && !retry_failed;
        if ticket.status() == TicketStatus::Revoked || failed_before {
            return Ok(Finished::AlreadyEnded(ticket.status()));
        }
        change(&mut ticket);
        match crate::outbox::update(store, &ticket, version, events(&ticket)).await {
            Ok(_) => return Ok(Finished::Updated(Box::new(ticket))),
            Err(StoreError::Stale(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Stale(id.to_owned()))
}

/// The high-severity finding of a failed revocation: the ticket ended and its
/// grant is still held, so it is an expired exception, raised to critical.
pub fn failure_finding(ticket: &Ticket, error: &ExecError) -> Finding {
    Finding {
        kind: FindingKind::ExpiredException,
        severity: Severity::Critical,
        score: 0.0,
        grantee: Grantee::Role(ticket.request().role.clone()),
        privilege: FindingPrivilege::requested(&ticket.request().privileges),
        grantable: false,
        object: FindingObject::requested(&ticket.request().object),
        exception_id: Some(ticket.id().to_owned()),
        detail: format!(
            "revocation failed: ticket {} ended at {} and its grant is still held: {}",
            ticket.id(),
            ticket.ends_at().to_rfc3339(),
            error.message
        ),
    }
}

/// The high-severity finding of an object a ticket's short-lived role created
/// that runs with its owner's rights (a SECURITY DEFINER function): whoever
/// it was handed to, calling it would act as them. It went with the role;
/// the finding says that it existed, and who could have used it meanwhile.
pub fn created_finding(ticket: &Ticket, o: &Owned) -> Finding {
    let function = ObjectRef {
        class: ObjectClass::Function,
        schema: o.schema.as_deref().map(Name::from),
        name: o.name.as_str().into(),
        column: None,
        args: o.arguments.as_deref().map(Name::from),
    };
    Finding {
        kind: FindingKind::Unauthorized,
        severity: Severity::High,
        score: 0.0,
        grantee: Grantee::Role(ticket.request().role.clone()),
        privilege: FindingPrivilege::One(Privilege::Owner),
        grantable: false,
        object: FindingObject::of(ObjectType::Function, &function),
        exception_id: Some(ticket.id().to_owned()),
        detail: format!(
            "the short-lived role of ticket {} created {}, SECURITY DEFINER: it ran with the role's rights for \
             whoever called it; dropped with the role, never handed to another owner (review who called it)",
            ticket.id(),
            o.describe()
        ),
    }
}

/// Tickets of the store that are due at `now`, oldest expiry first (the sweep).
pub fn due(tickets: &[Ticket], now: DateTime<Utc>) -> Vec<&Ticket> {
    let mut out: Vec<&Ticket> = tickets.iter().filter(|t| t.is_due(now)).collect();
    out.sort_by_key(|t| (t.ends_at(), t.id().to_owned()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::On;
    use crate::model::{ObjectClass, ObjectRef, Privilege, RelationKind};
    use crate::policy::RegistryRef;
    use crate::request::{Action, GrantRequest, InputKind, RequestObject};
    use crate::snapshot::TargetId;
    use crate::ticket::NewTicket;

    fn at(h: i64) -> DateTime<Utc> {
        "2026-11-22T12:00:00Z".parse::<DateTime<Utc>>().unwrap() + chrono::Duration::hours(h)
    }

    fn role() -> RoleName {
        RoleName::new("alice_tmp").unwrap()
    }

    fn ticket(id: &str, on: On, schema: Option<&str>, name: &str, privileges: &[Privilege], hours: i64) -> Ticket {
        let new = NewTicket {
            id: id.into(),
            request: GrantRequest {
                delivery_id: id.into(),
                input: InputKind::Webhook,
                source: "okta".into(),
                action: Action::Grant,
                target: TargetId::new("orders-prod").unwrap(),
                principal: "alice@example.com".into(),
                role: role(),
                privileges: privileges.to_vec(),
                object: RequestObject { on, schema: schema.map(Into::into), name: Some(name.into()), columns: vec![] },
                expires_at: Some(at(hours)),
                justification: None,
                requested_by: "alice@example.com".into(),
                incident_id: None,
                observed_at: at(0),
            },
            request_sha256: String::new(),
            category: "soc2-ops".into(),
            tag: String::new(),
            approvals_required: 0,
            weight_factor: 0.25,
            registry: RegistryRef { version: "2.1".into(), sha256: String::new() },
            starts_at: at(0),
            expires_at: at(hours),
            history: vec![],
            role_lifecycle: RoleLifecycle::Standing,
            access: None,
            break_glass: false,
        };
        // no approval needed: active from the start
        Ticket::open(new, at(0))
    }

    fn grant(object: ObjectRef, privilege: Privilege) -> Grant {
        Grant { object, grantee: Grantee::Role(role()), privilege, grantable: false }
    }

    fn table(name: &str) -> ObjectRef {
        ObjectRef::in_schema(ObjectClass::Table, "billing", name)
    }

    fn held(grants: Vec<Grant>) -> Held {
        Held { exists: true, login: true, grants, member_of: vec![], databases: vec![], owned: vec![], mysql: None }
    }

    fn revoked(plan: &RevocationPlan) -> Vec<String> {
        plan.transaction
            .iter()
            .filter_map(|c| match c {
                Change::Revoke { grant, .. } => Some(format!("{} {}", grant.privilege, grant.object)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_schema_ticket_revokes_object_by_object_and_leaves_what_it_does_not_cover() {
        let t = ticket("t1", On::Schema, None, "billing", &[Privilege::Usage, Privilege::Select], 2);
        let h = held(vec![
            grant(ObjectRef::schema("billing"), Privilege::Usage),
            grant(table("invoices"), Privilege::Select),
            grant(table("invoices"), Privilege::Insert),
            grant(ObjectRef::in_schema(ObjectClass::Table, "hr", "pay"), Privilege::Select),
        ]);
        let plan = plan_revocation(&t, &h, &[], &RevokeOptions::default());
        assert_eq!(revoked(&plan), ["USAGE billing", "SELECT billing.invoices"]);
        assert_eq!(plan.after_commit, [Change::TerminateSessions { role: role() }]);
        assert!(plan.kept.is_empty());
    }

    #[test]
    fn a_privilege_another_active_ticket_covers_is_kept_with_its_reason() {
        let ending = ticket("t1", On::Schema, None, "billing", &[Privilege::Usage, Privilege::Select], 2);
        let other = ticket("t2", On::Table, Some("billing"), "invoices", &[Privilege::Select], 6);
        let h = held(vec![
            grant(ObjectRef::schema("billing"), Privilege::Usage),
            grant(table("invoices"), Privilege::Select),
            grant(table("ledger"), Privilege::Select),
        ]);
        let all = vec![ending.clone(), other.clone()];
        let others = overlapping(&ending, &all, at(2));
        assert_eq!(others.len(), 1);
        let plan = plan_revocation(&ending, &h, &others, &RevokeOptions::default());
        assert_eq!(revoked(&plan), ["USAGE billing", "SELECT billing.ledger"]);
        assert_eq!(plan.kept.len(), 1);
        assert!(plan.kept[0].reason.contains("ticket t2"), "{}", plan.kept[0].reason);
        // once t2 has ended as well, nothing overlaps
        assert!(overlapping(&ending, &all, at(6)).is_empty());
    }

    #[test]
    fn a_grant_the_baseline_declares_for_a_standing_role_outlives_the_ticket_covering_it() {
        let t = ticket("t1", On::Schema, None, "billing", &[Privilege::Usage, Privilege::Select], 2);
        let h = held(vec![
            grant(ObjectRef::schema("billing"), Privilege::Usage),
            grant(table("invoices"), Privilege::Select),
            grant(table("ledger"), Privilege::Select),
        ]);
        let yaml = format!(
            "version: 1\nroles:\n  {}:\n    grants:\n      - {{ privileges: [SELECT], on: table, name: billing.invoices }}\n",
            role()
        );
        let baseline = crate::baseline::Baseline::from_yaml(&yaml, "baseline.yaml").unwrap();
        let options = RevokeOptions { baseline: Some(std::sync::Arc::new(baseline)), ..RevokeOptions::default() };
        let plan = plan_revocation(&t, &h, &[], &options);
        assert_eq!(revoked(&plan), ["USAGE billing", "SELECT billing.ledger"]);
        assert_eq!(plan.kept.len(), 1);
        assert_eq!(plan.kept[0].grant, grant(table("invoices"), Privilege::Select));
        assert!(plan.kept[0].reason.contains("baseline.yaml: roles."), "{}", plan.kept[0].reason);
        // a short-lived role is grantwarden's own: everything goes, whatever a baseline says
        let mut short = t.clone();
        short.set_role_lifecycle(RoleLifecycle::ShortLived);
        assert!(plan_revocation(&short, &h, &[], &options).kept.is_empty());
    }

    #[test]
    fn nothing_held_or_no_role_is_an_empty_plan_not_an_error() {
        let t = ticket("t1", On::Schema, None, "billing", &[Privilege::Usage], 2);
        let gone = plan_revocation(&t, &Held::default(), &[], &RevokeOptions::default());
        assert!(gone.is_empty() && gone.nothing_because.unwrap().contains("does not exist"));
        let clean = plan_revocation(&t, &held(vec![]), &[], &RevokeOptions::default());
        assert!(clean.is_empty() && clean.nothing_because.unwrap().contains("already revoked"));
    }

    #[test]
    fn a_short_lived_role_loses_login_first_and_is_dropped_after_the_commit() {
        let mut t = ticket("t1", On::Table, Some("billing"), "invoices", &[Privilege::Select], 2);
        t.set_role_lifecycle(RoleLifecycle::ShortLived);
        let mut h = held(vec![grant(table("invoices"), Privilege::Select), grant(table("other"), Privilege::Update)]);
        h.member_of = vec![RoleName::new("readers").unwrap()];
        h.databases = vec!["orders".into(), "analytics".into()];
        let plan = plan_revocation(&t, &h, &[], &RevokeOptions::default());
        assert_eq!(plan.transaction[0], Change::DisableLogin { role: role() });
        assert_eq!(revoked(&plan), ["SELECT billing.invoices", "UPDATE billing.other"], "all it holds goes");
        assert!(matches!(plan.transaction.last(), Some(Change::RevokeMembership { .. })));
        let after: Vec<String> =
            plan.after_commit.iter().map(|c| serde_json::to_value(c).unwrap()["change"].to_string()).collect();
        assert_eq!(after, ["\"terminate_sessions\"", "\"drop_owned\"", "\"drop_owned\"", "\"drop_role\""]);
        assert!(matches!(&plan.after_commit[1], Change::DropOwned { database, .. } if database == "analytics"));
    }

    #[test]
    fn what_a_short_lived_role_owned_is_dropped_or_handed_to_the_declared_owner_never_to_the_admin() {
        let mut t = ticket("t1", On::Schema, None, "billing", &[Privilege::Select], 2);
        t.set_role_lifecycle(RoleLifecycle::ShortLived);
        t.set_access(Some(crate::access_policy::AccessGrant {
            path: AccessPath::Migration,
            scope: crate::access_policy::AccessScope::Schema { schema: "billing".into() },
            masking: Default::default(),
            views_schema: "gw_access_0123456789abcdef".into(),
            sensitive_schemas: vec![],
            sensitive_tables: vec![],
            allow_public_create: vec![],
            connection_limit: 1,
            session: Default::default(),
            script: None,
            privileged_approvers: vec![],
            privileged_groups: vec![],
            pending_until: None,
            review_required: false,
            incident_id: None,
        }));
        let mut h = held(vec![]);
        h.databases = vec!["orders".into()];
        let owned = |kind, schema: &str, name: &str| Owned {
            kind,
            schema: Some(schema.into()),
            name: name.into(),
            arguments: matches!(kind, OwnedKind::Function { .. }).then(|| "integer".into()),
        };
        let table = OwnedKind::Relation { kind: RelationKind::Table };
        h.owned = vec![
            owned(table, "billing", "refunds_2026"),
            owned(table, "public", "scratch"),
            owned(OwnedKind::Function { security_definer: true }, "public", "become"),
            owned(OwnedKind::Function { security_definer: false }, "billing", "helper"),
        ];
        let baseline = crate::baseline::Baseline::from_yaml(
            "version: 1\nroles:\n  migrator:\n    owns: [{ on: all_tables_in_schema, schema: billing }]\n",
            "b.yaml",
        )
        .unwrap();
        let options = RevokeOptions { baseline: Some(std::sync::Arc::new(baseline)), ..RevokeOptions::default() };
        let plan = plan_revocation(&t, &h, &[], &options);
        let handed: Vec<&Change> =
            plan.after_commit.iter().filter(|c| matches!(c, Change::AlterOwner { .. })).collect();
        assert_eq!(
            handed,
            [&Change::AlterOwner {
                object: ObjectRef::in_schema(ObjectClass::Table, "billing", "refunds_2026"),
                kind: RelationKind::Table,
                to: RoleName::new("migrator").unwrap(),
            }],
            "only the migration's table in a schema whose owner the baseline declares"
        );
        let kinds: Vec<String> =
            plan.after_commit.iter().map(|c| serde_json::to_value(c).unwrap()["change"].to_string()).collect();
        assert_eq!(
            kinds,
            ["\"terminate_sessions\"", "\"alter_owner\"", "\"drop_owned\"", "\"drop_views\"", "\"drop_role\""]
        );
        assert_eq!(plan.created.len(), 1, "the SECURITY DEFINER function is looked at");
        let finding = created_finding(&t, &plan.created[0]);
        assert_eq!(
            (finding.severity, finding.object.to_string()),
            (Severity::High, "function public.become(integer)".into())
        );

        // read-only: nothing is handed to anyone, whatever the baseline declares
        t.access_mut().unwrap().path = AccessPath::ReadOnly;
        let plan = plan_revocation(&t, &h, &[], &options);
        assert!(!plan.after_commit.iter().any(|c| matches!(c, Change::AlterOwner { .. })));
    }

    #[test]
    fn session_policy_decides_termination_for_standing_roles() {
        let t = ticket("t1", On::Schema, None, "billing", &[Privilege::Usage], 2);
        let h = held(vec![grant(ObjectRef::schema("billing"), Privilege::Usage)]);
        let opts = RevokeOptions { sessions: SessionPolicy::ShortLived, ..RevokeOptions::default() };
        assert!(plan_revocation(&t, &h, &[], &opts).after_commit.is_empty());
        let opts = RevokeOptions { sessions: SessionPolicy::Never, ..RevokeOptions::default() };
        assert!(plan_revocation(&t, &h, &[], &opts).after_commit.is_empty());
    }

    #[test]
    fn due_tickets_are_past_their_window_or_asked_to_end() {
        let a = ticket("a", On::Schema, None, "billing", &[Privilege::Usage], 2);
        let mut b = ticket("b", On::Schema, None, "billing", &[Privilege::Usage], 5);
        let mut c = ticket("c", On::Schema, None, "billing", &[Privilege::Usage], 1);
        c.set_status(TicketStatus::Revoked);
        assert!(b.request_revoke("ciso@example.com", at(1), "left the team"));
        assert!(!b.request_revoke("ciso@example.com", at(1), "twice"), "a second request changes nothing");
        let all = vec![a, b, c];
        let ids: Vec<&str> = due(&all, at(3)).iter().map(|t| t.id()).collect();
        assert_eq!(ids, ["b", "a"], "b's window ended at its request, before a's expiry");
        let early: Vec<&str> = due(&all, at(0)).iter().map(|t| t.id()).collect();
        assert_eq!(early, ["b"], "an early-end request is due at once");
    }

    #[test]
    fn a_mysql_account_loses_what_the_ticket_covers_unless_the_baseline_or_another_ticket_holds_it() {
        use crate::mysql::catalog::{Account, Scope};
        use crate::mysql::privilege::Privilege as My;
        let account = Account::new("app", "10.0.%");
        let with_account = |mut t: Ticket| {
            t.request_mut().role = RoleName::new("'app'@'10.0.%'").unwrap();
            t
        };
        let ending = with_account(ticket("t1", On::Schema, None, "shop", &[Privilege::Select, Privilege::Insert], 1));
        let other = with_account(ticket("t2", On::Table, Some("shop"), "orders", &[Privilege::Insert], 8));
        let grants = vec![
            MysqlGrant {
                grantee: account.clone(),
                scope: Scope::Table { database: "shop".into(), table: "orders".into() },
                privileges: [My::Select, My::Insert, My::Delete].into(),
                grantable: false,
                dynamic_grantable: Default::default(),
            },
            MysqlGrant {
                grantee: account.clone(),
                scope: Scope::Database { database: "shop".into(), pattern: false },
                privileges: [My::Select].into(),
                grantable: false,
                dynamic_grantable: Default::default(),
            },
            MysqlGrant {
                grantee: Account::new("app", "%"),
                scope: Scope::Database { database: "shop".into(), pattern: false },
                privileges: [My::Select].into(),
                grantable: false,
                dynamic_grantable: Default::default(),
            },
        ];
        let baseline = crate::mysql_baseline::Baseline::from_yaml(
            "version: 1\nengine: mariadb\naccounts:\n  - user: app\n    host: 10.0.%\n    grants:\n      - { privileges: [SELECT], on: database, database: shop }\n",
            "maria.yaml",
        )
        .unwrap();
        let options = RevokeOptions { mysql_baseline: Some(std::sync::Arc::new(baseline)), ..RevokeOptions::default() };
        let held = Held { exists: true, mysql: Some(grants), ..Held::default() };
        let plan = plan_revocation(&ending, &held, &[&other], &options);
        // SELECT on the table goes; INSERT stays (t2); DELETE was never the ticket's; the
        // database's SELECT is the baseline's; another account with the same user is not this one
        let revoked: Vec<String> = plan.transaction.iter().map(|c| format!("{c:?}")).collect();
        assert_eq!(revoked.len(), 1, "{revoked:#?}");
        assert!(revoked[0].contains("Select") && revoked[0].contains("orders") && !revoked[0].contains("Delete"));
        let reasons: Vec<&str> = plan.kept_mysql.iter().map(|k| k.reason.as_str()).collect();
        assert_eq!(plan.kept_len(), 2, "{reasons:?}");
        assert!(reasons.iter().any(|r| r.starts_with("still covered by ticket t2")), "{reasons:?}");
        assert!(
            reasons.iter().any(|r| r.starts_with("declared in the baseline (accounts[0].grants[0])")),
            "{reasons:?}"
        );
        assert_eq!(plan.after_commit, [Change::TerminateSessions { role: ending.request().role.clone() }]);

        let never = RevokeOptions { sessions: SessionPolicy::Never, ..options.clone() };
        assert!(plan_revocation(&ending, &held, &[&other], &never).after_commit.is_empty());
        let gone = Held { exists: false, mysql: Some(vec![]), ..Held::default() };
        let plan = plan_revocation(&ending, &gone, &[], &options);
        assert!(plan.is_empty());
        assert_eq!(
            plan.nothing_because.as_deref(),
            Some("account 'app'@'10.0.%' does not exist: nothing left to revoke")
        );
    }
}
