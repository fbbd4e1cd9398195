//! A whole scan of one server: the accounts chunk and the database chunks,
//! read concurrently (each on its own connection, at most `concurrency` at
//! once), each retried on transient errors with jittered backoff, each with
//! a deterministic batch id. The chunks are PostgreSQL's: [`ChunkSpec::Cluster`]
//! holds accounts, roles, global privileges, proxy grants and database-level
//! privileges (`mysql.db`, whose names may be patterns); [`ChunkSpec::Schemas`]
//! holds a group of databases: their table, column and routine privileges and
//! the definers of their views, routines, triggers and events.
//!
//! [`plan`] and [`extract_chunk`] are the two halves the AWS pipeline runs
//! apart (fan-out plans, one extract invocation reads each chunk); a
//! [`Scanner`] runs both in one process.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use mysql_async::Opts;
use mysql_async::prelude::Queryable;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::catalog::{Catalog, Flavor, Server, Unreadable};
use crate::error::{ErrorClass, ScanError};
use crate::privilege::Privilege;
use crate::read::{database_privileges, object_privileges, proxies, rows, trigger_definers, view_definers};
use crate::session::{Timeouts, begin_read_only, connect, parse_url, target_from_opts};
use crate::{mariadb, mysql8};
use grantwarden_core::backoff::{self, RetryPolicy};
pub use grantwarden_core::mysql_scan::Scan;
use grantwarden_core::snapshot::{ChunkOutcome, ChunkSpec, ScanWindow, TargetId, batch_id, scan_id};

/// How a scan runs.
#[derive(Clone, Debug)]
pub struct ScanOptions {
    /// Target id; `None` derives `host:port` from the URL.
    pub target: Option<TargetId>,
    /// Chunks read at once (each on its own connection).
    pub concurrency: usize,
    /// Databases a chunk holds at most; `None` spreads the databases evenly
    /// over `concurrency` chunks, 1,000 at most each (the definers of `information_schema` are read
    /// by opening each table's definition: chunks read in parallel use the
    /// server's cores).
    pub databases_per_chunk: Option<usize>,
    /// Statement, lock-wait and connect timeouts.
    pub timeouts: Timeouts,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Length of the window the scan id and batch ids are derived from.
    pub window_seconds: u32,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self {
            target: None,
            concurrency: 4,
            databases_per_chunk: None,
            timeouts: Timeouts::default(),
            retry: RetryPolicy::default(),
            window_seconds: 60,
        }
    }
}

impl ScanOptions {
    /// Options with these limits and the rest default: the AWS functions set
    /// their limits once and read both engines with them.
    pub fn with_limits(timeouts: Timeouts, retry: RetryPolicy, concurrency: usize) -> Self {
        Self { timeouts, retry, concurrency, ..Self::default() }
    }
}

/// The most databases a spread chunk holds (each is a parameter of its queries).
const MAX_SPREAD: usize = 1_000;

/// What the scanning account may see, checked by each chunk on its own
/// connection: the views of `information_schema` list only what it holds a
/// privilege on.
#[derive(Clone, Debug, Default)]
struct Reach {
    show_databases: bool,
    show_view: bool,
    trigger: bool,
    /// MySQL 8: SHOW_ROUTINE (or global SELECT) lists every routine; EVENT every event.
    show_routine: bool,
    event: bool,
}

impl Reach {
    fn of(flavor: Flavor, held: &[Privilege]) -> Self {
        let has = |p: &Privilege| held.contains(p);
        Reach {
            show_databases: has(&Privilege::ShowDatabases),
            show_view: has(&Privilege::ShowView),
            trigger: has(&Privilege::Trigger),
            // MariaDB's mysql.proc and mysql.event are read with SELECT on mysql.*
            show_routine: flavor == Flavor::Mariadb
                || has(&Privilege::Select)
                || has(&Privilege::Dynamic("SHOW_ROUTINE".into())),
            event: flavor == Flavor::Mariadb || has(&Privilege::Event),
        }
    }

    /// What cannot be read, and the privilege it takes.
    fn unreadable(&self, flavor: Flavor) -> Vec<Unreadable> {
        let mut out = Vec::new();
        let mut lacks = |ok: bool, what: &str, privilege: &str| {
            if !ok {
                out.push(Unreadable {
                    what: what.to_owned(),
                    why: format!("the scanning account lacks {privilege} ON *.*"),
                });
            }
        };
        lacks(self.show_databases, "databases on which no account holds a privilege", "SHOW DATABASES");
        lacks(self.show_view, "view definers", "SHOW VIEW");
        lacks(self.trigger, "trigger definers", "TRIGGER");
        if flavor == Flavor::Mysql {
            lacks(self.show_routine, "routine definers", "SHOW_ROUTINE");
            lacks(self.event, "event definers", "EVENT");
        }
        out
    }
}

/// Scans one server.
pub struct Scanner {
    opts: Opts,
    options: ScanOptions,
    target: TargetId,
}

impl Scanner {
    /// Validates the URL (`mysql://` or `mariadb://`); connects nothing yet.
    pub fn new(url: &str, options: ScanOptions) -> Result<Self, ScanError> {
        Ok(Self::with_opts(parse_url(url)?, options))
    }

    /// A scanner for connection options made from parts (a secret's).
    pub fn with_opts(opts: Opts, options: ScanOptions) -> Self {
        let target = options.target.clone().unwrap_or_else(|| target_from_opts(&opts));
        Self { opts, options, target }
    }

    /// The target id.
    pub fn target(&self) -> &TargetId {
        &self.target
    }

    /// Runs a scan that started at `now`. Fails only when it cannot be planned
    /// at all; a failed chunk gives an incomplete scan instead.
    pub async fn scan(&self, now: DateTime<Utc>) -> Result<Scan, ScanError> {
        let window = ScanWindow::containing(now, self.options.window_seconds);
        let scan = scan_id(&self.target, &window);
        let span = tracing::info_span!("scan", target = %self.target, scan_id = %scan);
        async {
            let (server, chunks) = plan(&self.opts, &self.options).await?;
            tracing::info!(chunks = chunks.len(), flavor = ?server.flavor, "planned");
            let (chunks, catalog) = self.fetch_all(chunks, &window).await;
            let scan = Scan::new(self.target.clone(), scan, now, server, chunks, catalog);
            tracing::info!(
                complete = scan.complete,
                accounts = scan.catalog.accounts.len(),
                grants = scan.catalog.privileges.len(),
                "scan finished"
            );
            Ok(scan)
        }
        .instrument(span)
        .await
    }

    async fn fetch_all(&self, plan: Vec<ChunkSpec>, window: &ScanWindow) -> (Vec<ChunkOutcome>, Catalog) {
        let limit = Arc::new(Semaphore::new(self.options.concurrency.max(1)));
        let mut tasks = JoinSet::new();
        for (i, chunk) in plan.iter().enumerate() {
            let id = batch_id(&self.target, chunk, window);
            let (opts, chunk, options) = (self.opts.clone(), chunk.clone(), self.options.clone());
            let limit = Arc::clone(&limit);
            let span = tracing::info_span!("chunk", chunk = %chunk.label(), batch_id = %id);
            tasks.spawn(
                async move {
                    let _permit = limit.acquire_owned().await.expect("the semaphore is never closed");
                    (i, id, extract_chunk(&opts, &chunk, &options).await)
                }
                .instrument(span),
            );
        }
        let mut outcomes: Vec<Option<ChunkOutcome>> = vec![None; plan.len()];
        let mut parts = Vec::with_capacity(plan.len());
        while let Some(joined) = tasks.join_next().await {
            let (i, batch_id, result) = joined.expect("chunk tasks do not panic");
            let chunk = plan[i].clone();
            outcomes[i] = Some(match result {
                Ok((part, attempts)) => {
                    parts.push(part);
                    ChunkOutcome { batch_id, chunk, attempts, error: None }
                }
                Err((e, attempts)) => {
                    tracing::error!(error = %e, attempts, "chunk failed");
                    ChunkOutcome::failed(batch_id, chunk, attempts, &e, e.class() == ErrorClass::Transient)
                }
            });
        }
        let outcomes = outcomes.into_iter().map(|o| o.expect("every chunk reports")).collect();
        (outcomes, Catalog::merge_all(parts))
    }
}

/// Plans a scan of the server `opts` names, retrying transient failures: the
/// server, and the chunks to read. [`ChunkSpec::Cluster`] first, then every
/// database, those that exist and those the grant tables name (a grant on a
/// database not created yet is still a grant), in groups of
/// [`ScanOptions::databases_per_chunk`]. The scan of the CLI runs the chunks
/// itself; the AWS pipeline's fan-out sends one message per chunk.
pub async fn plan(opts: &Opts, options: &ScanOptions) -> Result<(Server, Vec<ChunkSpec>), ScanError> {
    let transient = |e: &ScanError| e.class() == ErrorClass::Transient;
    let read = || async {
        let (mut conn, server) = connect(opts, &options.timeouts).await?;
        begin_read_only(&mut conn).await?;
        const Q: &str = "listing databases";
        // names as they are (mysql.db's patterns are read whole by the accounts chunk)
        let sql = "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA \
             UNION SELECT Db FROM mysql.tables_priv \
             UNION SELECT Db FROM mysql.columns_priv UNION SELECT Db FROM mysql.procs_priv";
        let mut databases = Vec::new();
        for row in rows(&mut conn, Q, sql, &[]).await? {
            databases.push(crate::read::col::<String>(&row, 0, Q, "SCHEMA_NAME")?);
        }
        let _ = conn.query_drop("ROLLBACK").await;
        let _ = conn.disconnect().await;
        Ok::<_, ScanError>((server, databases))
    };
    let ((server, mut databases), _) =
        backoff::retry(&options.retry, "planning", transient, tokio::time::sleep, &mut || read())
            .await
            .map_err(|(e, _)| e)?;
    databases.sort();
    databases.dedup();
    let per_chunk = options
        .databases_per_chunk
        .unwrap_or_else(|| databases.len().div_ceil(options.concurrency.max(1)).min(MAX_SPREAD))
        .max(1);
    let mut chunks = vec![ChunkSpec::Cluster];
    chunks.extend(databases.chunks(per_chunk).map(|group| ChunkSpec::Schemas { schemas: group.to_vec() }));
    Ok((server, chunks))
}

/// Reads one chunk of the server `opts` names, on a connection of its own in
/// a read-only transaction, retrying transient failures; the catalog part and
/// the attempts made, or the last error and the attempts. Each chunk asks
/// what the scanning account may see, reads what it can and records what it
/// cannot ([`Catalog::unreadable`]).
pub async fn extract_chunk(
    opts: &Opts,
    chunk: &ChunkSpec,
    options: &ScanOptions,
) -> Result<(Catalog, u32), (ScanError, u32)> {
    let transient = |e: &ScanError| e.class() == ErrorClass::Transient;
    let what = format!("chunk {}", chunk.label());
    backoff::retry(&options.retry, &what, transient, tokio::time::sleep, &mut || {
        read_chunk(opts, chunk, &options.timeouts)
    })
    .await
}

async fn read_chunk(opts: &Opts, chunk: &ChunkSpec, timeouts: &Timeouts) -> Result<Catalog, ScanError> {
    let (mut conn, server) = connect(opts, timeouts).await?;
    begin_read_only(&mut conn).await?;
    let flavor = server.flavor;
    let held = match flavor {
        Flavor::Mariadb => mariadb::own_global_privileges(&mut conn).await?,
        Flavor::Mysql => mysql8::own_global_privileges(&mut conn).await?,
    };
    let reach = Reach::of(flavor, &held);
    let mut out = Catalog::default();
    match chunk {
        ChunkSpec::Cluster => {
            match flavor {
                Flavor::Mariadb => mariadb::accounts(&mut conn, &mut out).await?,
                Flavor::Mysql => mysql8::accounts(&mut conn, &mut out).await?,
            }
            proxies(&mut conn, &mut out).await?;
            database_privileges(&mut conn, &mut out).await?;
        }
        ChunkSpec::Schemas { schemas } => {
            out.databases = existing(&mut conn, schemas).await?;
            object_privileges(&mut conn, schemas, &mut out).await?;
            if reach.show_view {
                view_definers(&mut conn, schemas, &mut out).await?;
            }
            if reach.trigger {
                trigger_definers(&mut conn, schemas, &mut out).await?;
            }
            match flavor {
                Flavor::Mariadb => mariadb::stored(&mut conn, schemas, &mut out).await?,
                Flavor::Mysql => mysql8::stored(&mut conn, schemas, &mut out).await?,
            }
        }
        ChunkSpec::SchemaPart { .. } => {
            return Err(ScanError::Unsupported("a MySQL scan has no schema parts".into()));
        }
    }
    // every chunk says it (the same entries, merged into one): a scan whose
    // accounts chunk failed still says what its database chunks could not read
    out.unreadable.extend(reach.unreadable(flavor));
    let _ = conn.query_drop("ROLLBACK").await;
    let _ = conn.disconnect().await;
    Ok(out)
}

/// Which of `databases` exist.
async fn existing(
    conn: &mut mysql_async::Conn,
    databases: &[String],
) -> Result<std::collections::BTreeSet<String>, ScanError> {
    const Q: &str = "information_schema.SCHEMATA";
    let sql = format!(
        "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME {}",
        crate::read::placeholders(databases.len())
    );
    rows(conn, Q, &sql, databases).await?.iter().map(|r| crate::read::col(r, 0, Q, "SCHEMA_NAME")).collect()
}
