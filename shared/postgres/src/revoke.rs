//! Runs revocation and remediation plans against the target database.
//!
//! The revoking transaction reads what the role holds, asks core for the
//! plan, runs it under `lock_timeout` and `statement_timeout`, then reads the
//! role's privileges again before it commits: a REVOKE that PostgreSQL turned
//! into a warning (the privilege was granted by another grantor) leaves the
//! privilege in place, and that must fail loudly, not pass as revoked. After
//! the commit, sessions are ended and a short-lived role's objects are
//! reassigned and dropped in each database it has them in, then the role goes.
//!
//! Transient failures (connection, lock timeout, serialization, admin
//! shutdown) are retried with full-jitter backoff; a phase that committed is
//! not run again. Everything else is permanent: a person must act.

use std::time::Duration;

use tokio_postgres::{Client, Config};

use crate::error::{ErrorClass, classify, describe};
use crate::render::{Functions, RenderError, ResolvedFunction, render};
use crate::session::{Timeouts, connect};
use grantwarden_core::backoff::RetryPolicy;
use grantwarden_core::change::Change;
use grantwarden_core::model::{Grant, Grantee, ObjectClass, ObjectRef, Privilege, RelationKind, RoleName};
use grantwarden_core::revocation::{Owned, OwnedKind, RevocationPlan};
use grantwarden_core::revoke::{ExecError, Executed, FailureClass, Held, PrivilegeExecutor};

const ROLE_GRANTS: &str = include_str!("sql/role_grants.sql");
const ROLE_DEPENDENCIES: &str = include_str!("sql/role_dependencies.sql");
// Privileged sessions qualify every function and operator, beside the pinned
// search_path (session.rs): any role with CREATE somewhere is an attacker.
const ROLE: &str = "SELECT r.oid, r.rolcanlogin FROM pg_catalog.pg_roles r \
     WHERE r.rolname OPERATOR(pg_catalog.=) $1::pg_catalog.name";
const MEMBER_OF: &str = "SELECT r.rolname::pg_catalog.text FROM pg_catalog.pg_auth_members m \
     JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) m.roleid \
     WHERE m.member OPERATOR(pg_catalog.=) $1::pg_catalog.oid ORDER BY 1";
/// A schema (`$1`) the connecting role owns.
const ADMIN_OWNED_SCHEMA: &str = "SELECT n.oid FROM pg_catalog.pg_namespace n \
     WHERE n.nspname OPERATOR(pg_catalog.=) $1::pg_catalog.name \
       AND n.nspowner OPERATOR(pg_catalog.=) (SELECT r.oid FROM pg_catalog.pg_roles r \
                                              WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER)";
/// The functions changes name, resolved by schema, name and argument types to
/// their OID and their argument types' parts, in one query (`$1`, `$2`, `$3`:
/// parallel arrays; each row says its position in them).
const RESOLVE_FUNCTIONS: &str = include_str!("sql/resolve_functions.sql");
const ROLE_OWNS: &str = include_str!("sql/role_owns.sql");
const SESSIONS_LEFT: &str = "SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity a \
     WHERE a.usename OPERATOR(pg_catalog.=) $1::pg_catalog.name \
       AND a.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()";

/// One failure while running a plan.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) class: FailureClass,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn db(context: impl std::fmt::Display) -> impl FnOnce(tokio_postgres::Error) -> Failure {
        move |e| Failure {
            class: match classify(&e) {
                ErrorClass::Transient => FailureClass::Transient,
                ErrorClass::Permanent => FailureClass::Permanent,
            },
            message: format!("{context}: {}", describe(&e)),
        }
    }

    pub(crate) fn permanent(message: impl Into<String>) -> Failure {
        Failure { class: FailureClass::Permanent, message: message.into() }
    }
}

impl From<RenderError> for Failure {
    fn from(e: RenderError) -> Self {
        Failure::permanent(e.to_string())
    }
}

/// Runs plans on one target database (and, for role cleanup, the other
/// databases of its cluster, with the same credentials).
#[derive(Clone)]
pub struct Executor {
    pub(crate) config: Config,
    pub(crate) timeouts: Timeouts,
    pub(crate) retry: RetryPolicy,
}

/// What a remediation run did (the type lives in core, with the port it answers).
pub use grantwarden_core::remediation_flow::Applied;

impl Executor {
    /// An executor for the database of `config`; it needs a role that may
    /// REVOKE what it revokes (the object owners' grants: the owner or a
    /// superuser), ALTER and DROP the short-lived roles (CREATEROLE with ADMIN
    /// on them), and signal their backends (pg_signal_backend).
    pub fn new(config: Config, timeouts: Timeouts, retry: RetryPolicy) -> Self {
        Self { config, timeouts, retry }
    }

    /// Statements that open the revoking transaction.
    pub(crate) fn begin(&self) -> Vec<String> {
        vec![
            "BEGIN".to_owned(),
            crate::session::PIN_SEARCH_PATH_LOCAL.to_owned(),
            format!("SET LOCAL lock_timeout = {}", self.timeouts.lock.as_millis()),
            format!("SET LOCAL statement_timeout = {}", self.timeouts.statement.as_millis()),
        ]
    }

    pub(crate) async fn retrying<T, F, Fut>(&self, mut attempt: F) -> Result<(T, u32), ExecError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut tries = 0;
        loop {
            tries += 1;
            match attempt().await {
                Ok(v) => return Ok((v, tries)),
                Err(f) if f.class == FailureClass::Transient && tries < self.retry.max_attempts => {
                    let delay = self.retry.delay(tries - 1, &mut rand::rng());
                    tracing::warn!(error = %f.message, attempt = tries, delay_ms = delay.as_millis() as u64, "transient failure; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(f) => return Err(ExecError { class: f.class, message: f.message, attempts: tries }),
            }
        }
    }

    /// The statements that open a read-only transaction (a dry run's, or a read before a plan).
    pub(crate) fn begin_read_only(&self) -> Vec<String> {
        vec![
            "BEGIN READ ONLY".to_owned(),
            crate::session::PIN_SEARCH_PATH_LOCAL.to_owned(),
            format!("SET LOCAL statement_timeout = {}", self.timeouts.statement.as_millis()),
        ]
    }

    /// Runs remediation changes in one transaction (dry run: reads and renders
    /// in a read-only one). Functions are resolved by OID in that transaction
    /// first; a change on one that no longer resolves is left out, and said so
    /// in [`Applied::skipped`], and the others run.
    pub async fn apply(&self, changes: &[Change], dry_run: bool) -> Result<Applied, ExecError> {
        if let Some(c) = changes.iter().find(|c| {
            !matches!(
                c,
                Change::Grant { .. }
                    | Change::Revoke { .. }
                    | Change::GrantMembership { .. }
                    | Change::RevokeMembership { .. }
                    | Change::SetAttribute { .. }
                    | Change::DefaultPrivilege { .. }
                    | Change::SetValidUntil { .. }
            )
        }) {
            return Err(ExecError {
                class: FailureClass::Permanent,
                message: format!("remediation runs GRANT, REVOKE and ALTER only, not {c:?}"),
                attempts: 0,
            });
        }
        if changes.is_empty() {
            let mut sql = self.begin();
            sql.push("COMMIT".to_owned());
            return Ok(Applied { sql, attempts: 0, skipped: Vec::new() });
        }
        let ((sql, skipped), attempts) = self
            .retrying(|| async {
                let client = connect(&self.config).await.map_err(Failure::db("connecting"))?;
                run_all(&client, &if dry_run { self.begin_read_only() } else { self.begin() }).await?;
                let functions = resolve_functions(&client, changes).await?;
                let (runnable, skipped) = resolvable(changes, &functions);
                let mut body = acl_locks(&runnable);
                for c in &runnable {
                    body.extend(render(c, &functions)?);
                }
                let mut sql = self.begin();
                sql.extend(body.iter().cloned());
                sql.push("COMMIT".to_owned());
                if dry_run {
                    client.batch_execute("ROLLBACK").await.map_err(Failure::db("ending the read"))?;
                    return Ok((sql, skipped));
                }
                run_all(&client, &body).await?;
                client.batch_execute("COMMIT").await.map_err(Failure::db("committing the remediation"))?;
                Ok((sql, skipped))
            })
            .await?;
        for s in &skipped {
            tracing::warn!(skipped = %s, "remediation left a change out");
        }
        Ok(Applied { sql, attempts: if dry_run { 0 } else { attempts }, skipped })
    }

    async fn revoke_once(
        &self,
        role: &RoleName,
        planner: &(dyn Fn(&Held) -> RevocationPlan + Sync),
        dry_run: bool,
    ) -> Result<(RevocationPlan, Vec<String>), Failure> {
        let client = connect(&self.config).await.map_err(Failure::db("connecting to the target"))?;
        // a dry run reads in a read-only transaction and shows the statements a real run opens with
        let begin = self.begin();
        run_all(&client, &if dry_run { self.begin_read_only() } else { begin.clone() }).await?;
        let held = read_held(&client, role).await?;
        let plan = planner(&held);
        // what the role holds was read by OID in this transaction: each of its functions resolves
        let functions = resolve_functions(&client, &plan.transaction).await?;
        let mut sql = begin;
        let mut body = acl_locks(&plan.transaction);
        for c in &plan.transaction {
            body.extend(render(c, &functions)?);
        }
        if dry_run {
            sql.extend(body);
            sql.push("COMMIT".to_owned());
            client.batch_execute("ROLLBACK").await.map_err(Failure::db("ending the read"))?;
            return Ok((plan, sql));
        }
        run_all(&client, &body).await?;
        if !plan.transaction.is_empty() {
            let after = read_held(&client, role).await?;
            check_gone(&plan, &after)?;
        }
        client.batch_execute("COMMIT").await.map_err(Failure::db("committing the revocation"))?;
        sql.extend(body);
        sql.push("COMMIT".to_owned());
        Ok((plan, sql))
    }

    /// Takes the role's revocation lock on a connection of its own, held until the
    /// connection is dropped: triggers racing on one ticket (or two tickets of one
    /// role) would otherwise REVOKE the same ACL at once, which PostgreSQL refuses
    /// with "tuple concurrently updated", or one would try DROP ROLE while the other
    /// is still dropping what the role owns. The second waits (up to lock_timeout,
    /// then retries), then finds nothing left.
    async fn lock_role(&self, role: &RoleName) -> Result<Client, Failure> {
        let client = connect(&self.config).await.map_err(Failure::db("connecting to the target"))?;
        run_all(&client, &role_lock_sql(role, &self.timeouts)).await?;
        Ok(client)
    }

    /// Ends the role's sessions, waiting (a few seconds at most) until they are gone.
    async fn terminate(&self, role: &RoleName) -> Result<u64, Failure> {
        let client = connect(&self.config).await.map_err(Failure::db("connecting to end sessions"))?;
        let sql = crate::render::terminate_sessions_sql(role);
        let row = client.query_one(&sql, &[]).await.map_err(Failure::db(format!("ending the sessions of {role}")))?;
        let ended: i64 = row.get(0);
        let mut left = 0;
        for _ in 0..50 {
            left = client
                .query_one(SESSIONS_LEFT, &[&role.as_str()])
                .await
                .map_err(Failure::db("counting sessions"))?
                .get::<_, i64>(0);
            if left == 0 {
                return Ok(ended.max(0) as u64);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // a revoked user must not keep working: this is a failure to retry, not a success
        Err(Failure {
            class: FailureClass::Transient,
            message: format!("{left} session(s) of {role} still open 5 s after pg_terminate_backend"),
        })
    }

    async fn drop_owned(&self, role: &RoleName, database: &str, statements: &[String]) -> Result<(), Failure> {
        let mut config = self.config.clone();
        config.dbname(database);
        let client = connect(&config).await.map_err(Failure::db(format!(
            "connecting to database {database}, where the role owns objects or holds privileges"
        )))?;
        let mut sql = self.begin();
        sql.extend(statements.iter().cloned());
        sql.push("COMMIT".to_owned());
        match run_all(&client, &sql).await {
            // "does not exist": the role is gone (an earlier attempt finished this)
            Err(f) if f.message.contains("(SQLSTATE 42704)") => {
                let _ = client.batch_execute("ROLLBACK").await;
                let exists = client
                    .query_opt(ROLE, &[&role.as_str()])
                    .await
                    .map_err(Failure::db("reading whether the role still exists"))?
                    .is_some();
                if exists { Err(Failure::permanent(f.message)) } else { Ok(()) }
            }
            other => other,
        }
    }

    /// A ticket's views: what their owner owns goes with it (nothing another role
    /// owns does). Views made before they had an owner of their own were the
    /// admin's, in the ticket's schema: that schema goes when the admin owns it.
    async fn drop_views(&self, owner: &RoleName, schema: &str) -> Result<(), Failure> {
        let client = connect(&self.config).await.map_err(Failure::db("connecting to the target"))?;
        let exists = client
            .query_opt(ROLE, &[&owner.as_str()])
            .await
            .map_err(Failure::db("reading whether the views' owner exists"))?
            .is_some();
        let statements = if exists {
            render(&Change::DropViews { owner: owner.clone(), schema: schema.to_owned() }, &Functions::new())?
        } else if client
            .query_opt(ADMIN_OWNED_SCHEMA, &[&schema])
            .await
            .map_err(Failure::db("reading the views' schema"))?
            .is_some()
        {
            vec![format!("DROP SCHEMA {} CASCADE", postgres_protocol::escape::escape_identifier(schema))]
        } else {
            return Ok(());
        };
        let mut sql = self.begin();
        sql.extend(statements);
        sql.push("COMMIT".to_owned());
        run_all(&client, &sql).await
    }

    /// Hands a relation to the owner the baseline declares; one dropped meanwhile needs nothing.
    async fn alter_owner(&self, change: &Change) -> Result<(), Failure> {
        let client = connect(&self.config).await.map_err(Failure::db("connecting to the target"))?;
        let mut sql = self.begin();
        sql.extend(render(change, &Functions::new())?);
        sql.push("COMMIT".to_owned());
        match run_all(&client, &sql).await {
            Err(f) if f.message.contains("(SQLSTATE 42P01)") => Ok(()),
            other => other,
        }
    }

    async fn after_commit(&self, plan: &RevocationPlan) -> Result<(u64, u32), ExecError> {
        let mut terminated = 0;
        let mut attempts = 0;
        for change in &plan.after_commit {
            let (n, tries) = self
                .retrying(|| async {
                    match change {
                        Change::TerminateSessions { role } => self.terminate(role).await,
                        Change::DropOwned { role, database } => {
                            self.drop_owned(role, database, &render(change, &Functions::new())?).await.map(|()| 0)
                        }
                        Change::DropViews { owner, schema } => self.drop_views(owner, schema).await.map(|()| 0),
                        Change::AlterOwner { .. } => self.alter_owner(change).await.map(|()| 0),
                        other => {
                            let client = connect(&self.config).await.map_err(Failure::db("connecting"))?;
                            run_all(&client, &render(other, &Functions::new())?).await.map(|()| 0)
                        }
                    }
                })
                .await?;
            terminated += n;
            attempts = attempts.max(tries);
        }
        Ok((terminated, attempts))
    }
}

impl grantwarden_core::remediation_flow::ChangeExecutor for Executor {
    async fn apply(&self, changes: &[Change], dry_run: bool) -> Result<Applied, ExecError> {
        Executor::apply(self, changes, dry_run).await
    }
}

impl PrivilegeExecutor for Executor {
    async fn revoke(
        &self,
        role: &RoleName,
        planner: &(dyn Fn(&Held) -> RevocationPlan + Sync),
        dry_run: bool,
        clock: &(dyn Fn() -> chrono::DateTime<chrono::Utc> + Sync),
    ) -> Result<Executed, ExecError> {
        let (lock, lock_attempts) = if dry_run {
            (None, 0)
        } else {
            let (client, tries) = self.retrying(|| self.lock_role(role)).await?;
            (Some(client), tries)
        };
        let ((plan, transaction), attempts) = self.retrying(|| self.revoke_once(role, planner, dry_run)).await?;
        let committed_at = (!dry_run).then(clock);
        let mut sql = role_lock_sql(role, &self.timeouts);
        sql.extend(transaction);
        let after = after_commit_sql(&plan).map_err(|e| ExecError {
            class: FailureClass::Permanent,
            message: e.message,
            attempts,
        })?;
        let unlock = format!("SELECT pg_catalog.pg_advisory_unlock({})", role_lock_key(role));
        if dry_run {
            sql.extend(after);
            sql.push(unlock);
            return Ok(Executed { plan, sql, sessions_terminated: 0, attempts, dry_run, committed_at });
        }
        let (sessions_terminated, after_attempts) = self.after_commit(&plan).await.map_err(|mut e| {
            e.message = format!("the revoking transaction committed, then: {}", e.message);
            e
        })?;
        if let Some(lock) = lock {
            // dropping the connection would release it too; this says so at once
            let _ = lock.batch_execute(&unlock).await;
        }
        sql.extend(after);
        sql.push(unlock);
        let attempts = attempts.max(after_attempts).max(lock_attempts);
        Ok(Executed { plan, sql, sessions_terminated, attempts, dry_run, committed_at })
    }
}

/// Advisory locks on every object whose ACL the changes rewrite, taken in one
/// global order (so two transactions never wait on each other in a cycle) and
/// held to the commit. Two transactions changing the ACL of one object at once
/// make PostgreSQL fail the second with "tuple concurrently updated"; many
/// tickets on one schema expiring together would otherwise fight over it.
pub(crate) fn acl_locks(changes: &[Change]) -> Vec<String> {
    let mut keys: Vec<String> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Grant { grant } | Change::Revoke { grant, .. } => {
                let o = &grant.object;
                let class = if o.class == ObjectClass::Column { ObjectClass::Table } else { o.class };
                Some(format!("grantwarden acl {class:?} {}.{}", o.schema.as_deref().unwrap_or(""), o.name))
            }
            Change::DefaultPrivilege { for_role, schema, .. } => {
                Some(format!("grantwarden acl default {for_role} {}", schema.as_deref().unwrap_or("")))
            }
            _ => None,
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys.iter().map(|k| format!("SELECT pg_catalog.pg_advisory_xact_lock({})", lock_key(k))).collect()
}

/// The advisory lock key of `name`, every function and argument type spelled out:
/// `hashtextextended('...', 0)` unqualified was the call an attacker's
/// `public.hashtextextended(text, integer)` matched better than pg_catalog's.
fn lock_key(name: &str) -> String {
    format!(
        "pg_catalog.hashtextextended({}::pg_catalog.text, 0::pg_catalog.int8)",
        postgres_protocol::escape::escape_literal(name)
    )
}

/// The key of a role's revocation lock.
fn role_lock_key(role: &RoleName) -> String {
    lock_key(&format!("grantwarden revoke {role}"))
}

/// The statements that take a role's revocation lock (session level, on its own connection).
fn role_lock_sql(role: &RoleName, timeouts: &Timeouts) -> Vec<String> {
    vec![
        format!("SET lock_timeout = {}", timeouts.lock.as_millis()),
        format!("SELECT pg_catalog.pg_advisory_lock({})", role_lock_key(role)),
    ]
}

/// The after-commit statements, with the database each `DropOwned` runs in named.
fn after_commit_sql(plan: &RevocationPlan) -> Result<Vec<String>, Failure> {
    let mut out = Vec::new();
    for c in &plan.after_commit {
        if let Change::DropOwned { database, .. } = c {
            out.push(format!("-- in database {}", postgres_protocol::escape::escape_identifier(database)));
        }
        out.extend(render(c, &Functions::new())?);
    }
    Ok(out)
}

/// The functions `changes` grant or revoke on, resolved in the caller's
/// transaction (see [`Functions`]); one that does not resolve is absent.
pub(crate) async fn resolve_functions(client: &Client, changes: &[Change]) -> Result<Functions, Failure> {
    let wanted: Vec<&ObjectRef> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Grant { grant } | Change::Revoke { grant, .. } if grant.object.class == ObjectClass::Function => {
                Some(&grant.object)
            }
            _ => None,
        })
        .collect();
    let mut out = Functions::new();
    if wanted.is_empty() {
        return Ok(out);
    }
    let schemas: Vec<&str> = wanted.iter().map(|o| o.schema.as_deref().unwrap_or_default()).collect();
    let names: Vec<&str> = wanted.iter().map(|o| o.name.as_str()).collect();
    let args: Vec<&str> = wanted.iter().map(|o| o.args.as_deref().unwrap_or_default()).collect();
    let rows = client
        .query(RESOLVE_FUNCTIONS, &[&schemas, &names, &args])
        .await
        .map_err(Failure::db("resolving the functions to grant or revoke on"))?;
    for r in rows {
        let at: i64 = r.get(0);
        let type_schemas: Vec<String> = r.get(4);
        let type_names: Vec<String> = r.get(5);
        let Some(object) = usize::try_from(at - 1).ok().and_then(|i| wanted.get(i)) else { continue };
        out.insert(
            (*object).clone(),
            ResolvedFunction {
                oid: r.get(1),
                schema: r.get(2),
                name: r.get(3),
                arg_types: type_schemas.into_iter().zip(type_names).collect(),
            },
        );
    }
    Ok(out)
}

/// The changes that can run, and a line for each left out: one on a function
/// that did not resolve (dropped since the plan) names it and goes no further.
pub(crate) fn resolvable(changes: &[Change], functions: &Functions) -> (Vec<Change>, Vec<String>) {
    let mut run = Vec::new();
    let mut skipped = Vec::new();
    for c in changes {
        match c {
            Change::Grant { grant } | Change::Revoke { grant, .. }
                if grant.object.class == ObjectClass::Function && !functions.contains_key(&grant.object) =>
            {
                skipped.push(format!(
                    "{} {} on function {} for {}: no such function now (schema, name and argument types)",
                    if matches!(c, Change::Grant { .. }) { "GRANT" } else { "REVOKE" },
                    grant.privilege,
                    grant.object,
                    grant.grantee
                ));
            }
            other => run.push(other.clone()),
        }
    }
    (run, skipped)
}

pub(crate) async fn run_all(client: &Client, statements: &[String]) -> Result<(), Failure> {
    for s in statements {
        if let Err(e) = client.batch_execute(s).await {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(Failure::db(s)(e));
        }
    }
    Ok(())
}

/// What the role holds, read in the caller's transaction.
async fn read_held(client: &Client, role: &RoleName) -> Result<Held, Failure> {
    let Some(row) = client.query_opt(ROLE, &[&role.as_str()]).await.map_err(Failure::db("reading the role"))? else {
        return Ok(Held::default());
    };
    let oid: u32 = row.get(0);
    let login: bool = row.get(1);
    let mut grants = Vec::new();
    for r in client.query(ROLE_GRANTS, &[&oid]).await.map_err(Failure::db("reading the role's privileges"))? {
        let class: &str = r.get(0);
        let schema: Option<String> = r.get(1);
        let name: String = r.get(2);
        let column: Option<String> = r.get(3);
        let args: Option<String> = r.get(4);
        let privilege: &str = r.get(5);
        let privilege: Privilege = privilege
            .parse()
            .map_err(|_| Failure::permanent(format!("catalog row role_grants: privilege: unknown {privilege:?}")))?;
        let class = match class {
            "database" => ObjectClass::Database,
            "schema" => ObjectClass::Schema,
            "sequence" => ObjectClass::Sequence,
            "column" => ObjectClass::Column,
            "function" => ObjectClass::Function,
            _ => ObjectClass::Table,
        };
        grants.push(Grant {
            object: ObjectRef {
                class,
                schema: schema.map(Into::into),
                name: name.into(),
                column: column.map(Into::into),
                args: args.map(Into::into),
            },
            grantee: Grantee::Role(role.clone()),
            privilege,
            grantable: r.get(6),
        });
    }
    // one entry per grantor in the ACL: one per privilege here, grantable if any is
    grants.sort();
    grants.dedup_by(|later, kept| {
        let same = later.object == kept.object && later.privilege == kept.privilege;
        if same {
            kept.grantable |= later.grantable;
        }
        same
    });
    let member_of = client
        .query(MEMBER_OF, &[&oid])
        .await
        .map_err(Failure::db("reading the role's memberships"))?
        .iter()
        .map(|r| RoleName::new(r.get::<_, String>(0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failure::permanent(format!("catalog row pg_auth_members: rolname: {e}")))?;
    let databases = client
        .query(ROLE_DEPENDENCIES, &[&oid])
        .await
        .map_err(Failure::db("reading where the role has objects"))?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    let mut owned = Vec::new();
    for r in client.query(ROLE_OWNS, &[&oid]).await.map_err(Failure::db("reading what the role owns"))? {
        let what: &str = r.get(0);
        let code: Option<&str> = r.get(1);
        let kind = match what {
            "relation" => match code.and_then(RelationKind::from_catalog) {
                Some(kind) => OwnedKind::Relation { kind },
                None => OwnedKind::Other,
            },
            "function" => OwnedKind::Function { security_definer: r.get(5) },
            _ => OwnedKind::Other,
        };
        owned.push(Owned { kind, schema: r.get(2), name: r.get(3), arguments: r.get(4) });
    }
    Ok(Held { exists: true, login, grants, member_of, databases, owned, mysql: None })
}

/// Fails when a REVOKE left its privilege in place: PostgreSQL only warns when the
/// privilege was granted by another grantor than the one revoking.
fn check_gone(plan: &RevocationPlan, after: &Held) -> Result<(), Failure> {
    let left: Vec<String> = plan
        .transaction
        .iter()
        .filter_map(|c| match c {
            Change::Revoke { grant, option_only: false, .. } => after
                .grants
                .iter()
                .any(|g| g.privilege == grant.privilege && g.object == grant.object)
                .then(|| format!("{} on {}", grant.privilege, grant.object)),
            _ => None,
        })
        .collect();
    if left.is_empty() {
        return Ok(());
    }
    Err(Failure::permanent(format!(
        "insufficient privilege: REVOKE left {} held by {} (granted by another grantor; revoke as that grantor, the owner or a superuser)",
        left.join(", "),
        plan.role
    )))
}
