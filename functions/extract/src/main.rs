//! grantwarden-extract: reads one chunk of a target's catalog per message.
//!
//! Trigger: the chunk SQS queue, with ReportBatchItemFailures and a redrive
//! policy whose maxReceiveCount is above `GRANTWARDEN_CHUNK_MAX_RECEIVES`. Its
//! reserved concurrency caps the load on the databases.
//! Env: `GRANTWARDEN_CHUNK_QUEUE_URL`, `GRANTWARDEN_CHUNK_DLQ_URL` (both required),
//! `GRANTWARDEN_SCANS_TABLE`, `GRANTWARDEN_BUCKET`, `GRANTWARDEN_SECRET_PREFIX`,
//! `GRANTWARDEN_CHUNK_MAX_RECEIVES` (default 4), `RUST_LOG`.
//! IAM: dynamodb:GetItem/UpdateItem on the scans table; s3:PutObject on `snapshots/*`;
//! sqs:SendMessage on the DLQ (and the event source mapping's ReceiveMessage/DeleteMessage/
//! GetQueueAttributes on the chunk queue); secretsmanager:GetSecretValue on `<secret prefix>*`.
//! PostgreSQL: a login role that can read the system catalogs; every query runs in a
//! READ ONLY transaction, so a role without any write privilege is the right one.
//! MySQL and MariaDB (the secret's `engine`): the scanning account of
//! `grantwarden-mysql` (SELECT on `mysql.*`, SHOW DATABASES, SHOW VIEW, TRIGGER).
#![deny(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use grantwarden_aws::{Clients, SecretCache, Settings, SystemClock};
use grantwarden_core::backoff::RetryPolicy;
use grantwarden_extract::Extract;
use grantwarden_postgres::ScanOptions;
use lambda_runtime::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    grantwarden_aws::logging::init_json();
    let settings = Settings::from_env()?;
    // a few quick retries inside the invocation; SQS redelivery does the rest
    let options = ScanOptions {
        retry: RetryPolicy { max_attempts: 3, base: Duration::from_millis(200), cap: Duration::from_secs(2) },
        ..ScanOptions::default()
    };
    let clients = Clients::load().await;
    let secrets = SecretCache::new(&clients, Duration::from_secs(300));
    let extract = Extract::new(&clients, settings, secrets, options, Arc::new(SystemClock))?;
    lambda_runtime::run(service_fn(|event| extract.handle(event))).await
}
