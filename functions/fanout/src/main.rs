//! grantwarden-fanout: the scheduled start of every scan.
//!
//! Trigger: an EventBridge schedule (e.g. `rate(1 hour)`).
//! Env: `GRANTWARDEN_TARGETS` or `GRANTWARDEN_TARGETS_KEY`, `GRANTWARDEN_CHUNK_QUEUE_URL` (required),
//! `GRANTWARDEN_SCANS_TABLE`, `GRANTWARDEN_JOURNAL_TABLE`, `GRANTWARDEN_BUCKET`,
//! `GRANTWARDEN_SECRET_PREFIX`, `GRANTWARDEN_SCAN_WINDOW_SECONDS` (match the schedule rate),
//! `GRANTWARDEN_MAX_RELATIONS_PER_CHUNK` (default 2000), `RUST_LOG`.
//! IAM: dynamodb:GetItem/PutItem/UpdateItem on the scans table; dynamodb:Query/GetItem/PutItem/
//! UpdateItem on the journal table; s3:PutObject/GetObject on `snapshots/*` (and GetObject on
//! the targets key); sqs:SendMessage on the chunk queue; secretsmanager:GetSecretValue on
//! `<secret prefix>*`.
//! PostgreSQL: a login role that can read the system catalogs (any role can; no grants needed).
//! MySQL and MariaDB (the secret's `engine`): the scanning account of `grantwarden-mysql`;
//! planning lists `information_schema.SCHEMATA` and the databases the grant tables name.
#![deny(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use grantwarden_aws::{Clients, SecretCache, Settings, SystemClock};
use grantwarden_fanout::Fanout;
use grantwarden_postgres::{ChunkSize, ScanOptions};
use lambda_runtime::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    grantwarden_aws::logging::init_json();
    let settings = Settings::from_env()?;
    let mut options = ScanOptions::default();
    if let Ok(v) = std::env::var("GRANTWARDEN_MAX_RELATIONS_PER_CHUNK") {
        options.chunk_size = ChunkSize::Max(
            v.parse().map_err(|_| format!("GRANTWARDEN_MAX_RELATIONS_PER_CHUNK: {v:?} is not a number"))?,
        );
    }
    let clients = Clients::load().await;
    let secrets = SecretCache::new(&clients, Duration::from_secs(300));
    let fanout = Fanout::new(&clients, settings, secrets, options, Arc::new(SystemClock))?;
    lambda_runtime::run(service_fn(|event| fanout.handle(event))).await
}
