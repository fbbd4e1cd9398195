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
use crate::render::{RenderError, render};
use crate::session::{Timeouts, connect};
use grantwarden_core::backoff::RetryPolicy;
use grantwarden_core::change::Change;
use grantwarden_core::model::{Grant, Grantee, ObjectClass, ObjectRef, Privilege, RoleName};
use grantwarden_core::revoke::{ExecError, Executed, FailureClass, Held, PrivilegeExecutor, RevocationPlan};

const ROLE_GRANTS: &str = include_str!("sql/role_grants.sql");
const ROLE_DEPENDENCIES: &str = include_str!("sql/role_dependencies.sql");
const ROLE: &str = "SELECT oid, rolcanlogin FROM pg_catalog.pg_roles WHERE rolname = $1";
const MEMBER_OF: &str = "SELECT r.rolname::text FROM pg_catalog.pg_auth_members m \
     JOIN pg_catalog.pg_roles r ON r.oid = m.roleid WHERE m.member = $1 ORDER BY 1";
const SESSIONS_LEFT: &str = "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()";

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

/// What a remediation run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The SQL, exactly as run (or as it would run).
    pub sql: Vec<String>,
    /// Attempts it took.
    pub attempts: u32,
}

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

    /// Runs remediation changes in one transaction (dry run: renders only).
    pub async fn apply(&self, changes: &[Change], dry_run: bool) -> Result<Applied, ExecError> {
        let mut body = acl_locks(changes);
        for c in changes {
            if matches!(c, Change::TerminateSessions { .. } | Change::DropOwned { .. } | Change::DropRole { .. }) {
                return Err(ExecError {
                    class: FailureClass::Permanent,
                    message: "remediation runs GRANT, REVOKE and ALTER only".into(),
                    attempts: 0,
                });
            }
            body.extend(render(c).map_err(|e| ExecError {
                class: FailureClass::Permanent,
                message: e.to_string(),
                attempts: 0,
            })?);
        }
        let mut sql = self.begin();
        sql.extend(body);
        sql.push("COMMIT".to_owned());
        if dry_run || changes.is_empty() {
            return Ok(Applied { sql, attempts: 0 });
        }
        let (_, attempts) = self
            .retrying(|| async {
                let client = connect(&self.config).await.map_err(Failure::db("connecting"))?;
                run_all(&client, &sql).await
            })
            .await?;
        Ok(Applied { sql, attempts })
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
        let read_only = [
            "BEGIN READ ONLY".to_owned(),
            format!("SET LOCAL statement_timeout = {}", self.timeouts.statement.as_millis()),
        ];
        run_all(&client, if dry_run { &read_only } else { &begin }).await?;
        let held = read_held(&client, role).await?;
        let plan = planner(&held);
        let mut sql = begin;
        let mut body = acl_locks(&plan.transaction);
        for c in &plan.transaction {
            body.extend(render(c)?);
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
            // "does not exist": fine when it is the role (an earlier attempt finished this),
            // not when it is the --reassign-to role
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

    async fn after_commit(&self, plan: &RevocationPlan) -> Result<(u64, u32), ExecError> {
        let mut terminated = 0;
        let mut attempts = 0;
        for change in &plan.after_commit {
            let (n, tries) = self
                .retrying(|| async {
                    match change {
                        Change::TerminateSessions { role } => self.terminate(role).await,
                        Change::DropOwned { role, database, .. } => {
                            self.drop_owned(role, database, &render(change)?).await.map(|()| 0)
                        }
                        other => {
                            let client = connect(&self.config).await.map_err(Failure::db("connecting"))?;
                            run_all(&client, &render(other)?).await.map(|()| 0)
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
        let unlock = format!("SELECT pg_advisory_unlock({})", role_lock_key(role));
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
    keys.iter()
        .map(|k| {
            format!(
                "SELECT pg_advisory_xact_lock(hashtextextended({}, 0))",
                postgres_protocol::escape::escape_literal(k)
            )
        })
        .collect()
}

/// `hashtextextended('grantwarden revoke <role>', 0)`: the key of a role's revocation lock.
fn role_lock_key(role: &RoleName) -> String {
    format!("hashtextextended({}, 0)", postgres_protocol::escape::escape_literal(&format!("grantwarden revoke {role}")))
}

/// The statements that take a role's revocation lock (session level, on its own connection).
fn role_lock_sql(role: &RoleName, timeouts: &Timeouts) -> Vec<String> {
    vec![
        format!("SET lock_timeout = {}", timeouts.lock.as_millis()),
        format!("SELECT pg_advisory_lock({})", role_lock_key(role)),
    ]
}

/// The after-commit statements, with the database each `DropOwned` runs in named.
fn after_commit_sql(plan: &RevocationPlan) -> Result<Vec<String>, Failure> {
    let mut out = Vec::new();
    for c in &plan.after_commit {
        if let Change::DropOwned { database, .. } = c {
            out.push(format!("-- in database {}", postgres_protocol::escape::escape_identifier(database)));
        }
        out.extend(render(c)?);
    }
    Ok(out)
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
        let privilege: &str = r.get(4);
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
            },
            grantee: Grantee::Role(role.clone()),
            privilege,
            grantable: r.get(5),
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
    Ok(Held { exists: true, login, grants, member_of, databases })
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
