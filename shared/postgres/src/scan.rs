//! A whole scan: plan the chunks, fetch them concurrently, merge.
//!
//! A coordinator connection opens the read-only transaction, exports its
//! snapshot and plans the chunks; every chunk then runs on its own connection
//! (at most `concurrency` at once) in a transaction that imports that
//! snapshot, so all chunks read one consistent state. A chunk that fails
//! transiently is retried with full-jitter backoff; one that fails for good
//! is recorded, and the snapshot is then marked incomplete.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_postgres::{Client, Config};
use tracing::Instrument;

use crate::chunks::{ChunkSize, OidRange, plan_chunks_with_oids};
use crate::error::{ErrorClass, ExtractError};
use crate::extract::fetch_chunk;
use crate::session::{Timeouts, begin_read_only, connect, parse_config, target_from_config};
use grantwarden_core::backoff::{self, RetryPolicy};
use grantwarden_core::snapshot::{ChunkOutcome, ChunkSpec, ScanWindow, Snapshot, State, TargetId, batch_id, scan_id};

/// How a scan runs.
#[derive(Clone, Debug)]
pub struct ScanOptions {
    /// Target id; `None` derives `host:port/dbname` from the connection string.
    pub target: Option<TargetId>,
    /// Chunks fetched at once (each on its own connection).
    pub concurrency: usize,
    /// How many relations a chunk holds at most; larger schemas are split by name.
    pub chunk_size: ChunkSize,
    /// Statement, lock and connect timeouts.
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
            chunk_size: ChunkSize::Max(2_000),
            timeouts: Timeouts::default(),
            retry: RetryPolicy::default(),
            window_seconds: 60,
        }
    }
}

/// Told about a scan's progress (the CLI draws a progress bar with it).
pub trait Progress: Send + Sync {
    /// The chunks are planned.
    fn planned(&self, _chunks: usize) {}
    /// One chunk ended.
    fn chunk_done(&self, _chunk: &ChunkSpec, _ok: bool) {}
}

/// No progress reporting.
pub struct NoProgress;
impl Progress for NoProgress {}

/// Scans one database.
pub struct Scanner {
    config: Arc<Config>,
    options: ScanOptions,
    target: TargetId,
}

/// What the coordinator set up.
struct Plan {
    client: Client,
    snapshot_id: Option<String>,
    server_version: u32,
    /// Each chunk and where its relations are in the planner's snapshot.
    chunks: Vec<(ChunkSpec, Option<OidRange>)>,
}

impl Scanner {
    /// Validates the connection string; connects nothing yet.
    pub fn new(url: &str, options: ScanOptions) -> Result<Self, ExtractError> {
        let config = parse_config(url, &options.timeouts)?;
        let target = options.target.clone().unwrap_or_else(|| target_from_config(&config));
        Ok(Self { config: Arc::new(config), options, target })
    }

    /// The target id.
    pub fn target(&self) -> &TargetId {
        &self.target
    }

    /// Runs a scan that started at `now`. Fails only when the catalog cannot be
    /// planned at all; chunk failures give an incomplete snapshot instead.
    pub async fn scan(&self, now: DateTime<Utc>, progress: &dyn Progress) -> Result<Snapshot, ExtractError> {
        let mut snapshot = self.scan_unsealed(now, progress).await?;
        snapshot.seal();
        tracing::info!(target = %snapshot.target, scan_id = %snapshot.scan_id, sha256 = %snapshot.sha256, "snapshot sealed");
        Ok(snapshot)
    }

    /// [`Scanner::scan`] without the snapshot's sha256 (empty): hashing the
    /// canonical JSON of millions of grants takes seconds, which a caller can
    /// spend on another thread while it uses the snapshot
    /// ([`Snapshot::seal`] or [`State::sha256`] then).
    pub async fn scan_unsealed(&self, now: DateTime<Utc>, progress: &dyn Progress) -> Result<Snapshot, ExtractError> {
        let window = ScanWindow::containing(now, self.options.window_seconds);
        let scan = scan_id(&self.target, &window);
        let span = tracing::info_span!("scan", target = %self.target, scan_id = %scan);
        async {
            let (plan, _) = retry(&self.options.retry, "planning", &mut || self.plan()).await.map_err(|(e, _)| e)?;
            progress.planned(plan.chunks.len());
            tracing::info!(chunks = plan.chunks.len(), shared_snapshot = plan.snapshot_id.is_some(), "planned");
            let (outcomes, state, consistent) = self.fetch_all(&plan, &window, progress).await;
            // The coordinator's transaction kept the exported snapshot alive; it changed nothing.
            let _ = plan.client.batch_execute("ROLLBACK").await;
            let complete = outcomes.iter().all(|o| o.error.is_none());
            tracing::info!(complete, grants = state.grants.len(), "scan finished");
            Ok(Snapshot {
                target: self.target.clone(),
                scan_id: scan.clone(),
                taken_at: now,
                server_version_num: plan.server_version,
                complete,
                consistent: consistent && plan.snapshot_id.is_some(),
                chunks: outcomes,
                sha256: String::new(),
                state,
            })
        }
        .instrument(span)
        .await
    }

    async fn plan(&self) -> Result<Plan, ExtractError> {
        let client = connect(&self.config).await.map_err(ExtractError::db("connecting"))?;
        begin_read_only(&client, &self.options.timeouts, None).await?;
        let snapshot_id = match client.query_one("SELECT pg_catalog.pg_export_snapshot()", &[]).await {
            Ok(row) => row.try_get::<_, String>(0).ok(),
            Err(e) => {
                // e.g. a standby that cannot export: chunks then read their own snapshots
                tracing::warn!(error = %e, "cannot export a snapshot; chunks will not share one");
                client.batch_execute("ROLLBACK").await.map_err(ExtractError::db("rolling back"))?;
                begin_read_only(&client, &self.options.timeouts, None).await?;
                None
            }
        };
        let server_version = server_version(&client).await?;
        // the oid ranges hold in this snapshot: a chunk uses them only while it reads it (ChunkJob::run)
        let chunks = plan_chunks_with_oids(&client, self.options.chunk_size).await?;
        Ok(Plan { client, snapshot_id, server_version, chunks })
    }

    async fn fetch_all(
        &self,
        plan: &Plan,
        window: &ScanWindow,
        progress: &dyn Progress,
    ) -> (Vec<ChunkOutcome>, State, bool) {
        let limit = Arc::new(Semaphore::new(self.options.concurrency.max(1)));
        // at most `concurrency` connections, each reused chunk after chunk
        let idle = Arc::new(Idle::default());
        let mut tasks = JoinSet::new();
        for (i, (chunk, oids)) in plan.chunks.iter().enumerate() {
            let id = batch_id(&self.target, chunk, window);
            let job = ChunkJob {
                config: Arc::clone(&self.config),
                chunk: chunk.clone(),
                oids: *oids,
                snapshot_id: plan.snapshot_id.clone(),
                server_version: plan.server_version,
                timeouts: self.options.timeouts,
                retry: self.options.retry,
                idle: Some(Arc::clone(&idle)),
            };
            let limit = Arc::clone(&limit);
            let span = tracing::info_span!("chunk", chunk = %chunk.label(), batch_id = %id);
            tasks.spawn(
                async move {
                    let _permit = limit.acquire_owned().await.expect("the semaphore is never closed");
                    (i, id, job.run().await)
                }
                .instrument(span),
            );
        }
        let mut outcomes: Vec<Option<ChunkOutcome>> = vec![None; plan.chunks.len()];
        let mut batches = Vec::with_capacity(plan.chunks.len());
        let mut consistent = true;
        while let Some(joined) = tasks.join_next().await {
            let (i, batch_id, result) = joined.expect("chunk tasks do not panic");
            let chunk = plan.chunks[i].0.clone();
            let outcome = match result {
                Ok((batch, attempts, shared)) => {
                    consistent &= shared;
                    batches.push(batch);
                    progress.chunk_done(&chunk, true);
                    ChunkOutcome { batch_id, chunk, attempts, error: None }
                }
                Err((e, attempts)) => {
                    tracing::error!(error = %e, attempts, "chunk failed");
                    progress.chunk_done(&chunk, false);
                    ChunkOutcome::failed(batch_id, chunk, attempts, &e, e.class() == ErrorClass::Transient)
                }
            };
            outcomes[i] = Some(outcome);
        }
        let state = State::merge_all(batches);
        (outcomes.into_iter().map(|o| o.expect("every chunk reports")).collect(), state, consistent)
    }
}

/// `server_version_num` of the connected server, e.g. 150019.
async fn server_version(client: &Client) -> Result<u32, ExtractError> {
    let version: String = client
        .query_one("SELECT pg_catalog.current_setting('server_version_num')", &[])
        .await
        .and_then(|r| r.try_get(0))
        .map_err(ExtractError::db("reading server_version_num"))?;
    version.parse().map_err(|_| ExtractError::Row {
        query: "server_version_num",
        field: "server_version_num",
        message: format!("not a number: {version:?}"),
    })
}

/// Plans the chunks of a scan and reads the server version, in a short
/// read-only transaction and without exporting a snapshot: what a fan-out
/// that hands the chunks to other processes needs. Each chunk comes with
/// where its relations are ([`OidRange`], with `newer_than` set: the chunks
/// are read later, each in a snapshot of its own).
pub async fn plan_only(
    config: &Config,
    options: &ScanOptions,
) -> Result<(u32, Vec<(ChunkSpec, Option<OidRange>)>), ExtractError> {
    let mut op = || async {
        let client = connect(config).await.map_err(ExtractError::db("connecting"))?;
        begin_read_only(&client, &options.timeouts, None).await?;
        let version = server_version(&client).await?;
        let newest: Option<u32> = client
            .query_one("SELECT pg_catalog.max(oid) FROM pg_catalog.pg_class", &[])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(ExtractError::db("reading the highest oid in pg_class"))?;
        let chunks = plan_chunks_with_oids(&client, options.chunk_size)
            .await?
            .into_iter()
            .map(|(chunk, oids)| (chunk, oids.map(|r| OidRange { newer_than: newest, ..r })))
            .collect();
        client.batch_execute("ROLLBACK").await.map_err(ExtractError::db("ending the read-only transaction"))?;
        Ok((version, chunks))
    };
    retry(&options.retry, "planning", &mut op).await.map(|(v, _)| v).map_err(|(e, _)| e)
}

/// Extracts one chunk in its own read-only transaction (no shared snapshot),
/// retrying transient failures; returns the batch and the attempts made, or
/// the last error and the attempts made. `oids` is where [`plan_only`] found
/// its relations (used only with its `newer_than`: this is a later snapshot).
pub async fn extract_one(
    config: Arc<Config>,
    chunk: ChunkSpec,
    oids: Option<OidRange>,
    server_version: u32,
    options: &ScanOptions,
) -> Result<(State, u32), (ExtractError, u32)> {
    let job = ChunkJob {
        config,
        chunk,
        oids,
        snapshot_id: None,
        server_version,
        timeouts: options.timeouts,
        retry: options.retry,
        idle: None,
    };
    job.run().await.map(|(state, attempts, _)| (state, attempts))
}

/// Runs `op` until it succeeds, fails permanently, or runs out of attempts;
/// returns the value or the last error, with the attempts made.
async fn retry<T, F, Fut>(policy: &RetryPolicy, what: &str, op: &mut F) -> Result<(T, u32), (ExtractError, u32)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ExtractError>>,
{
    backoff::retry(policy, what, |e: &ExtractError| e.class() == ErrorClass::Transient, tokio::time::sleep, op).await
}

/// Connections whose chunk ended well, for the next chunk: a new connection
/// costs the server a process and cold catalog caches, per chunk.
#[derive(Default)]
struct Idle(std::sync::Mutex<Vec<Client>>);

impl Idle {
    fn take(&self) -> Option<Client> {
        self.0.lock().expect("the idle list is never poisoned").pop()
    }

    fn put(&self, client: Client) {
        self.0.lock().expect("the idle list is never poisoned").push(client);
    }
}

/// Everything one chunk needs, owned, so it can run on its own task.
struct ChunkJob {
    config: Arc<Config>,
    chunk: ChunkSpec,
    /// Where its relations are in the shared snapshot (used only while reading it).
    oids: Option<OidRange>,
    snapshot_id: Option<String>,
    server_version: u32,
    timeouts: Timeouts,
    retry: RetryPolicy,
    /// Where to find a connection to reuse and leave it after (none: a connection of its own).
    idle: Option<Arc<Idle>>,
}

impl ChunkJob {
    /// Returns the batch, the attempts made and whether it read the shared snapshot.
    async fn run(self) -> Result<(State, u32, bool), (ExtractError, u32)> {
        let shared = std::sync::atomic::AtomicBool::new(self.snapshot_id.is_some());
        let mut op = || async {
            // a connection that failed is dropped, never reused
            let client = match self.idle.as_ref().and_then(|idle| idle.take()) {
                Some(client) if !client.is_closed() => client,
                _ => connect(&self.config).await.map_err(ExtractError::db("connecting"))?,
            };
            let snapshot =
                if shared.load(std::sync::atomic::Ordering::Relaxed) { self.snapshot_id.as_deref() } else { None };
            if let Err(e) = begin_read_only(&client, &self.timeouts, snapshot).await {
                if snapshot.is_some() && !client.is_closed() {
                    // The exporting transaction is gone (its connection dropped): read our own snapshot.
                    tracing::warn!(error = %e, "cannot import the shared snapshot; reading a fresh one");
                    shared.store(false, std::sync::atomic::Ordering::Relaxed);
                    let _ = client.batch_execute("ROLLBACK").await;
                    begin_read_only(&client, &self.timeouts, None).await?;
                } else {
                    return Err(e);
                }
            }
            // a range without `newer_than` holds in the planner's snapshot only
            let in_plan = shared.load(std::sync::atomic::Ordering::Relaxed);
            let oids = self.oids.filter(|r| in_plan || r.newer_than.is_some());
            let state = fetch_chunk(&client, &self.chunk, self.server_version, oids).await?;
            client.batch_execute("COMMIT").await.map_err(ExtractError::db("ending the read-only transaction"))?;
            if let Some(idle) = &self.idle {
                idle.put(client);
            }
            Ok(state)
        };
        let what = format!("chunk {}", self.chunk.label());
        let (state, attempts) = retry(&self.retry, &what, &mut op).await?;
        Ok((state, attempts, shared.load(std::sync::atomic::Ordering::Relaxed)))
    }
}
