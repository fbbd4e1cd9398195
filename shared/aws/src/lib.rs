//! grantwarden-aws: the AWS adapters of grantwarden's ports.
//!
//! DynamoDB keeps tickets, findings, the audit journal and scan records
//! behind the traits of `grantwarden_core` ([`DynamoStore`]); S3 keeps scan
//! manifests, snapshot batches, reports and configuration ([`Objects`]); SQS
//! carries extraction chunks ([`ChunkQueue`]); Secrets Manager holds target
//! credentials and the webhook key ([`SecretCache`]); SNS carries alerts
//! ([`Alerts`]); an Object-Lock bucket archives the journal ([`Archive`]);
//! query events are JSON lines in the data bucket ([`S3Queries`], joined with
//! the DynamoDB store as [`QueryPipeline`]). Every client comes from `aws-config` defaults, so
//! `AWS_ENDPOINT_URL` and `AWS_REGION` point them anywhere (moto in tests),
//! and retries are the SDK's own standard retry mode.
//!
//! This crate holds no business rule: what to store and when is decided in
//! core. It must never log a secret.
//!
//! # Layout
//! - [`settings`]: resource names from the environment.
//! - [`tickets`], [`findings`], [`journal`], [`scans`], [`incidents`]: the DynamoDB tables.
//! - [`replay`]: the signed requests already accepted (each once), with a TTL.
//! - [`leases`]: an active ticket's lease item (TTL) and one-time revoke schedule.
//! - [`objects`]: the S3 bucket layout.
//! - [`queries`]: query events as partitioned JSON lines in the bucket (Athena).
//! - [`archive`]: the Object-Lock archive of the audit journal.
//! - [`queue`]: chunk messages and their dead-letter queue.
//! - [`secrets`]: Secrets Manager with a TTL cache; the RDS-style target secret.
//! - [`alerts`]: alerts published on SNS.
//! - [`provision`]: creating the resources (tests and local development; production uses infra/).
//! - [`logging`]: JSON logs for Lambdas.
#![deny(missing_docs)]

pub mod alerts;
pub mod archive;
pub mod findings;
pub mod incidents;
pub mod journal;
pub mod leases;
pub mod logging;
pub mod notices;
pub mod objects;
pub mod provision;
pub mod queries;
pub mod queue;
pub mod replay;
pub mod scans;
pub mod secrets;
pub mod settings;
pub mod tickets;

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use grantwarden_core::error::StoreError;

pub use alerts::Alerts;
pub use archive::Archive;
pub use leases::Timers;
pub use objects::Objects;
pub use queries::{QueryPipeline, S3Queries};
pub use queue::ChunkQueue;
pub use secrets::{AccessSecrets, DbEngine, RdsSecret, SecretCache};
pub use settings::Settings;

/// Every client grantwarden uses, built once per process (per Lambda container).
#[derive(Clone, Debug)]
pub struct Clients {
    /// DynamoDB.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// S3 (path-style addressing, which every S3-compatible endpoint accepts).
    pub s3: aws_sdk_s3::Client,
    /// SQS.
    pub sqs: aws_sdk_sqs::Client,
    /// Secrets Manager.
    pub secrets: aws_sdk_secretsmanager::Client,
    /// SNS.
    pub sns: aws_sdk_sns::Client,
    /// EventBridge Scheduler.
    pub scheduler: aws_sdk_scheduler::Client,
}

impl Clients {
    /// Clients from the environment (`AWS_REGION`, `AWS_ENDPOINT_URL`,
    /// credentials chain), with the SDK's standard retry mode.
    pub async fn load() -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(5).with_initial_backoff(Duration::from_millis(50)))
            .load()
            .await;
        Self::new(&config)
    }

    /// Clients for an emulator such as moto at `endpoint`: region us-east-1 and
    /// fixed dummy credentials, nothing read from the environment.
    pub async fn for_endpoint(endpoint: &str) -> Self {
        let credentials = aws_sdk_dynamodb::config::Credentials::new("testing", "testing", None, None, "emulator");
        let config = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(credentials)
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .load()
            .await;
        Self::new(&config)
    }

    /// Clients from an explicit SDK configuration.
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        let s3 = aws_sdk_s3::config::Builder::from(config).force_path_style(true).build();
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            s3: aws_sdk_s3::Client::from_conf(s3),
            sqs: aws_sdk_sqs::Client::new(config),
            secrets: aws_sdk_secretsmanager::Client::new(config),
            sns: aws_sdk_sns::Client::new(config),
            scheduler: aws_sdk_scheduler::Client::new(config),
        }
    }
}

/// Where a handler reads the time, so tests control signature windows and expiry.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> chrono::DateTime<chrono::Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now()
    }
}

/// Any function of no arguments is a clock (a fixed time in tests).
impl<F: Fn() -> chrono::DateTime<chrono::Utc> + Send + Sync> Clock for F {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self()
    }
}

/// An AWS call or its payload failed.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// The service refused or could not be reached (after the SDK's retries).
    #[error("{op}: {message}")]
    Service {
        /// What was being done, e.g. `GetObject s3://b/k`.
        op: String,
        /// The service's code and message, or the transport error.
        message: String,
        /// Whether trying again later may work (throttling, 5xx, transport).
        retryable: bool,
    },
    /// A stored object or item does not decode.
    #[error("{what}: {reason}")]
    Decode {
        /// Which object or item.
        what: String,
        /// Why.
        reason: String,
    },
    /// Something that must exist does not.
    #[error("{0} does not exist")]
    Missing(String),
}

impl AwsError {
    /// Wraps an SDK error, keeping its code, message and whether to retry.
    pub fn sdk<E, R>(op: impl Into<String>, e: aws_smithy_runtime_api::client::result::SdkError<E, R>) -> Self
    where
        E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        use aws_smithy_runtime_api::client::result::SdkError;
        let retryable = match &e {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
            SdkError::ServiceError(s) => {
                matches!(
                    s.err().code(),
                    Some(
                        "ThrottlingException"
                            | "ProvisionedThroughputExceededException"
                            | "RequestLimitExceeded"
                            | "InternalServerError"
                            | "ServiceUnavailable"
                            | "SlowDown"
                            | "InternalFailure"
                    )
                )
            }
            _ => false,
        };
        Self::Service { op: op.into(), message: DisplayErrorContext(&e).to_string(), retryable }
    }

    /// Whether trying again later may work.
    pub fn is_retryable(&self) -> bool {
        matches!(self, AwsError::Service { retryable: true, .. })
    }
}

impl From<AwsError> for StoreError {
    fn from(e: AwsError) -> Self {
        match e {
            AwsError::Decode { what, reason } => StoreError::Corrupt { id: what, reason },
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

/// The DynamoDB implementation of the store ports: tickets, findings, the
/// audit journal, scan records, incidents and replay records, one table each
/// (names in [`Settings`]).
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: aws_sdk_dynamodb::Client,
    tickets_table: String,
    findings_table: String,
    journal_table: String,
    scans_table: String,
    incidents_table: String,
    replay_table: String,
    journal_from_stream: bool,
}

impl DynamoStore {
    /// The store over the tables named in `settings`.
    pub fn new(clients: &Clients, settings: &Settings) -> Self {
        Self {
            client: clients.dynamodb.clone(),
            tickets_table: settings.tickets_table.clone(),
            findings_table: settings.findings_table.clone(),
            journal_table: settings.journal_table.clone(),
            scans_table: settings.scans_table.clone(),
            incidents_table: settings.incidents_table.clone(),
            replay_table: settings.replay_table.clone(),
            journal_from_stream: settings.journal_from_stream,
        }
    }
}

/// The `main` of a Lambda served through `lambda_runtime`, the start every
/// such function shares: JSON logs, the settings from the environment, the AWS
/// clients; then the handler `$build` makes from them (it may use `?` and
/// `.await`), whose method `$serve` takes each event. The calling crate
/// depends on `tokio` and `lambda_runtime`.
///
/// ```ignore
/// grantwarden_aws::lambda_main!(|clients, settings| Diff::new(&clients, &settings, clock)?, handle);
/// ```
#[macro_export]
macro_rules! lambda_main {
    (|$clients:ident, $settings:ident| $build:expr, $serve:ident) => {
        #[tokio::main]
        async fn main() -> Result<(), ::lambda_runtime::Error> {
            $crate::logging::init_json();
            let $settings = $crate::Settings::from_env()?;
            let $clients = $crate::Clients::load().await;
            let handler = $build;
            ::lambda_runtime::run(::lambda_runtime::service_fn(|event| handler.$serve(event))).await
        }
    };
}

/// Items in and out of DynamoDB through serde_dynamo.
pub(crate) mod item {
    use std::collections::HashMap;

    use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
    use aws_sdk_dynamodb::operation::scan::builders::ScanFluentBuilder;
    use aws_sdk_dynamodb::types::AttributeValue;
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use crate::AwsError;

    /// A DynamoDB item.
    pub type Item = HashMap<String, AttributeValue>;

    /// Every item `query` finds, all its pages read; `op` names the call in the error.
    pub async fn query_all(query: QueryFluentBuilder, op: String) -> Result<Vec<Item>, AwsError> {
        query.into_paginator().items().send().try_collect().await.map_err(|e| AwsError::sdk(op, e))
    }

    /// Every item `scan` finds, all its pages read; `op` names the call in the error.
    pub async fn scan_all(scan: ScanFluentBuilder, op: String) -> Result<Vec<Item>, AwsError> {
        scan.into_paginator().items().send().try_collect().await.map_err(|e| AwsError::sdk(op, e))
    }

    /// A value as an item.
    pub fn to<T: Serialize>(what: &str, value: &T) -> Result<Item, AwsError> {
        serde_dynamo::aws_sdk_dynamodb_1::to_item(value)
            .map_err(|e| AwsError::Decode { what: what.to_owned(), reason: e.to_string() })
    }

    /// An item as a value.
    pub fn from<T: DeserializeOwned>(what: &str, item: Item) -> Result<T, AwsError> {
        serde_dynamo::aws_sdk_dynamodb_1::from_item(item)
            .map_err(|e| AwsError::Decode { what: what.to_owned(), reason: e.to_string() })
    }

    /// A value as one attribute.
    pub fn attr<T: Serialize>(what: &str, value: &T) -> Result<AttributeValue, AwsError> {
        serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value(value)
            .map_err(|e| AwsError::Decode { what: what.to_owned(), reason: e.to_string() })
    }

    /// A string attribute.
    pub fn s(v: impl Into<String>) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    /// A number attribute.
    pub fn n(v: impl ToString) -> AttributeValue {
        AttributeValue::N(v.to_string())
    }
}

/// Whether an SDK error is a failed condition check.
pub(crate) fn is_condition_failure<E: ProvideErrorMetadata, R>(
    e: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> bool {
    e.as_service_error().and_then(|s| s.code()) == Some("ConditionalCheckFailedException")
}
