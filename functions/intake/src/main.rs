//! The intake Lambda: grant webhooks, generic access requests and approvals
//! into routed exception tickets (the handler is `grantwarden_intake::App`).
//!
//! Trigger: a Lambda Function URL (auth type NONE: every request is
//! authenticated by its `X-Grantwarden-Signature` HMAC) or an API Gateway
//! HTTP API with payload format 2.0 and the `$default` stage.
//!
//! Environment (see `grantwarden_aws::settings`; unset names take the
//! defaults of infra/):
//! - `GRANTWARDEN_TICKETS_TABLE`, `GRANTWARDEN_FINDINGS_TABLE`, `GRANTWARDEN_JOURNAL_TABLE`
//! - `GRANTWARDEN_WEBHOOK_SECRET_ID`: the secret holding the HMAC key (a plain
//!   string; surrounding whitespace is ignored)
//! - `GRANTWARDEN_BUCKET`, `GRANTWARDEN_POLICY_PREFIX`, `GRANTWARDEN_SCORING_KEY`
//! - `GRANTWARDEN_TARGETS` or `GRANTWARDEN_TARGETS_KEY`: the known targets
//!   (none: any target is accepted)
//! - `GRANTWARDEN_INCIDENTS_TABLE`: incident states (the incident webhook; break-glass)
//! - `GRANTWARDEN_LEASES_TABLE`, `GRANTWARDEN_SCHEDULE_GROUP`,
//!   `GRANTWARDEN_REVOKE_FUNCTION_ARN`, `GRANTWARDEN_SCHEDULER_ROLE_ARN`: the
//!   lease item and one-time revoke schedule armed when a ticket becomes active
//! - `RUST_LOG`, and the usual `AWS_REGION` / `AWS_ENDPOINT_URL`
//!
//! IAM actions:
//! - `dynamodb:PutItem`, `dynamodb:GetItem`, `dynamodb:UpdateItem`,
//!   `dynamodb:Query` on the tickets, findings and journal tables
//! - `secretsmanager:GetSecretValue` on the webhook secret
//! - `dynamodb:GetItem`, `dynamodb:PutItem` on the incidents table
//! - `dynamodb:PutItem` on the leases table; `scheduler:CreateSchedule` and `DeleteSchedule` in the
//!   revoke schedule group and `iam:PassRole` of the scheduler role
//! - `s3:ListBucket` on the bucket (policy prefix) and `s3:GetObject` on the
//!   policy registry, scoring and targets objects
//!
//! No PostgreSQL access: intake records decisions, revoke acts on them.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use grantwarden_aws::{Clients, DynamoStore, Objects, SecretCache, Settings};
use grantwarden_intake::{App, KeySource, KeyUnavailable};
use lambda_http::{Error, service_fn};

/// How long a fetched key is reused; a rotated key is picked up within this.
const KEY_TTL: Duration = Duration::from_secs(300);

/// The webhook key, from Secrets Manager through the cache.
struct SecretKey {
    secrets: SecretCache,
    id: String,
}

impl KeySource for SecretKey {
    async fn key(&self) -> Result<Vec<u8>, KeyUnavailable> {
        match self.secrets.string(&self.id).await {
            // a trailing newline from `--secret-string file://...` is not part of the key
            Ok(key) => Ok(key.trim().as_bytes().to_vec()),
            Err(e) => Err(KeyUnavailable(e.to_string())),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    grantwarden_aws::logging::init_json();
    let settings = Settings::from_env()?;
    let clients = Clients::load().await;
    let objects = Objects::new(&clients, &settings);

    // an unreadable key or scoring config is bad configuration: fail the cold start
    let key = SecretKey { secrets: SecretCache::new(&clients, KEY_TTL), id: settings.webhook_secret_id.clone() };
    key.key().await?;
    let scoring = objects.scoring().await?;
    let mut targets = settings.targets.clone();
    if let Some(list) = &settings.targets_key {
        targets.extend(objects.targets(list).await?);
    }
    // an unusable registry is not: requests are then recorded as untagged (fail secure)
    let registry = objects.policy_registry().await;
    if let Err(why) = &registry {
        tracing::error!(error = %why, "policy registry unusable; every request will be recorded as untagged");
    }

    let store = DynamoStore::new(&clients, &settings);
    // every ticket also records the registry version it was routed by: a
    // journal hiccup here is logged, not a reason to refuse all intake
    if let Ok(r) = &registry
        && let Err(e) =
            grantwarden_core::audit::note_registry(&store, r, "grantwarden-intake", chrono::Utc::now()).await
    {
        tracing::error!(error = %e, version = %r.id.version, "could not journal registry.loaded");
    }
    let timers = grantwarden_aws::Timers::new(&clients, &settings);
    let app =
        Arc::new(App::new(store, registry, key).with_known_targets(targets).with_scoring(scoring).with_timers(timers));
    lambda_http::run(service_fn(move |req| {
        let app = Arc::clone(&app);
        async move { Ok::<_, Infallible>(app.handle(req).await) }
    }))
    .await
}
