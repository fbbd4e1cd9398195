//! Fan-out: on each scheduled event, plan every target's scan and send one
//! SQS message per chunk. The target secret's `engine` picks the planner:
//! PostgreSQL's (`postgres`, `aurora-postgresql`), or MySQL's and MariaDB's
//! (`mysql`, `mariadb`, `aurora-mysql`: one chunk of accounts, then groups of
//! databases).
//!
//! Per target: the scan id comes from the target and the schedule window of
//! the event's time, so a retried or duplicated schedule finds its scan
//! record and sends nothing twice. The order is manifest (S3), record
//! (conditional put), messages, `dispatched` flag: a run that died between
//! the record and the flag is resumed by the next delivery of the same event
//! from the stored manifest. One target failing does not stop the others;
//! the invocation then fails so the schedule's retry covers it. Targets are
//! planned [`TARGETS_AT_ONCE`] at a time.
#![deny(missing_docs)]

use std::sync::Arc;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use futures::StreamExt;
use grantwarden_aws::settings::SettingsError;
use grantwarden_aws::{AwsError, ChunkQueue, Clients, Clock, DbEngine, DynamoStore, Objects, SecretCache, Settings};
use grantwarden_core::audit::AuditJournal;
use grantwarden_core::error::StoreError;
use grantwarden_core::pipeline::{ScanLedger, ScanManifest};
use grantwarden_core::snapshot::{ScanWindow, TargetId, scan_id};
use grantwarden_postgres::session::config_from_parts;
use grantwarden_postgres::{ExtractError, ScanOptions, plan_only};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Serialize;
use tracing::Instrument;

/// Targets planned at once: each waits mostly on its database and on S3,
/// DynamoDB and SQS round trips, so a window of hundreds of targets is
/// planned in a fraction of the time one after another takes, while each
/// database sees one short planning transaction.
pub const TARGETS_AT_ONCE: usize = 16;

/// Why a fan-out failed.
#[derive(Debug, thiserror::Error)]
pub enum FanoutError {
    /// No target is configured.
    #[error("no targets: set GRANTWARDEN_TARGETS or GRANTWARDEN_TARGETS_KEY")]
    NoTargets,
    /// Reading the target list failed.
    #[error("reading the target list: {0}")]
    Targets(AwsError),
    /// Some targets could not be fanned out (the others were).
    #[error("{failed} of {total} targets failed: {first}")]
    Partial {
        /// How many failed.
        failed: usize,
        /// Of how many.
        total: usize,
        /// The first failure.
        first: String,
    },
}

impl From<FanoutError> for Diagnostic {
    fn from(e: FanoutError) -> Self {
        let error_type = match e {
            FanoutError::NoTargets => "Validation",
            _ => "Retryable",
        };
        Diagnostic { error_type: error_type.into(), error_message: e.to_string() }
    }
}

/// One target's part of a fan-out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetOutcome {
    /// The target.
    pub target: TargetId,
    /// Its scan id in this window.
    pub scan_id: String,
    /// `dispatched`, `resumed`, `already dispatched` or `failed`.
    pub outcome: &'static str,
    /// Chunk messages sent by this invocation.
    pub chunks_sent: usize,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why one target failed.
#[derive(Debug, thiserror::Error)]
enum TargetError {
    #[error("target secret: {0}")]
    Secret(AwsError),
    #[error("planning the chunks: {0}")]
    Plan(ExtractError),
    #[error("planning the chunks of a MySQL or MariaDB server: {0}")]
    PlanMysql(grantwarden_mysql::ScanError),
    #[error("{0}")]
    Aws(#[from] AwsError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// The handler's state, built once per container: generic over the scan ledger
/// and journal (DynamoDB in the Lambda; any store of the core ports in tests).
#[derive(Clone)]
pub struct Fanout<S = DynamoStore> {
    store: S,
    objects: Objects,
    queue: ChunkQueue,
    secrets: SecretCache,
    settings: Arc<Settings>,
    options: ScanOptions,
    mysql: grantwarden_mysql::ScanOptions,
    clock: Arc<dyn Clock>,
}

impl Fanout<DynamoStore> {
    /// Checks the settings this function needs and builds its clients' users.
    pub fn new(
        clients: &Clients,
        settings: Settings,
        secrets: SecretCache,
        options: ScanOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, SettingsError> {
        let queue_url = Settings::require(&settings.chunk_queue_url, "GRANTWARDEN_CHUNK_QUEUE_URL")?;
        Ok(Self {
            store: DynamoStore::new(clients, &settings),
            objects: Objects::new(clients, &settings),
            queue: ChunkQueue::new(&clients.sqs, queue_url, settings.chunk_dlq_url.as_deref()),
            secrets,
            mysql: grantwarden_mysql::ScanOptions::with_limits(options.timeouts, options.retry, options.concurrency),
            options,
            clock,
            settings: Arc::new(settings),
        })
    }
}

impl<S> Fanout<S>
where
    S: ScanLedger + AuditJournal + Send + Sync,
{
    /// The same handler over another store (the SQLite one, or one in memory, in tests).
    pub fn with_store<T>(self, store: T) -> Fanout<T> {
        Fanout {
            store,
            objects: self.objects,
            queue: self.queue,
            secrets: self.secrets,
            settings: self.settings,
            options: self.options,
            mysql: self.mysql,
            clock: self.clock,
        }
    }

    /// Handles one scheduled event.
    pub async fn handle(
        &self,
        event: LambdaEvent<EventBridgeEvent<serde_json::Value>>,
    ) -> Result<Vec<TargetOutcome>, FanoutError> {
        let at = event.payload.time.unwrap_or_else(|| self.clock.now());
        let window = ScanWindow::containing(at, self.settings.scan_window_seconds);
        let targets = match &self.settings.targets_key {
            Some(key) if self.settings.targets.is_empty() => {
                self.objects.targets(key).await.map_err(FanoutError::Targets)?
            }
            _ => self.settings.targets.clone(),
        };
        if targets.is_empty() {
            return Err(FanoutError::NoTargets);
        }
        let request_id = &event.context.request_id;
        let outcomes: Vec<TargetOutcome> = futures::stream::iter(targets)
            .map(|target| async move {
                let id = scan_id(&target, &window);
                let span = tracing::info_span!("fanout", target = %target, scan_id = %id, request_id = %request_id);
                match self.fan_out(&target, &window, at).instrument(span.clone()).await {
                    Ok((outcome, chunks_sent)) => {
                        TargetOutcome { target, scan_id: id, outcome, chunks_sent, error: None }
                    }
                    Err(e) => {
                        span.in_scope(|| tracing::error!(error = %e, "fan-out failed"));
                        let error = Some(e.to_string());
                        TargetOutcome { target, scan_id: id, outcome: "failed", chunks_sent: 0, error }
                    }
                }
            })
            .buffered(TARGETS_AT_ONCE)
            .collect()
            .await;
        let failed: Vec<&TargetOutcome> = outcomes.iter().filter(|o| o.error.is_some()).collect();
        if let Some(first) = failed.first() {
            return Err(FanoutError::Partial {
                failed: failed.len(),
                total: outcomes.len(),
                first: format!("{}: {}", first.target, first.error.as_deref().unwrap_or_default()),
            });
        }
        Ok(outcomes)
    }

    async fn fan_out(
        &self,
        target: &TargetId,
        window: &ScanWindow,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(&'static str, usize), TargetError> {
        let id = scan_id(target, window);
        let (manifest, outcome) = match self.store.scan(&id).await? {
            Some(record) if record.dispatched => {
                tracing::info!("scan already dispatched; nothing to do");
                return Ok(("already dispatched", 0));
            }
            Some(_) => (self.objects.manifest(target, &id).await?, "resumed"),
            None => {
                let secret =
                    self.secrets.rds(&self.settings.target_secret_id(target)).await.map_err(TargetError::Secret)?;
                let manifest = match secret.engine() {
                    DbEngine::Postgres => {
                        let config = config_from_parts(
                            &secret.host,
                            secret.port,
                            &secret.username,
                            &secret.password,
                            &secret.dbname,
                            &self.options.timeouts,
                        );
                        let (version, chunks) = plan_only(&config, &self.options).await.map_err(TargetError::Plan)?;
                        ScanManifest::new(target.clone(), *window, at, version, chunks)
                    }
                    DbEngine::Mysql => {
                        let opts = grantwarden_mysql::session::opts_from_parts(
                            &secret.host,
                            secret.port,
                            &secret.username,
                            &secret.password,
                            None,
                        );
                        let (server, chunks) =
                            grantwarden_mysql::scan::plan(&opts, &self.mysql).await.map_err(TargetError::PlanMysql)?;
                        ScanManifest::of_mysql(target.clone(), *window, at, server, chunks)
                    }
                };
                self.objects.put_manifest(&manifest).await?;
                if self.store.start_scan(&manifest.record()).await? {
                    self.store.append(manifest.started_event(at)).await?;
                    (manifest, "dispatched")
                } else {
                    // a concurrent delivery of the same schedule got there first
                    return Ok(("already dispatched", 0));
                }
            }
        };
        self.queue.send(&manifest.tasks).await?;
        self.store.mark_dispatched(&id).await?;
        tracing::info!(chunks = manifest.tasks.len(), outcome, "chunks sent");
        Ok((outcome, manifest.tasks.len()))
    }
}
