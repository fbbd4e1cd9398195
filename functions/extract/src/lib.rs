//! Extract: one SQS message, one chunk, one batch in S3, one count on the scan record.
//!
//! Each message is handled on its own; the response lists only the messages
//! to try again (ReportBatchItemFailures), so one bad chunk never redelivers
//! the batch. Transient database or AWS errors are retried by SQS until the
//! message was received `GRANTWARDEN_CHUNK_MAX_RECEIVES` times; then, and at
//! once for permanent errors (permission denied, unknown database, a bad
//! message), the message is parked on the dead-letter queue with its reason
//! and the chunk is counted as failed, so the scan still ends, as incomplete.
//! Whoever settles the last chunk ends the scan. The target secret's `engine`
//! picks the reader: PostgreSQL's catalogs, or MySQL's and MariaDB's grant
//! tables (a batch then holds a catalog part).
#![deny(missing_docs)]

use std::sync::Arc;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use grantwarden_aws::settings::SettingsError;
use grantwarden_aws::{AwsError, ChunkQueue, Clients, Clock, DbEngine, DynamoStore, Objects, SecretCache, Settings};
use grantwarden_core::error::StoreError;
use grantwarden_core::pipeline::{Batch, ChunkTask, ScanLedger, Settled, Settlement};
use grantwarden_postgres::session::config_from_parts;
use grantwarden_postgres::{ErrorClass, ScanOptions, extract_one};
use lambda_runtime::LambdaEvent;
use tracing::Instrument;

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Extracted and counted.
    Extracted,
    /// Already counted (a redelivery).
    Duplicate,
    /// Failed for good: dead-lettered and counted as failed.
    DeadLettered(String),
    /// Not parseable as a chunk task: dead-lettered, no scan to count it on.
    Unreadable(String),
}

/// Why a message must be tried again.
#[derive(Debug, thiserror::Error)]
enum Retry {
    #[error("{0}")]
    Aws(#[from] AwsError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0} (receive {1}; will retry)")]
    Database(String, u32),
}

/// The handler's state, built once per container: generic over the scan ledger
/// (DynamoDB in the Lambda; any ledger of the core port in tests).
#[derive(Clone)]
pub struct Extract<S = DynamoStore> {
    store: S,
    objects: Objects,
    queue: ChunkQueue,
    secrets: SecretCache,
    settings: Arc<Settings>,
    options: ScanOptions,
    mysql: grantwarden_mysql::ScanOptions,
    clock: Arc<dyn Clock>,
}

impl Extract<DynamoStore> {
    /// Checks the settings this function needs.
    pub fn new(
        clients: &Clients,
        settings: Settings,
        secrets: SecretCache,
        options: ScanOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, SettingsError> {
        let queue_url = Settings::require(&settings.chunk_queue_url, "GRANTWARDEN_CHUNK_QUEUE_URL")?;
        let dlq_url = Settings::require(&settings.chunk_dlq_url, "GRANTWARDEN_CHUNK_DLQ_URL")?;
        Ok(Self {
            store: DynamoStore::new(clients, &settings),
            objects: Objects::new(clients, &settings),
            queue: ChunkQueue::new(&clients.sqs, queue_url, Some(dlq_url)),
            secrets,
            mysql: grantwarden_mysql::ScanOptions::with_limits(options.timeouts, options.retry, options.concurrency),
            options,
            clock,
            settings: Arc::new(settings),
        })
    }
}

impl<S> Extract<S>
where
    S: ScanLedger + Send + Sync,
{
    /// The same handler over another store (the SQLite one, or one in memory, in tests).
    pub fn with_store<T>(self, store: T) -> Extract<T> {
        Extract {
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

    /// Handles a batch; the response names the messages to redeliver.
    pub async fn handle(&self, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, std::convert::Infallible> {
        let mut response = SqsBatchResponse::default();
        for message in &event.payload.records {
            let id = message.message_id.clone().unwrap_or_default();
            let span = tracing::info_span!("extract", message_id = %id, request_id = %event.context.request_id);
            match self.message(message).instrument(span.clone()).await {
                Ok(handled) => span.in_scope(|| tracing::info!(?handled, "message handled")),
                Err(e) => {
                    span.in_scope(|| tracing::warn!(error = %e, "message will be redelivered"));
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = id;
                    response.batch_item_failures.push(failure);
                }
            }
        }
        Ok(response)
    }

    async fn message(&self, message: &SqsMessage) -> Result<Handled, Retry> {
        let body = message.body.as_deref().unwrap_or_default();
        let task: ChunkTask = match serde_json::from_str(body) {
            Ok(t) => t,
            Err(e) => {
                let why = format!("not a chunk task: {e}");
                tracing::error!(reason = %why, "dead-lettering an unreadable message");
                self.queue.dead_letter(body, &why).await?;
                return Ok(Handled::Unreadable(why));
            }
        };
        let receives: u32 = message.attributes.get("ApproximateReceiveCount").and_then(|n| n.parse().ok()).unwrap_or(1);
        let span = tracing::info_span!("chunk", target = %task.target, scan_id = %task.scan_id, batch_id = %task.batch_id, chunk = %task.chunk.label());
        self.chunk(&task, body, receives).instrument(span).await
    }

    async fn chunk(&self, task: &ChunkTask, body: &str, receives: u32) -> Result<Handled, Retry> {
        let last_chance = receives >= self.settings.chunk_max_receives;
        let secret_id = self.settings.target_secret_id(&task.target);
        let secret = match self.secrets.rds(&secret_id).await {
            Ok(s) => s,
            Err(e) if e.is_retryable() && !last_chance => return Err(e.into()),
            Err(e) => return self.give_up(task, body, &format!("target secret {secret_id}: {e}")).await,
        };
        let read = match secret.engine() {
            DbEngine::Postgres => {
                let config = config_from_parts(
                    &secret.host,
                    secret.port,
                    &secret.username,
                    &secret.password,
                    &secret.dbname,
                    &self.options.timeouts,
                );
                let oids = task.oids;
                match extract_one(Arc::new(config), task.chunk.clone(), oids, task.server_version_num, &self.options)
                    .await
                {
                    Ok((state, attempts)) => Ok(Batch::postgres(task.clone(), attempts, state)),
                    Err((e, attempts)) => Err((e.to_string(), e.class() == ErrorClass::Transient, attempts)),
                }
            }
            DbEngine::Mysql => {
                let opts = grantwarden_mysql::session::opts_from_parts(
                    &secret.host,
                    secret.port,
                    &secret.username,
                    &secret.password,
                    None,
                );
                match grantwarden_mysql::scan::extract_chunk(&opts, &task.chunk, &self.mysql).await {
                    Ok((catalog, attempts)) => Ok(Batch::mysql(task.clone(), attempts, catalog)),
                    Err((e, attempts)) => {
                        Err((e.to_string(), e.class() == grantwarden_mysql::ErrorClass::Transient, attempts))
                    }
                }
            }
        };
        match read {
            Ok(batch) => {
                self.objects.put_batch(&batch).await?;
                let settled = self.store.chunk_settled(&task.scan_id, &task.batch_id, &Settlement::Done).await?;
                self.end_if_last(task, &settled).await?;
                Ok(if settled == Settled::AlreadyCounted { Handled::Duplicate } else { Handled::Extracted })
            }
            Err((e, true, attempts)) if !last_chance => {
                Err(Retry::Database(format!("{e} ({attempts} attempts)"), receives))
            }
            Err((e, transient, attempts)) => {
                let how = if transient { "gave up" } else { "not retried" };
                let why = format!("{}: {e} ({how} after {attempts} attempts, receive {receives})", task.chunk.label());
                self.give_up(task, body, &why).await
            }
        }
    }

    /// Parks the message and counts the chunk as failed.
    async fn give_up(&self, task: &ChunkTask, body: &str, why: &str) -> Result<Handled, Retry> {
        tracing::error!(reason = %why, "chunk failed for good; dead-lettering it");
        self.queue.dead_letter(body, why).await?;
        let settled =
            self.store.chunk_settled(&task.scan_id, &task.batch_id, &Settlement::Failed(why.to_owned())).await?;
        self.end_if_last(task, &settled).await?;
        Ok(Handled::DeadLettered(why.to_owned()))
    }

    /// Ends the scan when every chunk settled. A redelivery re-checks, so a
    /// crash between counting and ending does not leave the scan running.
    async fn end_if_last(&self, task: &ChunkTask, settled: &Settled) -> Result<(), Retry> {
        let record = match settled {
            Settled::Counted(r) => Some(r.clone()),
            Settled::AlreadyCounted => self.store.scan(&task.scan_id).await?,
        };
        if let Some(status) = record.and_then(|r| r.settled())
            && self.store.finish_scan(&task.scan_id, status, self.clock.now()).await?
        {
            tracing::info!(%status, "last chunk settled; scan ended");
        }
        Ok(())
    }
}
