//! Revocation on MySQL and MariaDB: a ticket's window ends, and what it
//! covers comes away from the account it names ([`Revoker`], core's
//! `PrivilegeExecutor`, driven by `grantwarden_core::revoke::revoke_ticket`).
//!
//! The grant tables are read first (every chunk of a scan: the account's
//! privileges at every scope), core plans from what the account holds now (reference counting:
//! what another ticket in force or the baseline covers stays), the REVOKEs run
//! statement by statement with [`crate::apply::Executor`] and are checked
//! against the grant tables read again, and then the account's open sessions
//! are ended with `KILL CONNECTION`: a revoked privilege already checked by a
//! live session (an open table, a prepared statement) must not outlive it.
//! The account is never dropped: grantwarden did not create it.
//!
//! The revoking account needs what `apply` needs (GRANT OPTION on what it
//! revokes), and to end sessions PROCESS (to list them) and CONNECTION ADMIN
//! on MariaDB 10.5+ and MySQL 8 (SUPER before).

use chrono::{DateTime, Utc};
use grantwarden_core::change::Change;
use grantwarden_core::model::RoleName;
use grantwarden_core::remediation_flow::ChangeExecutor;
use grantwarden_core::revocation::RevocationPlan;
use grantwarden_core::revoke::{ExecError, Executed, Held, PrivilegeExecutor};
use mysql_async::Opts;
use mysql_async::prelude::Queryable;

use crate::apply::{Executor, failure, permanent};
use crate::catalog::{Account, Catalog};
use crate::error::ScanError;
use crate::scan::{ScanOptions, extract_chunk, plan};
use crate::session::connect;

/// Ends tickets' access on one server.
#[derive(Clone, Debug)]
pub struct Revoker {
    opts: Opts,
    options: ScanOptions,
}

impl Revoker {
    /// A revoker that connects with `opts` (the revoking account); `options`
    /// give the timeouts, the retries and how the grant tables are read.
    pub fn new(opts: Opts, options: ScanOptions) -> Self {
        Self { opts, options }
    }

    /// What `account` holds, as the grant tables say now: every chunk of a
    /// scan read (each retried on transient errors); a chunk that cannot be
    /// read fails the revocation with its own error's class, since what it
    /// missed may be what the ticket covers.
    async fn held(&self, account: &Account) -> Result<Held, ExecError> {
        let (_, chunks) = plan(&self.opts, &self.options)
            .await
            .map_err(|e| failure(&e, format!("reading the grant tables: {e}"), 1))?;
        let mut parts = Vec::with_capacity(chunks.len());
        for chunk in &chunks {
            let (part, _) = extract_chunk(&self.opts, chunk, &self.options).await.map_err(|(e, attempts)| {
                failure(&e, format!("reading the grant tables, chunk {}: {e}", chunk.label()), attempts)
            })?;
            parts.push(part);
        }
        let catalog = Catalog::merge_all(parts);
        let exists = catalog.accounts.iter().any(|a| &a.account == account);
        let grants = catalog.privileges.iter().filter(|g| &g.grantee == account).cloned().collect();
        Ok(Held { exists, mysql: Some(grants), ..Held::default() })
    }

    /// Ends the open sessions of `account` (its user, from a client host its
    /// host pattern matches, as the server matches it: `LIKE`), but never the
    /// revoking session's own; the statements run, or on a dry run the ones
    /// that would.
    async fn end_sessions(&self, account: &Account, dry_run: bool) -> Result<Vec<String>, ScanError> {
        let (mut conn, _) = connect(&self.opts, &self.options.timeouts).await?;
        let ids: Vec<u64> = conn
            .exec(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ? \
                 AND SUBSTRING_INDEX(HOST, ':', 1) LIKE ? AND ID <> CONNECTION_ID() ORDER BY ID",
                (&account.user, &account.host),
            )
            .await
            .map_err(ScanError::db("listing the account's sessions"))?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let sql = format!("KILL CONNECTION {id}");
            if !dry_run {
                match conn.query_drop(&sql).await {
                    Ok(()) => {}
                    // ended on its own in between: ER_NO_SUCH_THREAD
                    Err(mysql_async::Error::Server(e)) if e.code == 1094 => continue,
                    Err(e) => return Err(ScanError::db(format!("ending session {id}"))(e)),
                }
            }
            out.push(sql);
        }
        let _ = conn.disconnect().await;
        Ok(out)
    }
}

impl PrivilegeExecutor for Revoker {
    async fn revoke(
        &self,
        role: &RoleName,
        planner: &(dyn Fn(&Held) -> RevocationPlan + Sync),
        dry_run: bool,
        clock: &(dyn Fn() -> DateTime<Utc> + Sync),
    ) -> Result<Executed, ExecError> {
        let account = Account::parse(role.as_str());
        let held = self.held(&account).await?;
        let plan = planner(&held);
        let applied = Executor::new(self.opts.clone(), self.options.clone()).apply(&plan.transaction, dry_run).await?;
        let committed_at = (!dry_run).then(clock);
        let mut sql = applied.sql;
        let mut sessions_terminated = 0u64;
        for change in &plan.after_commit {
            match change {
                Change::TerminateSessions { role } => {
                    let ended = self.end_sessions(&Account::parse(role.as_str()), dry_run).await.map_err(|e| {
                        failure(&e, format!("{e} (the REVOKEs ran and were checked)"), applied.attempts)
                    })?;
                    if !dry_run {
                        sessions_terminated += ended.len() as u64;
                    }
                    sql.extend(ended);
                }
                other => {
                    return Err(permanent(
                        format!("{other:?} is no change a MySQL revocation makes"),
                        applied.attempts,
                    ));
                }
            }
        }
        Ok(Executed { plan, sql, sessions_terminated, attempts: applied.attempts.max(1), dry_run, committed_at })
    }
}
