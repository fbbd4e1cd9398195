//! The intake Lambda: grant webhooks, generic access requests and approvals
//! into routed exception tickets (the handler is `grantwarden_intake::App`).
//!
//! Trigger: a Lambda Function URL (auth type NONE: every request is
//! authenticated by a bearer token of the identity provider, by the HMAC of a
//! registry sender, or, an incident webhook, by its tool's own credential) or
//! an API Gateway HTTP API with payload format 2.0 and the `$default` stage.
//!
//! Environment (see `grantwarden_aws::settings`; unset names take the
//! defaults of infra/):
//! - `GRANTWARDEN_TICKETS_TABLE`, `GRANTWARDEN_FINDINGS_TABLE`, `GRANTWARDEN_JOURNAL_TABLE`
//! - `GRANTWARDEN_WEBHOOK_SECRET_ID`: the secret holding the HMAC key (a plain
//!   string; surrounding whitespace is ignored)
//! - `GRANTWARDEN_WEBHOOK_LEGACY_V1`: `true` also accepts body-only v1
//!   signatures on `/webhooks/grants` and `/requests` (a transition; default `false`)
//! - `GRANTWARDEN_REPLAY_TABLE`: the signed requests already served (each once)
//! - `GRANTWARDEN_OIDC_ISSUER`, `GRANTWARDEN_OIDC_CLIENT_ID`: the OpenID Connect
//!   issuer and client id of `Authorization: Bearer` tokens (unset: none is
//!   accepted); `GRANTWARDEN_OIDC_IDENTITY_CLAIM` (default `email`),
//!   `GRANTWARDEN_OIDC_GROUPS_CLAIM` (default `groups`). The function fetches
//!   the issuer's discovery document and keys over HTTPS (outbound internet, or
//!   a NAT, from its subnet).
//! - `GRANTWARDEN_PAGERDUTY_SECRET_ID`, `GRANTWARDEN_OPSGENIE_SECRET_ID`: the
//!   secrets holding the PagerDuty webhook subscription's signing secret and the
//!   Opsgenie token; unset, that tool's webhooks are refused
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
//! - `secretsmanager:GetSecretValue` on the webhook secret, the PagerDuty and Opsgenie secrets
//!   and the keys of the registry's senders (`grantwarden/senders/*`)
//! - `dynamodb:PutItem`, `dynamodb:DeleteItem` on the replay table
//! - `dynamodb:GetItem`, `dynamodb:PutItem` on the incidents table
//! - `dynamodb:PutItem` on the leases table; `scheduler:CreateSchedule` and `DeleteSchedule` in the
//!   revoke schedule group and `iam:PassRole` of the scheduler role
//! - `s3:ListBucket` on the bucket (policy prefix) and `s3:GetObject` on the
//!   policy registry, scoring and targets objects
//!
//! No PostgreSQL access: intake records decisions, revoke acts on them.
#![deny(missing_docs)]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use grantwarden_aws::{Clients, DynamoStore, Objects, SecretCache, Settings};
use grantwarden_intake::{App, KeySource, KeyUnavailable, SenderKeys};
use lambda_http::{Error, service_fn};

/// How long a fetched key is reused; a rotated key is picked up within this.
const KEY_TTL: Duration = Duration::from_secs(300);

/// How often a warm container asks whether the policy registry changed (one
/// listing of its prefix; its files are read again only when their keys or
/// ETags changed): an edit routes requests within this.
const REGISTRY_CHECK: Duration = Duration::from_secs(30);

/// Keeps the handler's registry in step with its objects.
struct RegistryWatch {
    objects: Objects,
    store: DynamoStore,
    next_check: std::sync::Mutex<std::time::Instant>,
}

impl RegistryWatch {
    /// At most every [`REGISTRY_CHECK`]: reads the registry (from cache when
    /// unchanged) and, when it is another version or became unusable, routes
    /// by it from now on and journals the new version. A failure to read S3
    /// keeps the registry in use; a registry an edit broke is used as broken
    /// (requests are then recorded as untagged: fail secure).
    async fn refresh(&self, app: &App<DynamoStore, SecretKey>) {
        {
            let mut next = self.next_check.lock().expect("never poisoned");
            let now = std::time::Instant::now();
            if now < *next {
                return;
            }
            *next = now + REGISTRY_CHECK;
        }
        let fresh = match self.objects.policy_registry().await {
            Err(grantwarden_aws::objects::RegistryError::Read(e)) => {
                tracing::warn!(error = %e, "could not check the policy registry; still routing by the one loaded");
                return;
            }
            other => other.map_err(|e| e.to_string()),
        };
        let current = app.registry();
        let same = match (current.as_ref(), &fresh) {
            (Ok(a), Ok(b)) => a.id == b.id,
            (Err(a), Err(b)) => a == b,
            _ => false,
        };
        if same {
            return;
        }
        match &fresh {
            Ok(r) => {
                tracing::info!(version = %r.id.version, sha256 = %r.id.sha256, "policy registry changed; routing by it now");
                if let Err(e) =
                    grantwarden_core::audit::note_registry(&self.store, r, "grantwarden-intake", chrono::Utc::now())
                        .await
                {
                    tracing::error!(error = %e, version = %r.id.version, "could not journal registry.loaded");
                }
            }
            Err(why) => {
                tracing::error!(error = %why, "policy registry unusable; every request will be recorded as untagged");
            }
        }
        app.set_registry(fresh);
    }
}

/// A key (the webhook key, a vendor's secret), from Secrets Manager through the cache.
struct SecretKey {
    secrets: SecretCache,
    id: String,
}

impl KeySource for SecretKey {
    async fn key(&self) -> Result<Vec<u8>, KeyUnavailable> {
        match self.secrets.string(&self.id).await {
            // a trailing newline from `--secret-string file://...` is not part of the key
            Ok(key) if key.trim().is_empty() => Err(KeyUnavailable(format!("secret {} is empty", self.id))),
            Ok(key) => Ok(key.trim().as_bytes().to_vec()),
            Err(e) => Err(KeyUnavailable(e.to_string())),
        }
    }
}

/// The registry senders' keys, from Secrets Manager through the cache.
struct SecretSenderKeys(SecretCache);

impl SenderKeys for SecretSenderKeys {
    fn key<'a>(
        &'a self,
        secret: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u8>, KeyUnavailable>> + Send + 'a>> {
        Box::pin(async move { SecretKey { secrets: self.0.clone(), id: secret.to_owned() }.key().await })
    }
}

/// A vendor's secret, checked readable now; `None` (its webhooks are then refused
/// at every request: fail secure) when none is configured.
async fn vendor_secret(
    secrets: &SecretCache,
    vendor: &str,
    id: Option<&str>,
) -> Result<Option<SecretKey>, KeyUnavailable> {
    let Some(id) = id else {
        tracing::warn!(vendor, "no secret configured: its incident webhooks will be refused");
        return Ok(None);
    };
    let source = SecretKey { secrets: secrets.clone(), id: id.to_owned() };
    source.key().await?;
    Ok(Some(source))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    grantwarden_aws::logging::init_json();
    let settings = Settings::from_env()?;
    let clients = Clients::load().await;
    let objects = Objects::new(&clients, &settings);

    // an unreadable key or scoring config is bad configuration: fail the cold start
    let secrets = SecretCache::new(&clients, KEY_TTL);
    let key = SecretKey { secrets: secrets.clone(), id: settings.webhook_secret_id.clone() };
    key.key().await?;
    let pagerduty = vendor_secret(&secrets, "PagerDuty", settings.pagerduty_secret_id.as_deref()).await?;
    let opsgenie = vendor_secret(&secrets, "Opsgenie", settings.opsgenie_secret_id.as_deref()).await?;
    let scoring = objects.scoring().await?;
    let targets = objects.named_targets(&settings).await?;
    // an unusable registry is not: requests are then recorded as untagged (fail secure)
    let registry = objects.policy_registry().await.map_err(|e| e.to_string());
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
    let mut app = App::new(store, registry, key)
        .with_sender_keys(Arc::new(SecretSenderKeys(secrets.clone())))
        .with_known_targets(targets)
        .with_scoring(scoring)
        .with_timers(timers)
        .with_legacy_v1(settings.webhook_legacy_v1);
    if settings.webhook_legacy_v1 {
        tracing::warn!(
            "legacy v1 signatures accepted on /webhooks/grants and /requests until GRANTWARDEN_WEBHOOK_LEGACY_V1 is unset"
        );
    }
    if let Some((issuer, client_id, identity, groups)) = settings.oidc()? {
        let oidc = grantwarden_oidc::Settings::with_claims(issuer, client_id, identity, groups);
        // discovered at the first token: an unreachable provider leaves the signed routes serving
        app = app.with_identity_provider(Arc::new(grantwarden_oidc::LazyVerifier::new(oidc)));
    } else {
        tracing::warn!(
            "no GRANTWARDEN_OIDC_ISSUER: bearer tokens are refused; people act only through registry senders"
        );
    }
    if let Some(source) = pagerduty {
        app = app.with_pagerduty(source);
    }
    if let Some(source) = opsgenie {
        app = app.with_opsgenie(source);
    }
    let app = Arc::new(app);
    let watch = Arc::new(RegistryWatch {
        objects,
        store: DynamoStore::new(&clients, &settings),
        next_check: std::sync::Mutex::new(std::time::Instant::now() + REGISTRY_CHECK),
    });
    lambda_http::run(service_fn(move |req| {
        let (app, watch) = (Arc::clone(&app), Arc::clone(&watch));
        async move {
            watch.refresh(&app).await;
            Ok::<_, Infallible>(app.handle(req).await)
        }
    }))
    .await
}
