//! Remediation run on a MySQL or MariaDB server: core's [`ChangeExecutor`]
//! for [`Change::Mysql`].
//!
//! MySQL commits each GRANT, REVOKE and ALTER USER on its own, so a
//! remediation is no transaction: its statements run one by one, in order,
//! each retried on a transient error (they are idempotent: a GRANT given
//! twice is one grant, and a REVOKE of what is no longer held is noted, not
//! failed). What stands in for the commit is the check afterwards: the grant
//! tables are read again, as a scan reads them, and every change must show
//! there ([`MysqlChange::holds_in`]). When a statement fails for good, the
//! error names the statements that did run before it: nothing claims a whole
//! remediation that was not.
//!
//! The account that runs it needs what each statement asks of it: GRANT
//! OPTION and the privileges it grants or revokes (or `CREATE USER`), and
//! for role grants the roles' ADMIN OPTION; locking an account takes
//! `CREATE USER`. None of that is the scanning account's (see the crate's
//! documentation): `grantwarden apply --execute` is given an administrator's URL.

use chrono::Utc;
use mysql_async::Opts;
use mysql_async::prelude::Queryable;

use crate::error::{ErrorClass, ScanError};
use crate::render;
use crate::scan::{ScanOptions, Scanner};
use crate::session::connect;
use grantwarden_core::change::Change;
use grantwarden_core::mysql::change::MysqlChange;
use grantwarden_core::remediation_flow::{Applied, ChangeExecutor};
use grantwarden_core::revoke::{ExecError, FailureClass};
use grantwarden_core::snapshot::ChunkSpec;

/// Server errors that say a REVOKE found nothing to take: no such grant on
/// the server, a database, a table or column, a routine; a role not granted
/// (MariaDB).
const NOTHING_TO_REVOKE: [u16; 4] = [1141, 1147, 1403, 1962];

/// Runs MySQL remediation changes against one server.
#[derive(Clone, Debug)]
pub struct Executor {
    opts: Opts,
    options: ScanOptions,
}

impl Executor {
    /// An executor that connects with `opts`; `options` give the timeouts,
    /// the retries of each statement and how the check afterwards reads.
    pub fn new(opts: Opts, options: ScanOptions) -> Self {
        Self { opts, options }
    }
}

/// The statements of `changes`, each with the change it comes from.
fn statements(changes: &[Change]) -> Result<Vec<(&MysqlChange, String)>, ExecError> {
    let mut out = Vec::new();
    for c in changes {
        let Change::Mysql { mysql } = c else {
            return Err(permanent(format!("{c:?} is no MySQL or MariaDB change"), 0));
        };
        let sql = render::change(mysql).map_err(|e| permanent(format!("{mysql}: {e}"), 0))?;
        out.extend(sql.into_iter().map(|s| (mysql, s)));
    }
    Ok(out)
}

pub(crate) fn permanent(message: String, attempts: u32) -> ExecError {
    ExecError { class: FailureClass::Permanent, message, attempts }
}

pub(crate) fn failure(e: &ScanError, message: String, attempts: u32) -> ExecError {
    let class = match e.class() {
        ErrorClass::Transient => FailureClass::Transient,
        ErrorClass::Permanent => FailureClass::Permanent,
    };
    ExecError { class, message, attempts }
}

fn server_code(e: &ScanError) -> Option<u16> {
    match e {
        ScanError::Db { source: mysql_async::Error::Server(s), .. } => Some(s.code),
        _ => None,
    }
}

/// What ran before a statement failed, for the error.
fn ran_before(ran: &[String]) -> String {
    if ran.is_empty() {
        "nothing ran before it".to_owned()
    } else {
        format!("{} statement(s) ran before it and stay applied: {}", ran.len(), ran.join("; "))
    }
}

impl ChangeExecutor for Executor {
    async fn apply(&self, changes: &[Change], dry_run: bool) -> Result<Applied, ExecError> {
        let statements = statements(changes)?;
        if dry_run || statements.is_empty() {
            return Ok(Applied {
                sql: statements.into_iter().map(|(_, s)| s).collect(),
                attempts: 0,
                skipped: Vec::new(),
            });
        }
        let policy = self.options.retry;
        let mut attempts = 0u32;
        let mut conn = None;
        let mut ran: Vec<String> = Vec::new();
        let mut skipped = Vec::new();
        for (change, sql) in &statements {
            let mut tries = 0u32;
            loop {
                tries += 1;
                // as PostgreSQL's counts its transaction's: the most tries one statement took
                attempts = attempts.max(tries);
                let result = match conn.as_mut() {
                    Some(c) => run(c, sql).await,
                    None => match connect(&self.opts, &self.options.timeouts).await {
                        Ok((c, _)) => run(conn.insert(c), sql).await,
                        Err(e) => Err(e),
                    },
                };
                match result {
                    Ok(()) => {
                        ran.push(sql.clone());
                        break;
                    }
                    Err(e)
                        if change.takes_away() && server_code(&e).is_some_and(|c| NOTHING_TO_REVOKE.contains(&c)) =>
                    {
                        skipped.push(format!("{change}: no longer held ({e})"));
                        break;
                    }
                    Err(e) if e.class() == ErrorClass::Transient && tries < policy.max_attempts.max(1) => {
                        conn = None;
                        let delay = policy.delay(tries - 1, &mut rand::rng());
                        tracing::warn!(error = %e, statement = %sql, "transient error, retrying");
                        tokio::time::sleep(delay).await;
                    }
                    Err(e) => {
                        let message = format!("{sql}: {e} ({})", ran_before(&ran));
                        return Err(failure(&e, message, attempts));
                    }
                }
            }
        }
        if let Some(c) = conn {
            let _ = c.disconnect().await;
        }
        verify(&self.opts, &self.options, &statements, &ran, attempts).await?;
        Ok(Applied { sql: ran, attempts, skipped })
    }
}

async fn run(conn: &mut mysql_async::Conn, sql: &str) -> Result<(), ScanError> {
    conn.query_drop(sql).await.map_err(ScanError::db("running the remediation"))
}

/// Reads the grant tables again and checks every change shows there.
async fn verify(
    opts: &Opts,
    options: &ScanOptions,
    statements: &[(&MysqlChange, String)],
    ran: &[String],
    attempts: u32,
) -> Result<(), ExecError> {
    let unverified = |why: String| ExecError {
        class: FailureClass::Transient,
        message: format!("the changes ran and could not be checked: {why} ({})", ran_before(ran)),
        attempts,
    };
    let scan = Scanner::with_opts(opts.clone(), options.clone())
        .scan(Utc::now())
        .await
        .map_err(|e| unverified(format!("reading the grant tables: {e}")))?;
    let mut changes: Vec<&MysqlChange> = statements.iter().map(|(c, _)| *c).collect();
    changes.dedup();
    let mut wrong = Vec::new();
    for change in changes {
        let database = change.chunk_database();
        let failed = scan.chunks.iter().filter(|c| c.error.is_some()).find(|c| match &c.chunk {
            ChunkSpec::Cluster => true,
            ChunkSpec::Schemas { schemas } => schemas.iter().any(|s| database == Some(s.as_str())),
            ChunkSpec::SchemaPart { schema, .. } => database == Some(schema.as_str()),
        });
        if let Some(chunk) = failed.and_then(|c| c.failure()) {
            return Err(unverified(format!("the chunk {chunk}")));
        }
        if !change.holds_in(&scan.catalog) {
            wrong.push(change.to_string());
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(permanent(
            format!(
                "the changes ran, and the grant tables read afterwards do not show: {} ({})",
                wrong.join("; "),
                ran_before(ran)
            ),
            attempts,
        ))
    }
}
